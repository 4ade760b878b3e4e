"""LoRA against the full fine-tune in sec-10k's CLI setting (issue 26 item 4b: quality, time, size saved).

Each method runs the README's train command, every setting at its default but the method, in a fresh workspace,
one after the other (never two at once, so their times compare when the machine is otherwise quiet):

    python -m core train --train train_dataset.json --eval val_dataset.json --method METHOD --json

and adds one JSON line to ``--out``: nDCG@10 of every system with its conditions, the comparisons and headline,
training and whole-run seconds, the size of what the run saved (``model/`` or ``lora/``), and the load average
before and after (a contended run shows).

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_lora.py --out bench/results/lora-sec10k.jsonl
    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_lora.py --out bench/results/lora-sec10k.jsonl --methods lora
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "sec-10k-qa"
NDCG = "nDCG@10"
SAVED = {"full": "model", "lora": "lora"}  # what each method keeps in its run folder


def _size_mb(folder: Path) -> float | None:
    if not folder.is_dir():
        return None
    return round(sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20, 1)


def run_one(method: str, device: str, max_steps: int) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"etl-lora-{method}-") as tmp:
        ws = Path(tmp) / "ws"
        env = {**os.environ, "ETL_WORKSPACE": str(ws), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        cmd = [sys.executable, "-m", "core", "train", "--train", str(DATA / "train_dataset.json"), "--eval",
               str(DATA / "val_dataset.json"), "--method", method, "--device", device, "--json"]
        if max_steps:
            cmd += ["--max-steps", str(max_steps)]
        load0 = os.getloadavg()
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        load1 = os.getloadavg()
        if proc.returncode != 0:
            raise SystemExit(f"{method} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        res = json.loads(proc.stdout)
        runs = sorted((ws / "runs").iterdir()) if (ws / "runs").is_dir() else []
        saved = {r.name: _size_mb(r / SAVED[method]) for r in runs}
    systems = res.get("systems") or {}
    return {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"), "method": method, "max_steps": max_steps,
        "command": " ".join(["python", "-m", "core", *cmd[3:]]),
        "ndcg@10": {role: s["metrics"].get(NDCG) for role, s in systems.items()},
        "conditions": {role: s.get("conditions") for role, s in systems.items()},
        "comparisons": res.get("comparisons"), "headline": res.get("headline"), "training": res.get("training"),
        "training_seconds": res.get("training_seconds"), "wall_seconds": round(wall, 1),
        "saved_mb": saved, "load_before": [round(x, 2) for x in load0], "load_after": [round(x, 2) for x in load1],
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="JSON lines file the results are added to")
    p.add_argument("--methods", nargs="+", choices=sorted(SAVED), default=["lora", "full"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--max-steps", type=int, default=0, help="wiring check: cap the training steps")
    args = p.parse_args()
    for method in args.methods:
        row = run_one(method, args.device, args.max_steps)
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(json.dumps(row, default=str) + "\n")
        print(json.dumps({k: row[k] for k in ("method", "ndcg@10", "training_seconds", "wall_seconds", "saved_mb",
                                              "headline", "load_before", "load_after")}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
