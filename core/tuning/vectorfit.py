"""What the vector-level fits (query adapter, NUDGE) share: input checks, the validation split, the
validation MRR@10 (ranked exactly as ``core.retrieval.metrics`` ranks: ties by passage id), thread
limits and the fit history.

Both fits start from vectors the base model produced (``core.retrieval.embedding.encode``:
float32, L2-normalised rows) and never touch the model, so they run in seconds on a CPU.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from core.retrieval.metrics import MRR_K

Progress = Callable[[str, float], None]  # (message, fraction done 0..1)
ShouldStop = Callable[[], bool]  # True -> stop early (cancel) and return what was learned so far

VAL_FRACTION = 0.15  # enough held-out questions to rank epochs / gammas, most still used to fit
SEED = 42  # the project's default seed: fixed so runs repeat
TIE_EPS = 1e-6  # scores closer than this are a tie (float32 rounding of equal vectors), as in a FAISS search
SCORE_CHUNK = 1024  # query rows scored at once in mrr_at_10: bounds memory on large corpora
# Threads for torch / BLAS while fitting. The matrices are small (a few hundred rows), so thread
# pools cost more than they save; on a busy 2-core machine 2 threads measured ~20x slower than 1.
FIT_THREADS = 1


@dataclass
class FitHistory:
    """What a fit did, for the UI and CLI to plot and report.

    Attributes:
        losses: training loss per epoch (adapter); empty for NUDGE.
        val_scores: validation MRR@10 per epoch (adapter) or per gamma of the grid (NUDGE);
            empty when there were no validation queries.
        chosen: what was kept, e.g. {"epoch": 7, "val_mrr@10": 0.81, "baseline_val_mrr@10": 0.74}
            (epoch 0 = the identity, kept when no epoch beat it) or {"gamma": 0.1, ...}.
        steps: the x values of ``val_scores``: epoch numbers (1-based) or gammas.
        stopped_early: True when the adapter stopped for lack of validation gain.
        cancelled: True when ``should_stop`` ended the fit.
    """

    losses: list[float] = field(default_factory=list)
    val_scores: list[float] = field(default_factory=list)
    chosen: dict = field(default_factory=dict)
    steps: list[float] = field(default_factory=list)
    stopped_early: bool = False
    cancelled: bool = False



def check_inputs(
    queries: np.ndarray, positives: Sequence[Sequence[int]], corpus: np.ndarray
) -> tuple[np.ndarray, list[list[int]], np.ndarray]:
    """Validate and convert (queries (n, dim), positives, corpus (m, dim)) to float32 / int lists."""
    q = np.ascontiguousarray(queries, dtype=np.float32)
    c = np.ascontiguousarray(corpus, dtype=np.float32)
    if q.ndim != 2 or c.ndim != 2:
        raise ValueError(f"queries and corpus must be 2-D (rows = vectors), got {q.shape} and {c.shape}")
    if q.shape[1] != c.shape[1]:
        raise ValueError(f"queries have {q.shape[1]} dimensions but passages {c.shape[1]}: different models?")
    if len(positives) != len(q):
        raise ValueError(f"{len(q)} queries but {len(positives)} lists of positives")
    pos = [sorted({int(j) for j in p}) for p in positives]
    bad = [j for p in pos for j in p if j < 0 or j >= len(c)]
    if bad:
        raise ValueError(f"positive index {bad[0]} is outside the corpus (0..{len(c) - 1})")
    return q, pos, c


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (fit, val) of ``n`` items; val is ``round(n * val_fraction)`` of them, at least 1
    when val_fraction > 0 and n >= 2, and never all of them."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n_val = int(round(n * val_fraction))
    if val_fraction > 0 and n >= 2:
        n_val = max(n_val, 1)
    n_val = min(n_val, max(n - 1, 0))
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def tie_order(ids: Sequence[str] | None, m: int) -> np.ndarray:
    """(m,) int: each corpus row's position when rows are sorted by id, the order in which
    ``core.retrieval.index`` and the evaluator break score ties (row order when ``ids`` is None)."""
    if ids is None:
        return np.arange(m)
    if len(ids) != m:
        raise ValueError(f"{len(ids)} ids for {m} corpus rows")
    return np.argsort(np.argsort(np.asarray(ids, dtype=object), kind="stable"), kind="stable")


def reciprocal_ranks(
    query_vecs: np.ndarray, positives: Sequence[Sequence[int]], corpus_vecs: np.ndarray, k: int = MRR_K,
    order: np.ndarray | None = None,
) -> np.ndarray:
    """1/rank of the first relevant passage (0 beyond rank k), per query with >= 1 positive.

    Ranked as ``core.retrieval.metrics`` ranks a search: by score, ties broken by ``order``
    (``tie_order``; row order by default). A passage tied with the best positive but earlier in
    that order ranks before it, as it would in the evaluation.
    """
    q = np.asarray(query_vecs, dtype=np.float32)
    c = np.asarray(corpus_vecs, dtype=np.float32)
    order = np.arange(len(c)) if order is None else np.asarray(order)
    rows = [i for i, p in enumerate(positives) if len(p)]
    out = np.zeros(len(rows), dtype=np.float64)
    for start in range(0, len(rows), SCORE_CHUNK):
        part = rows[start : start + SCORE_CHUNK]
        scores = q[part] @ c.T
        mask = np.zeros(scores.shape, dtype=bool)
        for r, i in enumerate(part):
            mask[r, list(positives[i])] = True
        best = np.where(mask, scores, -np.inf).max(axis=1, keepdims=True)
        tied = np.abs(scores - best) <= TIE_EPS  # float32 products of equal vectors may differ in the last bit
        winner = np.where(mask & tied, order[None, :], np.iinfo(np.int64).max).min(axis=1, keepdims=True)
        rank = 1 + (scores > best + TIE_EPS).sum(axis=1) + (tied & (order[None, :] < winner)).sum(axis=1)
        out[start : start + len(part)] = np.where(rank <= k, 1.0 / rank, 0.0)
    return out


def mrr_at_10(query_vecs: np.ndarray, positives: Sequence[Sequence[int]], corpus_vecs: np.ndarray,
              corpus_ids: Sequence[str] | None = None) -> float:
    """MRR@10 by brute-force inner product, exactly as ``core.retrieval.metrics`` scores a search.

    Args:
        query_vecs: (n, dim) float32 query vectors.
        positives: per query, row indices of its relevant passages in ``corpus_vecs``.
        corpus_vecs: (m, dim) float32 passage vectors.
        corpus_ids: the rows' passage ids: score ties are broken by id, as the evaluation does
            (None: by row order).

    Returns:
        Mean over queries with at least one positive of 1/rank of the first relevant
        passage within the top 10 (0 if none); 0.0 when no query has a positive.
    """
    with limited_threads():
        return mean_rr(query_vecs, positives, corpus_vecs, tie_order(corpus_ids, len(corpus_vecs)))


def mean_rr(query_vecs: np.ndarray, positives: Sequence[Sequence[int]], corpus_vecs: np.ndarray,
            order: np.ndarray | None = None) -> float:
    rr = reciprocal_ranks(query_vecs, positives, corpus_vecs, order=order)
    return float(rr.mean()) if len(rr) else 0.0


@contextmanager
def limited_threads(n: int = FIT_THREADS, torch_too: bool = False) -> Iterator[None]:
    """Run the block with ``n`` BLAS (and torch) threads; the previous settings come back after.

    Process-wide while it lasts (thread counts are global), restored on exit. BLAS is limited
    through threadpoolctl when it is installed (it comes with scikit-learn); else left alone.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: only speed depends on it
        threadpool_limits = None
    limiter = threadpool_limits(limits=n, user_api="blas") if threadpool_limits else None
    old = None
    if torch_too:
        import torch

        old = torch.get_num_threads()
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if old is not None:
            import torch

            torch.set_num_threads(old)
        if limiter is not None:
            limiter.restore_original_limits()


def report(progress: Progress | None, message: str, fraction: float) -> None:
    if progress is not None:
        progress(message, float(min(max(fraction, 0.0), 1.0)))

