"""Embedding Tuning Lab core: everything the pages call, importable without streamlit.

Heavy libraries (torch, sentence-transformers, faiss, umap) are imported lazily inside
the functions that need them, so `import core` stays fast.

Errors: user-facing problems with input data raise `core.dataset.DataError` (a
ValueError whose message says what, where and what to do, with `.problems` listing
every reason). Everything else is a bug or an environment problem and propagates.
"""

from __future__ import annotations

from core.dataset import DataError, QADataset

__all__ = ["DataError", "QADataset"]
