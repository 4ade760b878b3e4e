"""Rows of a pair table -> a :class:`~core.dataset.QADataset` (or questions with answers).

This module owns the conversion of parsed rows (:mod:`core.ingest.tables`) into a dataset:
passages and questions are de-duplicated by their whitespace-normalised text and get stable ids
``q0001`` / ``d0001`` in first-seen order; rows with a blank cell, repeated rows, questions
answered twice and negatives that are also positives are reported as warnings, ten of a kind at
most (:func:`core.ingest.report.capped`). A table with an answer column and no passage column gives
questions and answers instead (the passages come later, from documents).

Optional columns, read when present (:class:`~core.ingest.report.ColumnMapping`): ``passage_id``
(kept as the passage's id when each id names one passage text, so pairs written by
:mod:`core.generate.pairs` line up with an evaluation file over the same passages), ``source``
(the passage's document; in an answer file, the document each answer is in), ``answer`` next to a
passage (``QADataset.answers``) and ``origin`` (``human`` or ``generated...``: ``QADataset.origins``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.dataset import QADataset
from core.ingest.report import ColumnMapping, Problem, cap_where, capped, fail
from core.ingest.tables import Record


def norm_ws(text: str) -> str:
    """Whitespace-normalised text: the key used to de-duplicate passages and questions."""
    return " ".join(text.split())


def as_texts(value: Any) -> list[str]:
    """Cell value -> texts. Lists give several; ``{"text": [...]}`` (SQuAD answers) unwraps."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, bool):
        return [str(value)]
    if isinstance(value, int | float):
        return [] if isinstance(value, float) and math.isnan(value) else [str(value)]
    if isinstance(value, list | tuple):
        return [t for v in value for t in as_texts(v)]
    if isinstance(value, dict) and "text" in value:
        return as_texts(value["text"])
    return [json.dumps(value, ensure_ascii=False)]


