"""A run whose tuned model is the base model unchanged says so (issue 26): ``base_unchanged`` reads the run's
files (the adapter's weights), and the bundle's README says "this bundle is the base model unchanged"."""

from __future__ import annotations

import pytest

from core.insight.export import write_bundle
from core.insight.unchanged import UNCHANGED_BUNDLE, base_unchanged
from core.tuning.adapter import LinearAdapter
from core.tuning.spec import RunSpec, Scoring
from core.workspace.store import Store
from tests.insight.test_export import make_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("unchanged") / "ws")
    scoring = Scoring(passage_tokens=64)
    # On the tiny set the base model already ranks every held-back question first: no epoch can beat it, so the
    # fit keeps the identity (epoch 0), as it did on sec-10k's generated questions.
    kept = make_run(store, RunSpec.for_method("adapter", scoring=scoring, epochs=3), name="kept identity")
    # Without held-back questions the last epoch is kept: a changed adapter.
    moved = make_run(store, RunSpec.for_method("adapter", scoring=scoring, epochs=3, val_fraction=0.0),
                     name="moved adapter")
    return store, kept, moved


def test_identity_adapter_is_the_base_model_unchanged(runs, tmp_path):
    store, kept, moved = runs
    identity = LinearAdapter.load(store.run_dir(kept) / "adapter.npz")
    assert (identity.weight == LinearAdapter.identity(identity.dim).weight).all() and not identity.bias.any()
    note = base_unchanged(store.run_dir(kept))
    assert note is not None and note.startswith("No epoch of the query adapter beat the base model")
    assert "the tuned model is the base model unchanged (nDCG@10 " in note
    readme = (write_bundle(store, kept, tmp_path / "kept", with_onnx=False) / "README.md").read_text()
    assert f"**Unchanged: {UNCHANGED_BUNDLE}.**" in readme and note in readme

    assert base_unchanged(store.run_dir(moved)) is None  # a trained adapter: not the base model
    readme = (write_bundle(store, moved, tmp_path / "moved", with_onnx=False) / "README.md").read_text()
    assert UNCHANGED_BUNDLE not in readme


def test_unreadable_runs_are_not_called_unchanged(runs, tmp_path):
    store, kept, _ = runs
    assert base_unchanged(tmp_path / "no-such-run") is None
    (store.run_dir(kept) / "adapter.npz").rename(tmp_path / "adapter.npz")
    try:
        assert base_unchanged(store.run_dir(kept)) is None
    finally:
        (tmp_path / "adapter.npz").rename(store.run_dir(kept) / "adapter.npz")
