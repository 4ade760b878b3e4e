"""Weight merging (WiSE-FT) after the full fine-tune: (1 - w) x base + w x tuned, w chosen on validation."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from core.dataset import QADataset
from core.execute import execute
from core.retrieval.embedding import encode, forget_fingerprint
from core.tuning import full
from core.tuning.runs import create_run
from core.tuning.spec import RunSpec, Scoring
from core.workspace.jobs import Job, Reporter
from core.workspace.run_folder import load_results
from core.workspace.store import Store
from tests.conftest import make_tiny_dataset

TEXTS = ["the relief valve on pump seven is set to 210 bar", "how often is the cooler oil changed"]


@pytest.fixture(scope="module")
def tuned(model):
    """The base model with every floating weight moved (a stand-in for a fine-tuned model)."""
    out = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in out.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    forget_fingerprint(out)
    return out


def _merged(model, tuned, w: float):
    out = copy.deepcopy(tuned)
    with torch.no_grad():
        out.load_state_dict(full.interpolate(model.state_dict(), tuned.state_dict(), w))
    forget_fingerprint(out)
    return out


def test_merge_at_zero_is_the_base_model_and_at_one_the_tuned(model, tuned):
    base_vecs, tuned_vecs = encode(model, TEXTS, kind="passage"), encode(tuned, TEXTS, kind="passage")
    assert not np.allclose(base_vecs, tuned_vecs, atol=1e-3)  # the stand-in moved
    np.testing.assert_allclose(encode(_merged(model, tuned, 0.0), TEXTS, kind="passage"), base_vecs, atol=1e-6)
    np.testing.assert_allclose(encode(_merged(model, tuned, 1.0), TEXTS, kind="passage"), tuned_vecs, atol=1e-6)
    half = encode(_merged(model, tuned, 0.5), TEXTS, kind="passage")
    assert not np.allclose(half, base_vecs, atol=1e-3) and not np.allclose(half, tuned_vecs, atol=1e-3)


def test_interpolate_is_linear_and_refuses_another_architecture():
    a = {"w": torch.zeros(2), "ids": torch.tensor([0, 1])}
    b = {"w": torch.ones(2) * 4, "ids": torch.tensor([0, 1])}
    assert torch.equal(full.interpolate(a, b, 0.25)["w"], torch.ones(2))
    assert torch.equal(full.interpolate(a, b, 0.25)["ids"], b["ids"])  # integer buffers are not mixed
    with pytest.raises(ValueError, match="same architecture"):
        full.interpolate({"w": torch.zeros(3)}, b, 0.5)


def test_choose_merge_takes_the_best_validation_score_ties_to_the_larger_weight():
    assert full.choose_merge([(0.25, 0.70), (0.5, 0.74), (0.75, 0.72), (1.0, 0.71)]) == 0.5
    assert full.choose_merge([(0.25, 0.70), (0.5, 0.74), (1.0, 0.74)]) == 1.0
    with pytest.raises(ValueError):
        full.choose_merge([])


def test_the_weight_is_chosen_on_validation_only(model, tuned, monkeypatch):
    """Validation prefers w 0.5, the evaluation questions would prefer w 0.25: the merge only ever scores the
    hold-out, and keeps 0.5 (the saved weights are that mix)."""
    val = QADataset({"v": "validation question"}, {"d": "a passage"}, {"v": ["d"]})
    ev = QADataset({"e": "evaluation question"}, {"d": "a passage"}, {"e": ["d"]})
    by_set = {id(val): {0.25: 0.60, 0.5: 0.80, 0.75: 0.70, 1.0: 0.65},
              id(ev): {0.25: 0.90, 0.5: 0.50, 0.75: 0.50, 1.0: 0.50}}
    name = next(k for k, v in model.state_dict().items() if v.is_floating_point() and v.dim() == 2)
    base_w, tuned_w = model.state_dict()[name][0, 0].item(), tuned.state_dict()[name][0, 0].item()
    seen = []

    def fake_evaluate(m, ds, **kw):
        w = round((m.state_dict()[name][0, 0].item() - base_w) / (tuned_w - base_w), 2)
        seen.append((id(ds), w))
        return SimpleNamespace(metrics={"nDCG@10": by_set[id(ds)][w]})

    monkeypatch.setattr(full, "evaluate_dense", fake_evaluate)
    monkeypatch.setattr(full, "load_model", lambda name, device=None: copy.deepcopy(model))
    work = copy.deepcopy(tuned)
    chosen, scores = full.merge_with_base(work, None, val, 64, Reporter())
    assert chosen == 0.5
    assert scores == [[0.25, 0.60], [0.5, 0.80], [0.75, 0.70], [1.0, 0.65]]
    assert {d for d, _ in seen} == {id(val)} and [w for _, w in seen] == [0.25, 0.5, 0.75, 1.0]
    expected = full.interpolate(model.state_dict(), tuned.state_dict(), 0.5)
    assert all(torch.allclose(work.state_dict()[k].float(), v.float()) for k, v in expected.items())
    assert work.max_seq_length == tuned.max_seq_length


@pytest.mark.slow
def test_a_run_with_merging_says_the_weight_and_each_score(tmp_path):
    ds = make_tiny_dataset(40)
    q = ds.query_ids
    store = Store(tmp_path)
    ds_id = store.save_dataset("tiny", ds.subset(q[:32]), ds.subset(q[32:]))
    spec = RunSpec.for_method("full", scoring=Scoring(passage_tokens=48, validation_share=0.25), max_steps=2,
                              batch_size=8, max_seq_length=32, merge_base=True, hard_negatives=1,
                              negatives_from="bm25")
    run_id = create_run(store, ds_id, spec)
    job = Job(store, run_id)
    job.run(lambda j: execute(store, run_id, j, device="cpu"))
    assert job.snapshot().status == "done", job.snapshot().error
    res = load_results(store.run_dir(run_id))
    line = next(x for x in res.training if x.startswith("Weight merging"))
    assert all(f"w {w:g}: " in line for w in full.MERGE_WEIGHTS) and "held-out questions" in line
    assert (store.run_dir(run_id) / "model").is_dir()
