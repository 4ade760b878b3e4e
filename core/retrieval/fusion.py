"""Choosing how the hybrid fuses the tuned dense ranking with BM25, on validation data only.

The candidates are reciprocal rank fusion and weighted score fusion with the dense
weight in 0.1 ... 0.9; the one with the best nDCG@10 on a validation part of the
*training* data wins (ties go to RRF, which needs no weight). The evaluation split is
never looked at, so the hybrid's score on it is not flattered.
"""

from __future__ import annotations

from typing import Any

from core.dataset import QADataset
from core.retrieval import metrics as M
from core.retrieval.evaluation import evaluate_bm25, score_ranking
from core.retrieval.index import Ranking, rrf_fuse, weighted_fuse

ALPHAS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # dense weight candidates of weighted fusion
OBJECTIVE = "nDCG@10"


def fuse(dense: Ranking, sparse: Ranking, choice: dict[str, Any]) -> Ranking:
    if choice["method"] == "rrf":
        return rrf_fuse([dense, sparse], k=M.DEPTH)
    return weighted_fuse(dense, sparse, alpha=float(choice["alpha"]), k=M.DEPTH)


def choose_fusion(val: QADataset | None, dense: Ranking | None) -> dict[str, Any]:
    """The fusion with the best validation nDCG@10.

    Args:
        val: validation questions and passages taken from the training data (None: too little data).
        dense: the tuned system's ranking of ``val`` (rows in ``val.query_ids`` order).

    Returns:
        {"method": "rrf" | "weighted", "alpha": float | None, "scores": {candidate: nDCG@10},
        "n_val": questions used, "note": plain words}.
    """
    if val is None or dense is None or len(val) == 0:
        return {"method": "rrf", "alpha": None, "scores": {}, "n_val": 0,
                "note": "Too few training questions to hold some out: the hybrid uses reciprocal rank fusion."}
    sparse = evaluate_bm25(val).ranking()
    scores = {"rrf": score_ranking("rrf", val, fuse(dense, sparse, {"method": "rrf"})).metrics[OBJECTIVE]}
    for a in ALPHAS:
        ranking = fuse(dense, sparse, {"method": "weighted", "alpha": a})
        scores[f"weighted {a:.1f}"] = score_ranking("w", val, ranking).metrics[OBJECTIVE]
    best = max(scores, key=lambda k: (scores[k], k == "rrf"))
    if best == "rrf":
        choice = {"method": "rrf", "alpha": None}
        how = "reciprocal rank fusion"
    else:
        choice = {"method": "weighted", "alpha": float(best.split()[1])}
        how = f"weighted fusion, dense weight {choice['alpha']:.1f}"
    note = (f"Hybrid: {how}, chosen on {len(val)} validation questions from the training data "
            f"(nDCG@10 {scores[best]:.3f}); the evaluation split was not used.")
    return {**choice, "scores": scores, "n_val": len(val), "note": note}


def hybrid_name(choice: dict[str, Any]) -> str:
    return "hybrid (tuned + BM25)"
