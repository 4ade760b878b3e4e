"""Reading .npy / .npz files without Python's ``ast`` module, so background threads can read them safely.

``np.load`` parses each array's header with ``ast.literal_eval``. On CPython 3.11 before 3.11.8 the
``ast`` module keeps one recursion counter for the whole interpreter, so two threads building ASTs at
once can fail with ``SystemError: AST constructor recursion depth mismatch`` (CPython gh-106905):
here the app's prefetch thread (reading a run's vectors and maps) and Streamlit's main thread
(parsing a page script) did, once in a test run. The headers numpy writes have one fixed shape
(``{'descr': '<f4', 'fortran_order': False, 'shape': (3, 384), }``), read here with a regular
expression; anything else (object arrays, structured dtypes, other writers) falls back to ``np.load``.
"""

from __future__ import annotations

import re
import struct
import zipfile
from pathlib import Path
from typing import IO

import numpy as np

_MAGIC = b"\x93NUMPY"
_HEADER = re.compile(r"^\{'descr': '([<>|=][a-zA-Z]\d*)', 'fortran_order': (True|False), 'shape': \(([\d, ]*)\), \}\s*$")


def _header(fh: IO[bytes]) -> tuple[np.dtype, bool, tuple[int, ...]] | None:
    """(dtype, fortran order, shape) of the .npy stream ``fh`` (left at the data), None when not the usual form."""
    if fh.read(6) != _MAGIC:
        return None
    major = fh.read(2)[0]
    size = struct.unpack("<H" if major == 1 else "<I", fh.read(2 if major == 1 else 4))[0]
    m = _HEADER.match(fh.read(size).decode("latin1"))
    if not m:
        return None
    dtype = np.dtype(m.group(1))
    if dtype.hasobject:
        return None
    return dtype, m.group(2) == "True", tuple(int(x) for x in m.group(3).split(",") if x.strip())


def load_npy(path: str | Path, mmap: bool = False) -> np.ndarray:
    """The array in ``path`` (memory-mapped, read-only, with ``mmap``), as ``np.load(..., allow_pickle=False)``."""
    with open(path, "rb") as fh:
        head = _header(fh)
        offset = fh.tell()
        if head is not None and not mmap:
            dtype, fortran, shape = head
            count = int(np.prod(shape)) if shape else 1
            return np.fromfile(fh, dtype=dtype, count=count).reshape(shape, order="F" if fortran else "C")
    if head is None:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    dtype, fortran, shape = head
    if int(np.prod(shape)) == 0:
        return np.zeros(shape, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of the .npz file ``path`` (read whole), as ``dict(np.load(path, allow_pickle=False))``."""
    out: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            key = name[:-4] if name.endswith(".npy") else name
            with zf.open(name) as fh:
                head = _header(fh)
                if head is None:
                    break
                dtype, fortran, shape = head
                data = fh.read()
            count = int(np.prod(shape)) if shape else 1
            out[key] = np.frombuffer(data, dtype=dtype, count=count).reshape(shape, order="F" if fortran else "C").copy()
        else:
            return out
    with np.load(path, allow_pickle=False) as z:  # an unusual header: numpy's own reader
        return {k: z[k] for k in z.files}
