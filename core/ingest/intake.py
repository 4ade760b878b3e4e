"""The Data page's intake flow as plain functions: uploaded files in, a saved train/eval dataset out.

The page (``pages/1_Data.py``) draws widgets and calls these, in order:

1. :func:`read_qa_file` reads one question file with its report (:func:`problem_text` words a
   problem for display; :func:`pairs_preview` / :func:`answers_preview` give the first rows);
2. a file that gives answers instead of passages (:func:`needs_documents`) is linked to the
   uploaded documents' chunks by :func:`link_to_documents` (:class:`Linked`: unlinked answers first,
   each with why, and :meth:`Linked.notes` sums them up); matching by meaning runs in the
   background (:mod:`core.ingest.meaning`, keyed by :func:`meaning_key`, worked by
   :func:`meaning_work`);
3. each usable file becomes a :class:`Part` with a role (:func:`guess_role` proposes one);
4. :func:`split_parts` combines the files of each role (``core.dataset.merge_datasets``) and either
   splits them (``core.ingest.splits.split_dataset``) or, when files are marked for evaluation,
   joins the given train and eval files (``core.dataset.join_train_eval``) and checks them for
   leakage (``core.ingest.splits.leakage_report``); :meth:`Split.flags` lists the questions that
   sit on both sides, and near duplicates the user dismissed (:func:`dismissed_in_store` remembers
   those saved with earlier datasets) are left out;
5. :func:`save_split` writes the dataset with the report and metadata the catalog shows.

Documents only (no question file): :func:`read_passages` reads a passages-only file (a vector
store's export), :func:`collection_chunks` puts its passages with the documents' chunks, and
:func:`save_collection` saves them as a collection (``meta["kind"] == "collection"``) for the
Questions page to generate and label questions on.

Nothing here touches Streamlit. Errors are :class:`core.dataset.DataError` with a message for the user.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, Literal

from core.dataset import DataError, QADataset, join_train_eval, merge_datasets
from core.ingest.answer_links import (  # noqa: F401 - the page calls them through intake
    LINK_COLUMNS,
    UNLINKED_STATUS,
    Linked,
    chunks_key,
    link_to_documents,
    meaning_key,
    meaning_work,
)
from core.ingest.chunking import Chunk
from core.ingest.collection import collection_dataset, merge_chunks
from core.ingest.passages import PassageFile, read_passages_file
from core.ingest.passages import looks_like_passages as looks_like_passages  # for the page: a passages file
from core.ingest.qafiles import LoadResult, Problem, load_qa_file
from core.ingest.splits import SplitReport, differing_terms, flag_key, leakage_report, split_dataset

if TYPE_CHECKING:
    from core.workspace.store import Store

logger = logging.getLogger(__name__)

# What a file is used for, and how the page names it.
ROLES = {
    "split": "Training + evaluation (split below)",
    "train": "Training only",
    "eval": "Evaluation only",
}
# What each split mode keeps together, in the user's words (the page shows it under each choice).
SPLIT_HELP = {
    "query": "each question on its own (fastest to fill both sides; the same passage may sit on both)",
    "passage": "questions that share an answer passage stay together, so no answer is seen in both training "
    "and evaluation (recommended: scores are not flattered)",
    "document": "all questions about one source document stay together (needs source documents)",
}
SplitMode = Literal["split", "given", "no-train"]
NO_TRAINING_FILE = "Every file is marked 'Evaluation only': mark at least one for training."
_EVAL_WORDS = ("eval", "test", "dev", "val")
# What the next step is once a collection (passages, no questions) is saved.
COLLECTION_NEXT = "Go to Questions to generate training questions and label evaluation questions."


# --------------------------------------------------------------------------- one file


def read_qa_file(
    name: str,
    data: bytes,
    mapping: dict | None = None,
    max_tokens: int | None = None,
    count_tokens: Callable[[str], int] | None = None,
) -> LoadResult:
    """Read one uploaded question file, with its validation report.

    Args:
        name: File name as uploaded (its extension guides format detection).
        data: File content.
        mapping: Columns chosen by hand, e.g. ``{"query": "Frage", "passage": "Absatz"}``; None: detect.
        max_tokens: Warn about passages longer than this many tokens (what a passage is searched by).
        count_tokens: Token counter; None estimates tokens from words.

    Returns:
        The dataset, its report and, for a file of questions with answers, the answers.

    Raises:
        DataError: the file is refused (see :func:`core.ingest.qafiles.load_qa_file`).
    """
    return load_qa_file(name, data, mapping=mapping, max_tokens=max_tokens, count_tokens=count_tokens)


def problem_text(problem: Problem) -> str:
    """A problem for display: its message, led by where it is unless the message already says so."""
    if not problem.where or problem.where.lower() in problem.message.lower():
        return problem.message
    return f"{problem.where}: {problem.message}"


def pairs_preview(ds: QADataset, n: int = 5) -> list[tuple[str, str]]:
    """The first ``n`` (question, first relevant passage) pairs of a dataset."""
    return [(ds.queries[q], ds.corpus[d]) for q in ds.query_ids[:n] for d in ds.relevant_docs[q][:1]]


def needs_documents(loaded: LoadResult) -> bool:
    """Whether the file gives answers but no passages (its answers must be linked to documents)."""
    return bool(loaded.answers) and not loaded.dataset.corpus


def answers_preview(loaded: LoadResult, n: int = 5) -> list[tuple[str, str]]:
    """The first ``n`` (question, answer) pairs of a file of questions with answers."""
    ids = list(loaded.answers)[:n]
    return [(loaded.dataset.queries.get(q, ""), loaded.answers[q]) for q in ids]


def guess_role(name: str) -> str:
    """The role a file name suggests: ``"eval"`` (eval/test/dev/val), ``"train"``, else ``"split"``."""
    stem = PurePath(name).stem.lower()
    if any(w in stem for w in _EVAL_WORDS):
        return "eval"
    if "train" in stem:
        return "train"
    return "split"


# --------------------------------------------------------------------------- split


@dataclass
class Part:
    """One usable question file: its dataset (pairs, or answers linked to passages), role and report line.

    Attributes:
        name: The file name.
        dataset: What the file gives.
        summary: The report's one-line summary (saved with the dataset).
        role: ``"split"`` (training + evaluation), ``"train"`` or ``"eval"``.
    """

    name: str
    dataset: QADataset
    summary: str
    role: str = "split"


@dataclass
class Split:
    """Training and evaluation sides, how they were made, and how much they overlap.

    Attributes:
        train: The training side.
        eval: The evaluation side (its corpus: every passage, both sides').
        report: Sizes, duplicates across sides and shared passages.
        settings: How the sides were made, saved with the dataset: ``{"by": "given files"}``, or
            ``{"by": mode, "eval_fraction": f, "seed": s}`` for a split.
    """

    train: QADataset
    eval: QADataset
    report: SplitReport
    settings: dict[str, Any]

    @property
    def leaks(self) -> bool:
        """Whether identical or near-identical questions sit on both sides."""
        return bool(self.report.exact_duplicates or self.report.near_duplicates)

    def leak_rows(self) -> list[tuple[str, str, float]]:
        """(training question, evaluation question, similarity) for each question on both sides;
        identical ones first, with similarity 1.0."""
        return [(f.train_question, f.eval_question, f.similarity) for f in self.flags()]

    def flags(self) -> list[Flag]:
        """Every question on both sides, as the page lists it: identical ones first, then near duplicates,
        most similar first (dismissed ones are not in the report, so not here)."""
        tq, eq = self.train.queries, self.eval.queries
        out = [Flag(tq.get(t, ""), eq.get(e, ""), 1.0, True) for t, e in self.report.exact_duplicates]
        for t, e, sim in self.report.near_duplicates:
            a, b = tq.get(t, ""), eq.get(e, "")
            out.append(Flag(a, b, sim, False, _differs(a, b)))
        # The same pair of texts under other ids (a question asked twice in a file, as in sec-10k) is one flag:
        # the page lists it once and one dismissal covers every copy.
        return list({f.key: f for f in reversed(out)}.values())[::-1]


@dataclass
class Flag:
    """A training and an evaluation question that may be the same question.

    Attributes:
        train_question: The training question.
        eval_question: The evaluation question.
        similarity: Their similarity (1.0 for identical questions; char 3-gram Jaccard otherwise).
        identical: The same question once normalised (cannot be dismissed).
        differs: Where the wording differs, in words (e.g. "'total' left out"); "" when only stop words,
            punctuation, word order or word forms differ.
    """

    train_question: str
    eval_question: str
    similarity: float
    identical: bool
    differs: str = ""

    @property
    def key(self) -> tuple[str, str]:
        """What dismissing this flag records (:func:`core.ingest.splits.flag_key`)."""
        return flag_key(self.train_question, self.eval_question)


def _differs(a: str, b: str) -> str:
    parts = []
    for xa, xb in differing_terms(a, b):
        if xa and xb:
            parts.append(f"{' '.join(xa)!r} / {' '.join(xb)!r}")
        elif xa:
            parts.append(f"{' '.join(xa)!r} only in training")
        else:
            parts.append(f"{' '.join(xb)!r} only in evaluation")
    return "; ".join(parts)


def split_mode(parts: Sequence[Part]) -> SplitMode:
    """How :func:`split_parts` will divide these files.

    Returns:
        ``"split"`` (no file is for evaluation only: split them), ``"given"`` (evaluation files and
        training files: keep them as given) or ``"no-train"`` (every file is for evaluation only).
    """
    evals = any(p.role == "eval" for p in parts)
    trains = any(p.role != "eval" for p in parts)
    if evals and not trains:
        return "no-train"
    return "given" if evals else "split"


def split_parts(
    parts: Sequence[Part],
    eval_fraction: float = 0.2,
    seed: int = 42,
    by: str = "passage",
    dismissed: Collection[tuple[str, str]] = (),
) -> Split:
    """Training and evaluation sides from the usable files.

    Files of one role are combined first (ids re-keyed by content, so a passage in two files is
    one passage). Without evaluation files the combination is split (``eval_fraction``, ``seed``
    and ``by`` apply); with them the given sides are kept, evaluation searching the passages of all
    files, and checked for leakage.

    Args:
        parts: The usable files, each with its role.
        eval_fraction: Share of questions held out for evaluation (split only).
        seed: Random seed (split only): the same seed gives the same split.
        by: What stays together: one of ``core.ingest.splits.SPLIT_MODES`` (split only).
        dismissed: :attr:`Flag.key` of near duplicates the user dismissed: left out of the flags and
            counts, and kept in the report (so they are saved with the dataset).

    Returns:
        The two sides, the split/leakage report and the settings to save.

    Raises:
        DataError: no files, every file marked for evaluation only, or the split is impossible
            (too few questions, bad fraction, unknown mode).
    """
    if not parts:
        raise DataError("There is no usable question file to split: upload one first.")
    mode = split_mode(parts)
    if mode == "no-train":
        raise DataError(NO_TRAINING_FILE)
    trains = merge_datasets([p.dataset for p in parts if p.role != "eval"])
    if mode == "given":
        train, ev = join_train_eval(trains, merge_datasets([p.dataset for p in parts if p.role == "eval"]))
        split = Split(train, ev, leakage_report(train, ev, dismissed), {"by": "given files"})
    else:
        train, ev, rep = split_dataset(trains, eval_fraction, int(seed), by, dismissed)
        split = Split(train, ev, rep, {"by": by, "eval_fraction": eval_fraction, "seed": int(seed)})
    logger.info("%s", split.report.summary())
    return split


# --------------------------------------------------------------------------- save


def default_name(file_names: Sequence[str]) -> str:
    """The dataset name offered before the user types one: the first file's name without extension."""
    return PurePath(file_names[0]).stem if file_names else "my dataset"


def save_split(
    store: Store,
    name: str,
    split: Split,
    parts: Sequence[Part],
    qa_files: Sequence[str] = (),
    documents: Sequence[str] = (),
) -> str:
    """Save the two sides as a named dataset, with the report and metadata the catalog shows.

    Args:
        store: The workspace store.
        name: The dataset name.
        split: From :func:`split_parts`.
        parts: The files the sides came from (their summaries go into the report).
        qa_files: Every question file uploaded (refused ones included), for the metadata.
        documents: Every document uploaded, for the metadata.

    Returns:
        The new dataset's id.

    Raises:
        DataError: empty or taken name, an empty training side, or the dataset could not be written
            (an ``OSError`` such as a full disk, worded for the user; nothing is left behind).
    """
    report = {"files": {p.name: p.summary for p in parts}, "split": split.report.to_dict(), **split.settings}
    meta = {
        "origin": "upload",
        "files": list(qa_files),
        "documents": list(documents),
        "split_by": split.settings.get("by"),
    }
    try:
        ds_id = store.save_dataset(name, split.train, split.eval, report=report, meta=meta)
    except OSError as exc:  # e.g. disk full: the store leaves nothing behind
        raise DataError(
            f"The dataset could not be written to disk ({exc.strerror or exc}); nothing was saved. Free some "
            "space in the workspace folder and save again."
        ) from exc
    logger.info(
        "saved dataset %s (%s): %d train, %d eval questions", name, ds_id, len(split.train), len(split.eval)
    )
    return ds_id


def dismissed_in_report(report: dict) -> set[tuple[str, str]]:
    """:attr:`Flag.key` of the near duplicates dismissed in a saved dataset's report (``report.json``)."""
    split = report.get("split") if isinstance(report, dict) else None
    pairs = split.get("dismissed") if isinstance(split, dict) else None
    return {flag_key(p[0], p[1]) for p in pairs or [] if isinstance(p, list | tuple) and len(p) == 2
            and isinstance(p[0], str) and isinstance(p[1], str)}  # fmt: skip


def dismissed_in_store(store: Store) -> set[tuple[str, str]]:
    """Every near duplicate dismissed in any saved dataset: an expert who said two questions differ is
    not asked again when the same two questions meet in a new upload."""
    out: set[tuple[str, str]] = set()
    for d in store.list_datasets():
        out |= dismissed_in_report(store.dataset_report(d["id"]))
    return out


# --------------------------------------------------------------------------- documents only: a collection


def read_passages(name: str, data: bytes, mapping: dict | None = None, max_tokens: int | None = None) -> PassageFile:
    """Read one passages-only file (or the passages of a question file), with its report.

    See :func:`core.ingest.passages.read_passages_file`.

    Raises:
        DataError: the file is refused.
    """
    return read_passages_file(name, data, mapping=mapping, max_tokens=max_tokens)


def collection_chunks(documents: Sequence[Chunk], passage_files: Sequence[PassageFile]) -> tuple[list[Chunk], list[str]]:
    """The documents' chunks and the passages files' passages as one collection (ids unique, a passage found
    in two files kept once).

    Returns:
        ``(chunks, notes)``: notes say what was merged, with counts.
    """
    by_file: dict[str, list[Chunk]] = {}
    for c in documents:
        by_file.setdefault(c.source, []).append(c)
    return merge_chunks([*by_file.items(), *((pf.name, pf.chunks) for pf in passage_files)])


def save_collection(
    store: Store,
    name: str,
    chunks: Sequence[Chunk],
    documents: Sequence[str] = (),
    passage_files: Sequence[PassageFile] = (),
) -> str:
    """Save passages without questions as a collection (``meta["kind"] == "collection"``): the Questions page
    generates training questions and labels evaluation questions on it (:data:`COLLECTION_NEXT`).

    Args:
        store: The workspace store.
        name: The collection's name.
        chunks: Its passages (:func:`collection_chunks`).
        documents: The document files read, for the metadata.
        passage_files: The passages files read (their report lines go into the report).

    Returns:
        The new dataset's id.

    Raises:
        DataError: empty or taken name, no passage, or the disk refused the write (nothing left behind).
    """
    report = {"files": {pf.name: pf.report.summary() for pf in passage_files},
              "documents": len(documents), "passages": len(chunks)}  # fmt: skip
    meta = {
        "kind": "collection",
        "origin": "upload",
        "files": [pf.name for pf in passage_files],
        "documents": list(documents),
    }
    try:
        ds_id = store.save_dataset(name, collection_dataset(chunks), None, report=report, meta=meta)
    except OSError as exc:
        raise DataError(
            f"The collection could not be written to disk ({exc.strerror or exc}); nothing was saved. Free some "
            "space in the workspace folder and save again."
        ) from exc
    logger.info("saved collection %s (%s): %d passages", name, ds_id, len(chunks))
    return ds_id
