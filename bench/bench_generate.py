"""Questions generated without an LLM, measured on sec-10k's own evaluation questions.

The collection is the PASSAGES of ../shared/data/sec-10k-qa/val_dataset.json only; its questions
are never shown to a generator or a trainer. For each configuration:

* ``<method>/adapter`` and ``<method>/full`` for method in inverse_cloze, crop, keywords: generate
  offline questions from the passages (``core.generate.job.generate``, default settings and the
  filters recommended for the method, round trip with the base model), make them the training
  split, and run the query adapter / the full fine-tune with the default recipe through
  ``core.tuning`` (the same job path as the app), scored on val_dataset.json's questions against
  the same passages, beside BM25 and the hybrid (tuned + BM25, fusion chosen on held-out
  generated questions);
* ``tsdae``: TSDAE domain adaptation of the base model on the passages
  (``core.generate.tsdae.train_tsdae``, default settings), then the adapted model scored as it
  is, with the hybrid (adapted + BM25, reciprocal rank fusion).

Each configuration appends one JSON line to ``--out``: generation and training time, base vs
adapted dense nDCG@10 and MRR@10 with 95% intervals (bootstrap of each mean, and the paired
bootstrap of the change with its randomization p-value), BM25 and the hybrid. A configuration
already in ``--out`` (same key and slice) is skipped, so an interrupted benchmark resumes.

Note: sec-10k's questions were themselves written by an LLM (LlamaIndex's
``generate_qa_embedding_pairs``); they are "real" here in that no method below saw them.

The full benchmark (all 395 passages, 790 questions, default recipes; hours on a 2-core CPU):

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_generate.py --out bench/generate-sec10k.jsonl

A small slice to check the wiring (first 60 passages and their questions, 2 training steps):

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_generate.py --passages 60 --max-steps 2 \
        --out /tmp/bench-generate-small.jsonl
"""

from __future__ import annotations

import argparse
import dataclasses
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

METHODS = ("inverse_cloze", "crop", "keywords")
TUNERS = ("adapter", "full")
CONFIGS = tuple(f"{m}/{t}" for m in METHODS for t in TUNERS) + ("tsdae",)
METRICS = ("nDCG@10", "MRR@10")


def load_eval(n_passages: int):
    """val_dataset.json, cut to its first ``n_passages`` passages and the questions answered by them."""
    from core.ingest.qafiles import load_qa_path

    ev = load_qa_path(DATA / "val_dataset.json").dataset
    if n_passages and n_passages < len(ev.corpus):
        keep = set(list(ev.corpus)[:n_passages])
        qids = [q for q in ev.query_ids if all(d in keep for d in ev.relevant_docs[q])]
        ev = ev.subset(qids, [d for d in ev.corpus if d in keep])
    return ev


def mean_ci(values, seed: int = 0) -> list[float]:
    """[mean, low, high]: 95% percentile bootstrap of the mean (questions resampled)."""
    import numpy as np

    from core.retrieval.stats import paired_bootstrap

    return [round(v, 4) for v in paired_bootstrap(np.zeros(len(values)), np.asarray(values, float), seed=seed)]


def scores(per_query, roles: dict[str, str]) -> dict:
    """Per system (role -> column prefix): each metric's mean with its 95% interval."""
    return {name: {m: mean_ci(per_query[f"{col}|{m}"].to_numpy()) for m in METRICS} for name, col in roles.items()}


def changes(per_query, a: str, b: str) -> dict:
    """Paired change b - a per metric: [delta, low, high, p-value]."""
    from core.retrieval.stats import compare

    out = {}
    for m in METRICS:
        d = compare(per_query, a, b, m)
        out[m] = [round(d.delta, 4), round(d.low, 4), round(d.high, 4), round(d.p_value, 4)]
    return out


def run_generated(store, method: str, tuner: str, ev, args, base_model) -> dict:
    """Generate with ``method``, train ``tuner`` on the kept questions, score on ``ev``'s real questions."""
    from core.cli import PrintReporter
    from core.execute import execute
    from core.generate.job import GenerationSpec, generate
    from core.generate.pairs import build_dataset
    from core.retrieval.embedding import EmbeddingCache
    from core.tuning.runs import create_run
    from core.tuning.spec import RunSpec
    from core.workspace.jobs import run_foreground
    from core.workspace.run_folder import load_per_query

    name = f"sec10k-{args.passages or 'all'}-{method}"
    found = store.find_dataset(name)
    gen_info = json.loads((found or {}).get("meta") or "{}").get("generation")
    if found is None:
        spec = GenerationSpec.for_backend("", "offline", method)
        out = generate(dict(ev.corpus), spec, reporter=PrintReporter(), embedding_cache=EmbeddingCache(
            store.cache_path), model=base_model, device=args.device)
        kept = out.kept()
        if not kept:
            return {"error": out.summary.empty}
        gen = build_dataset(kept, dict(ev.corpus), dict(ev.sources))
        gen.dataset.origins = dict(gen.origins)
        s = out.summary
        gen_info = {"generated": s.generated, "kept": s.kept, "funnel": s.line,
                    "generation_seconds": round(s.generation_seconds, 2), "filter_seconds": round(s.filter_seconds, 2),
                    "settings": spec.to_dict()}
        ds_id = store.save_dataset(name, gen.dataset, ev, meta={"origin": "bench", "generation": gen_info})
    else:
        ds_id = found["id"]
    run_spec = RunSpec.for_method(tuner)
    if tuner == "full" and args.max_steps:
        run_spec.settings.max_steps = args.max_steps
    if tuner == "adapter" and args.adapter_epochs:
        run_spec.settings.epochs = args.adapter_epochs
    run_id = create_run(store, ds_id, run_spec, name=f"{method}/{tuner}")
    job = run_foreground(store, run_id, lambda j: execute(store, run_id, j, device=args.device), PrintReporter())
    snap = job.snapshot()
    if snap.status != "done":
        return {"error": snap.error, "generation": gen_info}
    r = snap.result
    pq = load_per_query(store.run_dir(run_id))
    return {
        "generation": gen_info,
        "training_seconds": round(r.training_seconds, 2),
        "run_seconds": round(r.total_seconds, 2),
        "settings": run_spec.to_dict(),
        "systems": {role: r.systems[role].name for role in r.roles},
        "scores": scores(pq, {role: role for role in r.roles}),
        "change_tuned_vs_base": changes(pq, "base", "tuned"),
        "change_hybrid_vs_base": changes(pq, "base", "hybrid"),
        "verdict": r.verdict,
    }


