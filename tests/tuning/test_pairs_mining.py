"""Training pairs: which window of a long positive, and hard negatives mined from cached vectors."""

from __future__ import annotations

import numpy as np
import pytest

from core.dataset import QADataset
from core.retrieval.embedding import encode
from core.tuning.pairs import mine_negatives, positive_texts


def test_mining_never_returns_a_positive_and_keeps_the_margin():
    rng = np.random.default_rng(0)
    unit = lambda x: (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)  # noqa: E731
    corpus = unit(rng.normal(size=(50, 8)))
    q = unit(corpus[:10] + 0.3 * rng.normal(size=(10, 8)))
    positives = [[i, (i + 1) % 50] for i in range(10)]
    mined = mine_negatives(q, positives, corpus, num=3, range_max=20, relative_margin=0.1)
    for i, negs in enumerate(mined):
        assert not set(negs) & set(positives[i]) and len(negs) <= 3
        limit = 0.9 * max(float(q[i] @ corpus[p]) for p in positives[i])
        assert all(float(q[i] @ corpus[n]) <= limit + 1e-6 for n in negs)
        ranked = np.argsort(-(corpus @ q[i]))[:20]
        eligible = [int(j) for j in ranked if j not in positives[i] and float(q[i] @ corpus[j]) <= limit]
        assert negs == eligible[:3]  # the best eligible ones, in order


def test_mining_matches_sentence_transformers_miner(model):
    """Same model, same margin and range: our miner on cached vectors picks what ST's miner picks."""
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    rng = np.random.default_rng(1)
    topics = ["pump", "valve", "hose", "filter", "seal", "motor", "cooler", "tank"]
    corpus = [f"The {t} of unit {i} needs {w} inspection every {i + 2} weeks." for i, (t, w) in
              enumerate((topics[k % 8], ["visual", "pressure", "leak", "noise"][k % 4]) for k in range(40))]
    qs = [f"how often to inspect the {topics[k % 8]} of unit {k}" for k in range(0, 40, 3)]
    pos = [corpus[k] for k in range(0, 40, 3)]
    del rng
    theirs = mine_hard_negatives(Dataset.from_dict({"anchor": qs, "positive": pos}), model, corpus=corpus,
                                 range_max=10, relative_margin=0.05, num_negatives=2, sampling_strategy="top",
                                 output_format="n-tuple", verbose=False)
    q_vecs = encode(model, qs, kind="query")
    c_vecs = encode(model, corpus, kind="passage")
    mined = mine_negatives(q_vecs, [[corpus.index(p)] for p in pos], c_vecs, num=2, range_max=10,
                           relative_margin=0.05)
    ours = {(qs[i], tuple(corpus[j] for j in m)) for i, m in enumerate(mined) if len(m) == 2}
    got = {(r["anchor"], (r["negative_1"], r["negative_2"])) for r in theirs}
    assert ours == got


@pytest.fixture(scope="module")
def long_ds():
    filler = " ".join(f"general remark {k} about maintenance schedules and logs." for k in range(40))
    corpus = {"d1": "Pump overview. " + filler + " The relief valve on pump seven is set to 210 bar. " + filler,
              "d2": "Short passage about hoses."}
    return QADataset({"q1": "what is the relief valve setting on pump seven", "q2": "hoses"}, corpus,
                     {"q1": ["d1"], "q2": ["d2"]}, answers={"q1": "set to 210 bar"})


def test_training_window_modes(long_ds, model):
    first = positive_texts(long_ds, model, "first", 64)
    assert [p for _, _, p in first] == [long_ds.corpus["d1"], long_ds.corpus["d2"]]
    best = dict((q, p) for q, _, p in positive_texts(long_ds, model, "best", 64))
    assert "210 bar" in best["q1"] and len(best["q1"]) < len(long_ds.corpus["d1"])
    assert best["q2"] == long_ds.corpus["d2"]  # a passage that fits is kept whole
    answer = dict((q, p) for q, _, p in positive_texts(long_ds, model, "answer", 64))
    assert "set to 210 bar" in answer["q1"]
    no_answers = QADataset(long_ds.queries, long_ds.corpus, long_ds.relevant_docs)
    assert positive_texts(no_answers, model, "answer", 64) == positive_texts(long_ds, model, "best", 64)
    every = [p for q, _, p in positive_texts(long_ds, model, "all", 64) if q == "q1"]
    assert len(every) > 3 and any("210 bar" in p for p in every) and every[0].startswith("Pump overview.")


@pytest.mark.slow
@pytest.mark.parametrize("options", [
    {"train_passage": "best", "hard_negatives": 1, "loss": "cached_mnrl"},
    {"train_passage": "all", "loss": "cached_gist"},
    {"train_passage": "answer", "hard_negatives": 1, "loss": "gist"},
    {"train_passage": "first", "hard_negatives": 2, "loss": "mnrl"},
])
def test_full_fine_tune_runs_with_each_recipe_option(options, tmp_path):
    from core.execute import execute
    from core.tuning.runs import create_run
    from core.tuning.spec import RunSpec, Scoring
    from core.workspace.jobs import Job
    from core.workspace.store import Store
    from tests.retrieval.test_fairness import long_dataset

    ds = long_dataset(30)
    q = ds.query_ids
    store = Store(tmp_path)
    ds_id = store.save_dataset("long", ds.subset(q[:24]), ds.subset(q[24:]))
    spec = RunSpec.for_method("full", scoring=Scoring(passage_tokens=48, windows=True), max_steps=2, batch_size=8,
                              max_seq_length=32, **options)
    run_id = create_run(store, ds_id, spec)
    job = Job(store, run_id)
    job.run(lambda j: execute(store, run_id, j, device="cpu"))
    assert job.snapshot().status == "done", job.snapshot().error


