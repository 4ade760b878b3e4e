"""How long the default training takes on this machine (issue 26: "default training <= 15 minutes for ~600
pairs; confirm each default change on the sample and one more collection of your own making").

Each collection runs the README's command path, `python -m core train --train T --eval E --json` with every
setting at its default (full fine-tune, bf16 training where the CPU has it, the 15-minute time budget), in a
fresh workspace, one process at a time; the load average before and after is recorded, so a contended run shows.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_default_time.py --out bench/results/default-time.jsonl \
        [--collections sample sec10k long]

Collections: sample (the bundled sample's two files), sec10k (train_dataset.json -> val_dataset.json, 668
training questions), long (made here: sec-10k with each passage joined to the next one of its file, twice the
text per passage, the same questions; what the 512-token limit and the step time feel most).
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


def _joined(raw: dict) -> dict:
    """``raw`` ({queries, corpus, relevant_docs}) with each passage followed by the next one of the file."""
    ids = list(raw["corpus"])
    corpus = {d: raw["corpus"][d] + "\n\n" + raw["corpus"][ids[(i + 1) % len(ids)]] for i, d in enumerate(ids)}
    return {**raw, "corpus": corpus}


def files_of(name: str, folder: Path) -> tuple[Path, Path]:
    """The (training, evaluation) files of collection ``name``, written under ``folder`` when made here."""
    if name == "sample":
        return ROOT / "sample_data" / "qa_train.csv", ROOT / "sample_data" / "qa_eval.csv"
    if name == "sec10k":
        return DATA / "train_dataset.json", DATA / "val_dataset.json"
    if name == "long":
        out = []
        for part in ("train_dataset.json", "val_dataset.json"):
            path = folder / f"long_{part}"
            path.write_text(json.dumps(_joined(json.loads((DATA / part).read_text(encoding="utf-8")))),
                            encoding="utf-8")
            out.append(path)
        return out[0], out[1]
    raise ValueError(name)


def run_one(name: str, device: str) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"etl-time-{name}-") as tmp:
        train, ev = files_of(name, Path(tmp))
        env = {**os.environ, "ETL_WORKSPACE": str(Path(tmp) / "ws"), "HF_HUB_OFFLINE": "1",
               "TOKENIZERS_PARALLELISM": "false"}
        load_before = os.getloadavg()
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "core", "train", "--train", str(train), "--eval", str(ev),
                               "--device", device, "--json"], cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        load_after = os.getloadavg()
    if proc.returncode != 0:
        raise SystemExit(f"{name}: train failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    res = json.loads(proc.stdout)
    systems = {role: s["metrics"].get(NDCG) for role, s in (res.get("systems") or {}).items()}
    return {
        "collection": name, "when": time.strftime("%Y-%m-%d %H:%M:%S"), "command": "python -m core train (defaults)",
        "wall_seconds": round(wall, 1), "total_seconds": res.get("total_seconds"),
        "training_seconds": res.get("training_seconds"), "training": res.get("training"),
        "notes": res.get("notes"), "headline": res.get("headline"), "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in load_after], "ndcg@10": systems or None,
        "stderr_tail": proc.stderr[-1500:],
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="JSON lines file the results are added to")
    p.add_argument("--collections", nargs="+", choices=["sample", "sec10k", "long"],
                   default=["sample", "sec10k", "long"])
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    for name in args.collections:
        row = run_one(name, args.device)
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps({k: v for k, v in row.items() if k != "stderr_tail"}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
