"""Bad inputs, one case each, sent through core exactly as the Data page sends them.

``CASES`` is the catalogue (issue "Hardening", items 1 and 5): every case is a set of uploaded
files, the outcome expected (refused, loaded with a warning, loaded, or refused at the split) and
a pattern the message must match (what is wrong, where, and what to do). This module runs each
case through core (:func:`run_core`, the page's own steps in ``core.ingest.intake``: read the
question file, ``load_documents``, link answers, split);
``tests/pages/test_page_data_bad_inputs.py`` uploads the same bytes through the Data page and checks
the page shows the message and the store gets nothing (or, for files that load, only the clean rows
once the user saves). docs/HARDENING.md lists every case with its test and the message seen.

All bad files are made here, in memory (the 100 MB file and the zip bomb once per session).
"""

from __future__ import annotations

import functools
import io
import json
import re
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from core.dataset import DataError, QADataset
from core.ingest import intake
from core.ingest.chunking import load_documents
from core.ingest.decoding import MAX_QA_FILE_BYTES
from core.ingest.irjson import MAX_ZIP_UNCOMPRESSED_BYTES
from core.ingest.qafiles import load_qa_file, load_qa_path
from tests.ingest.test_data import make_zip
from tests.ingest.test_documents import (
    make_blank_pdf,
    make_docx,
    make_docx_bomb,
    make_encrypted_pdf,
    make_pdf,
)

Files = list[tuple[str, bytes]]

# --------------------------------------------------------------------------------------------------
# Builders

PAIRS = [
    (f"How do I stop the {part} from {issue}?", f"If the {part} {issue}, {fix}.")
    for part, issue, fix in [
        ("pump", "leaking oil", "replace the shaft seal and check the case drain"),
        ("valve", "sticking", "flush the spool and fit a 10 micron filter"),
        ("hose", "bursting", "use a hose rated for four times the working pressure"),
        ("filter", "clogging", "change the element when the indicator turns red"),
        ("cylinder", "drifting", "check the piston seals and the holding valve"),
        ("cooler", "running hot", "clean the fins and check the fan clutch"),
        ("motor", "stalling", "check the relief valve setting and the case pressure"),
        ("reservoir", "foaming", "raise the oil level and fix the suction leak"),
    ]
]
N_GOOD = len(PAIRS)


def csv_text(rows: list[tuple[str, ...]], header: str = "question,passage", nl: str = "\n") -> str:
    def cell(v: str) -> str:
        return f'"{v}"' if any(c in v for c in ',"\n') else v

    return header + nl + "".join(",".join(cell(v) for v in row) + nl for row in rows)


GOOD_CSV = csv_text(PAIRS)


def one(name: str, data: bytes | str) -> Callable[[], Files]:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return lambda: [(name, raw)]


def beir(qrels: str | None = None, corpus_extra: list[dict] | None = None) -> dict[str, str]:
    corpus = [{"_id": f"c{i}", "title": "", "text": p} for i, (_, p) in enumerate(PAIRS, 1)]
    queries = [{"_id": f"q{i}", "text": q} for i, (q, _) in enumerate(PAIRS, 1)]
    corpus += corpus_extra or []
    if qrels is None:
        qrels = "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\tc{i}\t1\n" for i in range(1, N_GOOD + 1))
    return {
        "corpus.jsonl": "".join(json.dumps(c) + "\n" for c in corpus),
        "queries.jsonl": "".join(json.dumps(q) + "\n" for q in queries),
        "qrels/test.tsv": qrels,
    }


def ir_json_with_repeated_ids() -> bytes:
    """IR JSON whose objects repeat ids: written by hand, as json.dumps cannot repeat a key."""
    q = ", ".join(f'"q{i}": {json.dumps(t)}' for i, (t, _) in enumerate(PAIRS, 1))
    c = ", ".join(f'"d{i}": {json.dumps(t)}' for i, (_, t) in enumerate(PAIRS, 1))
    r = ", ".join(f'"q{i}": ["d{i}"]' for i in range(1, N_GOOD + 1))
    text = (
        f'{{"queries": {{{q}, "q1": "A second question reusing id q1"}},\n'
        f' "corpus": {{{c}, "d2": "A second passage reusing id d2"}},\n'
        f' "relevant_docs": {{{r}}}}}'
    )
    return text.encode()


