"""NUDGE (Zeighami, Wellmer, Parameswaran 2024, arXiv 2409.02343): the stored PASSAGE vectors move
towards the training questions that have them as answers; no model change.

It only helps on the corpus it was fitted on: ``nudge_applies`` says whether an evaluation corpus
qualifies and ``replace_nudged`` builds the vectors to search with.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from core.tuning.vectorfit import (
    SEED,
    VAL_FRACTION,
    FitHistory,
    Progress,
    check_inputs,
    limited_threads,
    mean_rr,
    report,
    split_indices,
    tie_order,
)

NUDGE_VARIANT = "N"  # unit-length output: mixes with untouched base vectors under cosine search
# NUDGE step-size grids, searched on the validation queries; both include 0 (= leave passages as they are).
# NUDGE-N: gamma bounds the SQUARED distance moved on the unit sphere; this is the grid of the
# authors' code (0, 0.02, ..., 0.48).
NUDGE_N_GAMMAS = tuple(round(0.02 * i, 2) for i in range(25))
# NUDGE-M: gamma is the distance moved (no renormalisation); scores change by at most gamma,
# and cosine gaps between candidates rarely exceed ~1, so the grid is dense below 1.
NUDGE_M_GAMMAS = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0)



def _query_sums(queries: np.ndarray, positives: Sequence[Sequence[int]], m: int) -> np.ndarray:
    """(m, dim) float64: row j = sum of the query vectors that have passage j as a positive."""
    sums = np.zeros((m, queries.shape[1]), dtype=np.float64)
    for qv, p in zip(queries, positives):
        for j in p:
            sums[j] += qv
    return sums


def _nudge_update(corpus: np.ndarray, sums: np.ndarray, gamma: float, variant: str) -> np.ndarray:
    """Passage vectors after one NUDGE step of size ``gamma`` (see ``nudge``); (m, dim) float32.

    Rows whose query sum is zero (no training query) are returned bit-for-bit unchanged.
    """
    out = corpus.astype(np.float32, copy=True)
    g_norm = np.linalg.norm(sums, axis=1)
    rows = np.nonzero(g_norm > 1e-12)[0]
    if gamma == 0 or len(rows) == 0:
        return out
    e = corpus[rows].astype(np.float64)
    g_hat = sums[rows] / g_norm[rows, None]
    if variant == "M":
        out[rows] = (e + gamma * g_hat).astype(np.float32)
        return out
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    cos = (e * g_hat).sum(axis=1)
    perp = g_hat - cos[:, None] * e
    perp_norm = np.linalg.norm(perp, axis=1)
    z = perp / np.maximum(perp_norm, 1e-12)[:, None]
    moved = (1.0 - gamma / 2.0) * e + np.sqrt(max(gamma * (1.0 - gamma / 4.0), 0.0)) * z
    reach = cos >= 1.0 - gamma / 2.0  # the queries' direction itself is within reach: go there
    new = np.where(reach[:, None], g_hat, moved)
    new = np.where((perp_norm <= 1e-9)[:, None] & ~reach[:, None], e, new)  # g is (anti)parallel: stay
    new /= np.linalg.norm(new, axis=1, keepdims=True)
    out[rows] = new.astype(np.float32)
    return out


def nudge(
    queries: np.ndarray,
    positives: list[list[int]],
    corpus: np.ndarray,
    *,
    variant: str = NUDGE_VARIANT,
    gammas: Sequence[float] | None = None,
    val_fraction: float = VAL_FRACTION,
    seed: int = SEED,
    progress: Progress | None = None,
    corpus_ids: Sequence[str] | None = None,
) -> tuple[np.ndarray, FitHistory]:
    """NUDGE: move passage embeddings towards the training queries that point to them.

    Non-parametric: no model, no adapter; the stored passage vectors themselves change.
    For passage j with vector e_j, let g_j = sum of the training query vectors that have j
    as a relevant passage and ĝ_j = g_j / |g_j|. Each e_j is moved to maximise g_j · e'_j
    under a bound gamma on the change (Zeighami et al. 2024, arXiv 2409.02343):

    * NUDGE-N (``variant="N"``, the default): |e'| = 1 and |e' - e|² <= gamma. Closed form:
      e' = ĝ when e · ĝ >= 1 - gamma/2, else e' = (1 - gamma/2) e + sqrt(gamma (1 - gamma/4)) z
      with z the unit component of ĝ orthogonal to e (the point of the allowed cap nearest
      ĝ). Output rows are unit length; gamma in [0, 4] (default grid 0 .. 0.48).
    * NUDGE-M (``variant="M"``): |e' - e| <= gamma, no norm constraint: e' = e + gamma ĝ.
      As in the paper the rows are NOT renormalised (search by inner product); scores of a
      query change by at most gamma. gamma >= 0.

    One gamma is shared by all passages. It is chosen on a validation part of the training
    queries: g is computed from the remaining queries, each gamma of the grid is scored by
    the validation MRR@10 (ties -> the smaller gamma), then the final update is recomputed
    with ALL training queries at the chosen gamma. Passages that no training query points to
    are returned unchanged. Differences from the authors' code: gamma comes from a grid scored
    by MRR@10 for both variants (NUDGE-M there solves for the gamma of best top-1 accuracy
    exactly), and NUDGE-N moves a passage even when e · g < 0 (that code leaves it; the
    formula above is the exact optimum either way).

    Only meaningful when the evaluation searches the training corpus (same passage ids):
    the nudged vectors are the vectors of THOSE passages, and new queries must be answered
    from them. Check with ``nudge_applies`` and build the search vectors of an overlapping
    evaluation corpus with ``replace_nudged``.

    Args:
        queries: (n, dim) float32 training query vectors, L2-normalised.
        positives: per query, row indices into ``corpus`` of its relevant passages.
        corpus: (m, dim) float32 passage vectors, L2-normalised.
        variant: "N" (NUDGE-N) or "M" (NUDGE-M).
        gammas: step sizes to try; default ``NUDGE_N_GAMMAS`` / ``NUDGE_M_GAMMAS``.
        val_fraction: share of the queries held out to choose gamma (needed unless only
            one gamma is given).
        seed: seed of the validation split.
        progress: called with (message, fraction) per gamma tried, fractions increasing,
            the last call with 1.0.
        corpus_ids: the corpus rows' passage ids; validation ranks break score ties by id, as the
            evaluation does (None: by row order).

    Returns:
        (new corpus (m, dim) float32, history); ``history.val_scores`` per gamma of
        ``history.steps``; ``history.chosen`` = {"gamma", "val_mrr@10",
        "baseline_val_mrr@10", "variant", "passages_changed", "n_train", "n_val"}.

    Raises:
        ValueError: bad shapes or variant, a gamma out of range, no query with a positive,
            or several gammas but no validation queries to choose between them.
    """
    with limited_threads():
        return _nudge(queries, positives, corpus, variant=variant, gammas=gammas, val_fraction=val_fraction,
                      seed=seed, progress=progress, corpus_ids=corpus_ids)


def _nudge(
    queries: np.ndarray,
    positives: list[list[int]],
    corpus: np.ndarray,
    *,
    variant: str,
    gammas: Sequence[float] | None,
    val_fraction: float,
    seed: int,
    progress: Progress | None,
    corpus_ids: Sequence[str] | None,
) -> tuple[np.ndarray, FitHistory]:
    variant = str(variant).upper().removeprefix("NUDGE-")
    if variant not in ("N", "M"):
        raise ValueError(f"variant must be 'N' (NUDGE-N) or 'M' (NUDGE-M), not {variant!r}")
    q, pos, c = check_inputs(queries, positives, corpus)
    ties = tie_order(corpus_ids, len(c))
    default = NUDGE_N_GAMMAS if variant == "N" else NUDGE_M_GAMMAS
    grid = sorted({float(g) for g in (default if gammas is None else gammas)})
    if not grid:
        raise ValueError("gammas is empty: give at least one step size")
    hi = 4.0 if variant == "N" else np.inf
    if grid[0] < 0 or grid[-1] > hi:
        raise ValueError(f"NUDGE-{variant} step sizes must lie in [0, {hi:g}], got {grid[0]:g}..{grid[-1]:g}")
    usable = np.array([i for i, p in enumerate(pos) if p], dtype=np.int64)
    if len(usable) == 0:
        raise ValueError("No training query has a relevant passage in the corpus: nothing to learn from.")
    fit_rel, val_rel = split_indices(len(usable), val_fraction, seed)
    fit_idx, val_idx = usable[fit_rel], usable[val_rel]
    if len(grid) > 1 and len(val_idx) == 0:
        raise ValueError("Choosing gamma needs validation questions: set val_fraction > 0 or give one gamma.")

    history = FitHistory()
    name = f"NUDGE-{variant}"
    baseline = None
    best_gamma, best_score = grid[0], None
    if len(val_idx):
        val_q, val_pos = q[val_idx], [pos[i] for i in val_idx]
        baseline = mean_rr(val_q, val_pos, c, ties)
        sums = _query_sums(q[fit_idx], [pos[i] for i in fit_idx], len(c))
        report(progress, f"{name}: trying {len(grid)} step sizes on {len(val_idx)} held-out questions", 0.0)
        for k, gamma in enumerate(grid):
            score = mean_rr(val_q, val_pos, _nudge_update(c, sums, gamma, variant), ties)
            history.val_scores.append(score)
            history.steps.append(gamma)
            if best_score is None or score > best_score + 1e-12:
                best_gamma, best_score = gamma, score
            report(progress, f"{name}: gamma {gamma:g} -> validation MRR@10 {score:.4f}", 0.9 * (k + 1) / len(grid))
    sums_all = _query_sums(q[usable], [pos[i] for i in usable], len(c))
    new = _nudge_update(c, sums_all, best_gamma, variant)
    changed = int((np.linalg.norm(sums_all, axis=1) > 1e-12).sum()) if best_gamma > 0 else 0
    history.chosen = {
        "gamma": best_gamma,
        "val_mrr@10": best_score,
        "baseline_val_mrr@10": baseline,
        "variant": name,
        "passages_changed": changed,
        "n_train": int(len(fit_idx)),
        "n_val": int(len(val_idx)),
    }
    report(progress, f"{name}: gamma {best_gamma:g}, {changed} passages moved", 1.0)
    return new, history


def nudge_applies(train_corpus_ids: Iterable[str], eval_corpus_ids: Iterable[str]) -> tuple[bool, str]:
    """Whether NUDGE can help on an evaluation corpus, and if not, why (in plain words).

    Rule: NUDGE applies when the evaluation corpus shares at least one passage id with the
    training corpus. Nudged vectors replace those shared passages (``replace_nudged``); the
    other evaluation passages keep their base vectors. With no shared passage there is no
    nudged vector to search with, so NUDGE cannot change any result.

    Args:
        train_corpus_ids: ids of the passages NUDGE was (or will be) fitted on.
        eval_corpus_ids: ids of the passages the evaluation searches.

    Returns:
        (True, "") when it applies, else (False, a reason for the user).
    """
    train = set(train_corpus_ids)
    evals = list(dict.fromkeys(eval_corpus_ids))
    if not evals:
        return False, "The evaluation set has no passages to search, so there is nothing for NUDGE to change."
    if any(d in train for d in evals):
        return True, ""
    n = len(evals)
    return False, (
        "NUDGE changes the stored passage vectors of the training corpus; your evaluation set searches "
        f"{n} passage{'s' if n != 1 else ''} of which none {'are' if n != 1 else 'is'} in the training corpus, "
        "so NUDGE cannot help there. Use the adapter or a full fine-tune."
    )


def replace_nudged(
    eval_ids: Sequence[str], eval_vectors: np.ndarray, train_ids: Sequence[str], nudged: np.ndarray
) -> np.ndarray:
    """Evaluation passage vectors with the nudged vectors swapped in where ids match.

    Args:
        eval_ids: ids of the rows of ``eval_vectors``.
        eval_vectors: (n_eval, dim) float32 base passage vectors of the evaluation corpus.
        train_ids: ids of the rows of ``nudged``.
        nudged: (n_train, dim) float32 output of ``nudge``.

    Returns:
        (n_eval, dim) float32: the nudged row for ids in ``train_ids``, the base row otherwise.
    """
    out = np.array(eval_vectors, dtype=np.float32, copy=True)
    if len(eval_ids) != len(out) or len(train_ids) != len(nudged):
        raise ValueError("ids and vectors differ in length")
    row = {d: i for i, d in enumerate(train_ids)}
    for i, d in enumerate(eval_ids):
        j = row.get(d)
        if j is not None:
            out[i] = nudged[j]
    return out

