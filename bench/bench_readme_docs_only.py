"""Documents only, through the README's two commands (issue 26's first target).

sec-10k's evaluation passages (val_dataset.json's corpus; its 790 questions are never shown to a command) are the
user's documents:

    python -m core generate --from val_dataset.json --out pairs.csv          # sentence as question, defaults
    python -m core train --train pairs.csv --eval val_dataset.json --json    # the default full fine-tune

each in a fresh workspace, every setting at its default. One JSON line is added to ``--out``: the generation's
report line, the run's systems (nDCG@10 of base, tuned, BM25 and both hybrids), its headline and training lines,
the passages searched, and wall times with the load average (a contended run shows).

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_readme_docs_only.py --out bench/results/readme-docs-only.jsonl

A variant of generate's settings (not the README's defaults) goes to another file:

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_readme_docs_only.py --keep-sentence 1 \
        --out bench/results/readme-docs-only-variants.jsonl
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT.parent / "shared" / "data" / "sec-10k-qa" / "val_dataset.json"
NDCG = "nDCG@10"


def _cli(args: list[str], env: dict) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args[:1])} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc, time.perf_counter() - t0


def _long_collection(path: Path) -> Path:
    """val_dataset.json with every passage joined to the next one (as bench_recipe.py's "long" data)."""
    data = json.loads(EVAL.read_text(encoding="utf-8"))
    ids = list(data["corpus"])
    data["corpus"] = {d: data["corpus"][d] + "\n\n" + data["corpus"][ids[(i + 1) % len(ids)]] for i, d in enumerate(ids)}
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def compare(ws_a: str, ws_b: str, out: str) -> int:
    """Paired change B - A per question, on the same questions and passages (checked), of the tuned model and the
    tuned hybrid, with the project's own paired test (``core.retrieval.stats.paired_randomization``)."""
    sys.path.insert(0, str(ROOT))
    from core.retrieval.stats import paired_randomization
    from core.workspace.run_folder import load_per_query, load_results

    frames, conditions = [], []
    for ws in (ws_a, ws_b):
        runs = sorted(p for p in (Path(ws) / "runs").iterdir() if p.is_dir())
        if len(runs) != 1:
            raise SystemExit(f"{ws}: expected one run, found {len(runs)}")
        frames.append(load_per_query(runs[0]))
        systems = load_results(runs[0]).to_dict()["systems"]
        conditions.append({role: {k: (s.get("conditions") or {}).get(k) for k in (
            "passages_fingerprint", "questions_fingerprint", "passage_tokens", "backend")}
            for role, s in systems.items() if role in ("base", "bm25")})
    a, b = frames
    if list(a.index) != list(b.index) or conditions[0] != conditions[1]:
        raise SystemExit("the two runs did not search the same passages with the same questions and settings")
    row = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "compare": [ws_a, ws_b], "n": len(a),
           "conditions": conditions[0]}
    for role in ("tuned", "hybrid"):
        col = f"{role}|{NDCG}"
        delta, low, high, p = paired_randomization(a[col].to_numpy(float), b[col].to_numpy(float))
        row[role] = {"a": round(float(a[col].mean()), 4), "b": round(float(b[col].mean()), 4),
                     "delta": round(delta, 4), "low": round(low, 4), "high": round(high, 4), "p_value": p}
    with open(out, "a", encoding="utf-8") as f:
        f.write(json.dumps(row, default=str) + "\n")
    print(json.dumps(row, indent=1, default=str))
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="JSON lines file the result is added to")
    p.add_argument("--device", default="cpu")
    p.add_argument("--max-steps", type=int, default=0, help="wiring check: cap the training steps")
    p.add_argument("--keep-sentence", type=float, default=None,
                   help="generate's --keep-sentence (a variant: write it to another --out than the default's file, "
                        "whose last line the advice quotes)")
    p.add_argument("--per-passage", type=int, default=None, help="generate's --per-passage (a variant, likewise)")
    p.add_argument("--collection", choices=["sec10k", "sample", "long"], default="sec10k",
                   help="sec10k: val_dataset.json; sample: sample_data/qa_eval.csv; long: val_dataset.json with each "
                        "passage joined to the next (twice the text, the same questions; written to a temporary file)")
    p.add_argument("--workspace", default=None,
                   help="keep the run's workspace in this (new) folder, for --compare; default: a temporary one")
    p.add_argument("--compare", nargs=2, metavar=("WS_A", "WS_B"), default=None,
                   help="instead of a run: the paired change B - A of the tuned model and of the tuned hybrid "
                        "(nDCG@10 per question) between two kept workspaces of the same collection; one JSON line "
                        "added to --out")
    args = p.parse_args()
    if args.compare:
        return compare(*args.compare, out=args.out)
    if args.workspace and Path(args.workspace).exists() and any(Path(args.workspace).iterdir()):
        raise SystemExit(f"--workspace {args.workspace} is not empty")
    with tempfile.TemporaryDirectory(prefix="etl-readme-docs-") as tmp:
        qa = {"sec10k": EVAL, "sample": ROOT / "sample_data" / "qa_eval.csv"}.get(args.collection)
        qa = qa or _long_collection(Path(tmp) / "long.json")
        env = {**os.environ, "ETL_WORKSPACE": args.workspace or str(Path(tmp) / "ws"), "HF_HUB_OFFLINE": "1",
               "TOKENIZERS_PARALLELISM": "false"}
        pairs = Path(tmp) / "pairs.csv"
        load0 = os.getloadavg()
        variant = [*(["--keep-sentence", f"{args.keep_sentence:g}"] if args.keep_sentence is not None else []),
                   *(["--per-passage", str(args.per_passage)] if args.per_passage else [])]
        gen, gen_s = _cli(["generate", "--from", str(qa), "--out", str(pairs), "--device", args.device, *variant],
                          env)
        with pairs.open(encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
        train_args = ["train", "--train", str(pairs), "--eval", str(qa), "--device", args.device, "--json"]
        if args.max_steps:
            train_args += ["--max-steps", str(args.max_steps)]
        run, run_s = _cli(train_args, env)
        load1 = os.getloadavg()
    res = json.loads(run.stdout)
    row = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"), "collection": args.collection, "max_steps": args.max_steps,
        "generate_args": variant,
        "generate_seconds": round(gen_s, 1), "generate_report": gen.stderr.strip().splitlines()[-3:],
        "pairs_written": len(rows), "passages_with_pairs": len({r.get("passage_id") for r in rows}),
        "train_seconds": round(run_s, 1), "training_seconds": res.get("training_seconds"),
        "ndcg@10": {role: s["metrics"].get(NDCG) for role, s in (res.get("systems") or {}).items()},
        "conditions": {role: s.get("conditions") for role, s in (res.get("systems") or {}).items()},
        "comparisons": res.get("comparisons"), "headline": res.get("headline"), "training": res.get("training"),
        "best": res.get("best"), "recommended": res.get("recommended"), "verdict": res.get("verdict"),
        "fusion": res.get("fusion"), "judging": res.get("judging"),
        "load_before": [round(x, 2) for x in load0], "load_after": [round(x, 2) for x in load1],
    }
    with open(args.out, "a", encoding="utf-8") as f:
        f.write(json.dumps(row, default=str) + "\n")
    print(json.dumps({k: row[k] for k in ("generate_seconds", "pairs_written", "passages_with_pairs",
                                          "train_seconds", "ndcg@10", "headline")}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
