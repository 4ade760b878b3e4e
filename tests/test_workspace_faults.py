"""Runs that must not lose their outcome: a CLI run killed with -9, a second run refused while another
holds the workspace, and a full disk while a run finishes (docs/HARDENING.md, "Faults")."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

from core.store import Store
from core.tuning.jobs import WorkspaceLock

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}

HOLDER = textwrap.dedent(
    """
    import sys, time
    from core.store import Store
    from core.tuning.jobs import run_foreground
    store = Store(sys.argv[1])
    run_id = store.create_run(None, "adapter", {}, name="killed run")
    print(run_id, flush=True)
    run_foreground(store, run_id, lambda job: time.sleep(600))
    """
)


def test_kill_9_of_a_cli_run_is_marked_interrupted_by_the_next_cli_command(tmp_path):
    ws = tmp_path / "ws"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(ws)], stdout=subprocess.PIPE, text=True, env=ENV)
    run_id = proc.stdout.readline().strip()
    store = Store(ws)
    deadline = time.time() + 60
    while store.get_run(run_id)["status"] != "running":
        assert time.time() < deadline, "the run never started"
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert store.get_run(run_id)["status"] == "running"  # nobody has looked yet
    cli = subprocess.run([sys.executable, "-m", "core", "report", run_id, "--workspace", str(ws), "--out",
                          str(tmp_path / "r.html")], capture_output=True, text=True, env=ENV, timeout=300)
    run = store.get_run(run_id)
    assert run["status"] == "interrupted", (run, cli.stderr)
    assert f"process {proc.pid} ended" in run["error"] and "last seen 20" in run["error"], run["error"]
    assert run["ended"] <= time.time() and run["ended"] == run["heartbeat"]
    assert f"note: run {run_id} was marked interrupted" in cli.stderr


def test_a_refused_cli_run_writes_nothing(tmp_path):
    ws = tmp_path / "ws"
    store = Store(ws)
    lock = WorkspaceLock(ws)
    lock.acquire("run-held-elsewhere")
    try:
        data = tmp_path / "pairs.csv"
        data.write_text("question,passage\n" + "".join(f"q{i}?,passage {i}\n" for i in range(12)))
        cli = subprocess.run([sys.executable, "-m", "core", "train", "--train", str(data), "--method", "adapter"],
                             capture_output=True, text=True, env={**ENV, "ETL_WORKSPACE": str(ws)}, timeout=300)
    finally:
        lock.release()
    assert cli.returncode == 2, cli.stderr
    assert "run-held-elsewhere is training on this workspace" in cli.stderr
    assert store.list_datasets() == [] and store.list_runs() == []
    assert [p.name for p in (ws / "runs").iterdir()] == [] and [p.name for p in (ws / "datasets").iterdir()] == []
