"""Fair comparisons: every path that scores a base model scores it under the tuned side's conditions.

The data has long passages (~170 words), so the passage token limit changes the vectors: scoring
the base model at one limit and the tuned model at another would show up here (the review found
the app's runs scored base passages at 256 tokens and tuned ones at 512).
"""

from __future__ import annotations

import numpy as np
import pytest

from core.dataset import QADataset
from core.execute import execute
from core.insight.explore import open_run
from core.retrieval.embedding import load_model
from core.retrieval.evaluation import Conditions, encode_dataset, evaluate_bm25, evaluate_dense
from core.retrieval.results import build_results
from core.tuning.runs import create_run
from core.tuning.spec import RunSpec, Scoring
from core.workspace.jobs import Job
from core.workspace.run_folder import load_results
from core.workspace.store import Store

TOKENS = 48  # far below both the model's own 256 and the old default 512
TOPICS = ["pump", "valve", "hose", "filter", "cylinder", "accumulator", "seal", "cooler", "motor", "reservoir"]


def long_dataset(n: int = 30) -> QADataset:
    queries, corpus, rel = {}, {}, {}
    for i in range(n):
        t = TOPICS[i % len(TOPICS)]
        head = f"Case {i}: when the {t} fails, check item {i} first."
        tail = " ".join(f"{TOPICS[(i + k) % len(TOPICS)]} detail {k} of case {i} concerns torque, flow and heat."
                        for k in range(16))
        queries[f"q{i}"] = f"what to check first when the {t} fails in case {i}"
        corpus[f"d{i}"] = head + " " + tail
        rel[f"q{i}"] = [f"d{i}"]
    return QADataset(queries, corpus, rel)


@pytest.fixture(scope="module")
def long_store(tmp_path_factory):
    ds = long_dataset(30)
    q = ds.query_ids
    train = ds.subset(q[:24], [f"d{i}" for i in range(24)])
    ev = QADataset({k: ds.queries[k] for k in q[24:]}, ds.corpus, {k: ds.relevant_docs[k] for k in q[24:]})
    store = Store(tmp_path_factory.mktemp("fair") / "ws")
    return store, store.save_dataset("long passages", train, ev)


@pytest.fixture(scope="module")
def base_model():
    return load_model(device="cpu")


def _run(store, ds_id, spec):
    run_id = create_run(store, ds_id, spec)
    job = Job(store, run_id)
    job.run(lambda j: execute(store, run_id, j, device="cpu"))
    assert job.snapshot().status == "done", job.snapshot().error
    return run_id


SPECS = {
    "adapter": lambda: RunSpec.for_method("adapter", scoring=Scoring(passage_tokens=TOKENS), epochs=3),
    "nudge": lambda: RunSpec.for_method("nudge", scoring=Scoring(passage_tokens=TOKENS)),
    "full": lambda: RunSpec.for_method("full", scoring=Scoring(passage_tokens=TOKENS), max_steps=2, batch_size=8,
                                       max_seq_length=32),
}


@pytest.mark.parametrize("method", [
    "adapter", pytest.param("nudge", marks=pytest.mark.slow), pytest.param("full", marks=pytest.mark.slow)])
def test_base_and_tuned_read_passages_at_the_same_limit(method, long_store, base_model):
    store, ds_id = long_store
    run_id = _run(store, ds_id, SPECS[method]())
    results = load_results(store.run_dir(run_id))
    base, tuned = results.systems["base"].conditions, results.systems["tuned"].conditions
    assert base.passage_tokens == tuned.passage_tokens == TOKENS and not results.fairness_problems()
    assert base.passages_fingerprint == results.systems["bm25"].conditions.passages_fingerprint

    # the saved vectors really were encoded at TOKENS, and TOKENS matters on this data
    view = open_run(store, run_id)
    q48, d48 = encode_dataset(base_model, view.eval, TOKENS)
    _, d256 = encode_dataset(base_model, view.eval, 256)
    assert np.allclose(view.base_d, d48, atol=1e-5) and not np.allclose(d48, d256, atol=1e-3)
    if method == "full":
        tuned_model = load_model(str(store.run_dir(run_id) / "model"), device="cpu")
        assert tuned_model.max_seq_length == TOKENS  # saved to search like the base model
        _, t48 = encode_dataset(tuned_model, view.eval, TOKENS)
        assert np.allclose(view.tuned_d, t48, atol=1e-5)
    elif method == "adapter":
        assert np.allclose(view.tuned_d, d48, atol=1e-6)  # passages untouched, same limit

    # the Compare page's free-text search encodes with both models at the run's limit
    view.search(view.eval.queries[view.query_ids[0]], k=3)
    models = [view._encoders[k] for k in ("_base_model", "_tuned_model") if k in view._encoders]
    assert len(models) == (2 if method == "full" else 1) and all(m.max_seq_length == TOKENS for m in models)

    # the report states the limit both sides used
    from core.insight.report import build_report

    assert f"both read passages at {TOKENS} tokens" in build_report(store, run_id, with_maps=False)


