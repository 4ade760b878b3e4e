"""The rerank stage on a finished run (issue 23): a cross-encoder trained on the run's training questions (or
one you bring) reranks the best first stage; every pipeline is re-scored beside it, no retraining of the
embedding model. Writes ONE JSON line: the rerank pipeline's metrics, what it reranks, its time per
question on this machine, its paired interval and p against the pipeline it reranks, the headline and the
recommended pipeline, training seconds and peak RSS; and checks that the exported search.py reproduces the
run's top 10 for every evaluation question (``--check-bundle``).

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_rerank.py --workspace WS --run RUN_ID \\
        --out bench/results/rerank.jsonl [--set top_k=30 epochs=1] [--check-bundle]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def check_bundle(store, run_id: str) -> dict:
    """Export the run and compare search.py's top 10 with the run's, question by question."""
    import importlib.util

    from core.insight.explore import open_run
    from core.insight.export import write_bundle

    view = open_run(store, run_id)
    role = view.results.recommended
    with tempfile.TemporaryDirectory() as tmp:
        out = write_bundle(store, run_id, Path(tmp) / "bundle", with_onnx=False)
        spec = importlib.util.spec_from_file_location("bundle_search", out / "search.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        t0 = time.perf_counter()
        pipe = mod.Pipeline(out)
        same = sum([d for d, _ in pipe.search(view.eval.queries[q])] == view.rankings[role][q][0][:10]
                   for q in view.query_ids)
        seconds = time.perf_counter() - t0
    return {"role": role, "questions": len(view.query_ids), "identical_top10": same,
            "seconds_per_question": round(seconds / max(len(view.query_ids), 1), 3)}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--workspace", required=True)
    p.add_argument("--run", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--model", default="", help="a cross-encoder to bring (default: train one)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=JSON", help="rerank settings")
    p.add_argument("--check-bundle", action="store_true")
    p.add_argument("--name", default=None)
    args = p.parse_args()

    from core.console import PrintReporter
    from core.retrieval.rerank import RerankSettings
    from core.retrieval.stats import find
    from core.tuning.runs import run_method
    from core.tuning.spec import RunSpec
    from core.workspace.jobs import run_foreground
    from core.workspace.run_folder import load_results, write_config
    from core.workspace.store import Store

    store = Store(args.workspace)
    run_dir = store.run_dir(args.run)
    spec = RunSpec.load(run_dir)
    settings = RerankSettings.from_dict({"model": args.model, **{k: json.loads(v) for k, v in
                                                                 (kv.split("=", 1) for kv in args.set)}})
    new = RunSpec(spec.method, spec.base_model, spec.seed, spec.scoring, spec.settings, settings)
    write_config(run_dir, new.to_dict())
    t0 = time.perf_counter()
    job = run_foreground(store, args.run, lambda j: run_method(store, args.run, j, rescore=load_results(run_dir)), PrintReporter())
    snap = job.snapshot()
    row = {"name": args.name or ("brought" if args.model else "trained"), "run_id": args.run,
           "data": store.get_dataset(store.get_run(args.run)["dataset_id"])["name"], "settings": settings.to_dict(),
           "seconds": round(time.perf_counter() - t0, 1),
           "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    if snap.status != "done":
        row["error"] = snap.error
    else:
        r = snap.result
        pipes = r.pipelines
        row["systems"] = {role: {"name": s.name, **{k: round(s.metrics[k], 4) for k in
                                                    ("Accuracy@10", "MRR@10", "nDCG@10")}}
                          for role, s in r.systems.items()}
        row["rerank_lines"] = [line for line in r.training if line.startswith("Rerank stage")]
        row["fair"] = not r.fairness_problems()
        # every system searched the same passages for the same questions; dense ones at one limit, windows, backend
        row["same_passages_and_questions"] = len({(s.conditions.passages_fingerprint, s.conditions.questions_fingerprint)
                                                  for s in r.systems.values()}) == 1
        row["dense_conditions_equal"] = len({(s.conditions.passage_tokens, s.conditions.windows, s.conditions.backend)
                                             for s in r.systems.values() if s.conditions.passage_tokens}) == 1
        for role in ("rerank", "base_rerank"):
            if role in pipes:
                d = find(r.comparisons, pipes[role].first_stage, role)
                row[role] = {"first_stage": pipes[role].first_stage,
                             "change_vs_first_stage": [round(d.delta, 4), round(d.low, 4), round(d.high, 4),
                                                       round(d.p_value, 4)]}
        head = r.headline_delta
        row["best"] = r.best.to_dict() if r.best else None
        row["headline"] = None if head is None else [head.a, head.b, round(head.delta, 4), round(head.low, 4),
                                                     round(head.high, 4), round(head.p_value, 4)]
        row["recommended"] = r.recommended
        if args.check_bundle:
            row["bundle"] = check_bundle(store, args.run)
    with open(args.out, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")
    print("RESULT " + json.dumps(row))
    return 0 if "error" not in row else 1


if __name__ == "__main__":
    sys.exit(main())
