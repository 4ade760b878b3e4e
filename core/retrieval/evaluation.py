"""Score retrieval systems on a dataset: dense (a model), BM25, hybrid; and what each was scored under.

Each ``evaluate_*`` returns a ``RetrievalResult`` holding the rankings (top 100 per query),
per-query metrics and their means, and the ``Conditions`` it was measured under, so pages can
show tables and per-query wins and losses without running anything again, and a comparison
can check that its two sides saw the same passages, the same questions and the same passage
token limit.

A dense system is always scored through ``dense_ranking``, which sets the model's passage
token limit before encoding: no caller can score a base model at one limit and a tuned model
at another by forgetting a line.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd

from core.dataset import QADataset, corpus_unit
from core.retrieval import metrics as M
from core.retrieval.backends import backend_of
from core.retrieval.embedding import EmbeddingCache, encode
from core.retrieval.index import BM25Index, DenseIndex, Ranking, rrf_fuse, weighted_fuse
from core.retrieval.windows import maxp_search, split_windows

logger = logging.getLogger(__name__)

PASSAGE_TOKENS = 512  # the default token limit passages are read at for search (the run spec's Scoring default)

Progress = Callable[[int, int, str], None]  # (done, total, unit), e.g. (120, 395, "passages")


def _digest(items) -> str:
    h = hashlib.sha256()
    for k, v in items:
        h.update(f"{k}\x1f{v}\x1e".encode("utf-8", "surrogatepass"))
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class Conditions:
    """What one system was measured under. Two systems compare fairly only when these match
    (``passage_tokens`` and ``model`` are None for systems that read no model: BM25).

    Attributes:
        passages: passages searched; ``passages_fingerprint`` hashes their ids and texts.
        questions: questions asked; ``questions_fingerprint`` hashes ids, texts and gold passages.
        passage_tokens: the token limit passages were encoded with (dense systems).
        model: the model that encoded them (a folder, hub id, or a run's tuned model).
        backend: what ran the model (``core.retrieval.backends``: torch, onnx, onnx-int8); None for
            systems that read no model, and for dense systems scored before backends existed (torch).
    """

    passages: int
    passages_fingerprint: str
    questions: int
    questions_fingerprint: str
    passage_tokens: int | None = None
    model: str | None = None
    windows: str | None = None  # e.g. "512-token windows, 64 overlap, best window"; None: passages cut at the limit
    index: str = "exact"  # how passages were searched: "exact", or "HNSW (recall@10 vs exact …)" on large collections
    backend: str | None = None

    @classmethod
    def of(cls, ds: QADataset, passage_tokens: int | None = None, model: str | None = None,
           overlap: int | None = None, index: str = "exact", backend: str | None = None) -> Conditions:
        qids = ds.query_ids
        return cls(
            passages=len(ds.corpus),
            passages_fingerprint=_digest(sorted(ds.corpus.items())),
            questions=len(qids),
            questions_fingerprint=_digest(sorted((q, ds.queries[q] + "|" + ",".join(ds.relevant_docs[q])) for q in qids)),
            passage_tokens=passage_tokens,
            model=model,
            windows=windows_label(passage_tokens, overlap) if passage_tokens and overlap is not None else None,
            index=index,
            backend=backend,
        )

    def to_dict(self) -> dict:
        return asdict(self)


def windows_label(passage_tokens: int, overlap: int) -> str:
    return f"{passage_tokens}-token windows, {overlap} overlap, best window"


def unfair(a: Conditions, b: Conditions) -> list[str]:
    """Why two systems' scores do not compare (empty when they do). Dense systems must also share
    the passage token limit, the windows and the encoding backend; a dense system against BM25 only
    the passages and questions."""
    out = []
    if a.passages_fingerprint != b.passages_fingerprint:
        out.append(f"different passages searched ({a.passages} vs {b.passages})")
    if a.questions_fingerprint != b.questions_fingerprint:
        out.append(f"different questions ({a.questions} vs {b.questions})")
    if a.passage_tokens is not None and b.passage_tokens is not None:
        if a.passage_tokens != b.passage_tokens:
            out.append(f"different passage token limits ({a.passage_tokens} vs {b.passage_tokens})")
        if a.windows != b.windows:
            out.append(f"different passage windows ({a.windows or 'cut at the limit'} vs {b.windows or 'cut at the limit'})")
        backend_a, backend_b = a.backend or "torch", b.backend or "torch"  # unrecorded: before backends, torch
        if backend_a != backend_b:
            out.append(f"different encoding backends ({backend_a} vs {backend_b})")
        if a.index.split()[0] != b.index.split()[0]:
            out.append(f"different search indexes ({a.index} vs {b.index})")
    return out


@dataclass
class RetrievalResult:
    """Rankings and metrics of one system on one dataset, and what it was measured under."""

    name: str
    query_ids: list[str]
    ids: list[list[str]]
    scores: list[list[float]]
    per_query: pd.DataFrame  # index query_id; metric columns + gold_rank
    metrics: dict[str, float]
    seconds: float
    conditions: Conditions
    # (query vectors (n_q, dim), passage vectors (n_docs, dim)) for dense systems, else None; with windowed
    # passages a passage's vector is its first window's
    vectors: tuple[np.ndarray, np.ndarray] | None = None
    # (window vectors (W, dim), owner (W,)) when passages were windowed (core.retrieval.windows)
    windows: tuple[np.ndarray, np.ndarray] | None = None

    def ranking(self) -> Ranking:
        return self.ids, self.scores


def score_ranking(name: str, ds: QADataset, ranking: Ranking, seconds: float = 0.0,
                  conditions: Conditions | None = None) -> RetrievalResult:
    """Metrics of a ranking (per query, in ``ds.query_ids`` order)."""
    qids = ds.query_ids
    ids, scores = ranking
    per_query = M.per_query_metrics(ids, [ds.relevant_docs[q] for q in qids], qids)
    return RetrievalResult(name, qids, ids, scores, per_query, M.summarize(per_query), seconds,
                           conditions or Conditions.of(ds))


def encode_dataset(model, ds: QADataset, passage_tokens: int, *, cache: EmbeddingCache | None = None,
                   progress: Progress | None = None, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Passage and question vectors of ``ds`` with the model reading ``passage_tokens`` tokens.

    Sets ``model.max_seq_length = passage_tokens`` (and leaves it so).

    Returns:
        (query vectors (n_q, dim), passage vectors (n_docs, dim)): float32, L2-normalised, rows in
        ``ds.query_ids`` / ``ds.corpus`` order.
    """
    model.max_seq_length = int(passage_tokens)
    doc_ids = list(ds.corpus)
    unit = corpus_unit(ds)  # a training split's cut copies of passages are not passages
    d_vecs = encode(model, [ds.corpus[d] for d in doc_ids], kind="passage", batch_size=batch_size, cache=cache,
                    progress=(lambda done, total: progress(done, total, unit)) if progress else None)
    q_vecs = encode(model, [ds.queries[q] for q in ds.query_ids], kind="query", batch_size=batch_size, cache=cache,
                    progress=(lambda done, total: progress(done, total, "questions")) if progress else None)
    return q_vecs, d_vecs


def encode_windows(model, ds: QADataset, passage_tokens: int, overlap: int, *, cache: EmbeddingCache | None = None,
                   progress: Progress | None = None, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Every passage of ``ds`` split into ``passage_tokens``-token windows (``core.retrieval.windows``)
    and encoded (cached by window text). Sets ``model.max_seq_length = passage_tokens``.

    Returns:
        (window vectors (W, dim) float32 L2-normalised, owner (W,): each window's passage row).
    """
    model.max_seq_length = int(passage_tokens)
    wins = split_windows(list(ds.corpus.values()), model.tokenizer, int(passage_tokens), int(overlap))
    vecs = encode(model, wins.texts, kind="passage", batch_size=batch_size, cache=cache,
                  progress=(lambda done, total: progress(done, total, "passage windows")) if progress else None)
    return vecs, wins.owner


@dataclass
class DenseSearch:
    """What ``dense_ranking`` found: the ranking, the vectors it searched with and how it searched.

    Attributes:
        ranking: per question, passage ids best first and their scores.
        queries: (n_q, dim) question vectors; passages: (n_docs, dim) passage vectors (the first window's
            when windowed); both float32 L2-normalised, rows in ``ds.query_ids`` / ``ds.corpus`` order.
        windows: (window vectors (W, dim), owner (W,)) when passages were windowed, else None.
        index: "exact", or the approximate index and its measured recall (``DenseIndex.describe``).
    """

    ranking: Ranking
    queries: np.ndarray
    passages: np.ndarray
    windows: tuple[np.ndarray, np.ndarray] | None
    index: str = "exact"


def dense_ranking(model, ds: QADataset, passage_tokens: int, *, cache: EmbeddingCache | None = None,
                  progress: Progress | None = None, k: int = M.DEPTH, batch_size: int = 32,
                  overlap: int | None = None) -> DenseSearch:
    """Encode ``ds`` at ``passage_tokens`` (cached) and search it (exactly up to
    ``core.retrieval.index.HNSW_MIN_DOCS`` passages, then HNSW with its recall measured).

    With ``overlap`` (windowed passages) every window is encoded and a passage scores as its best
    window (exact); a passage's vector is then its first window's.
    """
    if overlap is None:
        q_vecs, d_vecs = encode_dataset(model, ds, passage_tokens, cache=cache, progress=progress,
                                        batch_size=batch_size)
        index = DenseIndex(list(ds.corpus), d_vecs)
        return DenseSearch(index.search(q_vecs, k), q_vecs, d_vecs, None, index.describe(q_vecs))
    w_vecs, owner = encode_windows(model, ds, passage_tokens, overlap, cache=cache, progress=progress,
                                   batch_size=batch_size)
    q_vecs = encode(model, [ds.queries[q] for q in ds.query_ids], kind="query", batch_size=batch_size, cache=cache,
                    progress=(lambda done, total: progress(done, total, "questions")) if progress else None)
    d_vecs = w_vecs[first_windows(owner, len(ds.corpus))]
    return DenseSearch(maxp_search(q_vecs, w_vecs, owner, list(ds.corpus), k), q_vecs, d_vecs, (w_vecs, owner))


def first_windows(owner: np.ndarray, n: int) -> np.ndarray:
    """(n,) the row of each passage's first window."""
    return np.searchsorted(owner, np.arange(n))


def model_name(model) -> str:
    """What a loaded model is called in results (its folder or hub id, as the user gave it)."""
    return str(getattr(model, "_etl_name", None) or type(model).__name__)


def evaluate_dense(model, ds: QADataset, *, passage_tokens: int, name: str = "dense",
                   cache: EmbeddingCache | None = None, progress: Progress | None = None,
                   batch_size: int = 32, label: str | None = None, overlap: int | None = None) -> RetrievalResult:
    """Metrics of a SentenceTransformer used as a dense retriever on ``ds``, passages read at
    ``passage_tokens`` tokens (windowed with ``overlap`` when given, see ``dense_ranking``). ``label``
    names the model in the conditions (default: its folder)."""
    t0 = time.perf_counter()
    found = dense_ranking(model, ds, passage_tokens, cache=cache, progress=progress, batch_size=batch_size,
                          overlap=overlap)
    res = score_ranking(name, ds, found.ranking, time.perf_counter() - t0,
                        Conditions.of(ds, int(passage_tokens), label or model_name(model), overlap, found.index,
                                      backend=backend_of(model)))
    res.vectors, res.windows = (found.queries, found.passages), found.windows
    logger.info("%s: nDCG@10 %.4f on %d questions, %d passages at %d tokens", name, res.metrics["nDCG@10"],
                len(ds), len(ds.corpus), passage_tokens)
    return res


def evaluate_vectors(name: str, ds: QADataset, q_vecs: np.ndarray, d_vecs: np.ndarray, conditions: Conditions,
                     seconds: float = 0.0, windows: tuple[np.ndarray, np.ndarray] | None = None) -> RetrievalResult:
    """Metrics of precomputed vectors (an adapter's queries, NUDGE's passages) on ``ds``; with
    ``windows`` (window vectors, owner) passages score by their best window."""
    if windows is None:
        index = DenseIndex(list(ds.corpus), d_vecs)
        ranking = index.search(q_vecs, M.DEPTH)
        conditions = replace(conditions, index=index.describe(q_vecs))
    else:
        ranking = maxp_search(q_vecs, windows[0], windows[1], list(ds.corpus), M.DEPTH)
    res = score_ranking(name, ds, ranking, seconds, conditions)
    res.vectors, res.windows = (q_vecs, d_vecs), windows
    return res


def evaluate_bm25(ds: QADataset, *, name: str = "BM25") -> RetrievalResult:
    """Metrics of BM25 (bm25s) on ``ds`` (whole passages, no token limit)."""
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
    return score_ranking(label, ds, ranking, dense.seconds + sparse.seconds + extra, dense.conditions)
