"""2-D maps of query and passage embeddings before and after tuning, and the numbers beside them.

This file owns the projection side of the "embedding map" view: picking a deterministic sample of
queries and passages, fitting one UMAP layout on the base model's vectors and a second on the tuned
model's vectors in the same frame (see :func:`fit_projection`), caching the result to disk without
pickle, and the small statistics shown next to the maps (:func:`alignment_stats`,
:func:`rank_movement`). Drawing lives in ``core.insight.plots``; this file never draws and never loads a model.

umap-learn is imported inside :func:`fit_projection` only: importing it takes seconds (numba).
"""

from __future__ import annotations

import json
import os
import time
import warnings
import zipfile
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core.npyio import load_npz

Progress = Callable[[str, float], None]  # (message, fraction done 0..1)

SPACES = ("base", "tuned")
KINDS = ("query", "passage")
MIN_POINTS = 4  # UMAP's spectral initialisation needs a handful of points; fewer is no map anyway
_FORMAT = 2  # version of the saved file layout (2: every question kept, ring depth saved)
_UMAP_EXACT_BELOW = 4096  # UMAP computes all pairwise distances below this many points


@dataclass
class ProjectionParams:
    """UMAP settings and the sample cap; equal params on equal vectors give an equal map."""

    # UMAP's own default: balances local clusters against global layout for a few thousand points.
    n_neighbors: int = 15
    # UMAP's default; small enough that passages about one topic visibly clump.
    min_dist: float = 0.1
    # Points per map: every evaluation question and the passages a page can highlight are always
    # drawn; other passages fill the map up to this many. ~1,500 fits in well under 20 s on 2 cores
    # and is about as many as a browser scatter plot stays readable and responsive with.
    sample: int = 1500
    seed: int = 42

    def key(self) -> str:
        """Short stable string for cache file names, e.g. ``"n15-d0.1-s1500-r42"``."""
        return f"n{self.n_neighbors}-d{self.min_dist:g}-s{self.sample}-r{self.seed}"


