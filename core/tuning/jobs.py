"""Background jobs: one thread per job, one job at a time, thread-safe progress snapshots.

The worker never touches Streamlit: it reports through a ``Reporter`` (phase, step,
loss, evaluation), which the ``Job`` keeps under a lock and appends to the run folder
(``progress.jsonl``), so a page reload or a server restart still shows the history.
Pages read ``Job.snapshot()`` from a fragment with ``run_every``.

Cancel sets an event; the training loop checks ``should_stop()`` after every step (a
TrainerCallback sets ``control.should_training_stop``), so a cancel lands within one step.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from core.store import Store, append_jsonl, atomic_write_json, read_json, read_jsonl

PHASES = ("queued", "preparing", "mining", "encoding", "training", "evaluating", "saving", "done")


class Cancelled(Exception):
    """Raised inside a job when a cancel was requested between phases."""


class BusyError(RuntimeError):
    """A job is already running; the message names it and says what to do."""


class Reporter:
    """What long work reports to. This base class ignores everything (for tests/CLI)."""

    def phase(self, name: str, message: str = "") -> None: ...
    def progress(self, step: int, total: int, epoch: float | None = None) -> None: ...
    def loss(self, step: int, value: float) -> None: ...
    def evaluation(self, step: int, metrics: dict[str, float]) -> None: ...
    def note(self, message: str) -> None: ...

    def should_stop(self) -> bool:
        return False

    def check_cancel(self) -> None:
        """Raise ``Cancelled`` if a cancel was requested (call between phases)."""
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
    epoch: float | None = None
    losses: list[tuple[int, float]] = field(default_factory=list)
    evals: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    started: float | None = None
    ended: float | None = None
    phase_started: float | None = None
    error: str | None = None
    traceback: str | None = None
    result: dict[str, Any] | None = None

    @property
    def fraction(self) -> float:
        return min(self.step / self.total, 1.0) if self.total else 0.0

    @property
    def eta_seconds(self) -> float | None:
        """Remaining time of the current phase from its average step time so far."""
        if not self.total or not self.step or self.phase_started is None or self.ended:
            return None
        per_step = (time.time() - self.phase_started) / self.step
        return per_step * (self.total - self.step)

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed", "cancelled", "interrupted")


class Job(Reporter):
    """State of one background run; the worker writes it, pages read snapshots."""

    def __init__(self, store: Store, run_id: str):
        self.store = store
        self.run_id = run_id
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._state = Snapshot(run_id=run_id)
        self._progress_file = store.run_dir(run_id) / "progress.jsonl"
        self.thread: threading.Thread | None = None

    # -- reporter side (worker thread) --
    def _set(self, **kw: Any) -> None:
        with self._lock:
            for k, v in kw.items():
                setattr(self._state, k, v)

    def _log(self, kind: str, **payload: Any) -> None:
        append_jsonl(self._progress_file, {"t": time.time(), "kind": kind, **payload})

    def phase(self, name: str, message: str = "") -> None:
        self._set(phase=name, message=message, step=0, total=0, phase_started=time.time())
        self._log("phase", phase=name, message=message)

    def progress(self, step: int, total: int, epoch: float | None = None) -> None:
        self._set(step=step, total=total, epoch=epoch)

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
        self._cancel.set()
        self._set(message="Cancelling: stops after the current step…")

    def snapshot(self) -> Snapshot:
        with self._lock:
            s = self._state
            return Snapshot(**{**asdict(s), "losses": list(s.losses), "evals": list(s.evals), "notes": list(s.notes)})

    # -- thread body --
    def _run(self, fn: Callable[[Job], dict | None]) -> None:
        now = time.time()
        self._set(status="running", started=now)
        self.store.update_run(self.run_id, status="running", started=now)
        try:
            result = fn(self)
            if self._cancel.is_set():
                raise Cancelled()
        except Cancelled:
            self._finish("cancelled", message="Cancelled by the user.")
        except Exception as exc:  # noqa: BLE001 - any failure ends the run as failed, with its message
            tb = traceback.format_exc()
            atomic_write_json(self.store.run_dir(self.run_id) / "error.json", {"error": str(exc), "traceback": tb})
            self._finish("failed", error=f"{type(exc).__name__}: {exc}", traceback=tb)
        else:
            self._finish("done", result=result or {})

    def _finish(self, status: str, **kw: Any) -> None:
        """Record the end in the store first, then in the snapshot (readers see a consistent end)."""
        now = time.time()
        fields: dict[str, Any] = {"status": status, "ended": now}
        if kw.get("error"):
            fields["error"] = kw["error"]
        if kw.get("result") and isinstance(kw["result"].get("headline"), dict):
            fields["metrics"] = kw["result"]["headline"]
        try:
            self.store.update_run(self.run_id, **fields)
            self._log("end", status=status, error=kw.get("error"))
        finally:
            self._set(status=status, ended=now, phase=status if status == "done" else self._state.phase, **kw)


class JobRunner:
    """Process-wide registry: starts jobs in threads, one at a time.

    At creation, runs that a dead process left queued/running are marked interrupted.
    """

    def __init__(self, store: Store):
        self.store = store
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self.interrupted = store.mark_interrupted(set())

    def active(self) -> Job | None:
        with self._lock:
            for job in self._jobs.values():
                if job.thread is not None and job.thread.is_alive():
                    return job
        return None

    def submit(self, run_id: str, fn: Callable[[Job], dict | None]) -> Job:
        """Start ``fn(job)`` in a daemon thread for run ``run_id``.

        Raises:
            BusyError: another job is running (one at a time: training saturates the CPU).
        """
        with self._lock:
            for other in self._jobs.values():
                if other.thread is not None and other.thread.is_alive():
                    raise BusyError(
                        f"Run {other.run_id} is still running. Wait for it to finish or cancel it, then launch again."
                    )
            job = Job(self.store, run_id)
            job.thread = threading.Thread(target=job._run, args=(fn,), name=f"job-{run_id}", daemon=True)
            self._jobs[run_id] = job
            job.thread.start()
            return job

    def get(self, run_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(run_id)


def history_from_files(store: Store, run_id: str) -> Snapshot:
    """Rebuild a run's snapshot from its folder (after a restart, or for finished runs)."""
    run = store.get_run(run_id)
    snap = Snapshot(run_id=run_id, status=run["status"], started=run.get("started"), ended=run.get("ended"),
                    error=run.get("error"))
    for ev in read_jsonl(store.run_dir(run_id) / "progress.jsonl"):
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
        err = read_json(store.run_dir(run_id) / "error.json", {}) or {}
        snap.traceback = err.get("traceback")
        snap.error = snap.error or err.get("error")
    return snap
