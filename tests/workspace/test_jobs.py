"""The job runner: snapshots, cancel, failure, one job per workspace across processes, heartbeat,
interrupted runs and resuming a full fine-tune from its checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from core.workspace import jobs
from core.workspace.jobs import BusyError, JobRunner, WorkspaceLock, history_from_files
from core.workspace.store import Store


def _done(job, timeout=120):
    assert job.wait(timeout), f"job still {job.snapshot().status} after {timeout} s"
    return job.snapshot()


def test_progress_snapshots_advance_and_persist(tmp_path):
    store = Store(tmp_path)
    run_id = store.create_run(None, "fake", {})
    seen = []
    steps_done = threading.Semaphore(0)
    go_on = threading.Semaphore(0)

    class Result:
        headline = {"MRR@10": 0.5}

    def work(job):
        job.phase("training", "fake")
        for step in range(1, 6):
            job.progress(step, 5, "steps", step / 5)
            job.loss(step, 1.0 / step)
            steps_done.release()
            go_on.acquire()
        job.evaluation(5, {"MRR@10": 0.5})
        return Result()

    job = JobRunner(store).submit(run_id, work)
    for _ in range(5):  # read a snapshot after each step, in lockstep with the worker
        steps_done.acquire()
        seen.append((job.snapshot().step, job.snapshot().unit))
        go_on.release()
    snap = _done(job)
    assert seen == [(i, "steps") for i in range(1, 6)]
    assert snap.status == "done" and snap.step == 5 and len(snap.losses) == 5
    assert store.get_run(run_id)["status"] == "done" and store.get_run(run_id)["metrics"] == {"MRR@10": 0.5}
    hist = history_from_files(store, run_id)  # the history survives without the job object
    assert [v for _, v in hist.losses] == [1.0, 0.5, 1 / 3, 0.25, 0.2] and hist.evals[0][1]["MRR@10"] == 0.5


def test_eta_comes_from_the_recent_rate():
    snap = jobs.Snapshot("r", total=100, step=50)
    now = time.time()
    # slow at first (1 step/s for 10 s), then fast (10 steps/s): the ETA follows the recent rate
    snap.samples = [(now - 40 + i, i) for i in range(10)] + [(now - 4 + i * 0.1, 10 + i) for i in range(41)]
    assert snap.eta_seconds == pytest.approx(50 / 10, rel=0.05)
    snap.samples = snap.samples[:1]
    assert snap.eta_seconds is None  # one sample: no rate yet


def test_exception_marks_failed_with_message(tmp_path):
    store = Store(tmp_path)
    run_id = store.create_run(None, "fake", {})

    def boom(job):
        job.phase("training")
        raise RuntimeError("injected failure at step 3")

    snap = _done(JobRunner(store).submit(run_id, boom))
    assert snap.status == "failed" and "injected failure at step 3" in snap.error and "Traceback" in snap.traceback
    assert "injected failure" in store.get_run(run_id)["error"]
    hist = history_from_files(Store(tmp_path), run_id)  # after a restart the files still tell what failed
    assert hist.status == "failed" and "injected failure at step 3" in hist.error and "RuntimeError" in hist.traceback


def test_failure_while_marking_running_does_not_leave_the_run_queued(tmp_path, monkeypatch):
    store = Store(tmp_path)
    run_id = store.create_run(None, "fake", {})
    real = store.update_run

    def flaky(rid, **fields):
        if fields.get("status") == "running":
            raise OSError("disk full while writing status.json")
        return real(rid, **fields)

    monkeypatch.setattr(store, "update_run", flaky)
    snap = _done(JobRunner(store).submit(run_id, lambda j: None))
    assert snap.status == "failed" and "disk full" in snap.error
    assert real.__self__.get_run(run_id)["status"] == "failed"


def test_cancel_after_the_work_finished_keeps_the_run_done(tmp_path):
    store = Store(tmp_path)
    run_id = store.create_run(None, "fake", {})
    finished = threading.Event()
    release = threading.Event()
    runner = JobRunner(store)

    def work(job):
        finished.set()
        release.wait(10)  # the work is complete; the user clicks Cancel now
        return None

    job = runner.submit(run_id, work)
    finished.wait(10)
    job.cancel()
    release.set()
    assert _done(job).status == "done" and store.get_run(run_id)["status"] == "done"
    job.cancel()  # a click after the end changes nothing either
    assert job.snapshot().status == "done"


def test_cancel_and_one_job_at_a_time(tmp_path):
    store = Store(tmp_path)
    runner = JobRunner(store)
    r1, r2 = store.create_run(None, "fake", {}), store.create_run(None, "fake", {})
    started = threading.Event()

    def loop(job):
        step = 0
        started.set()
        while True:
            job.check_cancel()  # work stops by raising Cancelled; returning normally means it finished
            step += 1
            job.progress(step, 10**6)
            time.sleep(0.01)

    job = runner.submit(r1, loop)
    started.wait(10)
    with pytest.raises(BusyError, match=r1):
        runner.submit(r2, loop)
    assert runner.active() is job
    job.cancel()
    assert _done(job, 10).status == "cancelled"
    assert store.get_run(r1)["status"] == "cancelled"
    assert _done(runner.submit(r2, lambda j: None)).status == "done"


HOLDER = textwrap.dedent("""
    import sys, time
    from core.workspace.jobs import WorkspaceLock
    lock = WorkspaceLock(sys.argv[1]); lock.acquire("run-held-elsewhere")
    print("held", flush=True); time.sleep(120)
