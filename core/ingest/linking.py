"""Answers -> passages: link each question's free-text answer to the document chunk that holds it.

:func:`link_answers` turns question/answer pairs plus document chunks (:mod:`core.ingest.chunking`)
into a retrieval :class:`~core.dataset.QADataset`, trying for each answer, in order: an exact
match, a normalised match (case, width, punctuation, whitespace), BM25, then (with a model) the
embedding. BM25 here is :class:`core.retrieval.index.BM25Index` and the answer-coverage share counts
:func:`core.retrieval.terms.terms`, the same tokenisation search uses. Every question gets an
:class:`AnswerLink` saying how it was linked and how sure that is; links below the confidence
threshold are left out of the dataset.

bm25s and numpy (through :mod:`core.retrieval.index`) are imported only when BM25 is needed.
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from core.dataset import DataError, QADataset
from core.ingest.chunking import Chunk
from core.retrieval.terms import terms

logger = logging.getLogger(__name__)

NORMALIZED_CONFIDENCE = 0.95  # confidence of a whitespace/case/punctuation-normalised substring match
LINK_METHODS = ("exact", "normalized", "bm25", "embedding", "none")


@dataclass
@dataclass
class AnswerLink:
    """How one question's answer was linked to a chunk.

    Attributes:
        query_id: The question's id.
        chunk_id: The linked chunk's id; None when the answer was not linked.
        method: "exact", "normalized", "bm25", "embedding", or "none" (not linked).
        confidence: 1.0 for exact, 0.95 for normalised; for bm25 the IDF-weighted share of the
            answer's terms found in the chunk; for embedding the cosine similarity clipped to 0..1.
            For "none": the best confidence any method reached (0.0 when none applied).
        candidate_id: For "none", the best (rejected) chunk, if any; otherwise equal to ``chunk_id``.
    """

    query_id: str
    chunk_id: str | None
    method: str
    confidence: float
    candidate_id: str | None = None

    @property
    def linked(self) -> bool:
        """Whether the answer was linked (and the question is in the dataset)."""
        return self.chunk_id is not None


def _normalize(text: str) -> str:
    """Lower-case, NFKC, punctuation -> space, whitespace collapsed; padded with spaces for word-bounded
    substring tests."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(" " if unicodedata.category(ch)[0] in "PSZC" else ch for ch in text)
    return f" {' '.join(text.split())} "


def _exact_match(answer: str, chunks: Sequence[Chunk]) -> str | None:
    """First chunk containing the answer verbatim (not inside a longer word)."""
    left = r"(?<!\w)" if answer[0].isalnum() or answer[0] == "_" else ""
    right = r"(?!\w)" if answer[-1].isalnum() or answer[-1] == "_" else ""
    pattern = re.compile(left + re.escape(answer) + right)
    for chunk in chunks:
        if answer in chunk.text and pattern.search(chunk.text):
            return chunk.id
    return None


class _Bm25:
    """BM25 over the chunks (:class:`~core.retrieval.index.BM25Index`), plus the document frequencies of
    their terms for the confidence score."""

    def __init__(self, chunks: Sequence[Chunk]):
        from core.retrieval.index import BM25Index

        self.index = BM25Index([c.id for c in chunks], [c.text for c in chunks])
        self.sets = [set(terms(c.text)) for c in chunks]
        self.df: Counter[str] = Counter(t for s in self.sets for t in s)
        self.n = len(chunks)

    def idf(self, term: str) -> float:
        df = self.df.get(term, 0)
        return math.log(1 + (self.n - df + 0.5) / (df + 0.5))

    def coverage(self, query_terms: Iterable[str], doc: int) -> float:
        """IDF-weighted share of the distinct terms that occur in chunk ``doc`` (0..1)."""
        unique = set(query_terms)
        total = sum(self.idf(t) for t in unique)
        if total <= 0:
            return 0.0
        return sum(self.idf(t) for t in unique if t in self.sets[doc]) / total

    def best(self, question: str, answer: str) -> tuple[int, float]:
        """Best chunk for (answer + question) and its confidence; (-1, 0.0) when nothing matches."""
        a_terms, q_terms = terms(answer), terms(question)
        score = self.index.scores(a_terms) + 0.5 * self.index.scores(q_terms)
        if self.n == 0 or float(score.max()) <= 0:
            return -1, 0.0
        doc = int(score.argmax())
        return doc, self.coverage(a_terms or q_terms, doc)


