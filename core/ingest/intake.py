"""The Data page's intake flow as plain functions: uploaded files in, a saved train/eval dataset out.

The page (``pages/1_Data.py``) draws widgets and calls these, in order:

1. :func:`read_qa_file` reads one question file with its report (:func:`problem_text` words a
   problem for display; :func:`pairs_preview` / :func:`answers_preview` give the first rows);
2. a file that gives answers instead of passages (:func:`needs_documents`) is linked to the
   uploaded documents' chunks by :func:`link_to_documents`;
3. each usable file becomes a :class:`Part` with a role (:func:`guess_role` proposes one);
4. :func:`split_parts` combines the files of each role (``core.dataset.merge_datasets``) and either
   splits them (``core.ingest.splits.split_dataset``) or, when files are marked for evaluation,
   joins the given train and eval files (``core.dataset.join_train_eval``) and checks them for
   leakage (``core.ingest.splits.leakage_report``); :meth:`Split.leak_rows` lists the questions
   that sit on both sides;
5. :func:`save_split` writes the dataset with the report and metadata the catalog shows.

Nothing here touches Streamlit. Errors are :class:`core.dataset.DataError` with a message for the user.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, Literal

from core.dataset import DataError, QADataset, join_train_eval, merge_datasets
from core.ingest.chunking import Chunk
from core.ingest.linking import AnswerLink, link_answers
from core.ingest.qafiles import LoadResult, Problem, load_qa_file
from core.ingest.splits import SplitReport, leakage_report, split_dataset

if TYPE_CHECKING:
    from core.store import Store

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


# --------------------------------------------------------------------------- answers -> passages


@dataclass
class Linked:
    """A file of questions with answers, linked to document chunks.

    Attributes:
        dataset: Linked questions, every chunk as corpus, chunk sources.
        links: One :class:`~core.ingest.linking.AnswerLink` per question (then per answer without one).
        rows: One row per link for display: question, answer, "linked passage from" (the chunk's source,
            or the rejected candidate's), "how" (the method) and confidence.
    """

    dataset: QADataset
    links: list[AnswerLink]
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def n_linked(self) -> int:
        """Answers linked to a passage (the questions kept)."""
        return sum(link.linked for link in self.links)


def link_to_documents(loaded: LoadResult, chunks: Sequence[Chunk], model: Any = None) -> Linked:
    """Link the answers of a question file to the chunks that hold them.

    Args:
        loaded: A file for which :func:`needs_documents` is true.
        chunks: The uploaded documents' chunks (``DocumentSet.chunks``).
        model: Optional SentenceTransformer for matching answers by meaning as a last resort.

    Returns:
        The linked dataset, every link, and the rows of the link table.

    Raises:
        DataError: there are no chunks.
    """
    ds, links = link_answers(loaded.dataset.queries, loaded.answers, chunks, model=model)
    labels = {c.id: c.label for c in chunks}
    rows = [
        {
            "question": loaded.dataset.queries.get(lk.query_id, ""),
            "answer": loaded.answers.get(lk.query_id, ""),
            "linked passage from": labels.get(lk.chunk_id or lk.candidate_id or "", ""),
            "how": lk.method,
            "confidence": lk.confidence,
        }
        for lk in links
    ]
    return Linked(ds, links, rows)


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
        tq, eq = self.train.queries, self.eval.queries
        rows = [(tq.get(t, ""), eq.get(e, ""), 1.0) for t, e in self.report.exact_duplicates]
        rows += [(tq.get(t, ""), eq.get(e, ""), s) for t, e, s in self.report.near_duplicates]
        return rows


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
    parts: Sequence[Part], eval_fraction: float = 0.2, seed: int = 42, by: str = "passage"
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
        split = Split(train, ev, leakage_report(train, ev), {"by": "given files"})
    else:
        train, ev, rep = split_dataset(trains, eval_fraction, int(seed), by)
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
