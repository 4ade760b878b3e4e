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
