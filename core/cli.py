"""`python -m core ...`: the headless entry on the same functions the pages call.

Commands:
    evaluate        metrics table for dense (a model), BM25 and hybrid on a QA file
    prepare-sample  put the sample dataset into the workspace (idempotent)
    train           tune (any registered method: full / adapter / nudge ...) and print base vs tuned vs BM25 / hybrid
    shootout        every method on one split: quality against time
    report          a finished run's stakeholder report (one HTML file)
    export          a finished run as a deployable bundle (model, ONNX, Parquet embeddings, snippets)
    generate        training questions from passages alone -> a pair file ``train`` reads

``train`` and ``shootout`` build a ``RunSpec`` from the method's defaults and the flags given;
a flag given is a flag used (a flag the method has no setting for is refused, not ignored).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sqlite3
import sys
import time
from typing import Any

from core.cli_files import add_file_commands as add
from core.cli_rerank import add_command
from core.console import PrintReporter, print_run_results  # noqa: F401 - the benchmarks use PrintReporter
from core.dataset import DataError, derived_ids, join_train_eval
from core.execute import execute
from core.ingest.qafiles import load_qa_path
from core.ingest.splits import leakage_report, split_dataset
from core.insight.models import compare_models, comparison_table, to_json
from core.retrieval.backends import BACKENDS
from core.retrieval.embedding import EmbeddingCache, load_model
from core.retrieval.evaluation import evaluate_bm25, evaluate_dense, evaluate_hybrid
from core.retrieval.metrics import metrics_frame
from core.sample import ensure_sample
from core.tuning.losses import LOSS_NAMES
from core.tuning.methods import REGISTERED, fitted, method_of, names
from core.tuning.runs import create_run
from core.tuning.spec import RunSpec, Scoring
from core.workspace.files import disk_problem
from core.workspace.jobs import BusyError, WorkspaceLock, open_workspace, run_foreground

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

logger = logging.getLogger(__name__)

# CLI flag -> the settings field names it sets (the first a method's settings have); a method whose settings
# have none of them has no such setting (FLAG_FIELDS: per registered method, built from its settings).
FLAG_NAMES: dict[str, tuple[str, ...]] = {
    "epochs": ("epochs",),
    "lr": ("learning_rate", "lr"),
    "batch_size": ("batch_size",),
    "max_seq_length": ("max_seq_length",),
    "loss": ("loss",),
    "hard_negatives": ("hard_negatives",),
    "max_steps": ("max_steps",),
    "nproc": ("processes",),
}


def _flag_fields() -> dict[str, dict[str, str]]:
    """CLI flag -> {method: the settings field it sets}, for every registered method with a fit."""
    out: dict[str, dict[str, str]] = {}
    for flag, candidates in FLAG_NAMES.items():
        out[flag] = {}
        for m in REGISTERED:
            if m.kind != "fit":
                continue
            have = {f.name for f in dataclasses.fields(m.settings)}
            hit = next((c for c in candidates if c in have), None)
            if hit is not None:
                out[flag][m.name] = hit
    return out


FLAG_FIELDS = _flag_fields()


def _open_store():
    """The workspace, its runs whose process is gone marked interrupted (each one said on stderr)."""
    return open_workspace(note=lambda line: print(f"note: {line}", file=sys.stderr))


def _load_qa(path: str):
    result = load_qa_path(path)
    for p in result.report.problems:
        print(f"{p.level}: {p.message}", file=sys.stderr)
    if result.answers and not result.dataset.corpus:
        raise SystemExit(f"{path} gives answers, not passages: link it to documents in the app first.")
    return result.dataset


def _parse_value(cls: type, name: str, text: str) -> Any:
    """``text`` converted to the type of settings field ``name`` of ``cls``."""
    f = next((f for f in dataclasses.fields(cls) if f.name == name), None)
    if f is None:
        raise ValueError(f"--set {name}: {cls.__name__} has no setting {name!r} "
                         f"(settings: {', '.join(x.name for x in dataclasses.fields(cls))})")
    kind = str(f.type)
    try:
        if kind.startswith("list[str]"):
            return [x.strip() for x in text.split(",") if x.strip()]
        if kind.startswith("list"):
            return [int(x) for x in text.split(",") if x]
        if kind == "bool":
            if text.strip().lower() not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                raise ValueError
            return text.strip().lower() in ("true", "1", "yes", "on")
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
    except ValueError:
        raise ValueError(f"--set {name}={text}: expected a {kind}") from None
    return text


def build_spec(args: argparse.Namespace, method: str) -> RunSpec:
    """The run spec of a ``train`` / ``shootout`` command: defaults, then every flag given.

    Raises:
        ValueError: a flag the method has no setting for, or an unknown ``--set`` name.
    """
    scoring = {k: v for k, v in (("passage_tokens", args.passage_tokens), ("validation_share", args.validation_share),
                                 ("backend", args.backend), ("windows", True if args.windows else None)) if v is not None}
    target = "full" if method == "shootout" else method
    overrides: dict[str, Any] = {}
    for flag, by_method in FLAG_FIELDS.items():
        value = getattr(args, flag, None)
        if value is None:
            continue
        if target not in by_method:
            raise ValueError(f"--{flag.replace('_', '-')} does not apply to the {method} method "
                             f"(it applies to: {', '.join(by_method)}).")
        overrides[by_method[target]] = value
    settings: dict[str, Any] = {"full": overrides} if method == "shootout" and overrides else dict(overrides)
    for item in args.set or []:
        name, _, text = item.partition("=")
        part, cls = None, method_of(target).settings
        if method == "shootout" and "." in name:
            part, name = name.split(".", 1)
            if part not in names(in_shootout=True):
                raise ValueError(f"--set {item}: use " + ", ".join(f"{m}.NAME" for m in names(in_shootout=True))
                                 + " in a shoot-out")
            cls = method_of(part).settings
        elif method == "shootout":
            part = "full"
        value = _parse_value(cls, name, text)
        (settings.setdefault(part, {}) if part else settings)[name] = value
    if method == "shootout" and args.methods:
        settings["methods"] = list(args.methods)
    # built once, so RunSpec's checks run on exactly what the command asked for
    return RunSpec.for_method(method, base_model=args.model, seed=args.seed, scoring=Scoring(**scoring), **settings)


def cmd_evaluate(args: argparse.Namespace) -> int:
    import pandas as pd

    ds = _load_qa(args.data)
    tokens = args.passage_tokens or Scoring().passage_tokens
    print(f"{len(ds)} questions, {len(ds.corpus)} passages, passages read at {tokens} tokens", file=sys.stderr)
    cache = None if args.no_cache else EmbeddingCache(_open_store().cache_path)
    progress = PrintReporter()
    models = args.model or [None]
    if len(models) > 1:  # which base model? the same table as the Train page's comparison
        cands, bm25 = compare_models(ds, models, passage_tokens=tokens, cache=cache,
                                     progress=lambda d, t, u: progress.progress(d, t, u))
        if args.json:
            print(json.dumps(to_json(cands, bm25), indent=1, default=str))
            return 0
        with pd.option_context("display.width", 250, "display.max_columns", 20):
            print(comparison_table(cands, bm25.metrics).to_string(index=False))
        return 0
    model = load_model(models[0])
    results = [evaluate_dense(model, ds, passage_tokens=tokens, name=f"dense ({models[0] or 'default'})",
                              cache=cache, progress=lambda d, t, u: progress.progress(d, t, u))]
    if args.bm25 or args.hybrid:
        results.append(evaluate_bm25(ds))
    if args.hybrid:
        results.append(evaluate_hybrid(ds, results[0], results[1]))
    if args.json:
        print(json.dumps({r.name: {**r.metrics, "seconds": r.seconds, "conditions": r.conditions.to_dict()}
                          for r in results}, indent=1))
        return 0
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(metrics_frame({r.name: r.metrics for r in results}).round(4).to_string())
    return 0


def cmd_prepare_sample(args: argparse.Namespace) -> int:
    ds_id, created = ensure_sample(_open_store())
    print(("Created" if created else "Found") + f" sample dataset {ds_id}", file=sys.stderr)
    return 0


def _dataset_from_files(store, train_path: str, eval_path: str | None, seed: int, split_by: str, label: str) -> str:
    """Save the data of a ``train``/``shootout`` command as a dataset; returns its id."""
    train = _load_qa(train_path)
    if eval_path:
        given_eval = _load_qa(eval_path)
        derived_set = derived_ids(train, given_eval)
        derived = len(derived_set)
        stray = [d for d in train.corpus if "#ict" in d and d not in derived_set]
        if stray:
            print(f"warning: {len(stray)} passages of {train_path} look cut from a passage (e.g. id {stray[0]!r}) "
                  f"whose id is not in {eval_path}, so they are searched too and may take the place of the "
                  "original: generate the pairs from the file you evaluate on (generate --from that file).",
                  file=sys.stderr)
        train, ev = join_train_eval(train, given_eval)
        if derived:
            print(f"{derived} passages of {train_path} are its questions' passages with the question's sentence cut "
                  f"out (passage ids '<id>#...'): trained on, never searched; {len(ev.corpus)} passages are "
                  "searched.", file=sys.stderr)
        split = {**leakage_report(train, ev).to_dict(), "train_file": train_path, "eval_file": eval_path,
                 "derived_not_searched": derived}
        how = "given files"
    else:
        train, ev, rep = split_dataset(train, eval_fraction=0.2, seed=seed, by=split_by)
        split, how = rep.to_dict(), split_by
    name = f"cli {label} {os.path.basename(train_path)} {time.strftime('%Y-%m-%d %H:%M:%S')}"
    return store.save_dataset(name, train, ev, report={"split": split},
                              meta={"origin": "cli", "split_by": how})


def _locked(store):
    """The workspace lock, taken before a command writes anything (a refused command leaves no dataset
    and no run behind). Raises BusyError."""
    lock = WorkspaceLock(store.root)
    lock.acquire("(preparing its data)")
    return lock


def _run(store, ds_id: str, spec: RunSpec, name: str, device: str | None, lock=None):
    """Create and execute a run in this process (workspace lock and heartbeat, like the app); ``lock``:
    the workspace lock already held (released when the run ends)."""
    train, ev = store.load_dataset(ds_id)
    run_id = create_run(store, ds_id, spec, name=name)
    print(f"run {run_id}: {spec.method} on {len(train)} training / {len(ev)} evaluation questions, "
          f"{len(ev.corpus)} passages read at {spec.scoring.passage_tokens} tokens", file=sys.stderr)
    job = run_foreground(store, run_id, lambda j: execute(store, run_id, j, device=device), PrintReporter(), lock=lock)
    snap = job.snapshot()
    if snap.status != "done":
        print(f"error: the run ended {snap.status}: {snap.error or ''}", file=sys.stderr)
        if snap.traceback:
            logger.debug(snap.traceback)
        raise SystemExit(2)
    print(f"run folder: {store.run_dir(run_id)}", file=sys.stderr)
    return run_id, snap.result


def cmd_train(args: argparse.Namespace) -> int:

    spec = build_spec(args, args.method)
    store = _open_store()
    lock = _locked(store)
    try:
        ds_id = _dataset_from_files(store, args.train, args.eval, args.seed, args.split_by, args.method)
        if method_of(spec.method).searches_training_passages:
            print("note: NUDGE updates the stored passage vectors of the training corpus; it only helps when the "
                  "eval questions search that same corpus.", file=sys.stderr)
        _, results = _run(store, ds_id, spec, f"{args.method} on {os.path.basename(args.train)}", args.device, lock)
    finally:
        lock.release()  # no-op once the run released it
    if args.json:
        print(json.dumps(results.to_dict(), indent=1, default=str))
        return 0
    print_run_results(results)
    return 0


def cmd_shootout(args: argparse.Namespace) -> int:
    import pandas as pd

    spec = build_spec(args, "shootout")
    store = _open_store()
    lock = _locked(store)
    try:
        ds_id = _dataset_from_files(store, args.train, args.eval, args.seed, args.split_by, "shoot-out")
        _, out = _run(store, ds_id, spec, f"shoot-out on {os.path.basename(args.train)}", args.device, lock)
    finally:
        lock.release()
    if args.json:
        print(json.dumps(dataclasses.asdict(out), indent=1, default=str))
        return 0
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(out.table().drop(columns=["method run"]).round(4).to_string())
    print(f"\n{out.verdict}")
    return 0


def _run_flags(p: argparse.ArgumentParser) -> None:
    """Flags shared by train and shootout: data, model, scoring and the common method settings."""
    p.add_argument("--train", required=True, help="training QA file (any format `evaluate` reads)")
    p.add_argument("--eval", default=None, help="evaluation QA file; default: 20%% of --train held out")
    p.add_argument("--model", default=None, help="base model folder or hub id (default: bundled all-MiniLM-L6-v2)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--split-by", choices=["query", "passage", "document"], default="passage")
    p.add_argument("--passage-tokens", "--index-max-seq-length", dest="passage_tokens", type=int, default=None,
                   help=f"tokens per passage when searching, base and tuned alike (default {Scoring().passage_tokens})")
    p.add_argument("--backend", choices=list(BACKENDS), default=None,
                   help="how base and tuned models encode for scoring (training stays on torch; default "
                        f"{Scoring().backend})")
    p.add_argument("--windows", action="store_true",
                   help="split long passages into windows and score each passage by its best window")
    p.add_argument("--validation-share", type=float, default=None,
                   help=f"training questions held out to pick the epoch and the hybrid's fusion "
                        f"(default {Scoring().validation_share})")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--max-steps", type=int, default=None, help="cap on training steps (smoke runs)")
    p.add_argument("--set", action="append", metavar="NAME=VALUE",
                   help="any setting of the method (shoot-out: full.NAME=, adapter.NAME=, nudge.NAME=)")
    p.add_argument("--device", default=None, help="cpu / cuda / mps (default: best available)")
    p.add_argument("--json", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core", description="Embedding Tuning Lab, headless.")
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("evaluate", help="metrics of dense / BM25 / hybrid retrieval on a QA file")
    e.add_argument("--data", required=True, help="QA file: pairs (CSV/TSV/JSONL/JSON), IR JSON, or BEIR folder/zip")
    e.add_argument("--model", action="append", default=None,
                   help="model folder or hub id (default: bundled all-MiniLM-L6-v2); give it several times to "
                        "compare base models (dense, hybrid, interval vs the first, speed, size, memory)")
    e.add_argument("--passage-tokens", type=int, default=None,
                   help=f"tokens per passage (default {Scoring().passage_tokens}, as in runs)")
    e.add_argument("--bm25", action="store_true", help="also BM25")
    e.add_argument("--hybrid", action="store_true", help="also dense+BM25 reciprocal rank fusion (implies --bm25)")
    e.add_argument("--json", action="store_true", help="print JSON instead of a table")
    e.add_argument("--no-cache", action="store_true", help="do not read or write the embedding cache")
    e.set_defaults(func=cmd_evaluate)
    s = sub.add_parser("prepare-sample", help="add the sample dataset to the workspace if missing")
    s.set_defaults(func=cmd_prepare_sample)

    t = sub.add_parser("train", help="fine-tune and compare base / tuned / BM25 / hybrid")
    _run_flags(t)
    t.add_argument("--method", choices=list(fitted()), default="full")
    t.add_argument("--batch-size", type=int, default=None)
    t.add_argument("--lr", type=float, default=None, help="learning rate (full fine-tune and adapter)")
    t.add_argument("--max-seq-length", type=int, default=None, help="tokens per text while training (full)")
    t.add_argument("--loss", choices=list(LOSS_NAMES), default=None, help="training loss (core.tuning.losses)")
    t.add_argument("--hard-negatives", type=int, default=None)
    t.add_argument("--nproc", type=int, default=None,
                   help="training processes for the full fine-tune (torchrun, distributed data parallel; e.g. one "
                        "per GPU)")
    t.set_defaults(func=cmd_train)

    so = sub.add_parser("shootout", help="base, full, adapter, NUDGE, BM25 and hybrid on one split: quality vs time")
    _run_flags(so)
    so.add_argument("--methods", nargs="+", choices=list(names(in_shootout=True)), default=None)
    so.set_defaults(func=cmd_shootout)

    add_file_commands(sub)
    add_rerank_command(sub)
    return p


def add_rerank_command(sub) -> None:
    add_command(sub)


def add_file_commands(sub) -> None:
    add(sub)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("ETL_LOG_LEVEL", "WARNING"), format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        for p in exc.problems:
            print(f"  - {p}", file=sys.stderr)
        return 2
    except (ValueError, BusyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (OSError, sqlite3.Error) as exc:  # a full disk: one line, not a traceback
        problem = disk_problem(exc)
        if problem is None:
            raise
        print(f"error: {problem}", file=sys.stderr)
        return 2
