"""Whether a finished run's tuned model is the base model unchanged (issue 26).

A query adapter keeps the identity when no epoch beat the base model on its held-back questions
(``core.tuning.adapter``: epoch 0 is a candidate), and NUDGE may choose step size 0. Such a run
"finishes" and can be exported, but what it ships is the base model as it was: the Runs page and
the bundle's README say so (:data:`UNCHANGED_BUNDLE`), rather than handing over 100 MB that change
nothing. Each method says how it can stay unchanged (``Method.unchanged``, ``core.tuning.methods``); the
check reads what the run saved (the adapter's weights, the stored vectors), not its
scores: two models can score alike and still differ.
"""

from __future__ import annotations

import logging
from pathlib import Path

from core.tuning.methods import method_of
from core.tuning.spec import RunSpec
from core.workspace.run_folder import load_results, load_vectors

logger = logging.getLogger(__name__)

UNCHANGED_BUNDLE = "this bundle is the base model unchanged"


def _scores(run_dir: Path) -> str:
    results = load_results(run_dir)
    if results is None or "tuned" not in results.systems:
        return ""
    base, tuned = (results.systems[r].metrics.get("nDCG@10") for r in ("base", "tuned"))
    if base is None or tuned is None:
        return ""
    return f" (nDCG@10 {base:.3f} before, {tuned:.3f} after)"


def base_unchanged(run_dir: str | Path) -> str | None:
    """Why the run's tuned model is the base model unchanged, in one sentence; None when it changed.

    Args:
        run_dir: A finished run's folder.

    Returns:
        E.g. "No epoch of the query adapter beat the base model on its held-back training questions, so the
        run kept the identity: the tuned model is the base model unchanged (nDCG@10 0.432 before, 0.432
        after)."; None for a full fine-tune, a changed adapter or NUDGE run, or a run without its files.
    """
    run_dir = Path(run_dir)
    try:
        method = method_of(RunSpec.load(run_dir).method)
    except (FileNotFoundError, KeyError, ValueError):
        return None
    if method.unchanged is None:
        return None

    def training() -> list[str]:
        results = load_results(run_dir)
        return list(results.training) if results is not None else []

    why = method.unchanged(run_dir, training(), lambda: load_vectors(run_dir))
    return None if why is None else f"{why}{_scores(run_dir)}."
