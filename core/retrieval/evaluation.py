"""Score retrieval systems on a dataset: dense (a model), BM25, hybrid; compare them.

Each ``evaluate_*`` returns a ``RetrievalResult`` holding the rankings (top 100 per
query), per-query metrics and their means, so pages can show both tables and
per-query wins and losses without running anything again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.dataset import QADataset
from core.retrieval import metrics as M
from core.retrieval.embedding import EmbeddingCache, encode
from core.retrieval.index import BM25Index, DenseIndex, Ranking, rrf_fuse, weighted_fuse

StageProgress = Callable[[str, float], None]  # (what is happening, fraction done 0..1)


@dataclass
class RetrievalResult:
    """Rankings and metrics of one system on one dataset."""

    name: str
    query_ids: list[str]
    ids: list[list[str]]
    scores: list[list[float]]
    per_query: pd.DataFrame  # index query_id; metric columns + gold_rank
    metrics: dict[str, float]
    seconds: float
    # (query vectors (n_q, dim), passage vectors (n_docs, dim)) for dense systems, else None
    vectors: tuple[np.ndarray, np.ndarray] | None = None

    def ranking(self) -> Ranking:
        return self.ids, self.scores


def score_ranking(name: str, ds: QADataset, ranking: Ranking, seconds: float = 0.0) -> RetrievalResult:
    """Metrics of a ranking (per query, in ``ds.query_ids`` order)."""
    qids = ds.query_ids
    ids, scores = ranking
    per_query = M.per_query_metrics(ids, [ds.relevant_docs[q] for q in qids], qids)
    return RetrievalResult(name, qids, ids, scores, per_query, M.summarize(per_query), seconds)


def dense_ranking(
    model,
    ds: QADataset,
    *,
    cache: EmbeddingCache | None = None,
    progress: StageProgress | None = None,
    k: int = M.DEPTH,
    batch_size: int = 32,
) -> tuple[Ranking, np.ndarray, np.ndarray]:
    """Encode corpus and queries (cached) and search them with an exact FAISS index.

    Returns:
        (ranking, query vectors (n_q, dim), corpus vectors (n_docs, dim)), both float32
        L2-normalised, rows in ``ds.query_ids`` / ``ds.corpus`` order.
    """
    doc_ids = list(ds.corpus)
    qids = ds.query_ids

    def stage(label: str, lo: float, hi: float):
        if progress is None:
            return None
        return lambda done, total: progress(f"{label} {done}/{total}", lo + (hi - lo) * done / max(total, 1))

    d_vecs = encode(model, [ds.corpus[d] for d in doc_ids], kind="passage", batch_size=batch_size,
                    cache=cache, progress=stage("Encoding passages", 0.0, 0.85))
    q_vecs = encode(model, [ds.queries[q] for q in qids], kind="query", batch_size=batch_size,
                    cache=cache, progress=stage("Encoding questions", 0.85, 0.98))
    ranking = DenseIndex(doc_ids, d_vecs).search(q_vecs, k)
    if progress:
        progress("Searched", 1.0)
    return ranking, q_vecs, d_vecs


def evaluate_dense(model, ds: QADataset, *, name: str = "dense", cache: EmbeddingCache | None = None,
                   progress: StageProgress | None = None, batch_size: int = 32) -> RetrievalResult:
    """Metrics of a SentenceTransformer used as a dense retriever on ``ds``."""
    t0 = time.perf_counter()
    ranking, q_vecs, d_vecs = dense_ranking(model, ds, cache=cache, progress=progress, batch_size=batch_size)
    res = score_ranking(name, ds, ranking, time.perf_counter() - t0)
    res.vectors = (q_vecs, d_vecs)
    return res


def evaluate_bm25(ds: QADataset, *, name: str = "BM25") -> RetrievalResult:
    """Metrics of BM25 (bm25s) on ``ds``."""
    t0 = time.perf_counter()
    doc_ids = list(ds.corpus)
    index = BM25Index(doc_ids, [ds.corpus[d] for d in doc_ids])
    ranking = index.search([ds.queries[q] for q in ds.query_ids], M.DEPTH)
    return score_ranking(name, ds, ranking, time.perf_counter() - t0)


def evaluate_hybrid(ds: QADataset, dense: RetrievalResult, sparse: RetrievalResult, *, method: str = "rrf",
                    alpha: float = 0.5, name: str | None = None) -> RetrievalResult:
    """Fuse two results on the same dataset (RRF, or weighted with dense weight ``alpha``)."""
    t0 = time.perf_counter()
    if method == "rrf":
        ranking = rrf_fuse([dense.ranking(), sparse.ranking()], k=M.DEPTH)
        label = name or "hybrid (RRF)"
    elif method == "weighted":
        ranking = weighted_fuse(dense.ranking(), sparse.ranking(), alpha=alpha, k=M.DEPTH)
        label = name or f"hybrid (weighted, dense {alpha:.2f})"
    else:
        raise ValueError(f"unknown fusion method {method!r}: use 'rrf' or 'weighted'")
    extra = time.perf_counter() - t0
    return score_ranking(label, ds, ranking, dense.seconds + sparse.seconds + extra)


def metrics_table(results: list[RetrievalResult], columns: list[str] | None = None) -> pd.DataFrame:
    """One row per system, the headline metric columns."""
    columns = columns or M.HEADLINE
    return pd.DataFrame([{"system": r.name, **{c: r.metrics[c] for c in columns}} for r in results]).set_index("system")
