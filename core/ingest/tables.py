"""Tables: CSV, TSV, JSONL, JSON lists and Parquet, as rows of (question, passage[, negative]) or
(question, answer) pairs, or of passages alone (:mod:`core.ingest.passages`).

This module owns reading such a table (decoding text is :mod:`core.ingest.decoding`):

* the delimiter (:func:`pick_delimiter`: the one giving the most header cells) and the rows
  (:func:`parse_table`; row numbers count the header as row 1, as a spreadsheet shows them);
* JSONL lines (:func:`parse_jsonl`, also used for BEIR's corpus.jsonl and queries.jsonl);
* Parquet files (:func:`parse_parquet`; pyarrow is imported only then);
* which column plays which role (:func:`detect_columns` by name, and by content where a name is
  ambiguous: a ``document`` column of file names is a source, not a passage; :func:`resolve_mapping`
  for a mapping the user chose; :func:`match_columns` for other role lists);
* the rows become a dataset in :mod:`core.ingest.pairs`.

Errors: :class:`core.dataset.DataError` (via :func:`core.ingest.report.refuse`) for a table that
cannot be used: stray quotes, ragged rows, no header, no data row, columns not found, a damaged or
oversized Parquet file.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from typing import Any, NoReturn

from core.csvsafe import unguard
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
    # Optional, read when present (core.generate.pairs writes passage_id, source and origin):
    "passage_id": ("passageid", "docid", "documentid", "corpusid", "chunkid", "contextid", "positiveid", "pid"),
    "source": ("source", "file", "filename", "sourcefile", "sourcedocument", "documentname", "docname",
               "filepath", "path"),
    "origin": ("origin", "questionorigin"),
}
ROLES = ("query", "passage", "negative", "answer", "passage_id", "source", "origin")
# A column whose values are mostly short labels (file names, titles) holds names, not passages: at
# least this share of its non-blank sampled values must be at most NAME_MAX_CHARS on one line, with
# a file extension or at most NAME_MAX_WORDS words.
NAME_SHARE = 0.9
NAME_MAX_CHARS = 120
NAME_MAX_WORDS = 3
SAMPLE_ROWS = 200  # rows looked at when judging a column by its values
# Column names that may hold either a passage or the name of a document: judged by their values.
EITHER_TEXT_OR_NAME = ("document", "doc")
# Parquet compresses well: refuse a file whose columns would expand past this in memory.
MAX_PARQUET_EXPANDED_BYTES = 500_000_000
_EXTENSION = re.compile(r"\.[A-Za-z][A-Za-z0-9]{0,4}$")
# The csv module refuses cells over 128 KiB by default; whole documents pasted into one
# cell are legitimate (and then reported as too long), so allow up to 50 MB.
MAX_CSV_CELL_CHARS = 50_000_000
# Characters looked at when guessing the delimiter.
SNIFF_CHARS = 64 * 1024
# Bad JSONL lines listed before reading stops and the file is refused: enough to see the pattern. Building a
# message for every bad line of a big file (millions of lines of junk) once took gigabytes.
MAX_BAD_LINES = 30
# Rows (CSV/TSV rows, JSONL lines, JSON items) in one file: a 50 MB file of one-word rows is ~12 million of
# them, gigabytes once parsed into Python objects. A million pairs is already days of training on CPU.
MAX_ROWS = 1_000_000
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}

Record = tuple[str, dict[str, Any]]  # (where, e.g. "row 5", {column: value})


def _norm_col(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", str(name)).lower()


# --------------------------------------------------------------------------- columns


def match_columns(columns: list[str], candidates: tuple[str, ...]) -> list[str]:
    """The columns whose name is one of ``candidates``, best first.

    Args:
        columns: Column names as they appear in the file.
        candidates: Names lower-cased without spaces, underscores or hyphens, preferred first; a
            column name may add a plural ``s``.

    Returns:
        Matching columns, ordered by candidate rank, then by position in the file.
    """
    ranked: list[tuple[int, int, str]] = []
    for pos, col in enumerate(columns):
        n = _norm_col(col)
        for rank, c in enumerate(candidates):
            if n == c or n == c + "s":
                ranked.append((rank, pos, col))
                break
    return [col for _, _, col in sorted(ranked)]


def _role_matches(columns: list[str], role: str) -> list[str]:
    return match_columns(columns, ROLE_CANDIDATES[role])


def looks_like_names(values: list[Any]) -> bool:
    """Whether a column's values are labels (file names, titles), not passages of text.

    Args:
        values: Sampled cell values (blank ones are ignored).

    Returns:
        True when at least :data:`NAME_SHARE` of the non-blank values are one line of at most
        :data:`NAME_MAX_CHARS` characters that ends in a file extension, or has at most
        :data:`NAME_MAX_WORDS` words and does not end like a sentence; False for an empty sample.
    """
    texts = [str(v).strip() for v in values if v is not None and str(v).strip()]
    if not texts:
        return False
    named = sum(
        1
        for t in texts
        if "\n" not in t
        and len(t) <= NAME_MAX_CHARS
        and (_EXTENSION.search(t) or (len(t.split()) <= NAME_MAX_WORDS and t[-1] not in ".?!:;"))
    )
    return named >= NAME_SHARE * len(texts)


def is_name_column(column: str, samples: dict[str, list[Any]]) -> bool:
    """Whether a column named like a document (:data:`EITHER_TEXT_OR_NAME`) holds document names, not text."""
    return bool(match_columns([column], EITHER_TEXT_OR_NAME)) and looks_like_names(samples.get(column, []))


def column_samples(records: list[Record], limit: int = SAMPLE_ROWS) -> dict[str, list[Any]]:
    """The first ``limit`` values of every column, for judging columns by content."""
    out: dict[str, list[Any]] = {}
    for _, rec in records[:limit]:
        for k, v in rec.items():
            out.setdefault(str(k), []).append(v)
    return out


def _detect(columns: list[str], samples: dict[str, list[Any]] | None) -> tuple[ColumnMapping, dict[str, list[str]]]:
    found = {role: _role_matches(list(columns), role) for role in ROLES}
    if samples is not None:
        # A passage-named column of file names ("document": "smith2020.pdf") names each row's source.
        names = [c for c in found["passage"] if is_name_column(c, samples)]
        if names and (found["answer"] or len(names) < len(found["passage"])):
            found["passage"] = [c for c in found["passage"] if c not in names]
            found["source"] = list(dict.fromkeys([*found["source"], *names]))
    pick = {role: (m[0] if m else None) for role, m in found.items()}
    confident = (
        pick["query"] is not None
        and (pick["passage"] is not None or pick["answer"] is not None)
        and all(len(found[r]) <= 1 for r in ("query", "passage", "negative", "answer"))
    )
    mapping = ColumnMapping(
        pick["query"], pick["passage"], pick["negative"], pick["answer"], confident,
        pick["passage_id"], pick["source"], pick["origin"],
    )  # fmt: skip
    return mapping, found


def detect_columns(columns: list[str], samples: dict[str, list[Any]] | None = None) -> ColumnMapping:
    """Guess which columns hold questions, passages, negatives and answers (and, when present, each
    passage's id and source and each question's origin).

    Names are compared case-insensitively, ignoring spaces, underscores and hyphens,
    against :data:`ROLE_CANDIDATES`; a plural ``s`` is accepted. With ``samples``, a column named like
    a passage (``document``, ``doc``) whose values are file names or short labels
    (:func:`looks_like_names`) is taken as the source column when there is an answer column or another
    passage column.

    Args:
        columns: Column names as they appear in the file.
        samples: Optional first values of each column (:func:`column_samples`).

    Returns:
        The best mapping. ``confident`` is False when no question column, or neither a
        passage nor an answer column, was found, or when two columns match one of those roles
        (the preferred candidate is then chosen and the UI should ask).
    """
    return _detect(columns, samples)[0]


def resolve_mapping(
    columns: list[str],
    mapping: ColumnMapping | dict | None,
    problems: list[Problem],
    samples: dict[str, list[Any]] | None = None,
) -> ColumnMapping:
    """The mapping to use for ``columns``: detected, or the caller's checked against the file.

    Args:
        columns: The table's column names.
        mapping: None (detect), a ColumnMapping, or a dict naming some roles (the rest keep the
            detected column; a role mapped to None is not used). Names match loosely (case, spaces).
        problems: Where a warning goes when detection is ambiguous.
        samples: Optional first values of each column, for detection by content (:func:`detect_columns`).

    Returns:
        The mapping, with every named column present in ``columns``.

    Raises:
        DataError: no question column, neither a passage nor an answer column, an unknown role,
            or a column that is not in the file.
    """
    detected, found = _detect(columns, samples)
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
            matches = found[role]
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
            fail(f"Unknown mapping key(s) {quote_list(unknown)}; use {', '.join(ROLES)}.")
        base = {r: getattr(detected, r) for r in ROLES}
        base.update({k: (v or None) for k, v in mapping.items()})
        taken = {v for v in mapping.values() if v}
        for role in ("passage_id", "source", "origin"):  # a column the user chose is not also a detected extra
            if role not in mapping and base[role] in taken:
                base[role] = None
        wanted = ColumnMapping(**base)
    else:
        wanted = mapping

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
    return ColumnMapping(
        resolved["query"], resolved["passage"], resolved["negative"], resolved["answer"], True,
        resolved["passage_id"], resolved["source"], resolved["origin"],
    )  # fmt: skip


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
                if len(ragged) >= MAX_BAD_LINES:
                    rest = _n_lines(text) - reader.line_num
                    _refuse_bad_lines(ragged, "", reader.line_num, max(rest, 0))
                continue
        if len(records) >= MAX_ROWS:
            too_many_rows("", "rows")
        values: dict[str, Any] = {}
        for name, cell in zip(header, rec, strict=False):
            values.setdefault(name, unguard(cell))  # a formula guard the app wrote (core.csvsafe) comes off
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


def iter_lines(text: str) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` for every line of ``text`` (split on ``\\n``), one at a time.

    Unlike ``text.split("\\n")`` this never holds a list of every line: a 50 MB file of one-byte
    lines is 25 million strings (over a gigabyte) as a list.
    """
    pos, n, i = 0, len(text), 0
    while pos <= n:
        end = text.find("\n", pos)
        if end < 0:
            end = n
        i += 1
        yield i, text[pos:end]
        pos = end + 1


