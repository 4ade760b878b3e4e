"""Data page, issue 12 item 1 and issue 13 items 6-8: documents only (a collection), unlinked answers listed
first with why, matching by meaning in the background, near duplicates that can be dismissed."""

from __future__ import annotations

import json
import threading
import time

import pytest

from core.ingest import intake
from core.workspace.store import Store
from tests.ingest.test_meaning import FakeModel
from tests.pages.conftest import open_app, texts
from ui import resources as res

PAPERS = {
    "mers.txt": b"Of the patients infected with MERS-CoV in the 2012 outbreak, about 35 percent died.\n\n"
    b"Camels are the main animal reservoir of the virus.",
    "flu.txt": b"Seasonal influenza vaccines are updated every year.\n\nOseltamivir shortens the illness by a day.",
}
ANSWERS = (
    b"question,answer\n"
    b"What share died?,about 35 percent died\n"
    b"Is the vaccine new each year?,Seasonal influenza vaccines are updated every year.\n"
    b"How long is remdesivir given?,Remdesivir infusions last five days in hospitalised adults\n"
    b"Which animal spreads it?,In the outbreak camels got oseltamivir and vaccines\n"
)
EXPORT = b"id,text,source\nv1,The pump leaks oil when the shaft seal is worn.,manual.pdf\nv2,Replace hoses every five years.,hoses.pdf\n"


def upload(at, key: str, files: dict[str, bytes]):
    return at.file_uploader(key=key).set_value([(n, b, "application/octet-stream") for n, b in files.items()])


def test_first_screen_says_what_to_do_with_documents_only(workspace):
    at = open_app()
    assert not at.exception
    page = texts(at)
    assert "Only documents? Upload them under 'Documents or passages' (right)" in page
    assert "then go to Questions to generate training questions and label evaluation questions" in page


def test_documents_and_a_passages_export_saved_as_a_collection(workspace):
    at = open_app()
    upload(at, "etl_doc_files", {**PAPERS, "export.csv": EXPORT}).run()
    assert not at.exception
    page = texts(at)
    assert "2 rows -> 2 passages, no questions; 1 warning" not in page  # the export names its sources
    assert "2 rows -> 2 passages, no questions; no warnings" in page
    assert "4 passages from 3 file(s), no questions yet" in page and "Go to Questions" in page
    assert not [b for b in at.button if b.label == "Save dataset"]
    at.text_input(key="etl_coll_name").set_value("papers")
    next(b for b in at.button if b.label == "Save collection").click().run()
    assert not at.exception
    assert "Saved collection “papers”: 4 passages. Go to Questions to generate training questions" in texts(at)
    store = Store(workspace)
    row = store.find_dataset("papers")
    assert json.loads(row["meta"])["kind"] == "collection"
    train, ev = store.load_dataset(row["id"])
    assert ev is None and not train.queries and train.corpus["v1"].startswith("The pump leaks")
    assert train.sources["v1"] == "manual.pdf" and "mers.txt" in train.sources.values()


def test_a_passages_file_among_question_files_is_pointed_to_the_right_box(workspace):
    at = open_app()
    upload(at, "etl_qa_files", {"export.csv": EXPORT}).run()
    assert not at.exception
    assert "This file looks like passages without questions: upload it under 'Documents or passages'" in texts(at)


def confidence_config(at) -> dict:
    table = next(df for df in at.dataframe if "confidence" in df.value.columns)
    return json.loads(table.proto.columns)["confidence"]


def test_unlinked_answers_first_with_why_and_bars_not_red(workspace):
    at = open_app()
    upload(at, "etl_doc_files", PAPERS)
    upload(at, "etl_qa_files", {"answers.csv": ANSWERS}).run()
    assert not at.exception
    page = texts(at)
    assert "**2 of 4 answers linked to a passage**; 2 not linked (listed first)." in page
    assert "1 of 2 unlinked answers: their documents are probably not among the 2 uploaded" in page
    assert "1 of 2 unlinked answers: low confidence" in page and "Tick 'Also match answers by meaning'" in page
    links = next(df.value for df in at.dataframe if "confidence" in df.value.columns)
    assert list(links["status"]) == ["not linked: document probably missing",
                                     "not linked: low confidence", "linked", "linked"]  # fmt: skip
    assert links["confidence"].iloc[-1] == 1.0
    # Streamlit draws a progress bar in the theme's primary colour (red) unless given one
    assert confidence_config(at)["type_config"].get("color") not in (None, "red", "primary", "auto")


class SlowModel(FakeModel):
    """The fake encoder, slowed down so the page can be seen while it works."""

    def __init__(self, gate: threading.Event):
        super().__init__()
        self.gate = gate

    def _encode(self, texts, **kw):
        self.gate.wait(30)
        return super()._encode(texts, **kw)

    encode_query = encode_document = _encode


