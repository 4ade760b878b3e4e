"""The recipe search on sec-10k (issue 14): one factor at a time around the default, then combinations.

Setting: the CLI's (`python -m core train --train train_dataset.json --eval val_dataset.json`): the
evaluation questions search the passages of both files (729). Each configuration is a full
fine-tune run through the project's own code (`core.tuning`), in its own process (so peak RSS is
that configuration's), and writes ONE JSON line to the output file: the spec, base / tuned / BM25 /
hybrid metrics, the verdict, training and total seconds, peak RSS. Re-running skips configurations
already in the file (resumable); a crashed or refused configuration is recorded with its error.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_recipe.py --out bench/results/recipe.jsonl --phase ofat
    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_recipe.py --out bench/results/recipe.jsonl --phase combo
    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_recipe.py --out ... --only NAME [--data sample|long]
    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_recipe.py --out bench/results/recipe.jsonl --table

``--data sample`` / ``--data long`` run a configuration on the bundled sample (short passages) or on
a second collection with long passages made from sec-10k's passages joined in pairs (a different
passage length), to confirm a default change is not tuned to sec-10k alone.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "sec-10k-qa"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
BUDGET_SECONDS = 15 * 60  # a default must train sec-10k within this on this machine

# One factor at a time around the default recipe (name -> overrides of FullSettings / Scoring).
OFAT: dict[str, dict] = {
    "default": {},
    "windows": {"windows": True},
    "best-window": {"train_passage": "best"},  # = today's default "answer" where no answers are given (all three sets)
    "first-window": {"train_passage": "first"},  # the default before
    "all-windows": {"train_passage": "all"},  # one pair per window of a long passage
    "mini-batch8": {"mini_batch_size": 8},  # CachedMNRL's forward chunk: memory, not the effective batch
    "seq128": {"max_seq_length": 128},
    "epochs1": {"epochs": 1},
    "epochs3": {"epochs": 3},
    "lr2e-5": {"learning_rate": 2e-5},
    "lr1e-4": {"learning_rate": 1e-4},
    "batch16": {"batch_size": 16},
    "batch64": {"batch_size": 64},
    "gist": {"loss": "cached_gist"},
    "negatives1": {"hard_negatives": 1},
    # Two factors at once, as one set-up: a mined negative costs a third passage per pair, and 128 training
    # tokens pay for it (the "negatives that fit the machine").
    "negatives1-seq128": {"hard_negatives": 1, "max_seq_length": 128},
    # Issue 26 items 4a and 5: weight merging with the base model (WiSE-FT, w chosen on the hold-out) and hard
    # negatives mined with BM25 instead of the base model (same training cost as "negatives1").
    "merge": {"merge_base": True},
    "negatives1-bm25": {"hard_negatives": 1, "negatives_from": "bm25"},
    "negatives1-bm25+merge": {"hard_negatives": 1, "negatives_from": "bm25", "merge_base": True},
    "negatives1+merge": {"hard_negatives": 1, "merge_base": True},
}
SCORING_KEYS = ("passage_tokens", "windows", "window_overlap", "validation_share")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class PhaseRSS:
    """Peak resident memory per phase of a run (sampled every 0.2 s), to say where a run's peak is."""

    def __init__(self):
        import threading

        self.label, self.peaks, self._stop = "start", {}, threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            rss = _rss_mb()
            self.peaks[self.label] = max(self.peaks.get(self.label, 0.0), rss)

    def stop(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join()
        return {k: round(v) for k, v in self.peaks.items()}


def _dataset(store, which: str) -> str:
    """The dataset id of ``which`` ("sec10k", "sample" or "long") in ``store``, made on first use."""
    from core.dataset import QADataset, join_train_eval
    from core.ingest.qafiles import load_qa_path
    from core.sample import load_sample

    found = store.find_dataset(which)
    if found:
        return found["id"]
    if which == "sample":
        train, ev, _ = load_sample()
    else:
        train = load_qa_path(DATA / "train_dataset.json").dataset
        ev = load_qa_path(DATA / "val_dataset.json").dataset
        if which == "long":  # every passage joined with the next one: twice the length, same questions
            def doubled(ds: QADataset) -> QADataset:
                ids = list(ds.corpus)
                corpus = {d: ds.corpus[d] + "\n\n" + ds.corpus[ids[(i + 1) % len(ids)]] for i, d in enumerate(ids)}
                return QADataset(ds.queries, corpus, ds.relevant_docs)
            train, ev = doubled(train), doubled(ev)
        train, ev = join_train_eval(train, ev)
    return store.save_dataset(which, train, ev)


def make_spec(overrides: dict):
    from core.tuning.spec import RunSpec

    spec = RunSpec.for_method("full")
    for k, v in overrides.items():
        setattr(spec.scoring if k in SCORING_KEYS else spec.settings, k, v)
    return RunSpec.from_dict(spec.to_dict())


def run_one(name: str, overrides: dict, workspace: str, which: str) -> dict:
    """One configuration in this process (called in a subprocess by ``main``)."""
    from core.cli import PrintReporter
    from core.execute import execute
    from core.tuning.runs import create_run
    from core.workspace.jobs import run_foreground
    from core.workspace.store import Store

    store = Store(workspace)
    spec = make_spec(overrides)
    run_id = create_run(store, _dataset(store, which), spec, name=name)
    rss = PhaseRSS()

    class Printer(PrintReporter):
        def phase(self, name: str, message: str = "") -> None:  # "training: Training", "preparing: Choosing ..."
            rss.label = f"{name}: {' '.join(message.split()[:4])}"
            super().phase(name, message)

    t0 = time.perf_counter()
    job = run_foreground(store, run_id, lambda j: execute(store, run_id, j, device="cpu"), Printer())
    snap = job.snapshot()
    out = {"name": name, "data": which, "overrides": overrides, "spec": spec.to_dict(), "run_id": run_id,
           "seconds": round(time.perf_counter() - t0, 1), "peak_rss_mb": round(peak_rss_mb()),
           "peak_rss_by_phase_mb": rss.stop()}
    if snap.status != "done":
        return {**out, "error": snap.error}
    r = snap.result
    return {**out, "training_seconds": round(r.training_seconds, 1), "verdict": r.verdict,
            "systems": {role: {"name": s.name, **{k: round(s.metrics[k], 4) for k in
                                                  ("Accuracy@1", "Accuracy@10", "MRR@10", "nDCG@10")}}
                        for role, s in r.systems.items()},
            "training": r.training, "conditions": r.systems["tuned"].conditions.to_dict(), **pipelines_summary(r)}


def merge_after(name: str, source: str, workspace: str) -> dict:
    """Weight merging added to a finished run without retraining (what ``merge_base`` does after training,
    through the same ``core.tuning.full.merge_with_base``): the run's workspace is copied (the source is left
    untouched), its saved tuned model merged with the base on the run's own validation hold-out, saved as the
    run's model, and the run re-scored (``run_method(rescore=...)``; its rerank stage, if any, dropped).

    ``source``: WORKSPACE:RUN_ID of a finished full fine-tune.
    """
    import shutil

    from core.cli import PrintReporter
    from core.tuning.full import merge_with_base
    from core.tuning.holdout import split_validation
    from core.tuning.methods.full import load_saved, merge_line
    from core.tuning.runs import run_method
    from core.tuning.spec import RunSpec
    from core.workspace.files import atomic_write_json
    from core.workspace.jobs import Reporter
    from core.workspace.run_folder import load_results
    from core.workspace.store import Store

    class Printer(PrintReporter, Reporter):  # prints, and has check_cancel (never cancels)
        pass

    src_ws, run_id = source.rsplit(":", 1)
    dst = Path(workspace) / f"merge-{run_id}"
    if not dst.exists():
        shutil.copytree(src_ws, dst, ignore=shutil.ignore_patterns("job.lock", "reranker", "projection-*",
                                                                   "map-points-*"))
    store = Store(dst)
    run_dir = store.run_dir(run_id)
    spec = RunSpec.load(run_dir)
    spec.rerank = None
    spec.settings.merge_base = True
    atomic_write_json(run_dir / "config.json", spec.to_dict())
    before = load_results(run_dir)
    train, _, _ = store.scoring_data(run_id, fresh=False)
    _, val = split_validation(train, spec.scoring.validation_share, spec.seed)
    reporter = Printer()
    t0 = time.perf_counter()
    model = load_saved(run_dir, spec, "cpu")
    model.max_seq_length = spec.settings.max_seq_length
    chosen, scores = merge_with_base(model, spec.base_model, val, spec.scoring.passage_tokens, reporter,
                                     device="cpu", overlap=spec.overlap)
    model.max_seq_length = spec.scoring.passage_tokens
    shutil.rmtree(run_dir / "model")
    model.save(str(run_dir / "model"))
    merge_seconds = time.perf_counter() - t0
    before.training = [x for x in before.training if not x.startswith("Rerank stage: ")] + [
        merge_line(chosen, scores, len(val))]
    r = run_method(store, run_id, reporter, device="cpu", rescore=before)
    return {"name": name, "data": "sec10k", "merged_from": source, "spec": spec.to_dict(), "run_id": run_id,
            "seconds": round(time.perf_counter() - t0, 1), "merge_seconds": round(merge_seconds, 1),
            "merge_weight": chosen, "merge_scores": scores, "peak_rss_mb": round(peak_rss_mb()),
            "training_seconds": round(r.training_seconds, 1), "verdict": r.verdict,
            "systems": {role: {"name": s.name, **{k: round(s.metrics[k], 4) for k in
                                                  ("Accuracy@1", "Accuracy@10", "MRR@10", "nDCG@10")}}
                        for role, s in r.systems.items()},
            "training": r.training, "conditions": r.systems["tuned"].conditions.to_dict(), **pipelines_summary(r)}


def pipelines_summary(r) -> dict:
    """Every pipeline's stages and conditions, the best choice per side and the headline comparison (with
    the check that every system ran under the same conditions and both hybrids chose their fusion alike)."""
    from core.retrieval.stats import find

    def delta(a: str, b: str) -> dict | None:
        d = find(r.comparisons, a, b)
        return None if d is None else {"a": a, "b": b, "delta": round(d.delta, 4), "low": round(d.low, 4),
                                       "high": round(d.high, 4), "p": round(d.p_value, 4), "n": d.n,
                                       "significant": d.significant}

    return {"pipelines": {role: p.describe() for role, p in r.pipelines.items()},
            "conditions_by_system": {role: s.conditions.to_dict() for role, s in r.systems.items()},
            "fair": not r.fairness_problems(), "best": r.best.to_dict() if r.best else None,
            "recommended": r.recommended, "headline": delta(r.best.untuned, r.best.tuned) if r.best else None,
            "hybrid_vs_base_hybrid": delta("base_hybrid", "hybrid"), "dense": delta("base", "tuned")}


def _done(path: Path) -> dict[tuple[str, str], dict]:
    if not path.exists():
        return {}
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return {(r["name"], r.get("data", "sec10k")): r for r in rows}


def combos(done: dict) -> dict[str, dict]:
    """Combinations of the one-factor changes that helped tuned nDCG@10 and fit the time budget."""
    base = done.get(("default", "sec10k"))
    if not base or "error" in base:
        raise SystemExit("run --phase ofat first (the default configuration is missing)")
    ref = base["systems"]["tuned"]["nDCG@10"]
    helped = sorted(((r["systems"]["tuned"]["nDCG@10"], n) for (n, d), r in done.items()
                     if d == "sec10k" and n in OFAT and n != "default" and "error" not in r
                     and r["systems"]["tuned"]["nDCG@10"] > ref and r["training_seconds"] <= BUDGET_SECONDS),
                    reverse=True)
    names = [n for _, n in helped]
    out: dict[str, dict] = {}
    for i in range(2, len(names) + 1):
        merged: dict = {}
        for n in names[:i]:
            merged.update(OFAT[n])
        out["+".join(names[:i])] = merged
    return out


def table(path: Path) -> None:
    rows = list(_done(path).values())
    print(f"{'configuration':40s} {'data':7s} {'base':>6s} {'tuned':>6s} {'BM25':>6s} {'hybrid':>6s} "
          f"{'tunedA10':>8s} {'train s':>8s} {'RSS MB':>7s}  (nDCG@10)")
    for r in rows:
        if "error" in r:
            print(f"{r['name']:40s} {r.get('data', ''):7s} error: {r['error'][:80]}")
            continue
        s = r["systems"]
        print(f"{r['name']:40s} {r['data']:7s} {s['base']['nDCG@10']:6.3f} {s['tuned']['nDCG@10']:6.3f} "
              f"{s['bm25']['nDCG@10']:6.3f} {s['hybrid']['nDCG@10']:6.3f} {s['tuned']['Accuracy@10']:8.3f} "
              f"{r['training_seconds']:8.0f} {r['peak_rss_mb']:7d}")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True, help="JSON-lines results file (appended; finished lines are skipped)")
    p.add_argument("--phase", choices=["ofat", "combo"], default=None)
    p.add_argument("--only", nargs="*", default=None, help="configuration names to run (from OFAT or combos)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=JSON", help="a configuration of your own")
    p.add_argument("--name", default=None, help="its name (with --set)")
    p.add_argument("--data", choices=["sec10k", "sample", "long"], default="sec10k")
    p.add_argument("--workspace", default=None)
    p.add_argument("--table", action="store_true")
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--merge-run", metavar="WORKSPACE:RUN_ID",
                   help="add weight merging to a finished full fine-tune (no retraining; the source is copied, "
                        "never changed) and score it; its line is named --name (default: merge-after-RUN_ID)")
    args = p.parse_args()
    out = Path(args.out)
    if args.table:
        table(out)
        return 0
    if args.merge_run:
        row = merge_after(args.name or f"merge-after-{args.merge_run.rsplit(':', 1)[1]}", args.merge_run,
                          args.workspace or tempfile.mkdtemp(prefix="etl-merge-"))
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(f"   -> merge w {row['merge_weight']}: {row['merge_scores']}; {row['systems']['tuned']}", flush=True)
        return 0
    if args.one:
        print("RESULT " + json.dumps(run_one(args.one, json.loads(os.environ["ETL_BENCH_OVERRIDES"]), args.workspace,
                                            args.data)))
        return 0
    done = _done(out)
    configs = dict(OFAT) if args.phase == "ofat" else combos(done) if args.phase == "combo" else {}
    if args.set:
        configs = {args.name or "custom": {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in args.set)}}
    if args.only:
        pool = {**OFAT, **(combos(done) if args.phase == "combo" else {})}
        configs = {n: pool[n] for n in args.only}
    workspace = args.workspace or tempfile.mkdtemp(prefix="etl-recipe-")
    out.parent.mkdir(parents=True, exist_ok=True)
    for name, overrides in configs.items():
        if (name, args.data) in done:
            print(f"{name} on {args.data}: done already, skipped")
            continue
        print(f"== {name} on {args.data}: {overrides}", flush=True)
        env = {**os.environ, "ETL_BENCH_OVERRIDES": json.dumps(overrides)}
        proc = subprocess.run([sys.executable, __file__, "--one", name, "--workspace", workspace, "--data", args.data,
                               "--out", str(out)], capture_output=True, text=True, env=env)
        line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        row = json.loads(line[-1][7:]) if line else {"name": name, "data": args.data, "overrides": overrides,
                                                      "error": f"crashed (exit {proc.returncode}): {proc.stderr[-500:]}"}
        with out.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(f"   -> {row.get('error') or row['systems']['tuned']}", flush=True)
    table(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
