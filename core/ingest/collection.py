"""Several passage sources as one collection: the CLI's ``load_passages_path`` (a folder or file of
documents, a passages-only table, or a QA file's passages) and merging the passages of several files
(ids unique, repeated texts once). One file is read by :mod:`core.ingest.passages`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core.dataset import DataError, QADataset
from core.ingest import decoding
from core.ingest.chunking import Chunk, chunk_id, load_documents
from core.ingest.pairs import norm_ws
from core.ingest.passages import DOCUMENT_EXTS, QA_ARCHIVE_EXTS, TABLE_EXTS, check_size, read_passages_file
from core.ingest.qafiles import load_qa_path

logger = logging.getLogger(__name__)


def merge_chunks(parts: Iterable[tuple[str, Sequence[Chunk]]]) -> tuple[list[Chunk], list[str]]:
    """Several files' passages as one list: a text seen before is kept once; an id already taken by
    another text gets :func:`core.ingest.chunking.chunk_id` of its file and text.

    Args:
        parts: ``(file name, chunks)`` per file, in order.

    Returns:
        ``(chunks, notes)``: ids unique; one note per kind of change, with counts.
    """
    out: list[Chunk] = []
    texts: set[str] = set()
    ids: set[str] = set()
    repeated = renamed = 0
    for name, chunks in parts:
        for c in chunks:
            key = norm_ws(c.text)
            if key in texts:
                repeated += 1
                continue
            pid, repeat = c.id, 0
            while pid in ids:
                pid = chunk_id(name, c.text, repeat=repeat)
                repeat += 1
            renamed += pid != c.id
            texts.add(key)
            ids.add(pid)
            out.append(Chunk(pid, c.text, c.source, c.page, c.index))
    notes = []
    if repeated:
        notes.append(f"{repeated:,} passage{'s' if repeated != 1 else ''} with the same text as another (in the same "
                     f"file or another) kept once: {len(out):,} passage{'s' if len(out) != 1 else ''} in the "
                     "collection.")
    if renamed:
        notes.append(f"{renamed:,} passage id{'s' if renamed != 1 else ''} already used by another file's passage "
                     "got a new id.")  # fmt: skip
    return out, notes


def collection_dataset(chunks: Sequence[Chunk]) -> QADataset:
    """A collection as the dataset type: every passage, its source, no questions yet."""
    return QADataset(
        queries={},
        corpus={c.id: c.text for c in chunks},
        relevant_docs={},
        sources={c.id: c.label for c in chunks if c.label},
    )


@dataclass
class CollectionReport:
    """What :func:`load_passages_path` read.

    Attributes:
        files: ``(file name, what was read)`` per file used, in order.
        problems: One message per file skipped, then the warnings of the files read.
        n_passages: Passages in the collection.
        questions_ignored: Questions of QA files that were read for their passages only.
    """

    files: list[tuple[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    n_passages: int = 0
    questions_ignored: int = 0

    def summary(self) -> str:
        """One line, e.g. ``"1,204 passages from 3 files; 790 questions ignored (passages only); 1 file skipped"``."""
        n = len(self.files)
        line = f"{self.n_passages:,} passages from {n} file{'s' if n != 1 else ''}"
        if self.questions_ignored:
            line += f"; {self.questions_ignored:,} questions ignored (passages only)"
        return line


def _files_under(path: Path) -> list[Path]:
    wanted = (*DOCUMENT_EXTS, *TABLE_EXTS, *QA_ARCHIVE_EXTS)
    return sorted(
        p for p in path.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
        and p.suffix.lower() in wanted
    )  # fmt: skip


def _is_beir_dir(path: Path) -> bool:
    return (path / "corpus.jsonl").is_file() or any((d / "corpus.jsonl").is_file() for d in path.iterdir() if d.is_dir())


def load_passages_path(path: str | Path) -> tuple[dict[str, str], dict[str, str], CollectionReport]:
    """The passages at ``path``, for generating questions from them (``python -m core generate --from``).

    Accepts a folder or a file of documents (.txt .md .pdf .docx .html, extracted and cut into passages
    as the Data page does), a passages-only file (:func:`read_passages_file`), or any QA file ``python -m
    core evaluate`` reads (pair table, IR JSON, BEIR folder or zip): its passages only, ids kept; its
    questions are ignored and the report says so. A folder is read whole (sub-folders included, hidden
    ones skipped), or as one BEIR dataset when it holds a ``corpus.jsonl``. A file that cannot be read
    is skipped and named in the report; passages found in two files are kept once.

    Args:
        path: A file or a folder.

    Returns:
        ``(corpus, sources, report)``: ``{passage id: text}``, ``{passage id: source label}`` (documents:
        ``"file.pdf p.3"``; others as their file gives it) and what was read.

    Raises:
        DataError: the path does not exist, holds no readable file, or no passage at all.
    """
    path = Path(path)
    report = CollectionReport()
    parts: list[tuple[str, list[Chunk]]] = []
    if path.is_dir() and _is_beir_dir(path):
        loaded = load_qa_path(path)
        ds = loaded.dataset
        parts.append((path.name, [Chunk(d, t, ds.sources.get(d, ""), None, i)
                                  for i, (d, t) in enumerate(ds.corpus.items())]))  # fmt: skip
        report.questions_ignored += len(ds.queries)
        report.files.append((path.name, f"BEIR dataset: {len(ds.corpus):,} passages; its {len(ds.queries):,} "
                                        "questions ignored"))  # fmt: skip
        report.problems += [p.message for p in loaded.report.problems]
    elif path.is_dir() or path.is_file():
        files = _files_under(path) if path.is_dir() else [path]
        if not files:
            raise DataError(
                f"{path} holds no document or passages file ({', '.join(DOCUMENT_EXTS + TABLE_EXTS)})."
            )
        docs = [f for f in files if f.suffix.lower() in DOCUMENT_EXTS]
        _read_documents(path, docs, parts, report)
        for f in files:
            if f not in docs:
                _read_table(f, parts, report)
    else:
        raise DataError(f"{path} does not exist.")
    chunks, notes = merge_chunks(parts)
    report.problems += notes
    if not chunks:
        first = report.problems[0] if report.problems else "no passage found"
        raise DataError(f"No passage could be read from {path}: {first}", problems=report.problems)
    report.n_passages = len(chunks)
    logger.info("%s: %s", path, report.summary())
    ds = collection_dataset(chunks)
    return ds.corpus, ds.sources, report


def _read_documents(root: Path, docs: list[Path], parts: list, report: CollectionReport) -> None:
    readable: list[tuple[str, bytes]] = []
    for f in docs:
        name = str(f.relative_to(root)) if root.is_dir() else f.name
        try:
            decoding.check_document_size(name, f.stat().st_size)  # before reading it into memory
        except DataError as exc:
            report.problems.append(str(exc))
            continue
        readable.append((name, f.read_bytes()))
    if not readable:
        return
    docset = load_documents(readable)
    report.problems += docset.problems + docset.notes
    by_file: dict[str, list[Chunk]] = {}
    for c in docset.chunks:
        by_file.setdefault(c.source, []).append(c)
    for name in docset.files:
        chunks = by_file.get(name, [])
        parts.append((name, chunks))
        report.files.append((name, f"document: {len(chunks):,} passages"))


def _read_table(f: Path, parts: list, report: CollectionReport) -> None:
    try:
        if f.suffix.lower() not in QA_ARCHIVE_EXTS:  # before reading it into memory
            check_size(f.name, f.stat().st_size)
        pf = read_passages_file(f.name, f.read_bytes())
    except DataError as exc:
        report.problems.append(f"{f.name}: {exc}" if f.name not in str(exc) else str(exc))
        return
    parts.append((f.name, pf.chunks))
    report.questions_ignored += pf.questions_ignored
    what = "question file" if pf.questions_ignored else "passages file"
    tail = f"; its {pf.questions_ignored:,} questions ignored" if pf.questions_ignored else ""
    report.files.append((f.name, f"{what}: {len(pf.chunks):,} passages{tail}"))
    problems = pf.report.problems[1:] if pf.questions_ignored else pf.report.problems  # [0]: "questions ignored"
    report.problems += [p.message for p in problems]


