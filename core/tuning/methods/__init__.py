"""The registry of training methods: each is one :class:`~core.tuning.methods.base.Method`, declared in
its own module of this package; :data:`REGISTERED` lists them all.

Adding a method = one module (its ``METHOD``: settings, fit, saved files, encoder rebuild, bundle, cost,
flags) + one line in :data:`TRAINED` below. The spec (names, settings, validation), the run, the estimate,
the shoot-out (its settings get a field per method), the views, the export and its snippets, the CLI and
the Train page read it.
"""

from __future__ import annotations

from core.tuning.methods import adapter, full, lora, models, nudge
from core.tuning.methods.base import Method
from core.tuning.methods.shootout import shootout_method

TRAINED: tuple[Method, ...] = (  # the methods with a fit of their own, in the order pages and shoot-outs show
    full.METHOD,
    adapter.METHOD,
    nudge.METHOD,
    lora.METHOD,
)
REGISTERED: tuple[Method, ...] = (*TRAINED, shootout_method(TRAINED), models.METHOD)


def method_of(name: str) -> Method:
    """The registered method called ``name``.

    Raises:
        ValueError: no such method (the message names the known ones).
    """
    for m in REGISTERED:
        if m.name == name:
            return m
    raise ValueError(f"unknown method {name!r}: use one of {', '.join(m.name for m in REGISTERED)}")


def names(**flags: bool) -> tuple[str, ...]:
    """The names of the registered methods whose attributes equal ``flags`` (e.g. ``launchable=True``)."""
    return tuple(m.name for m in REGISTERED if all(getattr(m, k) == v for k, v in flags.items()))


def fitted() -> tuple[str, ...]:
    """The methods with a fit (a run of their own: a map, a comparison, an export)."""
    return tuple(m.name for m in REGISTERED if m.kind == "fit")


__all__ = ["REGISTERED", "TRAINED", "Method", "fitted", "method_of", "names"]
