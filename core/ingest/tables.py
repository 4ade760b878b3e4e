"""Pair tables: CSV, TSV, JSONL and JSON lists of (question, passage[, negative]) or (question, answer) rows.

This module owns reading such a table once it is text (decoding is :mod:`core.ingest.decoding`):

* the delimiter (:func:`pick_delimiter`: the one giving the most header cells) and the rows
  (:func:`parse_table`; row numbers count the header as row 1, as a spreadsheet shows them);
* JSONL lines (:func:`parse_jsonl`, also used for BEIR's corpus.jsonl and queries.jsonl);
* which column plays which role (:func:`detect_columns` by name, :func:`resolve_mapping` for a
  mapping the user chose);
* the rows become a dataset in :mod:`core.ingest.pairs`.

Errors: :class:`core.dataset.DataError` (via :func:`core.ingest.report.refuse`) for a table that
cannot be used: stray quotes, ragged rows, no header, no data row, columns not found.
"""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

from core.ingest.report import (
    ColumnMapping,
    Problem,
    cap_where,
    describe,
    fail,
    json_msg,
    quote_list,
    refuse,
)

ROLE_CANDIDATES: dict[str, tuple[str, ...]] = {
    # Compared with column names lower-cased and without spaces, underscores or hyphens;
    # a trailing "s" is also accepted ("questions", "negatives"). Earlier = preferred.
    "query": ("query", "question", "anchor", "q", "prompt"),
    "passage": ("passage", "context", "positive", "document", "doc", "text", "chunk", "pos"),
    "negative": ("negative", "hardnegative", "neg"),
    "answer": ("answer", "answers", "response"),
}
ROLES = ("query", "passage", "negative", "answer")
# The csv module refuses cells over 128 KiB by default; whole documents pasted into one
# cell are legitimate (and then reported as too long), so allow up to 50 MB.
MAX_CSV_CELL_CHARS = 50_000_000
# Characters looked at when guessing the delimiter.
SNIFF_CHARS = 64 * 1024
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}

Record = tuple[str, dict[str, Any]]  # (where, e.g. "row 5", {column: value})


