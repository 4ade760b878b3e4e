"""The hybrid's fusion is chosen on validation data: the better side gets the weight."""

import core.retrieval.fusion as F
from core.dataset import QADataset
from core.retrieval.evaluation import score_ranking


def _val(n=30):
    return QADataset({f"q{i}": f"question {i}" for i in range(n)}, {f"d{i}": f"passage {i}" for i in range(n)},
                     {f"q{i}": [f"d{i}"] for i in range(n)})


def _ranking(val, good: bool):
    ids, scores = [], []
    docs = list(val.corpus)
    for i in range(len(val.query_ids)):
        order = [f"d{i}"] + [d for d in docs if d != f"d{i}"] if good else [d for d in docs if d != f"d{i}"] + [f"d{i}"]
        ids.append(order[:20])
        scores.append([1.0 - 0.01 * r for r in range(len(order[:20]))])
    return ids, scores


class _Fixed:
    def __init__(self, ranking):
        self._r = ranking

    def ranking(self):
        return self._r


def test_weight_goes_to_the_system_that_works(monkeypatch):
    val = _val()
    monkeypatch.setattr(F, "evaluate_bm25", lambda ds: _Fixed(_ranking(ds, good=False)))
    choice = F.choose_fusion(val, _ranking(val, good=True))
    assert choice.method == "weighted" and choice.alpha >= 0.6
    fused = F.fuse(_ranking(val, True), _ranking(val, False), choice)
    got = score_ranking("h", val, fused).metrics["nDCG@10"]
    assert got == max(choice.scores.values()) and got > choice.scores["rrf"]
    monkeypatch.setattr(F, "evaluate_bm25", lambda ds: _Fixed(_ranking(ds, good=True)))
    choice = F.choose_fusion(val, _ranking(val, good=False))
    assert choice.method == "weighted" and choice.alpha <= 0.4
    assert "evaluation split was not used" in choice.note


def test_no_validation_data_falls_back_to_fixed_rrf_and_says_so():
    choice = F.choose_fusion(None, None)
    assert choice.method == "rrf" and choice.n_val == 0 and choice.fixed
    assert "fixed reciprocal rank fusion" in choice.note and "no training questions were held out" in choice.note


# BM25 returns only passages with a score above 0, so its lists can be short or empty: fusion and metrics
# must take that (and no zero-score passage may earn fusion credit).


def test_rrf_gives_no_credit_to_passages_bm25_did_not_find():
    from core.retrieval.index import BM25Index, rrf_fuse

    texts = {"a": "pump seal leaks", "b": "valve sticks", "c": "hose bursts under pressure"}
    sparse = BM25Index(list(texts), list(texts.values())).search(["hose pressure", "nothing in common"])
    assert sparse[0] == [["c"], []]
    dense = ([["a", "b", "c"], ["b", "a", "c"]], [[0.9, 0.8, 0.7], [0.9, 0.8, 0.7]])
    ids, scores = rrf_fuse([dense, sparse], k=10)
    fused = dict(zip(ids[0], scores[0]))
    assert fused["a"] == 1 / 61 and fused["b"] == 1 / 62  # dense only: BM25 did not find them
    assert fused["c"] == 1 / 63 + 1 / 61
    assert ids[1] == ["b", "a", "c"]  # no BM25 hit: the dense order stands


def test_weighted_fusion_and_metrics_with_empty_sparse_lists():
    from core.retrieval.index import weighted_fuse

    val = _val(4)
    dense = _ranking(val, good=True)
    sparse = ([["d0"], [], [], ["d1", "d3"]], [[2.0], [], [], [1.5, 0.5]])
    ids, _ = weighted_fuse(dense, sparse, alpha=0.5, k=10)
    assert ids[1][0] == "d1" and ids[2][0] == "d2"  # dense alone where BM25 found nothing
    bm25 = score_ranking("bm25", val, sparse)
    assert bm25.per_query["Accuracy@1"].tolist() == [1.0, 0.0, 0.0, 0.0]
    assert bm25.per_query["gold_rank"].isna().tolist() == [False, True, True, False]
    assert 0 < bm25.metrics["nDCG@10"] < 1


def test_fusion_chosen_with_real_bm25_when_some_questions_match_nothing():
    val = QADataset(
        {f"q{i}": f"how does part {i} fail" if i % 3 else "zzz" for i in range(12)},
        {f"d{i}": f"part {i} fails when worn" for i in range(12)},
        {f"q{i}": [f"d{i}"] for i in range(12)},
    )
    sparse = F.evaluate_bm25(val).ranking()
    assert [] in sparse[0] and all(len(r) <= 12 for r in sparse[0])
    choice = F.choose_fusion(val, _ranking(val, good=True))
    assert choice.method in ("rrf", "weighted") and choice.n_val == 12 and not choice.fixed
