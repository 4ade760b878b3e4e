"""Tests for core.ingest.intake: the Data page's flow without Streamlit (read, link, split, save)."""

from __future__ import annotations

import json

import pytest

from core.dataset import DataError, QADataset
from core.ingest import intake
from core.ingest.chunking import load_documents
from core.ingest.qafiles import Problem
from core.ingest.splits import SPLIT_MODES
from core.workspace.store import Store


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
    assert linked.dataset.answers == {"q0001": "on day one", "q0002": "the IT desk"}  # kept with the questions
    assert [r["how"] for r in linked.rows] == ["exact", "exact"]
    assert {r["passage from"] for r in linked.rows} == {"onboarding.txt"}
    assert list(linked.rows[0]) == list(intake.LINK_COLUMNS)
    assert linked.notes() == [] and linked.n_documents == 1
    with pytest.raises(DataError, match="no document chunks"):
        intake.link_to_documents(loaded, [])


def test_split_parts_splits_one_file():
    part = intake.Part("p.csv", intake.read_qa_file("p.csv", pairs_csv(20)).dataset, "20 rows")
    assert intake.split_mode([part]) == "split"
    split = intake.split_parts([part], 0.25, 7, "passage")
    assert (len(split.train), len(split.eval)) == (15, 5)
    assert split.settings == {"by": "passage", "eval_fraction": 0.25, "seed": 7}
    assert split.report.by == "passage"
    rep = split.report  # "problem 1" / "problem 2": worded alike, but a differing number: different questions
    assert not split.leaks and rep.similar_but_different > 0 and split.leak_rows() == []
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


# --------------------------------------------------------------------------------------------------
# Unlinked answers: listed first, with why (issue 13 item 7)

PAPERS = {
    "mers.txt": "Of the patients infected with MERS-CoV in the 2012 outbreak, about 35 percent died.\n\n"
    "Camels are the main animal reservoir of the virus.",
    "flu.txt": "Seasonal influenza vaccines are updated every year.\n\nOseltamivir shortens the illness by a day.",
}


def test_unlinked_answers_first_when_the_file_names_documents():
    text = (
        "question,answer,document\n"
        "What share died?,about 35 percent died,mers.txt\n"
        "What is the reservoir?,camels are the main animal reservoir,MERS.pdf\n"  # the same document, named as a PDF
        "How long does remdesivir take?,five days of infusion,remdesivir-trial.pdf\n"  # not uploaded
        "Who funds it?,the national institute,nih-report.pdf\n"  # not uploaded
        "Is the vaccine updated?,Seasonal influenza vaccines are updated every year.,mers.txt\n"  # wrong doc named
    )
    loaded = intake.read_qa_file("answers.csv", text.encode())
    assert loaded.answer_documents["q0003"] == "remdesivir-trial.pdf"
    docs = load_documents([(n, t.encode()) for n, t in PAPERS.items()], max_tokens=30)
    linked = intake.link_to_documents(loaded, docs.chunks)
    by = {r["question"]: r for r in linked.rows}
    assert by["What share died?"]["how"] == "exact"
    assert by["What is the reservoir?"]["status"] == "linked"  # found in mers.txt, the document named
    assert by["How long does remdesivir take?"]["status"] == "not linked: document not uploaded"
    assert by["How long does remdesivir take?"]["passage from"] == "remdesivir-trial.pdf"
    # the answer is verbatim in flu.txt, but the file says mers.txt: looked for there only, so not linked
    assert by["Is the vaccine updated?"]["status"] == "not linked: low confidence"
    statuses = [r["status"] for r in linked.rows]
    assert statuses[:3] == ["not linked: document not uploaded"] * 2 + ["not linked: low confidence"]
    assert statuses[3:] == ["linked", "linked"]  # linked ones last, least sure first
    assert linked.rows[3]["confidence"] <= linked.rows[4]["confidence"]
    assert linked.notes() == [
        "2 of 3 unlinked answers: their documents are not among the 2 uploaded (the answer file names each "
        "answer's document). Upload those documents to link them.",
        "1 of 3 unlinked answers: low confidence: their words are in the documents, but no passage holds enough "
        "of them (confidence below 0.50). Tick 'Also match answers by meaning' to link answers worded "
        "differently from the documents (check what it links: it also finds a closest passage for answers whose "
        "document is missing).",
    ]
    assert "Tick" not in linked.notes(matched_by_meaning=True)[1]