def test_unfair_results_are_refused(long_store, base_model):
    store, ds_id = long_store
    _, ev = store.load_dataset(ds_id)
    base = evaluate_dense(base_model, ev, passage_tokens=256, name="base")
    tuned = evaluate_dense(base_model, ev, passage_tokens=TOKENS, name="tuned")
    with pytest.raises(ValueError, match="different passage token limits"):
        build_results("full", {"base": base, "tuned": tuned}, fusion=None, training=[], question_origin="x",
                      total_seconds=0)
    fewer = ev.subset(ev.query_ids[:3])
    bm25 = evaluate_bm25(fewer)
    with pytest.raises(ValueError, match="different questions"):
        build_results("full", {"base": base, "tuned": base, "bm25": bm25}, fusion=None, training=[],
                      question_origin="x", total_seconds=0)
    assert Conditions.of(ev, 10, "a").passages_fingerprint == Conditions.of(ev, 20, "b").passages_fingerprint


def test_no_validation_share_means_fixed_fusion_said_in_the_verdict(long_store):
    store, ds_id = long_store
    spec = RunSpec.for_method("adapter", scoring=Scoring(passage_tokens=TOKENS, validation_share=0), epochs=2)
    results = load_results(store.run_dir(_run(store, ds_id, spec)))
    assert results.fusion.fixed and results.fusion.n_val == 0
    assert "fixed reciprocal rank fusion" in results.verdict


def test_held_out_questions_never_reach_the_fit(long_store):
    store, ds_id = long_store
    spec = RunSpec.for_method("adapter", scoring=Scoring(passage_tokens=TOKENS, validation_share=0.2), epochs=2)
    results = load_results(store.run_dir(_run(store, ds_id, spec)))
    train, _ = store.load_dataset(ds_id)
    assert results.fusion is not None and not results.fusion.fixed and results.fusion.n_val > 0
    fitted = int(results.training[0].split("fitted on ")[1].split()[0])
    held_back = int(results.training[0].split("; ")[1].split()[0])
    assert fitted + held_back == len(train) - results.fusion.n_val  # the adapter saw only the training part


def test_progress_names_its_unit(long_store, base_model):
    """'Scoring the base model · 0/1000' said nothing: progress counts passages, then questions."""
    store, ds_id = long_store
    _, ev = store.load_dataset(ds_id)
    seen = []
    encode_dataset(base_model, ev, 40, progress=lambda d, t, u: seen.append((u, t)))
    assert ("passages", len(ev.corpus)) in seen and ("questions", len(ev)) in seen


@pytest.mark.slow
@pytest.mark.parametrize("method", ["adapter", "full"])
def test_windowed_passages_are_the_same_for_base_and_tuned(method, long_store, base_model):
    """With windows on, both sides search every window of a long passage, scored by the best one."""
    store, ds_id = long_store
    spec = SPECS[method]()
    spec.scoring.windows, spec.scoring.window_overlap = True, 8
    run_id = _run(store, ds_id, spec)
    results = load_results(store.run_dir(run_id))
    base, tuned = results.systems["base"].conditions, results.systems["tuned"].conditions
    assert base.windows == tuned.windows == f"{TOKENS}-token windows, 8 overlap, best window"
    assert not results.fairness_problems()
    view = open_run(store, run_id)
    assert view.owner is not None and len(view.owner) > len(view.passage_ids)  # long passages: several windows
    hits = view.search(view.eval.queries[view.query_ids[0]], k=3)  # searches windows too
    assert len(hits["base"]) == 3


def test_nudge_refuses_windowed_passages(long_store):
    store, ds_id = long_store
    spec = RunSpec.for_method("nudge", scoring=Scoring(passage_tokens=TOKENS, windows=True))
    run_id = create_run(store, ds_id, spec)
    job = Job(store, run_id)
    job.run(lambda j: execute(store, run_id, j, device="cpu"))
    assert job.snapshot().status == "failed" and "Turn 'Windowed passages' off for NUDGE" in job.snapshot().error
