"""The job runner: snapshots advance, cancel, failure, interrupted runs, one job at a time."""

from __future__ import annotations

import threading
import time

import pytest

from core.store import Store
from core.tuning.jobs import BusyError, JobRunner, history_from_files


def _wait(job, timeout=120):
    t0 = time.time()
    while not job.snapshot().finished:
        assert time.time() - t0 < timeout, f"job still {job.snapshot().status}"
        time.sleep(0.05)
    return job.snapshot()


def test_progress_snapshots_advance_and_persist(tmp_path):
    store = Store(tmp_path)
    run_id = store.create_run(None, "fake", {})
    gate = threading.Event()
    seen = []

    def work(job):
        job.phase("training", "fake")
        for step in range(1, 6):
            job.progress(step, 5, step / 5)
            job.loss(step, 1.0 / step)
            gate.wait(0.02)
        job.evaluation(5, {"MRR@10": 0.5})
        return {"headline": {"MRR@10": 0.5}}

    job = JobRunner(store).submit(run_id, work)
    while not job.snapshot().finished:
        seen.append(job.snapshot().step)
        time.sleep(0.005)
    snap = job.snapshot()
    assert snap.status == "done" and snap.step == 5 and len(snap.losses) == 5
    assert seen == sorted(seen)  # never goes backwards
    assert store.get_run(run_id)["status"] == "done" and store.get_run(run_id)["metrics"] == {"MRR@10": 0.5}
    # the history survives without the job object (page reload / restart)
    hist = history_from_files(store, run_id)
    assert [v for _, v in hist.losses] == [1.0, 0.5, 1 / 3, 0.25, 0.2] and hist.evals[0][1]["MRR@10"] == 0.5


def test_exception_marks_failed_with_message(tmp_path):
    store = Store(tmp_path)
    run_id = store.create_run(None, "fake", {})

    def boom(job):
        job.phase("training")
        raise RuntimeError("injected failure at step 3")

    snap = _wait(JobRunner(store).submit(run_id, boom))
    assert snap.status == "failed" and "injected failure at step 3" in snap.error and "Traceback" in snap.traceback
    assert "injected failure" in store.get_run(run_id)["error"]
    # after a restart (no job object), the files still tell what failed and where
    hist = history_from_files(Store(tmp_path), run_id)
    assert hist.status == "failed" and "injected failure at step 3" in hist.error
    assert "RuntimeError" in hist.traceback


def test_cancel_and_one_job_at_a_time(tmp_path):
    store = Store(tmp_path)
    runner = JobRunner(store)
    r1, r2 = store.create_run(None, "fake", {}), store.create_run(None, "fake", {})

    def loop(job):
        step = 0
        while not job.should_stop():
            step += 1
            job.progress(step, 10**6)
            time.sleep(0.01)

    job = runner.submit(r1, loop)
    with pytest.raises(BusyError, match=r1):
        runner.submit(r2, loop)
    assert runner.active() is job
    job.cancel()
    assert _wait(job, 10).status == "cancelled"
    assert store.get_run(r1)["status"] == "cancelled"
    assert runner.submit(r2, lambda j: None) is not None


def test_stale_running_run_marked_interrupted_at_startup(tmp_path):
    store = Store(tmp_path)
    run_id = store.create_run(None, "full", {})
    store.update_run(run_id, status="running", pid=2**22 + 4321)  # a process that no longer exists
    runner = JobRunner(Store(tmp_path))
    assert runner.interrupted == [run_id]
    assert store.get_run(run_id)["status"] == "interrupted"


@pytest.mark.slow
def test_full_training_job_end_to_end(tiny_store):
    """Smoke-size full fine-tune through the job runner; the saved model reloads and encodes."""
    from sentence_transformers import SentenceTransformer

    from core.tuning.full import TrainConfig
    from core.tuning.runs import execute_run

    store, ds_id = tiny_store
    cfg = TrainConfig(epochs=1, batch_size=8, max_steps=2, max_seq_length=64).to_dict()
    run_id = store.create_run(ds_id, "full", cfg)
    job = JobRunner(store).submit(run_id, lambda j: execute_run(store, run_id, j, device="cpu"))
    snap = _wait(job, 300)
    assert snap.status == "done", snap.error
    assert snap.losses and snap.result["systems"]["base"]["MRR@10"] >= 0
    assert set(snap.result["order"]) == {"base", "tuned (full)", "BM25", "hybrid (tuned + BM25)"}
    model_dir = store.run_dir(run_id) / "model"
    model = SentenceTransformer(str(model_dir), device="cpu")
    assert model.encode(["pump leaks oil"]).shape == (1, 384)
    assert "Embedding Tuning Lab" in (model_dir / "README.md").read_text()
    assert (store.run_dir(run_id) / "per_query.csv").exists()
    # the finished run opens without re-encoding passages and answers a typed query side by side
    from core.insight.explore import open_run

    view = open_run(store, run_id)
    assert view.base_d.shape == view.tuned_d.shape == (30, 384)
    question = view.eval.queries[view.query_ids[0]]
    hits = view.search(question, k=5)
    assert list(hits["base"]["rank"]) == [1, 2, 3, 4, 5] and len(hits["tuned"]) == 5
    gold = view.eval.relevant_docs[view.query_ids[0]][0]
    assert hits["tuned"].loc[hits["tuned"].passage_id == gold, "gold"].all()
    assert set(view.winners_losers()["movement"]) <= {"improved", "worsened", "same"}


@pytest.mark.slow
def test_cancel_lands_within_a_step_of_real_training(tiny_store):
    from core.tuning.full import TrainConfig
    from core.tuning.runs import execute_run

    store, ds_id = tiny_store
    cfg = TrainConfig(epochs=1, batch_size=4, max_steps=200, max_seq_length=32, val_fraction=0).to_dict()
    run_id = store.create_run(ds_id, "full", cfg)
    job = JobRunner(store).submit(run_id, lambda j: execute_run(store, run_id, j, device="cpu"))
    t0 = time.time()
    while job.snapshot().phase != "training" or job.snapshot().step < 1:
        assert time.time() - t0 < 120
        time.sleep(0.05)
    job.cancel()
    step_at_cancel = job.snapshot().step
    snap = _wait(job, 60)
    assert snap.status == "cancelled"
    assert snap.step <= step_at_cancel + 1
    assert not (store.run_dir(run_id) / "model").exists()
