"""Runs that must not lose their outcome: a CLI run killed with -9, a second run refused while another
holds the workspace, and a full disk while a run finishes (docs/HARDENING.md, "Faults")."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

from core.workspace.jobs import WorkspaceLock
from core.workspace.store import Store

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}

HOLDER = textwrap.dedent(
    """
    import sys, time
    from core.workspace.store import Store
    from core.workspace.jobs import run_foreground
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


def test_full_disk_at_the_end_of_a_run_records_the_cause(tmp_path, monkeypatch):
    """The disk fills up while the run saves its adapter: the file write fails with ENOSPC and the catalog
    with SQLite's "disk I/O error" (as on a 5 MB tmpfs). No half-written artifact; the run says why it
    failed, and still does once space is freed and the workspace is opened again."""
    import errno
    import sqlite3

    import numpy as np

    import core.workspace.store as store_mod
    from core.tuning.adapter import LinearAdapter
    from core.workspace.jobs import Job

    store = Store(tmp_path / "ws")
    run_id = store.create_run(None, "adapter", {}, name="disk fills up")
    run_dir = store.run_dir(run_id)
    full = {"on": False}
    real_fdopen, real_update = os.fdopen, Store.update_run

    class _FullFile:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, data):
            self.fh.write(data[: len(data) // 2])  # part of it lands, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.fh, name)

    def fdopen(fd, *a, **k):
        fh = real_fdopen(fd, *a, **k)
        return _FullFile(fh) if full["on"] else fh

    def update_run(self, rid, **fields):
        if full["on"]:
            raise sqlite3.OperationalError("disk I/O error")
        return real_update(self, rid, **fields)

    monkeypatch.setattr(store_mod.os, "fdopen", fdopen)
    monkeypatch.setattr(Store, "update_run", update_run)

    def work(job):
        full["on"] = True
        LinearAdapter(np.eye(4, dtype=np.float32), np.zeros(4, dtype=np.float32)).save(run_dir / "adapter.npz")

    job = Job(store, run_id)
    job.run(work)  # never raises
    snap = job.snapshot()
    assert snap.status == "failed" and snap.error.startswith("no space left on the workspace disk"), snap.error
    assert not (run_dir / "adapter.npz").exists()  # no half-written .npz (BadZipFile) left behind
    assert not [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")]
    assert store.get_run(run_id)["status"] == "running"  # the catalog could not be told
    full["on"] = False  # space freed; the app or the CLI opens the workspace again
    assert store.mark_interrupted(30, no_job_running=True) == [run_id]
    run = store.get_run(run_id)
    assert run["status"] == "failed" and run["error"].startswith("no space left on the workspace disk"), run


def test_cli_says_a_full_disk_in_one_line(monkeypatch, capsys):
    import sqlite3

    import core.cli as cli

    def boom(args):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(cli, "cmd_evaluate", boom)
    assert cli.main(["evaluate", "--data", "x.csv"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no space left on the workspace disk"), err
