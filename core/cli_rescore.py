"""``python -m core rescore RUN``: score a finished run again with the fit it saved, no training.

Used to add a rerank stage to a run that has none (``--rerank``: train a cross-encoder on the run's
training questions; ``--rerank-model PATH``: use one you have), or to drop it (``--no-rerank``). The
run keeps its own copy of its data, its tuned model and its validation hold-out, so every pipeline is
scored exactly as before (encodings come from the workspace's cache) and the new one beside them.

    python -m core rescore RUN_ID --rerank [--rerank-top-k 30] [--set rerank.NAME=VALUE]
    python -m core rescore RUN_ID --rerank-model /path/to/cross-encoder
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from core.console import PrintReporter, print_run_results
from core.retrieval.rerank import RerankSettings
from core.store import Store, atomic_write_json
from core.tuning.spec import RunSpec


def rerank_settings(args: argparse.Namespace, current: RerankSettings | None) -> RerankSettings | None:
    """The rerank settings the flags ask for (``current`` kept when no rerank flag is given).

    Raises:
        SystemExit: an unknown ``--set rerank.NAME`` or a value of the wrong kind.
    """
    if args.no_rerank:
        return None
    wanted = args.rerank or args.rerank_model is not None or args.rerank_top_k is not None or args.set
    if not wanted:
        return current
    values = dataclasses.asdict(current) if current is not None else {}
    if args.rerank_model is not None:
        values["model"] = args.rerank_model
    if args.rerank_top_k is not None:
        values["top_k"] = args.rerank_top_k
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


def cmd_rescore(args: argparse.Namespace) -> int:
    from core.tuning.jobs import run_foreground
    from core.tuning.runs import run_method

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
    if spec.method not in ("full", "adapter", "nudge"):
        print(f"error: a {spec.method} run cannot be re-scored (one method's run only)", file=sys.stderr)
        return 2
    new = RunSpec(spec.method, spec.base_model, spec.seed, spec.scoring, spec.settings,
                  rerank_settings(args, spec.rerank))
    atomic_write_json(run_dir / "config.json", new.to_dict())
    job = run_foreground(store, args.run_id, lambda j: run_method(store, args.run_id, j, device=args.device,
                                                                   reuse_fit=True), PrintReporter())
    snap = job.snapshot()
    if snap.status != "done":
        atomic_write_json(run_dir / "config.json", spec.to_dict())  # the run stays as it was
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
    r = sub.add_parser("rescore", help="score a finished run again with its saved fit (e.g. add a rerank stage)")
    r.add_argument("run_id")
    r.add_argument("--rerank", action="store_true", help="add a rerank stage: a cross-encoder trained on the run's "
                                                         "training questions (unless --rerank-model is given)")
    r.add_argument("--rerank-model", default=None, help="a cross-encoder folder (or hub id when online) to rerank "
                                                        "with, as it is")
    r.add_argument("--rerank-top-k", type=int, default=None, help="first-stage results the reranker rescores")
    r.add_argument("--no-rerank", action="store_true", help="drop the run's rerank stage")
    r.add_argument("--set", action="append", metavar="rerank.NAME=VALUE", help="any rerank setting")
    r.add_argument("--device", default=None)
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=cmd_rescore)