@dataclass
class Projection:
    """Both 2-D maps of one sample.

    Attributes:
        points: one row per point per space, columns ``space`` ("base" | "tuned"), ``kind``
            ("query" | "passage"), ``id`` (str), ``x``, ``y`` (float32). Both spaces hold the
            same (kind, id) rows in the same order, and the tuned frame is aligned onto the base
            one, so coordinates are comparable across spaces.
        params: the settings used.
        seconds: wall time of the fit (both maps and the alignment).
    """

    points: pd.DataFrame
    params: ProjectionParams = field(default_factory=ProjectionParams)
    seconds: float = 0.0
    ring_depth: int = 10  # top passages per question guaranteed on the map (RunView.map_keep)

    def save(self, path: str | os.PathLike) -> Path:
        """Write to ``path`` (an .npz file: columns as plain arrays plus a JSON header; no pickle).

        The file is written under a temporary name and renamed, so a reader never sees half a file.

        Returns:
            The path written.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"format": _FORMAT, "params": asdict(self.params), "seconds": float(self.seconds),
                "ring_depth": int(self.ring_depth)}
        p = self.points
        arrays = {
            "space": np.asarray(p["space"].astype(str).to_numpy(), dtype=str),
            "kind": np.asarray(p["kind"].astype(str).to_numpy(), dtype=str),
            "id": np.asarray(p["id"].astype(str).to_numpy(), dtype=str),
            "x": p["x"].to_numpy(dtype=np.float32),
            "y": p["y"].to_numpy(dtype=np.float32),
            "meta": np.asarray(json.dumps(meta)),
        }
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Projection:
        """Read a file written by :meth:`save` (``allow_pickle=False``).

        Raises:
            ValueError: the file is not a projection file of a known format.
        """
        try:  # no np.load: its header parser (ast) is not safe beside another thread (core.npyio)
            z = load_npz(Path(path))
        except (OSError, zipfile.BadZipFile, ValueError) as e:
            raise ValueError(f"{path} is not a saved projection ({e})") from None
        try:
            meta = json.loads(str(z["meta"]))
            cols = {k: z[k] for k in ("space", "kind", "id", "x", "y")}
        except KeyError as e:
            raise ValueError(f"{path} is not a saved projection (missing {e})") from None
        if meta.get("format") != _FORMAT:
            raise ValueError(f"{path}: unknown projection format {meta.get('format')!r}")
        points = pd.DataFrame(
            {
                "space": cols["space"].astype(str).tolist(),
                "kind": cols["kind"].astype(str).tolist(),
                "id": cols["id"].astype(str).tolist(),
                "x": cols["x"].astype(np.float32),
                "y": cols["y"].astype(np.float32),
            }
        )
        return cls(points, ProjectionParams(**meta["params"]), float(meta["seconds"]), int(meta.get("ring_depth", 10)))


def sample_points(
    query_ids: Sequence[str],
    passage_ids: Sequence[str],
    sample: int,
    seed: int = 42,
    keep_passage_ids: Collection[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Which queries and passages go on the map.

    Every query and every passage in ``keep_passage_ids`` (the queries' gold passages and the
    passages a page may ring) is always kept; only the other passages are sampled, at random
    with ``seed``, to fill the map up to ``sample`` points. When the kept points alone exceed
    ``sample`` the map holds exactly them (more than ``sample``): nothing asked for is dropped.

    Args:
        query_ids: n_q query ids.
        passage_ids: n_d passage ids.
        sample: the points wanted on the map (a target, exceeded only by the kept points).
        seed: seed of the random draw; same inputs and seed, same sample.
        keep_passage_ids: passage ids always kept; ids not in ``passage_ids`` are ignored.

    Returns:
        (query rows, passage rows): sorted int index arrays into the two id lists.
    """
    n_q, n_d = len(query_ids), len(passage_ids)
    keep = set(keep_passage_ids or ())
    is_kept = np.fromiter((str(p) in keep for p in passage_ids), dtype=bool, count=n_d)
    free = np.flatnonzero(~is_kept)
    room = max(0, sample - n_q - int(is_kept.sum()))
    extra = free if room >= len(free) else np.random.default_rng(seed).choice(free, size=room, replace=False)
    d_rows = np.sort(np.concatenate([np.flatnonzero(is_kept), extra]).astype(int))
    return np.arange(n_q), d_rows


def warm_up() -> float:
    """Import umap and JIT-compile its numba code on a tiny random map; returns seconds taken.

    The first :func:`fit_projection` in a process otherwise pays this (about 30 s on 2 busy
    cores; later fits of 1,500 points take a few seconds). Safe to call from a background thread
    at app start; compiled code is shared by later calls in the process.
    """
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(40, 8)).astype(np.float32)
    params = ProjectionParams(n_neighbors=5)
    xy = _umap_layout(vecs, params, init="spectral")
    _umap_layout(vecs[:, ::-1].copy(), params, init=xy)  # the array-init path of the tuned map
    return time.perf_counter() - start


def _umap_layout(vectors: np.ndarray, params: ProjectionParams, init: np.ndarray | str) -> np.ndarray:
    """(n, dim) vectors -> (n, 2) float64 UMAP coordinates, cosine metric.

    Below UMAP's exact-neighbours threshold (4,096 points) the cosine distance matrix is computed
    here with one matrix product and passed as ``metric="precomputed"``: the same neighbour graph as
    ``metric="cosine"``, but UMAP would otherwise call its numba cosine once per pair through
    scikit-learn (about 1.1 M Python calls, ~5 s, for 1,500 points). Larger samples use
    ``metric="cosine"`` and UMAP's approximate neighbours.
    """
    import umap  # slow import (numba); only when a map is actually fitted

    n = vectors.shape[0]
    exact = n < _UMAP_EXACT_BELOW
    reducer = umap.UMAP(
        n_neighbors=max(2, min(params.n_neighbors, n - 1)),  # UMAP needs n_neighbors < n
        min_dist=params.min_dist,
        n_components=2,
        metric="precomputed" if exact else "cosine",
        random_state=params.seed,
        n_jobs=1,  # what random_state implies anyway; saying it silences UMAP's warning
        low_memory=True,
        init=init,
    )
    data = _cosine_distances(vectors) if exact else vectors
    with warnings.catch_warnings():
        # "using precomputed metric; inverse_transform will be unavailable": we never invert.
        warnings.filterwarnings("ignore", message=".*precomputed metric.*")
        return np.asarray(reducer.fit_transform(data), dtype=np.float64)


