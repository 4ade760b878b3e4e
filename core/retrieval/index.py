"""Search: FAISS inner product over L2-normalised vectors, BM25 (bm25s), and fusion.

Every search returns ``(ids, scores)``: per query, doc ids best first and their scores.
Ties are broken by doc id (ascending), as sentence-transformers' evaluator does. BM25 returns
only passages that share a term with the query, so its lists may be shorter than ``k`` or empty.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.retrieval.terms import terms_batch

# Exact search up to this many passages: at 100k x 384 dims a batch of 1,000 questions is searched exactly in
# seconds on 2 cores (bench/bench_scale.py), with no recall lost; above it, HNSW with its recall measured.
HNSW_MIN_DOCS = 200_000
HNSW_M = 32
# Search breadth. bench/bench_scale.py, 790 questions over 100k passages (M 32): efSearch 128 gave recall@10
# 0.983 against exact search, 256 gave 0.993 (0.6 s), 512 gave 0.997; at 30k, 128 already gave 0.996.
HNSW_EF_SEARCH = 256
RECALL_SAMPLE = 200  # questions whose HNSW top 10 is checked against exact search
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
            self.index.hnsw.efSearch = HNSW_EF_SEARCH
        elif kind == "exact":
            self.index = faiss.IndexFlatIP(dim)
        else:
            raise ValueError(f"unknown index kind {kind!r}")
        self.kind = kind
        self.index.add(vectors)
        self._vectors = vectors if kind != "exact" else None  # kept to measure recall against exact search

    def recall_at_10(self, queries: np.ndarray, sample: int = RECALL_SAMPLE, seed: int = 0) -> float:
        """Share of the exact top 10 that this index returns, over a sample of ``queries`` (1.0 when exact)."""
        if self._vectors is None or len(queries) == 0:
            return 1.0
        rng = np.random.default_rng(seed)
        rows = rng.choice(len(queries), size=min(sample, len(queries)), replace=False)
        q = np.ascontiguousarray(queries[rows], dtype=np.float32)
        k = min(10, len(self.doc_ids))
        exact = np.argsort(-(q @ self._vectors.T), axis=1)[:, :k]
        _, got = self.index.search(q, k)
        return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(exact, got)]))

    def describe(self, queries: np.ndarray | None = None) -> str:
        """'exact', or 'HNSW (recall@10 vs exact 0.997 on 200 questions)' when ``queries`` are given."""
        if self.kind == "exact":
            return "exact"
        if queries is None or len(queries) == 0:
            return f"HNSW (M {HNSW_M}, efSearch {self.index.hnsw.efSearch})"
        n = min(RECALL_SAMPLE, len(queries))
        return f"HNSW (recall@10 vs exact {self.recall_at_10(queries):.3f} on {n} questions)"

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
    """BM25 (bm25s, Lucene variant) over passage texts, tokenised by :func:`core.retrieval.terms.terms`.

    bm25s is the engine; the terms are ours, so BM25 search and answer linking
    (:mod:`core.ingest.linking`) count the same words. Only passages sharing at least one term
    with the query are returned: a passage scoring 0 was not found by BM25, and padding a ranking
    with such passages would earn them credit in rank fusion.

    Args:
        doc_ids: ids of the passages, in the order of ``texts``.
        texts: the passages.
    """

    def __init__(self, doc_ids: Sequence[str], texts: Sequence[str]):
        import bm25s

        self.doc_ids = list(doc_ids)
        if len(self.doc_ids) != len(texts):
            raise ValueError("doc_ids and texts differ in length")
        self.retriever = bm25s.BM25()
        if self.doc_ids:  # bm25s cannot index nothing; an empty index finds nothing
            # A passage without a term still needs a row; the empty token "" never occurs in a query.
            self.retriever.index([t or [""] for t in terms_batch(texts)], show_progress=False)

    def scores(self, query_terms: list[str]) -> np.ndarray:
        """BM25 score of every passage for one query's terms.

        Args:
            query_terms: terms as :func:`core.retrieval.terms.terms` gives them (unknown ones are ignored).

        Returns:
            (n_docs,) float32, in ``doc_ids`` order; all 0 when no term is in the index.
        """
        if not self.doc_ids:
            return np.zeros(0, dtype=np.float32)
        known = [t for t in query_terms if t and t in self.retriever.vocab_dict]
        if not known:
            return np.zeros(len(self.doc_ids), dtype=np.float32)
        return np.asarray(self.retriever.get_scores(known), dtype=np.float32)

    def search(self, queries: Sequence[str], k: int = 100) -> Ranking:
        """Top ``k`` passages with a score above 0 for each query, best first (ties by id).

        A query sharing no term with any passage gets an empty list.
        """
        ids_out: list[list[str]] = []
        sc_out: list[list[float]] = []
        for query_terms in terms_batch(queries):
            scores = self.scores(query_terms)
            hit = np.flatnonzero(scores > 0)
            if k > 0 and len(hit) > k:
                cut = np.partition(scores[hit], len(hit) - k)[len(hit) - k]  # the k-th best score
                hit = hit[scores[hit] >= cut]  # keeps every tie at the cut for the id tie-break
            pairs = sorted(((float(scores[i]), self.doc_ids[i]) for i in hit), key=lambda x: (-x[0], x[1]))
            pairs = pairs[: max(k, 0)]
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


def top_k(scores: np.ndarray, doc_ids: Sequence[str], k: int = 100) -> Ranking:
    """Best ``k`` columns of each row of a (n, m) score matrix, ties broken by doc id (as the evaluator).

    Exact: every column tied with the k-th best score is considered before the cut.
    """
    scores = np.asarray(scores)
    m = scores.shape[1] if scores.ndim == 2 else 0
    k = min(k, m)
    ids_out: list[list[str]] = []
    sc_out: list[list[float]] = []
    for row in scores:
        if k == 0:
            ids_out.append([])
            sc_out.append([])
            continue
        part = np.argpartition(-row, k - 1)[:k] if k < m else np.arange(m)
        cut = row[part].min()
        cand = np.flatnonzero(row >= cut)
        pairs = sorted(((float(row[i]), doc_ids[i]) for i in cand), key=lambda x: (-x[0], x[1]))[:k]
        ids_out.append([d for _, d in pairs])
        sc_out.append([s for s, _ in pairs])
    return ids_out, sc_out
