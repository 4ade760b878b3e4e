"""FAISS search against brute force; BM25 sanity; fusion against ranx (a kept IR library)."""

from __future__ import annotations

import numpy as np
import pytest

from core.retrieval.index import BM25Index, DenseIndex, rrf_fuse, weighted_fuse


def _unit(rng, n, d):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_dense_index_matches_brute_force(kind):
    rng = np.random.default_rng(0)
    docs, queries = _unit(rng, 500, 32), _unit(rng, 20, 32)
    ids = [f"d{i}" for i in range(500)]
    got, scores = DenseIndex(ids, docs, kind=kind).search(queries, k=10)
    brute = queries @ docs.T
    for qi in range(20):
        want = [ids[j] for j in np.argsort(-brute[qi])[:10]]
        if kind == "exact":
            assert got[qi] == want
            assert scores[qi] == pytest.approx(sorted(brute[qi], reverse=True)[:10], abs=1e-5)
        else:  # approximate: most of the true top 10
            assert len(set(got[qi]) & set(want)) >= 8


def test_dense_index_small_corpus_and_ties():
    v = np.array([[1, 0], [1, 0], [0, 1]], dtype=np.float32)
    ids, _ = DenseIndex(["b", "a", "c"], v).search(np.array([[1, 0]], dtype=np.float32), k=10)
    assert ids == [["a", "b", "c"]]  # tie broken by id, k capped at corpus size


def test_bm25_finds_lexical_match():
    texts = ["the accumulator precharge pressure", "pump cavitation noise", "hose crimp length"]
    ids, scores = BM25Index(["a", "b", "c"], texts).search(["why is the pump noisy with cavitation"], k=3)
    assert ids[0][0] == "b" and scores[0][0] > 0


def test_bm25_returns_only_passages_with_a_score():
    """No zero-score padding: a query matching one passage gets one, a query matching none gets []."""
    texts = ["the accumulator precharge pressure", "pump cavitation noise", "hose crimp length"]
    index = BM25Index(["a", "b", "c"], texts)
    ids, scores = index.search(["pump", "why is it so", "pressure of the hose"], k=3)
    assert ids == [["b"], [], ["a", "c"]] or ids == [["b"], [], ["c", "a"]]
    assert all(s > 0 for row in scores for s in row)
    assert [len(r) for r in scores] == [len(r) for r in ids]


def test_bm25_ties_broken_by_id_and_k_respected():
    texts = ["pump seal", "pump seal", "pump seal", "valve"]
    ids, scores = BM25Index(["d3", "d1", "d2", "d0"], texts).search(["pump"], k=2)
    assert ids == [["d1", "d2"]] and scores[0][0] == scores[0][1] > 0
    assert BM25Index([], []).search(["pump"]) == ([[]], [[]])


def _ranx_run(ids, scores):
    from ranx import Run

    return Run({f"q{i}": {d: float(s) for d, s in zip(r, sc)} for i, (r, sc) in enumerate(zip(ids, scores))})


def _random_ranking(rng, n_q=15, n_docs=60, depth=20):
    ids, scores = [], []
    for _ in range(n_q):
        r = list(rng.choice(n_docs, depth, replace=False))
        s = np.sort(rng.random(depth))[::-1]
        ids.append([f"d{x:02d}" for x in r])
        scores.append(list(s))
    return ids, scores


def _assert_same_as_ranx(ours, fused, k):
    for i in range(len(ours[0])):
        want = sorted(fused[f"q{i}"].items(), key=lambda x: (-x[1], x[0]))[:k]
        assert ours[0][i] == [d for d, _ in want]
        assert ours[1][i] == pytest.approx([s for _, s in want])


# ranx compiles its fusion code with numba on first use (~10-50 s on 2 cores): run by `make test`, not by
# the quick loop `make test-fast` (-m "not slow").
@pytest.mark.slow
def test_rrf_matches_ranx():
    from ranx import fuse

    rng = np.random.default_rng(1)
    a, b = _random_ranking(rng), _random_ranking(rng)
    fused = fuse([_ranx_run(*a), _ranx_run(*b)], method="rrf", params={"k": 60}).to_dict()
    _assert_same_as_ranx(rrf_fuse([a, b], k=30), fused, 30)


@pytest.mark.slow
def test_weighted_fusion_matches_ranx_wsum_minmax():
    from ranx import fuse

    rng = np.random.default_rng(2)
    a, b = _random_ranking(rng), _random_ranking(rng)
    fused = fuse([_ranx_run(*a), _ranx_run(*b)], norm="min-max", method="wsum", params={"weights": [0.3, 0.7]})
    _assert_same_as_ranx(weighted_fuse(a, b, alpha=0.3, k=30), fused.to_dict(), 30)


def test_hnsw_recall_is_measured_against_exact_search():
    rng = np.random.default_rng(5)
    vecs = rng.normal(size=(3000, 32)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    q = vecs[:300] + 0.05 * rng.normal(size=(300, 32)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    ids = [f"d{i}" for i in range(3000)]
    hnsw = DenseIndex(ids, vecs, kind="hnsw")
    exact = DenseIndex(ids, vecs, kind="exact")
    measured = hnsw.recall_at_10(q)
    got = hnsw.search(q[:50], 10)[0]
    truth = exact.search(q[:50], 10)[0]
    by_hand = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, truth)])
    assert 0.9 <= measured <= 1.0 and abs(measured - by_hand) < 0.05
    assert hnsw.describe(q).startswith("HNSW (recall@10 vs exact ") and exact.describe(q) == "exact"
    assert exact.recall_at_10(q) == 1.0


def test_large_collections_are_searched_with_hnsw_and_say_so(monkeypatch, model):
    import core.retrieval.index as I
    from core.retrieval.evaluation import evaluate_dense
    from tests.conftest import make_tiny_dataset

    monkeypatch.setattr(I, "HNSW_MIN_DOCS", 10)
    res = evaluate_dense(model, make_tiny_dataset(30), passage_tokens=64)
    assert res.conditions.index.startswith("HNSW (recall@10 vs exact")
