"""What reading a question file found: the report types, and the helpers that word problems.

:class:`Problem` (one thing found, with where it is), :class:`ColumnMapping` (which column plays
which role; :class:`PassageMapping` for passages-only files), :class:`ValidationReport` (what was
read and every problem) and :class:`LoadResult` (dataset + report) are shared by the table readers
(:mod:`core.ingest.tables`, :mod:`core.ingest.passages`), the IR JSON / BEIR reader
(:mod:`core.ingest.irjson`) and the entry points in :mod:`core.ingest.qafiles`, which re-exports them.

Errors: :func:`refuse` and :func:`fail` raise :class:`core.dataset.DataError`; its message is the
first error (plus how many more like it), ``.problems`` the message of every error found. Anything
merely suspicious is a ``"warning"`` Problem in the report of a successful load; :func:`capped`
keeps a long run of one kind of warning readable.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from core.dataset import DataError, QADataset

# Problems of one kind listed one by one before a single "... and N more" line: enough to
# find the pattern, few enough for the page to stay readable.
MAX_LISTED = 10
# Ids quoted inside one message (missing qrels ids, column names).
MAX_IDS_IN_MESSAGE = 8


@dataclass
class Problem:
    """One thing found while reading a file.

    Attributes:
        level: ``"error"`` (the file is refused) or ``"warning"`` (loaded, but look at this).
        message: Plain words, starting with where: what is wrong and what to do.
        where: The place on its own, e.g. ``"row 14"``, ``"query q12"``,
            ``"qrels/test.tsv line 3"``; None when it concerns the whole file.
    """

    level: str
    message: str
    where: str | None = None

    def __str__(self) -> str:
        return self.message


@dataclass
class ColumnMapping:
    """Which column of a pair table plays which role.

    Attributes:
        query: Column holding the questions.
        passage: Column holding the relevant passage.
        negative: Optional column holding a hard negative passage.
        answer: Optional column holding an answer: without a passage column the answers are linked
            to documents; with one, they are kept as each question's answer (``QADataset.answers``).
        confident: False when detection was unsure (a role missing, or two columns
            matching one role): the UI should ask the user.
        passage_id: Optional column holding the passage's id, kept as its id when each id names one
            passage text (so pairs line up with an evaluation file over the same passages).
        source: Optional column naming the document a row comes from: the passage's source, or, in
            a file of answers, the document each answer should be found in.
        origin: Optional column saying who wrote each question: ``human`` or ``generated...``.
    """

    query: str | None
    passage: str | None
    negative: str | None = None
    answer: str | None = None
    confident: bool = True
    passage_id: str | None = None
    source: str | None = None
    origin: str | None = None


@dataclass
class PassageMapping:
    """Which column of a passages-only table plays which role.

    Attributes:
        text: Column holding the passage text.
        id: Optional column holding each passage's id (kept when unique).
        source: Optional column naming the document a passage comes from (a file name, a title, a URL).
        metadata: Optional column holding a JSON object per row (a vector store's metadata), read for a
            source (and for the text when there is no text column).
        confident: False when detection was unsure: the UI should ask the user.
    """

    text: str | None
    id: str | None = None
    source: str | None = None
    metadata: str | None = None
    confident: bool = True


@dataclass
class ValidationReport:
    """What was read and what looked wrong.

    Attributes:
        format: ``"csv"``, ``"tsv"``, ``"jsonl"``, ``"json-pairs"``, ``"parquet"``, ``"ir-json"`` or
            ``"beir"``.
        n_rows: Data rows read (pair tables) or relevance judgements read (IR JSON, BEIR).
        n_queries: Questions in the dataset.
        n_passages: Passages in the corpus.
        n_pairs: (question, relevant passage) pairs in the dataset.
        mapping: The column mapping used (tables only: a :class:`ColumnMapping` for pairs, a
            :class:`PassageMapping` for passages-only files).
        problems: Every problem found (warnings only, for a file that loaded).
        encoding: The text encoding used (e.g. ``"utf-8"``, ``"cp1252"``); None for Parquet.
        n_answers: Questions with an answer (answer-only files).
        passages_only: A file of passages without questions (:mod:`core.ingest.passages`).
    """

    format: str
    n_rows: int
    n_queries: int
    n_passages: int
    n_pairs: int
    mapping: ColumnMapping | PassageMapping | None
    problems: list[Problem]
    encoding: str | None = None
    n_answers: int = 0
    passages_only: bool = False

    @property
    def errors(self) -> list[Problem]:
        """Problems that refuse the file."""
        return [p for p in self.problems if p.level == "error"]

    @property
    def warnings(self) -> list[Problem]:
        """Problems worth a look that did not stop the load."""
        return [p for p in self.problems if p.level == "warning"]

    def summary(self) -> str:
        """One line, e.g. ``"812 rows -> 790 questions, 395 passages; 2 warnings"``."""
        unit = "rows" if self.format in ("csv", "tsv", "jsonl", "json-pairs", "parquet") else "judgements"
        if self.n_rows == 1:
            unit = unit[:-1]
        what = f"{self.n_queries} question{'s' if self.n_queries != 1 else ''}, "
        if self.passages_only:
            what = f"{self.n_passages:,} passage{'s' if self.n_passages != 1 else ''}, no questions"
        elif self.n_passages == 0 and self.n_answers:
            what += f"{self.n_answers} answer{'s' if self.n_answers != 1 else ''}, no passages"
        else:
            what += f"{self.n_passages} passage{'s' if self.n_passages != 1 else ''}"
        n_warn, n_err = len(self.warnings), len(self.errors)
        tail = f"{n_warn} warning{'s' if n_warn != 1 else ''}" if n_warn else "no warnings"
        if n_err:
            tail = f"{n_err} error{'s' if n_err != 1 else ''}, " + tail
        return f"{self.n_rows} {unit} -> {what}; {tail}"


@dataclass
class LoadResult:
    """A loaded dataset and its report.

    Attributes:
        dataset: The dataset. For answer-only files: queries filled, corpus and
            relevant_docs empty (passages come later, e.g. from documents).
        report: What was read and what looked wrong.
        answers: Query id -> answer text, when the file gives answers instead of passages.
        answer_documents: Query id -> the document the file names for that answer (its source column),
            when the file gives answers and names their documents.
    """

    dataset: QADataset
    report: ValidationReport
    answers: dict[str, str] = field(default_factory=dict)
    answer_documents: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- wording problems


def refuse(problems: list[Problem]) -> NoReturn:
    """Raise DataError carrying every error in ``problems``."""
    errors = [p for p in problems if p.level == "error"]
    msg = errors[0].message
    if len(errors) > 1:
        msg += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''} like this)"
    raise DataError(msg, problems=[p.message for p in errors])


def fail(message: str, where: str | None = None) -> NoReturn:
    """Raise DataError for one error ``message`` found at ``where``."""
    refuse([Problem("error", message, where)])


def cap_where(where: str) -> str:
    """ "row 5" -> "Row 5" at the start of a message; file names keep their case."""
    return where[:1].upper() + where[1:] if where.startswith(("row ", "line ", "item ")) else where


def quote_list(items: Iterable[str], limit: int = MAX_IDS_IN_MESSAGE) -> str:
    """``'a', 'b' and 3 more``: the first ``limit`` items quoted, then how many are left."""
    items = list(items)
    shown = ", ".join(repr(str(i)) for i in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def capped(problems: list[Problem], found: list[Problem], what: str) -> None:
    """Append the first MAX_LISTED of ``found`` and one line summing up the rest."""
    problems.extend(found[:MAX_LISTED])
    if len(found) > MAX_LISTED:
        rest = len(found) - MAX_LISTED
        problems.append(Problem(found[0].level, f"... and {rest} more {what}."))


def json_msg(e: json.JSONDecodeError) -> str:
    """The decoder's message without a trailing "at" ("Unterminated string starting at"), which
    the caller's own "at column N" would otherwise double."""
    return e.msg.removesuffix(" at")


def describe(obj: Any) -> str:
    """A parsed JSON value in words, e.g. "an object with keys 'rows', 'version'"."""
    if isinstance(obj, dict):
        keys = list(obj)
        return f"an object with keys {quote_list(keys)}" if keys else "an empty object"
    if isinstance(obj, list):
        return f"a list of {len(obj)} items" if obj else "an empty list"
    return f"a {type(obj).__name__} ({str(obj)[:40]!r})"
