"""Progress on the console: the CLI's (and the benchmarks') reporter, printing to stderr."""

from __future__ import annotations

import sys
import time

from core.generate.pairs import origin_warning


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


def print_run_results(results) -> None:
    """A finished run's results as the CLI prints them: the pipeline headline, the metrics table, the
    comparisons, what the evaluation questions are, and the verdict."""
    import pandas as pd

    if results.headline_lines():
        print("Best pipeline with tuning vs best without:")
        print("\n".join(f"  {line}" for line in results.headline_lines()))
        print()
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(results.table().round(4).to_string())
        print()
        print(results.comparisons_table().round(4).to_string(index=False))
    print(f"\nEvaluation questions: {results.question_origin}; passages read at {results.passage_tokens} tokens "
          "by base and tuned models.")
    warning = origin_warning(results.question_origin)
    if warning:
        print(f"WARNING: {warning}")
    print(f"\n{results.verdict}")
