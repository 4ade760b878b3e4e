"""The catalog as the pickers offer it: the user's newest dataset first, the sample last."""

from __future__ import annotations

from types import SimpleNamespace

from core.dataset import QADataset, corpus_unit, corpus_words, count_passages
from core.insight.history import dataset_choices, not_comparable
from core.sample import ensure_sample
from core.workspace.store import Store
from tests.conftest import make_tiny_dataset


def test_users_dataset_is_the_default_even_when_the_sample_is_newer(tmp_path):
    store = Store(tmp_path)
    ds = make_tiny_dataset(20)
    mine = store.save_dataset("my papers", ds.subset(ds.query_ids[:10]), ds.subset(ds.query_ids[10:]))
    sample = ensure_sample(store)[0]  # e.g. re-added at a server start after the user deleted it
    newer = store.save_dataset("my papers v2", ds.subset(ds.query_ids[:12]), ds.subset(ds.query_ids[12:]))
    assert [d["id"] for d in dataset_choices(store)] == [newer, mine, sample]


def test_question_origin_in_words():
    from core.dataset import QADataset, question_origin

    ds = QADataset({f"q{i}": "x" for i in range(4)}, {"d": "p"}, {f"q{i}": ["d"] for i in range(4)})
    assert question_origin(ds) == "as uploaded"
    ds.origins = {"q0": "human", "q1": "human"}
    assert question_origin(ds) == "2 human-labelled, 2 as uploaded"  # not "mixed (0 of 4 generated)"
    ds.origins["q2"] = "generated:offline:crop"
    assert question_origin(ds) == "mixed (1 of 4 generated)"
    ds.origins = {f"q{i}": "human" for i in range(4)}
    assert question_origin(ds) == "human-labelled"


def test_runs_frame_shows_a_dash_for_runs_without_scores():
    from core.insight.history import runs_frame

    runs = [{"id": "a", "status": "done", "method": "full", "created": 0, "metrics": {"Accuracy@10": 0.8, "MRR@10": 0.61234, "nDCG@10": 0.7}},
            {"id": "b", "status": "interrupted", "method": "full", "created": 0, "metrics": {}}]
    frame = runs_frame(runs, {})
    assert frame["MRR@10"].tolist() == ["0.612", "—"]
    assert "None" not in frame.astype(str).to_numpy()


def _scored(questions: int, q_fp: str, passages: int, p_fp: str):
    cond = SimpleNamespace(questions=questions, questions_fingerprint=q_fp, passages=passages, passages_fingerprint=p_fp)
    return SimpleNamespace(systems={"base": SimpleNamespace(conditions=cond)})


def test_not_comparable_names_what_differs():
    """Issue 27 item 5: two runs compare only on the same evaluation questions over the same passages."""
    a = _scored(271, "q1", 3866, "p1")
    assert not_comparable(a, _scored(271, "q1", 3866, "p1")) == []
    assert not_comparable(a, _scored(19, "q2", 3866, "p1")) == ["different evaluation questions (271 vs 19)"]
    assert not_comparable(a, _scored(271, "q2", 120, "p2")) == [
        "different evaluation questions or answer passages (both 271, not the same ones)",
        "different passages searched (3,866 vs 120)"]


def test_cut_copies_are_counted_apart_from_passages(tmp_path):
    """Issue 27 item 1: a training split's cut copies of passages (``<passage id>#tag``) are not passages: the
    catalog, the Train page and the progress lines count the collection's passages."""
    ps = {f"p{i}": f"Sentence {i}. The rest of passage {i}." for i in range(3)}
    train = QADataset({"g1": "Sentence 0."}, {**ps, "p0#ic": "The rest of passage 0."}, {"g1": ["p0#ic"]})
    ev = QADataset({"h1": "which passage?"}, dict(ps), {"h1": ["p1"]})
    assert count_passages(train, ev) == (3, 1) and count_passages(ev) == (3, 0)
    assert corpus_words(ev) == "3 passages" and corpus_unit(ev) == "passages"
    assert corpus_words(train) == "4 training texts (3 passages + 1 cut copy of a passage)"
    assert corpus_unit(train) == "training texts"
    store = Store(tmp_path)
    ds_id = store.save_dataset("gen", train, ev)
    assert store.get_dataset(ds_id)["n_passages"] == 3
    store.update_dataset(ds_id, train=train)
    assert store.get_dataset(ds_id)["n_passages"] == 3
