"""`python -m core ...`: the headless entry on the same functions the pages call.

Commands:
    evaluate        metrics table for dense (a model), BM25 and hybrid on a QA file
    prepare-sample  put the sample dataset into the workspace (idempotent)
    train           fine-tune (full / adapter / nudge) and print base vs tuned vs BM25
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from core.tuning.full import TrainConfig

TRAIN_DEFAULTS = TrainConfig()

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
    from core.ingest.qafiles import load_qa_path

    result = load_qa_path(path)
    for p in result.report.problems:
        print(f"{p.level}: {p.message}", file=sys.stderr)
    if result.answers and not result.dataset.corpus:
        raise SystemExit(f"{path} gives answers, not passages: link it to documents in the app first.")
    return result.dataset


def cmd_evaluate(args: argparse.Namespace) -> int:
    from core.retrieval.embedding import EmbeddingCache, load_model
    from core.retrieval.evaluation import evaluate_bm25, evaluate_dense, evaluate_hybrid, metrics_table
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


class PrintReporter:
    """Shows a job's progress on stderr (the CLI's Reporter)."""

    def __init__(self):
        from core.tuning.jobs import Reporter

        self._base = Reporter()
        self._last = 0.0
        self._phase = ""

    def phase(self, name: str, message: str = "") -> None:
        self._phase = name
        print(f"\n[{name}] {message}", file=sys.stderr, flush=True)

    def progress(self, step: int, total: int, epoch: float | None = None) -> None:
        now = time.monotonic()
        if total and (now - self._last > 2.0 or step >= total):
            self._last = now
            ep = f" epoch {epoch:.2f}" if epoch is not None else ""
            print(f"  {self._phase} {step}/{total}{ep}", file=sys.stderr, flush=True)

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

    def check_cancel(self) -> None:
        return None


def _train_eval_from_files(train_path: str, eval_path: str | None, seed: int, split_by: str):
    from core.dataset import join_train_eval

    train = _load_eval_data(train_path)
    if eval_path:
        ev = _load_eval_data(eval_path)
        return (*join_train_eval(train, ev), {"split": f"given: train={train_path}, eval={eval_path}"})
    from core.ingest.splits import split_dataset

    tr, ev, rep = split_dataset(train, eval_fraction=0.2, seed=seed, by=split_by)
    return tr, ev, {"split": rep.to_dict()}


def _execute_recorded(store, run_id: str, device: str | None) -> dict:
    """Execute a run in this process, recording running / done / failed in the catalog as the app does."""
    from core.tuning.runs import execute_run

    store.update_run(run_id, status="running", started=time.time())
    try:
        results = execute_run(store, run_id, PrintReporter(), device=device)
    except BaseException as exc:
        store.update_run(run_id, status="failed", ended=time.time(), error=str(exc))
        raise
    store.update_run(run_id, status="done", ended=time.time(), metrics=results["headline"])
    return results


def cmd_train(args: argparse.Namespace) -> int:
    import pandas as pd

    from core.store import Store
    from core.tuning.full import TrainConfig
    from core.tuning.runs import comparisons_table, results_table

    store = Store()
    train, ev, report = _train_eval_from_files(args.train, args.eval, args.seed, args.split_by)
    name = f"cli {os.path.basename(args.train)} {time.strftime('%Y-%m-%d %H:%M:%S')}"
    ds_id = store.save_dataset(name, train, ev, report=report, meta={"origin": "cli"})
    config = TrainConfig(base_model=args.model, epochs=args.epochs, batch_size=args.batch_size,
                         learning_rate=args.lr, max_seq_length=args.max_seq_length, loss=args.loss,
                         index_max_seq_length=args.index_max_seq_length,
                         hard_negatives=args.hard_negatives, seed=args.seed, max_steps=args.max_steps).to_dict()
    if args.method == "adapter":
        config.update({"epochs": args.epochs if args.epochs != TRAIN_DEFAULTS.epochs else 30})
    run_id = store.create_run(ds_id, args.method, config, name=f"{args.method} on {name}")
    print(f"run {run_id} ({len(train)} training questions, {len(ev)} eval questions, {len(ev.corpus)} passages)",
          file=sys.stderr)
    if args.method == "nudge":
        print("note: NUDGE updates the stored passage vectors of the training corpus; it only helps when the "
              "eval questions search that same corpus.", file=sys.stderr)
    results = _execute_recorded(store, run_id, args.device)
    table = results_table(results)
    if args.json:
        print(json.dumps(results, indent=1, default=str))
    else:
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(table.round(4).to_string())
            print()
            print(comparisons_table(results).round(4).to_string(index=False))
        print(f"\n{results['verdict']}")
        print(f"run folder: {store.run_dir(run_id)}", file=sys.stderr)
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
    t = sub.add_parser("train", help="fine-tune and compare base / tuned / BM25 / hybrid")
    t.add_argument("--train", required=True, help="training QA file (any format `evaluate` reads)")
    t.add_argument("--eval", default=None, help="evaluation QA file; default: 20%% of --train held out")
    t.add_argument("--method", choices=["full", "adapter", "nudge"], default="full")
    t.add_argument("--model", default=None, help="base model folder or hub id")
    t.add_argument("--epochs", type=int, default=TRAIN_DEFAULTS.epochs)
    t.add_argument("--batch-size", type=int, default=TRAIN_DEFAULTS.batch_size)
    t.add_argument("--lr", type=float, default=TRAIN_DEFAULTS.learning_rate)
    t.add_argument("--max-seq-length", type=int, default=TRAIN_DEFAULTS.max_seq_length, help="tokens per text while training")
    t.add_argument("--index-max-seq-length", type=int, default=512, help="tokens per passage when searching")
    t.add_argument("--loss", choices=["mnrl", "cached_mnrl", "matryoshka"], default=TRAIN_DEFAULTS.loss)
    t.add_argument("--hard-negatives", type=int, default=TRAIN_DEFAULTS.hard_negatives)
    t.add_argument("--max-steps", type=int, default=-1, help="cap on training steps (smoke runs)")
    t.add_argument("--seed", type=int, default=42)
    t.add_argument("--split-by", choices=["query", "passage", "document"], default="passage")
    t.add_argument("--device", default=None, help="cpu / cuda / mps (default: best available)")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_train)

    so = sub.add_parser("shootout", help="base, full, adapter, NUDGE, BM25 and hybrid on one split: quality vs time")
    so.add_argument("--train", required=True, help="training QA file (any format `evaluate` reads)")
    so.add_argument("--eval", default=None, help="evaluation QA file; default: 20%% of --train held out")
    so.add_argument("--methods", nargs="+", choices=["full", "adapter", "nudge"], default=["full", "adapter", "nudge"])
    so.add_argument("--model", default=None, help="base model folder or hub id")
    so.add_argument("--epochs", type=int, default=TRAIN_DEFAULTS.epochs, help="full fine-tune epochs")
    so.add_argument("--max-steps", type=int, default=-1, help="cap on full fine-tune steps (smoke runs)")
    so.add_argument("--seed", type=int, default=42)
    so.add_argument("--split-by", choices=["query", "passage", "document"], default="passage")
    so.add_argument("--device", default=None)
    so.add_argument("--json", action="store_true")
    so.set_defaults(func=cmd_shootout)

    r = sub.add_parser("report", help="write a finished run's stakeholder report (one self-contained HTML file)")
    r.add_argument("run", help="run id (see the Runs page or the run folder names)")
    r.add_argument("--out", default=None, help="output file (default: report.html in the run folder)")
    r.add_argument("--workspace", default=None, help="workspace root (default: $ETL_WORKSPACE or workspace/ in the project)")
    r.add_argument("--no-maps", action="store_true", help="leave out the UMAP maps (faster)")
    r.set_defaults(func=cmd_report)
    return p


def cmd_shootout(args: argparse.Namespace) -> int:
    import pandas as pd

    from core.store import Store
    from core.tuning.full import TrainConfig
    from core.tuning.shootout import shootout_table

    store = Store()
    train, ev, report = _train_eval_from_files(args.train, args.eval, args.seed, args.split_by)
    name = f"cli shoot-out {os.path.basename(args.train)} {time.strftime('%Y-%m-%d %H:%M:%S')}"
    ds_id = store.save_dataset(name, train, ev, report=report, meta={"origin": "cli"})
    full = TrainConfig(base_model=args.model, epochs=args.epochs, max_steps=args.max_steps, seed=args.seed).to_dict()
    config = {"methods": args.methods, "base_model": args.model, "full": full, "adapter": {"seed": args.seed},
              "nudge": {"seed": args.seed}}
    run_id = store.create_run(ds_id, "shootout", config, name=name)
    print(f"shoot-out {run_id}: {', '.join(args.methods)} on {len(train)} training / {len(ev)} eval questions, "
          f"{len(ev.corpus)} passages", file=sys.stderr)
    out = _execute_recorded(store, run_id, args.device)
    if args.json:
        print(json.dumps(out, indent=1, default=str))
        return 0
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(shootout_table(out).drop(columns=["method run"]).round(4).to_string())
    print(f"\n{out['verdict']}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from core.insight.report import build_report
    from core.store import Store, atomic_write_bytes

    store = Store(args.workspace) if args.workspace else Store()
    try:
        store.get_run(args.run)
    except KeyError:
        print(f"error: no run {args.run!r} in {store.root}; list runs with the Runs page", file=sys.stderr)
        return 2
    out = Path(args.out or store.run_dir(args.run) / "report.html")
    try:
        html = build_report(store, args.run, progress=_progress_printer("report"), with_maps=not args.no_maps)
    except FileNotFoundError as exc:
        print(f"error: {exc} Reports are made of finished runs (for a shoot-out: of each method's run).",
              file=sys.stderr)
        return 2
    atomic_write_bytes(out, html.encode("utf-8"))
    print(f"report written to {out}")
    return 0


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
