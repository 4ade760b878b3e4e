"""Execute a run the store holds: the one entry the job runner, the CLI and the tests call.

``execute(store, run_id)`` reads the run's spec and runs it: a shoot-out through
``core.tuning.shootout``, a base-model comparison through ``core.insight.models``, any other method
through ``core.tuning.runs``; with ``prepare_views`` it also draws the run's maps
(``core.insight.explore``). It sits above both packages, so neither imports the other's way up.
"""

from __future__ import annotations

from core.insight.explore import clouds_projection, finished_view
from core.insight.models import run_comparison
from core.insight.projection import ProjectionParams
from core.retrieval.results import RunResults
from core.tuning.methods import method_of
from core.tuning.runs import finish_method
from core.tuning.shootout import ShootoutResults, run_shootout
from core.workspace.jobs import Reporter
from core.workspace.store import Store

# the runners of the dispatch methods (``Method.kind == "dispatch"``): they sit above the packages they use
DISPATCH = {"shootout": run_shootout, "models": run_comparison}


def execute(store: Store, run_id: str, reporter: Reporter | None = None, device: str | None = None,
            resume: bool = False, prepare_views: bool = False) -> RunResults | ShootoutResults | dict:
    """Run ``run_id``'s spec and save its results.

    Args:
        resume: continue an interrupted full fine-tune from its last checkpoint.
        prepare_views: also compute the map and the quality-by-dimension table at the end (the app does, so
            its pages open at once; the CLI does not need them).
    """
    method = store.get_run(run_id)["method"]  # the catalog's copy of the spec's method
    if method_of(method).kind == "dispatch":
        if method not in DISPATCH:
            raise ValueError(f"no runner for the dispatch method {method!r}")
        return DISPATCH[method](store, run_id, reporter, device=device)
    done = finish_method(store, run_id, reporter, device=device, resume=resume)
    if prepare_views:
        reporter = reporter or Reporter()
        reporter.phase("saving", "Drawing the maps and scoring smaller vectors for the Map and Compare pages")
        view = finished_view(store, run_id, done)  # what the run holds, not its files read back
        view.prepare(progress=lambda m, f: reporter.progress(int(f * 90), 100, "% of the maps"))
        clouds_projection(view, ProjectionParams(),  # the Embedding map's default view: questions vs passages
                          progress=lambda m, f: reporter.progress(90 + int(f * 10), 100, "% of the maps"))
    return done.results
