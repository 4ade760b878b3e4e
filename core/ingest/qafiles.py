"""Load and validate question/passage files into one :class:`~core.dataset.QADataset`.

This module owns everything between the bytes a user uploads and a clean dataset:

* format detection (by extension, then by content): pair tables (CSV, TSV, JSONL, JSON
  list or ``{"data": [...]}``), the IR JSON ``{queries, corpus, relevant_docs}`` and BEIR
  (a folder, or a .zip read in memory);
* refusals before any parsing: a question file over :data:`MAX_QA_FILE_BYTES`, and files
  whose content signature says they are something else (a PDF, an image, an archive);
* text decoding (UTF-8, UTF-8 with BOM, UTF-16 with BOM; invalid UTF-8 is read as
  Windows-1252, or as UTF-8 with the bad bytes replaced when the file is mostly UTF-8, with a
  warning; binary content is refused);
* column detection for pair tables (:func:`detect_columns`) and explicit mappings;
* conversion of pairs to a dataset (passages and questions de-duplicated, stable ids
  ``q0001`` / ``d0001`` in first-seen order);
* repeated keys inside a JSON object (e.g. an id used twice in an IR dataset): the first
  value is kept, with a warning;
* the :class:`ValidationReport`: every :class:`Problem` found, each naming where it is
  (``row 14`` counts rows as a spreadsheet shows them: the header is row 1).

Errors: a file that cannot be used raises :class:`core.dataset.DataError`; its message
says what is wrong, where and what to do, and ``.problems`` holds the message of every
error found (strings, as ``DataError`` declares). Nothing partial is returned. Anything
merely suspicious is a ``"warning"`` Problem in the report of a successful load.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, NoReturn

from core.dataset import DataError, QADataset

# Zip guard: BEIR sets that fit a browser-upload workflow are far smaller; anything bigger
# is more likely a zip bomb (tiny compressed, huge expanded) than a dataset.
MAX_ZIP_UNCOMPRESSED_BYTES = 500_000_000  # messages say MB = 10^6 bytes
# A BEIR zip needs three to a handful of files; tens of thousands of members is not one.
MAX_ZIP_MEMBERS = 10_000
# Size cap for one question file (CSV/TSV/JSON/JSONL). 50 MB of pairs is well over 100,000
# passages: hours per training epoch and long encodes on this app's CPU machines, and several GB
# of memory once parsed, split and checked for leakage (10 MB parses in ~2 s on 2 cores; a 100 MB
# file would hold the page for ~20 s and then stall the split). Refusing it up front, before
# decoding, keeps the page responsive and says what to do (sample or split the file).
MAX_QA_FILE_BYTES = 50_000_000
# Problems of one kind listed one by one before a single "... and N more" line: enough to
# find the pattern, few enough for the page to stay readable.
MAX_LISTED = 10
# Ids quoted inside one message (missing qrels ids, column names).
MAX_IDS_IN_MESSAGE = 8
# Long passages named as examples in the too-long warning.
MAX_LONG_EXAMPLES = 3
# The csv module refuses cells over 128 KiB by default; whole documents pasted into one
# cell are legitimate (and then reported as too long), so allow up to 50 MB.
MAX_CSV_CELL_CHARS = 50_000_000
# Rough WordPiece tokens per whitespace word in English prose, for the length check when
# no tokenizer is given (MiniLM/BERT vocabularies split ~30% of words).
WORDS_TO_TOKENS = 1.3
# Bytes looked at when guessing the delimiter or whether content is binary.
SNIFF_BYTES = 64 * 1024
# Share of control bytes (other than tab, newline, carriage return, form feed) in the
# sniffed sample above which a file is treated as binary.
MAX_CONTROL_BYTE_SHARE = 0.05

ROLE_CANDIDATES: dict[str, tuple[str, ...]] = {
    # Compared with column names lower-cased and without spaces, underscores or hyphens;
    # a trailing "s" is also accepted ("questions", "negatives"). Earlier = preferred.
    "query": ("query", "question", "anchor", "q", "prompt"),
    "passage": ("passage", "context", "positive", "document", "doc", "text", "chunk", "pos"),
    "negative": ("negative", "hardnegative", "neg"),
    "answer": ("answer", "answers", "response"),
}
_ROLES = ("query", "passage", "negative", "answer")
_TABLE_EXTS = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".txt": None}
_JSON_EXTS = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_REFUSED_EXTS = {
    ".xlsx": "an Excel workbook",
    ".xls": "an Excel workbook",
    ".ods": "a spreadsheet workbook",
    ".pdf": "a PDF",
    ".docx": "a Word document",
    ".doc": "a Word document",
    ".parquet": "a Parquet file",
}
# Content signatures of files that get renamed to .csv/.json by mistake. Checked before decoding:
# a small PDF can hold no NUL byte at all and would otherwise be read as a one-column table.
_MAGIC = (
    (b"%PDF-", "a PDF document"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old-style Office file (.xls or .doc)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"SQLite format 3\x00", "an SQLite database"),
)
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}


# --------------------------------------------------------------------------- types


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
        answer: Optional column holding an answer; used only when there is no passage column.
        confident: False when detection was unsure (a role missing, or two columns
            matching one role): the UI should ask the user.
    """

    query: str | None
    passage: str | None
    negative: str | None = None
    answer: str | None = None
    confident: bool = True


