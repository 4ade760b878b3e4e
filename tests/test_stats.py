"""Intervals and tests against known cases and against scipy's own implementations."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from core.insight.stats import compare, compare_systems, paired_bootstrap, paired_test, verdict


def test_identical_systems_interval_around_zero_and_large_p():
    rng = np.random.default_rng(1)
    a = rng.random(300)
    delta, low, high = paired_bootstrap(a, a.copy())
    assert delta == 0 and low == 0 and high == 0
    assert paired_test(a, a.copy()) == 1.0


def test_same_distribution_not_called_different():
    rng = np.random.default_rng(2)
    a = rng.random(400)
    b = a + rng.normal(0, 0.2, 400)  # noise, no shift
    delta, low, high = paired_bootstrap(a, b)
    assert low < 0 < high
    assert paired_test(a, b) > 0.05


def test_clear_win_is_significant():
    rng = np.random.default_rng(3)
    a = rng.random(200)
    b = a + 0.1 + rng.normal(0, 0.05, 200)
    delta, low, high = paired_bootstrap(a, b)
    assert 0.09 < delta < 0.11 and 0 < low < delta < high
    assert paired_test(a, b) < 0.01


def test_bootstrap_matches_scipy():
    rng = np.random.default_rng(4)
    a = rng.random(250)
    b = a + rng.normal(0.03, 0.1, 250)
    _, low, high = paired_bootstrap(a, b, n_resamples=5000)
    ref = sps.bootstrap((a, b), lambda x, y, axis: np.mean(y - x, axis=axis), paired=True, vectorized=True,
                        n_resamples=5000, method="percentile", random_state=0).confidence_interval
    assert low == pytest.approx(ref.low, abs=0.004) and high == pytest.approx(ref.high, abs=0.004)


def test_randomization_test_agrees_with_paired_t_test():
    rng = np.random.default_rng(5)
    a = rng.random(300)
    b = a + rng.normal(0.012, 0.1, 300)
    p = paired_test(a, b)
    p_t = sps.ttest_rel(b, a).pvalue
    assert p == pytest.approx(p_t, abs=0.03)


def _per_query(base, tuned, bm25):
    return pd.DataFrame({"base|nDCG@10": base, "tuned (full)|nDCG@10": tuned, "BM25|nDCG@10": bm25})


def test_verdict_names_the_winner_and_the_baseline_ahead():
    rng = np.random.default_rng(6)
    base = rng.random(300) * 0.6
    tuned = base + 0.1 + rng.normal(0, 0.05, 300)
    bm25 = tuned + 0.15 + rng.normal(0, 0.05, 300)
    pq = _per_query(base, tuned, bm25)
    order = ["base", "tuned (full)", "BM25"]
    deltas = compare_systems(pq, order)
    assert [(d.a, d.b) for d in deltas] == [("base", "tuned (full)"), ("tuned (full)", "BM25")]
    line = verdict(deltas, order)
    assert line.startswith("The tuned model beats the base model on nDCG@10 by +0.10")
    assert "p < 0.001" in line and "On its own the tuned model trails: BM25 (+0.15" in line and "Use BM25." in line


def test_verdict_names_every_baseline_that_beats_the_tuned_model():
    # the review's case: the hybrid is ahead, but BM25 alone also beats the tuned model significantly;
    # the old verdict named only the hybrid ("use hybrid") and hid the loss to keyword search
    rng = np.random.default_rng(9)
    base = rng.random(400) * 0.6
    tuned = base + 0.05 + rng.normal(0, 0.05, 400)
    bm25 = tuned + 0.05 + rng.normal(0, 0.2, 400)
    hybrid = tuned + 0.13 + rng.normal(0, 0.05, 400)
    pq = pd.DataFrame({"base|nDCG@10": base, "tuned|nDCG@10": tuned, "bm25|nDCG@10": bm25, "hybrid|nDCG@10": hybrid})
    roles = ["base", "tuned", "bm25", "hybrid"]
    names = {"base": "base", "tuned": "tuned (full)", "bm25": "BM25", "hybrid": "hybrid (tuned + BM25)"}
    line = verdict(compare_systems(pq, roles), roles, names)
    assert "BM25 (+0.05" in line and "hybrid (tuned + BM25) (+0.13" in line and "do significantly better" in line
    assert line.endswith("Use hybrid (tuned + BM25).")
    line = verdict(compare_systems(pq, roles), roles, names, fusion_note="The hybrid uses fixed fusion.")
    assert line.endswith("Use hybrid (tuned + BM25). The hybrid uses fixed fusion.")


def test_verdict_when_no_difference():
    rng = np.random.default_rng(7)
    base = rng.random(100)
    pq = _per_query(base, base + rng.normal(0, 0.1, 100), base - 0.3)
    order = ["base", "tuned (full)", "BM25"]
    line = verdict(compare_systems(pq, order), order)
    assert "cannot be told apart" in line and "no baseline does significantly better than the tuned model" in line
    d = compare(pq, "base", "tuned (full)")
    assert not d.significant and d.n == 100


def test_verdict_when_tuned_is_identical_to_base():
    # e.g. the adapter kept its identity start: no interval to narrow, say so plainly
    rng = np.random.default_rng(8)
    base = rng.random(80)
    pq = _per_query(base, base.copy(), base - 0.2)
    order = ["base", "tuned (full)", "BM25"]
    line = verdict(compare_systems(pq, order), order)
    assert line.startswith("The tuned model scores every evaluation question exactly like the base model")
    assert "narrow" not in line and "no baseline does significantly better than the tuned model" in line
