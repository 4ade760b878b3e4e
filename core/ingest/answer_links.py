"""Answers -> passages for the Data page: a file that gives answers instead of passages, linked to the
uploaded documents' chunks (``core.ingest.linking``), with the unlinked ones first and why each is
unlinked; matching by meaning in the background (``core.ingest.meaning``) keyed and worked here.

Nothing here touches Streamlit.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.dataset import QADataset, source_file
from core.ingest import linking
from core.ingest.chunking import Chunk
from core.ingest.linking import AnswerLink, link_answers
from core.ingest.meaning import task_key
from core.ingest.qafiles import LoadResult

# How an unlinked answer's status reads in the link table, by reason (core.ingest.linking), in table order.
UNLINKED_STATUS = {
    linking.NOT_UPLOADED: "not linked: document not uploaded",
    linking.PROBABLY_NOT_UPLOADED: "not linked: document probably missing",
    linking.LOW_CONFIDENCE: "not linked: low confidence",
    linking.NO_ANSWER: "not linked: no answer text",
    linking.NO_QUESTION: "not linked: no question",
}
# Short columns first, so status and confidence are in view however narrow the page.
LINK_COLUMNS = ("status", "confidence", "question", "answer", "passage from", "how")


@dataclass
class Linked:
    """A file of questions with answers, linked to document chunks.

    Attributes:
        dataset: Linked questions (with their answers), every chunk as corpus, chunk sources.
        links: One :class:`~core.ingest.linking.AnswerLink` per question (then per answer without one).
        rows: One row per link for display (:data:`LINK_COLUMNS`): unlinked answers first (by reason, in
            :data:`UNLINKED_STATUS` order), then linked ones, least sure first. "passage from" is the linked
            chunk's source, the best rejected candidate's, or the document the file names.
        n_documents: Documents the chunks come from (distinct source files).
        min_confidence: The threshold links were held to.
    """

    dataset: QADataset
    links: list[AnswerLink]
    rows: list[dict[str, Any]] = field(default_factory=list)
    n_documents: int = 0
    min_confidence: float = 0.5

    @property
    def n_linked(self) -> int:
        """Answers linked to a passage (the questions kept)."""
        return sum(link.linked for link in self.links)

    @property
    def n_unsure(self) -> int:
        """Unlinked answers that matching by meaning would try (low confidence, or probably not uploaded)."""
        unsure = (linking.LOW_CONFIDENCE, linking.PROBABLY_NOT_UPLOADED)
        return sum(1 for link in self.links if not link.linked and link.reason in unsure)

    def unlinked(self) -> dict[str, int]:
        """Unlinked answers per reason (:data:`core.ingest.linking.UNLINKED_REASONS` with a count > 0)."""
        counts = {r: 0 for r in linking.UNLINKED_REASONS}
        for link in self.links:
            if not link.linked:
                counts[link.reason or linking.LOW_CONFIDENCE] += 1
        return {r: n for r, n in counts.items() if n}

    def notes(self, matched_by_meaning: bool = False) -> list[str]:
        """What happened to the answers that were not linked, in plain words with counts, most definite first.

        Args:
            matched_by_meaning: Whether matching by meaning was already tried (then it is not suggested).

        Returns:
            One sentence per reason, e.g. "1,051 of 1,357 unlinked answers: their documents are not among the
            10 uploaded (the answer file names each answer's document)."
        """
        counts = self.unlinked()
        total = sum(counts.values())
        docs = f"the {self.n_documents:,} uploaded" if self.n_documents != 1 else "the one uploaded"
        of = f"{{n:,}} of {total:,} unlinked answer{'s' if total != 1 else ''}"
        words = {
            linking.NOT_UPLOADED: f"{of}: their documents are not among {docs} (the answer file names each "
            "answer's document). Upload those documents to link them.",
            linking.PROBABLY_NOT_UPLOADED: f"{of}: their documents are probably not among {docs}: most of the "
            "weight of their words (their rarest words: names, figures, terms) occurs in none of them. Upload "
            "the documents they come from, or add a document column to the answer file to be sure.",
            linking.LOW_CONFIDENCE: f"{of}: low confidence: their words are in the documents, but no passage "
            f"holds enough of them (confidence below {self.min_confidence:.2f})."
            + ("" if matched_by_meaning else " Tick 'Also match answers by meaning' to link answers worded "
               "differently from the documents (check what it links: it also finds a closest passage for "
               "answers whose document is missing)."),
            linking.NO_ANSWER: f"{of}: the answer cell is empty.",
            linking.NO_QUESTION: f"{of}: no question goes with the answer.",
        }
        return [words[r].format(n=n) for r, n in counts.items()]


def shown_confidence(confidence: float) -> float:
    """A confidence to 2 decimals, rounded down: an unlinked 0.497 must not read as the 0.50 threshold."""
    return math.floor(round(confidence * 100, 6)) / 100


def _link_rows(loaded: LoadResult, links: list[AnswerLink], labels: dict[str, str]) -> list[dict[str, Any]]:
    order = {r: i for i, r in enumerate(UNLINKED_STATUS)}

    def sort_key(lk: AnswerLink) -> tuple:
        if lk.linked:
            return (len(order), lk.confidence)
        return (order.get(lk.reason, len(order) - 1), -lk.confidence)

    rows = []
    for lk in sorted(links, key=sort_key):
        if lk.linked:
            status, source = "linked", labels.get(lk.chunk_id or "", "")
        else:
            status = UNLINKED_STATUS.get(lk.reason, "not linked")
            source = (lk.document or "") if lk.reason == linking.NOT_UPLOADED else labels.get(lk.candidate_id or "", "")
        rows.append({
            "status": status,
            "confidence": shown_confidence(lk.confidence),
            "question": loaded.dataset.queries.get(lk.query_id, ""),
            "answer": loaded.answers.get(lk.query_id, ""),
            "passage from": source,
            "how": lk.method,
        })  # fmt: skip
    return rows


def link_to_documents(
    loaded: LoadResult,
    chunks: Sequence[Chunk],
    model: Any = None,
    *,
    cache: Any = None,
    progress: linking.LinkProgress | None = None,
) -> Linked:
    """Link the answers of a question file to the chunks that hold them.

    Args:
        loaded: A file for which :func:`needs_documents` is true (its ``answer_documents``, when the file
            names each answer's document, restrict each answer to that document).
        chunks: The uploaded documents' chunks (``DocumentSet.chunks``, plus any passages file's).
        model: Optional SentenceTransformer for matching answers by meaning as a last resort.
        cache: Optional :class:`core.retrieval.embedding.EmbeddingCache` for matching by meaning.
        progress: Optional ``progress(phase, done, total)`` while matching by meaning.

    Returns:
        The linked dataset, every link, and the rows of the link table.

    Raises:
        DataError: there are no chunks.
    """
    ds, links = link_answers(loaded.dataset.queries, loaded.answers, chunks, model=model,
                             documents=loaded.answer_documents, cache=cache, progress=progress)  # fmt: skip
    labels = {c.id: c.label for c in chunks}
    n_docs = len({source_file(c.label) for c in chunks if c.label})
    return Linked(ds, links, _link_rows(loaded, links, labels), n_docs)


def chunks_key(chunks: Sequence[Chunk]) -> str:
    """A short key for a list of chunks (their ids hash their files and texts), for caching work on them."""
    return hashlib.sha256("\x1f".join(c.id for c in chunks).encode("utf-8", "surrogatepass")).hexdigest()[:16]


def meaning_key(loaded: LoadResult, chunks: Sequence[Chunk], model: str) -> str:
    """The key of matching ``loaded``'s answers to ``chunks`` by meaning with ``model`` (its name): the same
    file, documents and model give the same key (:func:`core.ingest.meaning.task_key`)."""
    return task_key(loaded.dataset.queries, loaded.answers, (c.id for c in chunks), model, loaded.answer_documents)


def meaning_work(loaded: LoadResult, chunks: Sequence[Chunk], load_model: Callable[[], Any], cache: Any = None):
    """The work of a background matching by meaning (:class:`core.ingest.meaning.MeaningTask`): loads the
    model (``load_model()``, in the worker), then links with it, reporting progress.

    Returns:
        ``work(progress) -> Linked``.
    """

    def work(progress: linking.LinkProgress) -> Linked:
        return link_to_documents(loaded, chunks, load_model(), cache=cache, progress=progress)

    return work