def test_gist_with_two_negatives_is_refused_before_running():
    from core.tuning.spec import RunSpec

    with pytest.raises(ValueError, match="at most one hard negative"):
        RunSpec.for_method("full", loss="cached_gist", hard_negatives=2)


def test_default_trains_on_the_answer_else_best_window_and_older_runs_read_as_they_ran():
    from core.tuning.spec import FullSettings, RunSpec

    assert FullSettings().train_passage == "answer"  # the answer's window, else the measured best (issue 14)
    spec = RunSpec.for_method("full")
    assert RunSpec.from_dict(spec.to_dict()).settings.train_passage == "answer"
    old = spec.to_dict()
    del old["settings"]["train_passage"]  # a config.json saved before the setting existed: it trained on "first"
    assert RunSpec.from_dict(old).settings.train_passage == "first"
    assert FullSettings().mini_batch_size == 8  # measured: same quality, a third less RAM (bench/RESULTS.md)
    del old["settings"]["mini_batch_size"]
    assert RunSpec.from_dict(old).settings.mini_batch_size == 16
    shoot = RunSpec.for_method("shootout").to_dict()
    del shoot["settings"]["full"]["train_passage"]
    assert RunSpec.from_dict(shoot).settings.full.train_passage == "first"
    legacy = {"method": "full", "epochs": 1, "batch_size": 8}  # flat config of runs made before specs existed
    assert RunSpec.from_dict(legacy).settings.train_passage == "first"


def test_bm25_miner_on_a_hand_made_case():
    """BM25's confusions: the high-scoring passages that are not a positive, below the positive's own score by
    the margin, among BM25's top range_max; never a positive, never a passage BM25 does not find."""
    from core.retrieval.index import BM25Index
    from core.retrieval.terms import terms
    from core.tuning.pairs import mine_bm25_negatives

    corpus = {
        "pos": "the relief valve on pump seven is set to 210 bar",
        "pos2": "valve overview",  # a second positive, scoring between "near" and "far"
        "twin": "the relief valve on pump seven is set to 210 bar",  # a copy: scores like the positive
        "near": "the relief valve on pump eight is set to 180 bar",
        "far": "pump maintenance logs are kept for a year",
        "none": "hoses are replaced every spring",
    }
    ds = QADataset({"q": "relief valve setting on pump seven", "q2": "spring hoses"}, corpus,
                   {"q": ["pos", "pos2"], "q2": ["none"]})
    ids = list(corpus)
    bm = BM25Index(ids, [corpus[d] for d in ids])
    s = dict(zip(ids, bm.scores(terms(ds.queries["q"]))))
    limit = 0.95 * max(s["pos"], s["pos2"])
    assert s["twin"] > limit and 0 < s["near"] <= limit and 0 < s["far"] < s["pos2"] < s["near"] and s["none"] == 0

    mined = mine_bm25_negatives(ds, num=3, range_max=30, relative_margin=0.05)
    assert mined["q"] == ["near", "far"]  # the twin is too close (a likely false negative); "none" not found
    assert mined["q2"] == []  # nothing else shares a term with "spring hoses"
    for q, negs in mined.items():
        assert not set(negs) & set(ds.relevant_docs[q])
    assert mine_bm25_negatives(ds, num=1, range_max=30, relative_margin=0.05)["q"] == ["near"]
    # range_max counts BM25's ranking, positives included: its top 2 are the positive and its twin
    assert mine_bm25_negatives(ds, num=3, range_max=2, relative_margin=0.05)["q"] == []
    assert mine_bm25_negatives(ds, num=3, range_max=3, relative_margin=0.05)["q"] == ["near"]
    # no margin: the twin scores the same as the positive, not above it, so it is allowed
    assert "twin" in mine_bm25_negatives(ds, num=3, range_max=30, relative_margin=0.0)["q"]


def test_training_pairs_take_negatives_from_bm25_when_asked(model):
    from core.tuning.full import training_pairs
    from core.tuning.spec import FullSettings
    from core.workspace.jobs import Reporter

    ds = QADataset({"q": "relief valve setting on pump seven", "q2": "oil change interval of the cooler"},
                   {"pos": "the relief valve on pump seven is set to 210 bar",
                    "near": "the relief valve on pump eight is set to 180 bar",
                    "cool": "change the cooler oil every 500 hours",
                    "coolx": "the cooler fan interval is checked yearly"},
                   {"q": ["pos"], "q2": ["cool"]})
    got = training_pairs(ds, model, FullSettings(hard_negatives=1, negatives_from="bm25", train_passage="first"),
                         64, None, Reporter())
    rows = {a: n for a, n in zip(got["anchor"], got["negative_1"])}
    assert rows[ds.queries["q"]] == ds.corpus["near"]
    assert rows[ds.queries["q2"]] == ds.corpus["coolx"]


def test_negatives_from_is_checked_and_round_trips():
    from core.tuning.spec import FullSettings, RunSpec

    with pytest.raises(ValueError, match="negatives_from 'sparse'"):
        RunSpec.for_method("full", negatives_from="sparse")
    spec = RunSpec.for_method("full", hard_negatives=1, negatives_from="bm25", merge_base=True)
    back = RunSpec.from_dict(spec.to_dict())
    assert back.settings.negatives_from == "bm25" and back.settings.merge_base is True
    old = spec.to_dict()
    del old["settings"]["negatives_from"], old["settings"]["merge_base"]  # a config.json from before
    assert RunSpec.from_dict(old).settings.negatives_from == "dense"
    assert RunSpec.from_dict(old).settings.merge_base is False
    assert FullSettings().negatives_from == "dense" and FullSettings().merge_base is False