def _n_lines(text: str) -> int:
    return text.count("\n") + (0 if text.endswith("\n") else 1)


def too_many_rows(name: str, unit: str) -> NoReturn:
    """Refuse a table with more than :data:`MAX_ROWS` rows (checked while reading)."""
    fail(
        f"{name or 'The file'} has more than {MAX_ROWS:,} {unit}, over the limit for one file (that many pairs "
        "would take days to train on and gigabytes of memory to hold). Keep a sample of the rows, or split the "
        "file and upload the part you need."
    )


def iter_jsonl(text: str, label: str, what: str = "a JSON object") -> Iterator[tuple[int, Any]]:
    """JSONL text -> (line number, object) for each non-blank line, one line at a time.

    Bad lines are collected; after :data:`MAX_BAD_LINES` of them reading stops (the rest of the
    file is not parsed) and the file is refused, the message saying how many lines were left unread.
    At the end, any bad line refuses the file. More than :data:`MAX_ROWS` objects refuse it too.

    Raises:
        DataError: a line that is not valid JSON or not an object; too many lines.
    """
    bad: list[Problem] = []
    n_rows = 0
    for i, line in iter_lines(text):
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
        else:
            if not isinstance(obj, dict):
                bad.append(Problem("error", f"{cap_where(where)} is {describe(obj)}; expected {what}.", where))
            elif not bad:
                n_rows += 1
                if n_rows > MAX_ROWS:
                    too_many_rows(label, "lines")
                yield i, obj
        if len(bad) >= MAX_BAD_LINES:
            rest = _n_lines(text) - i  # lines left unread (counted, not parsed)
            _refuse_bad_lines(bad, label, i, max(rest, 0))
    if bad:
        refuse(bad)


