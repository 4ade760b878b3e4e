"""Uncertainty of a comparison between two retrieval systems on the same questions.

- ``paired_bootstrap``: percentile confidence interval of the mean per-question delta
  (b - a), resampling questions with replacement (the pairing is kept: one resample
  draws the same questions for both systems).
- ``paired_test``: two-sided paired randomization (sign-flip) test of the mean delta,
  run by ``scipy.stats.permutation_test`` with ``permutation_type="samples"``.
- ``compare_systems`` / ``verdict``: the table and the plain-language line the pages,
  the CLI and the report show.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

N_RESAMPLES = 2000  # bootstrap resamples (the issue asks for at least 1,000)
N_PERMUTATIONS = 10_000  # sign flips of the randomization test
CONFIDENCE = 0.95
ALPHA = 0.05  # a difference is called real below this p-value and with a CI that excludes 0
PRIMARY = "nDCG@10"  # the metric the verdict speaks of
PER_QUERY_METRICS = ("Accuracy@10", "MRR@10", "nDCG@10")  # what per_query.csv keeps per system


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

    @property
    def significant(self) -> bool:
        return self.p_value < ALPHA and (self.low > 0 or self.high < 0)

    def to_dict(self) -> dict:
        return {**asdict(self), "significant": self.significant}


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


def paired_test(a, b, *, n_resamples: int = N_PERMUTATIONS, seed: int = 0) -> float:
    """Two-sided p-value of a paired randomization (sign-flip) test of mean(b - a) = 0."""
    from scipy.stats import permutation_test

    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if np.allclose(a, b):
        return 1.0
    res = permutation_test(
        (a, b),
        lambda x, y, axis: np.mean(y - x, axis=axis),
        permutation_type="samples",
        vectorized=True,
        n_resamples=n_resamples,
        alternative="two-sided",
        random_state=seed,
    )
    return float(res.pvalue)


def compare(per_query: pd.DataFrame, a: str, b: str, metric: str = PRIMARY, seed: int = 0) -> Delta:
    """Delta of system ``b`` over ``a`` on ``metric`` from a per_query frame ('<system>|<metric>' columns)."""
    x = per_query[f"{a}|{metric}"].to_numpy(dtype=float)
    y = per_query[f"{b}|{metric}"].to_numpy(dtype=float)
    delta, low, high = paired_bootstrap(x, y, seed=seed)
    return Delta(a, b, metric, float(x.mean()), float(y.mean()), delta, low, high, paired_test(x, y, seed=seed),
                 len(x))


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
            "95% CI": f"[{d.low:+.3f}, {d.high:+.3f}]",
            "p-value": d.p_value,
            "verdict": ("better" if d.delta > 0 else "worse") if d.significant else "no clear difference",
        })
    return pd.DataFrame(rows)


def fmt_p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _ci(d: Delta) -> str:
    return f"[{d.low:+.2f}, {d.high:+.2f}]"


def verdict(deltas: list[Delta], roles: list[str], names: dict[str, str] | None = None,
            metric: str = PRIMARY, fusion_note: str | None = None) -> str:
    """Plain sentences: did tuning help, which baselines (if any) significantly beat the tuned model
    on its own, and what to use.

    Args:
        deltas: from ``compare_systems``.
        roles: [base, tuned, *baselines].
        names: role -> display name.
        metric: the metric spoken of.
        fusion_note: appended when the hybrid's fusion was not chosen on held-out questions.
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
        out = (f"{first}. On its own the tuned model trails: {listed} {verb} significantly better on {metric}. "
               f"Use {nm(ahead[0].b)}.")
    if fusion_note:
        out += " " + fusion_note
    return out