def _norm_col(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", str(name)).lower()


# --------------------------------------------------------------------------- columns


def _role_matches(columns: list[str], role: str) -> list[str]:
    cands = ROLE_CANDIDATES[role]
    ranked: list[tuple[int, int, str]] = []
    for pos, col in enumerate(columns):
        n = _norm_col(col)
        for rank, c in enumerate(cands):
            if n == c or n == c + "s":
                ranked.append((rank, pos, col))
                break
    return [col for _, _, col in sorted(ranked)]


def detect_columns(columns: list[str]) -> ColumnMapping:
    """Guess which columns hold questions, passages, negatives and answers.

    Names are compared case-insensitively, ignoring spaces, underscores and hyphens,
    against :data:`ROLE_CANDIDATES`; a plural ``s`` is accepted.

    Args:
        columns: Column names as they appear in the file.

    Returns:
        The best mapping. ``confident`` is False when no question column, or neither a
        passage nor an answer column, was found, or when two columns match one role
        (the preferred candidate is then chosen and the UI should ask).
    """
    found = {role: _role_matches(list(columns), role) for role in ROLES}
    pick = {role: (m[0] if m else None) for role, m in found.items()}
    confident = (
        pick["query"] is not None
        and (pick["passage"] is not None or pick["answer"] is not None)
        and all(len(m) <= 1 for m in found.values())
    )
    return ColumnMapping(pick["query"], pick["passage"], pick["negative"], pick["answer"], confident)


def resolve_mapping(
    columns: list[str], mapping: ColumnMapping | dict | None, problems: list[Problem]
) -> ColumnMapping:
    """The mapping to use for ``columns``: detected, or the caller's checked against the file.

    Args:
        columns: The table's column names.
        mapping: None (detect), a ColumnMapping, or a dict naming some roles (the rest keep the
            detected column; a role mapped to None is not used). Names match loosely (case, spaces).
        problems: Where a warning goes when detection is ambiguous.

    Returns:
        The mapping, with every named column present in ``columns``.

    Raises:
        DataError: no question column, neither a passage nor an answer column, an unknown role,
            or a column that is not in the file.
    """
    detected = detect_columns(columns)
    cols_txt = quote_list(columns, limit=30)
    if mapping is None:
        m = detected
        missing = []
        if m.query is None:
            missing.append(
                "the question column (name it one of: " + ", ".join(ROLE_CANDIDATES["query"]) + ")"
            )
        if m.passage is None and m.answer is None:
            missing.append(
                "the passage column (name it one of: "
                + ", ".join(ROLE_CANDIDATES["passage"])
                + "; or give answers in a column named answer or response)"
            )
        if missing:
            fail(
                f"Could not tell which column is {' or '.join(missing)}. Columns found: {cols_txt}. "
                "Rename the columns, or choose them by hand."
            )
        for role in ROLES:
            matches = _role_matches(columns, role)
            if len(matches) > 1:
                problems.append(
                    Problem(
                        "warning",
                        f"Columns {quote_list(matches)} could all be the {role} column; used "
                        f"{matches[0]!r}. Choose the column by hand if that is wrong.",
                    )
                )
        return m

    if isinstance(mapping, dict):
        unknown = [k for k in mapping if k not in ROLES]
        if unknown:
            fail(f"Unknown mapping key(s) {quote_list(unknown)}; use query, passage, negative, answer.")
        base = {r: getattr(detected, r) for r in ROLES}
        base.update({k: (v or None) for k, v in mapping.items()})
        wanted = ColumnMapping(**base)
    else:
        wanted = ColumnMapping(mapping.query, mapping.passage, mapping.negative, mapping.answer)

    resolved: dict[str, str | None] = {}
    for role in ROLES:
        name = getattr(wanted, role)
        if name is None:
            resolved[role] = None
            continue
        if name in columns:
            resolved[role] = name
            continue
        loose = [c for c in columns if _norm_col(c) == _norm_col(name)]
        if len(loose) == 1:
            resolved[role] = loose[0]
            continue
        fail(f"The {role} column {name!r} is not in the file. Available columns: {cols_txt}.")
    if resolved["query"] is None:
        fail(f"The mapping names no question column. Available columns: {cols_txt}.")
    if resolved["passage"] is None and resolved["answer"] is None:
        fail(f"The mapping names neither a passage nor an answer column. Available columns: {cols_txt}.")
    return ColumnMapping(resolved["query"], resolved["passage"], resolved["negative"], resolved["answer"])


# --------------------------------------------------------------------------- parsing


def pick_delimiter(text: str, preferred: str | None) -> str:
    """The delimiter giving the most header cells; csv.Sniffer breaks ties.

    Args:
        text: The table's text (only its start is looked at).
        preferred: The extension's delimiter (``","`` for .csv, tab for .tsv), or None.

    Returns:
        One of comma, tab, semicolon, pipe.
    """
    first = next((ln for ln in text[:SNIFF_CHARS].splitlines() if ln.strip()), "")
    counts = {}
    for d in (",", "\t", ";", "|"):
        try:
            counts[d] = len(next(csv.reader([first], delimiter=d)))
        except (csv.Error, StopIteration):
            counts[d] = 0
    best = max(counts.values())
    tied = [d for d, n in counts.items() if n == best]
    if best <= 1:
        return preferred or ","
    if len(tied) == 1:
        return tied[0]
    if preferred in tied:
        return preferred
    try:
        return csv.Sniffer().sniff(text[:SNIFF_CHARS], delimiters="".join(tied)).delimiter
    except csv.Error:
        return tied[0]


def parse_table(text: str, delimiter: str, problems: list[Problem]) -> tuple[list[str], list[Record]]:
    """CSV/TSV text -> column names and records. Row numbers count the header as row 1.

    Raises:
        DataError: unclosed or stray quotes, ragged rows, empty file, header only.
    """
    csv.field_size_limit(max(csv.field_size_limit(), MAX_CSV_CELL_CHARS))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    header: list[str] | None = None
    records: list[Record] = []
    ragged: list[Problem] = []
    row = 0
    dname = _DELIMITER_NAMES.get(delimiter, repr(delimiter))
    while True:
        start_line = reader.line_num + 1
        try:
            rec = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            where = f"row {row + 1}"
            if "end of data" in str(e) or "EOF" in str(e):
                fail(
                    f"Row {row + 1} (line {start_line}): a double quote opened here is never closed, so "
                    "the rest of the file would be read as one cell. Close the quote, or write it twice "
                    '("") if it is part of the text.',
                    where,
                )
            lines = (
                f"line {start_line}"
                if reader.line_num <= start_line
                else f"lines {start_line}-{reader.line_num}"
            )
            fail(
                f"Row {row + 1} ({lines}): badly placed double quote ({e}). A cell that "
                'contains quotes must be wrapped in quotes, with each inner quote written twice ("").',
                where,
            )
        row += 1
        if not any(c.strip() for c in rec):
            continue
        if header is None:
            header = []
            for i, name in enumerate(rec):
                name = name.strip() or f"column {i + 1}"
                if name in header:
                    problems.append(
                        Problem(
                            "warning",
                            f"Row 1: column {name!r} appears twice; the first one is used.",
                            "row 1",
                        )
                    )
                header.append(name)
            continue
        if len(rec) != len(header):
            extra_blank = len(rec) > len(header) and not any(c.strip() for c in rec[len(header) :])
            if not extra_blank:
                where = f"row {row}"
                ragged.append(
                    Problem(
                        "error",
                        f"Row {row} (line {start_line}) has {len(rec)} cells but the header has "
                        f"{len(header)}. A {dname} inside a question or passage must be inside double "
                        "quotes; fix that row.",
                        where,
                    )
                )
                continue
        values: dict[str, Any] = {}
        for name, cell in zip(header, rec, strict=False):
            values.setdefault(name, cell)
        records.append((f"row {row}", values))
    if ragged:
        refuse(ragged)
    if header is None:
        fail(
            "The file is empty. Upload a table with a header row (e.g. question, passage) and one row per pair."
        )
    if not records:
        fail(f"The file has a header row ({quote_list(header)}) but no data rows below it.")
    return list(dict.fromkeys(header)), records


def parse_jsonl(text: str, label: str, what: str = "a JSON object") -> list[tuple[int, Any]]:
    """JSONL text -> (line number, object) for each non-blank line.

    Raises:
        DataError: a line that is not valid JSON or not an object (every such line is listed).
    """
    out: list[tuple[int, Any]] = []
    bad: list[Problem] = []
    for i, line in enumerate(text.split("\n"), 1):
        line = line.strip()
        if not line:
            continue
        where = f"{label} line {i}" if label else f"line {i}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            bad.append(
                Problem(
                    "error",
                    f"{cap_where(where)} is not valid JSON ({json_msg(e)} at column {e.colno}). Each line "
                    f'must be {what} on its own, e.g. {{"question": "...", "passage": "..."}}.',
                    where,
                )
            )
            continue
        if not isinstance(obj, dict):
            bad.append(Problem("error", f"{cap_where(where)} is {describe(obj)}; expected {what}.", where))
            continue
        out.append((i, obj))
    if bad:
        refuse(bad)
    return out


def columns_of(records: list[Record]) -> list[str]:
    """Every key of JSON records, in first-seen order (the columns of a JSON or JSONL table)."""
    cols: dict[str, None] = {}
    for _, rec in records:
        for k in rec:
            cols.setdefault(str(k), None)
    return list(cols)
