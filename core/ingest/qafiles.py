"""Load and validate question/passage files into one :class:`~core.dataset.QADataset`: the entry points.

:func:`load_qa_file` (bytes as uploaded), :func:`load_qa_path` (a file or a BEIR folder) and
:func:`read_columns` (for choosing columns by hand) take a file from bytes to a clean dataset:

* refusals before any parsing: a question file over :data:`~core.ingest.decoding.MAX_QA_FILE_BYTES`,
  a spreadsheet or document extension, and content whose signature says it is something else
  (a PDF, an image, an archive);
* format detection (by extension, then by content): pair tables (CSV, TSV, JSONL, JSON list or
  ``{"data": [...]}``, Parquet; :mod:`core.ingest.tables`, :mod:`core.ingest.pairs`), the IR JSON
  ``{queries, corpus, relevant_docs}`` and BEIR (a folder, or a .zip read in memory;
  :mod:`core.ingest.irjson`);
* text decoding (:func:`core.ingest.decoding.decode_text`: UTF-8, with BOM, UTF-16/32 with BOM,
  lenient UTF-8 or Windows-1252 with a warning; binary content refused);
* repeated keys inside a JSON object (e.g. an id used twice in an IR dataset): the first value is
  kept, with a warning;
* passages longer than the model reads, when ``max_tokens`` is given;
* the :class:`ValidationReport`: every :class:`Problem` found, each naming where it is (``row 14``
  counts rows as a spreadsheet shows them: the header is row 1).

The report types live in :mod:`core.ingest.report` and are re-exported here.

Errors: a file that cannot be used raises :class:`core.dataset.DataError`; its message says what
is wrong, where and what to do, and ``.problems`` holds the message of every error found (strings,
as ``DataError`` declares). Nothing partial is returned. Anything merely suspicious is a
``"warning"`` Problem in the report of a successful load.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.dataset import QADataset
from core.ingest import irjson
from core.ingest.decoding import ZIP_MAGIC, check_qa_size, content_type, decode_text, extension
from core.ingest.irjson import load_beir_dir, load_beir_zip, load_ir_json
from core.ingest.pairs import pairs_to_dataset
from core.ingest.report import (
    ColumnMapping,
    LoadResult,
    Problem,
    ValidationReport,
    describe,
    fail,
    json_msg,
    quote_list,
    refuse,
)
from core.ingest.tables import (
    MAX_ROWS,
    column_samples,
    columns_of,
    detect_columns,
    parse_jsonl,
    parse_parquet,
    parse_table,
    pick_delimiter,
    resolve_mapping,
)

__all__ = [
    "ColumnMapping",
    "LoadResult",
    "Problem",
    "ValidationReport",
    "detect_columns",
    "load_qa_file",
    "load_qa_path",
    "read_columns",
]

logger = logging.getLogger(__name__)

# Long passages named as examples in the too-long warning.
MAX_LONG_EXAMPLES = 3
# Rough WordPiece tokens per whitespace word in English prose, for the length check when
# no tokenizer is given (MiniLM/BERT vocabularies split ~30% of words).
WORDS_TO_TOKENS = 1.3
# What a question file should be exported as, ending the decoder's advice.
EXPORT_AS = "CSV UTF-8, JSON or JSONL text"
_TABLE_EXTS = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".txt": None}
_JSON_EXTS = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_REFUSED_EXTS = {
    ".xlsx": "an Excel workbook",
    ".xls": "an Excel workbook",
    ".ods": "a spreadsheet workbook",
    ".pdf": "a PDF",
    ".docx": "a Word document",
    ".doc": "a Word document",
}
PARQUET_MAGIC = b"PAR1"
# JSON objects and lists (counted as '{' and '[' characters, strings included) in one JSON file:
# json.loads of 50 MB of '{},' would build 16 million dicts (gigabytes). Three per row of MAX_ROWS.
MAX_JSON_CONTAINERS = 3 * MAX_ROWS


def check_lengths(
    ds: QADataset,
    max_tokens: int,
    count_tokens: Callable[[str], int] | None,
    where_of: dict[str, str],
    problems: list[Problem],
) -> None:
    """Warn (one Problem in ``problems``) about passages longer than ``max_tokens`` tokens.

    Args:
        ds: The dataset whose corpus is checked.
        max_tokens: What a passage is searched by.
        count_tokens: Token counter; None estimates tokens as whitespace words x :data:`WORDS_TO_TOKENS`.
        where_of: ``{passage id: "row N"}`` for the examples named.
        problems: Where the warning goes.
    """
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
            f"{max(n for _, n in long)} tokens. Examples: {examples}. If their ends matter, split long passages "
            "into smaller chunks, or turn on 'Windowed passages' (Train page, advanced settings) to search "
            "every part of them.",
            where_of.get(first, f"passage {first}"),
        )
    )


# --------------------------------------------------------------------------- public API


def table_from_text(name: str, text: str, kind: str | None, problems: list[Problem]) -> tuple[str, Any]:
    """Text -> ("table", (fmt, columns, records)) or ("ir", obj), by ``kind`` (:func:`sniff_kind`) then content.

    Raises:
        DataError: empty text, invalid JSON, an unexpected JSON shape, or a malformed table.
    """
    stripped = text.lstrip()
    if not stripped.strip():
        fail(
            f"{name} is empty. Upload a table with a header row (e.g. question, passage) and one row per pair."
        )
    if kind is None:
        kind = "json" if stripped[0] in "[{" else "table"
    if kind == "jsonl" and stripped[0] == "[":
        kind = "json"
    if kind == "json":
        containers = text.count("{") + text.count("[")
        if containers > MAX_JSON_CONTAINERS:  # before json.loads builds millions of objects
            fail(
                f"{name} holds {containers:,} JSON objects and lists, over the {MAX_JSON_CONTAINERS:,} limit for one "
                "file (held in memory, that many take gigabytes). Keep a sample of the items, or split the file."
            )
        repeated: dict[str, int] = {}
        try:
            obj = json.loads(text, object_pairs_hook=lambda pairs: _first_wins(pairs, repeated))
        except json.JSONDecodeError as e:
            if e.msg == "Extra data" and stripped[0] == "{":
                kind = "jsonl"  # a .json file holding one object a line
            else:
                fail(
                    f"{name} is not valid JSON: {json_msg(e)} at line {e.lineno}, column {e.colno}. Fix it there, "
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
                        f"{quote_list(repeated)}. Only the first value of each was kept (for an IR dataset: "
                        "the first question or passage with that id). Give every question and passage its "
                        "own id, or remove the repeats.",
                    )
                )
            return _json_shape(obj)
    if kind == "jsonl":
        records = [(f"line {i}", rec) for i, rec in parse_jsonl(text, "")]
        return "table", ("jsonl", columns_of(records), records)
    delimiter = pick_delimiter(text, _TABLE_EXTS.get(extension(name)))
    columns, records = parse_table(text, delimiter, problems)
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
            fail(f"The file looks like an IR dataset but lacks {quote_list(missing)}. Expected {_SHAPES}.")
        return "ir", obj
    items = obj.get("data") if isinstance(obj, dict) else obj
    if not isinstance(items, list):
        fail(f"Unexpected JSON shape: expected {_SHAPES}; found {describe(obj)}.")
    if not items:
        fail("The JSON list is empty: there are no question/passage pairs in it.")
    bad = [
        Problem(
            "error",
            f"Item {i} is {describe(it)}; expected an object with a question and a passage.",
            f"item {i}",
        )
        for i, it in enumerate(items, 1)
        if not isinstance(it, dict)
    ]
    if bad:
        refuse(bad)
    records = [(f"item {i}", it) for i, it in enumerate(items, 1)]
    return "table", ("json-pairs", columns_of(records), records)


def sniff_kind(name: str, data: bytes) -> str | None:
    """What a data file is by its extension and first bytes: 'zip', 'parquet', 'json', 'jsonl', 'table', or
    None (decide from the text).

    Raises:
        DataError: a spreadsheet, PDF or Word extension, or content that is an image, a PDF, an archive...
    """
    ext = extension(name)
    if ext == ".parquet" or data.startswith(PARQUET_MAGIC):
        return "parquet"
    if ext in _REFUSED_EXTS:
        fail(
            f"{name} is {_REFUSED_EXTS[ext]}, not a data file. Export the table as CSV UTF-8, then upload that."
        )
    what = content_type(data)
    if what is not None:
        fail(
            f"{name} is {what} (judging by its content), not a question file. Export the pairs as CSV "
            "UTF-8, JSON or JSONL and upload that"
            + (" (a PDF that holds the source text can be uploaded as a document)." if "PDF" in what else ".")
        )
    if data.startswith(ZIP_MAGIC) or ext == ".zip":
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
    kind = sniff_kind(name, data)
    if kind == "zip":
        return []
    check_qa_size(name, len(data))
    if kind == "parquet":
        return parse_parquet(data, name)[0]
    text = decode_text(data, name, EXPORT_AS).text
    what, payload = table_from_text(name, text, kind, [])
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
    kind = sniff_kind(name, data)
    if kind != "zip":  # a BEIR zip has its own limits (members, expanded size)
        check_qa_size(name, len(data))
    answers: dict[str, str] = {}
    answer_documents: dict[str, str] = {}
    where_of: dict[str, str] = {}
    used_mapping: ColumnMapping | None = None
    if kind == "zip":
        ds, n_rows, encoding = load_beir_zip(data, name, problems)
        fmt = "beir"
    elif kind == "parquet":
        columns, records = parse_parquet(data, name)
        used_mapping = resolve_mapping(columns, mapping, problems, column_samples(records))
        rows = pairs_to_dataset(records, used_mapping, problems)
        ds, answers, where_of, answer_documents = rows.dataset, rows.answers, rows.where_of, rows.answer_documents
        fmt, n_rows, encoding = "parquet", len(records), None
    else:
        if not data.strip():
            fail(
                f"{name} is empty. Upload a table with a header row (e.g. question, passage) and one row per pair."
            )
        decoded = decode_text(data, name, EXPORT_AS)
        text, encoding = decoded.text, decoded.encoding
        if decoded.note:
            problems.append(Problem("warning", decoded.note, decoded.where))
        what, payload = table_from_text(name, text, kind, problems)
        if what == "ir":
            ds, n_rows = load_ir_json(payload, problems)
            fmt = "ir-json"
        else:
            fmt, columns, records = payload
            used_mapping = resolve_mapping(columns, mapping, problems, column_samples(records))
            rows = pairs_to_dataset(records, used_mapping, problems)
            ds, answers, where_of, answer_documents = rows.dataset, rows.answers, rows.where_of, rows.answer_documents
            n_rows = len(records)
    if max_tokens is not None:
        check_lengths(ds, max_tokens, count_tokens, where_of, problems)
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
        refuse(report.errors)
    logger.info("%s: %s", name, report.summary())
    return LoadResult(ds, report, answers, answer_documents)


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
        ds, n_rows, encoding = load_beir_dir(path, problems)
        if kw.get("max_tokens") is not None:
            check_lengths(ds, kw["max_tokens"], kw.get("count_tokens"), {}, problems)
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
        fail(f"{path} does not exist.")
    if path.suffix.lower() != ".zip":
        check_qa_size(path.name, path.stat().st_size)  # before reading it into memory
    elif path.stat().st_size > irjson.MAX_ZIP_UNCOMPRESSED_BYTES:
        fail(
            f"{path.name} is {path.stat().st_size / 1e6:,.0f} MB, over the "
            f"{irjson.MAX_ZIP_UNCOMPRESSED_BYTES / 1e6:,.0f} MB limit for a zipped dataset. Upload a smaller dataset."
        )
    return load_qa_file(path.name, path.read_bytes(), **kw)
