"""Fast tuning methods on synthetic vectors: the linear query adapter and NUDGE (no model loaded)."""

from __future__ import annotations

import numpy as np
import pytest

from core.tuning import nudge as N
from core.tuning.adapter import LinearAdapter, fit_linear_adapter
from core.tuning.nudge import nudge, nudge_applies, replace_nudged
from core.tuning.vectorfit import mrr_at_10

DIM = 32


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _noise(rng, n: int) -> np.ndarray:
    return _unit(rng.standard_normal((n, DIM)))


@pytest.fixture(scope="module")
def rotation_task():
    """Queries = a fixed random rotation of their passage + noise; 3 training + 1 test query per passage."""
    rng = np.random.default_rng(0)
    m = 120
    corpus = _noise(rng, m)
    rot, _ = np.linalg.qr(rng.standard_normal((DIM, DIM)))
    tr_idx, te_idx = np.repeat(np.arange(m), 3), np.arange(m)
    make = lambda idx: _unit(corpus[idx] @ rot.T + 0.3 * _noise(rng, len(idx)))  # noqa: E731
    return {
        "corpus": corpus,
        "train_q": make(tr_idx),
        "train_pos": [[int(j)] for j in tr_idx],
        "test_q": make(te_idx),
        "test_pos": [[int(j)] for j in te_idx],
    }


@pytest.fixture(scope="module")
def fitted(rotation_task):
    t = rotation_task
    return fit_linear_adapter(t["train_q"], t["train_pos"], t["corpus"], epochs=15, lr=1e-2)


@pytest.fixture(scope="module")
def nudge_task():
    """Passages 0..89 are asked about by noisy copies of a per-passage 'question centroid' that differs
    from the passage vector (4 training + 1 held-out query each); passages 90..119 have no queries."""
    rng = np.random.default_rng(1)
    m, asked = 120, 90
    corpus = _noise(rng, m)
    centroid = _unit(corpus[:asked] + 2.5 * _noise(rng, asked))
    tr_idx, te_idx = np.repeat(np.arange(asked), 4), np.arange(asked)
    make = lambda idx: _unit(centroid[idx] + 0.7 * _noise(rng, len(idx)))  # noqa: E731
    return {
        "corpus": corpus,
        "asked": asked,
        "train_q": make(tr_idx),
        "train_pos": [[int(j)] for j in tr_idx],
        "test_q": make(te_idx),
        "test_pos": [[int(j)] for j in te_idx],
    }


# ----------------------------------------------------------------------------------------------
# Linear adapter


def test_adapter_starts_at_identity():
    x = _noise(np.random.default_rng(2), 5)
    ad = LinearAdapter.identity(DIM)
    np.testing.assert_array_equal(ad.weight, np.eye(DIM, dtype=np.float32))
    np.testing.assert_allclose(ad.transform(x), x, atol=1e-6)
    np.testing.assert_allclose(ad.transform(x[0]), x[0], atol=1e-6)
    assert ad.transform(x).dtype == np.float32


def test_untrained_fit_is_identity(rotation_task):
    """A fit that cannot move (tiny learning rate) returns (numerically) the identity."""
    t = rotation_task
    ad, hist = fit_linear_adapter(t["train_q"][:40], t["train_pos"][:40], t["corpus"], epochs=1, lr=1e-9)
    assert hist.chosen["epoch"] in (0, 1)
    np.testing.assert_allclose(ad.transform(t["test_q"]), t["test_q"], atol=1e-5)


def test_adapter_learns_rotation(rotation_task, fitted):
    t = rotation_task
    ad, hist = fitted
    base = mrr_at_10(t["test_q"], t["test_pos"], t["corpus"])
    tuned = mrr_at_10(ad.transform(t["test_q"]), t["test_pos"], t["corpus"])
    assert base < 0.1
    assert tuned > base + 0.6
    assert hist.chosen["val_mrr@10"] > hist.chosen["baseline_val_mrr@10"] + 0.6
    assert hist.chosen["epoch"] >= 1 and hist.chosen["n_val"] == round(0.15 * 360)
    assert len(hist.losses) == len(hist.val_scores) == len(hist.steps)
    assert hist.losses[-1] < hist.losses[0]
    # the kept weights are those of the chosen epoch
    assert max(hist.val_scores) == pytest.approx(hist.chosen["val_mrr@10"])


