"""A full fine-tune with two processes (torchrun, gloo on CPU) on a smoke configuration."""

from __future__ import annotations

import pytest

from core.execute import execute
from core.retrieval.embedding import encode, load_model
from core.tuning.runs import create_run
from core.tuning.spec import RunSpec
from core.workspace.jobs import Job
from core.workspace.run_folder import load_results


@pytest.mark.slow
def test_two_process_training_saves_a_model_that_loads_and_scores(tiny_store):
    store, ds_id = tiny_store
    spec = RunSpec.for_method("full", processes=2, max_steps=2, batch_size=4, max_seq_length=32)
    run_id = create_run(store, ds_id, spec)
    seen = []

    class Watch(Job):
        def progress(self, done, total, unit="steps", epoch=None):
            super().progress(done, total, unit, epoch)
            if unit == "steps":
                seen.append(done)

    job = Watch(store, run_id)
    job.run(lambda j: execute(store, run_id, j, device="cpu"))
    snap = job.snapshot()
    assert snap.status == "done", snap.error
    assert seen and seen[-1] == 2  # rank 0's steps reached the parent's job
    results = load_results(store.run_dir(run_id))
    assert "2 processes (torchrun)" in results.training[0]
    assert 0 <= results.systems["tuned"].metrics["nDCG@10"] <= 1
    model = load_model(str(store.run_dir(run_id) / "model"), device="cpu")
    assert encode(model, ["pump leaks oil"], kind="query").shape == (1, 384)