""")


def test_a_second_process_is_refused_with_the_reason_and_freed_when_it_dies(tmp_path):
    store = Store(tmp_path)
    run_id = store.create_run(None, "fake", {})
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                              cwd=os.getcwd())
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(BusyError) as err:
            JobRunner(store).submit(run_id, lambda j: None)
        assert "run-held-elsewhere" in str(err.value) and str(holder.pid) in str(err.value)
        assert store.get_run(run_id)["status"] == "queued"  # refused before anything started
    finally:
        holder.kill()  # kill -9: the kernel drops the lock with the process
        holder.wait()
    assert _done(JobRunner(store).submit(run_id, lambda j: None)).status == "done"


def test_lock_is_released_after_a_job(tmp_path):
    store = Store(tmp_path)
    runner = JobRunner(store)
    _done(runner.submit(store.create_run(None, "fake", {}), lambda j: 1 / 0))
    lock = WorkspaceLock(tmp_path)
    lock.acquire("next")  # would raise BusyError if the failed job had kept it
    lock.release()


def test_heartbeat_not_process_ids_decides_interrupted(tmp_path):
    store = Store(tmp_path)
    stale, fresh = store.create_run(None, "full", {}), store.create_run(None, "full", {})
    now = time.time()
    # pid 1 always exists: a "pid alive" check would call the stale run live (pids are reused)
    store.update_run(stale, status="running", pid=1, started=now - 600, heartbeat=now - 120)
    store.update_run(fresh, status="running", pid=2**22 + 4321, started=now - 600, heartbeat=now - 2)
    lock = WorkspaceLock(tmp_path)
    lock.acquire(fresh)  # a job holds the workspace: only the heartbeat can tell the runs apart
    try:
        runner = JobRunner(Store(tmp_path))
    finally:
        lock.release()
    assert runner.interrupted == [stale]
    assert store.get_run(stale)["status"] == "interrupted" and store.get_run(fresh)["status"] == "running"


def test_running_job_refreshes_its_heartbeat(tmp_path, monkeypatch):
    monkeypatch.setattr(jobs, "HEARTBEAT_SECONDS", 0.05)
    store = Store(tmp_path)
    run_id = store.create_run(None, "fake", {})
    beats = []

    def work(job):
        for _ in range(40):
            beats.append(store.get_run(run_id)["heartbeat"])
            time.sleep(0.02)

    _done(JobRunner(store).submit(run_id, work))
    assert len(set(beats)) >= 3 and beats == sorted(beats)


@pytest.mark.slow
def test_full_training_job_end_to_end(tiny_store):
    """Smoke-size full fine-tune through the job runner; the saved model reloads and encodes."""
    from sentence_transformers import SentenceTransformer

    from core.execute import execute
    from core.insight.explore import open_run
    from core.tuning.runs import create_run
    from core.tuning.spec import RunSpec

    store, ds_id = tiny_store
    spec = RunSpec.for_method("full", epochs=1, batch_size=8, max_steps=2, max_seq_length=64)
    run_id = create_run(store, ds_id, spec)
    snap = _done(JobRunner(store).submit(run_id, lambda j: execute(store, run_id, j, device="cpu")), 300)
    assert snap.status == "done", snap.error
    assert snap.losses and list(snap.result.systems) == ["base", "tuned", "bm25", "base_hybrid", "hybrid"]
    model_dir = store.run_dir(run_id) / "model"
    model = SentenceTransformer(str(model_dir), device="cpu")
    assert model.encode(["pump leaks oil"]).shape == (1, 384) and model.max_seq_length == 512
    assert "Embedding Tuning Lab" in (model_dir / "README.md").read_text()
    view = open_run(store, run_id)  # opens without re-encoding passages; answers a typed query side by side
    assert view.base_d.shape == view.tuned_d.shape == (30, 384)
    hits = view.search(view.eval.queries[view.query_ids[0]], k=5)
    assert list(hits["base"]["rank"]) == [1, 2, 3, 4, 5] and len(hits["tuned"]) == 5
    gold = view.eval.relevant_docs[view.query_ids[0]][0]
    assert hits["tuned"].loc[hits["tuned"].passage_id == gold, "gold"].all()


@pytest.mark.slow
def test_cancel_lands_within_a_step_of_real_training(tiny_store):
    from core.execute import execute
    from core.tuning.runs import create_run
    from core.tuning.spec import RunSpec, Scoring

    store, ds_id = tiny_store
    spec = RunSpec.for_method("full", scoring=Scoring(validation_share=0), epochs=1, batch_size=4, max_steps=200,
                              max_seq_length=32, checkpoint_every=0)
    run_id = create_run(store, ds_id, spec)
    at_step = threading.Event()

    class Watch(jobs.Job):
        def progress(self, done, total, unit="steps", epoch=None):
            super().progress(done, total, unit, epoch)
            if unit == "steps" and done >= 1:
                at_step.set()

    job = Watch(store, run_id)
    thread = threading.Thread(target=job.run, args=(lambda j: execute(store, run_id, j, device="cpu"),))
    thread.start()
    assert at_step.wait(120)
    job.cancel()
    step_at_cancel = job.snapshot().step
    snap = _done(job, 60)
    thread.join(10)
    assert snap.status == "cancelled" and snap.step <= step_at_cancel + 1
    assert not (store.run_dir(run_id) / "model").exists() and not (store.run_dir(run_id) / "checkpoints").exists()


@pytest.mark.slow
def test_interrupted_full_run_resumes_from_its_checkpoint(tiny_store):
    """A crash mid-training (the server killed) leaves checkpoints; resuming continues from the last one
    with the optimizer state instead of starting over."""
    from core.execute import execute
    from core.tuning.full import latest_checkpoint
    from core.tuning.runs import create_run
    from core.tuning.spec import RunSpec, Scoring
    from core.workspace.run_folder import load_results

    store, ds_id = tiny_store
    spec = RunSpec.for_method("full", scoring=Scoring(validation_share=0), epochs=1, batch_size=4, max_steps=5,
                              max_seq_length=32, checkpoint_every=1)
    run_id = create_run(store, ds_id, spec)

    class Crash(jobs.Job):
        def progress(self, done, total, unit="steps", epoch=None):
            super().progress(done, total, unit, epoch)
            if unit == "steps" and done == 3:
                raise KeyboardInterrupt("power cut")  # not an Exception: nothing cleans up, like a kill

    with pytest.raises(KeyboardInterrupt):
        Crash(store, run_id).run(lambda j: execute(store, run_id, j, device="cpu"))
    ckpt = latest_checkpoint(store.run_dir(run_id))
    assert ckpt is not None and ckpt.name in ("checkpoint-2", "checkpoint-3")
    resumed_at = int(ckpt.name.split("-")[1])
    steps = []

    class Watch(jobs.Job):
        def progress(self, done, total, unit="steps", epoch=None):
            super().progress(done, total, unit, epoch)
            if unit == "steps":
                steps.append(done)

    job = Watch(store, run_id)
    job.run(lambda j: execute(store, run_id, j, device="cpu", resume=True))
    assert job.snapshot().status == "done", job.snapshot().error
    assert steps[0] == resumed_at and steps[-1] == 5  # continued, not restarted at 0
    results = load_results(store.run_dir(run_id))
    assert any(f"step {resumed_at}" in line for line in results.training)
    assert latest_checkpoint(store.run_dir(run_id)) is None  # cleaned up once finished


def test_running_run_without_a_lock_holder_is_interrupted_at_once(tmp_path):
    """The server killed with -9 a moment ago: its heartbeat is still fresh, but nobody holds the lock."""
    store = Store(tmp_path)
    run_id = store.create_run(None, "full", {})
    store.update_run(run_id, status="running", started=time.time(), heartbeat=time.time())
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                              cwd=os.getcwd())
    try:
        assert holder.stdout.readline().strip() == "held"
        assert JobRunner(store).interrupted == []  # someone holds the lock: the run may be theirs
    finally:
        holder.kill()
        holder.wait()
    assert JobRunner(store).interrupted == [run_id] and store.get_run(run_id)["status"] == "interrupted"


@pytest.mark.slow
def test_cancel_during_a_validation_pass_stops_it(tiny_store):
    """Issue: a cancel took 49 s because a validation pass started (or ran on) after the click."""
    from core.execute import execute
    from core.tuning.runs import create_run
    from core.tuning.spec import RunSpec, Scoring

    store, ds_id = tiny_store
    spec = RunSpec.for_method("full", scoring=Scoring(validation_share=0.2), epochs=1, batch_size=4, max_steps=2,
                              max_seq_length=32)
    run_id = create_run(store, ds_id, spec)

    class CancelInValidation(jobs.Job):
        def phase(self, name, message=""):
            super().phase(name, message)
            if name == "evaluating" and "validation questions" in message:
                self.cancel()  # the user clicks Cancel as the validation pass begins

    job = CancelInValidation(store, run_id)
    job.run(lambda j: execute(store, run_id, j, device="cpu"))
    snap = job.snapshot()
    assert snap.status == "cancelled" and snap.evals == []  # the pass was cut short, no score recorded
    assert not (store.run_dir(run_id) / "model").exists()
