"""Time the embedding maps and re-opening a finished run (issue: dashboard quality bars).

Uses a finished run's saved vectors (default: the newest full run in the workspace, e.g. the
one bench_training.py leaves) and prints: UMAP warm-up (numba JIT, once per server process),
fitting both maps for ~1,500 points, and re-opening the run for the map / compare pages
(no encoding: vectors come from vectors.npz).

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_maps.py --workspace WS [--run RUN_ID] [--points 1500]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--workspace", required=True)
    p.add_argument("--run", default=None)
    p.add_argument("--points", type=int, default=1500)
    args = p.parse_args()
    from core.insight.explore import open_run
    from core.insight.projection import ProjectionParams, fit_projection, warm_up
    from core.workspace.store import Store

    store = Store(args.workspace)
    runs = [r for r in store.list_runs() if r["status"] == "done" and r["method"] != "shootout"]
    run_id = args.run or runs[0]["id"]
    t0 = time.perf_counter()
    view = open_run(store, run_id)
    wl = view.winners_losers()
    t_open = time.perf_counter() - t0
    n = len(view.query_ids) + len(view.passage_ids)
    print(f"run {run_id}: {len(view.query_ids)} questions + {len(view.passage_ids)} passages = {n} points")
    print(f"re-open run (results, rankings, vectors; no encoding) + winners/losers: {t_open:.2f} s "
          f"({len(wl)} rows)")
    t_warm = warm_up()
    print(f"UMAP warm-up (numba JIT, once per server process): {t_warm:.1f} s")
    params = ProjectionParams(sample=args.points)
    steps = []
    t0 = time.perf_counter()
    proj = fit_projection(view.query_ids, view.passage_ids, view.base_q, view.base_d, view.tuned_q, view.tuned_d,
                          params, progress=lambda m, f: steps.append((round(time.perf_counter() - t0, 1), m, f)))
    t_fit = time.perf_counter() - t0
    shown = len(proj.points) // 2
    print(f"both maps (base + tuned, aligned), {shown} points each: {t_fit:.1f} s; progress updates: {len(steps)}")
    for s in steps:
        print(f"   {s[0]:6.1f} s  {s[2]:4.0%}  {s[1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
