"""Background jobs: one at a time per workspace (across processes), progress snapshots, heartbeat.

The worker never touches Streamlit: it reports through a ``Reporter`` (phase, progress with its
unit, loss, evaluation, notes), which the ``Job`` keeps under a lock and appends to the run
folder (``progress.jsonl``), so a page reload or a server restart still shows the history.
Pages read ``Job.snapshot()`` from a fragment with ``run_every``.

* One job at a time per workspace: a job holds an exclusive ``flock`` on ``<workspace>/job.lock``
  while it runs, so the app and the CLI (or two app servers) never train on one workspace at
  once; the second is refused with the reason (``BusyError``: which run, since when, which process).
* Interrupted runs: a running job refreshes its run's ``heartbeat`` in the catalog every
  ``HEARTBEAT_SECONDS``. A queued/running run whose heartbeat is older than ``STALE_SECONDS`` is
  marked interrupted (``Store.mark_interrupted``), and a 'running' run at once when nobody holds
  the workspace lock (the kernel frees it when its process dies): no guessing from process ids,
  which are reused.
* Cancel sets an event; the training loop checks ``should_stop()`` after every step (a
  TrainerCallback sets ``control.should_training_stop``), so a cancel lands within one step. A
  cancel that arrives after the work finished does not undo it: the run is done.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.workspace import run_folder
from core.workspace.files import disk_problem
from core.workspace.store import Store

logger = logging.getLogger(__name__)

PHASES = ("queued", "preparing", "mining", "encoding", "training", "evaluating", "saving", "done")
HEARTBEAT_SECONDS = 5.0  # how often a running job says it is alive
STALE_SECONDS = 30.0  # a run silent this long is interrupted (6 missed heartbeats)
RATE_WINDOW_SECONDS = 30.0  # the ETA uses the progress rate over this recent window
LOCK_FILE = "job.lock"


class Cancelled(Exception):
    """Raised inside a job when a cancel was requested."""


class BusyError(RuntimeError):
    """Another job holds the workspace; the message names it and says what to do."""


class Reporter:
    """What long work reports to. This base class ignores everything (for tests and library use)."""

    def phase(self, name: str, message: str = "") -> None: ...
    def progress(self, done: int, total: int, unit: str = "steps", epoch: float | None = None) -> None: ...
    def loss(self, step: int, value: float) -> None: ...
    def evaluation(self, step: int, metrics: dict[str, float]) -> None: ...
    def note(self, message: str) -> None: ...

    def should_stop(self) -> bool:
        return False

    def check_cancel(self) -> None:
        """Raise ``Cancelled`` if a cancel was requested (call between and inside phases)."""
        if self.should_stop():
            raise Cancelled()


@dataclass
class Snapshot:
    """A consistent copy of a job's state (safe to read from any thread)."""

    run_id: str
    status: str = "queued"  # queued | running | done | failed | cancelled | interrupted
    phase: str = "queued"
    message: str = ""
    step: int = 0
    total: int = 0
    unit: str = "steps"
    epoch: float | None = None
    losses: list[tuple[int, float]] = field(default_factory=list)
    evals: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    started: float | None = None
    ended: float | None = None
    phase_started: float | None = None
    samples: list[tuple[float, int]] = field(default_factory=list)  # (time, done) in this phase
    error: str | None = None
    traceback: str | None = None
    result: Any = None

    @property
    def fraction(self) -> float:
        return min(max(self.step / self.total, 0.0), 1.0) if self.total else 0.0

    @property
    def eta_seconds(self) -> float | None:
        """Time left in the current phase at the rate of the last ``RATE_WINDOW_SECONDS`` (None when
        there is no rate yet)."""
        if not self.total or self.ended or len(self.samples) < 2:
            return None
        t_last, d_last = self.samples[-1]
        recent = [s for s in self.samples if s[0] >= t_last - RATE_WINDOW_SECONDS]
        t0, d0 = recent[0] if len(recent) >= 2 and recent[-1][1] > recent[0][1] else self.samples[0]
        if d_last <= d0 or t_last <= t0:
            return None
        rate = (d_last - d0) / (t_last - t0)
        return max(self.total - self.step, 0) / rate

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed", "cancelled", "interrupted")


