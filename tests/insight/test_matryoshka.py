"""Matryoshka truncation: re-normalised prefixes, and the full size reproduces the run's own scores."""

from __future__ import annotations

import numpy as np
import pytest

from core.insight.matryoshka import quality_by_dimension, truncate


def test_truncation_is_a_renormalised_prefix():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(5, 384)).astype(np.float32)
    t = truncate(v, 64)
    expect = v[:, :64] / np.linalg.norm(v[:, :64], axis=1, keepdims=True)
    assert t.shape == (5, 64) and np.allclose(t, expect) and np.allclose(np.linalg.norm(t, axis=1), 1)


def test_full_dimension_row_reproduces_the_runs_scores(finished_view):
    view = finished_view
    table = quality_by_dimension(view)
    assert list(table["dimensions"][:4]) == [384, 256, 128, 64]
    full = table[(table["model"] == "tuned") & (table["dimensions"] == 384)].iloc[0]
    assert full["nDCG@10"] == pytest.approx(view.results.systems["tuned"].metrics["nDCG@10"], abs=1e-9)
    base = table[(table["model"] == "base") & (table["dimensions"] == 384)].iloc[0]
    assert base["nDCG@10"] == pytest.approx(view.results.systems["base"].metrics["nDCG@10"], abs=1e-9)
    assert table.set_index(["model", "dimensions"]).loc[("tuned", 64), "MB per 1M passages"] == 256.0


@pytest.fixture(scope="module")
def finished_view(tmp_path_factory):
    from core.execute import execute
    from core.insight.explore import open_run
    from core.tuning.runs import create_run
    from core.tuning.spec import RunSpec
    from core.workspace.jobs import Job
    from core.workspace.store import Store
    from tests.conftest import make_tiny_dataset

    ds = make_tiny_dataset(40)
    store = Store(tmp_path_factory.mktemp("mat"))
    ds_id = store.save_dataset("m", ds.subset(ds.query_ids[:30]), ds.subset(ds.query_ids[30:]))
    run_id = create_run(store, ds_id, RunSpec.for_method("adapter", epochs=3))
    job = Job(store, run_id)
    job.run(lambda j: execute(store, run_id, j, device="cpu"))
    return open_run(store, run_id)


@pytest.mark.slow
def test_views_prepared_once_and_read_back_from_memory_mapped_vectors(finished_view):
    """A finished run's vectors open memory-mapped; the map and the dimension table are saved with it."""
    from core.insight.explore import open_run
    from core.insight.projection import ProjectionParams
    from core.workspace.store import Store

    view = finished_view
    assert isinstance(view.base_d, np.memmap)  # read lazily from the run folder, not loaded whole
    store = Store(view.run_dir.parent.parent)
    calls = []
    view.prepare(progress=lambda m, f: calls.append(f))
    assert (view.run_dir / "by_dimension.csv").exists()
    assert (view.run_dir / f"projection-{ProjectionParams().key()}.npz").exists() and calls
    again = open_run(store, view.run_id)
    assert again.by_dimension().equals(view.by_dimension())
