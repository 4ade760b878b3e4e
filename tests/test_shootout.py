"""Shoot-out: every method on one split, each a run of its own; NUDGE left out where it cannot apply."""

import json

from core.tuning.jobs import JobRunner
from core.tuning.runs import execute_run
from core.tuning.shootout import shootout_table
from tests.conftest import make_tiny_dataset
from tests.test_cli import _run
from tests.test_jobs import _wait


def test_shootout_runs_each_method_and_skips_nudge_with_reason(tmp_path):
    from core.store import Store

    ds = make_tiny_dataset(30)
    q = ds.query_ids
    train = ds.subset(q[:24], [f"d{i}" for i in range(24)])
    ev = ds.subset(q[24:], [f"d{i}" for i in range(24, 30)])  # disjoint passages: NUDGE cannot apply
    store = Store(tmp_path / "ws")
    ds_id = store.save_dataset("disjoint", train, ev)
    config = {"methods": ["full", "adapter", "nudge"],
              "full": {"max_steps": 1, "batch_size": 8, "max_seq_length": 64, "index_max_seq_length": 64},
              "adapter": {"epochs": 3}}
    run_id = store.create_run(ds_id, "shootout", config, name="so")
    snap = _wait(JobRunner(store).submit(run_id, lambda job: execute_run(store, run_id, job, device="cpu")), 600)
    assert snap.status == "done", snap.error
    out = json.loads((store.run_dir(run_id) / "shootout.json").read_text())
    table = shootout_table(out)
    assert list(table.index) == ["base", "BM25", "tuned (full)", "hybrid (full + BM25)", "tuned (adapter)",
                                 "hybrid (adapter + BM25)"]
    assert "nudge" in out["skipped"] and "NUDGE" in out["verdict"]
    assert (table["seconds"] > 0).all() and table["nDCG@10"].between(0, 1).all()
    children = {r["id"]: r for r in store.list_runs() if r["id"] in out["children"].values()}
    assert {r["method"] for r in children.values()} == {"full", "adapter"}
    assert all(r["status"] == "done" for r in children.values())
    assert store.get_run(run_id)["metrics"]["nDCG@10"] == max(table["nDCG@10"])


def test_shootout_cli_with_nudge(tmp_path):
    ds = make_tiny_dataset(40)
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps({"query": ds.queries[q], "passage": ds.corpus[ds.relevant_docs[q][0]]})
                              for q in ds.query_ids))
    proc = _run(["shootout", "--train", str(path), "--methods", "adapter", "nudge", "--split-by", "query"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    for name in ("base", "BM25", "tuned (adapter)", "tuned (NUDGE)", "hybrid (nudge + BM25)", "Best on nDCG@10"):
        assert name in proc.stdout
