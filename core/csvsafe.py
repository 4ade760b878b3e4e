"""Spreadsheet-safe CSV cells for everything the app hands out as a table (formula injection, OWASP).

A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read as a formula by
Excel, LibreOffice and Google Sheets: a generated or uploaded question such as ``=cmd|' /C calc'!A0``
would run when a downloaded CSV is opened. :func:`neutralise` prefixes such a cell with a single quote
(shown as text, not evaluated); :func:`unguard` removes that quote again when the app reads a CSV it
wrote (:func:`core.ingest.tables.parse_table`), so the questions it trains on are unchanged.

Used by every download path: the pair file (:func:`core.generate.pairs.pair_table`, the CLI's
``generate --out``) and the tables of user text the pages show (their toolbar downloads them as CSV:
:func:`safe_frame`). Datasets, runs and caches keep the text as it was; only what leaves as CSV is guarded.
"""

from __future__ import annotations

from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
GUARD = "'"


def neutralise(value: Any) -> Any:
    """``value`` with a leading ``'`` when it is text a spreadsheet would read as a formula; else unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return GUARD + value
    return value


def unguard(value: str) -> str:
    """Undo :func:`neutralise` on a cell read back from a CSV (a ``'`` before a formula character)."""
    if value.startswith(GUARD) and value[1:2] and value[1] in "=+-@\t\r":
        return value[1:]
    return value


def safe_frame(frame):
    """A copy of a pandas DataFrame whose text cells, column names and index are :func:`neutralise`-d
    (for tables shown with a CSV download)."""
    out = frame.copy()
    for col in out.columns:
        if _texty(out[col]):
            out[col] = out[col].map(neutralise)
    out.columns = [neutralise(c) for c in out.columns]
    if _texty(out.index):
        out.index = out.index.map(neutralise)
    return out


def _texty(values) -> bool:
    """Whether a pandas column or index may hold text (object or string dtype)."""
    import pandas as pd

    return values.dtype == object or pd.api.types.is_string_dtype(values.dtype)


def unguard_frame(frame):
    """Undo :func:`safe_frame` on the text cells of an edited table (what an editor gives back)."""
    out = frame.copy()
    for col in out.columns:
        if _texty(out[col]):
            out[col] = out[col].map(lambda v: unguard(v) if isinstance(v, str) else v)
    return out
