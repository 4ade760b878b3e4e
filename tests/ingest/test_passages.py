"""Passages without questions (issue 12 item 1): passages-only files as vector stores export them, and
``load_passages_path`` for the CLI (documents, passages files, or the passages of any QA file)."""

from __future__ import annotations

import io
import json

import pytest

from core.dataset import DataError
from core.ingest.collection import load_passages_path
from core.ingest.passages import detect_passage_columns, read_passage_columns, read_passages_file
from tests.ingest.test_data import beir_files, make_zip

EXPORT = (
    "id,text,source\n"
    "v1,The pump leaks oil when the shaft seal is worn.,manual.pdf\n"
    "v2,Replace the hose every five years.,hoses.pdf\n"
    "v2,Fans start at 60 C.,cooling.pdf\n"  # id given twice
    "v4,,manual.pdf\n"  # no text
    "v5,The pump leaks oil when the shaft seal is worn.,manual.pdf\n"  # repeated text
)


def texts(pf) -> list[str]:
    return [c.text for c in pf.chunks]


def test_csv_export_ids_sources_and_warnings():
    pf = read_passages_file("export.csv", EXPORT.encode())
    rep = pf.report
    assert rep.passages_only and rep.format == "csv" and rep.mapping.text == "text" and rep.mapping.confident
    assert rep.summary() == "5 rows -> 3 passages, no questions; 4 warnings"
    assert texts(pf) == ["The pump leaks oil when the shaft seal is worn.", "Replace the hose every five years.",
                         "Fans start at 60 C."]  # fmt: skip
    assert pf.chunks[0].id == "v1" and pf.chunks[0].source == "manual.pdf"
    assert pf.chunks[1].id != "v2" and pf.chunks[2].id != "v2" and pf.chunks[1].id != pf.chunks[2].id
    shown = " | ".join(p.message for p in rep.problems)
    assert "Row 5: the passage text is empty; skipped." in shown
    assert "Row 6 repeats the passage of row 2; kept once." in shown
    assert "the id 'v2' is given to 2 different passages; this one got a new id" in shown
    again = read_passages_file("export.csv", EXPORT.encode())
    assert [c.id for c in again.chunks] == [c.id for c in pf.chunks]  # generated ids are stable


def test_langchain_and_chroma_style_jsonl_and_json():
    lc = [{"page_content": "Alpha passage.", "metadata": {"source": "a.pdf", "page": 1}},
          {"page_content": "Beta passage.", "metadata": {"file_name": "b.pdf"}}]  # fmt: skip
    pf = read_passages_file("lc.jsonl", "\n".join(json.dumps(x) for x in lc).encode())
    assert texts(pf) == ["Alpha passage.", "Beta passage."] and [c.source for c in pf.chunks] == ["a.pdf", "b.pdf"]
    chroma = [{"ids": "c1", "documents": "Gamma passage.", "metadatas": '{"source": "g.md"}'}]
    pf = read_passages_file("chroma.json", json.dumps(chroma).encode())
    assert (pf.chunks[0].id, pf.chunks[0].text, pf.chunks[0].source) == ("c1", "Gamma passage.", "g.md")
    pinecone = [{"id": "p1", "metadata": {"text": "Delta passage.", "url": "https://x/d"}}]  # text inside metadata
    pf = read_passages_file("pc.jsonl", json.dumps(pinecone).encode())
    assert (pf.chunks[0].id, pf.chunks[0].text, pf.chunks[0].source) == ("p1", "Delta passage.", "https://x/d")


def test_parquet_export():
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.table({"chunk_id": ["a", "b"], "content": ["One text.", "Two text."], "title": ["T1", "T2"]}),
                   buf)  # fmt: skip
    pf = read_passages_file("export.parquet", buf.getvalue())
    assert pf.report.format == "parquet" and pf.report.encoding is None
    assert [(c.id, c.text, c.source) for c in pf.chunks] == [("a", "One text.", "T1"), ("b", "Two text.", "T2")]
    assert read_passage_columns("export.parquet", buf.getvalue()) == ["chunk_id", "content", "title"]


def test_a_document_column_of_file_names_is_the_source():
    m = detect_passage_columns(["document", "body"], {"document": ["a.pdf", "b.pdf"], "body": ["Long text here."]})
    assert (m.text, m.source) == ("body", "document")
    m = detect_passage_columns(["document"], {"document": ["A real passage of text, with many words in it."]})
    assert m.text == "document"


def test_unknown_columns_refused_then_read_with_a_mapping():
    data = b"schluessel,inhalt\nk1,Der Druck ist 200 bar.\nk2,Der Filter ist unten.\n"
    guessed = read_passages_file("de.csv", data)  # no column named like text: the longest values, said so
    assert guessed.report.mapping.text == "inhalt" and not guessed.report.mapping.confident
    assert "Not sure which column holds the passage text: 'inhalt' was used (the longest values)" in (
        guessed.report.problems[0].message)
    assert read_passage_columns("de.csv", data) == ["schluessel", "inhalt"]
    pf = read_passages_file("de.csv", data, mapping={"text": "inhalt", "id": "schluessel"})
    assert [(c.id, c.text) for c in pf.chunks] == [("k1", "Der Druck ist 200 bar."), ("k2", "Der Filter ist unten.")]
    assert pf.report.mapping.confident and "names no source document" in pf.report.problems[0].message
    with pytest.raises(DataError, match="'nope' is not in the file"):
        read_passages_file("de.csv", data, mapping={"text": "nope"})
    with pytest.raises(DataError, match="Could not tell which column holds the passage text"):
        read_passages_file("ids.json", b'[{"key": 1}, {"key": 2}]')


