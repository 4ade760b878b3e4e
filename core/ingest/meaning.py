"""Matching answers by meaning in the background: a worker thread, a progress snapshot, a registry.

Linking answers by meaning (:func:`core.ingest.linking.link_answers` with a model) encodes every
passage: minutes on a CPU for thousands of passages. The Data page must stay usable meanwhile and
must not redo it on every rerun, so:

* :class:`MeaningTask` runs one linking in a daemon thread. The worker never touches Streamlit: it
  only calls the ``progress`` function it is given, which updates a lock-guarded state;
  :meth:`MeaningTask.snapshot` returns a frozen copy (:class:`MeaningProgress`: phase, passages
  encoded of how many, an ETA from the recent rate) that a page fragment polls and draws.
* :class:`MeaningTasks` is the process-wide registry, keyed by :func:`task_key` (the questions and
  answers, the passages and the model): the same files, answers and model find the same task,
  running or done, from any rerun or browser tab; nothing is computed twice. It keeps the last
  :data:`KEEP_TASKS` tasks.

It runs beside, not under, the workspace's training job lock: a training run in another tab is
never blocked by it (both share the CPU while it runs). The embeddings go through the workspace's
embedding cache, so even after a server restart a repeat costs little.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

logger = logging.getLogger(__name__)

KEEP_TASKS = 8  # finished tasks kept for reruns; each holds one linked dataset (the corpus is shared text)
RATE_WINDOW = 8  # progress reports the ETA's rate is measured over (the recent rate, not the average)
State = Literal["running", "done", "failed"]


def task_key(queries: dict[str, str], answers: dict[str, str], chunk_ids: Iterable[str], model: str,
             documents: dict[str, str] | None = None) -> str:
    """What a matching depends on, hashed: questions, answers (and their named documents), the passages
    (chunk ids hash their file and text) and the model's name.

    Returns:
        A 16-hex-digit key.
    """
    blob = json.dumps([sorted(queries.items()), sorted(answers.items()), sorted((documents or {}).items()),
                       list(chunk_ids), model], ensure_ascii=False)  # fmt: skip
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()[:16]


@dataclass(frozen=True)
class MeaningProgress:
    """A snapshot of a :class:`MeaningTask`.

    Attributes:
        state: "running", "done" or "failed".
        phase: "starting", "passages" (encoding the passages) or "answers" (encoding the answers).
        done: Texts of this phase encoded so far.
        total: Texts in this phase.
        elapsed_s: Seconds since the task started.
        eta_s: Seconds left, from the rate of the last :data:`RATE_WINDOW` reports (passages and
            answers both counted); None until there is a rate to measure.
        error: The failure, in words (state "failed").
    """

    state: State
    phase: str
    done: int
    total: int
    elapsed_s: float
    eta_s: float | None = None
    error: str | None = None

    @property
    def fraction(self) -> float:
        """Share of this phase done, 0..1."""
        return min(1.0, self.done / self.total) if self.total else 0.0

    def text(self) -> str:
        """E.g. "Matching answers by meaning: 1,024 of 3,873 passages encoded · about 3 min left"."""
        if self.state == "failed":
            return f"Matching answers by meaning failed: {self.error}"
        if self.state == "done":
            return f"Matching answers by meaning done in {_duration(self.elapsed_s)}."
        if self.phase == "starting":
            return "Matching answers by meaning: loading the model…"
        what = "passages" if self.phase == "passages" else "answers"
        line = f"Matching answers by meaning: {self.done:,} of {self.total:,} {what} encoded"
        if self.eta_s is None:
            return line + " · estimating the time left…"
        return line + f" · about {_duration(self.eta_s)} left"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    return f"{round(seconds / 60)} min"


class MeaningTask:
    """One linking by meaning, run in a worker thread (see the module docstring).

    Args:
        key: Its :func:`task_key`.
        work: ``work(progress) -> result``; calls ``progress(phase, done, total)`` as it goes
            (:data:`core.ingest.linking.LinkProgress`). Must not call Streamlit.
        answers: Answers the "answers" phase will encode (for the ETA before that phase starts).
    """

    def __init__(self, key: str, work: Callable[[Callable[[str, int, int], None]], Any], answers: int = 0):
        self.key = key
        self._work = work
        self._answers = answers
        self._lock = threading.Lock()
        self._state: State = "running"
        self._phase, self._done, self._total = "starting", 0, 0
        self._started = time.monotonic()
        self._ended: float | None = None
        self._error: str | None = None
        self._result: Any = None
        self._samples: deque[tuple[float, int]] = deque(maxlen=RATE_WINDOW)
        self._finished = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"link-by-meaning-{key}", daemon=True)

    def start(self) -> MeaningTask:
        """Start the worker thread; returns the task."""
        self._thread.start()
        return self

    def _progress(self, phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        with self._lock:
            if phase != self._phase and self._phase == "passages":
                self._samples.clear()  # answers are shorter: measure their own rate
            self._phase, self._done, self._total = phase, done, total
            self._samples.append((now, done))

    def _run(self) -> None:
        try:
            result = self._work(self._progress)
        except Exception as exc:  # noqa: BLE001 - reported to the page, which offers a retry
            logger.exception("matching answers by meaning failed")
            with self._lock:
                self._state, self._error, self._ended = "failed", str(exc) or type(exc).__name__, time.monotonic()
        else:
            with self._lock:
                self._state, self._result, self._ended = "done", result, time.monotonic()
        finally:
            self._finished.set()

    def _eta(self) -> float | None:
        if len(self._samples) < 2:
            return None
        (t0, d0), (t1, d1) = self._samples[0], self._samples[-1]
        if t1 <= t0 or d1 <= d0:
            return None
        rate = (d1 - d0) / (t1 - t0)
        left = self._total - self._done
        if self._phase == "passages":
            left += self._answers
        return left / rate

    def snapshot(self) -> MeaningProgress:
        """A frozen copy of where the task stands (cheap; safe from any thread)."""
        with self._lock:
            end = self._ended if self._ended is not None else time.monotonic()
            eta = self._eta() if self._state == "running" else None
            return MeaningProgress(self._state, self._phase, self._done, self._total, end - self._started, eta,
                                   self._error)  # fmt: skip

    def result(self) -> Any:
        """What ``work`` returned, once done; None before (or after a failure)."""
        with self._lock:
            return self._result

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the task ends (tests, the CLI); True when it did within ``timeout``."""
        return self._finished.wait(timeout)