class WorkspaceLock:
    """An exclusive, process-wide lock on a workspace's job slot (``flock``; released if the holder dies).

    ``acquire`` never blocks: it returns or raises ``BusyError`` naming the holder. The holder's
    details sit in ``job.lock`` itself (run id, pid, host, start time) for that message.
    """

    def __init__(self, root: str | Path):
        self.path = Path(root) / LOCK_FILE
        self._fd: int | None = None

    def holder(self) -> dict:
        try:
            return json.loads(self.path.read_text(encoding="utf-8") or "{}")
        except (OSError, json.JSONDecodeError):
            return {}

    def is_free(self) -> bool:
        """Whether no process (this one included) holds the lock right now."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return True
        finally:
            os.close(fd)

    def acquire(self, run_id: str) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            h = self.holder()
            since = time.strftime("%H:%M", time.localtime(h["started"])) if h.get("started") else "?"
            raise BusyError(
                f"Run {h.get('run_id', '?')} is training on this workspace in another process (pid {h.get('pid', '?')} "
                f"on {h.get('host', '?')}, since {since}). One run at a time: wait for it to finish or cancel it, "
                "then launch again.") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"run_id": run_id, "pid": os.getpid(), "host": socket.gethostname(),
                                 "started": time.time()}).encode())
        self._fd = fd

    def relabel(self, run_id: str) -> None:
        """Name the run this held lock is for (taken before the run existed, e.g. by the CLI)."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, json.dumps({"run_id": run_id, "pid": os.getpid(), "host": socket.gethostname(),
                                            "started": time.time()}).encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None


