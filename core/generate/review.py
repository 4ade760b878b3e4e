"""Reviewing a generation run's questions and making the kept ones the training split.

The review table (:func:`review_table`) has one row per generated question: whether to keep
it (the filters' verdict until the user changes it), its text (editable), a preview of its
passage, the verdict in words and where the passage came from. The user's choices are saved
in the run folder (``review.json``: keep and text per row, :func:`save_review`), so a
reload finds them. :func:`use_as_training` turns the kept rows into the dataset's training
split (``Store.update_dataset(train=...)``) with every question's origin recorded; the
evaluation split is left as it is, and a question already in it is not trained on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from core.dataset import DataError, generated_ids, merge_splits
from core.generate.filters import normalize
from core.generate.job import load_passages, load_rows
from core.generate.pairs import GeneratedQuestion, build_dataset
from core.workspace.files import atomic_write_json, read_json
from core.workspace.store import Store

logger = logging.getLogger(__name__)

REVIEW_FILE = "review.json"
PREVIEW_CHARS = 160  # passage characters shown in a review row
REVIEW_COLUMNS = ("keep", "question", "passage", "verdict", "source", "passage_id")


def _preview(text: str, n: int = PREVIEW_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def review_table(run_dir: str | Path) -> pd.DataFrame:
    """The review rows of a generation run, with the user's saved choices applied.

    Returns:
        Columns :data:`REVIEW_COLUMNS` (``keep`` bool, ``question`` the current text, ``verdict``
        "passed the filters" or the reasons it was dropped), index 0..n-1 in generation order;
        empty when the run saved no question.
    """
    rows = load_rows(run_dir)
    passages, sources = load_passages(run_dir)
    saved = read_json(Path(run_dir) / REVIEW_FILE, None) or []
    out = []
    for i, r in enumerate(rows):
        choice = saved[i] if i < len(saved) and isinstance(saved[i], dict) else {}
        kept = bool(r.get("kept", True))
        out.append({
            "keep": bool(choice.get("keep", kept)),
            "question": str(choice.get("question", r["question"])),
            "passage": _preview(passages.get(r["passage_id"], "")),
            "verdict": "passed the filters" if kept else (r.get("why") or "dropped"),
            "source": sources.get(r["passage_id"], ""),
            "passage_id": r["passage_id"],
        })
    return pd.DataFrame(out, columns=list(REVIEW_COLUMNS))


def save_review(run_dir: str | Path, table: pd.DataFrame) -> None:
    """Save the user's keep / text choices of ``table`` (rows in :func:`review_table` order)."""
    atomic_write_json(Path(run_dir) / REVIEW_FILE,
                      [{"keep": bool(k), "question": str(q)} for k, q in zip(table["keep"], table["question"])])


def set_keep(table: pd.DataFrame, how: str) -> pd.DataFrame:
    """Bulk choice: ``"passed"`` keeps what passed the filters, ``"all"`` keeps every row, ``"none"`` none."""
    out = table.copy()
    if how == "passed":
        out["keep"] = out["verdict"] == "passed the filters"
    elif how in ("all", "none"):
        out["keep"] = how == "all"
    else:
        raise ValueError(f"unknown bulk choice {how!r}")
    return out


@dataclass
class TrainingSplit:
    """What :func:`use_as_training` wrote.

    Attributes:
        questions: Questions in the new training split.
        edited: Of those, questions whose text the user changed.
        left_out: Kept rows not used because the question is in the evaluation split (or empty).
        replaced: Training questions the split held before.
    """

    questions: int
    edited: int
    left_out: int
    replaced: int


def use_as_training(store: Store, dataset_id: str, run_id: str, table: pd.DataFrame,
                    keep_labelled: bool = False) -> TrainingSplit:
    """Make the kept rows of ``table`` the dataset's training split (origins recorded); with ``keep_labelled``
    add them to the split's labelled questions instead (those not generated: a person's, or uploaded), so one
    run can train on both (``FullSettings.generated_per_labelled`` sets the mix).

    The split's corpus is every passage of the run's collection (questions' derived positives
    added, see :func:`core.generate.pairs.build_dataset`), so passages without a question stay
    as distractors. Questions equal to an evaluation question (ignoring case and punctuation)
    and empty ones are left out. The user's choices are saved with the run too.

    Args:
        store: The workspace.
        dataset_id: The dataset to update.
        run_id: The generation run the rows come from.
        table: :func:`review_table` rows with the user's edits (same length and order).

    Returns:
        The counts (:class:`TrainingSplit`; ``replaced``: the training questions no longer in the split).

    Raises:
        DataError: nothing kept, or a table that does not match the run.
    """
    run_dir = store.run_dir(run_id)
    rows = load_rows(run_dir)
    if len(rows) != len(table):
        raise DataError(f"The review table has {len(table)} rows but the run has {len(rows)} questions: reload "
                        "the page.")
    save_review(run_dir, table)
    passages, sources = load_passages(run_dir)
    train, ev = store.load_dataset(dataset_id)
    in_eval = {normalize(t) for t in (ev.queries.values() if ev is not None else [])}
    chosen: list[GeneratedQuestion] = []
    edited = left_out = 0
    for r, keep, text in zip(rows, table["keep"], table["question"]):
        if not keep:
            continue
        text = " ".join(str(text).split())
        if not text or normalize(text) in in_eval:
            left_out += 1
            continue
        edited += text != r["question"]
        chosen.append(GeneratedQuestion(text, r["passage_id"], r["origin"], r.get("positive"), r.get("positive_tag")))
    if not chosen:
        raise DataError("No question is kept: tick 'keep' on the questions to train on.")
    new = build_dataset(chosen, passages, sources)
    ds = new.dataset
    ds.origins = dict(new.origins)
    kept: list[str] = []
    if keep_labelled:
        generated = set(generated_ids(train))  # once, not once per question
        kept = [q for q in train.query_ids if q not in generated]
    if kept:  # the labelled questions, their passages and answers kept; the generated ones added
        labelled = train.subset(kept)
        clash = set(kept) & set(ds.queries)
        if clash:
            raise DataError(f"{len(clash)} labelled question id(s) clash with generated ones (e.g. {sorted(clash)[0]})"
                            ": use the kept questions as the training split instead, or rename those ids.")
        ds = merge_splits(labelled, ds)
    store.update_dataset(dataset_id, train=ds, meta={"training_questions_from": run_id,
                                                     "training_question_origins": new.origin_counts(),
                                                     "training_labelled_kept": len(kept)})
    logger.info("dataset %s: %d generated training questions from run %s (%d labelled kept)", dataset_id,
                len(chosen), run_id, len(kept))
    return TrainingSplit(len(chosen) + len(kept), edited, left_out, len(train) - len(kept))
