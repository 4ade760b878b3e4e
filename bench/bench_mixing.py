"""Generated pairs from every passage together with the labelled training pairs (issue 26 item 3).

sec-10k's CLI setting: labelled training questions are train_dataset.json's 668 (over its 334 passages);
evaluation is val_dataset.json's 790 questions against its own 395 passages, which no configuration trains on.
"Sentence as question" (offline, ``core.generate``, default settings and round-trip filter) writes questions
from *every* passage the user holds: the 334 training passages and the 395 evaluation passages (documents
only: the evaluation questions are never shown). Each configuration is the default full fine-tune through the
app's job path (``core.execute``), time budget included, on one training split:

* ``labelled``: the 668 labelled questions alone;
* ``generated``: the generated questions alone;
* ``together``: both, every generated pair (``generated_per_labelled`` 0);
* ``ratio1``: both, at most one generated pair per labelled pair, spread over the passages.

Each configuration appends one JSON line to ``--out`` (scores with 95% intervals, the paired change of the
tuned model and of the tuned hybrid against the base ones, training time and lines); the run folders stay in
``--workspace``, and ``--compare`` prints the paired differences between configurations from them. A
configuration already in ``--out`` is skipped.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_mixing.py --out bench/results/mixing.jsonl \
        --workspace /tmp/etl-mixing
    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_mixing.py --out bench/results/mixing.jsonl --compare
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "sec-10k-qa"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CONFIGS = ("labelled", "generated", "together", "ratio1")
ROLES = ("base", "tuned", "bm25", "base_hybrid", "hybrid")


def generated_split(store, labelled, ev, base_model, device):
    """Sentence-as-question pairs over every passage (training and evaluation passages), saved once."""
    from core.cli import PrintReporter
    from core.generate.job import GenerationSpec, generate
    from core.generate.pairs import build_dataset
    from core.retrieval.embedding import EmbeddingCache

    passages = {**labelled.corpus, **ev.corpus}
    spec = GenerationSpec.for_backend("", "offline", "inverse_cloze")
    t0 = time.perf_counter()
    out = generate(passages, spec, reporter=PrintReporter(), embedding_cache=EmbeddingCache(store.cache_path),
                   model=base_model, device=device)
    gen = build_dataset(out.kept(), passages)
    gen.dataset.origins = dict(gen.origins)
    s = out.summary
    info = {"passages": len(passages), "generated": s.generated, "kept": s.kept, "funnel": s.line,
            "seconds": round(time.perf_counter() - t0, 1)}
    return gen.dataset, info


def split_of(config: str, labelled, gen):
    from core.dataset import merge_datasets

    if config == "labelled":
        return labelled
    if config == "generated":
        return gen
    return merge_datasets([labelled, gen])  # one corpus, passages keyed by their text; origins kept


def run_config(store, config: str, train, ev, device, max_steps: int = 0) -> dict:
    from bench.bench_generate import changes, scores
    from core.cli import PrintReporter
    from core.execute import execute
    from core.tuning.runs import create_run
    from core.tuning.spec import RunSpec
    from core.workspace.jobs import run_foreground
    from core.workspace.run_folder import load_per_query

    ds_id = store.save_dataset(f"mixing-{config}", train, ev, meta={"origin": "bench"})
    spec = RunSpec.for_method("full", generated_per_labelled=1.0 if config == "ratio1" else 0.0,
                              **({"max_steps": max_steps} if max_steps else {}))
    run_id = create_run(store, ds_id, spec, name=config)
    job = run_foreground(store, run_id, lambda j: execute(store, run_id, j, device=device), PrintReporter())
    snap = job.snapshot()
    if snap.status != "done":
        return {"error": snap.error}
    r = snap.result
    pq = load_per_query(store.run_dir(run_id))
    return {"run_dir": str(store.run_dir(run_id)), "train_questions": len(train),
            "train_pairs": len(train.pairs()), "settings": spec.to_dict(),
            "training_seconds": round(r.training_seconds, 1), "run_seconds": round(r.total_seconds, 1),
            "training": r.training, "systems": {role: r.systems[role].name for role in r.roles},
            "conditions": {role: r.systems[role].conditions.to_dict() for role in r.roles},
            "scores": scores(pq, {role: role for role in r.roles}),
            "change_tuned_vs_base": changes(pq, "base", "tuned"),
            "change_hybrid_vs_base_hybrid": changes(pq, "base_hybrid", "hybrid"),
            "verdict": r.verdict}


def compare(lines: list[dict]) -> None:
    """Paired differences between configurations (the same 790 questions), tuned dense and tuned hybrid."""
    import pandas as pd

    from core.retrieval.stats import compare as paired
    from core.workspace.run_folder import load_per_query

    pqs = {r["config"]: load_per_query(r["run_dir"]) for r in lines if "run_dir" in r}
    names = [c for c in CONFIGS if c in pqs]
    for role in ("tuned", "hybrid"):
        frame = pd.concat({c: pqs[c][f"{role}|nDCG@10"] for c in names}, axis=1)
        frame.columns = [f"{c}|nDCG@10" for c in names]
        print(f"\n{role} nDCG@10, paired differences (row minus column: change, 95% interval, p):")
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                d = paired(frame, a, b, "nDCG@10")
                print(f"  {b} - {a}: {d.delta:+.4f} [{d.low:+.4f}, {d.high:+.4f}] p {d.p_value:.3f}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="JSON lines file; configurations already in it are skipped")
    p.add_argument("--configs", nargs="+", choices=CONFIGS, default=list(CONFIGS))
    p.add_argument("--workspace", default=None, help="workspace (default: a new temporary folder)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--slice", type=int, default=0, help="wiring check: the first N questions of each file")
    p.add_argument("--max-steps", type=int, default=0, help="wiring check: cap the training steps")
    p.add_argument("--compare", action="store_true", help="only print the paired differences of --out's runs")
    args = p.parse_args()

    from core.ingest.qafiles import load_qa_path
    from core.retrieval.embedding import load_model
    from core.workspace.files import read_jsonl
    from core.workspace.store import Store

    out = Path(args.out)
    lines = [r for r in read_jsonl(out) if "error" not in r] if out.exists() else []
    if args.compare:
        compare(lines)
        return 0
    todo = [c for c in args.configs if c not in {r["config"] for r in lines}]
    if not todo:
        compare(lines)
        return 0
    store = Store(args.workspace or tempfile.mkdtemp(prefix="etl-bench-mixing-"))
    labelled = load_qa_path(DATA / "train_dataset.json").dataset
    ev = load_qa_path(DATA / "val_dataset.json").dataset
    if args.slice:
        labelled, ev = (ds.subset(ds.query_ids[:args.slice], list(dict.fromkeys(
            d for q in ds.query_ids[:args.slice] for d in ds.relevant_docs[q]))) for ds in (labelled, ev))
    gen, gen_info = None, None
    for config in todo:
        print(f"\n=== {config} ===", file=sys.stderr)
        if config != "labelled" and gen is None:
            gen, gen_info = generated_split(store, labelled, ev, load_model(None, device=args.device), args.device)
            print(f"generated: {gen_info}", file=sys.stderr)
        t0 = time.perf_counter()
        result = run_config(store, config, split_of(config, labelled, gen), ev, args.device, args.max_steps)
        line = {"config": config, "eval_questions": len(ev), "eval_passages": len(ev.corpus),
                "generation": gen_info if config != "labelled" else None,
                "seconds": round(time.perf_counter() - t0, 1), **result}
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(line, default=str) + "\n")
        s = result.get("scores")
        if s:
            print(f"{config}: " + ", ".join(f"{role} {s[role]['nDCG@10'][0]:.4f}" for role in ROLES if role in s),
                  file=sys.stderr)
        else:
            print(f"{config}: {result.get('error')}", file=sys.stderr)
        lines.append(line)
    compare(lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