def test_a_question_file_gives_its_passages_and_says_its_questions_are_ignored():
    data = b"question,passage,passage_id\nWhy?,Because of the seal.,m-1\nWhen?,Every year.,m-2\n"
    pf = read_passages_file("pairs.csv", data)
    assert [(c.id, c.text) for c in pf.chunks] == [("m-1", "Because of the seal."), ("m-2", "Every year.")]
    assert pf.questions_ignored == 2 and "its 2 questions are ignored" in pf.report.problems[0].message
    with pytest.raises(DataError, match="questions with answers but no passages"):
        read_passages_file("answers.csv", b"question,answer\nWhy?,The seal.\n")


def test_refusals_before_parsing(monkeypatch):
    from core.ingest import decoding, qafiles

    monkeypatch.setattr(decoding, "MAX_QA_FILE_BYTES", 10)
    monkeypatch.setattr(decoding, "decode_text", lambda *a, **k: pytest.fail("decoded a file over the cap"))
    monkeypatch.setattr(qafiles, "table_from_text", lambda *a, **k: pytest.fail("parsed a file over the cap"))
    with pytest.raises(DataError, match="over the 0 MB limit for one passages file"):
        read_passages_file("big.csv", b"id,text\n1,some text\n")
    with pytest.raises(DataError, match="over the 0 MB limit for one passages file"):
        read_passage_columns("big.csv", b"id,text\n1,some text\n")
    monkeypatch.undo()
    with pytest.raises(DataError, match="not a readable Parquet file"):
        read_passages_file("x.parquet", b"PAR1garbagePAR1")
    with pytest.raises(DataError, match="is empty"):
        read_passages_file("e.csv", b"  \n")


# --------------------------------------------------------------------------- load_passages_path (CLI)


def test_folder_of_documents_and_files(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "manual.md").write_text("# Pump\n\nThe pump leaks oil when the seal is worn.\n")
    (tmp_path / "docs" / "notes.txt").write_text("Fans start at 60 C.\n")
    (tmp_path / "export.csv").write_text("id,text,source\nv1,Replace the hose every five years.,hoses.pdf\n")
    (tmp_path / "pairs.csv").write_text("question,passage\nWhy?,Fans start at 60 C.\n")  # repeats notes.txt
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.txt").write_text("Never read.")
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 cut")
    corpus, sources, rep = load_passages_path(tmp_path)
    assert sorted(corpus.values()) == ["Fans start at 60 C.", "Pump\n\nThe pump leaks oil when the seal is worn.",
                                       "Replace the hose every five years."]  # fmt: skip
    assert corpus["v1"] == "Replace the hose every five years." and sources["v1"] == "hoses.pdf"
    assert set(sources.values()) == {"docs/manual.md", "docs/notes.txt", "hoses.pdf"}
    names = [n for n, _ in rep.files]
    assert names == ["docs/manual.md", "docs/notes.txt", "export.csv", "pairs.csv"]
    assert rep.questions_ignored == 1 and dict(rep.files)["pairs.csv"].endswith("its 1 questions ignored")
    assert any("broken.pdf" in p for p in rep.problems)  # skipped, named
    assert rep.summary() == "3 passages from 4 files; 1 questions ignored (passages only)"


def test_qa_files_evaluate_reads_give_their_passages_with_ids(tmp_path):
    ir = {"queries": {"q1": "Why?"}, "corpus": {"c1": "The seal.", "c2": "Unasked."}, "relevant_docs": {"q1": ["c1"]}}
    (tmp_path / "val.json").write_text(json.dumps(ir))
    corpus, _, rep = load_passages_path(tmp_path / "val.json")
    assert corpus == {"c1": "The seal.", "c2": "Unasked."} and rep.questions_ignored == 1
    beir = tmp_path / "beir"
    beir.mkdir()
    for name, content in beir_files().items():
        (beir / name).parent.mkdir(parents=True, exist_ok=True)
        (beir / name).write_text(content)
    corpus, _, rep = load_passages_path(beir)
    assert set(corpus) == {"c1", "c2", "c3"} and rep.questions_ignored > 0
    (tmp_path / "beir.zip").write_bytes(make_zip(beir_files()))
    corpus, _, _ = load_passages_path(tmp_path / "beir.zip")
    assert set(corpus) == {"c1", "c2", "c3"}


def test_nothing_to_read(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_passages_path(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no document or passages file"):
        load_passages_path(tmp_path / "empty")
    (tmp_path / "bad.csv").write_text("question,answer\nWhy?,The seal.\n")
    with pytest.raises(DataError, match="No passage could be read.*questions with answers but no passages"):
        load_passages_path(tmp_path / "bad.csv")
