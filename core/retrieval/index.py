"""Search: FAISS inner product over L2-normalised vectors, BM25 (bm25s), and fusion.

Every search returns ``(ids, scores)``: per query, doc ids best first and their scores.
Ties are broken by doc id (ascending), as sentence-transformers' evaluator does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

HNSW_MIN_DOCS = 50_000  # exact search below this (fast enough, no recall loss); HNSW above
HNSW_M = 32
Ranking = tuple[list[list[str]], list[list[float]]]


class DenseIndex:
    """FAISS inner-product index over (n, dim) float32 L2-normalised vectors.

    Args:
        doc_ids: ids of the rows of ``vectors``.
        vectors: (n, dim) float32, L2-normalised.
        kind: "exact" | "hnsw" | "auto" (HNSW from HNSW_MIN_DOCS docs).
    """

    def __init__(self, doc_ids: Sequence[str], vectors: np.ndarray, kind: str = "auto"):
        import faiss

        self.doc_ids = list(doc_ids)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if len(self.doc_ids) != len(vectors):
            raise ValueError("doc_ids and vectors differ in length")
        dim = vectors.shape[1]
        if kind == "auto":
            kind = "hnsw" if len(self.doc_ids) >= HNSW_MIN_DOCS else "exact"
        if kind == "hnsw":
            self.index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            self.index.hnsw.efSearch = 128
        elif kind == "exact":
            self.index = faiss.IndexFlatIP(dim)
        else:
            raise ValueError(f"unknown index kind {kind!r}")
        self.kind = kind
        self.index.add(vectors)

    def search(self, queries: np.ndarray, k: int = 100) -> Ranking:
        """Top ``k`` docs for each row of ``queries`` ((m, dim) float32, normalised)."""
        k = min(k, len(self.doc_ids))
        if k == 0 or len(queries) == 0:
            return [[] for _ in range(len(queries))], [[] for _ in range(len(queries))]
        # One extra candidate lets a tie at the cut be resolved by id like the evaluator.
        kk = min(k + 1, len(self.doc_ids))
        scores, idx = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), kk)
        ids_out, sc_out = [], []
        for row_s, row_i in zip(scores, idx):
            pairs = sorted(
                ((float(s), self.doc_ids[i]) for s, i in zip(row_s, row_i) if i >= 0), key=lambda x: (-x[0], x[1])
            )[:k]
            ids_out.append([d for _, d in pairs])
            sc_out.append([s for s, _ in pairs])
        return ids_out, sc_out


class BM25Index:
    """BM25 (bm25s, Lucene variant, English stopwords) over passage texts."""

    def __init__(self, doc_ids: Sequence[str], texts: Sequence[str], stopwords: str | None = "en"):
        import bm25s

        self.doc_ids = list(doc_ids)
        self.stopwords = stopwords
        self.retriever = bm25s.BM25()
        tokens = bm25s.tokenize(list(texts), stopwords=stopwords, show_progress=False)
        self.retriever.index(tokens, show_progress=False)

    def search(self, queries: Sequence[str], k: int = 100) -> Ranking:
        import bm25s

        k = min(k, len(self.doc_ids))
        if k == 0 or not queries:
            return [[] for _ in queries], [[] for _ in queries]
        tokens = bm25s.tokenize(list(queries), stopwords=self.stopwords, show_progress=False)
        # bm25s needs a non-empty vocabulary hit list per query; empty ones just score 0.
        docs, scores = self.retriever.retrieve(tokens, k=k, show_progress=False, n_threads=1)
        ids_out, sc_out = [], []
        for row_d, row_s in zip(docs, scores):
            pairs = sorted(((float(s), self.doc_ids[int(d)]) for d, s in zip(row_d, row_s)), key=lambda x: (-x[0], x[1]))
            ids_out.append([d for _, d in pairs])
            sc_out.append([s for s, _ in pairs])
        return ids_out, sc_out


RRF_K = 60  # the constant of Cormack et al. (2009); damps the weight of top ranks


def rrf_fuse(rankings: Sequence[Ranking], k: int = 100, rrf_k: int = RRF_K, weights: Sequence[float] | None = None) -> Ranking:
    """Reciprocal rank fusion: score(d) = sum_i w_i / (rrf_k + rank_i(d)), rank 1-based."""
    weights = list(weights) if weights is not None else [1.0] * len(rankings)
    n_q = len(rankings[0][0])
    ids_out, sc_out = [], []
    for q in range(n_q):
        acc: dict[str, float] = {}
        for (ids, _), w in zip(rankings, weights):
            for r, d in enumerate(ids[q]):
                acc[d] = acc.get(d, 0.0) + w / (rrf_k + r + 1)
        top = sorted(acc.items(), key=lambda x: (-x[1], x[0]))[:k]
        ids_out.append([d for d, _ in top])
        sc_out.append([s for _, s in top])
    return ids_out, sc_out


def weighted_fuse(dense: Ranking, sparse: Ranking, alpha: float = 0.5, k: int = 100) -> Ranking:
    """Convex combination of min-max normalised scores: alpha*dense + (1-alpha)*sparse.

    Scores are normalised per query over each system's returned list; a doc missing
    from one list gets 0 from that system.
    """
    n_q = len(dense[0])
    ids_out, sc_out = [], []
    for q in range(n_q):
        acc: dict[str, float] = {}
        for (ids, scores), w in ((dense, alpha), (sparse, 1.0 - alpha)):
            s = np.asarray(scores[q], dtype=float)
            if len(s) == 0:
                continue
            lo, hi = s.min(), s.max()
            norm = (s - lo) / (hi - lo) if hi > lo else np.ones_like(s)
            for d, v in zip(ids[q], norm):
                acc[d] = acc.get(d, 0.0) + w * float(v)
        top = sorted(acc.items(), key=lambda x: (-x[1], x[0]))[:k]
        ids_out.append([d for d, _ in top])
        sc_out.append([s for _, s in top])
    return ids_out, sc_out
