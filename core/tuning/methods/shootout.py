"""The shoot-out: every method that can take part, one after another on one split (``core.tuning.shootout``).

A dispatch method: it fits nothing itself; each method it runs is a run of its own. Its settings are
built from the registered methods (:func:`shootout_method`): ``methods`` (which to run, in order) and one
field per method that can take part, named after it and holding that method's settings
(``spec.settings.full``), so adding a method adds its field here without an edit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from core.tuning.methods.base import Method
from core.tuning.settings import setting

LEGACY_METHODS = ("full", "adapter", "nudge")  # what a shoot-out saved before specs existed ran by default


def shootout_settings(members: Sequence[Method]) -> type:
    """The ``ShootoutSettings`` dataclass for ``members`` (the methods a shoot-out can include)."""
    names = [m.name for m in members]
    default = [m.name for m in members if m.shootout_default]
    fields = [("methods", list[str], setting(default, "The methods to run, in this order (NUDGE is left out, with "
                                                      "the reason, when the evaluation does not search the training "
                                                      "passages).", label="Methods", options=names))]
    fields += [(m.name, m.settings, dataclasses.field(default_factory=m.settings,
                                                       metadata={"help": f"The {m.label.lower()}'s settings."}))
               for m in members]
    cls = dataclasses.make_dataclass("ShootoutSettings", fields, namespace={
        "__doc__": "Every method on one split, quality against time (each method is a run of its own)."})
    cls.__module__ = "core.tuning.spec"  # importable by name from there (``core.tuning.spec.ShootoutSettings``)
    return cls


def shootout_method(members: Sequence[Method]) -> Method:
    """The shoot-out's ``Method`` over ``members`` (the registered methods with ``in_shootout``)."""
    return Method(
        name="shootout",
        label="All methods (shoot-out)",
        caption="Runs the three methods one after another on this split (NUDGE only where it applies) and puts "
        "them beside BM25 and the hybrid: quality against time.",
        settings=shootout_settings([m for m in members if m.in_shootout]),
        kind="dispatch",
        saves=("shootout.json",),
    )