def _refuse_bad_lines(bad: list[Problem], label: str, line: int, rest: int) -> NoReturn:
    """Refuse after :data:`MAX_BAD_LINES` bad lines, saying where reading stopped."""
    where = f"{label} " if label else ""
    bad.append(
        Problem(
            "error",
            f"Stopped reading {where}at line {line:,} after {len(bad)} bad lines; the {rest:,} lines after it were "
            "not checked. Fix the lines above (is this really a JSONL file, one JSON object a line?) and upload "
            "it again.",
        )
    )
    refuse(bad)


def parse_jsonl(text: str, label: str, what: str = "a JSON object") -> list[tuple[int, Any]]:
    """JSONL text -> (line number, object) for each non-blank line (:func:`iter_jsonl` as a list).

    Raises:
        DataError: a line that is not valid JSON or not an object (the first :data:`MAX_BAD_LINES`
            are listed); more than :data:`MAX_ROWS` lines.
    """
    return list(iter_jsonl(text, label, what))


def columns_of(records: list[Record]) -> list[str]:
    """Every key of JSON records, in first-seen order (the columns of a JSON or JSONL table)."""
    cols: dict[str, None] = {}
    for _, rec in records:
        for k in rec:
            cols.setdefault(str(k), None)
    return list(cols)


def parse_parquet(data: bytes, name: str) -> tuple[list[str], list[Record]]:
    """A Parquet file -> column names and records (``"row 1"`` is the first record: no header row).

    Args:
        data: The file's bytes.
        name: The file name, for messages.

    Returns:
        ``(columns, records)``; cell values as pyarrow gives them in Python (str, numbers, lists, dicts).

    Raises:
        DataError: not a readable Parquet file, columns that would expand past
            :data:`MAX_PARQUET_EXPANDED_BYTES`, or no rows.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(pa.BufferReader(data))
        expanded = sum(pf.metadata.row_group(i).total_byte_size for i in range(pf.metadata.num_row_groups))
        if expanded > MAX_PARQUET_EXPANDED_BYTES:
            fail(
                f"{name} would take {expanded / 1e6:,.0f} MB in memory once read, over the "
                f"{MAX_PARQUET_EXPANDED_BYTES / 1e6:,.0f} MB limit. Export fewer rows or only the columns needed "
                "(text, id, source)."
            )
        table = pf.read()
    except (pa.ArrowException, OSError, ValueError) as exc:
        fail(f"{name} is not a readable Parquet file ({exc}). Export it again, or as CSV UTF-8 or JSONL.")
    columns = [str(c) for c in table.column_names]
    rows = table.to_pylist()
    if not rows:
        fail(f"{name} has columns ({quote_list(columns)}) but no rows.")
    return columns, [(f"row {i}", dict(zip(columns, r.values()))) for i, r in enumerate(rows, 1)]