@dataclass
class ValidationReport:
    """What was read and what looked wrong.

    Attributes:
        format: ``"csv"``, ``"tsv"``, ``"jsonl"``, ``"json-pairs"``, ``"ir-json"`` or ``"beir"``.
        n_rows: Data rows read (pair tables) or relevance judgements read (IR JSON, BEIR).
        n_queries: Questions in the dataset.
        n_passages: Passages in the corpus.
        n_pairs: (question, relevant passage) pairs in the dataset.
        mapping: The column mapping used (pair tables only).
        problems: Every problem found (warnings only, for a file that loaded).
        encoding: The text encoding used (e.g. ``"utf-8"``, ``"cp1252"``).
        n_answers: Questions with an answer (answer-only files).
    """

    format: str
    n_rows: int
    n_queries: int
    n_passages: int
    n_pairs: int
    mapping: ColumnMapping | None
    problems: list[Problem]
    encoding: str | None = None
    n_answers: int = 0

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
        unit = "rows" if self.format in ("csv", "tsv", "jsonl", "json-pairs") else "judgements"
        if self.n_rows == 1:
            unit = unit[:-1]
        what = f"{self.n_queries} question{'s' if self.n_queries != 1 else ''}, "
        if self.n_passages == 0 and self.n_answers:
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
    """

    dataset: QADataset
    report: ValidationReport
    answers: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- helpers


def _refuse(problems: list[Problem]) -> NoReturn:
    """Raise DataError carrying every error in ``problems``."""
    errors = [p for p in problems if p.level == "error"]
    msg = errors[0].message
    if len(errors) > 1:
        msg += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''} like this)"
    raise DataError(msg, problems=[p.message for p in errors])


def _fail(message: str, where: str | None = None) -> NoReturn:
    _refuse([Problem("error", message, where)])


def _check_size(name: str, size: int) -> None:
    """Refuse a question file over :data:`MAX_QA_FILE_BYTES` before reading or decoding it."""
    if size > MAX_QA_FILE_BYTES:
        _fail(
            f"{name} is {size / 1e6:.0f} MB, over the {MAX_QA_FILE_BYTES / 1e6:.0f} MB limit for one question "
            "file (that many pairs would take hours per training epoch on this machine). Keep a sample of the "
            "rows, or split the file and upload the part you need."
        )


def _norm_ws(text: str) -> str:
    """Whitespace-normalised text: the key used to de-duplicate passages and questions."""
    return " ".join(text.split())


def _cap(where: str) -> str:
    """ "row 5" -> "Row 5" at the start of a message; file names keep their case."""
    return where[:1].upper() + where[1:] if where.startswith(("row ", "line ", "item ")) else where


def _norm_col(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", str(name)).lower()


def _quote_list(items: Iterable[str], limit: int = MAX_IDS_IN_MESSAGE) -> str:
    items = list(items)
    shown = ", ".join(repr(str(i)) for i in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _capped(problems: list[Problem], found: list[Problem], what: str) -> None:
    """Append the first MAX_LISTED of ``found`` and one line summing up the rest."""
    problems.extend(found[:MAX_LISTED])
    if len(found) > MAX_LISTED:
        rest = len(found) - MAX_LISTED
        problems.append(Problem(found[0].level, f"... and {rest} more {what}."))


def _as_texts(value: Any) -> list[str]:
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
        return [t for v in value for t in _as_texts(v)]
    if isinstance(value, dict) and "text" in value:
        return _as_texts(value["text"])
    return [json.dumps(value, ensure_ascii=False)]


def _json_msg(e: json.JSONDecodeError) -> str:
    """The decoder's message without a trailing "at" ("Unterminated string starting at"), which
    the caller's own "at column N" would otherwise double."""
    return e.msg.removesuffix(" at")


def _describe(obj: Any) -> str:
    if isinstance(obj, dict):
        keys = list(obj)
        return f"an object with keys {_quote_list(keys)}" if keys else "an empty object"
    if isinstance(obj, list):
        return f"a list of {len(obj)} items" if obj else "an empty list"
    return f"a {type(obj).__name__} ({str(obj)[:40]!r})"


# --------------------------------------------------------------------------- decoding