def test_unlinked_answers_without_document_names_judged_by_their_words():
    text = (
        "question,answer\n"
        "What share died?,about 35 percent died\n"
        "How long is remdesivir given?,Remdesivir infusions last five days in hospitalised adults\n"  # words absent
        "Which animal spreads it?,In the outbreak camels got oseltamivir and vaccines\n"  # words spread over 4 chunks
        "Blank?,\n"
    )
    loaded = intake.read_qa_file("answers.csv", text.encode())
    docs = load_documents([(n, t.encode()) for n, t in PAPERS.items()], max_tokens=30)
    linked = intake.link_to_documents(loaded, docs.chunks)
    by = {r["question"]: r["status"] for r in linked.rows}
    assert by["How long is remdesivir given?"] == "not linked: document probably missing"
    assert by["Which animal spreads it?"] == "not linked: low confidence"
    assert linked.unlinked() == {"probably not uploaded": 1, "low confidence": 1}
    assert linked.n_unsure == 2
    assert linked.notes()[0].startswith("1 of 2 unlinked answers: their documents are probably not among the 2 "
                                        "uploaded: most of the weight of their words")  # fmt: skip
    assert [r["status"] for r in linked.rows][:2] == [
        "not linked: document probably missing", "not linked: low confidence"]  # fmt: skip


# --------------------------------------------------------------------------------------------------
# Near duplicates: flags, dismissals saved with the dataset (issue 13 item 8)


def near_dup_parts():
    train = (
        "question,passage\n"
        "What was the total revenue reported by Uber for the fiscal year 2021?,Revenue was 17 billion.\n"
        "What share of people infected with MERS-CoV died during the outbreak?,About 35 percent.\n"
        + "".join(f"Other training question {i}?,Training passage {i}.\n" for i in range(4))
    )
    evals = (
        "question,passage\n"
        "What was the total revenues reported by Uber for the fiscal year 2021?,Uber revenue: 17 billion.\n"
        "What share of people infected with SARS-CoV died during the outbreak?,About 10 percent.\n"
        "Something else entirely?,Eval passage.\n"
    )
    return [
        intake.Part("train.csv", intake.read_qa_file("train.csv", train.encode()).dataset, "", "train"),
        intake.Part("eval.csv", intake.read_qa_file("eval.csv", evals.encode()).dataset, "", "eval"),
    ]


def test_flags_dismissed_and_saved_with_the_dataset(tmp_path):
    parts = near_dup_parts()
    split = intake.split_parts(parts)
    (flag,) = split.flags()  # MERS / SARS: a different subject, not flagged
    assert not flag.identical and flag.similarity >= 0.8
    assert flag.differs == ""  # revenue / revenues: one word
    assert split.report.similar_but_different == 1
    split = intake.split_parts(parts, dismissed={flag.key})
    assert split.flags() == [] and not split.leaks
    assert split.report.dismissed == [(flag.train_question, flag.eval_question)]

    store = Store(tmp_path)
    ds_id = intake.save_split(store, "uber", split, parts)
    assert intake.dismissed_in_report(store.dataset_report(ds_id)) == {flag.key}
    assert intake.dismissed_in_store(store) == {flag.key}  # a later upload of the same pair is not flagged
    assert intake.split_parts(parts, dismissed=intake.dismissed_in_store(store)).flags() == []


