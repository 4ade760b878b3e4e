"""Method shoot-out: base, every method it includes (``core.tuning.methods``: full fine-tune, adapter,
NUDGE when it applies, ...), BM25 and the hybrid on the same split, quality against time in one table.

A shoot-out is a run of method ``"shootout"``; each method it tries is an ordinary run of its
own (``spec.child(method)``: same base model, seed and scoring conditions), created and executed
in turn, so its map and comparison can be opened. The table is saved as ``shootout.json`` in
the shoot-out's folder and read back with ``load_shootout``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from core.tuning.methods import method_of, names
from core.tuning.nudge import nudge_applies
from core.tuning.runs import create_run, load_spec, run_method
from core.workspace.files import atomic_write_json, read_json
from core.workspace.jobs import Cancelled, Reporter
from core.workspace.store import Store

logger = logging.getLogger(__name__)

COLUMNS = ["system", "method run", "Accuracy@10", "MRR@10", "nDCG@10", "seconds", "time measured"]


class _Child(Reporter):
    """Forwards a sub-run's progress to the shoot-out's reporter with the method's name in front."""

    def __init__(self, parent: Reporter, label: str):
        self.parent, self.label = parent, label

    def phase(self, name: str, message: str = "") -> None:
        self.parent.phase(name, f"{self.label}: {message}")

    def progress(self, done: int, total: int, unit: str = "steps", epoch: float | None = None) -> None:
        self.parent.progress(done, total, unit, epoch)

    def note(self, message: str) -> None:
        self.parent.note(f"{self.label}: {message}")

    def should_stop(self) -> bool:
        return self.parent.should_stop()


@dataclass
class ShootoutResults:
    """The shoot-out table (one row per system), its child runs and what was left out."""

    rows: list[dict] = field(default_factory=list)
    children: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    eval_questions: int = 0
    eval_passages: int = 0
    passage_tokens: int = 0

    @property
    def best(self) -> dict:
        return max(self.rows, key=lambda r: r["nDCG@10"])

    @property
    def headline(self) -> dict[str, float]:
        return {k: self.best[k] for k in ("Accuracy@10", "MRR@10", "nDCG@10")}

    @property
    def verdict(self) -> str:
        b = self.best
        return (f"Best on nDCG@10: {b['system']} ({b['nDCG@10']:.3f}, MRR@10 {b['MRR@10']:.3f}). "
                + " ".join(f"{k}: {v}" for k, v in self.skipped.items())).strip()

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=COLUMNS).set_index("system")


def load_shootout(run_dir: str | Path) -> ShootoutResults | None:
    d = read_json(Path(run_dir) / "shootout.json")
    if not d:
        return None
    return ShootoutResults(**{k: v for k, v in d.items() if k in ShootoutResults.__dataclass_fields__})


def _row(system: str, child: str, metrics: dict, seconds: float, measured: str) -> dict:
    return {"system": system, "method run": child, "Accuracy@10": metrics["Accuracy@10"],
            "MRR@10": metrics["MRR@10"], "nDCG@10": metrics["nDCG@10"], "seconds": seconds, "time measured": measured}


def run_shootout(store: Store, run_id: str, reporter: Reporter | None = None,
                 device: str | None = None) -> ShootoutResults:
    """Run every method of the shoot-out's spec on its dataset; save and return the comparison."""
    reporter = reporter or Reporter()
    run = store.get_run(run_id)
    spec = load_spec(store, run_id)
    methods = [m for m in names(in_shootout=True) if m in spec.settings.methods]  # the registry's order
    train, ev = store.snapshot_run_data(run_id, run["dataset_id"])
    out = ShootoutResults(eval_questions=len(ev), eval_passages=len(ev.corpus),
                          passage_tokens=spec.scoring.passage_tokens)
    base_done = False
    for i, method in enumerate(methods):
        reporter.check_cancel()
        if method_of(method).searches_training_passages:
            ok, why = nudge_applies(train.corpus, ev.corpus)
            if not ok:
                out.skipped[method] = why
                reporter.note(f"{method_of(method).label.split(' (')[0]} left out: {why}")
                continue
        child = create_run(store, run["dataset_id"], spec.child(method), name=f"{run.get('name') or run_id} · {method}")
        out.children[method] = child
        store.update_run(child, status="running", started=time.time())
        t0 = time.perf_counter()
        try:
            res = run_method(store, child, _Child(reporter, f"[{i + 1}/{len(methods)}] {method}"), device=device)
        except Cancelled:
            store.update_run(child, status="cancelled", ended=time.time(), error="Cancelled with its shoot-out.")
            raise
        except Exception as exc:  # noqa: BLE001 - one method failing is a result, the others still run
            store.update_run(child, status="failed", ended=time.time(), error=f"{type(exc).__name__}: {exc}")
            out.skipped[method] = f"failed: {exc}"
            reporter.note(f"{method} failed: {exc}")
            logger.exception("shoot-out %s: %s failed", run_id, method)
            continue
        store.update_run(child, status="done", ended=time.time(), metrics=res.headline)
        wall = time.perf_counter() - t0
        s = res.systems
        if not base_done:
            out.rows.append(_row(s["base"].name, child, s["base"].metrics, s["base"].seconds,
                                 "encoding the evaluation data"))
            out.rows.append(_row(s["bm25"].name, child, s["bm25"].metrics, s["bm25"].seconds, "indexing + searching"))
            if "base_hybrid" in s:
                out.rows.append(_row(s["base_hybrid"].name, child, s["base_hybrid"].metrics, s["base_hybrid"].seconds,
                                     "base + BM25 (fusion chosen on validation, as the tuned hybrids')"))
            base_done = True
        out.rows.append(_row(s["tuned"].name, child, s["tuned"].metrics, wall, "whole run: training + scoring"))
        out.rows.append(_row(f"hybrid ({method} + BM25)", child, s["hybrid"].metrics, wall,
                             "the tuned run + BM25 (fusion chosen on validation)"))
    if not out.rows:
        raise ValueError("No method could run on this dataset: "
                         + "; ".join(f"{k}: {v}" for k, v in out.skipped.items()))
    atomic_write_json(store.run_dir(run_id) / "shootout.json", {**asdict(out), "headline": out.headline,
                                                               "verdict": out.verdict})
    reporter.phase("done", "Finished")
    return out