def _decode(data: bytes, label: str, problems: list[Problem]) -> tuple[str, str]:
    """Bytes -> text and the encoding used.

    UTF-8 with BOM and UTF-16 with BOM are honoured; otherwise strict UTF-8. Text that is not
    valid UTF-8 is read as Windows-1252, or, when it is mostly valid UTF-8 (at least as many
    well-formed non-ASCII characters as bad byte sequences), as UTF-8 with the bad bytes
    replaced by U+FFFD; either way with a warning naming the first bad byte. Binary content
    is refused.

    Raises:
        DataError: NUL bytes or mostly control bytes (binary), or undecodable UTF-16.
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as e:
            _fail(
                f"{label}: starts like UTF-16 text but byte {e.start} cannot be decoded. "
                "Save the file again as UTF-8 (in Excel: 'CSV UTF-8')."
            )
        if "\x00" in text:
            _fail(f"{label}: contains NUL characters, so it is not a text file. Save it as UTF-8 text.")
        return text, "utf-16"
    bom = data.startswith(b"\xef\xbb\xbf")
    body = data[3:] if bom else data
    sample = body[:SNIFF_BYTES]
    if b"\x00" in body:
        _fail(
            f"{label}: contains NUL bytes, so it looks like a binary file (an Excel workbook, a PDF, "
            "an image) or UTF-16 text without a byte-order mark. Export or save it as CSV UTF-8, "
            "JSON or JSONL text."
        )
    control = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13))
    if sample and control / len(sample) > MAX_CONTROL_BYTE_SHARE:
        _fail(f"{label}: looks like a binary file, not text. Export it as CSV UTF-8, JSON or JSONL.")
    try:
        return body.decode("utf-8"), "utf-8-sig" if bom else "utf-8"
    except UnicodeDecodeError as e:
        offset = e.start + (3 if bom else 0)
        line = data.count(b"\n", 0, offset) + 1
        where = f"{label} line {line}"
        lenient = body.decode("utf-8", errors="replace")
        n_bad = lenient.count("\ufffd") - body.count("\ufffd".encode())
        n_good = len(lenient) - len(lenient.encode("ascii", "ignore")) - lenient.count("\ufffd")
        if n_good >= n_bad:
            # Mostly UTF-8 with a few damaged bytes: reading it all as Windows-1252 would garble
            # every correct accented letter ("café" -> "cafÃ©"), so replace only the bad bytes.
            problems.append(
                Problem(
                    "warning",
                    f"{where}: byte {offset} ({data[offset : offset + 1].hex()}) is not valid UTF-8 "
                    f"({n_bad} bad byte sequence{'s' if n_bad != 1 else ''} in all, in a file that is otherwise "
                    "UTF-8); each was replaced by '\ufffd'. Fix those characters in the file if they matter.",
                    where,
                )
            )
            return lenient, "utf-8-sig" if bom else "utf-8"
        problems.append(
            Problem(
                "warning",
                f"{where}: byte {offset} ({data[offset : offset + 1].hex()}) is not valid UTF-8, so the file "
                "was read as Windows-1252 (Western European) instead. Check that accented letters and "
                "symbols look right, or save the file as UTF-8.",
                where,
            )
        )
        return body.decode("cp1252", errors="replace"), "cp1252"


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
    found = {role: _role_matches(list(columns), role) for role in _ROLES}
    pick = {role: (m[0] if m else None) for role, m in found.items()}
    confident = (
        pick["query"] is not None
        and (pick["passage"] is not None or pick["answer"] is not None)
        and all(len(m) <= 1 for m in found.values())
    )
    return ColumnMapping(pick["query"], pick["passage"], pick["negative"], pick["answer"], confident)


def _resolve_mapping(
    columns: list[str], mapping: ColumnMapping | dict | None, problems: list[Problem]
) -> ColumnMapping:
    """The mapping to use for ``columns``: detected, or the caller's checked against the file."""
    detected = detect_columns(columns)
    cols_txt = _quote_list(columns, limit=30)
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
            _fail(
                f"Could not tell which column is {' or '.join(missing)}. Columns found: {cols_txt}. "
                "Rename the columns, or choose them by hand."
            )
        for role in _ROLES:
            matches = _role_matches(columns, role)
            if len(matches) > 1:
                problems.append(
                    Problem(
                        "warning",
                        f"Columns {_quote_list(matches)} could all be the {role} column; used "
                        f"{matches[0]!r}. Choose the column by hand if that is wrong.",
                    )
                )
        return m

    if isinstance(mapping, dict):
        unknown = [k for k in mapping if k not in _ROLES]
        if unknown:
            _fail(f"Unknown mapping key(s) {_quote_list(unknown)}; use query, passage, negative, answer.")
        base = {r: getattr(detected, r) for r in _ROLES}
        base.update({k: (v or None) for k, v in mapping.items()})
        wanted = ColumnMapping(**base)
    else:
        wanted = ColumnMapping(mapping.query, mapping.passage, mapping.negative, mapping.answer)

    resolved: dict[str, str | None] = {}
    for role in _ROLES:
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
        _fail(f"The {role} column {name!r} is not in the file. Available columns: {cols_txt}.")
    if resolved["query"] is None:
        _fail(f"The mapping names no question column. Available columns: {cols_txt}.")
    if resolved["passage"] is None and resolved["answer"] is None:
        _fail(f"The mapping names neither a passage nor an answer column. Available columns: {cols_txt}.")
    return ColumnMapping(resolved["query"], resolved["passage"], resolved["negative"], resolved["answer"])


# --------------------------------------------------------------------------- parsing


Record = tuple[str, dict[str, Any]]  # (where, e.g. "row 5", {column: value})


def _pick_delimiter(text: str, preferred: str | None) -> str:
    """The delimiter giving the most header cells; csv.Sniffer breaks ties."""
    first = next((ln for ln in text[:SNIFF_BYTES].splitlines() if ln.strip()), "")
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
        return csv.Sniffer().sniff(text[:SNIFF_BYTES], delimiters="".join(tied)).delimiter
    except csv.Error:
        return tied[0]


def _parse_table(text: str, delimiter: str, problems: list[Problem]) -> tuple[list[str], list[Record]]:
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
                _fail(
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
            _fail(
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
        _refuse(ragged)
    if header is None:
        _fail(
            "The file is empty. Upload a table with a header row (e.g. question, passage) and one row per pair."
        )
    if not records:
        _fail(f"The file has a header row ({_quote_list(header)}) but no data rows below it.")
    return list(dict.fromkeys(header)), records


def _parse_jsonl(text: str, label: str, what: str = "a JSON object") -> list[tuple[int, Any]]:
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
                    f"{_cap(where)} is not valid JSON ({_json_msg(e)} at column {e.colno}). Each line "
                    f'must be {what} on its own, e.g. {{"question": "...", "passage": "..."}}.',
                    where,
                )
            )
            continue
        if not isinstance(obj, dict):
            bad.append(Problem("error", f"{_cap(where)} is {_describe(obj)}; expected {what}.", where))
            continue
        out.append((i, obj))
    if bad:
        _refuse(bad)
    return out


def _columns_of(records: list[Record]) -> list[str]:
    cols: dict[str, None] = {}
    for _, rec in records:
        for k in rec:
            cols.setdefault(str(k), None)
    return list(cols)


# --------------------------------------------------------------------------- pairs


