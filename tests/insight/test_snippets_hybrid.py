"""The hybrid snippets (LlamaIndex, LangChain, Qdrant) run as a user runs them (a fresh Python, from
another folder, offline) against bundles of a tiny adapter run, and rank as the bundle's search.py does.

Bundles: the run's tuned hybrid (adapter model + BM25: the adapter's question path) with the lab's RRF,
its base-model hybrid with weighted fusion (alpha 0.3), and a windowed adapter run's tuned hybrid with RRF
(passages searched by their best window), each the files ``pipeline_files`` writes plus the snippets; and
the run's own export (as recommended, and made to recommend its hybrid). The lab's ranking is search.py's
(``Pipeline.ranking``).

Where the fused score is the lab's formula on the same two lists (LangChain's EnsembleRetriever with
weights [1, 1] and our BM25 retriever, which breaks ties by id as the lab; LlamaIndex's relative_score;
Qdrant's weighted fusion, done client-side from scores) the top 5 fused scores must equal search.py's
(passages with equal fused scores may swap). Elsewhere the top 1 must be one of search.py's top 3 and at
least 3 of the top 5 must agree: LlamaIndex's RRF counts ranks from 0 (its constant is in effect 59),
LangChain's weighted fusion is weighted RRF (not min-max scores), and Qdrant returns passages with equal
BM25 scores in its own order (this tiny collection has many), which changes their ranks in its RRF.
"""

from __future__ import annotations

import json

import pytest

from core.insight.bundle_pipeline import pipeline_files
from core.insight.explore import open_run
from core.insight.snippets_hybrid import HYBRID_SNIPPETS, hybrid_readme, hybrid_snippets, is_hybrid
from core.tuning.spec import RunSpec, Scoring
from tests.insight.test_bundle_pipeline import _load_search, _write, adapter_run  # noqa: F401 - module fixture reused
from tests.insight.test_snippets import _run_snippet as run_snippet
from tests.retrieval.test_fairness import TOKENS, _run, long_store  # noqa: F401 - the fixture adapter_run uses

pytestmark = pytest.mark.slow

NEEDS = {
    "llamaindex_hybrid.py": ("sentence_transformers", "bm25s", "llama_index.core", "llama_index.retrievers.bm25"),
    "langchain_hybrid.py": ("sentence_transformers", "bm25s", "langchain_core", "langchain_classic"),
    "qdrant_hybrid.py": ("sentence_transformers", "bm25s", "qdrant_client"),
}
EXACT = {("qdrant_hybrid.py", "weighted"), ("langchain_hybrid.py", "rrf"), ("llamaindex_hybrid.py", "weighted")}
FUSIONS = {"rrf": {"method": "rrf", "alpha": None}, "weighted": {"method": "weighted", "alpha": 0.3}}


def _run_snippet(bundle, name: str, cwd, *args: str) -> list[list[str]]:
    """The snippet's hits: [rank, score, id, text] per printed line (tests/insight/test_snippets.py's runner)."""
    return run_snippet(bundle, name, cwd, *args, needs=NEEDS)


def _bundle(view, role: str, fusion: dict, out):
    """The files of ``role``'s pipeline with ``fusion``, export.json's example question and the hybrid snippets."""
    bundle = _write(pipeline_files(view, view.results, view.spec, view.run_dir, role=role), out)
    if (view.run_dir / "adapter.npz").exists():
        (bundle / "adapter.npz").write_bytes((view.run_dir / "adapter.npz").read_bytes())
    config = json.loads((bundle / "pipeline.json").read_text())
    config["fusion"] = {**config["fusion"], **fusion}
    (bundle / "pipeline.json").write_text(json.dumps(config))
    (bundle / "export.json").write_text(json.dumps({"example_query": view.eval.queries[view.query_ids[0]]}))
    (bundle / "snippets").mkdir()
    for name, text in hybrid_snippets(config).items():
        (bundle / "snippets" / name).write_text(text)
    return bundle


@pytest.fixture(scope="module")
def view(adapter_run):  # noqa: F811
    store, run_id = adapter_run
    return open_run(store, run_id)


@pytest.fixture(scope="module")
def windowed_view(long_store):  # noqa: F811
    """An adapter run whose passages (~170 words, read at 48 tokens) are searched as windows."""
    store, ds_id = long_store
    spec = RunSpec.for_method("adapter", scoring=Scoring(passage_tokens=TOKENS, windows=True, window_overlap=16),
                              epochs=3)
    return open_run(store, _run(store, ds_id, spec))