def _cosine_distances(vectors: np.ndarray) -> np.ndarray:
    """(n, dim) -> (n, n) float32 cosine distances, 0 on the diagonal (rows need not be unit)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms > 0, norms, 1.0)
    dist = 1.0 - unit @ unit.T
    np.clip(dist, 0.0, 2.0, out=dist)  # rounding can give -1e-7 for identical rows
    np.fill_diagonal(dist, 0.0)
    return dist.astype(np.float32, copy=False)


def _procrustes_onto(moving: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``moving`` (n, 2) rotated/reflected to best fit ``target`` (n, 2), with target's centre and size.

    Size = Frobenius norm of the centred points (root-mean-square radius), matched rather than
    least-squares fitted: the least-squares scale shrinks a layout that fits imperfectly, and two
    maps shown side by side should be drawn at the same size.
    """
    from scipy.linalg import orthogonal_procrustes

    mu_m, mu_t = moving.mean(axis=0), target.mean(axis=0)
    m, t = moving - mu_m, target - mu_t
    norm_m, norm_t = np.linalg.norm(m), np.linalg.norm(t)
    if norm_m == 0 or norm_t == 0:  # degenerate (all points on one spot): just shift
        return moving - mu_m + mu_t
    rot, _ = orthogonal_procrustes(m / norm_m, t / norm_t)
    return (m / norm_m) @ rot * norm_t + mu_t


