"""One torchrun process (core.tuning.ddp_worker), without torchrun: rank 0's event lines are what the parent's
``launch`` forwards, and the worker trains on the run's hold-out-free training part with the method's hooks
(the training itself replaced: the two-process run is tests/tuning/test_ddp.py's slow test)."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

import core.tuning.ddp_worker as ddp_worker
from core.tuning import ddp
from core.tuning.ddp_worker import _EventPrinter, worker
from core.tuning.full import TrainInfo
from core.tuning.holdout import split_validation
from core.tuning.methods import method_of
from core.tuning.spec import RunSpec, Scoring
from core.workspace.run_folder import write_config, write_data
from tests.conftest import make_tiny_dataset
from tests.tuning.test_ddp import FakeProc, Recorder


def test_every_report_is_one_event_line_that_launch_forwards_as_it_was(capsys, monkeypatch, tmp_path):
    printer = _EventPrinter()
    printer.phase("training", "Training 2 processes")
    printer.progress(3, 10, "steps", 0.3)
    printer.progress(4, 10)
    printer.loss(10, 0.25)
    printer.evaluation(10, {"MRR@10": 0.5, "Accuracy@10": 0.75})
    printer.note("kept the last step")
    lines = capsys.readouterr().out.splitlines(keepends=True)
    assert len(lines) == 6 and all(line.startswith(ddp.EVENT) for line in lines)
    assert json.loads(lines[0][len(ddp.EVENT):]) == {"kind": "phase", "name": "training",
                                                     "message": "Training 2 processes"}
    monkeypatch.setattr(ddp.subprocess, "Popen", lambda cmd, **kw: FakeProc(lines))
    (tmp_path / "train_info.json").write_text("{}")
    rec = Recorder()
    ddp.launch(tmp_path, 2, tmp_path / "c", rec)
    assert rec.calls[1:] == [("phase", "training", "Training 2 processes"), ("progress", 3, 10, "steps", 0.3),
                             ("progress", 4, 10, "steps", None), ("loss", 10, 0.25),
                             ("evaluation", 10, {"MRR@10": 0.5, "Accuracy@10": 0.75}),
                             ("note", "kept the last step")]


@pytest.fixture
def run_dir(tmp_path):
    spec = RunSpec.for_method("lora", seed=5, scoring=Scoring(validation_share=0.2), processes=2)
    folder = tmp_path / "run"
    folder.mkdir()
    write_config(folder, spec.to_dict())
    ds = make_tiny_dataset(30)
    write_data(folder, ds, ds, None)
    return folder, spec, ds


@pytest.fixture
def trained(monkeypatch):
    calls = []
    info = TrainInfo(steps=2, epochs_run=0.5, pairs=24, validation_questions=0, best_metric=None, best_value=None,
                     best_step=None, seconds=1.5)

    def fake_train_full(train, val, spec, run_dir, reporter, resume=False, cache=None, hooks=None):
        calls.append({"train": train, "val": val, "spec": spec, "resume": resume, "cache": cache, "hooks": hooks,
                      "reporter": reporter})
        return object(), info

    monkeypatch.setattr(ddp_worker, "train_full", fake_train_full)
    return calls, info


def test_rank_0_trains_without_the_hold_out_with_the_methods_hooks_and_writes_train_info(run_dir, trained,
                                                                                        monkeypatch, capsys):
    folder, spec, ds = run_dir
    calls, info = trained
    monkeypatch.setenv("RANK", "0")
    worker(folder, folder / "cache.sqlite", resume=True)
    (call,) = calls
    expected, held_out = split_validation(ds, 0.2, 5)
    assert held_out is not None
    assert call["train"].query_ids == expected.query_ids  # the same hold-out as one process makes
    assert call["val"] is None and call["resume"] is True and call["spec"] == spec
    assert call["hooks"] is method_of("lora").train_hooks and call["hooks"] is not method_of("full").train_hooks
    assert str(call["cache"].path) == str(folder / "cache.sqlite")
    assert json.loads((folder / "train_info.json").read_text()) == asdict(info)
    events = [json.loads(line[len(ddp.EVENT):]) for line in capsys.readouterr().out.splitlines()]
    assert events[0]["kind"] == "note" and "model after the last step is kept" in events[0]["message"]


def test_other_ranks_print_nothing_and_write_nothing(run_dir, trained, monkeypatch, capsys):
    folder, _, _ = run_dir
    calls, _ = trained
    monkeypatch.setenv("RANK", "1")
    worker(folder, folder / "cache.sqlite", resume=False)
    assert len(calls) == 1 and not isinstance(calls[0]["reporter"], _EventPrinter)
    assert capsys.readouterr().out == ""
    assert not (folder / "train_info.json").exists()