@pytest.fixture(scope="module")
def bundles(view, windowed_view, tmp_path_factory):
    """The tuned hybrid (adapter) with RRF, the base-model hybrid with weighted fusion, and the windowed run's
    tuned hybrid with RRF."""
    root = tmp_path_factory.mktemp("hybrid")
    return {"rrf": _bundle(view, "hybrid", FUSIONS["rrf"], root / "rrf"),
            "weighted": _bundle(view, "base_hybrid", FUSIONS["weighted"], root / "weighted"),
            "windows": _bundle(windowed_view, "hybrid", FUSIONS["rrf"], root / "windows")}


def _lab(bundle, question: str):
    """search.py's ranking of ``question`` in ``bundle`` (the lab's): [(id, fused score)]."""
    ids, scores = _load_search(bundle).Pipeline(bundle).ranking(question)
    return list(zip(ids, scores))


@pytest.mark.parametrize("case", ["rrf", "weighted", "windows"])
@pytest.mark.parametrize("name", HYBRID_SNIPPETS)
def test_hybrid_snippet_ranks_as_search_py(name, case, bundles, tmp_path):
    bundle = bundles[case]
    if case == "windows":
        assert (bundle / "pipeline" / "owner.npy").exists()  # the dense stage searches windows
    fusion = json.loads((bundle / "pipeline.json").read_text())["fusion"]["method"]
    hits = _run_snippet(bundle, name, tmp_path)
    got = [h[2] for h in hits]
    assert set(got) <= set(json.loads((bundle / "pipeline" / "ids.json").read_text())) and len(set(got)) == 5
    lab = _lab(bundle, json.loads((bundle / "export.json").read_text())["example_query"])
    top5 = [d for d, _ in lab[:5]]
    if (name, fusion) in EXACT:
        # the same formula: the same top 5, except that passages with equal fused scores may swap
        score = dict(lab)
        assert [round(score[d], 5) for d in got] == [round(s, 5) for _, s in lab[:5]], (got, lab[:6])
        assert [abs(float(h[1]) - score[h[2]]) < 1e-4 for h in hits] == [True] * 5  # printed: the lab's scores
    else:
        assert got[0] in [d for d, _ in lab[:3]] and len(set(got) & set(top5)) >= 3, (got, lab[:6])


def test_hybrid_snippets_take_a_question_of_ones_own(view, bundles, tmp_path):
    question = view.eval.queries[view.query_ids[-1]]
    hits = _run_snippet(bundles["rrf"], "qdrant_hybrid.py", tmp_path, question)
    lab = _lab(bundles["rrf"], question)
    assert hits[0][2] in [d for d, s in lab if abs(s - lab[0][1]) < 1e-9]


@pytest.mark.parametrize("recommend", [None, "hybrid"])
def test_the_export_ships_hybrid_snippets_with_a_hybrid_and_says_which_does_what(
        recommend, adapter_run, tmp_path, monkeypatch):  # noqa: F811
    """The run recommends its base model alone (no hybrid snippets); made to recommend its tuned hybrid,
    the bundle carries the three and they run against it."""
    from core.insight.export import write_bundle
    from core.retrieval.results import RunResults

    if recommend:
        monkeypatch.setattr(RunResults, "recommended", property(lambda self: recommend))
    store, run_id = adapter_run
    out = write_bundle(store, run_id, tmp_path / "bundle", with_onnx=False)
    config = json.loads((out / "pipeline.json").read_text())
    shipped = {p.name for p in (out / "snippets").iterdir()}
    readme = (out / "README.md").read_text()
    assert "## The snippets" in readme and "`snippets/*_search.py`" in readme
    assert is_hybrid(config) or not recommend
    if is_hybrid(config):
        assert set(HYBRID_SNIPPETS) <= shipped and "snippets/qdrant_hybrid.py" in readme
        hits = _run_snippet(out, "qdrant_hybrid.py", tmp_path)
        assert hits[0][2] == _lab(out, json.loads((out / "export.json").read_text())["example_query"])[0][0]
    else:
        assert not set(HYBRID_SNIPPETS) & shipped and "no hybrid snippets" in readme


def test_no_hybrid_snippets_without_a_hybrid():
    dense_only = {"name": "tuned model", "dense": {"model": "model"}, "bm25": None, "fusion": None}
    assert hybrid_snippets(dense_only) == {} and hybrid_snippets(None) == {}
    assert "no hybrid snippets" in hybrid_readme(dense_only)
    both = {"name": "hybrid", "dense": {"model": "model"}, "bm25": {"index": "pipeline/bm25"},
            "fusion": {"method": "rrf", "alpha": None, "k": 100}, "rerank": {"top_k": 20}}
    files = hybrid_snippets(both)
    assert set(files) == set(HYBRID_SNIPPETS)
    for text in files.values():
        compile(text, "snippet", "exec")  # valid Python
        assert "search.py" in text and "from search import terms" in text
    assert "applies the reranker" in hybrid_readme(both)