def test_adapter_is_deterministic(rotation_task):
    t = rotation_task
    args = (t["train_q"][:120], t["train_pos"][:120], t["corpus"])
    a1, h1 = fit_linear_adapter(*args, epochs=3, lr=1e-2, seed=7)
    a2, h2 = fit_linear_adapter(*args, epochs=3, lr=1e-2, seed=7)
    np.testing.assert_array_equal(a1.weight, a2.weight)
    np.testing.assert_array_equal(a1.bias, a2.bias)
    assert h1 == h2


def test_save_load_roundtrip_without_pickle(fitted, tmp_path, monkeypatch):
    ad, _ = fitted
    path = ad.save(tmp_path / "adapter.npz")
    assert path == tmp_path / "adapter.npz" and path.exists()
    seen = []
    real_load = np.load

    def spy(*args, **kwargs):
        seen.append(kwargs.get("allow_pickle"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(np, "load", spy)
    back = LinearAdapter.load(path)
    assert seen == [False]
    np.testing.assert_array_equal(back.weight, ad.weight)
    np.testing.assert_array_equal(back.bias, ad.bias)

    evil = tmp_path / "evil.npz"
    np.savez(evil, weight=np.array([{"a": 1}], dtype=object), bias=np.zeros(2))
    with pytest.raises(ValueError):
        LinearAdapter.load(evil)
    other = tmp_path / "other.npz"
    np.savez(other, w=np.eye(2))
    with pytest.raises(ValueError, match="missing"):
        LinearAdapter.load(other)
    npy = tmp_path / "plain.npy"
    with open(npy, "wb") as fh:
        np.save(fh, np.eye(2))
    with pytest.raises(ValueError, match="not a saved adapter"):
        LinearAdapter.load(npy)


def test_should_stop_after_first_epoch(rotation_task):
    t = rotation_task
    calls = []

    def stop():
        calls.append(1)
        return True

    ad, hist = fit_linear_adapter(t["train_q"], t["train_pos"], t["corpus"], epochs=20, lr=1e-2, should_stop=stop)
    assert len(calls) == 1 and len(hist.losses) == 1 and hist.cancelled
    assert hist.chosen["epoch"] in (0, 1)
    assert isinstance(ad, LinearAdapter)


def test_progress_increases_to_one(rotation_task):
    t = rotation_task
    seen: list[tuple[str, float]] = []
    fit_linear_adapter(t["train_q"][:90], t["train_pos"][:90], t["corpus"], epochs=4,
                       progress=lambda msg, f: seen.append((msg, f)))
    fractions = [f for _, f in seen]
    assert fractions[-1] == 1.0
    assert all(b > a for a, b in zip(fractions, fractions[1:]))
    assert all(isinstance(msg, str) and msg for msg, _ in seen)


def test_adapter_without_validation_keeps_last_epoch(rotation_task):
    t = rotation_task
    _, hist = fit_linear_adapter(t["train_q"][:60], t["train_pos"][:60], t["corpus"], epochs=2, val_fraction=0.0)
    assert hist.chosen["epoch"] == 2 and hist.val_scores == [] and hist.chosen["val_mrr@10"] is None


def test_adapter_bad_inputs(rotation_task):
    t = rotation_task
    with pytest.raises(ValueError, match="outside the corpus"):
        fit_linear_adapter(t["train_q"][:2], [[0], [999]], t["corpus"])
    with pytest.raises(ValueError, match="dimensions"):
        fit_linear_adapter(t["train_q"][:2, :8], [[0], [1]], t["corpus"])
    with pytest.raises(ValueError, match="nothing to learn"):
        fit_linear_adapter(t["train_q"][:2], [[], []], t["corpus"])


def test_mrr_matches_core_metrics():
    from core.retrieval.metrics import per_query_metrics

    rng = np.random.default_rng(3)
    corpus, queries = _noise(rng, 60), _noise(rng, 25)
    positives = [sorted(rng.choice(60, size=int(rng.integers(1, 4)), replace=False).tolist()) for _ in range(25)]
    order = np.argsort(-(queries @ corpus.T), axis=1)
    ranked = [[str(j) for j in row] for row in order]
    want = per_query_metrics(ranked, [[str(j) for j in p] for p in positives])["MRR@10"].mean()
    assert mrr_at_10(queries, positives, corpus) == pytest.approx(want)
    assert mrr_at_10(queries, [[]] * 25, corpus) == 0.0


# ----------------------------------------------------------------------------------------------
# NUDGE


@pytest.mark.parametrize("variant", ["N", "M"])
def test_nudge_improves_held_out_queries(nudge_task, variant):
    t = nudge_task
    new, hist = nudge(t["train_q"], t["train_pos"], t["corpus"], variant=variant)
    base = mrr_at_10(t["test_q"], t["test_pos"], t["corpus"])
    tuned = mrr_at_10(t["test_q"], t["test_pos"], new)
    assert tuned > base + 0.3
    assert hist.chosen["gamma"] > 0 and hist.chosen["variant"] == f"NUDGE-{variant}"
    assert hist.chosen["passages_changed"] == t["asked"]
    grid = N.NUDGE_N_GAMMAS if variant == "N" else N.NUDGE_M_GAMMAS
    assert hist.steps == sorted(grid) and len(hist.val_scores) == len(grid)
    assert hist.chosen["gamma"] in grid
    assert hist.chosen["val_mrr@10"] == max(hist.val_scores)
    # passages no training query points to are exactly as they were
    np.testing.assert_array_equal(new[t["asked"]:], t["corpus"][t["asked"]:])
    assert new.dtype == np.float32 and new.shape == t["corpus"].shape
    norms = np.linalg.norm(new, axis=1)
    if variant == "N":
        np.testing.assert_allclose(norms, 1.0, atol=1e-5)
    else:  # NUDGE-M is not renormalised: nudged rows grow
        assert (norms[: t["asked"]] > 1.0).all()


def test_nudge_gamma_from_given_grid(nudge_task):
    t = nudge_task
    seen: list[float] = []
    grid = [0.3, 0.0, 0.1]
    _, hist = nudge(t["train_q"], t["train_pos"], t["corpus"], gammas=grid, progress=lambda m, f: seen.append(f))
    assert hist.steps == [0.0, 0.1, 0.3] and len(hist.val_scores) == 3
    assert hist.chosen["gamma"] in grid
    assert hist.val_scores[0] == pytest.approx(hist.chosen["baseline_val_mrr@10"])  # gamma 0 = unchanged
    assert seen[-1] == 1.0 and all(b > a for a, b in zip(seen, seen[1:]))


def test_nudge_final_update_uses_all_training_queries(nudge_task):
    """With one gamma, the output is the closed form with g from ALL training queries, and it is the
    optimum of the NUDGE-N problem: max g·e' subject to |e'| = 1, |e' - e|² <= gamma."""
    t = nudge_task
    gamma = 0.2
    new, hist = nudge(t["train_q"], t["train_pos"], t["corpus"], gammas=[gamma])
    assert hist.chosen["gamma"] == gamma
    g = np.zeros_like(t["corpus"], dtype=np.float64)
    for qv, (j,) in zip(t["train_q"], t["train_pos"]):
        g[j] += qv
    rng = np.random.default_rng(4)
    for j in (0, 17, 55):
        e, x = t["corpus"][j].astype(np.float64), new[j].astype(np.float64)
        assert np.sum((x - e) ** 2) <= gamma + 1e-5
        # random feasible points never beat it
        scale = rng.uniform(0.01, 0.1, size=(500, 1))
        cand = _unit(e + scale * rng.standard_normal((500, DIM))).astype(np.float64)
        feasible = cand[np.sum((cand - e) ** 2, axis=1) <= gamma]
        assert len(feasible) > 0
        assert (feasible @ g[j] <= x @ g[j] + 1e-6).all()
    m_new, _ = nudge(t["train_q"], t["train_pos"], t["corpus"], variant="M", gammas=[gamma])
    g_hat = g[0] / np.linalg.norm(g[0])
    np.testing.assert_allclose(m_new[0], t["corpus"][0] + gamma * g_hat, atol=1e-6)


def test_nudge_bad_inputs(nudge_task):
    t = nudge_task
    args = (t["train_q"], t["train_pos"], t["corpus"])
    with pytest.raises(ValueError, match="variant"):
        nudge(*args, variant="X")
    with pytest.raises(ValueError, match="step sizes"):
        nudge(*args, gammas=[-0.1, 0.2])
    with pytest.raises(ValueError, match="validation"):
        nudge(*args, gammas=[0.1, 0.2], val_fraction=0.0)


def test_nudge_applies_rule():
    assert nudge_applies(["a", "b", "c"], ["a", "b"]) == (True, "")
    assert nudge_applies(["a", "b"], ["b", "x", "y"]) == (True, "")  # overlap: shared passages are nudged
    ok, why = nudge_applies(["a", "b"], [f"e{i}" for i in range(395)])
    assert not ok
    assert "395 passages of which none are in the training corpus" in why
    assert "adapter" in why and "full fine-tune" in why
    ok, why = nudge_applies(["a"], [])
    assert not ok and why


def test_replace_nudged():
    base = np.eye(3, dtype=np.float32)
    nudged = np.full((2, 3), 0.5, dtype=np.float32)
    out = replace_nudged(["x", "b", "y"], base, ["a", "b"], nudged)
    np.testing.assert_array_equal(out, [[1, 0, 0], [0.5, 0.5, 0.5], [0, 0, 1]])
    np.testing.assert_array_equal(base, np.eye(3))  # input untouched


# ----------------------------------------------------------------------------------------------
# The pieces fit: rank with DenseIndex, score with score_ranking, as the caller does.


def _as_dataset(queries_pos: list[list[int]], m: int):
    from core.dataset import QADataset

    doc_ids = [f"d{j:03d}" for j in range(m)]
    qids = [f"q{i:03d}" for i in range(len(queries_pos))]
    ds = QADataset(
        queries={q: f"question {q}" for q in qids},
        corpus={d: f"passage {d}" for d in doc_ids},
        relevant_docs={q: [doc_ids[j] for j in p] for q, p in zip(qids, queries_pos)},
    )
    return ds, doc_ids


def test_with_dense_index_and_score_ranking(rotation_task, fitted, nudge_task):
    from core.retrieval.evaluation import score_ranking
    from core.retrieval.index import DenseIndex

    t = rotation_task
    ad, _ = fitted
    ds, doc_ids = _as_dataset(t["test_pos"], len(t["corpus"]))
    index = DenseIndex(doc_ids, t["corpus"])
    base = score_ranking("base", ds, index.search(t["test_q"], 100))
    tuned = score_ranking("adapter", ds, index.search(ad.transform(t["test_q"]), 100))
    assert tuned.metrics["MRR@10"] == pytest.approx(mrr_at_10(ad.transform(t["test_q"]), t["test_pos"], t["corpus"]))
    assert tuned.metrics["MRR@10"] > base.metrics["MRR@10"] + 0.6

    n = nudge_task
    nudged, _ = nudge(n["train_q"], n["train_pos"], n["corpus"])
    ds, doc_ids = _as_dataset(n["test_pos"], len(n["corpus"]))
    assert nudge_applies(doc_ids, ds.corpus)[0]
    vecs = replace_nudged(list(ds.corpus), n["corpus"], doc_ids, nudged)
    before = score_ranking("base", ds, DenseIndex(doc_ids, n["corpus"]).search(n["test_q"], 100))
    after = score_ranking("NUDGE-N", ds, DenseIndex(doc_ids, vecs).search(n["test_q"], 100))
    assert after.metrics["MRR@10"] > before.metrics["MRR@10"] + 0.3
    assert after.metrics["nDCG@10"] > before.metrics["nDCG@10"]


def test_validation_mrr_breaks_ties_like_the_evaluation():
    """Duplicate passage vectors tie exactly; the evaluation (DenseIndex + core.retrieval.metrics) ranks
    tied passages by id, so a tied wrong passage with a smaller id comes first. The fit's validation
    MRR must agree (it used to count every tie in the right passage's favour)."""
    from core.retrieval import metrics as M
    from core.retrieval.index import DenseIndex

    rng = np.random.default_rng(3)
    base = _unit(rng.normal(size=(12, DIM)))
    corpus = np.concatenate([base, base[:6]])  # rows 12..17 duplicate rows 0..5 exactly
    ids = [f"p{i:02d}" for i in range(12)] + [f"a{i:02d}" for i in range(6)]  # duplicates sort first by id
    queries = _unit(base[:8] + 0.05 * rng.normal(size=(8, DIM)))
    positives = [[i] for i in range(8)]  # the originals, tied with a smaller-id duplicate for i < 6
    ranking = DenseIndex(ids, corpus, kind="exact").search(queries, 100)
    expected = float(M.per_query_metrics(ranking[0], [[ids[p[0]]] for p in positives])["MRR@10"].mean())
    assert mrr_at_10(queries, positives, corpus, corpus_ids=ids) == pytest.approx(expected)
    assert expected < 1.0  # ties cost the originals a rank here: the check is not vacuous
    assert mrr_at_10(queries, positives, corpus) > expected  # by row order the originals come first
