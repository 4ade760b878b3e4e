"""One torchrun process of a full fine-tune across several processes (``core.tuning.ddp`` starts them):
``python -m torch.distributed.run ... -m core.tuning.ddp_worker RUN_DIR CACHE [--resume]``.

It reads the run's spec and data from the run folder, makes the same validation hold-out and training
pairs as one process would, and trains through ``core.tuning.full.train_full`` with the method's hooks;
rank 0 reports as JSON lines on stdout, saves the model and writes ``train_info.json``. (A module of its
own: it reads the method registry, which launches ``core.tuning.ddp``.)
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

from core.retrieval.embedding import EmbeddingCache
from core.tuning.ddp import EVENT, rank
from core.tuning.full import train_full
from core.tuning.holdout import split_validation
from core.tuning.methods import method_of
from core.tuning.spec import RunSpec
from core.workspace import run_folder
from core.workspace.files import atomic_write_json
from core.workspace.jobs import Reporter


class _EventPrinter(Reporter):
    """Rank 0's reporter: every report as one JSON line on stdout."""

    def _emit(self, kind: str, **payload) -> None:
        print(EVENT + json.dumps({"kind": kind, **payload}), flush=True)

    def phase(self, name: str, message: str = "") -> None:
        self._emit("phase", name=name, message=message)

    def progress(self, done: int, total: int, unit: str = "steps", epoch: float | None = None) -> None:
        self._emit("progress", done=done, total=total, unit=unit, epoch=epoch)

    def loss(self, step: int, value: float) -> None:
        self._emit("loss", step=step, value=value)

    def evaluation(self, step: int, metrics: dict[str, float]) -> None:
        self._emit("evaluation", step=step, metrics=metrics)

    def note(self, message: str) -> None:
        self._emit("note", message=message)


def worker(run_dir: Path, cache_path: Path, resume: bool) -> None:
    """One torchrun process: the run's full fine-tune (rank 0 reports, saves and writes train_info.json)."""
    spec = RunSpec.load(run_dir)
    train, _ = run_folder.read_data(run_dir)
    train_part, _ = split_validation(train, spec.scoring.validation_share, spec.seed)  # held out, as in one process
    reporter = _EventPrinter() if rank() == 0 else Reporter()
    if rank() == 0:
        reporter.note("Several processes: the model after the last step is kept (sentence-transformers runs its "
                      "evaluator on one process only, so no epoch is chosen on the validation questions; they "
                      "still choose the hybrid's fusion).")
    _, info = train_full(train_part, None, spec, run_dir, reporter, resume=resume, cache=EmbeddingCache(cache_path),
                         hooks=method_of(spec.method).train_hooks)  # the method's changes to the training path
    if rank() == 0:
        atomic_write_json(run_dir / "train_info.json", asdict(info))


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--resume"]
    worker(Path(args[0]), Path(args[1]), "--resume" in sys.argv)
