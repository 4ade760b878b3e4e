"""IR datasets: the JSON ``{queries, corpus, relevant_docs}`` shape, and BEIR (a folder, or a .zip read in memory).

This module owns reading datasets that come with their own ids:

* IR JSON (:func:`load_ir_json`): ``queries`` and ``corpus`` map ids to texts, ``relevant_docs``
  maps a question id to passage ids (a list, one id, or ``{id: score}`` with score > 0 kept);
  optional ``negatives`` and ``sources`` ride along;
* BEIR (:func:`load_beir_zip`, :func:`load_beir_dir`): corpus.jsonl, queries.jsonl and
  qrels/*.tsv, at the top or inside one folder; qrels/test.tsv is preferred when there are several.
  A zip is checked by its directory before anything is inflated (:data:`MAX_ZIP_MEMBERS`,
  :data:`MAX_ZIP_UNCOMPRESSED_BYTES`, unsafe paths) and read member by member within the
  expansion budget; it is never extracted to disk.

Judgements pointing to ids that do not exist are dropped with a warning naming them; questions
left without a judgement are left out. Errors: :class:`core.dataset.DataError` when nothing usable
is left, a part is missing, or the archive is unsafe.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from core.dataset import QADataset
from core.ingest.decoding import MAX_QA_FILE_BYTES, check_qa_size, check_zip, decode_text
from core.ingest.pairs import as_texts
from core.ingest.report import MAX_LISTED, Problem, cap_where, describe, fail, quote_list
from core.ingest.tables import MAX_BAD_LINES, MAX_ROWS, iter_jsonl, iter_lines, too_many_rows

# Zip guard: BEIR sets that fit a browser-upload workflow are far smaller; anything bigger
# is more likely a zip bomb (tiny compressed, huge expanded) than a dataset.
# Each member may expand to at most the cap of one question file uploaded on its own
# (MAX_QA_FILE_BYTES), and all of them together to three of those (corpus, queries, qrels).
MAX_ZIP_UNCOMPRESSED_BYTES = 3 * MAX_QA_FILE_BYTES  # messages say MB = 10^6 bytes
# A BEIR zip needs three to a handful of files; tens of thousands of members is not one.
MAX_ZIP_MEMBERS = 10_000
# What a file inside a BEIR dataset that is not UTF-8 should be saved as.
EXPORT_AS = "UTF-8 JSONL (corpus, queries) and TSV (qrels) text"


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
                f"{quote_list(miss_q)}. Those judgements were dropped; check the ids match exactly.",
                f"query {next(iter(miss_q))}",
            )
        )
    if miss_d:
        problems.append(
            Problem(
                "warning",
                f"{source}: {len(miss_d)} passage id(s) are judged relevant but missing from the corpus: "
                f"{quote_list(miss_d)}. Those judgements were dropped; check the ids match exactly.",
                f"passage {next(iter(miss_d))}",
            )
        )
    if n_dup:
        problems.append(
            Problem("warning", f"{source}: {n_dup} judgement(s) were listed twice; each is kept once.")
        )
    rel = {q: ds for q, ds in rel.items() if ds}
    if not rel:
        fail(
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
                f"{quote_list(unjudged)}.",
                f"query {unjudged[0]}",
            )
        )
    return {q: t for q, t in queries.items() if q in rel}


def _text_map(obj: Any, key: str, problems: list[Problem], what: str) -> dict[str, str]:
    if not isinstance(obj, dict):
        fail(
            f"'{key}' should be an object mapping each {what} id to its text, like "
            f'{{"{what[0]}1": "..."}}; found {describe(obj)}.'
        )
    out: dict[str, str] = {}
    empty = []
    for k, v in obj.items():
        texts = [t for t in as_texts(v) if t.strip()]
        if not texts:
            empty.append(str(k))
            continue
        out[str(k)] = " ".join(texts).strip() if len(texts) > 1 else texts[0].strip()
    if empty:
        problems.append(
            Problem(
                "warning",
                f"'{key}': {len(empty)} {what}(s) have empty text and were skipped: {quote_list(empty)}.",
                f"{what} {empty[0]}",
            )
        )
    return out


def load_ir_json(obj: dict, problems: list[Problem]) -> tuple[QADataset, int]:
    """The {queries, corpus, relevant_docs[, negatives, sources]} shape -> dataset, n judgements.

    Args:
        obj: The parsed JSON object (it has the three required keys).
        problems: Where warnings go (empty texts, judgements to missing ids, unjudged questions).

    Returns:
        The dataset and the number of judgements read.

    Raises:
        DataError: a part of the wrong shape, or no judgement left.
    """
    queries = _text_map(obj["queries"], "queries", problems, "query")
    corpus = _text_map(obj["corpus"], "corpus", problems, "passage")
    rd = obj["relevant_docs"]
    if not isinstance(rd, dict):
        fail(
            "'relevant_docs' should be an object mapping each query id to its relevant passage ids, "
            f'like {{"q1": ["d1"]}}; found {describe(rd)}.'
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
    skipped, dups = _Capped(), _Capped()
    for line, rec in iter_jsonl(text, label):
        where = f"{label} line {line}"
        rid = rec.get("_id", rec.get("id"))
        body = " ".join(t for t in as_texts(rec.get("text")) if t.strip()).strip()
        title = (
            " ".join(t for t in as_texts(rec.get("title")) if t.strip()).strip() if kind == "corpus" else ""
        )
        content = f"{title}\n{body}" if title and body else (title or body)
        if rid is None or str(rid).strip() == "" or not content:
            reason = "has no _id" if rid is None or str(rid).strip() == "" else "has empty text"
            skipped.append(Problem("warning", f"{cap_where(where)} {reason}; skipped.", where))
            continue
        rid = str(rid)
        if rid in out:
            dups.append(Problem("warning", f"{where}: _id {rid!r} appears again; the first is kept.", where))
            continue
        out[rid] = content
    skipped.report(problems, f"skipped lines in {label}")
    dups.report(problems, f"repeated ids in {label}")
    return out


class _Capped:
    """Warnings of one kind: the first :data:`MAX_LISTED` kept, the rest only counted (a file of
    millions of bad lines must not become millions of messages)."""

    def __init__(self) -> None:
        self.listed: list[Problem] = []
        self.n = 0

    def append(self, problem: Problem) -> None:
        self.n += 1
        if len(self.listed) < MAX_LISTED:
            self.listed.append(problem)

    def report(self, problems: list[Problem], what: str) -> None:
        problems.extend(self.listed)
        if self.n > len(self.listed):
            problems.append(Problem(self.listed[0].level, f"... and {self.n - len(self.listed):,} more {what}."))


def _beir_qrels(text: str, label: str, problems: list[Problem]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    bad = _Capped()
    first = True
    for i, line in iter_lines(text):
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
                    f"{cap_where(where)}: expected query-id, corpus-id and a numeric score separated by "
                    "tabs; line skipped.",
                    where,
                )
            )
            if bad.n >= MAX_BAD_LINES and bad.n > 2 * len(out):
                fail(
                    f"{label}: {bad.n} of the first {i:,} lines are not judgements (query-id, corpus-id and a "
                    "numeric score separated by tabs); stopped reading there. Check that this is a BEIR qrels file.",
                    where,
                )
            continue
        if score > 0:
            if len(out) >= MAX_ROWS:
                too_many_rows(label, "judgements")
            out.append((parts[0], parts[1]))
    bad.report(problems, f"malformed lines in {label}")
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
        fail(
            f"{label} holds more than one corpus.jsonl ({quote_list(corpora)}); upload one dataset at a time."
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
        found = quote_list(names, limit=12) if names else "nothing"
        fail(
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
                    f"Several qrels files ({quote_list(rel_names)}); used qrels/test.tsv only.",
                    "qrels/test.tsv",
                )
            )
        else:
            problems.append(
                Problem(
                    "warning",
                    f"Several qrels files and no test.tsv; merged {quote_list(rel_names)}.",
                    "qrels",
                )
            )
    encodings: dict[str, None] = {}

    def text_of(name: str) -> str:
        decoded = decode_text(read(name), name[len(prefix) :], EXPORT_AS)
        if decoded.note:
            problems.append(Problem("warning", decoded.note, decoded.where))
        encodings.setdefault(decoded.encoding, None)
        return decoded.text

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
    check_zip(
        infos,
        label,
        max_members=MAX_ZIP_MEMBERS,
        max_bytes=MAX_ZIP_UNCOMPRESSED_BYTES,
        what="a BEIR dataset needs a handful",
        advice="Upload a smaller dataset.",
        max_member_bytes=MAX_QA_FILE_BYTES,
    )
    out: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        name = info.filename.replace("\\", "/")
        parts = PurePosixPath(name).parts
        if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or ".." in parts:
            fail(
                f"{label} contains an unsafe path {info.filename!r} (absolute or with '..'). "
                "Zip the dataset folder again with plain relative paths."
            )
        if info.is_dir():
            continue
        out[name] = info
    return out


def load_beir_zip(data: bytes, label: str, problems: list[Problem]) -> tuple[QADataset, int, str]:
    """A BEIR dataset zipped (read in memory, member by member, never extracted).

    Args:
        data: The zip's bytes.
        label: The file name for messages.
        problems: Where warnings go.

    Returns:
        The dataset, the number of judgements read and the encodings used (comma-separated).

    Raises:
        DataError: not a zip, unsafe paths, over :data:`MAX_ZIP_MEMBERS` or
            :data:`MAX_ZIP_UNCOMPRESSED_BYTES`, password-protected or damaged members, missing parts.
    """
    if len(data) > MAX_ZIP_UNCOMPRESSED_BYTES:  # compressed bigger than it may expand to: refused unread
        fail(
            f"{label} is {len(data) / 1e6:,.0f} MB, over the {MAX_ZIP_UNCOMPRESSED_BYTES / 1e6:,.0f} MB limit for a "
            "zipped dataset. Upload a smaller dataset."
        )
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        fail(f"{label} is not a readable zip archive. Zip the BEIR folder again.")
    with zf:
        members = _zip_names(zf, label)
        budget = [MAX_ZIP_UNCOMPRESSED_BYTES]

        def read(name: str) -> bytes:
            info = members[name]
            if info.flag_bits & 0x1:
                fail(f"{label}: {name} is password-protected; zip it again without a password.")
            cap = min(budget[0], MAX_QA_FILE_BYTES)
            with zf.open(info) as fh:
                blob = fh.read(cap + 1)  # never trust the declared size
            if len(blob) > MAX_QA_FILE_BYTES:
                fail(
                    f"{label}: {name} expands to more than {MAX_QA_FILE_BYTES / 1e6:.0f} MB, the limit for one file; "
                    "upload a smaller dataset."
                )
            if len(blob) > budget[0]:
                fail(
                    f"{label} expands to more than {MAX_ZIP_UNCOMPRESSED_BYTES / 1e6:.0f} MB; upload a smaller one."
                )
            budget[0] -= len(blob)
            return blob

        try:
            return _load_beir(list(members), read, label, problems)
        except (zipfile.BadZipFile, OSError, EOFError) as e:  # corrupt member
            fail(f"{label} is damaged ({e}). Zip the BEIR folder again.")


def load_beir_dir(path: Path, problems: list[Problem]) -> tuple[QADataset, int, str]:
    """A BEIR dataset in a folder (its files directly in it, or in one sub-folder).

    Returns:
        As :func:`load_beir_zip`.

    Raises:
        DataError: missing parts, or nothing usable.
    """
    names: list[str] = []
    roots = [path] + sorted(p for p in path.iterdir() if p.is_dir())
    for root in roots:
        rel = "" if root == path else f"{root.name}/"
        for base in ("corpus.jsonl", "queries.jsonl"):
            if (root / base).is_file():
                names.append(rel + base)
        if (root / "qrels").is_dir():
            names += sorted(rel + f"qrels/{p.name}" for p in (root / "qrels").glob("*.tsv") if p.is_file())
    def read(name: str) -> bytes:
        check_qa_size(name, (path / name).stat().st_size)  # before reading it into memory
        return (path / name).read_bytes()

    return _load_beir(names, read, f"Folder {path.name}", problems)