class Job(Reporter):
    """State of one run while it executes; the worker writes it, pages read snapshots."""

    def __init__(self, store: Store, run_id: str):
        self.store = store
        self.run_id = run_id
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._done = threading.Event()
        self._state = Snapshot(run_id=run_id)
        self._run_dir = store.run_dir(run_id)
        self.thread: threading.Thread | None = None

    # -- reporter side (worker thread) --
    def _set(self, **kw: Any) -> None:
        with self._lock:
            for k, v in kw.items():
                setattr(self._state, k, v)

    def _log(self, kind: str, **payload: Any) -> None:
        run_folder.append_progress(self._run_dir, {"t": time.time(), "kind": kind, **payload})

    def phase(self, name: str, message: str = "") -> None:
        self._set(phase=name, message=message, step=0, total=0, unit="steps", phase_started=time.time(), samples=[])
        self._log("phase", phase=name, message=message)

    def progress(self, done: int, total: int, unit: str = "steps", epoch: float | None = None) -> None:
        now = time.time()
        with self._lock:
            s = self._state
            if unit != s.unit or total != s.total or (s.samples and done < s.samples[-1][1]):
                s.samples = []  # a new count starts: the old rate says nothing about it
            s.samples = [*s.samples[-199:], (now, int(done))]
            s.step, s.total, s.unit, s.epoch = int(done), int(total), unit, epoch

    def loss(self, step: int, value: float) -> None:
        with self._lock:
            self._state.losses.append((step, float(value)))
        self._log("loss", step=step, value=float(value))

    def evaluation(self, step: int, metrics: dict[str, float]) -> None:
        with self._lock:
            self._state.evals.append((step, dict(metrics)))
        self._log("eval", step=step, metrics=metrics)

    def note(self, message: str) -> None:
        with self._lock:
            self._state.notes.append(message)
        self._log("note", message=message)

    def should_stop(self) -> bool:
        return self._cancel.is_set()

    # -- page side --
    def cancel(self) -> None:
        """Ask the job to stop (within one training step); no effect once it has finished."""
        if self._done.is_set():
            return
        self._cancel.set()
        self._set(message="Cancelling: stops after the current step…")

    def snapshot(self) -> Snapshot:
        with self._lock:
            s = self._state
            return Snapshot(**{**asdict(s), "losses": list(s.losses), "evals": list(s.evals), "notes": list(s.notes),
                               "samples": list(s.samples), "result": s.result})

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has finished (True) or ``timeout`` passed (False)."""
        return self._done.wait(timeout)

    # -- thread body --
    def _heartbeat(self) -> None:
        while not self._done.wait(HEARTBEAT_SECONDS):
            try:
                self.store.update_run(self.run_id, heartbeat=time.time())
            except Exception:  # noqa: BLE001 - a missed beat is harmless; the next one retries
                logger.warning("heartbeat of %s failed", self.run_id, exc_info=True)

    def run(self, fn: Callable[[Job], Any], lock: WorkspaceLock | None = None) -> None:
        """Run ``fn(self)`` in the calling thread, recording every state change; never raises
        (the outcome is in the snapshot and the store). Releases ``lock`` at the end."""
        beat = threading.Thread(target=self._heartbeat, name=f"heartbeat-{self.run_id}", daemon=True)
        try:
            now = time.time()
            run_folder.reserve_ending(self._run_dir)
            self.store.update_run(self.run_id, status="running", started=now, heartbeat=now, pid=os.getpid(),
                                  error=None)
            self._set(status="running", started=now)
            beat.start()
            result = fn(self)
        except Cancelled:
            self._finish("cancelled", message="Cancelled by the user.")
        except Exception as exc:  # noqa: BLE001 - any failure ends the run as failed, with its message
            tb = traceback.format_exc()
            logger.error("run %s failed: %s", self.run_id, exc)
            message = disk_problem(exc) or f"{type(exc).__name__}: {exc}"
            try:
                run_folder.write_error(self._run_dir, message, tb)
            except Exception:  # noqa: BLE001 - e.g. the disk is full: the ending file and the snapshot still say it
                logger.warning("could not write error.json of %s", self.run_id, exc_info=True)
            self._finish("failed", error=message, traceback=tb)
        else:
            self._finish("done", result=result)
        finally:
            if lock is not None:
                lock.release()  # before _done: whoever waits on the job may launch the next one at once
            self._done.set()

    def _finish(self, status: str, **kw: Any) -> None:
        """Record the end in the store first, then in the snapshot (readers see a consistent end)."""
        now = time.time()
        fields: dict[str, Any] = {"status": status, "ended": now}
        if kw.get("error"):
            fields["error"] = kw["error"]
        headline = getattr(kw.get("result"), "headline", None)
        if isinstance(headline, dict):
            fields["metrics"] = headline
        run_folder.write_ending(self._run_dir, status, kw.get("error"))  # in place: works on a full disk
        try:
            self.store.update_run(self.run_id, **fields)
            self._log("end", status=status, error=kw.get("error"))
        except Exception as exc:  # noqa: BLE001 - the outcome stays in the snapshot and the ending file
            problem = disk_problem(exc)
            logger.error("run %s: could not record its end (%s)", self.run_id, problem or exc)
            if status != "failed" and problem:  # finished, but its results may be incomplete: say so
                status, kw = "failed", {**kw, "error": problem}
                run_folder.write_ending(self._run_dir, status, problem)
        finally:
            self._set(status=status, ended=now, phase=status if status == "done" else self._state.phase, **kw)


class JobRunner:
    """Starts jobs in threads, one at a time per workspace; every page of the process sees them.

    At creation, and on ``refresh()``, runs left queued/running by a process that stopped beating
    are marked interrupted.
    """

    def __init__(self, store: Store):
        self.store = store
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self.interrupted = self.refresh()

    def refresh(self) -> list[str]:
        """Mark runs interrupted whose process stopped (the workspace lock is free, or their heartbeat
        is stale); returns their ids."""
        return recover_runs(self.store)

    def active(self) -> Job | None:
        with self._lock:
            for job in self._jobs.values():
                if job.thread is not None and job.thread.is_alive():
                    return job
        return None

    def submit(self, run_id: str, fn: Callable[[Job], Any]) -> Job:
        """Start ``fn(job)`` in a daemon thread for run ``run_id``.

        Raises:
            BusyError: a job runs in this process or holds the workspace in another one.
        """
        with self._lock:
            for other in self._jobs.values():
                if other.thread is not None and other.thread.is_alive():
                    raise BusyError(f"Run {other.run_id} is still running. Wait for it to finish or cancel it, "
                                    "then launch again.")
            lock = WorkspaceLock(self.store.root)
            lock.acquire(run_id)
            job = Job(self.store, run_id)
            job.thread = threading.Thread(target=job.run, args=(fn, lock), name=f"job-{run_id}", daemon=True)
            self._jobs[run_id] = job
            job.thread.start()
            return job

    def get(self, run_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(run_id)


def recover_runs(store: Store) -> list[str]:
    """Mark runs interrupted whose process is gone (what every entry point does when it opens a
    workspace: the app's ``JobRunner``, each CLI command); returns their ids."""
    return store.mark_interrupted(STALE_SECONDS, no_job_running=WorkspaceLock(store.root).is_free())


def open_workspace(root: str | Path | None = None, note: Callable[[str], None] | None = None) -> Store:
    """The workspace at ``root`` (default: ``$ETL_WORKSPACE``), its dead runs marked interrupted
    (:func:`recover_runs`); ``note`` is told about each one (the CLI prints it)."""
    store = Store(root)
    for run_id in recover_runs(store):
        if note is not None:
            note(f"run {run_id} was marked interrupted: {store.get_run(run_id).get('error')}")
    return store


def run_foreground(store: Store, run_id: str, fn: Callable[[Job], Any], reporter: Reporter | None = None,
                   lock: WorkspaceLock | None = None) -> Job:
    """Run ``fn(job)`` in this thread with the workspace lock and heartbeat (the CLI's way).

    ``reporter`` (e.g. one that prints) receives everything the job reports. ``lock``: the workspace
    lock, already held by the caller (taken before anything was written); None: taken here.

    Raises:
        BusyError: another process holds the workspace.
    """
    if lock is None:
        lock = WorkspaceLock(store.root)
        lock.acquire(run_id)
    else:
        lock.relabel(run_id)
    job = _EchoJob(store, run_id, reporter) if reporter is not None else Job(store, run_id)
    job.run(fn, lock)
    return job


class _EchoJob(Job):
    """A Job that also forwards every report to another reporter (a console printer)."""

    def __init__(self, store: Store, run_id: str, echo: Reporter):
        super().__init__(store, run_id)
        self.echo = echo

    def phase(self, name: str, message: str = "") -> None:
        super().phase(name, message)
        self.echo.phase(name, message)

    def progress(self, done: int, total: int, unit: str = "steps", epoch: float | None = None) -> None:
        super().progress(done, total, unit, epoch)
        self.echo.progress(done, total, unit, epoch)

    def loss(self, step: int, value: float) -> None:
        super().loss(step, value)
        self.echo.loss(step, value)

    def evaluation(self, step: int, metrics: dict[str, float]) -> None:
        super().evaluation(step, metrics)
        self.echo.evaluation(step, metrics)

    def note(self, message: str) -> None:
        super().note(message)
        self.echo.note(message)


def history_from_files(store: Store, run_id: str) -> Snapshot:
    """Rebuild a run's snapshot from its folder (after a restart, or for finished runs)."""
    run = store.get_run(run_id)
    snap = Snapshot(run_id=run_id, status=run["status"], started=run.get("started"), ended=run.get("ended"),
                    error=run.get("error"))
    for ev in run_folder.read_progress(store.run_dir(run_id)):
        kind = ev.get("kind")
        if kind == "phase":
            snap.phase, snap.message = ev["phase"], ev.get("message", "")
        elif kind == "loss":
            snap.losses.append((ev["step"], ev["value"]))
        elif kind == "eval":
            snap.evals.append((ev["step"], ev["metrics"]))
        elif kind == "note":
            snap.notes.append(ev["message"])
    if snap.status == "done":
        snap.phase = "done"
    if snap.status == "failed":
        err = run_folder.read_error(store.run_dir(run_id))
        snap.traceback = err.get("traceback")
        snap.error = snap.error or err.get("error")
    return snap


def fmt_duration(seconds: float | None) -> str:
    """'12 s', 'about 4 min', 'about 1 h 10 min'; '' for None."""
    if seconds is None:
        return ""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s} s"
    minutes = round(s / 60)
    if minutes < 60:
        return f"about {minutes} min"
    return f"about {minutes // 60} h {minutes % 60} min"  # 7,190 s: "about 2 h 0 min", not "1 h 60 min"
