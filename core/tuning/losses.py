"""The training losses, one table: what the spec offers, the CLI accepts, ``core.tuning.full`` builds and
``core.tuning.estimate`` costs all read :data:`LOSSES`.

Each :class:`Loss` says how to build the sentence-transformers loss (``build(lib, model, settings,
guide)``: ``lib`` is sentence-transformers' ``losses`` module, ``guide`` the frozen base model for the
losses that need one, else None), its training cost relative to CachedMNRL (what the estimate multiplies
the measured per-token rate by) and its constraints (at most N hard negatives; needs the guide model).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from core.retrieval.embedding import embedding_dim


@dataclass(frozen=True)
class Loss:
    """One training loss (see the module docstring)."""

    name: str
    label: str
    help: str
    build: Callable[[Any, Any, Any, Any], Any]  # (losses module, model, settings, guide or None) -> the loss
    cost: float  # training time relative to CachedMNRL at the same batch (the estimate's factor)
    max_hard_negatives: int | None = None  # None: any number
    needs_guide: bool = False  # loads the base model a second time, frozen, as a guide
    family: str = ""  # what messages call it with its twins ("the GIST losses"); empty: its label


def _matryoshka(lib, model, settings, guide):
    dims = [d for d in settings.matryoshka_dims if d <= embedding_dim(model)]
    return lib.MatryoshkaLoss(model, lib.MultipleNegativesRankingLoss(model), matryoshka_dims=dims)


LOSSES: tuple[Loss, ...] = (
    Loss("mnrl", "MNRL", "MultipleNegativesRankingLoss: in-batch negatives, one pass per batch (~6 GB of RAM at "
         "batch 32 on sec-10k).", lambda lib, m, s, g: lib.MultipleNegativesRankingLoss(m), cost=0.75),
    Loss("cached_mnrl", "CachedMNRL", "MNRL's gradients computed in mini-batches (GradCache): ~2 GB of RAM "
         "instead of ~6 at batch 32 (measured on sec-10k) for ~1/3 more compute (it computes embeddings twice).",
         lambda lib, m, s, g: lib.CachedMultipleNegativesRankingLoss(m, mini_batch_size=s.mini_batch_size),
         cost=1.0),
    Loss("matryoshka", "Matryoshka (MNRL)", "MNRL at several vector sizes at once, so the first 256/128/64 "
         "dimensions work on their own.", _matryoshka, cost=0.8),
    Loss("gist", "GIST", "GISTEmbedLoss: MNRL whose in-batch negatives the base model (a frozen guide) finds "
         "too close to the positive are dropped (likely false negatives). Cost assumed, not measured: MNRL's "
         "plus the guide's forward pass (no backward), ~1/3 more.",
         lambda lib, m, s, g: lib.GISTEmbedLoss(m, g), cost=1.0, max_hard_negatives=1, needs_guide=True, family="GIST"),
    Loss("cached_gist", "CachedGIST", "GIST in mini-batches (GradCache), on CachedMNRL's memory. Cost assumed, "
         "not measured: CachedMNRL's plus the guide's forward pass, ~1/4 more.",
         lambda lib, m, s, g: lib.CachedGISTEmbedLoss(m, g, mini_batch_size=s.mini_batch_size),
         cost=1.25, max_hard_negatives=1, needs_guide=True, family="GIST"),
)
LOSS_NAMES: tuple[str, ...] = tuple(x.name for x in LOSSES)
LossName = Literal[LOSS_NAMES]  # the settings field's type: the form's choices
LOSS_LABELS = {x.name: x.label for x in LOSSES}


def loss_of(name: str) -> Loss:
    """The table's entry for ``name``.

    Raises:
        ValueError: an unknown loss, naming the known ones.
    """
    for x in LOSSES:
        if x.name == name:
            return x
    raise ValueError(f"unknown loss {name!r}: use one of {', '.join(LOSS_NAMES)}")


def check_loss(name: str, hard_negatives: int) -> None:
    """Refuse a loss with settings it cannot take (an unknown name; more hard negatives than it takes)."""
    loss = loss_of(name)
    if loss.max_hard_negatives is not None and hard_negatives > loss.max_hard_negatives:
        n = loss.max_hard_negatives
        most = "one hard negative" if n == 1 else f"{n} hard negatives"
        allowed = "0 or 1" if n == 1 else f"{n} or fewer"
        who = f"The {loss.family} losses take" if loss.family else f"The {loss.label} loss takes"
        raise ValueError(f"{who} at most {most} per pair: set hard negatives to {allowed}, or use (cached) MNRL "
                         "for more.")


def losses_help() -> str:
    """Every loss in one help text (the settings field's)."""
    return " ".join(f"{x.label}: {x.help}" for x in LOSSES)
