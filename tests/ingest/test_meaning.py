"""Matching answers by meaning: embedding cache, progress, the background task and its registry (issue 13 item 6).

A fake model (bag of words hashed into 64 dimensions) stands in for the encoder: it counts what it encodes,
so "the second time encodes nothing" is a count, not a timing.
"""

from __future__ import annotations

import re
import threading
import zlib

import numpy as np
import pytest

from core.ingest import intake, meaning
from core.ingest.chunking import load_documents
from core.ingest.linking import link_answers
from core.retrieval.embedding import EmbeddingCache

DIM = 64
DOC = (
    "Vacation policy. Full-time staff receive 25 days of paid vacation per calendar year.\n\n"
    "Remote work. Employees may work from home up to three days a week with manager approval.\n\n"
    "Security. Laptops must use full-disk encryption and a screen lock after five minutes.\n\n"
    "Payroll. Salaries are paid on the last working day of each month by bank transfer."
)


class FakeModel:
    """Encodes a text as its hashed words; records every text it encodes."""

    max_seq_length = 128
    _etl_fingerprint = "fake-bow"

    def __init__(self):
        self.encoded: list[str] = []

    def get_sentence_embedding_dimension(self) -> int:
        return DIM

    def _encode(self, texts, **_):
        self.encoded += list(texts)
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"\w+", t.lower()):
                out[i, zlib.crc32(w[:5].encode()) % DIM] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)

    encode_query = encode_document = _encode


@pytest.fixture(scope="module")
def chunks():
    return load_documents([("hr.txt", DOC.encode())], max_tokens=25).chunks


QUERIES = {"q1": "Do I have to protect my computer?", "q2": "When does money arrive?"}
ANSWERS = {"q1": "Laptops need encryption and locking screens", "q2": "salaries arrive monthly by transfer"}


def test_matching_by_meaning_reports_progress_and_a_second_run_encodes_nothing(chunks, tmp_path):
    cache, model, seen = EmbeddingCache(tmp_path / "emb.sqlite"), FakeModel(), []
    ds, links = link_answers(QUERIES, ANSWERS, chunks, model=model, min_confidence=0.99, cache=cache,
                             progress=lambda *p: seen.append(p))  # fmt: skip
    n = len(chunks)
    assert seen[0] == ("passages", 0, n) and ("passages", n, n) in seen and seen[-1] == ("answers", 2, 2)
    assert sorted(model.encoded) == sorted([c.text for c in chunks] + [f"{QUERIES[q]}\n{ANSWERS[q]}" for q in QUERIES])

    again = FakeModel()
    ds2, links2 = link_answers(QUERIES, ANSWERS, chunks, model=again, min_confidence=0.99, cache=cache)
    assert again.encoded == []  # every vector came from the cache
    assert links2 == links and ds2 == ds


def test_the_task_runs_in_a_thread_with_progress_and_an_eta(monkeypatch):
    clock = {"t": 0.0}
    monkeypatch.setattr(meaning.time, "monotonic", lambda: clock["t"])
    release, reported = threading.Event(), threading.Event()

    def work(progress):
        assert threading.current_thread().name.startswith("link-by-meaning-")  # not the page's thread
        progress("passages", 0, 1000)
        clock["t"] = 10.0
        progress("passages", 100, 1000)  # 10 passages a second
        reported.set()
        release.wait(10)
        progress("passages", 1000, 1000)
        progress("answers", 100, 100)
        return "linked"

    task = meaning.MeaningTask("k", work, answers=100).start()
    assert reported.wait(10)
    snap = task.snapshot()
    assert (snap.state, snap.phase, snap.done, snap.total) == ("running", "passages", 100, 1000)
    assert snap.eta_s == pytest.approx(100.0)  # (900 passages + 100 answers) / 10 per second
    assert snap.fraction == pytest.approx(0.1)
    assert snap.text() == "Matching answers by meaning: 100 of 1,000 passages encoded · about 2 min left"
    assert task.result() is None
    release.set()
    assert task.wait(10)
    done = task.snapshot()
    assert (done.state, done.eta_s, task.result()) == ("done", None, "linked")
    assert done.text() == "Matching answers by meaning done in 10 s."


def test_same_files_answers_and_model_find_the_same_task():
    tasks, calls = meaning.MeaningTasks(), []

    def work(progress):
        calls.append(1)
        return len(calls)

    first = tasks.start("k", work)
    assert first.wait(10)
    second = tasks.start("k", work)  # a rerun, or another tab
    assert second is first and tasks.get("k") is first and calls == [1] and first.result() == 1

    def broken(progress):
        raise RuntimeError("model folder missing")

    failed = tasks.start("bad", broken)
    failed.wait(10)
    assert failed.snapshot().state == "failed"
    assert failed.snapshot().text() == "Matching answers by meaning failed: model folder missing"
    retry = tasks.start("bad", work)  # a failed task is tried again
    assert retry is not failed and retry.wait(10) and retry.result() == 2


def test_the_registry_keeps_running_tasks_and_the_latest_finished():
    tasks, gate = meaning.MeaningTasks(keep=2), threading.Event()
    running = tasks.start("slow", lambda p: gate.wait(10))
    for i in range(4):
        tasks.start(f"quick{i}", lambda p: None).wait(10)
    assert tasks.get("slow") is running  # never dropped while it runs
    assert tasks.get("quick0") is None and tasks.get("quick3") is not None
    gate.set()


def test_meaning_key_follows_answers_documents_passages_and_model(chunks):
    loaded = intake.read_qa_file("a.csv", b"question,answer,document\nWhen?,on day one,hr.txt\n")
    key = intake.meaning_key(loaded, chunks, "m")
    assert key == intake.meaning_key(intake.read_qa_file("a.csv", b"question,answer,document\nWhen?,on day one,hr.txt\n"),
                                     chunks, "m")  # fmt: skip
    assert key != intake.meaning_key(loaded, chunks, "other model")
    assert key != intake.meaning_key(loaded, chunks[:-1], "m")
    other = intake.read_qa_file("a.csv", b"question,answer,document\nWhen?,on day two,hr.txt\n")
    assert key != intake.meaning_key(other, chunks, "m")


def test_meaning_work_links_in_the_worker(chunks, tmp_path):
    loaded = intake.read_qa_file("a.csv", b"question,answer\nMust laptops use disk encryption?,yes with locking "
                                          b"screens after minutes\n")  # fmt: skip
    model, loads = FakeModel(), []
    work = intake.meaning_work(loaded, chunks, lambda: loads.append(1) or model, EmbeddingCache(tmp_path / "e.sqlite"))
    task = meaning.MeaningTask("w", work, answers=1).start()
    assert task.wait(30) and task.snapshot().state == "done"
    linked = task.result()
    assert loads == [1] and linked.n_linked == 1 and linked.links[0].method == "embedding"
    assert linked.rows[0]["how"] == "embedding"
