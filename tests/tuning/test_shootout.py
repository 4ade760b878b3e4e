"""Shoot-out: every method on one split, each a run of its own; NUDGE left out where it cannot apply."""

import pytest

from core.execute import execute
from core.tuning.runs import create_run, load_spec
from core.tuning.shootout import load_shootout
from core.tuning.spec import RunSpec, Scoring
from core.workspace.jobs import JobRunner
from core.workspace.store import Store
from tests.conftest import make_tiny_dataset
from tests.test_cli import _pairs_file, _run
from tests.workspace.test_jobs import _done


@pytest.mark.slow
def test_shootout_runs_each_method_and_skips_nudge_with_reason(tmp_path):
    ds = make_tiny_dataset(30)
    q = ds.query_ids
    train = ds.subset(q[:24], [f"d{i}" for i in range(24)])
    ev = ds.subset(q[24:], [f"d{i}" for i in range(24, 30)])  # disjoint passages: NUDGE cannot apply
    store = Store(tmp_path / "ws")
    ds_id = store.save_dataset("disjoint", train, ev)
    spec = RunSpec.for_method("shootout", scoring=Scoring(passage_tokens=64))
    spec.settings.full.max_steps, spec.settings.full.batch_size, spec.settings.full.max_seq_length = 1, 8, 32
    spec.settings.adapter.epochs = 3
    run_id = create_run(store, ds_id, spec, name="so")
    snap = _done(JobRunner(store).submit(run_id, lambda job: execute(store, run_id, job, device="cpu")), 600)
    assert snap.status == "done", snap.error
    out = load_shootout(store.run_dir(run_id))
    table = out.table()
    assert list(table.index) == ["base", "BM25", "hybrid (base + BM25)", "tuned (full)", "hybrid (full + BM25)", "tuned (adapter)",
                                 "hybrid (adapter + BM25)"]
    assert "nudge" in out.skipped and "NUDGE" in out.verdict and out.passage_tokens == 64
    assert (table["seconds"] > 0).all() and table["nDCG@10"].between(0, 1).all()
    children = {r["id"]: r for r in store.list_runs() if r["id"] in out.children.values()}
    assert {r["method"] for r in children.values()} == {"full", "adapter"}
    assert all(r["status"] == "done" for r in children.values())
    for child in out.children.values():  # each child runs under the shoot-out's scoring conditions
        assert load_spec(store, child).scoring == spec.scoring
    assert store.get_run(run_id)["metrics"]["nDCG@10"] == max(table["nDCG@10"])


@pytest.mark.slow
def test_shootout_cli_with_nudge(tmp_path):
    path = _pairs_file(tmp_path / "pairs.jsonl", make_tiny_dataset(40))
    proc = _run(["shootout", "--train", str(path), "--methods", "adapter", "nudge", "--split-by", "query"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    for name in ("base", "BM25", "tuned (adapter)", "tuned (NUDGE)", "hybrid (nudge + BM25)", "Best on nDCG@10"):
        assert name in proc.stdout