def _check(name: str, arr: np.ndarray, rows: int) -> np.ndarray:
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] != rows:
        raise ValueError(f"{name} must be ({rows}, dim), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return arr


def _stack(q: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Query rows then passage rows; either block may be empty (and then of any width)."""
    if not len(q):
        return d
    if not len(d):
        return q
    return np.concatenate([q, d])


def checked_inputs(query_ids: Sequence[str], passage_ids: Sequence[str], base_q: np.ndarray, base_d: np.ndarray,
                   tuned_q: np.ndarray, tuned_d: np.ndarray) -> tuple[list[str], list[str], np.ndarray, np.ndarray,
                                                                     np.ndarray, np.ndarray]:
    """The ids as text and the four vector arrays checked (rows match the ids, no NaN), as every map fit
    takes them (:func:`fit_projection`, ``core.insight.clouds.fit_clouds``)."""
    query_ids, passage_ids = [str(q) for q in query_ids], [str(p) for p in passage_ids]
    n_q, n_d = len(query_ids), len(passage_ids)
    return (query_ids, passage_ids, _check("base_q", base_q, n_q), _check("base_d", base_d, n_d),
            _check("tuned_q", tuned_q, n_q), _check("tuned_d", tuned_d, n_d))


def fit_projection(
    query_ids: Sequence[str],
    passage_ids: Sequence[str],
    base_q: np.ndarray,
    base_d: np.ndarray,
    tuned_q: np.ndarray,
    tuned_d: np.ndarray,
    params: ProjectionParams | None = None,
    progress: Progress | None = None,
    keep_passage_ids: Collection[str] | None = None,
) -> Projection:
    """Fit comparable 2-D maps of the base and the tuned embedding spaces.

    How the two frames are made comparable:

    1. A deterministic sample (:func:`sample_points`) is taken once; both maps show the same ids.
    2. UMAP (cosine metric, 2 components, ``random_state=seed``) is fitted on the BASE vectors.
    3. A second UMAP is fitted on the TUNED vectors, initialised from the base 2-D layout, so
       structure that did not change starts, and mostly stays, where it was.
    4. The tuned layout is aligned onto the base one with an orthogonal Procrustes fit: both are
       centred and scaled to unit Frobenius norm, the best rotation (or reflection) is applied, and
       the result is given the base map's centre and size. This removes the arbitrary rotation,
       scale and offset UMAP leaves, so where a point moved between the maps means something.

    Both fits use ``metric="cosine"`` (as a precomputed cosine-distance matrix below 4,096 points,
    see :func:`_umap_layout`), ``n_components=2``, ``random_state=seed`` (hence one thread) and
    ``low_memory=True``. Expect the tuned map to differ in detail even for near-identical vectors:
    UMAP's layout is noisy at the level of single points; groups and their placement are what
    compare.

    When the sampled tuned vectors equal the base ones (an untrained run), steps 3 and 4 are skipped
    and the tuned map is the base map: the maps then differ nowhere.

    Args:
        query_ids: n_q query ids, aligned with the rows of ``base_q`` and ``tuned_q``.
        passage_ids: n_d passage ids, aligned with the rows of ``base_d`` and ``tuned_d``.
        base_q: (n_q, dim) float32 L2-normalised query vectors from the base model.
        base_d: (n_d, dim) passage vectors from the base model.
        tuned_q: (n_q, dim') query vectors from the tuned model (dim' may differ from dim).
        tuned_d: (n_d, dim') passage vectors from the tuned model.
        params: UMAP settings and sample cap; default :class:`ProjectionParams`.
        progress: called with (message, fraction) as the steps start.
        keep_passage_ids: passages always on the map (e.g. the sampled queries' gold passages).

    Returns:
        The :class:`Projection`; ``points`` holds 2 x (sampled queries + sampled passages) rows.

    Raises:
        ValueError: shapes disagree, vectors hold NaN, or fewer than 4 points would be mapped.
    """
    params = params or ProjectionParams()
    report = progress or (lambda _msg, _frac: None)
    start = time.perf_counter()
    query_ids, passage_ids, base_q, base_d, tuned_q, tuned_d = checked_inputs(query_ids, passage_ids, base_q, base_d,
                                                                             tuned_q, tuned_d)
    n_q, n_d = len(query_ids), len(passage_ids)
    if n_q and n_d and base_q.shape[1] != base_d.shape[1]:
        raise ValueError(f"base_q and base_d differ in width: {base_q.shape[1]} vs {base_d.shape[1]}")
    if n_q and n_d and tuned_q.shape[1] != tuned_d.shape[1]:
        raise ValueError(f"tuned_q and tuned_d differ in width: {tuned_q.shape[1]} vs {tuned_d.shape[1]}")

    q_rows, d_rows = sample_points(query_ids, passage_ids, params.sample, params.seed, keep_passage_ids)
    n = len(q_rows) + len(d_rows)
    if n < MIN_POINTS:
        raise ValueError(f"a map needs at least {MIN_POINTS} queries and passages, got {n}")
    base = _stack(base_q[q_rows], base_d[d_rows])
    tuned = _stack(tuned_q[q_rows], tuned_d[d_rows])

    report("Fitting base map", 0.0)
    xy_base = _umap_layout(base, params, init="spectral")
    if tuned.shape == base.shape and np.array_equal(tuned, base):
        report("Tuned vectors equal the base ones: reusing the base map", 0.9)
        xy_tuned = xy_base.copy()
    else:
        report("Fitting tuned map", 0.45)
        xy_tuned = _umap_layout(tuned, params, init=xy_base)
        report("Aligning", 0.9)
        xy_tuned = _procrustes_onto(xy_tuned, xy_base)

    kinds = ["query"] * len(q_rows) + ["passage"] * len(d_rows)
    ids = [query_ids[i] for i in q_rows] + [passage_ids[i] for i in d_rows]
    frames = [
        pd.DataFrame(
            {
                "space": space,
                "kind": kinds,
                "id": ids,
                "x": xy[:, 0].astype(np.float32),
                "y": xy[:, 1].astype(np.float32),
            }
        )
        for space, xy in zip(SPACES, (xy_base, xy_tuned))
    ]
    points = pd.concat(frames, ignore_index=True)
    report("Done", 1.0)
    return Projection(points, params, time.perf_counter() - start)


ALIGNMENT_HELP = {
    "answer_first": "Share of questions whose nearest passage (of all passages searched) is the answer: what "
                    "a top-1 search returns.",
    "median_rank": "Median rank of the answer passage among all passages searched (1 = first; lower is better).",
    "margin": "Mean similarity of each question to its answer minus to the best wrong passage: above 0 the "
              "answer wins. Read its sign and change, not its size: training changes the similarity scale.",
}


def retrieval_alignment(query_vecs: np.ndarray, passage_vecs: np.ndarray, gold_rows: Sequence[Sequence[int]],
                        chunk: int = 256) -> dict[str, float]:
    """How well questions meet their answers in one embedding space, in measures that agree with
    retrieval (raw cosine does not: contrastive training changes the similarity scale).

    Args:
        query_vecs: (n, dim) question vectors, L2-normalised.
        passage_vecs: (m, dim) passage vectors, L2-normalised (rows = every passage searched).
        gold_rows: per question, the rows of its answer passages in ``passage_vecs``.

    Returns:
        ``answer_first``: share of questions whose top-scoring passage is an answer (ties count
        against it); ``median_rank``: median 1-based rank of the best-ranked answer;
        ``margin``: mean of (best answer score - best wrong-passage score). See ALIGNMENT_HELP.
    """
    q = np.asarray(query_vecs, dtype=np.float32)
    d = np.asarray(passage_vecs, dtype=np.float32)
    if len(q) != len(gold_rows):
        raise ValueError(f"{len(q)} questions but {len(gold_rows)} lists of gold rows")
    ranks, margins = [], []
    for start in range(0, len(q), chunk):  # vectorised per chunk: 790 questions x 100k passages in about a second
        scores = q[start : start + chunk] @ d.T
        gold = gold_rows[start : start + chunk]
        mask = np.zeros(scores.shape, dtype=bool)
        rows = np.repeat(np.arange(len(gold)), [len(g) for g in gold])
        mask[rows, np.fromiter((c for g in gold for c in g), dtype=np.int64, count=len(rows))] = True
        best_gold = np.where(mask, scores, -np.inf).max(axis=1)
        wrong = np.where(mask, -np.inf, scores)
        ranks.append(1 + (wrong >= best_gold[:, None]).sum(axis=1))
        margins.append(best_gold - wrong.max(axis=1))
    ranks = [int(r) for part in ranks for r in part]
    margins = [float(m) for part in margins for m in part]
    ranks_a = np.asarray(ranks)
    return {"answer_first": float((ranks_a == 1).mean()) if len(ranks_a) else float("nan"),
            "median_rank": float(np.median(ranks_a)) if len(ranks_a) else float("nan"),
            "margin": float(np.mean(margins)) if margins else float("nan")}


def rank_movement(base_rank: pd.Series, tuned_rank: pd.Series) -> pd.Series:
    """Per query, whether the gold passage moved up or down the ranking.

    Args:
        base_rank: 1-based gold rank per query (index = query id) before tuning; NaN = not in the
            top 100, i.e. worse than any rank.
        tuned_rank: the same after tuning. The two are aligned on their index; a query missing
            from one side counts as NaN there.

    Returns:
        Series (same index, union of both) named ``movement``: "improved" (smaller rank after),
        "worsened" (larger rank after) or "same" (equal ranks, or NaN both times).
    """
    before, after = base_rank.align(tuned_rank)
    b = before.astype(float).fillna(np.inf).to_numpy()
    a = after.astype(float).fillna(np.inf).to_numpy()
    out = np.where(a < b, "improved", np.where(a > b, "worsened", "same"))
    return pd.Series(out, index=before.index, name="movement", dtype=object)
