"""Tests for core.ingest.intake: the Data page's flow without Streamlit (read, link, split, save)."""

from __future__ import annotations

import json

import pytest

from core.dataset import DataError
from core.ingest import intake
from core.ingest.chunking import load_documents
from core.ingest.qafiles import Problem
from core.ingest.splits import SPLIT_MODES
from core.store import Store


def pairs_csv(n: int, topic: str = "pump") -> bytes:
    rows = "".join(f'how do I fix {topic} problem {i},"{topic} problem {i}: check seal {i}."\n' for i in range(n))
    return ("question,passage\n" + rows).encode()


ANSWERS = b"question,answer\nWhen is the badge issued?,on day one\nWho gives laptops?,the IT desk\n"
DOCS = [("onboarding.txt", b"Your badge is issued on day one.\n\nLaptops come from the IT desk on the second floor.")]


def test_read_qa_file_reports_and_previews():
    loaded = intake.read_qa_file("p.csv", pairs_csv(6), max_tokens=512)
    assert loaded.report.summary() == "6 rows -> 6 questions, 6 passages; no warnings"
    assert not intake.needs_documents(loaded)
    assert intake.pairs_preview(loaded.dataset, 2) == [
        ("how do I fix pump problem 0", "pump problem 0: check seal 0."),
        ("how do I fix pump problem 1", "pump problem 1: check seal 1."),
    ]
    with pytest.raises(DataError, match="binary"):
        intake.read_qa_file("x.csv", b"\x00\x01binary")


def test_problem_text_leads_with_where_unless_the_message_says_it():
    assert intake.problem_text(Problem("warning", "Row 4 repeats row 2.", "row 4")) == "Row 4 repeats row 2."
    assert intake.problem_text(Problem("warning", "Too long.", "passage d1")) == "passage d1: Too long."
    assert intake.problem_text(Problem("warning", "Whole file.")) == "Whole file."


def test_guess_role_and_default_name():
    assert [intake.guess_role(n) for n in ("train.csv", "my_eval.jsonl", "TEST set.csv", "pairs.csv")] == [
        "train", "eval", "eval", "split",
    ]  # fmt: skip
    assert intake.default_name(["pump pairs.csv", "other.csv"]) == "pump pairs"
    assert intake.default_name([]) == "my dataset"
    assert set(intake.ROLES) == {"split", "train", "eval"} and set(intake.SPLIT_HELP) == set(SPLIT_MODES)


def test_answers_linked_to_documents_with_rows_for_the_table():
    loaded = intake.read_qa_file("answers.csv", ANSWERS)
    assert intake.needs_documents(loaded)
    assert intake.answers_preview(loaded) == [("When is the badge issued?", "on day one"),
                                              ("Who gives laptops?", "the IT desk")]  # fmt: skip
    docs = load_documents(DOCS, max_tokens=12)
    linked = intake.link_to_documents(loaded, docs.chunks)
    assert linked.n_linked == 2 == len(linked.dataset)
    assert [r["how"] for r in linked.rows] == ["exact", "exact"]
    assert {r["linked passage from"] for r in linked.rows} == {"onboarding.txt"}
    assert list(linked.rows[0]) == ["question", "answer", "linked passage from", "how", "confidence"]
    with pytest.raises(DataError, match="no document chunks"):
        intake.link_to_documents(loaded, [])


def test_split_parts_splits_one_file():
    part = intake.Part("p.csv", intake.read_qa_file("p.csv", pairs_csv(20)).dataset, "20 rows")
    assert intake.split_mode([part]) == "split"
    split = intake.split_parts([part], 0.25, 7, "passage")
    assert (len(split.train), len(split.eval)) == (15, 5)
    assert split.settings == {"by": "passage", "eval_fraction": 0.25, "seed": 7}
    assert split.report.by == "passage"
    rep = split.report  # "problem 1" / "problem 2" questions are near-duplicates across the sides
    assert split.leaks and len(split.leak_rows()) == len(rep.exact_duplicates) + len(rep.near_duplicates) > 0
    assert split.train == intake.split_parts([part], 0.25, 7, "passage").train  # same seed, same split
    with pytest.raises(DataError, match="Too few questions to split"):
        intake.split_parts([intake.Part("t.csv", intake.read_qa_file("t.csv", pairs_csv(3)).dataset, "")])


