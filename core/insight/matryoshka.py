"""Quality against vector size: a finished run's stored vectors cut to their first d dimensions.

Matryoshka-style truncation needs no re-encoding: the first ``d`` coordinates of each saved vector,
re-normalised, are searched exactly as the run searched (best window when passages were windowed)
and scored with ``core.retrieval.metrics``. Storage is float32: ``d x 4`` bytes per passage (per
window when windowed), shown per million passages. Models trained without a Matryoshka loss lose
more at small ``d``; the table says how much, for the base and the tuned model alike.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.retrieval import metrics as M
from core.retrieval.index import DenseIndex
from core.retrieval.windows import maxp_search

DIMS = (256, 128, 64)  # tried below the model's full size (which is always included)
BYTES_PER_FLOAT = 4


def truncate(vectors: np.ndarray, dim: int) -> np.ndarray:
    """(n, D) -> (n, dim): the first ``dim`` coordinates, each row re-normalised to unit length."""
    v = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32)[:, :dim])
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def quality_by_dimension(view, dims: tuple[int, ...] = DIMS) -> pd.DataFrame:
    """Per model (base, tuned) and dimension: Accuracy@10, MRR@10, nDCG@10 and MB per million passages.

    Args:
        view: a ``core.insight.explore.RunView`` (its saved vectors; nothing is encoded).

    Returns:
        One row per (model, dimension), full size first; columns model, dimensions, Accuracy@10,
        MRR@10, nDCG@10, "MB per 1M passages".
    """
    rows = []
    relevant = [view.eval.relevant_docs[q] for q in view.query_ids]
    for model, q, d, w in (("base", view.base_q, view.base_d, view.base_w),
                           ("tuned", view.tuned_q, view.tuned_d, view.tuned_w)):
        full = q.shape[1]
        per_passage = (len(w) / max(len(d), 1)) if w is not None else 1.0
        for dim in (full, *[x for x in dims if x < full]):
            qt = truncate(q, dim)
            if w is not None:
                ids, _ = maxp_search(qt, truncate(w, dim), view.owner, view.passage_ids, M.DEPTH)
            else:
                ids, _ = DenseIndex(view.passage_ids, truncate(d, dim), kind="exact").search(qt, M.DEPTH)
            m = M.summarize(M.per_query_metrics(ids, relevant))
            rows.append({"model": model, "dimensions": dim, "Accuracy@10": m["Accuracy@10"], "MRR@10": m["MRR@10"],
                         "nDCG@10": m["nDCG@10"],
                         "MB per 1M passages": round(dim * BYTES_PER_FLOAT * per_passage * 1e6 / 1e6, 1)})
    return pd.DataFrame(rows)
