"""Passages without questions: a vector store's export, documents, or the passages of a QA file.

This module owns reading a collection of passages that has no questions yet (the start for a user
who has only documents; questions are generated or labelled later):

* :func:`read_passages_file` reads one passages-only table (CSV, TSV, JSONL, JSON list or Parquet
  with a text column and optional id / source / metadata columns, as a vector store exports them)
  into :class:`~core.ingest.chunking.Chunk` objects with a per-file
  :class:`~core.ingest.report.ValidationReport`; a QA file given instead (it has a question column,
  or is IR JSON / BEIR) gives its passages, and the report says its questions were ignored;
* :func:`detect_passage_columns` says which column is which (by name, then by content), and
  :func:`read_passage_columns` lists the columns for choosing them by hand;
* :mod:`core.ingest.collection` puts several files' passages together (ids unique, repeated texts
  once) and holds the CLI's entry point ``load_passages_path`` (documents, a passages-only file, or
  any QA file's passages).

Passage ids: the id column's value when it names one passage text; otherwise
:func:`core.ingest.chunking.chunk_id` of the file name and text (stable across uploads). Sources: the
source column's value (or the metadata's ``source`` / ``file_name`` / ``title`` ...); none when the
file names no document (then a split "by document" falls back to "by passage" and says so).

Errors: :class:`core.dataset.DataError` with a message for the user (what, where, what to do);
anything merely suspicious is a warning :class:`~core.ingest.report.Problem` in the report.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from core.dataset import DataError, QADataset
from core.ingest import decoding
from core.ingest.chunking import Chunk, chunk_id
from core.ingest.pairs import as_texts, norm_ws
from core.ingest.qafiles import check_lengths, load_qa_file, sniff_kind, table_from_text
from core.ingest.report import PassageMapping, Problem, ValidationReport, capped, fail, quote_list
from core.ingest.tables import (
    Record,
    column_samples,
    detect_columns,
    is_name_column,
    match_columns,
    parse_parquet,
)

logger = logging.getLogger(__name__)

PASSAGE_ROLE_CANDIDATES: dict[str, tuple[str, ...]] = {
    # Compared like pair-table columns (lower-cased, no spaces/underscores/hyphens, plural "s" accepted):
    # LangChain writes page_content/metadata, Chroma ids/documents/metadatas, LlamaIndex id_/text/metadata.
    "text": ("text", "passage", "content", "pagecontent", "chunk", "chunktext", "passagetext", "document",
             "body", "contents", "context", "doc"),
    "id": ("id", "passageid", "chunkid", "docid", "documentid", "corpusid", "nodeid", "pid", "uuid"),
    "source": ("source", "file", "filename", "filepath", "sourcefile", "sourcedocument", "documentname",
               "docname", "path", "url", "title"),
    "metadata": ("metadata", "meta", "payload", "properties"),
}
PASSAGE_ROLES = ("text", "id", "source", "metadata")
# Keys of a metadata object read as the passage's source (first found wins) and, without a text
# column, as its text.
METADATA_SOURCE_KEYS = ("source", "file_name", "filename", "file_path", "filepath", "document", "doc_name",
                        "title", "url", "path")
METADATA_TEXT_KEYS = ("text", "page_content", "content", "chunk", "passage")
DOCUMENT_EXTS = (".txt", ".md", ".pdf", ".docx", ".html", ".htm")
TABLE_EXTS = (".csv", ".tsv", ".tab", ".jsonl", ".ndjson", ".json", ".parquet")
QA_ARCHIVE_EXTS = (".zip",)  # a BEIR dataset
EXPORT_AS = "CSV UTF-8, JSONL or Parquet"
# Without a column named like text, the column with the longest values is taken as the text (and the
# user asked) only if its values average at least this many characters: ids and numbers never qualify.
MIN_GUESSED_TEXT_CHARS = 20


@dataclass
class PassageFile:
    """One passages file, read.

    Attributes:
        name: The file name.
        chunks: Its passages (``Chunk.source``: the row's source, "" when none; ``page`` None).
        report: What was read (``passages_only`` True; ``mapping`` a :class:`PassageMapping`, None for a QA
            file read for its passages) and every warning.
        questions_ignored: Questions of a QA file read for its passages only.
    """

    name: str
    chunks: list[Chunk]
    report: ValidationReport
    questions_ignored: int = 0


# --------------------------------------------------------------------------- columns


def _metadata_dict(value: Any) -> dict | None:
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            obj = json.loads(value)
        except json.JSONDecodeError:
            return None
        return obj if isinstance(obj, dict) else None
    return None


def _from_metadata(value: Any, keys: tuple[str, ...]) -> str:
    meta = _metadata_dict(value)
    if not meta:
        return ""
    for k in keys:
        texts = [t.strip() for t in as_texts(meta.get(k)) if t.strip()]
        if texts:
            return texts[0]
    return ""


def _mean_length(values: list[Any]) -> float:
    texts = [t for v in values for t in as_texts(v)[:1]]
    return sum(len(t) for t in texts) / max(1, len(texts))


def detect_passage_columns(columns: list[str], samples: dict[str, list[Any]] | None = None) -> PassageMapping:
    """Guess which columns hold the passage text, its id, its source and a metadata object.

    Names first (:data:`PASSAGE_ROLE_CANDIDATES`); a text-named column of file names (``document``:
    ``"manual.pdf"``) is the source instead. Without a text-named column, the metadata's text key
    (:data:`METADATA_TEXT_KEYS`) is used, else the column with the longest values when they average
    :data:`MIN_GUESSED_TEXT_CHARS` or more (not confident).

    Args:
        columns: Column names as they appear in the file.
        samples: Optional first values of each column (:func:`core.ingest.tables.column_samples`).

    Returns:
        The mapping; ``confident`` is False when no text column was named or two columns match a role.
    """
    samples = samples or {}
    found = {role: match_columns(list(columns), PASSAGE_ROLE_CANDIDATES[role]) for role in PASSAGE_ROLES}
    names = [c for c in found["text"] if is_name_column(c, samples)]
    if names and samples:
        found["text"] = [c for c in found["text"] if c not in names]
        found["source"] = list(dict.fromkeys([*found["source"], *names]))
    for role in ("id", "source", "metadata"):  # a column plays one role
        found[role] = [c for c in found[role] if c not in found["text"][:1]]
    found["source"] = [c for c in found["source"] if c not in found["id"][:1]]
    pick = {role: (m[0] if m else None) for role, m in found.items()}
    confident = pick["text"] is not None and len(found["text"]) <= 1 and len(found["id"]) <= 1
    if pick["text"] is None and samples:
        meta = pick["metadata"]
        if meta and any(_from_metadata(v, METADATA_TEXT_KEYS) for v in samples.get(meta, [])):
            confident = True  # the text is inside the metadata (as Pinecone exports keep it)
        else:
            others = [c for c in columns if c not in (pick["id"], pick["source"], pick["metadata"])]
            longest = max(others, key=lambda c: _mean_length(samples.get(c, [])), default=None)
            if longest is not None and _mean_length(samples.get(longest, [])) >= MIN_GUESSED_TEXT_CHARS:
                pick["text"] = longest
    return PassageMapping(pick["text"], pick["id"], pick["source"], pick["metadata"], confident)


def _resolve(columns: list[str], mapping: PassageMapping | dict | None, samples: dict) -> PassageMapping:
    detected = detect_passage_columns(columns, samples)
    if mapping is None:
        if detected.text is None and detected.metadata is None:
            fail(
                f"Could not tell which column holds the passage text (name it one of: "
                f"{', '.join(PASSAGE_ROLE_CANDIDATES['text'][:6])}). Columns found: {quote_list(columns, 30)}. "
                "Rename the column, or choose it by hand."
            )
        return detected
    if isinstance(mapping, dict):
        unknown = [k for k in mapping if k not in PASSAGE_ROLES]
        if unknown:
            fail(f"Unknown mapping key(s) {quote_list(unknown)}; use {', '.join(PASSAGE_ROLES)}.")
        base = {r: getattr(detected, r) for r in PASSAGE_ROLES}
        base.update({k: (v or None) for k, v in mapping.items()})
        for role in PASSAGE_ROLES:  # a column the user chose is not also a detected role
            if role not in mapping and base[role] in {v for v in mapping.values() if v}:
                base[role] = None
        mapping = PassageMapping(**base)
    for role in PASSAGE_ROLES:
        name = getattr(mapping, role)
        if name is not None and name not in columns:
            fail(f"The {role} column {name!r} is not in the file. Available columns: {quote_list(columns, 30)}.")
    if mapping.text is None and mapping.metadata is None:
        fail(f"The mapping names no text column. Available columns: {quote_list(columns, 30)}.")
    return PassageMapping(mapping.text, mapping.id, mapping.source, mapping.metadata, True)


# --------------------------------------------------------------------------- one file


def _is_zip(name: str, data: bytes) -> bool:
    return data.startswith(decoding.ZIP_MAGIC) or decoding.extension(name) in QA_ARCHIVE_EXTS


def check_size(name: str, size: int) -> None:
    if size > decoding.MAX_QA_FILE_BYTES:
        raise DataError(
            f"{name} is {size / 1e6:.0f} MB, over the {decoding.MAX_QA_FILE_BYTES / 1e6:.0f} MB limit for one "
            "passages file (well over 100,000 passages: more than this machine can encode in reasonable time). "
            "Export a part of the collection, or split the file and upload the parts you need."
        )


def _records(name: str, data: bytes, problems: list[Problem]) -> tuple[str, Any, str | None]:
    """("table", (fmt, columns, records), encoding), ("ir", obj, encoding) or ("zip", None, None)."""
    kind = sniff_kind(name, data)
    if kind == "zip":
        return "zip", None, None
    if kind == "parquet":
        columns, records = parse_parquet(data, name)
        return "table", ("parquet", columns, records), None
    if not data.strip():
        fail(f"{name} is empty. Upload a table with a header row (e.g. id, text, source) and one row per passage.")
    decoded = decoding.decode_text(data, name, EXPORT_AS)
    if decoded.note:
        problems.append(Problem("warning", decoded.note, decoded.where))
    what, payload = table_from_text(name, decoded.text, kind, problems)
    return what, payload, decoded.encoding


def read_passage_columns(name: str, data: bytes) -> list[str]:
    """Column names of a passages table, for choosing the columns by hand; ``[]`` for IR JSON and BEIR.

    Raises:
        DataError: the file cannot be parsed at all.
    """
    if not _is_zip(name, data):
        check_size(name, len(data))
    what, payload, _ = _records(name, data, [])
    return payload[1] if what == "table" else []


def _as_qa_file(name: str, data: bytes, max_tokens: int | None) -> PassageFile:
    """A QA file read for its passages: its questions are ignored (and the report says so)."""
    loaded = load_qa_file(name, data, max_tokens=max_tokens)
    ds, rep = loaded.dataset, loaded.report
    if not ds.corpus:
        fail(
            f"{name} holds questions with answers but no passages: read it as a question file together with the "
            "documents that hold the answers, or give the documents (or a passages file) instead."
        )
    problems = list(rep.problems)
    n_q = len(ds.queries)
    problems.insert(0, Problem(
        "warning",
        f"{name} is a question file: its {n_q:,} question{'s are' if n_q != 1 else ' is'} ignored and only its "
        f"{len(ds.corpus):,} passages are read. Upload it under question files to use its questions.",
    ))  # fmt: skip
    chunks = [Chunk(d, t, ds.sources.get(d, ""), None, i) for i, (d, t) in enumerate(ds.corpus.items())]
    report = ValidationReport(rep.format, rep.n_rows, 0, len(chunks), 0, None, problems, rep.encoding,
                              passages_only=True)  # fmt: skip
    return PassageFile(name, chunks, report, n_q)


def read_passages_file(
    name: str,
    data: bytes,
    mapping: PassageMapping | dict | None = None,
    max_tokens: int | None = None,
) -> PassageFile:
    """Read one passages-only file (or the passages of a QA file) into chunks, with a report.

    Rows with a blank text are skipped; a text repeated is kept once; an id given to two different
    texts (or blank) is replaced by :func:`core.ingest.chunking.chunk_id`; each is a warning (ten of a
    kind listed at most).

    Args:
        name: File name as uploaded (its extension guides format detection).
        data: File content.
        mapping: Columns chosen by hand, e.g. ``{"text": "body", "id": "key"}`` (roles not named keep the
            detected column); None: detect. A file with a question column is read as a QA file unless a
            mapping is given.
        max_tokens: Warn about passages longer than this many tokens (estimated from words).

    Returns:
        The file's passages and report.

    Raises:
        DataError: too big, binary, empty, malformed, no text column, no passage left.
    """
    if not _is_zip(name, data):  # a BEIR zip has its own limits (members, expanded size)
        check_size(name, len(data))
    problems: list[Problem] = []
    what, payload, encoding = _records(name, data, problems)
    if what in ("zip", "ir"):
        return _as_qa_file(name, data, max_tokens)
    fmt, columns, records = payload
    samples = column_samples(records)
    if mapping is None:
        qa = detect_columns(columns, samples)
        if qa.query is not None:  # pairs, or questions with answers (refused: no passages)
            return _as_qa_file(name, data, max_tokens)
    used = _resolve(columns, mapping, samples)
    if not used.confident:
        problems.append(Problem(
            "warning",
            f"Not sure which column holds the passage text: {used.text!r} was used"
            + (" (the longest values)" if used.text not in PASSAGE_ROLE_CANDIDATES else "")
            + ". Choose the columns by hand if that is wrong.",
        ))  # fmt: skip
    chunks, where_of = _rows_to_chunks(name, records, used, problems)
    if not chunks:
        fail(f"{name}: no row has a passage text (column {used.text or used.metadata!r}); nothing to read.")
    if max_tokens is not None:
        corpus = QADataset({}, {c.id: c.text for c in chunks}, {})
        check_lengths(corpus, max_tokens, None, where_of, problems)
    if used.source is None and not any(c.source for c in chunks):
        problems.append(Problem(
            "warning",
            f"{name} names no source document for its passages (no source, file or title column): questions "
            "cannot be kept together by document when splitting.",
        ))  # fmt: skip
    report = ValidationReport(fmt, len(records), 0, len(chunks), 0, used, problems, encoding, passages_only=True)
    logger.info("%s: %s", name, report.summary())
    return PassageFile(name, chunks, report)


def _rows_to_chunks(
    name: str, records: list[Record], m: PassageMapping, problems: list[Problem]
) -> tuple[list[Chunk], dict[str, str]]:
    blank, repeats = [], []
    rows: list[tuple[str, str, str, str]] = []  # (where, given id, text, source)
    seen: dict[str, str] = {}
    for where, rec in records:
        meta = rec.get(m.metadata) if m.metadata else None
        text = next((t.strip() for t in as_texts(rec.get(m.text)) if t.strip()), "") if m.text else ""
        if not text and meta is not None:
            text = _from_metadata(meta, METADATA_TEXT_KEYS)
        if not text:
            blank.append(Problem("warning", f"{where[:1].upper()}{where[1:]}: the passage text is empty; skipped.",
                                 where))  # fmt: skip
            continue
        key = norm_ws(text)
        if key in seen:
            repeats.append(Problem("warning", f"{where[:1].upper()}{where[1:]} repeats the passage of "
                                   f"{seen[key]}; kept once.", where))  # fmt: skip
            continue
        seen[key] = where
        given = next((t.strip() for t in as_texts(rec.get(m.id)) if t.strip()), "") if m.id else ""
        source = next((t.strip() for t in as_texts(rec.get(m.source)) if t.strip()), "") if m.source else ""
        if not source and meta is not None:
            source = _from_metadata(meta, METADATA_SOURCE_KEYS)
        rows.append((where, given, text, source))
    capped(problems, blank, "rows without a passage text")
    capped(problems, repeats, "repeated passages")
    counts: dict[str, int] = {}
    for _, given, _, _ in rows:
        if given:
            counts[given] = counts.get(given, 0) + 1
    clashes = [
        Problem("warning", f"{where[:1].upper()}{where[1:]}: the id {given!r} is given to {counts[given]} "
                "different passages; this one got a new id.", where)
        for where, given, _, _ in rows if given and counts[given] > 1
    ]  # fmt: skip
    capped(problems, clashes, "passages whose id is not unique")
    chunks: list[Chunk] = []
    where_of: dict[str, str] = {}
    ids: set[str] = set()
    for i, (where, given, text, source) in enumerate(rows):
        pid = given if given and counts[given] == 1 else chunk_id(name, text)
        repeat = 1
        while pid in ids:
            pid = chunk_id(name, text, repeat=repeat)
            repeat += 1
        ids.add(pid)
        chunks.append(Chunk(pid, text, source, None, i))
        where_of[pid] = where
    return chunks, where_of


def looks_like_passages(columns: list[str]) -> bool:
    """Whether a table's columns look like passages without questions (a text column, no question column).

    For the Data page: a passages file dropped among question files gets a pointer to the right place.
    """
    qa = detect_columns(columns)
    return qa.query is None and bool(match_columns(columns, PASSAGE_ROLE_CANDIDATES["text"]))