class _Ids:
    """First-seen de-duplication of texts by their whitespace-normalised form."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.texts: list[str] = []
        self.first_where: list[str] = []

    def add(self, text: str, where: str) -> int:
        key = _norm_ws(text)
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


def _pairs_to_dataset(
    records: list[Record], m: ColumnMapping, problems: list[Problem]
) -> tuple[QADataset, dict[str, str], dict[str, str]]:
    """Pair records -> dataset, answers, and doc id -> where first seen."""
    answer_mode = m.passage is None
    qs, docs = _Ids(), _Ids()
    rel: dict[int, list[int]] = {}
    neg: dict[int, list[int]] = {}
    answers: dict[int, str] = {}
    seen: dict[tuple, tuple[str, set[str]]] = {}
    empty, dups, conflicts = [], [], []

    second = "answer" if answer_mode else "passage"
    second_col = m.answer if answer_mode else m.passage
    for where, rec in records:
        q_raw = _as_texts(rec.get(m.query))
        s_raw = _as_texts(rec.get(second_col))
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
                    f"{_cap(where)}: {' and '.join(bad)}; the row was skipped. Fill it in or delete the row.",
                    where,
                )
            )
            continue
        q_text = q_ok[0]
        if answer_mode:
            a_text = s_ok[0].strip()
            key: tuple = (_norm_ws(q_text), _norm_ws(a_text))
            new_negs: set[str] = set()
        else:
            pos = s_ok
            negs = [t for t in _as_texts(rec.get(m.negative)) if t.strip()] if m.negative else []
            key = (_norm_ws(q_text), tuple(map(_norm_ws, pos)))
            new_negs = {_norm_ws(t) for t in negs}
        # A row repeats an earlier one when it adds nothing: same question and passage(s)
        # (or answer), and no negative that was not already given for them.
        if key in seen and new_negs <= seen[key][1]:
            dups.append(
                Problem(
                    "warning",
                    f"{_cap(where)} repeats {seen[key][0]} (same question and {second}); kept once.",
                    where,
                )
            )
            continue
        seen.setdefault(key, (where, set()))[1].update(new_negs)
        qi = qs.add(q_text, where)
        if answer_mode:
            if qi in answers and _norm_ws(answers[qi]) != _norm_ws(a_text):
                conflicts.append(
                    Problem(
                        "warning",
                        f"{_cap(where)}: this question was already answered differently in "
                        f"{qs.first_where[qi]}; the first answer is kept.",
                        where,
                    )
                )
            answers.setdefault(qi, a_text)
            continue
        for t in pos:
            di = docs.add(t, where)
            if di not in rel.setdefault(qi, []):
                rel[qi].append(di)
        for t in negs:
            di = docs.add(t, where)
            if di not in neg.setdefault(qi, []):
                neg[qi].append(di)

    _capped(problems, empty, "rows with empty cells")
    _capped(problems, dups, "repeated rows")
    _capped(problems, conflicts, "questions with several answers")

    qid = _Ids.fmt("q", len(qs.texts))
    did = _Ids.fmt("d", len(docs.texts))
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
            negatives[qid(qi)] = [did(d) for d in keep]
    _capped(problems, clashes, "questions whose negative is also a positive")

    if not qs.texts:
        _fail(
            "No usable rows: every row was skipped (see the problems listed). "
            f"Each row needs a question and a {second}.",
        )
    ds = QADataset(
        queries={qid(i): t for i, t in enumerate(qs.texts)},
        corpus={did(i): t for i, t in enumerate(docs.texts)},
        relevant_docs={qid(qi): [did(d) for d in ds] for qi, ds in rel.items()},
        negatives=negatives,
    )
    return ds, {qid(i): a for i, a in answers.items()}, {did(i): w for i, w in enumerate(docs.first_where)}


# --------------------------------------------------------------------------- IR JSON / BEIR


def _judged_ids(value: Any) -> list[str]:
    """relevant_docs value (list, single id, or {id: score}) -> doc ids (score > 0 kept)."""
    if isinstance(value, dict):
        out = []
        for d, s in value.items():
            try:
                keep = float(s) > 0
            except (TypeError, ValueError):
                keep = True
            if keep:
                out.append(str(d))
        return out
    if isinstance(value, list | tuple):
        return [str(v) for v in value if v is not None]
    return [] if value is None else [str(value)]


def _build_judged(
    queries: dict[str, str],
    corpus: dict[str, str],
    judgements: list[tuple[str, str]],
    problems: list[Problem],
    source: str,
) -> dict[str, list[str]]:
    """Judgements -> relevant_docs, dropping (and reporting) ids that do not exist.

    Raises:
        DataError: no judgement left.
    """
    rel: dict[str, list[str]] = {}
    miss_q: dict[str, None] = {}
    miss_d: dict[str, None] = {}
    n_dup = 0
    for q, d in judgements:
        if q not in queries:
            miss_q.setdefault(q, None)
        elif d not in corpus:
            miss_d.setdefault(d, None)
        elif d in rel.setdefault(q, []):
            n_dup += 1
        else:
            rel[q].append(d)
    if miss_q:
        problems.append(
            Problem(
                "warning",
                f"{source}: {len(miss_q)} question id(s) have judgements but no question text: "
                f"{_quote_list(miss_q)}. Those judgements were dropped; check the ids match exactly.",
                f"query {next(iter(miss_q))}",
            )
        )
    if miss_d:
        problems.append(
            Problem(
                "warning",
                f"{source}: {len(miss_d)} passage id(s) are judged relevant but missing from the corpus: "
                f"{_quote_list(miss_d)}. Those judgements were dropped; check the ids match exactly.",
                f"passage {next(iter(miss_d))}",
            )
        )
    if n_dup:
        problems.append(
            Problem("warning", f"{source}: {n_dup} judgement(s) were listed twice; each is kept once.")
        )
    rel = {q: ds for q, ds in rel.items() if ds}
    if not rel:
        _fail(
            f"{source}: no judgement points to an existing question and passage, so there is nothing to "
            "train or evaluate on. Check that the ids in the judgements match the ids of the questions "
            "and passages."
        )
    return rel


def _drop_unjudged(
    queries: dict[str, str], rel: dict[str, list[str]], problems: list[Problem], src: str
) -> dict:
    unjudged = [q for q in queries if q not in rel]
    if unjudged:
        problems.append(
            Problem(
                "warning",
                f"{src}: {len(unjudged)} question(s) have no relevant passage and were left out: "
                f"{_quote_list(unjudged)}.",
                f"query {unjudged[0]}",
            )
        )
    return {q: t for q, t in queries.items() if q in rel}


def _text_map(obj: Any, key: str, problems: list[Problem], what: str) -> dict[str, str]:
    if not isinstance(obj, dict):
        _fail(
            f"'{key}' should be an object mapping each {what} id to its text, like "
            f'{{"{what[0]}1": "..."}}; found {_describe(obj)}.'
        )
    out: dict[str, str] = {}
    empty = []
    for k, v in obj.items():
        texts = [t for t in _as_texts(v) if t.strip()]
        if not texts:
            empty.append(str(k))
            continue
        out[str(k)] = " ".join(texts).strip() if len(texts) > 1 else texts[0].strip()
    if empty:
        problems.append(
            Problem(
                "warning",
                f"'{key}': {len(empty)} {what}(s) have empty text and were skipped: {_quote_list(empty)}.",
                f"{what} {empty[0]}",
            )
        )
    return out


def _load_ir_json(obj: dict, problems: list[Problem]) -> tuple[QADataset, int]:
    """The {queries, corpus, relevant_docs[, negatives, sources]} shape -> dataset, n judgements."""
    queries = _text_map(obj["queries"], "queries", problems, "query")
    corpus = _text_map(obj["corpus"], "corpus", problems, "passage")
    rd = obj["relevant_docs"]
    if not isinstance(rd, dict):
        _fail(
            "'relevant_docs' should be an object mapping each query id to its relevant passage ids, "
            f'like {{"q1": ["d1"]}}; found {_describe(rd)}.'
        )
    judgements = [(str(q), d) for q, v in rd.items() for d in _judged_ids(v)]
    rel = _build_judged(queries, corpus, judgements, problems, "relevant_docs")
    queries = _drop_unjudged(queries, rel, problems, "queries")
    negatives: dict[str, list[str]] = {}
    if isinstance(obj.get("negatives"), dict):
        for q, v in obj["negatives"].items():
            keep = [d for d in _judged_ids(v) if d in corpus and d not in rel.get(str(q), [])]
            if str(q) in queries and keep:
                negatives[str(q)] = keep
    sources = {}
    if isinstance(obj.get("sources"), dict):
        sources = {str(d): str(s) for d, s in obj["sources"].items() if str(d) in corpus}
    return QADataset(queries, corpus, rel, negatives, sources), len(judgements)


def _beir_corpus(text: str, label: str, problems: list[Problem], kind: str) -> dict[str, str]:
    out: dict[str, str] = {}
    skipped, dups = [], []
    for line, rec in _parse_jsonl(text, label):
        where = f"{label} line {line}"
        rid = rec.get("_id", rec.get("id"))
        body = " ".join(t for t in _as_texts(rec.get("text")) if t.strip()).strip()
        title = (
            " ".join(t for t in _as_texts(rec.get("title")) if t.strip()).strip() if kind == "corpus" else ""
        )
        content = f"{title}\n{body}" if title and body else (title or body)
        if rid is None or str(rid).strip() == "" or not content:
            reason = "has no _id" if rid is None or str(rid).strip() == "" else "has empty text"
            skipped.append(Problem("warning", f"{_cap(where)} {reason}; skipped.", where))
            continue
        rid = str(rid)
        if rid in out:
            dups.append(Problem("warning", f"{where}: _id {rid!r} appears again; the first is kept.", where))
            continue
        out[rid] = content
    _capped(problems, skipped, f"skipped lines in {label}")
    _capped(problems, dups, f"repeated ids in {label}")
    return out


def _beir_qrels(text: str, label: str, problems: list[Problem]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    bad = []
    first = True
    for i, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.rstrip("\r").split("\t")]
        if len(parts) < 3 and len(line.split()) >= 3:
            parts = line.split()
        if first:
            first = False
            try:
                float(parts[2])
            except (IndexError, ValueError):
                continue  # header: query-id corpus-id score
        where = f"{label} line {i}"
        try:
            score = float(parts[2])
        except (IndexError, ValueError):
            bad.append(
                Problem(
                    "warning",
                    f"{_cap(where)}: expected query-id, corpus-id and a numeric score separated by "
                    "tabs; line skipped.",
                    where,
                )
            )
            continue
        if score > 0:
            out.append((parts[0], parts[1]))
    _capped(problems, bad, f"malformed lines in {label}")
    return out


def _load_beir(
    names: list[str], read: Callable[[str], bytes], label: str, problems: list[Problem]
) -> tuple[QADataset, int, str]:
    """Find and read a BEIR dataset among ``names`` (posix paths) -> dataset, judgements, encoding."""
    names = [n for n in names if not n.startswith("__MACOSX/") and not PurePosixPath(n).name.startswith("._")]

    def shallow(base: str) -> list[str]:
        return [n for n in names if PurePosixPath(n).name == base and len(PurePosixPath(n).parts) <= 2]

    corpora = shallow("corpus.jsonl")
    if len(corpora) > 1:
        _fail(
            f"{label} holds more than one corpus.jsonl ({_quote_list(corpora)}); upload one dataset at a time."
        )
    anchors = (
        corpora
        or shallow("queries.jsonl")
        or [n for n in names if PurePosixPath(n).parent.name == "qrels" and len(PurePosixPath(n).parts) <= 3]
    )
    if anchors:
        root = PurePosixPath(anchors[0]).parent
        if root.name == "qrels":
            root = root.parent
    else:
        root = PurePosixPath(".")
    prefix = "" if str(root) == "." else f"{root}/"
    corpus_name, queries_name = f"{prefix}corpus.jsonl", f"{prefix}queries.jsonl"
    qrels = sorted(
        n
        for n in names
        if n.startswith(f"{prefix}qrels/") and n.endswith(".tsv") and n.count("/") == prefix.count("/") + 1
    )
    missing = []
    if corpus_name not in names:
        missing.append("corpus.jsonl (one passage a line: _id, title, text)")
    if queries_name not in names:
        missing.append("queries.jsonl (one question a line: _id, text)")
    if not qrels:
        missing.append("qrels/test.tsv (query-id, corpus-id, score)")
    if missing:
        found = _quote_list(names, limit=12) if names else "nothing"
        _fail(
            f"{label} is not a complete BEIR dataset: missing {'; '.join(missing)}. Found: {found}. "
            "(An Excel .xlsx is also a zip: export it as CSV instead.)"
        )
    chosen = qrels
    test = f"{prefix}qrels/test.tsv"
    rel_names = [n[len(prefix) :] for n in qrels]
    if len(qrels) > 1:
        if test in qrels:
            chosen = [test]
            problems.append(
                Problem(
                    "warning",
                    f"Several qrels files ({_quote_list(rel_names)}); used qrels/test.tsv only.",
                    "qrels/test.tsv",
                )
            )
        else:
            problems.append(
                Problem(
                    "warning",
                    f"Several qrels files and no test.tsv; merged {_quote_list(rel_names)}.",
                    "qrels",
                )
            )
    encodings: dict[str, None] = {}

    def text_of(name: str) -> str:
        text, enc = _decode(read(name), name[len(prefix) :], problems)
        encodings.setdefault(enc, None)
        return text

    corpus = _beir_corpus(text_of(corpus_name), "corpus.jsonl", problems, "corpus")
    queries = _beir_corpus(text_of(queries_name), "queries.jsonl", problems, "queries")
    judgements = []
    for n in chosen:
        judgements += _beir_qrels(text_of(n), n[len(prefix) :], problems)
    src = "qrels" if len(chosen) > 1 else chosen[0][len(prefix) :]
    rel = _build_judged(queries, corpus, judgements, problems, src)
    unjudged = [q for q in queries if q not in rel]
    if unjudged:
        problems.append(
            Problem(
                "warning",
                f"{len(unjudged)} question(s) in queries.jsonl have no judgement in {src} and were left out.",
            )
        )
    queries = {q: t for q, t in queries.items() if q in rel}
    return QADataset(queries, corpus, rel), len(judgements), ", ".join(encodings)


def _zip_names(zf: zipfile.ZipFile, label: str) -> dict[str, zipfile.ZipInfo]:
    """Safe member names -> info. Refuses unsafe paths, too many members, too much data."""
    infos = zf.infolist()
    if len(infos) > MAX_ZIP_MEMBERS:
        _fail(f"{label} holds {len(infos)} files; a BEIR dataset needs a handful (limit {MAX_ZIP_MEMBERS}).")
    total = sum(i.file_size for i in infos)
    if total > MAX_ZIP_UNCOMPRESSED_BYTES:
        _fail(
            f"{label} would expand to {total / 1e6:.0f} MB, over the {MAX_ZIP_UNCOMPRESSED_BYTES / 1e6:.0f} MB "
            "limit. Upload a smaller dataset."
        )
    out: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        name = info.filename.replace("\\", "/")
        parts = PurePosixPath(name).parts
        if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or ".." in parts:
            _fail(
                f"{label} contains an unsafe path {info.filename!r} (absolute or with '..'). "
                "Zip the dataset folder again with plain relative paths."
            )
        if info.is_dir():
            continue
        out[name] = info
    return out


def _load_beir_zip(data: bytes, label: str, problems: list[Problem]) -> tuple[QADataset, int, str]:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        _fail(f"{label} is not a readable zip archive. Zip the BEIR folder again.")
    with zf:
        members = _zip_names(zf, label)
        budget = [MAX_ZIP_UNCOMPRESSED_BYTES]

        def read(name: str) -> bytes:
            info = members[name]
            if info.flag_bits & 0x1:
                _fail(f"{label}: {name} is password-protected; zip it again without a password.")
            with zf.open(info) as fh:
                blob = fh.read(budget[0] + 1)  # never trust the declared size
            if len(blob) > budget[0]:
                _fail(
                    f"{label} expands to more than {MAX_ZIP_UNCOMPRESSED_BYTES / 1e6:.0f} MB; upload a smaller one."
                )
            budget[0] -= len(blob)
            return blob

        try:
            return _load_beir(list(members), read, label, problems)
        except (zipfile.BadZipFile, OSError, EOFError) as e:  # corrupt member
            _fail(f"{label} is damaged ({e}). Zip the BEIR folder again.")


def _load_beir_dir(path: Path, problems: list[Problem]) -> tuple[QADataset, int, str]:
    names: list[str] = []
    roots = [path] + sorted(p for p in path.iterdir() if p.is_dir())
    for root in roots:
        rel = "" if root == path else f"{root.name}/"
        for base in ("corpus.jsonl", "queries.jsonl"):
            if (root / base).is_file():
                names.append(rel + base)
        if (root / "qrels").is_dir():
            names += sorted(rel + f"qrels/{p.name}" for p in (root / "qrels").glob("*.tsv") if p.is_file())
    return _load_beir(names, lambda n: (path / n).read_bytes(), f"Folder {path.name}", problems)


# --------------------------------------------------------------------------- length check


def _check_lengths(
    ds: QADataset,
    max_tokens: int,
    count_tokens: Callable[[str], int] | None,
    where_of: dict[str, str],
    problems: list[Problem],
) -> None:
    estimated = count_tokens is None
    counter = count_tokens or (lambda t: math.ceil(len(t.split()) * WORDS_TO_TOKENS))
    long = [(d, n) for d, t in ds.corpus.items() if (n := counter(t)) > max_tokens]
    if not long:
        return
    examples = ", ".join(
        f"{d} ({where_of[d] + ', ' if d in where_of else ''}{n} tokens)" for d, n in long[:MAX_LONG_EXAMPLES]
    )
    first = long[0][0]
    problems.append(
        Problem(
            "warning",
            f"{len(long)} of {len(ds.corpus)} passages are longer than {max_tokens} tokens"
            f"{' (estimated as words x 1.3)' if estimated else ''}; the model reads only the first "
            f"{max_tokens}, so the rest is ignored in training and search. Longest: "
            f"{max(n for _, n in long)} tokens. Examples: {examples}. Split long passages into smaller chunks "
            "if their ends matter.",
            where_of.get(first, f"passage {first}"),
        )
    )


# --------------------------------------------------------------------------- public API


def _table_from_text(name: str, text: str, kind: str | None, problems: list[Problem]) -> tuple[str, Any]:
    """Text -> ("table", (fmt, columns, records)) or ("ir", obj), by extension then content."""
    stripped = text.lstrip()
    if not stripped.strip():
        _fail(
            f"{name} is empty. Upload a table with a header row (e.g. question, passage) and one row per pair."
        )
    if kind is None:
        kind = "json" if stripped[0] in "[{" else "table"
    if kind == "jsonl" and stripped[0] == "[":
        kind = "json"
    if kind == "json":
        repeated: dict[str, int] = {}
        try:
            obj = json.loads(text, object_pairs_hook=lambda pairs: _first_wins(pairs, repeated))
        except json.JSONDecodeError as e:
            if e.msg == "Extra data" and stripped[0] == "{":
                kind = "jsonl"  # a .json file holding one object a line
            else:
                _fail(
                    f"{name} is not valid JSON: {_json_msg(e)} at line {e.lineno}, column {e.colno}. Fix it there, "
                    "or export the file again.",
                    f"line {e.lineno}",
                )
        else:
            if repeated:
                n = sum(repeated.values())
                problems.append(
                    Problem(
                        "warning",
                        f"{name}: {n} key(s) appear more than once inside one JSON object: "
                        f"{_quote_list(repeated)}. Only the first value of each was kept (for an IR dataset: "
                        "the first question or passage with that id). Give every question and passage its "
                        "own id, or remove the repeats.",
                    )
                )
            return _json_shape(obj)
    if kind == "jsonl":
        records = [(f"line {i}", rec) for i, rec in _parse_jsonl(text, "")]
        return "table", ("jsonl", _columns_of(records), records)
    ext = Path(name).suffix.lower()
    delimiter = _pick_delimiter(text, _TABLE_EXTS.get(ext))
    columns, records = _parse_table(text, delimiter, problems)
    return "table", ("tsv" if delimiter == "\t" else "csv", columns, records)


def _first_wins(pairs: list[tuple[str, Any]], repeated: dict[str, int]) -> dict[str, Any]:
    """JSON object hook: keep the first value of a repeated key and count the repeats.

    ``json.loads`` alone keeps the last value silently, which would drop a question or a
    passage of an IR dataset whose id is used twice without a word.
    """
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            repeated[k] = repeated.get(k, 0) + 1
            continue
        out[k] = v
    return out


_SHAPES = (
    'a list of objects ([{"question": "...", "passage": "..."}, ...]), an object {"data": [...]} '
    'holding such a list, or an IR dataset {"queries": {...}, "corpus": {...}, "relevant_docs": {...}}'
)


def _json_shape(obj: Any) -> tuple[str, Any]:
    ir_keys = ("queries", "corpus", "relevant_docs")
    if isinstance(obj, dict) and any(k in obj for k in ir_keys):
        missing = [k for k in ir_keys if k not in obj]
        if missing:
            _fail(f"The file looks like an IR dataset but lacks {_quote_list(missing)}. Expected {_SHAPES}.")
        return "ir", obj
    items = obj.get("data") if isinstance(obj, dict) else obj
    if not isinstance(items, list):
        _fail(f"Unexpected JSON shape: expected {_SHAPES}; found {_describe(obj)}.")
    if not items:
        _fail("The JSON list is empty: there are no question/passage pairs in it.")
    bad = [
        Problem(
            "error",
            f"Item {i} is {_describe(it)}; expected an object with a question and a passage.",
            f"item {i}",
        )
        for i, it in enumerate(items, 1)
        if not isinstance(it, dict)
    ]
    if bad:
        _refuse(bad)
    records = [(f"item {i}", it) for i, it in enumerate(items, 1)]
    return "table", ("json-pairs", _columns_of(records), records)


def _sniff_kind(name: str, data: bytes) -> str | None:
    """'zip', 'json', 'jsonl', 'table' or None (decide from content)."""
    ext = Path(name).suffix.lower()
    if ext in _REFUSED_EXTS:
        _fail(
            f"{name} is {_REFUSED_EXTS[ext]}, not a data file. Export the table as CSV UTF-8, then upload that."
        )
    for magic, what in _MAGIC:
        if data.startswith(magic):
            _fail(
                f"{name} is {what} (judging by its content), not a question file. Export the pairs as CSV "
                "UTF-8, JSON or JSONL and upload that"
                + (
                    " (a PDF that holds the source text can be uploaded as a document)."
                    if "PDF" in what
                    else "."
                )
            )
    if data[:4] == b"PK\x03\x04" or ext == ".zip":
        return "zip"
    if ext in _JSON_EXTS:
        return _JSON_EXTS[ext]
    if ext in (".csv", ".tsv", ".tab"):
        return "table"
    return None


def read_columns(name: str, data: bytes) -> list[str]:
    """Column names of a pair table, for letting the user choose a mapping by hand.

    Args:
        name: File name (its extension guides format detection).
        data: File content.

    Returns:
        The column names in file order; ``[]`` for IR JSON and BEIR files.

    Raises:
        DataError: the file cannot be parsed at all.
    """
    kind = _sniff_kind(name, data)
    if kind == "zip":
        return []
    _check_size(name, len(data))
    text, _ = _decode(data, name, [])
    what, payload = _table_from_text(name, text, kind, [])
    return payload[1] if what == "table" else []


def load_qa_file(
    name: str,
    data: bytes,
    mapping: ColumnMapping | dict | None = None,
    max_tokens: int | None = None,
    count_tokens: Callable[[str], int] | None = None,
) -> LoadResult:
    """Read one uploaded file into a dataset, with a validation report.

    Args:
        name: File name as uploaded; its extension guides format detection (content
            decides when the extension is missing or misleading).
        data: File content.
        mapping: Columns to use for a pair table: a ColumnMapping (used as given) or a
            dict such as ``{"query": "Frage", "passage": "Absatz"}`` (roles not named keep
            the detected column; a role mapped to None is not used). Ignored for IR JSON and
            BEIR. None: detect.
        max_tokens: Warn about passages longer than this (the model's max_seq_length).
        count_tokens: Tokens in a text (e.g. the model's tokenizer). With max_tokens but no
            counter, tokens are estimated as whitespace words x 1.3.

    Returns:
        The dataset, its report (warnings only) and, for answer-only files, the answers.

    Raises:
        DataError: the file is refused (over :data:`MAX_QA_FILE_BYTES`, binary, empty,
            malformed, columns not found, no usable pair); ``.problems`` lists every error.
    """
    problems: list[Problem] = []
    kind = _sniff_kind(name, data)
    if kind != "zip":  # a BEIR zip has its own limits (members, expanded size)
        _check_size(name, len(data))
    answers: dict[str, str] = {}
    where_of: dict[str, str] = {}
    used_mapping: ColumnMapping | None = None
    if kind == "zip":
        ds, n_rows, encoding = _load_beir_zip(data, name, problems)
        fmt = "beir"
    else:
        if not data.strip():
            _fail(
                f"{name} is empty. Upload a table with a header row (e.g. question, passage) and one row per pair."
            )
        text, encoding = _decode(data, name, problems)
        what, payload = _table_from_text(name, text, kind, problems)
        if what == "ir":
            ds, n_rows = _load_ir_json(payload, problems)
            fmt = "ir-json"
        else:
            fmt, columns, records = payload
            used_mapping = _resolve_mapping(columns, mapping, problems)
            ds, answers, where_of = _pairs_to_dataset(records, used_mapping, problems)
            n_rows = len(records)
    if max_tokens is not None:
        _check_lengths(ds, max_tokens, count_tokens, where_of, problems)
    report = ValidationReport(
        format=fmt,
        n_rows=n_rows,
        n_queries=len(ds.queries),
        n_passages=len(ds.corpus),
        n_pairs=sum(len(v) for v in ds.relevant_docs.values()),
        mapping=used_mapping,
        problems=problems,
        encoding=encoding,
        n_answers=len(answers),
    )
    if report.errors:
        _refuse(report.errors)
    return LoadResult(ds, report, answers)


def load_qa_path(path: str | Path, **kw: Any) -> LoadResult:
    """Read a file (any format :func:`load_qa_file` takes) or a BEIR folder.

    Args:
        path: A file, or a folder holding corpus.jsonl, queries.jsonl and qrels/*.tsv
            (directly or inside one sub-folder).
        **kw: ``mapping``, ``max_tokens``, ``count_tokens`` as for :func:`load_qa_file`.

    Returns:
        The dataset and its report.

    Raises:
        DataError: the path does not exist or the data is refused.
    """
    path = Path(path)
    if path.is_dir():
        problems: list[Problem] = []
        ds, n_rows, encoding = _load_beir_dir(path, problems)
        if kw.get("max_tokens") is not None:
            _check_lengths(ds, kw["max_tokens"], kw.get("count_tokens"), {}, problems)
        report = ValidationReport(
            "beir",
            n_rows,
            len(ds.queries),
            len(ds.corpus),
            sum(len(v) for v in ds.relevant_docs.values()),
            None,
            problems,
            encoding,
        )
        return LoadResult(ds, report)
    if not path.is_file():
        _fail(f"{path} does not exist.")
    if path.suffix.lower() != ".zip":
        _check_size(path.name, path.stat().st_size)  # before reading it into memory
    return load_qa_file(path.name, path.read_bytes(), **kw)
