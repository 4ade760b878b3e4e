"""Windowed passages and max-pooling against a brute-force reference on tiny data."""

from __future__ import annotations

import numpy as np
import pytest

from core.retrieval.index import DenseIndex, top_k
from core.retrieval.windows import max_pool, maxp_search, split_windows


@pytest.fixture(scope="module")
def tokenizer(model):
    return model.tokenizer


def test_windows_cover_the_text_overlap_and_keep_short_passages_whole(tokenizer):
    long = " ".join(f"word{i}" for i in range(300))
    short = "A short passage that fits."
    w = split_windows([short, long], tokenizer, size=64, overlap=16)
    assert w.texts[0] == short and list(w.owner[:1]) == [0]
    pieces = [t for t, o in zip(w.texts, w.owner) if o == 1]
    assert len(pieces) > 1 and pieces[0].startswith("word0") and pieces[-1].endswith("word299")
    for t in pieces:  # each window fits the model: size tokens with [CLS] and [SEP]
        assert len(tokenizer(t, add_special_tokens=True)["input_ids"]) <= 64
    for a, b in zip(pieces, pieces[1:]):  # consecutive windows share text (the overlap)
        assert a.split()[-1] in b.split()
    assert " ".join(pieces).count("word150") >= 1
    assert list(w.first_rows(2)) == [0, 1]


def test_max_pool_equals_brute_force():
    rng = np.random.default_rng(0)
    owner = np.array([0, 0, 0, 1, 2, 2])
    scores = rng.normal(size=(4, 6))
    expect = np.stack([[row[owner == p].max() for p in range(3)] for row in scores])
    assert np.allclose(max_pool(scores, owner, 3), expect)
    with pytest.raises(ValueError):
        max_pool(scores, np.array([0, 1, 0, 1, 2, 2]), 3)


def test_maxp_search_equals_brute_force_and_one_window_equals_plain_search():
    rng = np.random.default_rng(1)
    unit = lambda x: (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)  # noqa: E731
    windows = unit(rng.normal(size=(40, 16)))
    owner = np.repeat(np.arange(10), 4)
    queries = unit(rng.normal(size=(7, 16)))
    ids = [f"d{i}" for i in range(10)]
    got = maxp_search(queries, windows, owner, ids, k=5)
    for qi, q in enumerate(queries):
        best = {ids[p]: max(float(windows[j] @ q) for j in np.flatnonzero(owner == p)) for p in range(10)}
        expect = sorted(best, key=lambda d: (-best[d], d))[:5]
        assert got[0][qi] == expect
        assert np.allclose(got[1][qi], [best[d] for d in expect], atol=1e-6)
    # one window per passage: MaxP is ordinary dense search
    plain = unit(rng.normal(size=(10, 16)))
    a = maxp_search(queries, plain, np.arange(10), ids, k=10)
    b = DenseIndex(ids, plain, kind="exact").search(queries, 10)
    assert a[0] == b[0]


def test_top_k_breaks_ties_by_id_like_the_evaluator():
    scores = np.array([[0.5, 0.9, 0.5, 0.5, 0.1]])
    ids, sc = top_k(scores, ["e", "a", "d", "b", "c"], 3)
    assert ids == [["a", "b", "d"]] and sc == [[0.9, 0.5, 0.5]]