def link_answers(
    queries: dict[str, str],
    answers: dict[str, str],
    chunks: Sequence[Chunk],
    model=None,
    min_confidence: float = 0.5,
) -> tuple[QADataset, list[AnswerLink]]:
    """Link question/answer pairs to the chunk holding each answer, giving a retrieval dataset.

    For each question, in order, the first method that applies wins:

    1. ``exact``: the answer (stripped) occurs verbatim in a chunk, not inside a longer word; the first such
       chunk in ``chunks`` order is used (so an answer split across two chunks falls through). Confidence 1.0.
    2. ``normalized``: the same after case folding, NFKC, punctuation -> space and whitespace collapsing.
       Confidence 0.95.
    3. ``bm25``: :class:`~core.retrieval.index.BM25Index` ranks chunks by BM25(answer terms) + 0.5 *
       BM25(question terms), terms as :func:`core.retrieval.terms.terms` gives them (search's own policy:
       NFKC, case-folded, stop words dropped). Confidence = IDF-weighted share of the answer's distinct
       terms present in the top chunk, ``sum(idf(t) for t in A & C) / sum(idf(t) for t in A)`` with
       ``idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5))`` over the chunks (question terms when the answer has
       none). 1.0 means every answer term is in the chunk; rare terms weigh more; terms found in no chunk
       count against it.
    4. ``embedding`` (only with ``model``, only for answers BM25 left below ``min_confidence``): cosine
       similarity between the embedding of "question\\nanswer" and each chunk (normalised embeddings),
       best chunk wins; confidence = the cosine clipped to 0..1.

    A link whose confidence is below ``min_confidence`` is not made: its :class:`AnswerLink` has method
    "none", ``chunk_id`` None, the best confidence reached and the rejected chunk as ``candidate_id``.
    Answers whose id is not in ``queries``, or that are blank, are reported as "none" with confidence 0.

    Args:
        queries: ``{query id: question}``.
        answers: ``{query id: answer text}``.
        chunks: All chunks (e.g. ``DocumentSet.chunks``).
        model: Optional SentenceTransformer for the embedding fallback.
        min_confidence: Links below this are left out of the dataset.

    Returns:
        ``(dataset, links)``: the dataset has corpus = all chunks, sources = ``{chunk id: "file p.N" | "file"}``,
        and queries/relevant_docs for the linked questions only; ``links`` has one entry per question (then
        per answer without a question), in order.

    Raises:
        DataError: there are no chunks to link to.
    """
    if not chunks:
        raise DataError(
            "There are no document chunks to link the answers to. Upload and load documents first."
        )
    ids = list(dict.fromkeys([*queries, *answers]))
    norm_chunks = [_normalize(c.text) for c in chunks]
    bm25: _Bm25 | None = None
    links: dict[str, AnswerLink] = {}
    pending: list[str] = []  # query ids for the embedding fallback
    for qid in ids:
        answer = (answers.get(qid) or "").strip()
        if qid not in queries or not answer:
            links[qid] = AnswerLink(qid, None, "none", 0.0)
            continue
        chunk_id = _exact_match(answer, chunks)
        if chunk_id is not None:
            links[qid] = AnswerLink(qid, chunk_id, "exact", 1.0, chunk_id)
            continue
        norm = _normalize(answer)
        if norm.strip():
            hit = next((c.id for c, text in zip(chunks, norm_chunks, strict=True) if norm in text), None)
            if hit is not None:
                links[qid] = AnswerLink(qid, hit, "normalized", NORMALIZED_CONFIDENCE, hit)
                continue
        bm25 = bm25 or _Bm25(chunks)
        doc, conf = bm25.best(queries[qid], answer)
        candidate = chunks[doc].id if doc >= 0 else None
        if candidate is not None and conf >= min_confidence:
            links[qid] = AnswerLink(qid, candidate, "bm25", conf, candidate)
        else:
            links[qid] = AnswerLink(qid, None, "none", conf, candidate)
            pending.append(qid)
    if model is not None and pending:
        import numpy as np

        emb = model.encode(
            [c.text for c in chunks],
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        q_emb = model.encode(
            [f"{queries[q]}\n{answers[q].strip()}" for q in pending],
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        sims = np.asarray(q_emb, dtype=np.float32) @ np.asarray(emb, dtype=np.float32).T
        for row, qid in zip(sims, pending, strict=True):
            doc = int(row.argmax())
            conf = float(min(1.0, max(0.0, row[doc])))
            if conf >= min_confidence:
                links[qid] = AnswerLink(qid, chunks[doc].id, "embedding", conf, chunks[doc].id)
            elif conf > links[qid].confidence:
                links[qid] = AnswerLink(qid, None, "none", conf, chunks[doc].id)
    linked = [link for link in links.values() if link.chunk_id is not None]
    dataset = QADataset(
        queries={link.query_id: queries[link.query_id] for link in linked},
        corpus={c.id: c.text for c in chunks},
        relevant_docs={link.query_id: [link.chunk_id] for link in linked if link.chunk_id},
        sources={c.id: c.label for c in chunks},
    )
    logger.info(
        "linked %d of %d answers (%s)",
        len(linked),
        len(links),
        ", ".join(f"{m} {n}" for m, n in Counter(link.method for link in links.values()).items()),
    )
    return dataset, [links[q] for q in ids]
