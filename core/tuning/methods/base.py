"""The :class:`Method` record: everything the lab knows about one training method, in one object.

Each module of ``core.tuning.methods`` declares one ``METHOD``; ``core.tuning.methods`` lists them
(:data:`core.tuning.methods.REGISTERED`). The spec, the run, the estimate, the shoot-out, the map and
comparison views, the export and its snippets read these fields instead of branching on a name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

# (estimate, spec, the method's settings, training split, evaluation split, evaluation tokens) -> adds phases
CostModel = Callable[[Any, Any, Any, Any, Any, int], None]


@dataclass(frozen=True)
class Method:
    """One training method (or a dispatch method that runs others: ``kind="dispatch"``).

    Attributes:
        name: the spec's ``method`` and config.json's key.
        label: in words, for the Train page, reports and run names.
        caption: the Train page's text under the choice.
        settings: its settings dataclass (fields with help text, ``core.tuning.settings.setting``).
        kind: "fit" (a run of its own: ``fit`` is called) or "dispatch" (runs other things: the shoot-out,
            the base-model comparison; ``core.execute`` dispatches them).
        fit: ``core.tuning.context.FitContext`` -> ``Fit`` (result, lines, validation ranking, seconds); with
            ``ctx.reuse`` it re-scores with what it saved instead of training.
        saves: the files / folders the fit leaves in the run folder (an export needs them).
        launchable: offered on the Train page's method choice.
        in_shootout: a shoot-out can include it; ``shootout_default``: and does unless told otherwise.
        searches_training_passages: it only helps when the evaluation searches the training passages (NUDGE):
            the shoot-out leaves it out, with the reason, where they differ.
        cost: its cost model (``core.tuning.estimate``), None: no phase of its own.
        tuned_model: (run folder, spec, device) -> the torch model that encodes for the tuned side, rebuilt
            from the run folder; None: the base model encodes (the method changes vectors, not the model).
        query_transform: run folder -> a function moving question vectors (the adapter); None: none.
        query_file: the saved file that function reads, shipped in the bundle (``adapter.npz``).
        bundle: (run folder, spec) -> {bundle name: source file or folder}; None: ``saves`` as they are.
        bundle_model: the bundle's plain sentence-transformers folder that encodes for the tuned side
            ("model"), None: the base model does.
        snippet_encoder: the snippets' Python text defining ``embed_query`` / ``embed_passages``.
        card_what / card_usage / card_reindex: the bundle README's words (what it is, how to use it, what
            re-indexing it needs; ``{base_model_py}``, ``{base_model}``, ``{dim}``, ``{rows}`` are filled in).
        card_folder: a saved model folder whose README.md gets the run's scores (None: none).
        unchanged: (run folder, training lines, vectors loader) -> why the run left the base model
            unchanged, or None (``core.insight.unchanged``); None: the method cannot leave it unchanged.
        train_hooks: ``core.tuning.full.TrainHooks`` when it trains on the full fine-tune's path (several
            processes rebuild them from the method's name).
    """

    name: str
    label: str
    caption: str
    settings: type
    kind: Literal["fit", "dispatch"] = "fit"
    fit: Callable[[Any], Any] | None = None
    saves: tuple[str, ...] = ()
    launchable: bool = True
    in_shootout: bool = False
    shootout_default: bool = False
    searches_training_passages: bool = False
    cost: CostModel | None = None
    tuned_model: Callable[[Path, Any, str | None], Any] | None = None
    query_transform: Callable[[Path], Callable[[np.ndarray], np.ndarray]] | None = None
    query_file: str | None = None
    bundle: Callable[[Path, Any], dict[str, Path]] | None = None
    bundle_model: str | None = None
    snippet_encoder: str = ""
    card_what: str = ""
    card_usage: str = ""
    card_reindex: str = ""
    card_folder: str | None = None
    unchanged: Callable[[Path, list[str], Callable[[], dict | None]], str | None] | None = None
    train_hooks: Any = None

    def bundle_sources(self, run_dir: Path, spec: Any) -> dict[str, Path]:
        """{bundle name: source} of what the run saved for a bundle (see ``bundle``)."""
        if self.bundle is not None:
            return self.bundle(run_dir, spec)
        return {name: run_dir / name for name in self.saves}
