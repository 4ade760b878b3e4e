"""The run estimate: token counts of large collections are sampled, not exact, and stay close."""

from __future__ import annotations

import numpy as np
import pytest

from core.tuning.estimate import Estimate, _tokens
from core.workspace.jobs import fmt_duration


def test_token_count_of_a_large_collection_is_sampled_and_close_to_exact():
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(500)]
    texts = [" ".join(rng.choice(words, size=int(rng.integers(5, 400)))) for _ in range(20_000)]
    exact = _tokens(texts, 256, sample=len(texts))
    sampled = _tokens(texts, 256)
    assert abs(sampled - exact) / exact < 0.02
    assert _tokens(texts[:100], 256) == _tokens(texts[:100], 256, sample=100)  # small: exact
    assert _tokens(iter(texts[:10]), 8) == 10 * 8  # any iterable; each text cut at the cap


def test_durations_read_plainly():
    assert [fmt_duration(x) for x in (None, 12, 89, 150, 3590, 7190, 7230)] == [
        "", "12 s", "about 1 min", "about 2 min", "about 1 h 0 min", "about 2 h 0 min", "about 2 h 0 min"]
    est = Estimate()
    est.add("loading the model", 15)
    est.add("training", 660)
    assert est.text() == "about 11 min: loading the model (15 s) + training (about 11 min)"  # no "~about"


def test_choosing_training_windows_is_estimated_only_for_passages_over_the_limit():
    from core.dataset import QADataset
    from core.tuning.estimate import estimate_run
    from core.tuning.spec import RunSpec

    long_text = " ".join(["revenue"] * 400)  # ~520 tokens: over 256, several windows
    train = QADataset({"q1": "a?", "q2": "b?"}, {"d1": long_text, "d2": "short passage"},
                      {"q1": ["d1"], "q2": ["d2"]})
    spec = RunSpec.for_method("full")
    spec.settings.train_passage = "best"
    phases = dict(estimate_run(spec, train, train).parts)
    choose = [w for w in phases if w.startswith("choosing the training window")]
    assert choose == ["choosing the training window of 1 long passage (first run only)"]
    assert phases[choose[0]] > 0
    spec.settings.train_passage = "first"
    assert not any(w.startswith("choosing") for w in dict(estimate_run(spec, train, train).parts))


def test_long_passages_of_a_large_collection_are_counted_on_the_sample():
    from core.tuning.estimate import _over

    texts = [" ".join(["w"] * (400 if i % 4 == 0 else 20)) for i in range(20_000)]  # a quarter over 256 tokens
    assert _over(texts, 256) == _over(texts, 256, sample=len(texts)) == (5_000, 5_000 * 522)
    assert _over(texts[:8], 256) == (2, 2 * 522)


def test_all_windows_scales_training_by_the_windows_the_pair_builder_makes():
    """"all" trains one pair per window: the estimate's window count is close to ``positive_texts``' own."""
    from core.dataset import QADataset
    from core.retrieval.embedding import load_model
    from core.tuning.estimate import _full_training, _windows_per_passage
    from core.tuning.pairs import positive_texts
    from core.tuning.spec import FullSettings

    rng = np.random.default_rng(0)
    vocab = ["revenue", "segment", "margin", "lease", "goodwill", "impairment", "deferred", "tax"]
    corpus = {f"d{i}": " ".join(rng.choice(vocab, size=n)) for i, n in enumerate([30, 300, 700, 1200, 90])}
    ds = QADataset({f"q{i}": f"question {i}?" for i in range(5)}, corpus, {f"q{i}": [f"d{i}"] for i in range(5)})
    built = positive_texts(ds, load_model(), "all", 256)
    made = len(built) / 5
    assert made > 2  # the long passages were split
    assert abs(_windows_per_passage(list(corpus.values()), 256) - made) <= 0.4  # word-count tokens: close, not exact
    first, every = FullSettings(train_passage="first"), FullSettings(train_passage="all")
    assert _full_training(every, ds) / _full_training(first, ds) == pytest.approx(
        _windows_per_passage(list(corpus.values()), 256))


def test_the_estimate_counts_a_rerank_stage():
    from core.dataset import QADataset
    from core.retrieval.rerank import RerankSettings, estimate_seconds
    from core.tuning.estimate import estimate_run
    from core.tuning.spec import RunSpec

    qs = {f"q{i}": f"question {i} about pumps" for i in range(40)}
    ds = QADataset(qs, {f"d{i}": "a passage about pumps " * 30 for i in range(40)}, {f"q{i}": [f"d{i}"] for i in range(40)})
    spec = RunSpec.for_method("adapter")
    without = estimate_run(spec, ds, ds)
    spec.rerank = RerankSettings(top_k=20)
    parts = dict(estimate_run(spec, ds, ds).parts)
    train_s, per_q = estimate_seconds(40, 40, spec.rerank)
    assert parts["training the reranker"] == train_s
    rerank_part = next(v for k, v in parts.items() if k.startswith("reranking the top 20 for 40 evaluation"))
    assert rerank_part > 40 * per_q * 0.99
    assert estimate_run(spec, ds, ds).seconds > without.seconds
