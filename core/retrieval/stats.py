"""Uncertainty of a comparison between two retrieval systems on the same questions.

One method gives both the interval and the p-value of a paired comparison, so the two always agree
(an interval that excludes 0 comes with p < 0.05 and the reverse):

- ``paired_randomization``: the two-sided paired randomization (sign-flip) test of the mean
  per-question delta (b - a), and its 95% interval obtained by *inverting the same test*: the
  interval holds every shift δ that the test does not reject for ``d - δ`` (exact enumeration of
  all 2^n sign flips up to ``EXACT_MAX_N`` questions, else ``N_PERMUTATIONS`` random flips, the same
  flips for every δ). At small n no interval is wider than the data allow: with 5 questions or fewer
  no sign-flip test can reach p < 0.05, and the interval spans the whole metric range.
- ``paired_bootstrap``: percentile interval of a mean (kept for single-system means in benches; a
  comparison never mixes it with the test above).
- ``detectable_change``: how large a change ``n`` questions can tell from chance.
- ``compare_systems`` / ``verdict``: the table and the plain-language line the pages,
  the CLI and the report show.

Earlier runs paired a bootstrap interval with the randomization p-value; at n = 19 they could
disagree ([+0.053, +0.368] beside p 0.126). Stored comparisons of those runs keep their numbers.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

N_RESAMPLES = 2000  # bootstrap resamples of a single system's mean
N_PERMUTATIONS = 10_000  # random sign flips of the randomization test when n > EXACT_MAX_N
EXACT_MAX_N = 15  # up to this many questions every one of the 2^n sign flips is enumerated
CONFIDENCE = 0.95
ALPHA = 0.05  # a difference is called real below this p-value (its interval then excludes 0)
PRIMARY = "nDCG@10"  # the metric the verdict speaks of
PER_QUERY_METRICS = ("Accuracy@10", "MRR@10", "nDCG@10")  # what per_query.csv keeps per system
SMALL_N = 30  # below this many questions the pages say how large a change could be detected
Z95 = 1.959964  # two-sided 95% normal quantile
METRIC_RANGE = 1.0  # per-question metrics lie in [0, 1]: a mean delta in [-1, 1]


@dataclass
class Delta:
    a: str
    b: str
    metric: str
    mean_a: float
    mean_b: float
    delta: float  # mean(b) - mean(a)
    low: float
    high: float
    p_value: float
    n: int
    sd: float | None = None  # spread (standard deviation) of the per-question delta; None in older results

    @property
    def significant(self) -> bool:
        return self.p_value < ALPHA and (self.low > 0 or self.high < 0)

    @property
    def detectable(self) -> float:
        """The smallest change these questions could tell from chance (``detectable_change``)."""
        return detectable_change(self.n, self.sd)

    def to_dict(self) -> dict:
        return {**asdict(self), "significant": self.significant}


def detectable_change(n: int, sd: float | None = None, z: float = Z95) -> float:
    """Smallest mean change a paired 95% interval over ``n`` questions separates from 0: about
    ``z * sd / sqrt(n)``, with ``sd`` the per-question spread of the change (the typical spread
    measured on sec-10k, 0.21 nDCG@10, when unknown or zero). inf below 2 questions."""
    if n < 2:
        return math.inf
    spread = sd if sd else TYPICAL_DELTA_SD
    return z * spread / math.sqrt(n)


# Spread of the per-question nDCG@10 difference between two systems, measured on sec-10k (base vs its
# query adapter, 790 questions): 0.208. Used when a comparison's own spread is unknown or zero.
TYPICAL_DELTA_SD = 0.21


def paired_bootstrap(a, b, *, n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE,
                     seed: int = 0) -> tuple[float, float, float]:
    """(mean delta, low, high): percentile bootstrap CI of mean(b - a) over paired questions."""
    d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    if d.size == 0:
        raise ValueError("no questions to compare")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, d.size, size=(n_resamples, d.size))
    means = d[idx].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(d.mean()), float(low), float(high)


def _flip_sums(d: np.ndarray, n_resamples: int, seed: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """(sum of flipped deltas per flip, sum of signs per flip, exact) over the sign-flip patterns: every
    pattern up to EXACT_MAX_N questions, else ``n_resamples`` random ones (drawn in blocks, so memory stays
    small for thousands of questions)."""
    n = d.size
    if n <= EXACT_MAX_N:
        signs = ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1) * 2.0 - 1
        return signs @ d, signs.sum(axis=1), True
    rng = np.random.default_rng(seed)
    sums, ones = [], []
    for start in range(0, n_resamples, 1000):
        signs = rng.choice(np.array([-1.0, 1.0]), size=(min(1000, n_resamples - start), n))
        sums.append(signs @ d)
        ones.append(signs.sum(axis=1))
    return np.concatenate(sums), np.concatenate(ones), False


class _SignFlip:
    """The sign-flip test of H0: mean(d) = δ, for any δ, on one fixed set of flips."""

    def __init__(self, d: np.ndarray, n_resamples: int, seed: int):
        self.d, self.n = d, d.size
        self.sd_, self.s1, self.exact = _flip_sums(d, n_resamples, seed)  # sum(s * d) and sum(s), per flip
        self.total = d.sum()

    def p(self, delta) -> np.ndarray:
        """Two-sided p-values for each shift in ``delta`` (array-like)."""
        delta = np.atleast_1d(np.asarray(delta, dtype=float))
        observed = np.abs(self.total - delta * self.n)  # |sum(d - δ)|
        null = np.abs(self.sd_[:, None] - self.s1[:, None] * delta[None, :])  # |sum(s * (d - δ))|
        hits = (null >= observed[None, :] - 1e-9 * (1 + observed[None, :])).sum(axis=0)
        if self.exact:  # the identity flip is among the patterns: hits >= 1
            return hits / len(self.s1)
        return (hits + 1) / (len(self.s1) + 1)

    def bound(self, side: int, alpha: float) -> float:
        """The interval's end on ``side`` (-1 low, +1 high): the first shift from the mean outward that the
        test rejects (scanned on a grid, then bisected)."""
        mean = self.total / self.n
        far = mean + side * (float(np.ptp(self.d)) + 1e-6)
        grid = np.linspace(mean, far, 65)
        p = self.p(grid)
        out = np.nonzero(p <= alpha)[0]
        if out.size == 0:  # never rejected within the data's range: the whole metric range
            return float(side * METRIC_RANGE)
        inside, outside = grid[out[0] - 1], grid[out[0]]
        for _ in range(40):
            mid = (inside + outside) / 2
            if self.p(mid)[0] > alpha:
                inside = mid
            else:
                outside = mid
        return float(np.clip(inside, -METRIC_RANGE, METRIC_RANGE))


def paired_randomization(a, b, *, n_resamples: int = N_PERMUTATIONS, confidence: float = CONFIDENCE,
                         seed: int = 0) -> tuple[float, float, float, float]:
    """(mean delta, low, high, p-value) of mean(b - a) from one paired sign-flip randomization test:
    p tests delta = 0; [low, high] holds every shift the same test does not reject at 1 - confidence."""
    d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    if d.size == 0:
        raise ValueError("no questions to compare")
    mean = float(d.mean())
    if np.allclose(d, 0):
        return 0.0, 0.0, 0.0, 1.0
    test = _SignFlip(d, n_resamples, seed)
    alpha = 1 - confidence
    p0 = float(test.p(0.0)[0])
    low, high = test.bound(-1, alpha), test.bound(+1, alpha)
    return mean, low, high, p0


def paired_test(a, b, *, n_resamples: int = N_PERMUTATIONS, seed: int = 0) -> float:
    """Two-sided p-value of the paired sign-flip test of mean(b - a) = 0 (``paired_randomization``)."""
    return paired_randomization(a, b, n_resamples=n_resamples, seed=seed)[3]


def compare(per_query: pd.DataFrame, a: str, b: str, metric: str = PRIMARY, seed: int = 0) -> Delta:
    """Delta of system ``b`` over ``a`` on ``metric`` from a per_query frame ('<system>|<metric>' columns)."""
    x = per_query[f"{a}|{metric}"].to_numpy(dtype=float)
    y = per_query[f"{b}|{metric}"].to_numpy(dtype=float)
    delta, low, high, p = paired_randomization(x, y, seed=seed)
    return Delta(a, b, metric, float(x.mean()), float(y.mean()), delta, low, high, p, len(x),
                 float(np.std(y - x, ddof=1)) if len(x) > 1 else None)


def compare_systems(per_query: pd.DataFrame, roles: list[str], metrics=PER_QUERY_METRICS) -> list[Delta]:
    """Tuned vs base, and every baseline vs tuned, on each per-query metric.

    Args:
        per_query: one row per question, columns '<role>|<metric>'.
        roles: [base, tuned, *baselines] (role keys as in results.json: base, tuned, bm25, hybrid).
    """
    base, tuned, *others = roles
    out = []
    for m in metrics:
        if f"{base}|{m}" not in per_query or f"{tuned}|{m}" not in per_query:
            continue
        out.append(compare(per_query, base, tuned, m))
        for o in others:
            if f"{o}|{m}" in per_query:
                out.append(compare(per_query, tuned, o, m))
    return out


def deltas_frame(deltas: list[Delta], names: dict[str, str] | None = None) -> pd.DataFrame:
    """The comparisons as a display table (``names`` turns role keys into system names)."""
    names = names or {}
    rows = []
    for d in deltas:
        rows.append({
            "comparison": f"{names.get(d.b, d.b)} vs {names.get(d.a, d.a)}",
            "metric": d.metric,
            "delta": d.delta,
            "95% CI": f"[{signed(d.low)}, {signed(d.high)}]",
            "p-value": d.p_value,
            "verdict": ("better" if d.delta > 0 else "worse") if d.significant else "no clear difference",
        })
    return pd.DataFrame(rows)


def signed(x: float, digits: int = 3) -> str:
    """``x`` with its sign ("+0.012", "-0.140"), but a value that rounds to zero is "0.000": no "-0.000" or
    "+0.000" in an interval or a change (zero is no direction)."""
    text = f"{x:+.{digits}f}"
    return text[1:] if float(text) == 0 else text


def fmt_p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _ci(d: Delta) -> str:
    return f"[{signed(d.low, 2)}, {signed(d.high, 2)}]"


def verdict(deltas: list[Delta], roles: list[str], names: dict[str, str] | None = None,
            metric: str = PRIMARY, fusion_note: str | None = None, recommend: bool = True) -> str:
    """Plain sentences: did tuning help, which baselines (if any) significantly beat the tuned model
    on its own, and what to use.

    Args:
        deltas: from ``compare_systems``.
        roles: [base, tuned, *baselines].
        names: role -> display name.
        metric: the metric spoken of.
        fusion_note: appended when the hybrid's fusion was not chosen on held-out questions.
        recommend: end with "Use <the best baseline ahead>" (off when a pipeline verdict already names
            what to deploy).
    """
    names = names or {}
    base, tuned, *others = roles

    def nm(role: str) -> str:
        return names.get(role, role)

    mine = [d for d in deltas if d.metric == metric]
    main = next((d for d in mine if d.a == base and d.b == tuned), None)
    if main is None:
        return "Not enough per-question data for a verdict."
    if main.delta == 0 and main.low == 0 and main.high == 0:
        first = f"The tuned model scores every evaluation question exactly like the base model on {metric} (no change)"
    elif main.significant and main.delta > 0:
        first = f"The tuned model beats the base model on {metric} by {main.delta:+.2f} {_ci(main)}, {fmt_p(main.p_value)}"
    elif main.significant:
        first = (f"The tuned model is worse than the base model on {metric} by {main.delta:+.2f} {_ci(main)}, "
                 f"{fmt_p(main.p_value)}")
    else:
        first = (f"The tuned model and the base model cannot be told apart on {metric} ({main.delta:+.2f} "
                 f"{_ci(main)}, {fmt_p(main.p_value)}; more evaluation questions would narrow this)")
    ahead = sorted((d for d in mine if d.a == tuned and d.b in others and d.significant and d.delta > 0),
                   key=lambda d: -d.mean_b)
    if not ahead:
        out = first + "; no baseline does significantly better than the tuned model."
    else:
        listed = " and ".join(f"{nm(d.b)} ({d.delta:+.2f} {_ci(d)}, {fmt_p(d.p_value)})" for d in ahead)
        verb = "does" if len(ahead) == 1 else "do"
        out = f"{first}. On its own the tuned model trails: {listed} {verb} significantly better on {metric}."
        if recommend:
            out += f" Use {nm(ahead[0].b)}."
    if fusion_note:
        out += " " + fusion_note
    return out


def find(deltas: list[Delta], a: str, b: str, metric: str = PRIMARY) -> Delta | None:
    """The comparison of ``b`` over ``a`` on ``metric`` among ``deltas`` (None when not made)."""
    return next((d for d in deltas if d.a == a and d.b == b and d.metric == metric), None)


def recommended(untuned: str, tuned: str, deltas: list[Delta], metric: str = PRIMARY) -> str:
    """The role to deploy: the best pipeline with tuning only when it is significantly better than the
    best one without (the simpler choice, needing no tuned model, otherwise)."""
    d = find(deltas, untuned, tuned, metric)
    return tuned if d is not None and d.significant and d.delta > 0 else untuned


def pipeline_verdict(untuned: str, tuned: str, deltas: list[Delta], names: dict[str, str],
                     metric: str = PRIMARY) -> str:
    """The headline: which pipeline to deploy and what tuning added to the best retriever without it.

    Args:
        untuned, tuned: roles of the best pipeline without and with tuning (``core.retrieval.pipeline.best_of``).
        deltas: comparisons including ``untuned`` -> ``tuned`` on ``metric``.
        names: role -> display name.
    """
    d = find(deltas, untuned, tuned, metric)
    if d is None:
        return "Not enough per-question data to compare the best pipelines."
    u, t = names.get(untuned, untuned), names.get(tuned, tuned)
    change = f"{signed(d.delta)} {metric} [{signed(d.low)}, {signed(d.high)}], {fmt_p(d.p_value)}"
    if d.significant and d.delta > 0:
        out = (f"Deploy {t}: with tuning it beats the best retriever without tuning, {u} "
               f"({d.mean_a:.3f} -> {d.mean_b:.3f}), by {change}.")
    elif d.significant:
        out = (f"Deploy {u}: the best retriever without tuning beats the best one with it, {t} "
               f"({d.mean_a:.3f} vs {d.mean_b:.3f}; {change}). Tuning did not pay off here.")
    else:
        out = (f"Tuning added nothing measurable to the best retriever: with tuning {t} ({d.mean_b:.3f}), "
               f"without {u} ({d.mean_a:.3f}), {change}. Deploy {u}: it needs no tuned model.")
    if d.n < SMALL_N:
        out += (f" With {d.n} evaluation questions a change smaller than about {d.detectable:.2f} cannot be told "
                "from chance: label more questions to see smaller ones.")
    return out
