"""The rerank stage inside a run: trained on the run's questions (tuning) or brought (both sides), scored on
the same questions as every pipeline, its interval against the pipeline it reranks, and shipped whole."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from core.insight.bundle_pipeline import pipeline_files
from core.insight.explore import open_run
from core.retrieval import stats
from core.retrieval.rerank import RerankSettings
from core.workspace.run_folder import load_results
from tests.retrieval.test_fairness import SPECS, _run, long_store  # noqa: F401 - the module fixture is reused
from tests.retrieval.test_rerank import tiny_ce, tiny_checkpoint  # noqa: F401 - fixtures

SMOKE = dict(max_steps=2, max_pairs=16, negatives=1, batch_size=8, max_length=64, top_k=10)


@pytest.fixture(scope="module")
def rerank_run(long_store):  # noqa: F811
    store, ds_id = long_store
    spec = SPECS["adapter"]()
    spec.rerank = RerankSettings(**SMOKE)
    return store, _run(store, ds_id, spec)


def test_a_trained_reranker_is_a_tuned_pipeline_over_the_best_first_stage(rerank_run):
    store, run_id = rerank_run
    res = load_results(store.run_dir(run_id))
    assert "rerank" in res.roles and "base_rerank" not in res.roles
    pipe = res.pipelines["rerank"]
    assert pipe.rerank_trained and pipe.uses_tuning and pipe.rerank_top_k == 10
    first = pipe.first_stage
    # the first stage is the best of the five on the validation hold-out (the rule that picks every best)
    five = {r: s for r, s in res.best.scores.items() if r != "rerank"}
    assert first == max(five, key=five.get) and "rerank" in res.best.scores
    assert res.systems["rerank"].conditions == res.systems[first].conditions
    assert stats.find(res.comparisons, first, "rerank") is not None  # its interval against what it reranks
    assert (store.run_dir(run_id) / "reranker" / "config.json").exists()
    assert any("s per question on this machine" in line for line in res.training)
    assert res.systems["rerank"].name == f"{res.systems[first].name} + reranker"


def test_search_py_reproduces_the_reranked_top_10(rerank_run, tmp_path):
    store, run_id = rerank_run
    view = open_run(store, run_id)
    folder = tmp_path / "bundle"
    for name, data in pipeline_files(view, view.results, view.spec, view.run_dir, role="rerank"):
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data if isinstance(data, bytes) else data.read_bytes())
    (folder / "adapter.npz").write_bytes((view.run_dir / "adapter.npz").read_bytes())
    spec = importlib.util.spec_from_file_location("bundle_search_rerank", folder / "search.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    pipe = mod.Pipeline(folder)
    assert json.loads((folder / "pipeline.json").read_text())["rerank"]["top_k"] == 10
    for qid in view.query_ids:
        assert [d for d, _ in pipe.search(view.eval.queries[qid])] == view.rankings["rerank"][qid][0][:10], qid


def test_rescore_adds_a_brought_reranker_to_both_sides_without_retraining(rerank_run, tiny_ce, tmp_path):  # noqa: F811
    store, run_id = rerank_run
    before = load_results(store.run_dir(run_id))
    adapter = (store.run_dir(run_id) / "adapter.npz").read_bytes()
    out = subprocess.run([sys.executable, "-m", "core", "rerank", run_id, "--model", tiny_ce,
                          "--top-k", "5", "--set", "rerank.max_length=64"],
                         capture_output=True, text=True, timeout=600,
                         env={"ETL_WORKSPACE": str(store.root), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin",
                              "TOKENIZERS_PARALLELISM": "false"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Best pipeline with tuning vs best without" in out.stdout
    after = load_results(store.run_dir(run_id))
    assert {"base_rerank", "rerank"} <= set(after.roles)
    assert not after.pipelines["base_rerank"].uses_tuning and after.pipelines["rerank"].uses_tuning
    assert after.pipelines["rerank"].rerank == tiny_ce and not after.pipelines["rerank"].rerank_trained
    for role in ("base", "tuned", "bm25", "base_hybrid", "hybrid"):  # the first stages score as before
        assert after.systems[role].metrics == before.systems[role].metrics
    assert (store.run_dir(run_id) / "adapter.npz").read_bytes() == adapter  # nothing retrained
    assert [line for line in after.training if not line.startswith("Rerank stage")] == \
        [line for line in before.training if not line.startswith("Rerank stage")]
    bad = subprocess.run([sys.executable, "-m", "core", "rerank", run_id, "--set", "rerank.nope=1"],
                         capture_output=True, text=True, timeout=120,
                         env={"ETL_WORKSPACE": str(store.root), "PATH": "/usr/bin:/bin"})
    assert bad.returncode != 0 and "rerank.NAME=VALUE" in bad.stderr
