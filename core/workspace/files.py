"""File primitives of the workspace: atomic writes (temporary file + ``os.replace``), JSON and JSONL
reads, the owner-only permission policy and the disk-full message. Everything under the workspace is
written through these (see ``core.workspace.store`` for the policy)."""

from __future__ import annotations

import errno
import io
import json
import os
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

OWNER_ONLY_FILE = 0o600
OWNER_ONLY_DIR = 0o700


def owner_only(path: str | Path) -> None:
    """Make ``path`` readable by its owner only (0600 for a file, 0700 for a folder): the workspace's policy."""
    p = Path(path)
    os.chmod(p, OWNER_ONLY_DIR if p.is_dir() else OWNER_ONLY_FILE)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_save_npy(path: str | Path, array: Any) -> None:
    """``np.save`` of ``array`` (no pickle) through :func:`atomic_write_bytes`: never half-written."""
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


DISK_FULL = "no space left on the workspace disk"


def disk_problem(exc: BaseException) -> str | None:
    """A user message when ``exc`` (or its cause) says the workspace disk is full; else None.

    ``OSError`` ENOSPC / EDQUOT, and SQLite's "database or disk is full" or "disk I/O error" (what a
    WAL database says when its disk fills up).
    """
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return f"{DISK_FULL} ({e.strerror or e}). Free some space (delete old runs or the cache folder) and run again."
        if isinstance(e, sqlite3.OperationalError) and ("disk is full" in str(e) or "disk I/O error" in str(e)):
            return f"{DISK_FULL} (the catalog could not be written: {e}). Free some space (delete old runs or the " \
                   "cache folder) and run again."
        e = e.__cause__ or e.__context__
    return None


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, ensure_ascii=False, indent=1, default=str).encode("utf-8"))


def read_json(path: str | Path, default: Any = None) -> Any:
    p = Path(path)
    if not p.exists():
        return default
    return json.loads(p.read_text(encoding="utf-8"))


def append_jsonl(path: str | Path, obj: Any) -> None:
    """Append one JSON line (a single write call, so a reader never sees half a line)."""
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")


def read_jsonl(path: str | Path) -> list[Any]:
    """All complete lines of a JSONL file (a torn last line is ignored)."""
    p = Path(path)
    if not p.exists():
        return []
    out = []
    for line in p.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out
