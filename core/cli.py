"""`python -m core ...`: the headless entry on the same functions the pages call.

Commands:
    evaluate        metrics table for dense (a model), BM25 and hybrid on a QA file
    prepare-sample  put the sample dataset into the workspace (idempotent)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _progress_printer(label: str):
    last = [0.0]

    def show(message: str, fraction: float) -> None:
        now = time.monotonic()
        if now - last[0] > 1.0 or fraction >= 1.0:
            last[0] = now
            print(f"\r{label}: {message} ({fraction:4.0%})", end="\n" if fraction >= 1.0 else "", file=sys.stderr,
                  flush=True)

    return show


def _load_eval_data(path: str):
    from core.data import load_qa_path

    result = load_qa_path(path)
    for p in result.report.problems:
        print(f"{p.level}: {p.message}", file=sys.stderr)
    if result.answers and not result.dataset.corpus:
        raise SystemExit(f"{path} gives answers, not passages: link it to documents in the app first.")
    return result.dataset


def cmd_evaluate(args: argparse.Namespace) -> int:
    from core.embedding import EmbeddingCache, load_model
    from core.evaluation import evaluate_bm25, evaluate_dense, evaluate_hybrid, metrics_table
    from core.store import Store

    ds = _load_eval_data(args.data)
    print(f"{len(ds)} questions, {len(ds.corpus)} passages", file=sys.stderr)
    cache = None if args.no_cache else EmbeddingCache(Store().cache_path)
    model = load_model(args.model)
    results = [evaluate_dense(model, ds, name=f"dense ({args.model or 'default'})", cache=cache,
                              progress=_progress_printer("dense"))]
    if args.bm25 or args.hybrid:
        results.append(evaluate_bm25(ds))
    if args.hybrid:
        results.append(evaluate_hybrid(ds, results[0], results[1]))
    table = metrics_table(results)
    if args.json:
        print(json.dumps({r.name: {**r.metrics, "seconds": r.seconds} for r in results}, indent=1))
    else:
        import pandas as pd

        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(table.round(4).to_string())
    return 0


def cmd_prepare_sample(args: argparse.Namespace) -> int:
    from core.sample import ensure_sample
    from core.store import Store

    ds_id, created = ensure_sample(Store())
    print(("Created" if created else "Found") + f" sample dataset {ds_id}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core", description="Embedding Tuning Lab, headless.")
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("evaluate", help="metrics of dense / BM25 / hybrid retrieval on a QA file")
    e.add_argument("--data", required=True, help="QA file: pairs (CSV/TSV/JSONL/JSON), IR JSON, or BEIR folder/zip")
    e.add_argument("--model", default=None, help="model folder or hub id (default: bundled all-MiniLM-L6-v2)")
    e.add_argument("--bm25", action="store_true", help="also BM25")
    e.add_argument("--hybrid", action="store_true", help="also dense+BM25 reciprocal rank fusion (implies --bm25)")
    e.add_argument("--json", action="store_true", help="print JSON instead of a table")
    e.add_argument("--no-cache", action="store_true", help="do not read or write the embedding cache")
    e.set_defaults(func=cmd_evaluate)
    s = sub.add_parser("prepare-sample", help="add the sample dataset to the workspace if missing")
    s.set_defaults(func=cmd_prepare_sample)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from core.dataset import DataError

    try:
        return args.func(args)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        for p in exc.problems:
            print(f"  - {p}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
