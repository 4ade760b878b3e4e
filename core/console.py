"""Progress on the console: the CLI's (and the benchmarks') reporter, printing to stderr."""

from __future__ import annotations

import sys
import time


class PrintReporter:
    """Shows a job's progress on stderr (the CLI's Reporter)."""

    def __init__(self):
        self._last = 0.0
        self._phase = ""

    def phase(self, name: str, message: str = "") -> None:
        self._phase = name
        print(f"\n[{name}] {message}", file=sys.stderr, flush=True)

    def progress(self, done: int, total: int, unit: str = "steps", epoch: float | None = None) -> None:
        now = time.monotonic()
        if total and (now - self._last > 2.0 or done >= total):
            self._last = now
            ep = f" (epoch {epoch:.2f})" if epoch is not None else ""
            print(f"  {self._phase}: {done}/{total} {unit}{ep}", file=sys.stderr, flush=True)

    def loss(self, step: int, value: float) -> None:
        if step % 10 == 0:
            print(f"  step {step} loss {value:.4f}", file=sys.stderr, flush=True)

    def evaluation(self, step: int, metrics: dict) -> None:
        print(f"  validation at step {step}: MRR@10 {metrics['MRR@10']:.4f} Accuracy@10 {metrics['Accuracy@10']:.4f}",
              file=sys.stderr, flush=True)

    def note(self, message: str) -> None:
        print(f"  note: {message}", file=sys.stderr, flush=True)

    def should_stop(self) -> bool:
        return False