def test_flag_says_where_the_wording_differs():
    a = ("How does the number of shares available for issuance under the 2019 Plan increase each year? What are "
         "the three factors that determine the increase in shares?")
    b = ("How does the number of shares available for issuance under the 2019 Plan automatically increase each "
         "year? What factors determine the increase in shares?")  # a real sec-10k train/val pair
    rows = "".join(f"Other question {w}?,Passage {w}.\n" for w in ("alpha", "beta", "gamma"))
    train = intake.read_qa_file("t.csv", f'question,passage\n"{a}",Shares grow.\n{rows}'.encode()).dataset
    ev = intake.read_qa_file("e.csv", f'question,passage\n"{b}",Shares grow by formula.\nWho?,Nobody.\n'.encode())
    split = intake.split_parts([intake.Part("t.csv", train, "", "train"), intake.Part("e.csv", ev.dataset, "", "eval")])
    (flag,) = split.flags()
    assert (flag.train_question, flag.eval_question) == (a, b)
    assert flag.differs == "'automatically' only in evaluation; 'three' only in training"
    assert split.leak_rows() == [(a, b, flag.similarity)]


# --------------------------------------------------------------------------------------------------
# Documents only: a collection (issue 12 item 1)


def test_documents_and_a_passages_file_saved_as_a_collection(tmp_path):
    docs = load_documents(DOCS, max_tokens=12)
    export = b"id,text,source\nv1,The cafeteria opens at 8.,handbook.pdf\nv2,Your badge is issued on day one.,x.pdf\n"
    pf = intake.read_passages("export.csv", export)
    assert pf.report.summary() == "2 rows -> 2 passages, no questions; no warnings"
    chunks, notes = intake.collection_chunks(docs.chunks, [pf])
    assert notes == [f"1 passage with the same text as another (in the same file or another) kept once: "
                     f"{len(chunks):,} passages in the collection."]  # the badge sentence
    store = Store(tmp_path)
    ds_id = intake.save_collection(store, "handbook", chunks, docs.files, [pf])
    train, ev = store.load_dataset(ds_id)
    assert ev is None and train.queries == {} and len(train.corpus) == len(chunks) == len(docs.chunks) + 1
    assert train.corpus["v1"] == "The cafeteria opens at 8." and train.sources["v1"] == "handbook.pdf"
    meta = json.loads((tmp_path / "datasets" / ds_id / "meta.json").read_text())
    assert meta == {"name": "handbook", "kind": "collection", "origin": "upload", "files": ["export.csv"],
                    "documents": ["onboarding.txt"]}  # fmt: skip
    assert "Questions" in intake.COLLECTION_NEXT
    with pytest.raises(DataError, match="has no passages"):
        intake.save_collection(store, "empty", [], [], [])


def test_a_passages_file_among_question_files_is_recognised():
    assert intake.looks_like_passages(["id", "text", "source"])
    assert intake.looks_like_passages(["ids", "documents", "metadatas"])  # Chroma's export
    assert not intake.looks_like_passages(["question", "passage"])


def test_confidence_is_shown_rounded_down_so_it_never_reads_as_the_threshold():
    from core.ingest.answer_links import shown_confidence

    assert shown_confidence(0.497) == 0.49 and shown_confidence(0.5) == 0.5 and shown_confidence(1.0) == 1.0
    assert shown_confidence(0.29) == 0.29  # 0.29 * 100 is 28.999...; the 6-digit round keeps it 0.29


def test_a_pair_asked_twice_under_other_ids_is_one_flag():
    """sec-10k repeats some questions: the same train/eval pair of texts under two id pairs crashed the Data
    page (two "Not a duplicate" buttons with one key)."""
    parts = near_dup_parts()
    train = parts[0].dataset
    qid = next(q for q in train.query_ids if "revenue" in train.queries[q].lower())
    twice = QADataset({**train.queries, "again": train.queries[qid]}, train.corpus,
                      {**train.relevant_docs, "again": list(train.relevant_docs[qid])})
    split = intake.split_parts([intake.Part("train.csv", twice, "", "train"), parts[1]])
    assert len(split.report.near_duplicates) == 2
    (flag,) = split.flags()
    assert intake.split_parts([intake.Part("train.csv", twice, "", "train"), parts[1]],
                              dismissed={flag.key}).flags() == []
