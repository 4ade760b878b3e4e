"""Answers -> passages: link each question's free-text answer to the document chunk that holds it.

:func:`link_answers` turns question/answer pairs plus document chunks (:mod:`core.ingest.chunking`)
into a retrieval :class:`~core.dataset.QADataset`, trying for each answer, in order: an exact
match, a normalised match (case, width, punctuation, whitespace), BM25, then (with a model) the
embedding. BM25 here is :class:`core.retrieval.index.BM25Index` and the answer-coverage share counts
:func:`core.retrieval.terms.terms`, the same tokenisation search uses. Every question gets an
:class:`AnswerLink` saying how it was linked and how sure that is; links below the confidence
threshold are left out of the dataset, and each unlinked answer says why (:data:`UNLINKED_REASONS`).

When the answer file names each answer's document (``documents=``), an answer is looked for in that
document's chunks only, and an answer whose document was not uploaded is not linked at all (a
definitive "not uploaded"). Without names, the evidence decides between "probably not uploaded"
(most of the answer's weight, its rarest words, occurs in no uploaded chunk) and "low confidence".

Matching by meaning encodes every chunk once (through :class:`core.retrieval.embedding.EmbeddingCache`
when given, so a second run encodes nothing) and reports progress as it goes; it is slow on a CPU
(minutes for thousands of chunks), so the Data page runs it in the background
(:mod:`core.ingest.meaning`).

bm25s and numpy (through :mod:`core.retrieval.index`) are imported only when BM25 is needed.
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from core.dataset import DataError, QADataset
from core.ingest.chunking import Chunk
from core.retrieval.terms import terms

logger = logging.getLogger(__name__)

NORMALIZED_CONFIDENCE = 0.95  # confidence of a whitespace/case/punctuation-normalised substring match
LINK_METHODS = ("exact", "normalized", "bm25", "embedding", "none")
# Why an answer was not linked, most definite first.
NOT_UPLOADED = "not uploaded"  # the file names the answer's document, and no uploaded file is that document
PROBABLY_NOT_UPLOADED = "probably not uploaded"  # most of the answer's weight occurs in no uploaded chunk
LOW_CONFIDENCE = "low confidence"  # the words are there, but no chunk reaches the threshold
NO_ANSWER = "no answer"  # a blank answer
NO_QUESTION = "no question"  # an answer whose question id is not among the questions
UNLINKED_REASONS = (NOT_UPLOADED, PROBABLY_NOT_UPLOADED, LOW_CONFIDENCE, NO_ANSWER, NO_QUESTION)
# Share of an answer's IDF weight found anywhere in the chunks below which its document is probably
# not among those uploaded: terms found in no chunk weigh the most (idf of df=0), so an answer whose
# rare words (names, figures, technical terms) are missing everywhere falls below it, while one worded
# differently from a document that is there keeps its ordinary words and stays above.
FOUND_SHARE_UPLOADED = 0.5
EMBED_STEP = 32  # chunks encoded between two progress reports: one batch (~10 s of long passages on 2 busy cores)
LinkProgress = Callable[[str, int, int], None]  # (phase: "passages" | "answers", done, total)


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
        reason: For "none", why (one of :data:`UNLINKED_REASONS`); "" for a link.
        document: The document the answer file names for this answer, if it names one.
        found_share: IDF-weighted share of the answer's terms found in any chunk (None when BM25 was not
            reached): the evidence behind "probably not uploaded".
    """

    query_id: str
    chunk_id: str | None
    method: str
    confidence: float
    candidate_id: str | None = None
    reason: str = ""
    document: str | None = None
    found_share: float | None = None

    @property
    def linked(self) -> bool:
        """Whether the answer was linked (and the question is in the dataset)."""
        return self.chunk_id is not None


def document_key(name: str) -> str:
    """A file name as compared between an answer file and the uploads: last path part, no extension,
    case-folded, letters and digits only (``"Papers/Smith 2020.PDF"`` -> ``"smith2020"``)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    stem = base.rsplit(".", 1)[0] if re.search(r"\.[A-Za-z][A-Za-z0-9]{0,4}$", base) else base
    return "".join(ch for ch in unicodedata.normalize("NFKC", stem).casefold() if ch.isalnum())


def _normalize(text: str) -> str:
    """Lower-case, NFKC, punctuation -> space, whitespace collapsed; padded with spaces for word-bounded
    substring tests."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(" " if unicodedata.category(ch)[0] in "PSZC" else ch for ch in text)
    return f" {' '.join(text.split())} "