def test_split_parts_joins_given_files_and_reports_leaks():
    train = intake.read_qa_file("train.csv", pairs_csv(6)).dataset
    ev = intake.read_qa_file("eval.csv", pairs_csv(3, topic="valve") + b"how do I fix pump problem 0,other text\n")
    parts = [intake.Part("train.csv", train, "6 rows", "train"), intake.Part("eval.csv", ev.dataset, "4 rows", "eval")]
    assert intake.split_mode(parts) == "given"
    split = intake.split_parts(parts)
    assert split.settings == {"by": "given files"} and split.report.by == "given"
    assert (len(split.train), len(split.eval)) == (6, 4)
    assert set(split.train.corpus) <= set(split.eval.corpus)  # evaluation searches every file's passages
    assert split.leaks and split.leak_rows()[0] == ("how do I fix pump problem 0", "how do I fix pump problem 0", 1.0)


def test_split_parts_refuses_without_a_training_file():
    ev = intake.Part("eval.csv", intake.read_qa_file("eval.csv", pairs_csv(6)).dataset, "", "eval")
    assert intake.split_mode([ev]) == "no-train"
    with pytest.raises(DataError, match="mark at least one for training"):
        intake.split_parts([ev])
    with pytest.raises(DataError, match="no usable question file"):
        intake.split_parts([])


def test_several_files_of_one_role_are_combined():
    a = intake.Part("a.csv", intake.read_qa_file("a.csv", pairs_csv(5)).dataset, "")
    b = intake.Part("b.csv", intake.read_qa_file("b.csv", pairs_csv(5, topic="hose") + pairs_csv(2)[17:]).dataset, "")
    split = intake.split_parts([a, b], 0.3, 1, "query")
    assert len(split.train) + len(split.eval) == 12  # every file's questions
    assert len(split.eval.corpus) == 10  # a passage in both files is one passage


def test_save_split_writes_report_and_meta(tmp_path):
    store = Store(tmp_path)
    part = intake.Part("pump pairs.csv", intake.read_qa_file("pump pairs.csv", pairs_csv(10)).dataset, "10 rows")
    split = intake.split_parts([part], 0.2, 42, "query")
    ds_id = intake.save_split(store, "Pump pairs", split, [part], ["pump pairs.csv", "bad.csv"], ["doc.pdf"])
    train, ev = store.load_dataset(ds_id)
    assert (len(train), len(ev)) == (8, 2)
    folder = tmp_path / "datasets" / ds_id
    report = json.loads((folder / "report.json").read_text())
    assert report["files"] == {"pump pairs.csv": "10 rows"} and report["by"] == "query" and report["seed"] == 42
    assert report["split"]["n_eval_queries"] == 2 and report["eval_fraction"] == 0.2
    meta = json.loads((folder / "meta.json").read_text())
    assert meta == {"name": "Pump pairs", "origin": "upload", "files": ["pump pairs.csv", "bad.csv"],
                    "documents": ["doc.pdf"], "split_by": "query"}  # fmt: skip
    with pytest.raises(DataError, match="already exists"):
        intake.save_split(store, "Pump pairs", split, [part])


def test_save_split_words_a_failed_write(tmp_path, monkeypatch):
    store = Store(tmp_path)
    part = intake.Part("p.csv", intake.read_qa_file("p.csv", pairs_csv(10)).dataset, "10 rows")
    split = intake.split_parts([part], 0.2, 42, "query")

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "save_dataset", full)
    with pytest.raises(DataError, match=r"could not be written to disk \(No space left on device\); nothing was saved"):
        intake.save_split(store, "p", split, [part])


def test_intake_imports_no_heavy_library():
    """The flow modules import fast: pypdf, python-docx, bs4, bm25s and numpy only load when a function needs them."""
    import subprocess
    import sys

    code = (
        "import sys, core.ingest.intake, core.ingest.qafiles, core.retrieval.terms; print(sorted(m for m in "
        "('streamlit', 'torch', 'transformers', 'numpy', 'bm25s', 'pypdf', 'docx', 'bs4') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