def run_tsdae(store, ev, args, base_model) -> dict:
    """TSDAE on the passages, then the adapted model (and its hybrid with BM25) on ``ev``'s questions."""
    import pandas as pd

    from core.generate.tsdae import TSDAESettings, train_tsdae
    from core.retrieval.embedding import EmbeddingCache, load_model
    from core.retrieval.evaluation import evaluate_bm25, evaluate_dense, evaluate_hybrid
    from core.tuning.spec import Scoring

    settings = TSDAESettings()
    if args.max_steps:
        settings.max_steps = args.max_steps
    out_dir = Path(store.root) / "models" / f"tsdae-{args.passages or 'all'}"
    t0 = time.perf_counter()
    trained = train_tsdae(dict(ev.corpus), settings, out_dir, device=args.device,
                          progress=lambda d, t: print(f"  tsdae: {d}/{t} steps", file=sys.stderr, flush=True)
                          if d % 50 == 0 or d == t else None)
    train_seconds = time.perf_counter() - t0
    cache = EmbeddingCache(store.cache_path)
    tokens = Scoring().passage_tokens
    base = evaluate_dense(base_model, ev, passage_tokens=tokens, name="base", cache=cache)
    adapted = evaluate_dense(load_model(str(out_dir), device=args.device), ev, passage_tokens=tokens,
                             name="TSDAE-adapted", cache=cache)
    bm25 = evaluate_bm25(ev)
    hybrid = evaluate_hybrid(ev, adapted, bm25, name="hybrid (TSDAE + BM25, RRF)")
    cols = ("Accuracy@10", "MRR@10", "nDCG@10")
    pq = pd.concat([r.per_query[list(cols)].add_prefix(f"{role}|") for role, r in
                    (("base", base), ("tuned", adapted), ("bm25", bm25), ("hybrid", hybrid))], axis=1)
    return {
        "training_seconds": round(train_seconds, 2),
        "tsdae": {"steps": trained.steps, "windows": trained.texts, "final_loss": trained.final_loss,
                  "settings": dataclasses.asdict(settings)},
        "systems": {"base": base.name, "tuned": adapted.name, "bm25": bm25.name, "hybrid": hybrid.name},
        "scores": scores(pq, {r: r for r in ("base", "tuned", "bm25", "hybrid")}),
        "change_tuned_vs_base": changes(pq, "base", "tuned"),
        "change_hybrid_vs_base": changes(pq, "base", "hybrid"),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="JSON lines file; configurations already in it are skipped")
    p.add_argument("--passages", type=int, default=0, help="first N passages of val_dataset.json (0: all 395)")
    p.add_argument("--max-steps", type=int, default=0, help="cap training steps of full and TSDAE (0: recipe)")
    p.add_argument("--adapter-epochs", type=int, default=0, help="adapter epochs (0: recipe)")
    p.add_argument("--configs", nargs="+", choices=CONFIGS, default=list(CONFIGS))
    p.add_argument("--workspace", default=None, help="workspace (default: a new temporary folder)")
    p.add_argument("--device", default=None, help="cpu / cuda / mps (default: best available)")
    args = p.parse_args()

    from core.retrieval.embedding import load_model
    from core.workspace.files import read_jsonl
    from core.workspace.store import Store

    out = Path(args.out)
    done = {(r["config"], r["passages_limit"]) for r in read_jsonl(out) if "error" not in r}
    todo = [c for c in args.configs if (c, args.passages) not in done]
    for config in args.configs:
        if config not in todo:
            print(f"{config}: already in {out}, skipped", file=sys.stderr)
    if not todo:
        return 0
    store = Store(args.workspace or tempfile.mkdtemp(prefix="etl-bench-generate-"))
    ev = load_eval(args.passages)
    print(f"collection: {len(ev.corpus)} passages of {DATA / 'val_dataset.json'}; scored on its {len(ev)} "
          f"questions; workspace {store.root}", file=sys.stderr)
    base_model = load_model(None, device=args.device)
    for config in todo:
        print(f"\n=== {config} ===", file=sys.stderr)
        t0 = time.perf_counter()
        if config == "tsdae":
            result = run_tsdae(store, ev, args, base_model)
        else:
            method, tuner = config.split("/")
            result = run_generated(store, method, tuner, ev, args, base_model)
        line = {"config": config, "passages_limit": args.passages, "passages": len(ev.corpus),
                "eval_questions": len(ev), "max_steps": args.max_steps or None,
                "seconds": round(time.perf_counter() - t0, 2), **result}
        with out.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(line, default=str) + "\n")
        s = result.get("scores", {})
        if s:
            b, t = s["base"]["nDCG@10"], s["tuned"]["nDCG@10"]
            print(f"{config}: nDCG@10 base {b[0]:.4f} [{b[1]:.4f}, {b[2]:.4f}] -> {t[0]:.4f} [{t[1]:.4f}, {t[2]:.4f}]",
                  file=sys.stderr)
        else:
            print(f"{config}: {result.get('error')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
