"""``python -m core rerank RUN``: score a finished run again with the fit it saved, no training, with a
rerank stage added, changed or dropped.

A cross-encoder is trained on the run's training questions (or ``--model PATH`` is used as it is). The
run keeps its own copy of its data, its tuned model and its validation hold-out, so every pipeline is
scored exactly as before (encodings come from the workspace's cache) and the new one beside them.

    python -m core rerank RUN_ID [--top-k 30] [--set rerank.NAME=VALUE]     # train a cross-encoder
    python -m core rerank RUN_ID --model /path/to/cross-encoder           # use one you have
    python -m core rerank RUN_ID --remove                                 # drop the stage
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from core.console import PrintReporter, print_run_results
from core.retrieval.rerank import RerankSettings
from core.tuning.methods import fitted
from core.tuning.runs import run_method
from core.tuning.spec import RunSpec
from core.workspace.jobs import run_foreground
from core.workspace.run_folder import load_results, write_config
from core.workspace.store import Store


def rerank_settings(args: argparse.Namespace, current: RerankSettings | None) -> RerankSettings | None:
    """The rerank settings the flags ask for (``current`` kept when no rerank flag is given).

    Raises:
        SystemExit: an unknown ``--set rerank.NAME`` or a value of the wrong kind.
    """
    if args.remove:
        return None
    values = dataclasses.asdict(current) if current is not None else {}
    values["model"] = ""  # trained unless --model says otherwise
    if args.model is not None:
        values["model"] = args.model
    if args.top_k is not None:
        values["top_k"] = args.top_k
    names = {f.name for f in dataclasses.fields(RerankSettings)}
    for item in args.set or []:
        key, _, raw = item.partition("=")
        key = key.removeprefix("rerank.")
        if key not in names or not _:
            raise SystemExit(f"error: --set {item!r}: use rerank.NAME=VALUE with NAME one of {', '.join(sorted(names))}")
        try:
            values[key] = json.loads(raw)
        except json.JSONDecodeError:
            values[key] = raw
    out = RerankSettings.from_dict(values)
    try:
        out.validate()
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from exc
    return out


def cmd_rerank(args: argparse.Namespace) -> int:
    # the run machinery (faiss, bm25s, the ONNX backends) loads only when the command runs, not with every `--help`
    store = Store()
    try:
        run = store.get_run(args.run_id)
    except KeyError:
        print(f"error: no run {args.run_id!r} in {store.root}", file=sys.stderr)
        return 2
    if run["status"] != "done":
        print(f"error: run {args.run_id} is {run['status']}: only a finished run can be re-scored", file=sys.stderr)
        return 2
    run_dir = store.run_dir(args.run_id)
    spec = RunSpec.load(run_dir)
    if spec.method not in fitted():
        print(f"error: a {spec.method} run cannot be re-scored (one method's run only)", file=sys.stderr)
        return 2
    new = RunSpec(spec.method, spec.base_model, spec.seed, spec.scoring, spec.settings,
                  rerank_settings(args, spec.rerank))
    write_config(run_dir, new.to_dict())
    before = load_results(run_dir)
    job = run_foreground(store, args.run_id, lambda j: run_method(store, args.run_id, j, device=args.device,
                                                                   rescore=before), PrintReporter())
    snap = job.snapshot()
    if snap.status != "done":
        write_config(run_dir, spec.to_dict())  # the run stays as it was
        store.update_run(args.run_id, status="done", error=None)
        print(f"error: re-scoring ended {snap.status}: {snap.error or ''} (the run keeps its earlier results)",
              file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(snap.result.to_dict(), indent=1, default=str))
    else:
        print_run_results(snap.result)
    return 0


def add_command(sub) -> None:
    r = sub.add_parser("rerank", help="add a rerank stage to a finished run (a cross-encoder trained on its "
                                      "questions, or --model), scored beside its pipelines without retraining")
    r.add_argument("run_id")
    r.add_argument("--model", default=None, help="a cross-encoder folder (or hub id when online) to rerank with, as "
                                                 "it is (default: train one on the run's training questions)")
    r.add_argument("--top-k", type=int, default=None, help="first-stage results the reranker rescores (default 30)")
    r.add_argument("--remove", action="store_true", help="drop the run's rerank stage")
    r.add_argument("--set", action="append", metavar="rerank.NAME=VALUE", help="any rerank setting")
    r.add_argument("--device", default=None)
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=cmd_rerank)
