"""`python -m core rerank RUN` (core.cli_rerank), in-process: the rerank settings its flags ask for, and the one
error line for a missing run, an unfinished run or a run of several methods, each leaving the run as it was
(the real re-scoring: tests/tuning/test_rerank_stage.py)."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from core import cli_rerank
from core.retrieval.rerank import RerankSettings
from core.tuning.runs import create_run
from core.tuning.spec import RunSpec
from core.workspace.run_folder import read_config


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core")
    cli_rerank.add_command(p.add_subparsers(dest="command", required=True))
    return p


def _settings(argv: list[str], current: RerankSettings | None = None) -> RerankSettings | None:
    return cli_rerank.rerank_settings(_parser().parse_args(["rerank", "run-1", *argv]), current)


def test_the_flags_and_their_defaults():
    a = _parser().parse_args(["rerank", "run-1"])
    assert a.func is cli_rerank.cmd_rerank and a.run_id == "run-1"
    assert (a.model, a.top_k, a.remove, a.set, a.device, a.json) == (None, None, False, None, None, False)


def test_no_flag_trains_a_reranker_with_the_defaults_or_the_runs_own_settings():
    assert _settings([]) == RerankSettings()
    current = RerankSettings(model="/models/ce", top_k=50, epochs=2)
    kept = _settings([], current)
    assert kept == dataclasses.replace(current, model="")  # its settings kept; trained unless --model says so


def test_flags_set_the_model_the_depth_and_any_setting():
    s = _settings(["--model", "/models/ce", "--top-k", "15", "--set", "rerank.epochs=3", "--set", "lr=5e-5",
                   "--set", "rerank.loss=mnrl"])
    assert (s.model, s.top_k, s.epochs, s.lr, s.loss) == ("/models/ce", 15, 3, 5e-5, "mnrl")
    assert _settings(["--remove"], RerankSettings()) is None


@pytest.mark.parametrize(("argv", "message"), [
    (["--set", "rerank.speed=2"], "error: --set 'rerank.speed=2': use rerank.NAME=VALUE with NAME one of "),
    (["--set", "rerank.epochs"], "error: --set 'rerank.epochs': use rerank.NAME=VALUE"),
    (["--top-k", "0"], "error: Rerank settings: top_k must be at least 1 (got 0)."),
    (["--set", "rerank.loss=hinge"], "error: Rerank settings: loss must be 'bce' or 'mnrl' (got 'hinge')."),
])
def test_bad_settings_stop_with_one_error_line(argv, message):
    with pytest.raises(SystemExit) as exc:
        _settings(argv)
    assert str(exc.value).startswith(message)
    if "NAME one of" in message:
        assert "top_k" in str(exc.value) and "model" in str(exc.value)


def _call(argv: list[str]) -> int:
    args = _parser().parse_args(["rerank", *argv])
    return args.func(args)


def test_a_missing_run_is_one_error_line(tiny_store, monkeypatch, capsys):
    store, _ = tiny_store
    monkeypatch.setenv("ETL_WORKSPACE", str(store.root))
    assert _call(["run-nope"]) == 2
    assert capsys.readouterr().err == f"error: no run 'run-nope' in {store.root}\n"


def test_an_unfinished_run_is_refused_and_left_as_it_was(tiny_store, monkeypatch, capsys):
    store, ds_id = tiny_store
    monkeypatch.setenv("ETL_WORKSPACE", str(store.root))
    run_id = create_run(store, ds_id, RunSpec.for_method("adapter"))
    before = read_config(store.run_dir(run_id))
    assert _call([run_id, "--top-k", "5"]) == 2
    assert capsys.readouterr().err == (f"error: run {run_id} is queued: only a finished run can be re-scored\n")
    assert read_config(store.run_dir(run_id)) == before and store.get_run(run_id)["status"] == "queued"


def test_a_shootout_run_is_refused_it_is_several_runs(tiny_store, monkeypatch, capsys):
    store, ds_id = tiny_store
    monkeypatch.setenv("ETL_WORKSPACE", str(store.root))
    run_id = create_run(store, ds_id, RunSpec.for_method("shootout"))
    store.update_run(run_id, status="done")
    before = read_config(store.run_dir(run_id))
    assert _call([run_id]) == 2
    assert capsys.readouterr().err == "error: a shootout run cannot be re-scored (one method's run only)\n"
    assert read_config(store.run_dir(run_id)) == before
