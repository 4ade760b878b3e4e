"""The file-writing commands (core.cli_files: generate, report, export), in-process: their flags, and the one
error line each prints for a missing or unfinished run or unusable flags (the real runs: tests/test_cli.py,
tests/test_cli_generate.py)."""

from __future__ import annotations

import argparse
import csv

import pytest

from core import cli_files
from core.generate.llm_settings import LLMSettings
from core.tuning.runs import create_run
from core.tuning.spec import RunSpec


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core")
    cli_files.add_file_commands(p.add_subparsers(dest="command", required=True))
    return p


def _call(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    return args.func(args)


def test_the_flags_and_their_defaults():
    a = _parser().parse_args(["generate", "--from", "a.txt", "docs/", "--out", "pairs.csv"])
    assert a.func is cli_files.cmd_generate and a.sources == ["a.txt", "docs/"] and a.out == "pairs.csv"
    assert (a.method, a.llm_url, a.llm_model, a.per_passage, a.max_passages, a.seed) == (None, None, None, None, 0, 42)
    assert not a.no_round_trip and a.round_trip_k is None
    r = _parser().parse_args(["report", "run-1"])
    assert r.func is cli_files.cmd_report and (r.run, r.out, r.workspace, r.no_maps) == ("run-1", None, None, False)
    x = _parser().parse_args(["export", "run-1", "--out", "b.zip", "--dim", "128", "--no-onnx"])
    assert x.func is cli_files.cmd_export and (x.out, x.dim, x.no_onnx) == ("b.zip", 128, True)
    help_text = _parser()._subparsers._group_actions[0].choices["generate"].format_help()
    assert f"default {LLMSettings().timeout_s:g}" in help_text and f"default {LLMSettings().retries}" in help_text


@pytest.mark.parametrize("argv", [["generate", "--out", "x.csv"], ["generate", "--from", "a"],
                                  ["generate", "--from", "a", "--out", "x", "--method", "gpt"],
                                  ["export", "run-1"], ["report"]])
def test_missing_or_unknown_flags_are_refused_by_the_parser(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        _parser().parse_args(argv)
    assert exc.value.code == 2 and "error:" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["report", "export"])
def test_a_missing_run_is_one_error_line(command, tmp_path, capsys):
    ws = tmp_path / "ws"
    extra = ["--out", str(tmp_path / "b")] if command == "export" else []
    assert _call([command, "run-nope", "--workspace", str(ws), *extra]) == 2
    err = capsys.readouterr().err
    assert err == f"error: no run 'run-nope' in {ws}; list runs with the Runs page\n"
    assert not (tmp_path / "b").exists()


def test_an_unfinished_run_has_no_report_and_no_bundle(tiny_store, tmp_path, capsys):
    store, ds_id = tiny_store
    run_id = create_run(store, ds_id, RunSpec.for_method("adapter"))
    assert _call(["report", run_id, "--workspace", str(store.root), "--no-maps"]) == 2
    err = capsys.readouterr().err
    assert f"error: Run {run_id} has no results yet (status: queued)." in err
    assert err.rstrip().endswith("Reports are made of finished runs (for a shoot-out: of each method's run).")
    assert not (store.run_dir(run_id) / "report.html").exists()
    assert _call(["export", run_id, "--out", str(tmp_path / "bundle"), "--workspace", str(store.root)]) == 2
    err = capsys.readouterr().err
    assert f"error: Run {run_id} has no adapter.npz: it did not finish" in err
    assert not (tmp_path / "bundle").exists()


def test_generate_refuses_an_offline_method_with_an_llm():
    with pytest.raises(ValueError, match="--method chooses an offline method; it does not apply with --llm-url"):
        _call(["generate", "--from", "x", "--out", "o.csv", "--method", "crop", "--llm-model", "m"])


def test_an_llm_that_cannot_work_is_one_error_line_before_any_request(tmp_path, capsys, monkeypatch):
    for var in ("ETL_LLM_BASE_URL", "ETL_LLM_MODEL", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ETL_WORKSPACE", str(tmp_path / "ws"))
    src = tmp_path / "notes.txt"
    src.write_text("The pump leaks oil when the seal wears. Replace the seal and check the pressure.")
    out = tmp_path / "pairs.csv"
    assert _call(["generate", "--from", str(src), "--out", str(out), "--llm-url", "localhost:11434/v1",
                  "--llm-model", "m", "--no-round-trip"]) == 2
    err = capsys.readouterr().err
    assert "error: The base URL 'localhost:11434/v1' must start with http:// or https://" in err
    assert not out.exists()


def _passages_csv(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "text"])
        w.writerows(rows)
    return str(path)


def test_passages_from_several_files_keep_their_ids_and_a_clash_gets_the_files_position(tmp_path, capsys):
    a = _passages_csv(tmp_path / "a.csv", [["p1", "The pump leaks oil when the seal wears out over time."],
                                           ["p2", "The valve sticks when the fluid is dirty and cold."]])
    b = _passages_csv(tmp_path / "b.csv", [["p1", "The hose cracks when it bends too far in the cold."],
                                           ["p2", "The valve sticks when the fluid is dirty and cold."]])
    passages, _ = cli_files._passages_from_paths([a, b])
    assert passages == {"p1": "The pump leaks oil when the seal wears out over time.",
                        "p2": "The valve sticks when the fluid is dirty and cold.",
                        "f2:p1": "The hose cracks when it bends too far in the cold."}  # same id, same text: once
    err = capsys.readouterr().err
    assert err.startswith(f"{a}: ") and f"\n{b}: " in err  # what each path gave, on stderr