def png_image() -> bytes:
    """A real 8x8 red PNG (struct + zlib: no imaging library needed)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = b"".join(b"\x00" + bytes([200, 30, 30] * 8) for _ in range(8))
    header = struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@functools.cache
def file_100mb() -> bytes:
    """A well-formed 100 MB pair table (header + 25 million tiny rows)."""
    return b"question,passage\n" + b"q,p\n" * 25_000_000


@functools.cache
def document_51mb() -> bytes:
    """A 51 MB plain-text document (one word repeated), just over the per-document cap."""
    return b"filler " * (51_000_000 // 7)


@functools.cache
def zip_bomb() -> bytes:
    """A real zip bomb: ~2 MB holding a corpus.jsonl of 510 MB (10 MB over the expansion limit)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("queries.jsonl", '{"_id": "q1", "text": "q"}\n')
        zf.writestr("qrels/test.tsv", "q1\tc1\t1\n")
        with zf.open("corpus.jsonl", "w") as fh:
            block = b" " * (1 << 20)
            for _ in range(MAX_ZIP_UNCOMPRESSED_BYTES // len(block) + 10):
                fh.write(block)
    return buf.getvalue()


_STEPS = [
    ("pump", "whines", "bleed the air"),
    ("valve", "chatters", "raise the pilot pressure"),
    ("hose", "sweats", "tighten the fitting"),
    ("filter", "bypasses", "change the element"),
]


def _step(i: int) -> str:
    part, issue, fix = _STEPS[i % 4]
    return f"Step {i}: the {part} {issue} when the oil is cold, so {fix} before shift {i}."


LONG_PARAGRAPH = " ".join(_step(i) for i in range(1110))  # one paragraph of just over 100,000 characters
assert len(LONG_PARAGRAPH) >= 100_000
LONG_ANSWERS = [(f"What is step {i} of the cold-start procedure?", _step(i)) for i in (1, 302, 603, 904)]

ANSWERS = [
    ("When is the badge issued?", "Your badge is issued on day one."),
    ("Who provides the laptop?", "Laptops come from the IT service desk."),
    ("Where do questions go?", "Questions go to the HR desk on the second floor."),
    ("How long is the probation period?", "The probation period lasts six months."),
    ("When is salary paid?", "Salaries are paid on the last working day of the month."),
    ("How many vacation days are there?", "Full-time staff receive 25 days of paid vacation."),
]
ANSWERS_CSV = csv_text(ANSWERS, header="question,answer").encode()


def long_paragraphs(suffix: str = "") -> list[str]:
    """One paragraph per answer, each long enough (~150 tokens) to be a passage of its own, so
    a split by passage has a group per question."""
    return [
        f"{a}{suffix} "
        + " ".join(f"Note {k} of section {i} adds routine detail number {k}." for k in range(15))
        for i, (_, a) in enumerate(ANSWERS)
    ]


HTML_WITH_SCRIPTS = (
    "<!doctype html><html><head><title>Onboarding</title>"
    '<script>var secretToken = "tok-DO-NOT-INDEX"; fetch("/track?u=" + secretToken);</script>'
    "<style>p { color: red }</style></head><body><h1>Welcome aboard</h1>"
    + "".join(f"<p>{para}</p>" for para in long_paragraphs())
    + '<script>document.write("<p>injected by script</p>")</script>'
    + "<noscript>Enable JavaScript</noscript></body></html>"
).encode()


# --------------------------------------------------------------------------------------------------
# Checks on what a loaded file gives (core) or what the store holds once saved (page)


def pairs_of(ds: QADataset) -> set[tuple[str, str]]:
    return {(ds.queries[q], ds.corpus[d]) for q, ds_ in ds.relevant_docs.items() for d in ds_}


def good_pairs_only(ds: QADataset) -> None:
    assert pairs_of(ds) == set(PAIRS)


def texts_intact(*needles: str) -> Callable[[QADataset], None]:
    def check(ds: QADataset) -> None:
        everything = "\n".join([*ds.queries.values(), *ds.corpus.values()])
        for needle in needles:
            assert needle in everything, needle

    return check


def no_text(*needles: str) -> Callable[[QADataset], None]:
    def check(ds: QADataset) -> None:
        everything = "\n".join([*ds.queries.values(), *ds.corpus.values()])
        for needle in needles:
            assert needle not in everything, needle

    return check


def all_of(*checks: Callable[[QADataset], None]) -> Callable[[QADataset], None]:
    def check(ds: QADataset) -> None:
        for c in checks:
            c(ds)

    return check


def n_pairs(n: int) -> Callable[[QADataset], None]:
    def check(ds: QADataset) -> None:
        assert sum(len(v) for v in ds.relevant_docs.values()) == n

    return check


def short_passages(max_chars: int) -> Callable[[QADataset], None]:
    def check(ds: QADataset) -> None:
        assert ds.corpus and max(len(t) for t in ds.corpus.values()) <= max_chars

    return check


# --------------------------------------------------------------------------------------------------
# The catalogue

REFUSED, WARNING, LOADED, SPLIT_REFUSED = "refused", "warning", "loaded", "split refused"


@dataclass(frozen=True)
class Case:
    """One bad input.

    Attributes:
        id: Short name (the pytest id in both test modules).
        what: The input, in words (docs/HARDENING.md).
        qa: The files for the question uploader.
        outcome: REFUSED (nothing can be saved), WARNING (loads; the message says what was skipped
            or changed), LOADED (loads as is; the report line is the message), SPLIT_REFUSED (loads,
            but too small to split: nothing can be saved).
        message: Regex the message must match (case-insensitive, dot matches newlines).
        docs: The files for the documents uploader.
        check: What the loaded (core) or saved (page) dataset must satisfy.
        core_kw: Extra keyword arguments for ``load_qa_file`` in the core test.
        page_xfail: Why the page is known to fall short here (a strict xfail: it flips when fixed).
    """

    id: str
    what: str
    qa: Callable[[], Files]
    outcome: str
    message: str
    docs: Callable[[], Files] | None = None
    check: Callable[[QADataset], None] | None = None
    core_kw: dict = field(default_factory=dict)
    page_xfail: str | None = None


def _rows(*extra: tuple[str, ...]) -> str:
    return csv_text([*PAIRS[:2], *extra, *PAIRS[2:]])


CASES: list[Case] = [
    # ---------------------------------------------------------------- encodings
    Case(
        "utf16-bom",
        "CSV saved as UTF-16 with a byte-order mark (Excel 'Unicode text')",
        one("utf16.csv", GOOD_CSV.encode("utf-16")),
        LOADED,
        r"8 rows -> 8 questions, 8 passages; no warnings.*utf-16",
        check=good_pairs_only,
    ),
    Case(
        "utf16-no-bom",
        "CSV in UTF-16 without a byte-order mark",
        one("utf16le.csv", GOOD_CSV.encode("utf-16-le")),
        REFUSED,
        r"utf16le\.csv: contains NUL bytes.*UTF-16 text without a byte-order mark.*save it as CSV UTF-8",
    ),
    Case(
        "utf16-truncated",
        "UTF-16 CSV cut off in the middle of a character (odd byte count)",
        one("cut.csv", GOOD_CSV.encode("utf-16") + b"\x00"),
        REFUSED,
        r"cut\.csv: starts like UTF-16 text but byte \d+ cannot be decoded.*Save the file again as UTF-8",
    ),
    Case(
        "latin1",
        "CSV saved as Latin-1 / Windows-1252 (accented letters, euro sign)",
        one("latin1.csv", _rows(("Was kostet der Käse?", "Der Käse kostet 5 € pro Stück.")).encode("cp1252")),
        WARNING,
        r"latin1\.csv line 4: byte \d+ \(e4\) is not valid UTF-8.*read as Windows-1252.*save the file as UTF-8",
        check=texts_intact("Käse", "5 € pro Stück"),
    ),
    Case(
        "utf8-stray-byte",
        "UTF-8 CSV with accents and one invalid byte (a damaged file)",
        one(
            "stray.csv",
            _rows(("Où est le café ?", "Le café est à côté.")).encode()
            + b"Is it \xff broken?,Only one byte is.\n",
        ),
        WARNING,
        r"stray\.csv line 11: byte \d+ \(ff\) is not valid UTF-8 \(1 bad byte sequence.*otherwise UTF-8.*replaced",
        check=texts_intact("Où est le café ?", "Le café est à côté.", "Is it \ufffd broken?"),
    ),
    Case(
        "invalid-bytes",
        "Bytes that are valid in no text encoding (0x81, 0x8d, 0x90)",
        one("junk.csv", _rows(("What is \x81\x8d\x90 here?", "Three undefined bytes.")).encode("latin-1")),
        WARNING,
        r"junk\.csv line 4: byte \d+ \(81\) is not valid UTF-8.*Windows-1252.*save the file as UTF-8",
        check=texts_intact("What is \ufffd\ufffd\ufffd here?"),
    ),
    Case(
        "utf8-bom-csv",
        "CSV with a UTF-8 byte-order mark before the header",
        one("bom.csv", b"\xef\xbb\xbf" + GOOD_CSV.encode()),
        LOADED,
        r"8 rows -> 8 questions, 8 passages; no warnings.*utf-8-sig",
        check=good_pairs_only,
    ),
    Case(
        "utf8-bom-jsonl",
        "JSONL with a UTF-8 byte-order mark",
        one(
            "bom.jsonl",
            b"\xef\xbb\xbf"
            + "".join(json.dumps({"question": q, "passage": p}) + "\n" for q, p in PAIRS).encode(),
        ),
        LOADED,
        r"8 rows -> 8 questions, 8 passages; no warnings.*utf-8-sig",
        check=good_pairs_only,
    ),
    Case(
        "mixed-line-endings",
        "CSV mixing Windows (CRLF), Unix (LF) and old Mac (CR) line endings",
        one(
            "mixed.csv",
            "question,passage\r\n"
            + "".join(f'{q},"{p}"' + ("\r\n", "\n", "\r")[i % 3] for i, (q, p) in enumerate(PAIRS)),
        ),
        LOADED,
        r"8 rows -> 8 questions, 8 passages; no warnings",
        check=all_of(good_pairs_only, no_text("\r")),
    ),
    # ---------------------------------------------------------------- table structure
    Case(
        "ragged-rows",
        "CSV rows with more or fewer cells than the header (an unquoted comma)",
        one("ragged.csv", _rows(("How hot, at most?", "80 C", "extra cell"), ("Just a question",))),
        REFUSED,
        r"Row 4 \(line 4\) has 3 cells but the header has 2\. A comma inside a question or passage must be "
        r"inside double quotes; fix that row",
    ),
    Case(
        "unclosed-quote",
        "CSV with a double quote opened and never closed",
        one("quote.csv", _rows() + 'What is the limit?,"80 C at the inlet\nNext question,next passage\n'),
        REFUSED,
        r"Row 10 \(line 10\): a double quote opened here is never closed.*Close the quote",
    ),
    Case(
        "header-only",
        "CSV with a header row and nothing else",
        one("header.csv", "question,passage\n"),
        REFUSED,
        r"has a header row \('question', 'passage'\) but no data rows",
    ),
    Case(
        "empty-file",
        "An empty file (0 bytes)",
        one("empty.csv", b""),
        REFUSED,
        r"empty\.csv is empty\. Upload a table with a header row",
    ),
    Case(
        "whitespace-file",
        "A file holding only spaces and newlines",
        one("blank.csv", b"   \n\t\n  \n"),
        REFUSED,
        r"blank\.csv is empty\. Upload a table with a header row",
    ),
    Case(
        "blank-cells",
        "Rows with an empty question or passage cell",
        one("gaps.csv", _rows(("", "A passage without a question."), ("A question without a passage?", ""))),
        WARNING,
        r"Row 4: the question cell \('question'\) is empty; the row was skipped\. Fill it in or delete the row",
        check=good_pairs_only,
    ),
    Case(
        "whitespace-cells",
        "Rows whose cells hold only spaces or tabs",
        one("spaces.csv", _rows(("   ", "A passage."), ("A question?", "\t "))),
        WARNING,
        r"Row 4: the question cell \('question'\) contains only spaces; the row was skipped",
        check=good_pairs_only,
    ),
    Case(
        "all-rows-blank",
        "Every data row has an empty cell",
        one("allblank.csv", csv_text([("", "p1"), ("q2", " "), (" ", "")])),
        REFUSED,
        r"No usable rows: every row was skipped.*Each row needs a question and a passage",
    ),
    Case(
        "missing-column",
        "Only a question column, no passage or answer column",
        one("onecol.csv", "question\n" + "".join(f"{q}\n" for q, _ in PAIRS)),
        REFUSED,
        r"Could not tell which column is the passage column.*Columns found: 'question'\. Rename the columns, "
        r"or choose them by hand",
    ),
    Case(
        "misspelt-columns",
        "Column names misspelt ('questoin', 'pasage')",
        one("typo.csv", GOOD_CSV.replace("question,passage", "questoin,pasage", 1)),
        REFUSED,
        r"Could not tell which column is the question column.*Columns found: 'questoin', 'pasage'\. Rename the "
        r"columns, or choose them by hand",
    ),
    # ---------------------------------------------------------------- duplicates
    Case(
        "duplicate-pairs",
        "The same question/passage pair twice (once with extra spaces)",
        one("dups.csv", _rows(PAIRS[0], (PAIRS[1][0] + "  ", " " + PAIRS[1][1]))),
        WARNING,
        r"Row 4 repeats row 2 \(same question and passage\); kept once",
        check=all_of(good_pairs_only, n_pairs(N_GOOD)),
    ),
    Case(
        "duplicate-ids-json",
        "IR JSON whose 'queries' and 'corpus' objects repeat an id",
        one("dupids.json", ir_json_with_repeated_ids()),
        WARNING,
        r"dupids\.json: 2 key\(s\) appear more than once inside one JSON object: 'q1', 'd2'\. Only the first "
        r"value of each was kept.*Give every question and passage its own id",
        check=all_of(good_pairs_only, no_text("reusing id")),
    ),
    Case(
        "duplicate-ids-beir",
        "BEIR zip whose corpus.jsonl repeats an _id",
        one(
            "dupids.zip",
            make_zip(beir(corpus_extra=[{"_id": "c1", "text": "A second passage reusing id c1"}])),
        ),
        WARNING,
        r"corpus\.jsonl line 9: _id 'c1' appears again; the first is kept",
        check=all_of(good_pairs_only, no_text("reusing id")),
    ),
    # ---------------------------------------------------------------- not a data file
    Case(
        "file-100mb",
        "A 100 MB CSV (25 million rows)",
        lambda: [("huge.csv", file_100mb())],
        REFUSED,
        rf"huge\.csv is 100 MB, over the {MAX_QA_FILE_BYTES // 10**6} MB limit for one question file.*Keep a "
        r"sample of the rows, or split the file",
    ),
    Case(
        "png-renamed-csv",
        "A PNG image renamed .csv",
        lambda: [("photo.csv", png_image())],
        REFUSED,
        r"photo\.csv is a PNG image \(judging by its content\), not a question file\. Export the pairs as CSV "
        r"UTF-8, JSON or JSONL",
    ),
    Case(
        "pdf-renamed-csv",
        "A PDF renamed .csv",
        lambda: [("report.csv", make_pdf(["Quarterly report. Revenue grew."]))],
        REFUSED,
        r"report\.csv is a PDF document \(judging by its content\), not a question file\. Export the pairs as "
        r"CSV UTF-8, JSON or JSONL.*uploaded as a document",
    ),
    Case(
        "binary-renamed-csv",
        "Random binary bytes (no known signature) renamed .csv",
        lambda: [("data.csv", bytes(range(256)) * 64)],
        REFUSED,
        r"data\.csv: contains NUL bytes, so it looks like a binary file \(an Excel workbook, a PDF, an image\)"
        r".*Export or save it as CSV UTF-8",
    ),
    Case(
        "docx-renamed-csv",
        "A Word .docx renamed .csv (a zip, but not a BEIR dataset)",
        lambda: [("notes.csv", make_docx())],
        REFUSED,
        r"notes\.csv is not a complete BEIR dataset: missing corpus\.jsonl.*Found: '\[Content_Types\]\.xml'.*"
        r"export it as CSV instead",
    ),
    # ---------------------------------------------------------------- JSON / JSONL
    Case(
        "json-wrong-shape",
        "JSON object with unexpected keys",
        one("shape.json", json.dumps({"rows": [{"q": "a", "p": "b"}], "version": 2})),
        REFUSED,
        r"Unexpected JSON shape: expected a list of objects.*found an object with keys 'rows', 'version'",
    ),
    Case(
        "json-list-of-strings",
        "JSON list of strings instead of objects",
        one("strings.json", json.dumps([q for q, _ in PAIRS])),
        REFUSED,
        r"Item 1 is a str \(.*\); expected an object with a question and a passage",
    ),
    Case(
        "json-syntax-error",
        "JSON with a syntax error (trailing comma)",
        one(
            "broken.json",
            json.dumps([{"question": q, "passage": p} for q, p in PAIRS], indent=1)[:-2] + ",\n]",
        ),
        REFUSED,
        r"broken\.json is not valid JSON: \w[^:]* at line 34, column 1\. Fix it there",
    ),
    Case(
        "jsonl-broken-line",
        "JSONL with one line cut off",
        one(
            "broken.jsonl",
            "".join(
                (
                    json.dumps({"question": q, "passage": p})[:30]
                    if i == 2
                    else json.dumps({"question": q, "passage": p})
                )
                + "\n"
                for i, (q, p) in enumerate(PAIRS)
            ),
        ),
        REFUSED,
        r"Line 3 is not valid JSON \(Unterminated string starting at column \d+\)\. Each line must be a JSON "
        r"object on its own",
    ),
    # ---------------------------------------------------------------- BEIR / zip
    Case(
        "beir-missing-parts",
        "BEIR zip without queries.jsonl and qrels",
        one("partial.zip", make_zip({"corpus.jsonl": beir()["corpus.jsonl"]})),
        REFUSED,
        r"partial\.zip is not a complete BEIR dataset: missing queries\.jsonl.*qrels/test\.tsv.*Found: "
        r"'corpus\.jsonl'",
    ),
    Case(
        "zip-parent-path",
        "Zip with a '../' path (zip slip)",
        one("slip.zip", make_zip({**beir(), "../../evil.sh": "rm -rf /"})),
        REFUSED,
        r"slip\.zip contains an unsafe path '\.\./\.\./evil\.sh' \(absolute or with '\.\.'\)\. Zip the dataset "
        r"folder again with plain relative paths",
    ),
    Case(
        "zip-bomb",
        "Zip bomb: a 2 MB zip whose corpus.jsonl expands to 510 MB",
        lambda: [("bomb.zip", zip_bomb())],
        REFUSED,
        rf"bomb\.zip would expand to \d+ MB, over the {MAX_ZIP_UNCOMPRESSED_BYTES // 10**6} MB limit\. Upload a "
        r"smaller dataset",
    ),
    Case(
        "qrels-missing-ids",
        "BEIR qrels pointing to passage and question ids that do not exist",
        one("ghost.zip", make_zip(beir(beir()["qrels/test.tsv"] + "q1\tc99\t1\nq77\tc2\t1\n"))),
        WARNING,
        r"1 passage id\(s\) are judged relevant but missing from the corpus: 'c99'\. Those judgements were "
        r"dropped; check the ids match exactly",
        check=good_pairs_only,
    ),
    Case(
        "qrels-all-missing",
        "BEIR qrels where no id matches",
        one("nomatch.zip", make_zip(beir("query-id\tcorpus-id\tscore\nx1\ty1\t1\nx2\ty2\t1\n"))),
        REFUSED,
        r"no judgement points to an existing question and passage.*Check that the ids in the judgements match",
    ),
    # ---------------------------------------------------------------- content
    Case(
        "passage-100k-chars",
        "A CSV passage of 100,000 characters",
        one("long.csv", _rows(("What does the long procedure say?", LONG_PARAGRAPH))),
        WARNING,
        r"1 of 9 passages are longer than 512 tokens.*the model reads only the first 512.*Split long passages",
        core_kw={"max_tokens": 512},  # what the Data page passes: the tokens a passage is searched by
    ),
    Case(
        "too-small-to-split",
        "A valid file with only 3 pairs (too few to split)",
        one("tiny.csv", csv_text(PAIRS[:3])),
        SPLIT_REFUSED,
        r"Too few questions to split: 3 with relevant passages; at least 4 are needed.*Add more pairs",
    ),
    Case(
        "non-english-emoji",
        "German, French, Arabic, Hebrew, Japanese, Chinese text and emoji",
        one(
            "world.csv",
            _rows(
                ("Wie prüfe ich den Öldruck? 🔧", "Öldruck am Manometer ablesen: 180 bar ✅"),
                ("Où est la vanne ?", "La vanne est à gauche de la pompe."),
                ("ما هو ضغط الزيت؟", "ضغط الزيت ١٨٠ بار."),
                ("מה הלחץ?", "הלחץ הוא 180 בר."),
                ("油圧はいくつですか？", "油圧は180バールです。"),
                ("液压油多久更换一次？👀", "每2000小时更换一次液压油。🛢️"),
            ),
        ),
        LOADED,
        r"14 rows -> 14 questions, 14 passages; no warnings",
        check=texts_intact(
            "Wie prüfe ich den Öldruck? 🔧", "ضغط الزيت ١٨٠ بار.", "油圧は180バールです。", "🛢️"
        ),
    ),
    # ---------------------------------------------------------------- documents (with an answers file)
    Case(
        "pdf-no-text-layer",
        "A scanned PDF (a page with a drawing, no text layer)",
        one("answers.csv", ANSWERS_CSV),
        REFUSED,
        r"scan\.pdf: the PDF has no text layer \(it looks scanned or made of images\)\. Run OCR on it first",
        docs=lambda: [("scan.pdf", make_blank_pdf())],
    ),
    Case(
        "pdf-encrypted",
        "A password-protected PDF (pypdf PdfWriter.encrypt)",
        one("answers.csv", ANSWERS_CSV),
        REFUSED,
        r"locked\.pdf: the PDF is password-protected\. Remove the password",
        docs=lambda: [("locked.pdf", make_encrypted_pdf("s3cret"))],
    ),
    Case(
        "docx-not-zip",
        "A .docx that is not a zip (a text file renamed)",
        one("answers.csv", ANSWERS_CSV),
        REFUSED,
        r"minutes\.docx: not a valid Word \.docx file \(\w+\)\. Open it in Word or LibreOffice and save it as "
        r"\.docx",
        docs=lambda: [("minutes.docx", b"Minutes of the meeting.\nNothing decided.\n")],
    ),
    Case(
        "pdf-damaged",
        "A PDF cut off after its header",
        one("answers.csv", ANSWERS_CSV),
        REFUSED,
        r"cut\.pdf: (could not be read as a PDF|the PDF has no pages).*upload it again",
        docs=lambda: [("cut.pdf", make_pdf(["Some text."])[:200])],
    ),
    Case(
        "html-with-scripts",
        "HTML with <script>, <style> and <noscript> blocks",
        one("answers.csv", ANSWERS_CSV),
        LOADED,
        r"6 of 6 answers linked to a passage",
        docs=lambda: [("onboarding.html", HTML_WITH_SCRIPTS)],
        check=all_of(
            texts_intact("Your badge is issued on day one."),
            no_text(
                "secretToken", "tok-DO-NOT-INDEX", "injected by script", "color: red", "Enable JavaScript"
            ),
        ),
    ),
    Case(
        "html-only-scripts",
        "HTML whose only content is scripts",
        one("answers.csv", ANSWERS_CSV),
        REFUSED,
        r"app\.html: the document contains no text\. Upload a file with text in it",
        docs=lambda: [
            (
                "app.html",
                b"<html><head><script>render()</script></head><body><script>x()</script></body></html>",
            )
        ],
    ),
    Case(
        "docx-zip-bomb",
        "A .docx zip bomb: ~20 KB whose word/document.xml expands to 20 MB (about 1,000 times)",
        one("answers.csv", ANSWERS_CSV),
        REFUSED,
        r"bomb\.docx: its part 'word/document\.xml' would expand [\d,]+ times .*this looks like a zip bomb\. Open "
        r"it in Word or LibreOffice and save it again.*or upload it as PDF",
        docs=lambda: [("bomb.docx", make_docx_bomb())],
    ),
    Case(
        "document-over-50mb",
        "A 51 MB .txt document (over the per-document cap)",
        one("answers.csv", ANSWERS_CSV),
        REFUSED,
        r"big\.txt is 51 MB, over the 50 MB limit for one document.*Split it into smaller files",
        docs=lambda: [("big.txt", document_51mb())],
    ),
    Case(
        "document-100k-chars",
        "A .txt document that is one 100,000-character paragraph",
        lambda: [("long answers.csv", csv_text(LONG_ANSWERS, header="question,answer").encode())],
        LOADED,
        r"(?=.*1 document\(s\) read, cut into \d{3,} passages)(?=.*4 of 4 answers linked to a passage)",
        docs=lambda: [("procedure.txt", LONG_PARAGRAPH.encode())],
        check=short_passages(2_000),
    ),
    Case(
        "latin1-document",
        "A .txt document in Windows-1252",
        one("answers.csv", ANSWERS_CSV),
        WARNING,
        # One decoder for question files and documents (core.ingest.decoding): its note names line and byte.
        r"legacy\.txt line 1: byte \d+ \(fc\) is not valid UTF-8, so the file was read as Windows-1252.*save the "
        r"file as UTF-8",
        docs=lambda: [("legacy.txt", "\n\n".join(long_paragraphs(" Grüße, 5 €.")).encode("cp1252"))],
        check=texts_intact("Grüße, 5 €."),
    ),
]
CASE_IDS = [c.id for c in CASES]
assert len(set(CASE_IDS)) == len(CASE_IDS)


# --------------------------------------------------------------------------------------------------
# Core: the Data page's steps without the page


@dataclass
class CoreOutcome:
    outcome: str
    messages: list[str]
    dataset: QADataset | None = None


def run_core(case: Case) -> CoreOutcome:
    """What the Data page does with the case's files, minus Streamlit (``core.ingest.intake``): read each
    question file, read and chunk the documents, link answers to passages, split 20% by passage (seed 42)."""
    messages: list[str] = []
    warned = refused = False
    docs = None
    if case.docs:
        docs = load_documents(case.docs())
        messages += [
            f"{len(docs.files):,} document(s) read, cut into {len(docs.chunks):,} passages.",
            *docs.problems,
            *docs.notes,
        ]
        warned = bool(docs.problems or docs.notes)
    parts: list[intake.Part] = []
    for name, data in case.qa():
        try:
            res = intake.read_qa_file(name, data, **case.core_kw)
        except DataError as exc:
            messages += [str(exc), *exc.problems]
            refused = True
            continue
        rep = res.report
        messages.append(f"{rep.summary()} · format {rep.format} · {rep.encoding}")
        messages += [p.message for p in rep.problems]
        warned = warned or bool(rep.problems)
        ds = res.dataset
        if intake.needs_documents(res):
            if docs is None or not docs.chunks:
                messages.append(
                    "This file gives answers, not passages: upload the documents that contain them."
                )
                refused = True  # the page asks for documents and offers no Save
                continue
            linked = intake.link_to_documents(res, docs.chunks)
            messages.append(f"{linked.n_linked} of {len(linked.links)} answers linked to a passage")
            ds = linked.dataset
        parts.append(intake.Part(name, ds, rep.summary()))
    if refused:
        return CoreOutcome(REFUSED, messages)
    (part,) = parts
    try:
        intake.split_parts(parts, 0.2, 42, "passage")
    except DataError as exc:
        return CoreOutcome(SPLIT_REFUSED, [*messages, str(exc)], part.dataset)
    return CoreOutcome(WARNING if warned else LOADED, messages, part.dataset)


def matches(pattern: str, text: str) -> bool:
    return re.search(pattern, text, re.I | re.S) is not None


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_bad_input_through_core(case: Case):
    got = run_core(case)  # how early each cap is checked is tested below, by what is (not) read
    shown = "\n".join(got.messages)
    assert got.outcome == case.outcome, shown
    assert matches(case.message, shown), shown
    if case.check is not None:
        assert got.dataset is not None
        case.check(got.dataset)


def test_catalogue_covers_the_issue():
    """Item 1 asks for at least 30 cases; every one gives a pattern naming the problem."""
    assert len(CASES) >= 30
    assert all(c.message and c.what for c in CASES)


# --------------------------------------------------------------------------------------------------
# Extra core checks that a page cannot make


def test_100mb_file_on_disk_refused_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "huge.csv"
    with open(path, "wb") as fh:  # 100 MB on disk without holding it in memory: a sparse file
        fh.truncate(100_000_000)
    monkeypatch.setattr(type(path), "read_bytes", lambda self: pytest.fail("read the whole file"))
    monkeypatch.setattr(type(path), "open", lambda self, *a, **k: pytest.fail("opened the file"))
    with pytest.raises(DataError, match=r"huge\.csv is 100 MB, over the 50 MB limit"):
        load_qa_path(path)


def test_100mb_bytes_refused_before_decoding_or_parsing(monkeypatch):
    from core.ingest import qafiles

    def never(*args, **kwargs):
        pytest.fail("the file was decoded or parsed before its size was checked")

    for name in ("decode_text", "table_from_text", "parse_table", "parse_parquet", "pairs_to_dataset"):
        monkeypatch.setattr(qafiles, name, never)
    data = file_100mb()
    with pytest.raises(DataError, match=r"over the 50 MB limit"):
        qafiles.load_qa_file("huge.csv", data)
    with pytest.raises(DataError, match=r"over the 50 MB limit"):
        qafiles.read_columns("huge.csv", data)  # the page asks for the columns after a refusal


def test_size_cap_boundary(monkeypatch):
    """A file of exactly the cap is read, one byte more is refused (cap patched small: a real 50 MB
    table of tiny rows takes minutes to parse on 2 cores)."""
    from core.ingest import decoding as D

    data = GOOD_CSV.encode()
    monkeypatch.setattr(D, "MAX_QA_FILE_BYTES", len(data))
    assert len(load_qa_file("edge.csv", data).dataset) == N_GOOD
    with pytest.raises(DataError, match="over the 0 MB limit"):
        load_qa_file("edge.csv", data + b"\n")


def test_zip_bomb_refused_before_inflating(monkeypatch):
    bomb = zip_bomb()
    assert len(bomb) < 3_000_000
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda *a, **k: pytest.fail("a member was inflated"))
    monkeypatch.setattr(zipfile.ZipFile, "read", lambda *a, **k: pytest.fail("a member was inflated"))
    with pytest.raises(DataError, match="would expand to"):
        load_qa_file("bomb.zip", bomb)


