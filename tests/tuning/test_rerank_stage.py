"""The rerank stage inside a run: trained on the run's questions (tuning) or brought (both sides), scored on
the same questions as every pipeline, its interval against the pipeline it reranks, and shipped whole; which
first stage each side's reranker reorders (core.tuning.rerank_stage with a fake cross-encoder: fast)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import core.tuning.rerank_stage as stage_mod
from core.insight.bundle_pipeline import pipeline_files
from core.insight.explore import open_run
from core.retrieval import stats
from core.retrieval.evaluation import score_ranking
from core.retrieval.pipeline import Pipeline
from core.retrieval.rerank import RerankSettings, RerankStopped
from core.tuning.rerank_stage import _best
from core.workspace.jobs import Cancelled, Reporter
from core.workspace.run_folder import load_results
from tests.conftest import make_tiny_dataset
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


# ------------------------------------------------------------- which first stage is reranked (cross-encoder faked)


def _stage_setup(monkeypatch, stop: bool = False):
    """Five scored first stages on a tiny dataset (nDCG@10: base 1/3-ish ... hybrid best) and a fake
    cross-encoder that puts each question's own passage first."""
    ds = make_tiny_dataset(6)
    docs = list(ds.corpus)

    def ranking(hits: int):  # the first `hits` questions find their passage first, the rest third
        ids = [[ds.relevant_docs[q][0], *[d for d in docs if d != ds.relevant_docs[q][0]]] if i < hits else
               [*[d for d in docs if d != ds.relevant_docs[q][0]][:2], ds.relevant_docs[q][0]]
               for i, q in enumerate(ds.query_ids)]
        return ids, [[1.0 / (r + 1) for r in range(len(row))] for row in ids]

    hits = {"base": 1, "tuned": 3, "bm25": 2, "base_hybrid": 4, "hybrid": 5}
    systems = {r: score_ranking(r, ds, ranking(h), seconds=1.0) for r, h in hits.items()}
    pipes = {"base": Pipeline("base", "base model", dense="base"), "tuned": Pipeline("tuned", "tuned model", dense="tuned"),
             "bm25": Pipeline("bm25", "BM25", bm25=True),
             "base_hybrid": Pipeline("base_hybrid", "base hybrid", dense="base", bm25=True),
             "hybrid": Pipeline("hybrid", "tuned hybrid", dense="tuned", bm25=True)}
    calls = []

    def fake_rerank(model, data, first, top_k, progress=None, should_stop=None):
        calls.append((model, top_k))
        if stop:
            raise RerankStopped()
        return ranking(len(data)), 0.5

    def fake_train(train, folder, settings, base_model, **kw):
        calls.append(("train", folder))
        return "trained ce", SimpleNamespace(start_from="MiniLM", pairs=24, rows=48, seconds=60.0)

    monkeypatch.setattr(stage_mod, "rerank_dataset", fake_rerank)
    monkeypatch.setattr(stage_mod, "train_reranker", fake_train)
    monkeypatch.setattr(stage_mod, "load_reranker", lambda name, **kw: f"loaded {name}")
    ctx = SimpleNamespace(train=ds, ev=ds, run_dir=Path("run"), reporter=Reporter(), progress=None, device="cpu",
                          cache=None, spec=SimpleNamespace(base_model=None, seed=1))
    return ctx, ds, systems, pipes, calls


def test_a_trained_reranker_reorders_the_best_first_stage_of_all(monkeypatch):
    ctx, ds, systems, pipes, calls = _stage_setup(monkeypatch)
    out = stage_mod.rerank_stage(ctx, RerankSettings(top_k=7), None, None, None, systems, pipes)
    assert calls[0] == ("train", Path("run") / stage_mod.FOLDER) and calls[1] == ("trained ce", 7)
    assert list(out.pipelines) == ["rerank"]
    pipe = out.pipelines["rerank"]
    assert pipe.first_stage == "hybrid" and pipe.rerank_trained and pipe.uses_tuning and pipe.rerank_top_k == 7
    assert pipe.name == "tuned hybrid + reranker" and pipe.dense == "tuned" and pipe.bm25
    assert out.systems["rerank"].metrics["nDCG@10"] == 1.0
    assert out.systems["rerank"].seconds == pytest.approx(1.0 + 0.5 * len(ds))  # first stage + reranking
    assert out.lines[0] == ("Reranker: a cross-encoder trained from MiniLM on 24 question/passage pairs (48 rows "
                            "with mined negatives) in 1.0 min.")
    assert "s per question on this machine (nDCG@10 " in out.lines[1] and out.lines[1].endswith("-> 1.000).")
    assert out.val_scores == {}  # no hold-out: nothing scored on it


def test_a_brought_reranker_reorders_each_sides_best_and_is_scored_on_the_hold_out(monkeypatch):
    ctx, ds, systems, pipes, calls = _stage_setup(monkeypatch)
    val_scores = {"base": 0.9, "tuned": 0.2, "bm25": 0.5, "base_hybrid": 0.3, "hybrid": 0.1}  # validation decides
    val_rankings = {r: systems[r].ranking() for r in pipes}
    out = stage_mod.rerank_stage(ctx, RerankSettings(model="/models/ce"), ds, val_rankings, val_scores, systems,
                                 pipes)
    assert [c[0] for c in calls] == ["loaded /models/ce"] * 4  # two sides x (evaluation + hold-out), no training
    assert {r: p.first_stage for r, p in out.pipelines.items()} == {"base_rerank": "base", "rerank": "tuned"}
    assert not out.pipelines["base_rerank"].uses_tuning and not out.pipelines["rerank"].rerank_trained
    assert all(p.rerank == "/models/ce" for p in out.pipelines.values())
    assert out.val_scores == {"base_rerank": 1.0, "rerank": 1.0}


def test_ties_go_to_the_simpler_pipeline_the_earlier_role():
    """(ROLES lists the simpler pipelines first, so simplicity and role order agree on every known role.)"""
    assert _best(["hybrid", "bm25"], {"hybrid": 0.5, "bm25": 0.5}) == "bm25"  # no fusion beats fusion at a tie
    assert _best(["tuned", "base"], {"tuned": 0.5, "base": 0.5}) == "base"
    assert _best(["base", "hybrid"], {"base": 0.5, "hybrid": 0.5000000000001}) == "base"  # equal to 10 places
    assert _best(["base", "hybrid"], {"base": 0.5, "hybrid": 0.51}) == "hybrid"


def test_a_stop_while_reranking_cancels_the_run(monkeypatch):
    ctx, ds, systems, pipes, _ = _stage_setup(monkeypatch, stop=True)
    with pytest.raises(Cancelled):
        stage_mod.rerank_stage(ctx, RerankSettings(model="/models/ce"), None, None, None, systems, pipes)
