"""The expert's relevance judgments of a dataset: every passage shown for a labelled question, relevant or not.

A label (:func:`core.generate.labels.add_label`) keeps only the relevant passages, in the
evaluation split. Judgments keep what was looked at too, and how each passage was found, so that
what a system finds later can be told apart from what nobody judged (pooling bias: candidates
from one system only make that system look perfect on its own labels).

File: ``datasets/<id>/judgments.json`` (written atomically, owner-only, like the splits)::

    {question_id: {passage_id: {"relevant": bool, "found_by": [system, ...], "at": unix time}}}

``found_by`` names how the expert came to see the passage: ``"bm25"``, ``"base"`` (the base
model), ``"tuned:<run id>"`` (a tuned model), each system that ranked it within the depth shown;
``"more"`` when it was revealed by "show more" (deeper than the first page of every system);
``"search"`` when the expert found it with the free-text search; ``"earlier"`` for a relevant
passage of a label saved before judgments were kept; ``"run:<run id>:<role>"`` for a passage of a
finished run's top 10 judged after the run (``core.insight.judging``: "judge the new finds").

API:

* :func:`load_judgments` (store, dataset id) -> the whole dict (``{}`` when none yet).
* :func:`record_judgments` (store, dataset id, question id, {passage id: (relevant, found_by)}):
  merge one question's judgments. A later judgment of a passage replaces the earlier one
  (relevance and time); ``found_by`` accumulates (earlier names first).
* :func:`judged_ids` (judgments, question id) -> the set of passages judged for it.
* :func:`drop_judgments` (store, dataset id, question id): forget a question (a removed label).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence

from core.dataset import DataError
from core.workspace.files import atomic_write_json, read_json
from core.workspace.store import Store

logger = logging.getLogger(__name__)

FILE = "judgments.json"
_lock = threading.Lock()  # read-modify-write of one file by the page's threads (sessions share a store)


def _path(store: Store, dataset_id: str):
    store.get_dataset(dataset_id)  # KeyError for an unknown dataset
    return store.dataset_dir(dataset_id) / FILE


def load_judgments(store: Store, dataset_id: str) -> dict[str, dict[str, dict]]:
    """All judgments of a dataset: {question id: {passage id: {relevant, found_by, at}}}.

    Raises:
        KeyError: no such dataset.
        DataError: the file is not valid JSON or not of that shape (it is left as it is).
    """
    path = _path(store, dataset_id)
    try:
        data = read_json(path, {})
    except ValueError as exc:
        raise DataError(f"{path} is not valid JSON ({exc}): fix it or delete it (the labels in the evaluation "
                        "split are not affected).") from exc
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise DataError(f"{path} does not hold judgments ({{question: {{passage: {{relevant, found_by, at}}}}}}): "
                        "fix it or delete it (the labels in the evaluation split are not affected).")
    return data


def judged_ids(judgments: Mapping[str, Mapping[str, dict]], question_id: str) -> set[str]:
    """The passages judged (relevant or not) for ``question_id`` in ``judgments`` (:func:`load_judgments`)."""
    return set(judgments.get(question_id, {}))


def record_judgments(store: Store, dataset_id: str, question_id: str,
                     judged: Mapping[str, tuple[bool, Sequence[str]]]) -> None:
    """Merge one question's judgments into the dataset's file.

    Args:
        store: The workspace.
        dataset_id: The dataset.
        question_id: The question's id in the evaluation split.
        judged: Passage id -> (relevant, found_by). A passage judged before gets this judgment
            (relevance, time) instead; its ``found_by`` names are kept and the new ones added.

    Raises:
        KeyError: no such dataset.
        DataError: an empty question or passage id, a relevance that is not True/False, or
            ``found_by`` not a list of names.
    """
    if not isinstance(question_id, str) or not question_id.strip():
        raise DataError("A judgment needs the question's id.")
    for pid, value in judged.items():
        if not isinstance(pid, str) or not pid:
            raise DataError(f"A judgment of question {question_id} has an empty passage id.")
        if not (isinstance(value, tuple | list) and len(value) == 2 and isinstance(value[0], bool)
                and not isinstance(value[1], str) and all(isinstance(s, str) and s for s in value[1])):
            raise DataError(f"The judgment of passage {pid} for question {question_id} must be (relevant: True or "
                            f"False, found_by: a list of names), not {value!r}.")
    if not judged:
        return
    now = time.time()
    with _lock:
        data = load_judgments(store, dataset_id)
        mine = data.setdefault(question_id, {})
        for pid, (relevant, found_by) in judged.items():
            before = mine.get(pid, {}).get("found_by", [])
            mine[pid] = {"relevant": relevant, "found_by": list(dict.fromkeys([*before, *found_by])), "at": now}
        atomic_write_json(store.dataset_dir(dataset_id) / FILE, data)
    logger.info("judgments of %s in %s: %d recorded (%d relevant)", question_id, dataset_id, len(judged),
                sum(bool(v[0]) for v in judged.values()))


def drop_judgments(store: Store, dataset_id: str, question_id: str) -> None:
    """Forget every judgment of ``question_id`` (nothing happens when it has none)."""
    with _lock:
        data = load_judgments(store, dataset_id)
        if data.pop(question_id, None) is not None:
            atomic_write_json(store.dataset_dir(dataset_id) / FILE, data)