class MeaningTasks:
    """The process-wide registry of :class:`MeaningTask` objects, by key (thread-safe)."""

    def __init__(self, keep: int = KEEP_TASKS):
        self._keep = keep
        self._lock = threading.Lock()
        self._tasks: OrderedDict[str, MeaningTask] = OrderedDict()

    def get(self, key: str) -> MeaningTask | None:
        """The task for ``key``, running or finished; None when there is none."""
        with self._lock:
            return self._tasks.get(key)

    def start(self, key: str, work: Callable[[Callable[[str, int, int], None]], Any], answers: int = 0) -> MeaningTask:
        """The task for ``key``: the existing one unless it failed (then a new try), else a new one, started.

        Args:
            key: :func:`task_key` of the matching.
            work: See :class:`MeaningTask`.
            answers: See :class:`MeaningTask`.

        Returns:
            The task.
        """
        with self._lock:
            task = self._tasks.get(key)
            if task is not None and task.snapshot().state != "failed":
                self._tasks.move_to_end(key)
                return task
            task = MeaningTask(key, work, answers).start()
            self._tasks[key] = task
            finished = [k for k, t in self._tasks.items() if t.snapshot().state != "running"]
            while len(self._tasks) > self._keep and finished:
                del self._tasks[finished.pop(0)]
            return task