@pytest.fixture
def slow_model(monkeypatch):
    gate = threading.Event()
    model = SlowModel(gate)
    model._etl_fingerprint = f"slow-{time.time_ns()}"  # nothing cached from another test
    monkeypatch.setattr(res, "base_model", lambda: model)
    yield model
    gate.set()


def test_matching_by_meaning_runs_in_the_background_and_is_not_redone(workspace, slow_model):
    at = open_app()
    upload(at, "etl_doc_files", PAPERS)
    upload(at, "etl_qa_files", {"answers.csv": ANSWERS}).run()
    at.checkbox(key="etl_emb_answers.csv").check().run()
    assert not at.exception
    # the page run ended while the encoder is still held: the work is in a thread of its own
    loaded = res.load_qa("answers.csv", ANSWERS, None)
    chunks, _ = intake.collection_chunks(res.load_documents(tuple(PAPERS.items())).chunks, [])
    task = res.meaning_tasks().get(intake.meaning_key(loaded, chunks, res.base_model_name()))
    assert task is not None and task.snapshot().state == "running" and slow_model.encoded == []
    for _ in range(300):  # the worker reports "0 of 2" and waits at the encoder's gate
        if task.snapshot().phase == "passages":
            break
        time.sleep(0.1)
    at.run()  # (in a browser the fragment polls every second)
    progress = " ".join(str(p.proto.text) for p in at.get("progress"))
    assert f"Matching answers by meaning: 0 of {len(chunks)} passages encoded · estimating the time left" in progress
    page = texts(at)
    assert "Until it is done, the links below come from exact and keyword matching." in page
    assert "2 of 4 answers linked" in page  # the page works meanwhile: the lexical links

    slow_model.gate.set()
    assert task.wait(30)
    encoded = len(slow_model.encoded)
    assert encoded == len(chunks) + 2  # every passage once, then the 2 answers left to match
    at.run()
    assert not at.exception
    assert "Matching answers by meaning done in" in texts(at)
    links = next(df.value for df in at.dataframe if "confidence" in df.value.columns)
    assert "embedding" in set(links["how"])
    at.run()  # reruns find the finished task: nothing is encoded again
    assert len(slow_model.encoded) == encoded
    assert res.meaning_tasks().get(task.key) is task


TRAIN = (
    "question,passage\n"
    "What was the total revenue reported by Uber for the fiscal year 2021?,Revenue was 17 billion.\n"
    "What share of people infected with MERS-CoV died during the outbreak?,About 35 percent.\n"
    + "".join(f"Other training question {i}?,Training passage {i}.\n" for i in range(4))
).encode()
EVAL = (
    b"question,passage\n"
    b"What was the total revenues reported by Uber for the fiscal year 2021?,Uber revenue: 17 billion.\n"
    b"What share of people infected with SARS-CoV died during the outbreak?,About 10 percent.\n"
    b"Something else entirely?,Eval passage.\n"
)


def test_near_duplicates_shown_dismissed_and_remembered_with_the_dataset(workspace):
    at = open_app()
    upload(at, "etl_qa_files", {"uber train.csv": TRAIN, "uber eval.csv": EVAL}).run()
    assert not at.exception
    page = texts(at)
    assert "0 identical and 1 near-identical questions sit on both sides" in page
    assert "1 more pair(s) are worded alike but ask about a different number or subject" in page  # MERS / SARS
    assert "**0.92**" in [m.value for m in at.markdown]  # the similarity, first column, no table to scroll
    assert "SARS-CoV" not in page
    next(b for b in at.button if b.label == "Not a duplicate").click().run()
    assert not at.exception
    page = texts(at)
    assert "0 identical and 1 near-identical" not in page and "1 near duplicate(s) dismissed" in page
    at.text_input(key="etl_ds_name").set_value("uber")
    next(b for b in at.button if b.label == "Save dataset").click().run()
    store = Store(workspace)
    report = store.dataset_report(store.find_dataset("uber")["id"])
    assert report["split"]["dismissed"] == [[
        "What was the total revenue reported by Uber for the fiscal year 2021?",
        "What was the total revenues reported by Uber for the fiscal year 2021?"]]  # fmt: skip

    again = open_app()  # a new session: the same two questions are not flagged again
    upload(again, "etl_qa_files", {"uber train.csv": TRAIN, "uber eval.csv": EVAL}).run()
    assert "near-identical" not in texts(again) and "1 near duplicate(s) dismissed" in texts(again)
    assert not [b for b in again.button if b.label == "Not a duplicate"]
