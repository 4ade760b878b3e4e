"""Ranking metrics over arrays, per query and averaged.

Definitions follow sentence-transformers' InformationRetrievalEvaluator exactly (a test
checks it): Accuracy@k is the hit rate (any relevant doc in the top k), Precision@k =
hits/k, Recall@k = hits/|relevant|, MRR@10 = 1/rank of the first relevant doc within
10, nDCG@10 with binary gains and an ideal list of |relevant| ones, MAP@100 divides by
min(100, |relevant|).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np
import pandas as pd

ACCURACY_KS = (1, 3, 5, 10)
PR_KS = (1, 3, 5, 10)
MRR_K = 10
NDCG_K = 10
MAP_K = 100
DEPTH = max(MAP_K, max(ACCURACY_KS), max(PR_KS), MRR_K, NDCG_K)  # how deep a ranking must go

# The headline metrics, in the order tables show them.
HEADLINE = ["Accuracy@1", "Accuracy@10", "MRR@10", "nDCG@10", "Recall@10", "MAP@100"]


def hit_matrix(ranked_ids: Sequence[Sequence[str]], relevant: Sequence[Collection[str]], depth: int = DEPTH) -> np.ndarray:
    """Which ranked results are relevant.

    Args:
        ranked_ids: per query, doc ids best first (any length; cut at ``depth``).
        relevant: per query, the set of relevant doc ids.
        depth: columns of the result.

    Returns:
        (n_queries, depth) bool; positions past a short ranking are False.
    """
    hits = np.zeros((len(ranked_ids), depth), dtype=bool)
    for i, (ranking, rel) in enumerate(zip(ranked_ids, relevant)):
        rel = set(rel)
        for j, doc in enumerate(ranking[:depth]):
            hits[i, j] = doc in rel
    return hits


def metrics_from_hits(hits: np.ndarray, n_relevant: np.ndarray) -> pd.DataFrame:
    """Per-query metrics from a hit matrix.

    Args:
        hits: (n_queries, depth) bool, column j = rank j+1; depth >= 100 for MAP@100.
        n_relevant: (n_queries,) int, number of relevant docs per query (>= 1).

    Returns:
        DataFrame, one row per query: Accuracy@k, Precision@k, Recall@k, MRR@10, nDCG@10,
        MAP@100 and gold_rank (1-based rank of the first relevant doc, NaN if not in depth).
    """
    hits = np.asarray(hits, dtype=bool)
    n_rel = np.asarray(n_relevant, dtype=float)
    n, depth = hits.shape
    out: dict[str, np.ndarray] = {}
    cum = np.cumsum(hits, axis=1)
    for k in ACCURACY_KS:
        out[f"Accuracy@{k}"] = (cum[:, min(k, depth) - 1] > 0).astype(float)
    for k in PR_KS:
        c = cum[:, min(k, depth) - 1]
        out[f"Precision@{k}"] = c / k
        out[f"Recall@{k}"] = c / n_rel
    first = np.where(hits.any(axis=1), hits.argmax(axis=1), -1)
    in_k = (first >= 0) & (first < MRR_K)
    out["MRR@10"] = np.divide(1.0, first + 1, out=np.zeros(n), where=in_k)
    disc = 1.0 / np.log2(np.arange(2, NDCG_K + 2))
    dcg = (hits[:, :NDCG_K] * disc[: min(NDCG_K, depth)]).sum(axis=1)
    ideal_disc_cum = np.cumsum(disc)
    idcg = ideal_disc_cum[np.minimum(n_rel, NDCG_K).astype(int) - 1]
    out["nDCG@10"] = dcg / idcg
    h = hits[:, :MAP_K]
    prec_at_hit = np.cumsum(h, axis=1) / np.arange(1, h.shape[1] + 1)
    out["MAP@100"] = (prec_at_hit * h).sum(axis=1) / np.minimum(MAP_K, n_rel)
    out["gold_rank"] = np.where(first >= 0, first + 1, np.nan)
    return pd.DataFrame(out)


def per_query_metrics(
    ranked_ids: Sequence[Sequence[str]],
    relevant: Sequence[Collection[str]],
    query_ids: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Per-query metrics from rankings (see ``metrics_from_hits``), indexed by query id."""
    hits = hit_matrix(ranked_ids, relevant)
    df = metrics_from_hits(hits, np.array([max(len(set(r)), 1) for r in relevant]))
    if query_ids is not None:
        df.index = pd.Index(list(query_ids), name="query_id")
    return df


def summarize(per_query: pd.DataFrame) -> dict[str, float]:
    """Mean of every metric column (gold_rank excluded)."""
    return {c: float(per_query[c].mean()) for c in per_query.columns if c != "gold_rank"}


def metrics_frame(systems: dict[str, dict[str, float]], columns: list[str] | None = None) -> pd.DataFrame:
    """Systems x metrics (index: system name, in the given order): the one table every view formats
    (pages, CLI, report, model card)."""
    columns = columns or HEADLINE
    rows = [{"system": name, **{c: float(m[c]) for c in columns}} for name, m in systems.items()]
    return pd.DataFrame(rows, columns=["system", *columns]).set_index("system")
