"""The catalog as the pickers offer it: the user's newest dataset first, the sample last."""

from __future__ import annotations

from core.insight.history import dataset_choices
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
    assert frame["MRR@10"].tolist() == ["0.612", "-"]
    assert "None" not in frame.astype(str).to_numpy()