def _exact_match(answer: str, chunks: Sequence[Chunk], allowed: Sequence[int]) -> str | None:
    """First chunk (of those ``allowed``) containing the answer verbatim (not inside a longer word)."""
    left = r"(?<!\w)" if answer[0].isalnum() or answer[0] == "_" else ""
    right = r"(?!\w)" if answer[-1].isalnum() or answer[-1] == "_" else ""
    pattern = re.compile(left + re.escape(answer) + right)
    for i in allowed:
        chunk = chunks[i]
        if answer in chunk.text and pattern.search(chunk.text):
            return chunk.id
    return None


class _Bm25:
    """BM25 over the chunks (:class:`~core.retrieval.index.BM25Index`), plus the document frequencies of
    their terms for the confidence score."""

    def __init__(self, chunks: Sequence[Chunk]):
        from core.retrieval.index import (
            BM25Index,  # heavy: numpy and bm25s; intake imports this module and stays light
        )

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

    def found_share(self, query_terms: Iterable[str]) -> float:
        """IDF-weighted share of the distinct terms that occur in any chunk (0..1; 1.0 without terms)."""
        unique = set(query_terms)
        total = sum(self.idf(t) for t in unique)
        if total <= 0:
            return 1.0
        return sum(self.idf(t) for t in unique if self.df.get(t)) / total

    def best(self, question: str, answer: str, allowed: Sequence[int] | None = None) -> tuple[int, float]:
        """Best chunk (of those ``allowed``; None: all) for (answer + question) and its confidence;
        (-1, 0.0) when nothing matches."""
        a_terms, q_terms = terms(answer), terms(question)
        score = self.index.scores(a_terms) + 0.5 * self.index.scores(q_terms)
        if allowed is not None:
            import numpy as np

            masked = np.full_like(score, -1.0)
            masked[list(allowed)] = score[list(allowed)]
            score = masked
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
    *,
    documents: dict[str, str] | None = None,
    cache=None,
    progress: LinkProgress | None = None,
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
       similarity between the embedding of "question\\nanswer" (as a query) and each chunk (as a passage;
       :func:`core.retrieval.embedding.encode`, normalised), best chunk wins; confidence = the cosine
       clipped to 0..1.

    With ``documents``, an answer whose named document matches an uploaded file (:func:`document_key`
    of the name and of ``Chunk.source``) is looked for in that file's chunks only; one whose document
    matches none is not linked (reason "not uploaded").

    A link whose confidence is below ``min_confidence`` is not made: its :class:`AnswerLink` has method
    "none", ``chunk_id`` None, the best confidence reached, the rejected chunk as ``candidate_id`` and a
    ``reason``: "not uploaded" (see above), "probably not uploaded" (no document named, and less than
    :data:`FOUND_SHARE_UPLOADED` of the answer's IDF weight occurs in any chunk), else "low confidence".
    Answers whose id is not in ``queries`` ("no question") or that are blank ("no answer") get
    confidence 0.

    Args:
        queries: ``{query id: question}``.
        answers: ``{query id: answer text}``.
        chunks: All chunks (e.g. ``DocumentSet.chunks``).
        model: Optional SentenceTransformer for the embedding fallback.
        min_confidence: Links below this are left out of the dataset.
        documents: Optional ``{query id: document name}`` from the answer file.
        cache: Optional :class:`core.retrieval.embedding.EmbeddingCache` for the embedding fallback.
        progress: Called as ``progress(phase, done, total)`` while encoding: ``"passages"`` (chunks
            encoded) then ``"answers"``; only with ``model`` and answers left to match.

    Returns:
        ``(dataset, links)``: the dataset has corpus = all chunks, sources = ``{chunk id: "file p.N" | "file"}``
        (chunks without a source left out), queries/relevant_docs for the linked questions only and their
        answers (``QADataset.answers``); ``links`` has one entry per question (then per answer without a
        question), in order.

    Raises:
        DataError: there are no chunks to link to.
    """
    if not chunks:
        raise DataError(
            "There are no document chunks to link the answers to. Upload and load documents first."
        )
    ids = list(dict.fromkeys([*queries, *answers]))
    documents = documents or {}
    by_file: dict[str, list[int]] = {}
    for i, c in enumerate(chunks):
        by_file.setdefault(document_key(c.source), []).append(i)
    everything = range(len(chunks))
    norm_chunks = [_normalize(c.text) for c in chunks]
    bm25: _Bm25 | None = None
    links: dict[str, AnswerLink] = {}
    allowed_of: dict[str, Sequence[int] | None] = {}
    pending: list[str] = []  # query ids for the embedding fallback
    for qid in ids:
        answer = (answers.get(qid) or "").strip()
        named = (documents.get(qid) or "").strip() or None
        if qid not in queries or not answer:
            links[qid] = AnswerLink(qid, None, "none", 0.0, reason=NO_QUESTION if qid not in queries else NO_ANSWER,
                                    document=named)  # fmt: skip
            continue
        allowed = by_file.get(document_key(named)) if named else None
        if named and allowed is None:
            links[qid] = AnswerLink(qid, None, "none", 0.0, reason=NOT_UPLOADED, document=named)
            continue
        allowed_of[qid] = allowed
        chunk_id = _exact_match(answer, chunks, allowed if allowed is not None else everything)
        if chunk_id is not None:
            links[qid] = AnswerLink(qid, chunk_id, "exact", 1.0, chunk_id, document=named)
            continue
        norm = _normalize(answer)
        if norm.strip():
            hit = next((chunks[i].id for i in (allowed if allowed is not None else everything)
                        if norm in norm_chunks[i]), None)  # fmt: skip
            if hit is not None:
                links[qid] = AnswerLink(qid, hit, "normalized", NORMALIZED_CONFIDENCE, hit, document=named)
                continue
        bm25 = bm25 or _Bm25(chunks)
        doc, conf = bm25.best(queries[qid], answer, allowed)
        candidate = chunks[doc].id if doc >= 0 else None
        if candidate is not None and conf >= min_confidence:
            links[qid] = AnswerLink(qid, candidate, "bm25", conf, candidate, document=named)
            continue
        found = bm25.found_share(terms(answer) or terms(queries[qid]))
        reason = PROBABLY_NOT_UPLOADED if named is None and found < FOUND_SHARE_UPLOADED else LOW_CONFIDENCE
        links[qid] = AnswerLink(qid, None, "none", conf, candidate, reason, named, found)
        pending.append(qid)
    if model is not None and pending:
        _link_by_meaning(queries, answers, chunks, model, min_confidence, pending, allowed_of, links, cache, progress)
    linked = [link for link in links.values() if link.chunk_id is not None]
    dataset = QADataset(
        queries={link.query_id: queries[link.query_id] for link in linked},
        corpus={c.id: c.text for c in chunks},
        relevant_docs={link.query_id: [link.chunk_id] for link in linked if link.chunk_id},
        sources={c.id: c.label for c in chunks if c.label},
        answers={link.query_id: answers[link.query_id].strip() for link in linked},
    )
    logger.info(
        "linked %d of %d answers (%s)",
        len(linked),
        len(links),
        ", ".join(f"{m} {n}" for m, n in Counter(link.method for link in links.values()).items()),
    )
    return dataset, [links[q] for q in ids]


def _link_by_meaning(
    queries: dict[str, str],
    answers: dict[str, str],
    chunks: Sequence[Chunk],
    model,
    min_confidence: float,
    pending: list[str],
    allowed_of: dict[str, Sequence[int] | None],
    links: dict[str, AnswerLink],
    cache,
    progress: LinkProgress | None,
) -> None:
    """The embedding fallback of :func:`link_answers`: updates ``links`` of the ``pending`` answers."""
    import numpy as np

    from core.retrieval.embedding import embedding_dim, encode  # heavy: numpy; intake stays light

    n = len(chunks)
    report = progress or (lambda phase, done, total: None)
    emb = np.zeros((n, embedding_dim(model)), dtype=np.float32)
    order = sorted(range(n), key=lambda i: -len(chunks[i].text))  # longest first: little padding per batch
    report("passages", 0, n)
    for start in range(0, n, EMBED_STEP):
        idx = order[start : start + EMBED_STEP]
        emb[idx] = encode(model, [chunks[i].text for i in idx], kind="passage", cache=cache)
        report("passages", min(start + EMBED_STEP, n), n)
    q_emb = encode(
        model,
        [f"{queries[q]}\n{answers[q].strip()}" for q in pending],
        kind="query",
        cache=cache,
        progress=lambda done, total: report("answers", done, total),
    )
    sims = q_emb @ emb.T
    for row, qid in zip(sims, pending, strict=True):
        allowed = allowed_of.get(qid)
        if allowed is not None:
            masked = np.full_like(row, -1.0)
            masked[list(allowed)] = row[list(allowed)]
            row = masked
        doc = int(row.argmax())
        conf = float(min(1.0, max(0.0, row[doc])))
        old = links[qid]
        if conf >= min_confidence:
            links[qid] = AnswerLink(qid, chunks[doc].id, "embedding", conf, chunks[doc].id,
                                    document=old.document, found_share=old.found_share)  # fmt: skip
        elif conf > old.confidence:
            links[qid] = AnswerLink(qid, None, "none", conf, chunks[doc].id, old.reason, old.document, old.found_share)
