"""Pipelines: a run compares retrievers (base, tuned, BM25, base hybrid, tuned hybrid), each hybrid's fusion
chosen by the same procedure on the same hold-out; the headline is best with tuning vs best without."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.dataset import QADataset
from core.retrieval import stats
from core.retrieval.evaluation import evaluate_bm25, score_ranking
from core.retrieval.fusion import FusionChoice, choose_fusion
from core.retrieval.pipeline import (
    BASE,
    BASE_HYBRID,
    BM25,
    HYBRID,
    TUNED,
    Pipeline,
    best_of,
    fusion_unfair,
    standard_pipelines,
)
from core.retrieval.results import build_results
from core.workspace.run_folder import load_results
from tests.retrieval.test_fairness import SPECS, _run, long_store  # noqa: F401 - the module fixture is reused


def _chosen(n_val=12, alpha=0.4):
    return FusionChoice("weighted", alpha, {"rrf": 0.5, **{f"weighted {a / 10:.1f}": 0.5 for a in range(1, 10)}},
                        n_val, False, "chosen")


def _systems(n=40, seed=0):
    """Five fake systems on one tiny dataset (rankings over 3 passages)."""
    rng = np.random.default_rng(seed)
    qids = [f"q{i}" for i in range(n)]
    ds = QADataset({q: f"question {q}" for q in qids}, {"a": "alpha", "b": "beta", "c": "gamma"},
                   {q: [["a", "b", "c"][i % 3]] for i, q in enumerate(qids)})
    out = {}
    for role, skill in ((BASE, 0.3), (TUNED, 0.5), (BM25, 0.6), (BASE_HYBRID, 0.65), (HYBRID, 0.9)):
        ids = []
        for q in qids:
            gold = ds.relevant_docs[q][0]
            rest = [d for d in "abc" if d != gold]
            ids.append([gold, *rest] if rng.random() < skill else [*rest, gold])
        out[role] = score_ranking(role, ds, (ids, [[3.0, 2.0, 1.0]] * n))
    return out


def test_a_comparison_where_one_hybrid_chose_its_fusion_and_the_other_did_not_is_refused():
    pipes = standard_pipelines("tuned (full)")
    pipes[BASE_HYBRID] = pipes[BASE_HYBRID].with_fusion(FusionChoice(note="fixed"))  # fixed RRF
    pipes[HYBRID] = pipes[HYBRID].with_fusion(_chosen())  # chosen on validation
    assert fusion_unfair(pipes) and "was fixed" in fusion_unfair(pipes)[0]
    with pytest.raises(ValueError, match="fusion was chosen on held-out questions but hybrid \\(base"):
        build_results("full", _systems(), fusion=pipes[HYBRID].fusion, training=[], question_origin="x",
                      total_seconds=0, pipelines=pipes)
    # chosen on different hold-outs: refused too
    pipes[BASE_HYBRID] = pipes[BASE_HYBRID].with_fusion(_chosen(n_val=7))
    with pytest.raises(ValueError, match="different questions or candidates"):
        build_results("full", _systems(), fusion=pipes[HYBRID].fusion, training=[], question_origin="x",
                      total_seconds=0, pipelines=pipes)
    # both chosen the same way: accepted, even with different winners
    pipes[BASE_HYBRID] = pipes[BASE_HYBRID].with_fusion(_chosen(alpha=0.7))
    res, _ = build_results("full", _systems(), fusion=pipes[HYBRID].fusion, training=[], question_origin="x",
                           total_seconds=0, pipelines=pipes)
    assert not res.fairness_problems()


def test_best_pipelines_are_picked_on_validation_and_the_headline_compares_them():
    pipes = {r: p.with_fusion(_chosen()) if p.hybrid else p for r, p in standard_pipelines("tuned (x)").items()}
    systems = _systems(n=120)
    # on validation BM25 beats the base hybrid: the untuned side's best is BM25 even though the base hybrid
    # scores higher on the evaluation questions (the choice never looks at them)
    val = {BASE: 0.3, TUNED: 0.5, BM25: 0.7, BASE_HYBRID: 0.6, HYBRID: 0.8}
    res, pq = build_results("full", systems, fusion=pipes[HYBRID].fusion, training=[], question_origin="x",
                            total_seconds=0, pipelines=pipes, val_scores=val, n_val=12)
    assert (res.best.untuned, res.best.tuned, res.best.chosen_on, res.best.n) == (BM25, HYBRID, "validation", 12)
    head = res.headline_delta
    assert (head.a, head.b, head.metric) == (BM25, HYBRID, "nDCG@10")
    assert head.delta == pytest.approx(pq[f"{HYBRID}|nDCG@10"].mean() - pq[f"{BM25}|nDCG@10"].mean())
    assert res.recommended == HYBRID and res.verdict.startswith("Deploy hybrid (tuned + BM25): with tuning it beats")
    assert "Dense alone: the tuned model" in res.verdict
    assert stats.find(res.comparisons, BASE_HYBRID, HYBRID) is not None  # what tuning adds to a hybrid
    again = load_results_roundtrip(res)
    assert again.best == res.best and again.recommended == HYBRID
    assert again.systems[BASE_HYBRID].pipeline.fusion.alpha == 0.4


def load_results_roundtrip(res):
    from core.retrieval.results import RunResults

    return RunResults.from_dict(res.to_dict())


def test_without_a_hold_out_both_sides_are_picked_on_the_evaluation_alike_and_ties_go_to_the_simpler():
    pipes = standard_pipelines("t")
    scores = {BASE: 0.4, TUNED: 0.6, BM25: 0.6, BASE_HYBRID: 0.6, HYBRID: 0.6}
    best = best_of(pipes, scores, "evaluation", 30)
    assert (best.untuned, best.tuned) == (BM25, TUNED)  # a tie goes to the single-stage pipeline
    assert "no hold-out; both sides alike" in best.describe()
    with pytest.raises(ValueError):
        best_of({BASE: pipes[BASE]}, scores, "evaluation", 30)


def test_pipeline_verdicts_say_plainly_when_tuning_added_nothing():
    rng = np.random.default_rng(3)
    a = rng.random(20)
    pq = pd.DataFrame({"bm25|nDCG@10": a, "hybrid|nDCG@10": np.clip(a + rng.normal(0, 0.2, 20), 0, 1)})
    deltas = [stats.compare(pq, "bm25", "hybrid")]
    line = stats.pipeline_verdict("bm25", "hybrid", deltas, {"bm25": "BM25", "hybrid": "hybrid (tuned + BM25)"})
    assert line.startswith("Tuning added nothing measurable") and "Deploy BM25: it needs no tuned model" in line
    assert "With 20 evaluation questions a change smaller than about" in line
    assert stats.recommended("bm25", "hybrid", deltas) == "bm25"
    worse = pd.DataFrame({"bm25|nDCG@10": a, "hybrid|nDCG@10": a - 0.3})
    line = stats.pipeline_verdict("bm25", "hybrid", [stats.compare(worse, "bm25", "hybrid")], {})
    assert line.startswith("Deploy bm25: the best retriever without tuning beats") and "did not pay off" in line


def test_choose_fusion_is_one_procedure_for_both_hybrids():
    ds = QADataset({"q1": "pump seal leak", "q2": "valve noise"}, {"d1": "the pump seal leaks oil",
                                                                   "d2": "a noisy valve rattles", "d3": "other"},
                   {"q1": ["d1"], "q2": ["d2"]})
    sparse = evaluate_bm25(ds).ranking()
    dense = ([["d3", "d1", "d2"], ["d3", "d2", "d1"]], [[0.9, 0.5, 0.1], [0.9, 0.5, 0.1]])
    a = choose_fusion(ds, dense, sparse=sparse, label="Base hybrid")
    b = choose_fusion(ds, dense, label="Tuned hybrid")
    assert (a.method, a.alpha, a.scores) == (b.method, b.alpha, b.scores) and a.note.startswith("Base hybrid:")
    assert a.best_score == max(a.scores.values())
    assert Pipeline("x", "x", dense=BASE, bm25=True, fusion=a).describe().startswith("base model (dense) + BM25")


def test_a_run_scores_five_pipelines_with_both_fusions_chosen_on_the_same_hold_out(long_store):  # noqa: F811
    store, ds_id = long_store
    res = load_results(store.run_dir(_run(store, ds_id, SPECS["adapter"]())))
    assert res.roles == [BASE, TUNED, BM25, BASE_HYBRID, HYBRID]
    base_f, tuned_f = res.systems[BASE_HYBRID].pipeline.fusion, res.systems[HYBRID].pipeline.fusion
    assert not base_f.fixed and not tuned_f.fixed and base_f.n_val == tuned_f.n_val > 0
    assert sorted(base_f.scores) == sorted(tuned_f.scores)
    assert res.best is not None and res.best.chosen_on == "validation" and res.best.n == base_f.n_val
    assert not res.systems[res.best.untuned].pipeline.uses_tuning
    assert res.systems[res.best.tuned].pipeline.uses_tuning
    assert res.headline_delta is not None and res.verdict.split(".")[0] in res.verdict
    assert res.systems[BASE_HYBRID].conditions == res.systems[BASE].conditions