def test_zip_bomb_with_lying_sizes_stops_at_the_budget(monkeypatch):
    """A member whose header understates its size is read only up to the expansion budget."""
    from core.ingest import irjson as D

    monkeypatch.setattr(D, "MAX_ZIP_UNCOMPRESSED_BYTES", 4 << 20)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("queries.jsonl", '{"_id": "q1", "text": "q"}\n')
        zf.writestr("qrels/test.tsv", "q1\tc1\t1\n")
        zf.writestr("corpus.jsonl", b" " * (8 << 20))
    raw = bytearray(buf.getvalue())
    # Rewrite the corpus member's uncompressed size in the central directory (offset 24) to 1 KB.
    at = raw.find(b"PK\x01\x02")
    while raw[at + 46 : at + 46 + len(b"corpus.jsonl")] != b"corpus.jsonl":
        at = raw.find(b"PK\x01\x02", at + 4)
    raw[at + 24 : at + 28] = struct.pack("<I", 1024)
    with pytest.raises(DataError) as info:
        load_qa_file("liar.zip", bytes(raw))
    assert re.search(r"(expands to more than 4 MB|is damaged)", str(info.value)), str(info.value)


def test_json_repeated_keys_in_pair_items_warn():
    res = load_qa_file("p.json", b'[{"question": "q1", "question": "q2", "passage": "p1"}]')
    assert res.dataset.pairs() == [("q1", "p1")]
    (w,) = res.report.warnings
    assert "'question'" in w.message and "first value" in w.message


def test_utf8_stray_byte_document_keeps_accents():
    data = "Café crème.\n\nOne bad \xff byte.".encode().replace(b"\xc3\xbf", b"\xff")
    docs = load_documents([("n.txt", data)])
    assert docs.chunks and "Café crème." in docs.chunks[0].text and "\ufffd" in docs.chunks[0].text
    assert len(docs.notes) == 1 and "1 bad byte sequence in all, in a file that is otherwise UTF-8" in docs.notes[0]
