"""The exported pipeline: search.py reproduces the run's top 10 for every evaluation question, for every
pipeline a run scores (base, tuned, BM25, both hybrids), with nothing of this project imported."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from core.insight.bundle_pipeline import pipeline_files
from core.insight.explore import open_run
from tests.retrieval.test_fairness import SPECS, _run, long_store  # noqa: F401 - the module fixture is reused


def _write(files, out):
    for name, data in files:
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data if isinstance(data, bytes) else data.read_bytes())
    return out


def _load_search(folder):
    spec = importlib.util.spec_from_file_location(f"bundle_search_{folder.name}", folder / "search.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def adapter_run(long_store):  # noqa: F811
    store, ds_id = long_store
    return store, _run(store, ds_id, SPECS["adapter"]())


@pytest.mark.parametrize("role", ["base", "tuned", "bm25", "base_hybrid", "hybrid"])
def test_search_py_reproduces_the_runs_top_10_for_every_question(role, adapter_run, tmp_path):
    store, run_id = adapter_run
    view = open_run(store, run_id)
    files = pipeline_files(view, view.results, view.spec, view.run_dir, role=role)
    names = [n for n, _ in files]
    assert "search.py" in names and "pipeline.json" in names
    assert ("pipeline/bm25/params.index.json" in names) == view.results.pipelines[role].bm25
    bundle = _write(files, tmp_path / role)
    if role == "tuned":  # the adapter's weights travel with the bundle's other files; here by hand
        (bundle / "adapter.npz").write_bytes((view.run_dir / "adapter.npz").read_bytes())
    search = _load_search(bundle)
    source = (bundle / "search.py").read_text()
    assert "from core" not in source and "import core" not in source  # stands alone
    pipe = search.Pipeline(bundle)
    for qid in view.query_ids:
        expected = view.rankings[role][qid][0][:10]
        got = [d for d, _ in pipe.search(view.eval.queries[qid], k=10)]
        assert got == expected, (role, qid)
    config = json.loads((bundle / "pipeline.json").read_text())
    assert config["role"] == role and config["stages"] == view.results.pipelines[role].stages()


def test_search_py_runs_alone_from_the_command_line(adapter_run, tmp_path):
    store, run_id = adapter_run
    view = open_run(store, run_id)
    bundle = _write(pipeline_files(view, view.results, view.spec, view.run_dir, role="base_hybrid"), tmp_path / "b")
    question = view.eval.queries[view.query_ids[0]]
    out = subprocess.run([sys.executable, str(bundle / "search.py"), question, "--k", "3"], capture_output=True,
                         text=True, timeout=300, cwd=tmp_path, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 3 and lines[0].split("\t")[2] == view.rankings["base_hybrid"][view.query_ids[0]][0][0]


def test_the_export_bundle_ships_the_recommended_pipeline_and_says_so(adapter_run, tmp_path):
    from core.insight.export import write_bundle

    store, run_id = adapter_run
    view = open_run(store, run_id)
    out = write_bundle(store, run_id, tmp_path / "bundle", with_onnx=False)
    role = view.results.recommended
    config = json.loads((out / "pipeline.json").read_text())
    assert config["role"] == role and config["name"] == view.results.systems[role].name
    readme = (out / "README.md").read_text()
    assert "## The retriever to deploy" in readme and "python search.py" in readme
    pipe = _load_search(out).Pipeline(out)
    for qid in view.query_ids:
        assert [d for d, _ in pipe.search(view.eval.queries[qid])] == view.rankings[role][qid][0][:10]