class _Ids:
    """First-seen de-duplication of texts by their whitespace-normalised form."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.texts: list[str] = []
        self.first_where: list[str] = []

    def add(self, text: str, where: str) -> int:
        key = norm_ws(text)
        if key not in self.index:
            self.index[key] = len(self.texts)
            self.texts.append(text.strip())
            self.first_where.append(where)
        return self.index[key]

    @staticmethod
    def fmt(prefix: str, n: int) -> Callable[[int], str]:
        width = max(4, len(str(n)))
        ids = [f"{prefix}{i:0{width}d}" for i in range(1, n + 1)]
        return ids.__getitem__


HUMAN_ORIGINS = ("human", "manual", "expert", "labelled", "labeled", "human-labelled", "human-labeled")


@dataclass
class PairRows:
    """What a pair table gives.

    Attributes:
        dataset: The dataset (questions only, no corpus, for answer files), with sources, answers and
            origins when the table has those columns.
        answers: ``{query id: answer}`` for answer files (no passage column).
        where_of: ``{passage id: "row N"}``, where each passage was first seen.
        answer_documents: ``{query id: document}`` for answer files with a source column.
    """

    dataset: QADataset
    answers: dict[str, str] = field(default_factory=dict)
    where_of: dict[str, str] = field(default_factory=dict)
    answer_documents: dict[str, str] = field(default_factory=dict)


def _first_text(rec: dict[str, Any], col: str | None) -> str:
    if not col:
        return ""
    return next((t.strip() for t in as_texts(rec.get(col)) if t.strip()), "")


def _origin(value: str) -> str | None:
    """``human`` / ``generated...`` as ``QADataset.origins`` holds them; None for anything else."""
    low = value.casefold()
    if low in HUMAN_ORIGINS:
        return "human"
    return value if low.startswith("generated") else None


def pairs_to_dataset(records: list[Record], m: ColumnMapping, problems: list[Problem]) -> PairRows:
    """Pair records -> dataset (and, for answer files, answers and their documents).

    Args:
        records: ``(where, {column: value})`` rows, as :func:`core.ingest.tables.parse_table` gives them.
        m: Which column plays which role; without a passage column the answer column is read.
        problems: Where warnings go (blank cells, repeated rows, conflicting answers, negatives that
            are also positives, passage ids naming two passages, unknown origins), ten of a kind at most.

    Returns:
        The :class:`PairRows`.

    Raises:
        DataError: no usable row.
    """
    answer_mode = m.passage is None
    qs, docs = _Ids(), _Ids()
    rel: dict[int, list[int]] = {}
    neg: dict[int, list[int]] = {}
    answers: dict[int, str] = {}
    doc_names: dict[int, str] = {}
    given_ids: dict[int, dict[str, str]] = {}  # passage -> {given id: where}
    sources: dict[int, str] = {}
    origins: dict[int, str] = {}
    seen: dict[tuple, tuple[str, set[str]]] = {}
    empty, dups, conflicts, bad_origins = [], [], [], []

    second = "answer" if answer_mode else "passage"
    second_col = m.answer if answer_mode else m.passage
    for where, rec in records:
        q_raw = as_texts(rec.get(m.query))
        s_raw = as_texts(rec.get(second_col))
        q_ok = [t for t in q_raw if t.strip()]
        s_ok = [t for t in s_raw if t.strip()]
        if not q_ok or not s_ok:
            bad = [
                f"the {role} cell ({col!r}) {'contains only spaces' if any(raw) else 'is empty'}"
                for role, col, raw, ok in (
                    ("question", m.query, q_raw, q_ok),
                    (second, second_col, s_raw, s_ok),
                )
                if not ok
            ]
            empty.append(
                Problem(
                    "warning",
                    f"{cap_where(where)}: {' and '.join(bad)}; the row was skipped. Fill it in or delete the row.",
                    where,
                )
            )
            continue
        q_text = q_ok[0]
        if answer_mode:
            a_text = s_ok[0].strip()
            key: tuple = (norm_ws(q_text), norm_ws(a_text))
            new_negs: set[str] = set()
        else:
            pos = s_ok
            negs = [t for t in as_texts(rec.get(m.negative)) if t.strip()] if m.negative else []
            key = (norm_ws(q_text), tuple(map(norm_ws, pos)))
            new_negs = {norm_ws(t) for t in negs}
        # A row repeats an earlier one when it adds nothing: same question and passage(s)
        # (or answer), and no negative that was not already given for them.
        if key in seen and new_negs <= seen[key][1]:
            dups.append(
                Problem(
                    "warning",
                    f"{cap_where(where)} repeats {seen[key][0]} (same question and {second}); kept once.",
                    where,
                )
            )
            continue
        seen.setdefault(key, (where, set()))[1].update(new_negs)
        qi = qs.add(q_text, where)
        if origin_text := _first_text(rec, m.origin):
            origin = _origin(origin_text)
            if origin is None:
                bad_origins.append(
                    Problem(
                        "warning",
                        f"{cap_where(where)}: origin {origin_text!r} is neither 'human' nor 'generated...'; "
                        "it was not recorded.",
                        where,
                    )
                )
            else:
                origins.setdefault(qi, origin)
        source = _first_text(rec, m.source)
        if answer_mode:
            if qi in answers and norm_ws(answers[qi]) != norm_ws(a_text):
                conflicts.append(
                    Problem(
                        "warning",
                        f"{cap_where(where)}: this question was already answered differently in "
                        f"{qs.first_where[qi]}; the first answer is kept.",
                        where,
                    )
                )
            answers.setdefault(qi, a_text)
            if source:
                doc_names.setdefault(qi, source)
            continue
        if answer := _first_text(rec, m.answer):
            answers.setdefault(qi, answer)
        given = _first_text(rec, m.passage_id)
        for t in pos:
            di = docs.add(t, where)
            if di not in rel.setdefault(qi, []):
                rel[qi].append(di)
            if given:
                given_ids.setdefault(di, {}).setdefault(given, where)
            if source:
                sources.setdefault(di, source)
        for t in negs:
            di = docs.add(t, where)
            if di not in neg.setdefault(qi, []):
                neg[qi].append(di)

    capped(problems, empty, "rows with empty cells")
    capped(problems, dups, "repeated rows")
    capped(problems, conflicts, "questions with several answers")
    capped(problems, bad_origins, "unknown origins")

    qid = _Ids.fmt("q", len(qs.texts))
    did = _doc_ids(docs, given_ids, problems)
    clashes = []
    negatives: dict[str, list[str]] = {}
    for qi, ds in neg.items():
        keep = [d for d in ds if d not in rel.get(qi, [])]
        if len(keep) < len(ds):
            clashes.append(
                Problem(
                    "warning",
                    f"Query {qid(qi)} ({qs.first_where[qi]}): a negative is also given as a relevant passage "
                    "for the same question; it was dropped from the negatives.",
                    f"query {qid(qi)}",
                )
            )
        if keep:
            negatives[qid(qi)] = [did[d] for d in keep]
    capped(problems, clashes, "questions whose negative is also a positive")

    if not qs.texts:
        fail(
            "No usable rows: every row was skipped (see the problems listed). "
            f"Each row needs a question and a {second}.",
        )
    ds = QADataset(
        queries={qid(i): t for i, t in enumerate(qs.texts)},
        corpus={did[i]: t for i, t in enumerate(docs.texts)},
        relevant_docs={qid(qi): [did[d] for d in ds] for qi, ds in rel.items()},
        negatives=negatives,
        sources={did[i]: s for i, s in sources.items()},
        answers={} if answer_mode else {qid(i): a for i, a in answers.items()},
        origins={qid(i): o for i, o in origins.items()},
    )
    return PairRows(
        ds,
        {qid(i): a for i, a in answers.items()} if answer_mode else {},
        {did[i]: w for i, w in enumerate(docs.first_where)},
        {qid(i): d for i, d in doc_names.items()},
    )


def _doc_ids(docs: _Ids, given: dict[int, dict[str, str]], problems: list[Problem]) -> list[str]:
    """Passage ids: the id the table gives when it names this passage alone and the passage has no other
    id; ``d0001``... (first-seen order, skipping ids the table uses) for the rest."""
    owners: dict[str, set[int]] = {}
    for di, ids in given.items():
        for pid in ids:
            owners.setdefault(pid, set()).add(di)
    out: list[str | None] = [None] * len(docs.texts)
    clashes = []
    for di, ids in given.items():
        if len(ids) == 1 and len(owners[next(iter(ids))]) == 1:
            out[di] = next(iter(ids))
            continue
        shared = [pid for pid in ids if len(owners[pid]) > 1]
        why = (f"its id {shared[0]!r} is also given to another passage" if shared
               else f"it is given several ids ({', '.join(repr(p) for p in ids)})")  # fmt: skip
        where = next(iter(ids.values()))
        clashes.append(Problem("warning", f"{cap_where(where)}: {why}; the passage got a new id.", where))
    capped(problems, clashes, "passages whose id is not unique")
    taken = set(owners)
    fmt = _Ids.fmt("d", len(docs.texts) + len(taken))
    n = 0
    for di in range(len(out)):
        if out[di] is None:
            while fmt(n) in taken:
                n += 1
            out[di] = fmt(n)
            n += 1
    return [str(i) for i in out]
