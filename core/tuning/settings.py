"""Typed settings with their help text: the field helper every settings dataclass uses.

A leaf (imports nothing of the project), so each method module (``core.tuning.methods``) and
``core.tuning.spec`` build their dataclasses from it without an import cycle. Every field carries its
help text (why the default) in ``metadata["help"]``, next to the field; ``metadata`` may also carry
``label``, ``min``/``max``/``step`` (number inputs), ``choices`` / ``option_labels``, ``options`` (lists)
and ``advanced`` (shown in a collapsed section) or ``hidden``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import field
from typing import Any


def setting(default: Any, help: str, **meta: Any) -> Any:
    """A dataclass field with its help text (and optional form hints) in ``metadata``."""
    if isinstance(default, list | dict):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help, **meta})
    return field(default=default, metadata={"help": help, **meta})


def field_help(cls: type, name: str) -> str:
    """The help text of field ``name`` of a settings dataclass ('' when it has none)."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f.metadata.get("help", "")
    raise KeyError(f"{cls.__name__} has no setting {name!r}")


def label_of(cls: type, name: str) -> str:
    """The label of field ``name`` (its ``metadata["label"]``, else the name in words)."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    return f.metadata.get("label") or name.replace("_", " ")


def fmt(v: Any) -> str:
    """A setting's value in words (floats short, lists comma-separated)."""
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list):
        return ", ".join(str(x) for x in v)
    return str(v)
