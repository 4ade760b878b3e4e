"""Method shoot-out: base, full fine-tune, adapter, NUDGE (when it applies), BM25 and the
hybrid on the same split, quality against time in one table.

A shoot-out is a run of method ``"shootout"``; each method it tries is an ordinary run of
its own (so its map and comparison can be opened), created and executed in turn by
``run_shootout``. The table is saved as ``shootout.json`` in the shoot-out's folder.
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd

from core.store import Store, atomic_write_json, read_json
from core.tuning.jobs import Cancelled, Reporter

METHOD_ORDER = ("full", "adapter", "nudge")
COLUMNS = ["system", "method run", "Accuracy@10", "MRR@10", "nDCG@10", "seconds", "time measured"]


class _Child(Reporter):
    """Forwards a sub-run's progress to the shoot-out's reporter with the method's name in front."""

    def __init__(self, parent: Reporter, label: str):
        self.parent, self.label = parent, label

    def phase(self, name: str, message: str = "") -> None:
        self.parent.phase(name, f"{self.label}: {message}")

    def progress(self, step: int, total: int, epoch: float | None = None) -> None:
        self.parent.progress(step, total, epoch)

    def loss(self, step: int, value: float) -> None:
        pass  # one loss curve per sub-run lives in its own folder

    def evaluation(self, step: int, metrics: dict[str, float]) -> None:
        pass

    def note(self, message: str) -> None:
        self.parent.note(f"{self.label}: {message}")

    def should_stop(self) -> bool:
        return self.parent.should_stop()


def run_shootout(store: Store, run_id: str, reporter: Reporter | None = None, device: str | None = None) -> dict:
    """Run every method on the shoot-out's dataset and return (and save) the comparison.

    The shoot-out's config may hold ``methods`` (default all three) and ``full`` / ``adapter``
    overrides of each method's settings.
    """
    from core.tuning.adapters import nudge_applies
    from core.tuning.runs import execute_run

    reporter = reporter or Reporter()
    run = store.get_run(run_id)
    config = read_json(store.run_dir(run_id) / "config.json", {})
    methods = [m for m in METHOD_ORDER if m in config.get("methods", METHOD_ORDER)]
    train, ev = store.load_dataset(run["dataset_id"])
    rows: list[dict[str, Any]] = []
    children: dict[str, str] = {}
    skipped: dict[str, str] = {}
    base_done = False
    for i, method in enumerate(methods):
        reporter.check_cancel()
        if method == "nudge":
            ok, why = nudge_applies(train.corpus, ev.corpus)
            if not ok:
                skipped[method] = why
                reporter.note(f"NUDGE left out: {why}")
                continue
        sub_config = {**config.get(method, {}), "base_model": config.get("base_model")}
        child = store.create_run(run["dataset_id"], method, sub_config,
                                 name=f"{run.get('name') or run_id} · {method}")
        children[method] = child
        store.update_run(child, status="running", started=time.time())
        t0 = time.perf_counter()
        try:
            res = execute_run(store, child, _Child(reporter, f"[{i + 1}/{len(methods)}] {method}"), device=device)
        except Cancelled:
            store.update_run(child, status="cancelled", ended=time.time(), error="Cancelled with its shoot-out.")
            raise
        except Exception as exc:  # noqa: BLE001 - one method failing is a result, the others still run
            store.update_run(child, status="failed", ended=time.time(), error=f"{type(exc).__name__}: {exc}")
            skipped[method] = f"failed: {exc}"
            reporter.note(f"{method} failed: {exc}")
            continue
        store.update_run(child, status="done", ended=time.time(), metrics=res["headline"])
        wall = time.perf_counter() - t0
        order = res["order"]
        systems = res["systems"]

        def row(system: str, seconds: float, measured: str, _child=child, systems=systems) -> dict[str, Any]:
            m = systems[system]
            return {"system": system, "method run": _child, "Accuracy@10": m["Accuracy@10"], "MRR@10": m["MRR@10"],
                    "nDCG@10": m["nDCG@10"], "seconds": seconds, "time measured": measured}

        if not base_done:
            rows.append(row(order[0], systems[order[0]]["seconds"], "encoding the evaluation data"))
            rows.append(row(order[2], systems[order[2]]["seconds"], "indexing + searching"))
            base_done = True
        rows.append(row(order[1], wall, "whole run: training + scoring"))
        rows.append(row(order[3], wall, "the tuned run + BM25 (fusion chosen on validation)"))
        rows[-1]["system"] = f"hybrid ({method} + BM25)"
    if not rows:
        raise ValueError("No method could run on this dataset: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    out = {"shootout": rows, "children": children, "skipped": skipped, "order": [r["system"] for r in rows],
           "n_eval_questions": len(ev), "n_eval_passages": len(ev.corpus)}
    best = max(rows, key=lambda r: r["nDCG@10"])
    out["headline"] = {k: best[k] for k in ("Accuracy@10", "MRR@10", "nDCG@10")}
    out["verdict"] = (f"Best on nDCG@10: {best['system']} ({best['nDCG@10']:.3f}, MRR@10 {best['MRR@10']:.3f}). "
                      + " ".join(f"{k}: {v}" for k, v in skipped.items()))
    atomic_write_json(store.run_dir(run_id) / "shootout.json", out)
    reporter.phase("done", "Finished")
    return out


def shootout_table(out: dict) -> pd.DataFrame:
    return pd.DataFrame(out["shootout"], columns=COLUMNS).set_index("system")
