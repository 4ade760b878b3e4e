"""Our metrics equal sentence-transformers' InformationRetrievalEvaluator."""

from __future__ import annotations

import random

import numpy as np
import pytest

from core.retrieval import metrics as M

ST_KEYS = {
    "Accuracy@{k}": ("accuracy@k", M.ACCURACY_KS),
    "Precision@{k}": ("precision@k", M.PR_KS),
    "Recall@{k}": ("recall@k", M.PR_KS),
    "MRR@{k}": ("mrr@k", [10]),
    "nDCG@{k}": ("ndcg@k", [10]),
    "MAP@{k}": ("map@k", [100]),
}


def _st_evaluator(queries, corpus, relevant):
    from core.tuning.st import ir_evaluator  # the one place that knows where sentence-transformers keeps it

    return ir_evaluator()(queries, corpus, relevant, write_csv=False)


def _assert_same(ours: dict, theirs: dict):
    for pattern, (key, ks) in ST_KEYS.items():
        for k in ks:
            assert ours[pattern.format(k=k)] == pytest.approx(float(theirs[key][k]), abs=1e-9), pattern.format(k=k)


def test_hand_case():
    # q1: relevant at rank 2 and 4 of 2 relevant; q2: relevant not retrieved.
    df = M.per_query_metrics([["a", "b", "c", "d"], ["x", "y"]], [{"b", "d"}, {"z"}], ["q1", "q2"])
    q1 = df.loc["q1"]
    assert q1["Accuracy@1"] == 0 and q1["Accuracy@3"] == 1
    assert q1["MRR@10"] == pytest.approx(0.5)
    assert q1["Recall@3"] == pytest.approx(0.5) and q1["Precision@3"] == pytest.approx(1 / 3)
    assert q1["MAP@100"] == pytest.approx((1 / 2 + 2 / 4) / 2)
    idcg = 1 + 1 / np.log2(3)
    assert q1["nDCG@10"] == pytest.approx((1 / np.log2(3) + 1 / np.log2(5)) / idcg)
    assert q1["gold_rank"] == 2
    assert df.loc["q2"].drop("gold_rank").sum() == 0 and np.isnan(df.loc["q2"]["gold_rank"])


def test_random_rankings_match_st_compute_metrics():
    """Synthetic rankings (several relevant docs, misses, short lists) through both."""
    rng = random.Random(0)
    docs = [f"d{i:03d}" for i in range(300)]
    queries, relevant, results = {}, {}, []
    for i in range(200):
        q = f"q{i:03d}"
        queries[q] = q
        relevant[q] = set(rng.sample(docs, rng.randint(1, 6)))
        ranking = rng.sample(docs, rng.choice([5, 50, 120]))
        results.append([{"corpus_id": d, "score": 1.0 - j / 1000} for j, d in enumerate(ranking)])
    ev = _st_evaluator(queries, {d: d for d in docs}, relevant)
    theirs = ev.compute_metrics(results)
    ours = M.summarize(
        M.per_query_metrics([[h["corpus_id"] for h in r] for r in results], [relevant[q] for q in queries])
    )
    _assert_same(ours, theirs)


@pytest.mark.slow
def test_dense_retrieval_matches_st_evaluator_on_eval_subset(model, eval_subset):
    """Our whole dense pipeline (encode, FAISS, metrics) vs the evaluator with the same model."""
    from core.retrieval.evaluation import evaluate_dense

    ds = eval_subset
    ours = evaluate_dense(model, ds, passage_tokens=model.max_seq_length).metrics  # as the evaluator reads
    theirs = _st_evaluator(ds.queries, ds.corpus, {q: set(v) for q, v in ds.relevant_docs.items()})
    flat = theirs(model)  # {"cosine_accuracy@1": ..., ...}
    theirs = {key: {k: flat[f"cosine_{key[:-2]}@{k}"] for k in ks} for key, ks in ST_KEYS.values()}
    for pattern, (key, ks) in ST_KEYS.items():
        for k in ks:
            # float32 FAISS vs torch cosine can reorder exact near-ties: allow one query's worth
            assert ours[pattern.format(k=k)] == pytest.approx(float(theirs[key][k]), abs=1.01 / len(ds))
