"""A full fine-tune across several processes: PyTorch distributed data parallel through the Trainer.

``launch`` starts ``torchrun --standalone --nproc_per_node N -m core.tuning.ddp_worker RUN_DIR CACHE`` and
follows it: each worker (``core.tuning.ddp_worker``) reads the run's spec and data from the run folder, makes the same
validation hold-out (kept out of training) and training pairs, and runs
``core.tuning.full.train_full`` without per-epoch validation (sentence-transformers runs an
evaluator on one process only; the last step is kept); the Trainer
sees torchrun's environment and wraps the model in DDP (``gloo`` on CPU, ``nccl`` on GPUs), so
every process trains on its share of each batch and gradients are averaged. Rank 0 reports
progress as JSON lines on its stdout (the parent forwards them to the job's reporter), saves the
model and writes ``train_info.json``. A cancel kills the process group.

The same command runs on several GPUs (one process per GPU) or several machines
(``torchrun --nnodes M --node_rank R --rdzv_endpoint HOST:PORT ...``): see the README.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from core.workspace.jobs import Cancelled, Reporter

logger = logging.getLogger(__name__)

EVENT = "ETL-EVENT "  # prefix of the progress lines rank 0 prints


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def _forward(reporter: Reporter, event: dict) -> None:
    kind = event.pop("kind")
    if kind == "phase":
        reporter.phase(event["name"], event.get("message", ""))
    elif kind == "progress":
        reporter.progress(event["done"], event["total"], event.get("unit", "steps"), event.get("epoch"))
    elif kind == "loss":
        reporter.loss(event["step"], event["value"])
    elif kind == "evaluation":
        reporter.evaluation(event["step"], event["metrics"])
    elif kind == "note":
        reporter.note(event["message"])


def launch(run_dir: str | Path, nproc: int, cache_path: str | Path, reporter: Reporter | None = None,
           resume: bool = False) -> dict:
    """Train the run in ``run_dir`` with ``nproc`` processes; returns rank 0's ``train_info.json``.

    Raises:
        Cancelled: the reporter asked to stop (the workers are killed).
        RuntimeError: a worker failed (the message ends with its last output lines).
    """
    reporter = reporter or Reporter()
    cpus = os.cpu_count() or 1
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, cpus // nproc)), "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "core.tuning.ddp_worker", str(run_dir), str(cache_path)] + (["--resume"] if resume else [])
    reporter.phase("training", f"Starting {nproc} training processes (torchrun)")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True, cwd=Path(__file__).resolve().parents[2])
    tail: list[str] = []
    try:
        for line in proc.stdout:
            if reporter.should_stop():
                raise Cancelled()
            if line.startswith(EVENT):
                _forward(reporter, json.loads(line[len(EVENT):]))
            else:
                tail = [*tail[-30:], line.rstrip()]
        code = proc.wait()
    except BaseException:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        raise
    if reporter.should_stop():
        raise Cancelled()
    if code != 0:
        raise RuntimeError(f"Distributed training failed (exit {code}): " + " | ".join(t for t in tail[-8:] if t))
    return json.loads((Path(run_dir) / "train_info.json").read_text())
