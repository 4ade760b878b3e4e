"""A full fine-tune with two processes (torchrun, gloo on CPU) on a smoke configuration; how ``launch`` starts
and follows torchrun (a fake process: no torchrun)."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest

import core.tuning.ddp as ddp
from core.execute import execute
from core.retrieval.embedding import encode, load_model
from core.tuning.runs import create_run
from core.tuning.spec import RunSpec
from core.workspace.jobs import Cancelled, Job, Reporter
from core.workspace.run_folder import load_results


@pytest.mark.slow
def test_two_process_training_saves_a_model_that_loads_and_scores(tiny_store):
    store, ds_id = tiny_store
    spec = RunSpec.for_method("full", processes=2, max_steps=2, batch_size=4, max_seq_length=32)
    run_id = create_run(store, ds_id, spec)
    seen = []

    class Watch(Job):
        def progress(self, done, total, unit="steps", epoch=None):
            super().progress(done, total, unit, epoch)
            if unit == "steps":
                seen.append(done)

    job = Watch(store, run_id)
    job.run(lambda j: execute(store, run_id, j, device="cpu"))
    snap = job.snapshot()
    assert snap.status == "done", snap.error
    assert seen and seen[-1] == 2  # rank 0's steps reached the parent's job
    results = load_results(store.run_dir(run_id))
    assert "2 processes (torchrun)" in results.training[0]
    assert 0 <= results.systems["tuned"].metrics["nDCG@10"] <= 1
    model = load_model(str(store.run_dir(run_id) / "model"), device="cpu")
    assert encode(model, ["pump leaks oil"], kind="query").shape == (1, 384)


# ------------------------------------------------------------------ launch, without torchrun (a fake process)


class FakeProc:
    """What ``subprocess.Popen`` gives ``launch``: its output lines, its exit code, a pid."""

    def __init__(self, lines: list[str], code: int = 0):
        self.stdout = iter(lines)
        self.code = code
        self.pid = 4242
        self.waited = 0

    def wait(self):
        self.waited += 1
        return self.code


class Recorder(Reporter):
    def __init__(self, stop_after: int | None = None):
        self.calls: list[tuple] = []
        self.stop_after = stop_after
        self.asked = 0

    def phase(self, name, message=""):
        self.calls.append(("phase", name, message))

    def progress(self, done, total, unit="steps", epoch=None):
        self.calls.append(("progress", done, total, unit, epoch))

    def loss(self, step, value):
        self.calls.append(("loss", step, value))

    def evaluation(self, step, metrics):
        self.calls.append(("evaluation", step, metrics))

    def note(self, message):
        self.calls.append(("note", message))

    def should_stop(self):
        self.asked += 1
        return self.stop_after is not None and self.asked > self.stop_after


@pytest.fixture
def popen(monkeypatch):
    """Replaces the torchrun process: records how it was started and plays ``lines``."""
    started = {}

    def play(lines: list[str], code: int = 0) -> dict:
        def fake(cmd, **kw):
            started.update(cmd=cmd, **kw)
            started["proc"] = FakeProc(lines, code)
            return started["proc"]

        monkeypatch.setattr(ddp.subprocess, "Popen", fake)
        return started

    return play


def test_launch_starts_torchrun_on_the_worker_and_returns_rank_0s_train_info(popen, tmp_path, monkeypatch):
    monkeypatch.setattr(ddp.os, "cpu_count", lambda: 8)
    (tmp_path / "train_info.json").write_text(json.dumps({"steps": 2, "pairs": 10}))
    started = popen(["some torchrun chatter\n"])
    rec = Recorder()
    assert ddp.launch(tmp_path, 3, tmp_path / "cache.sqlite", rec) == {"steps": 2, "pairs": 10}
    assert started["cmd"] == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=3",
                              "-m", "core.tuning.ddp_worker", str(tmp_path), str(tmp_path / "cache.sqlite")]
    assert started["env"]["OMP_NUM_THREADS"] == "2" and started["env"]["TOKENIZERS_PARALLELISM"] == "false"
    assert started["start_new_session"] is True  # a cancel kills the whole group
    assert Path(started["cwd"]) == Path(ddp.__file__).resolve().parents[2]  # the project root: `-m core...` resolves
    assert rec.calls == [("phase", "training", "Starting 3 training processes (torchrun)")]
    popen([])
    ddp.launch(tmp_path, 16, tmp_path / "c", rec, resume=True)
    assert started["cmd"][-1] == "--resume" and started["env"]["OMP_NUM_THREADS"] == "1"  # never 0 threads


def test_launch_forwards_rank_0s_event_lines_to_the_reporter(popen, tmp_path):
    (tmp_path / "train_info.json").write_text("{}")
    events = [{"kind": "phase", "name": "training", "message": "Training"},
              {"kind": "progress", "done": 1, "total": 4, "unit": "steps", "epoch": 0.25},
              {"kind": "progress", "done": 2, "total": 4},
              {"kind": "loss", "step": 1, "value": 0.5},
              {"kind": "evaluation", "step": 2, "metrics": {"MRR@10": 0.4}},
              {"kind": "note", "message": "kept the last step"}]
    popen(["warming up\n"] + [ddp.EVENT + json.dumps(e) + "\n" for e in events])
    rec = Recorder()
    ddp.launch(tmp_path, 2, tmp_path / "c", rec)
    assert rec.calls[1:] == [("phase", "training", "Training"), ("progress", 1, 4, "steps", 0.25),
                             ("progress", 2, 4, "steps", None), ("loss", 1, 0.5),
                             ("evaluation", 2, {"MRR@10": 0.4}), ("note", "kept the last step")]


def test_a_failed_worker_raises_with_its_last_output_lines(popen, tmp_path):
    lines = [f"line {i}\n" for i in range(20)] + ["\n", ddp.EVENT + json.dumps({"kind": "note", "message": "x"}) + "\n",
                                                 "RuntimeError: CUDA out of memory\n"]
    popen(lines, code=1)
    with pytest.raises(RuntimeError) as exc:
        ddp.launch(tmp_path, 2, tmp_path / "c", Recorder())
    message = str(exc.value)
    # the last 8 lines (the blank one among them left out)
    assert message.startswith("Distributed training failed (exit 1): line 14 | line 15")
    assert message.endswith("line 19 | RuntimeError: CUDA out of memory")  # blank and event lines left out
    assert "line 13" not in message and "ETL-EVENT" not in message


def test_a_cancel_kills_the_process_group(popen, tmp_path, monkeypatch):
    killed = []
    monkeypatch.setattr(ddp.os, "killpg", lambda pid, sig: killed.append((pid, sig)))
    started = popen(["a\n", "b\n", "c\n"])
    with pytest.raises(Cancelled):
        ddp.launch(tmp_path, 2, tmp_path / "c", Recorder(stop_after=1))
    assert killed == [(4242, signal.SIGKILL)] and started["proc"].waited == 1
    assert not (tmp_path / "train_info.json").exists()


def test_rank_is_torchruns_rank(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    assert ddp.rank() == 0
    monkeypatch.setenv("RANK", "3")
    assert ddp.rank() == 3
