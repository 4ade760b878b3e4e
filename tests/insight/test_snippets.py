"""Every snippet of an export bundle, run as a user runs it (a fresh Python, from another folder)
against the folder exported from a tiny finished run: a full fine-tune scored on the ONNX fp32
backend (so the run exports its base and tuned models on the way, and its conditions say so),
exported at 256 of 384 dimensions with its ONNX files; and an adapter run (the adapter's question
path through sentence-transformers and through ONNX Runtime).

Each snippet prints its top hits as rank, score, id, text; they must agree with one another (the
same vectors searched exactly) and find the example question's passage. A snippet whose client
package is missing here is skipped with that reason (``pip install -e '.[dev]'`` installs them all).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from core.insight.export import SNIPPETS, write_bundle
from core.tuning.spec import RunSpec, Scoring
from core.workspace.store import Store
from tests.insight.test_export import make_run

pytestmark = pytest.mark.slow

NEEDS = {  # what each snippet imports beyond numpy / pandas / pyarrow
    "sentence_transformers_search.py": ("sentence_transformers",),
    "faiss_search.py": ("sentence_transformers", "faiss"),
    "qdrant_search.py": ("sentence_transformers", "qdrant_client"),
    "llamaindex_search.py": ("sentence_transformers", "llama_index.core"),
    "langchain_search.py": ("sentence_transformers", "langchain_core"),
    "onnx_search.py": ("onnxruntime", "tokenizers"),
}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _run_snippet(bundle, name: str, cwd, *args: str, needs: dict | None = None) -> list[list[str]]:
    """The snippet's hits: [rank, score, id, text] per printed line (``needs``: the modules each snippet imports,
    default this file's NEEDS; tests/insight/test_snippets_hybrid.py passes its own)."""
    missing = [m for m in (needs or NEEDS)[name] if not _installed(m)]
    if missing:
        pytest.skip(f"{name} needs {', '.join(missing)}, not installed here; the snippet ships untested "
                    "(pip install -e '.[dev]' installs it)")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, str(bundle / "snippets" / name), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    hits = [line.split("\t") for line in proc.stdout.splitlines() if line.count("\t") >= 3]
    assert len(hits) == 5, proc.stdout + proc.stderr[-2000:]
    assert [h[0] for h in hits] == ["1", "2", "3", "4", "5"]
    return hits


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return Store(tmp_path_factory.mktemp("snippets") / "ws")


@pytest.fixture(scope="module")
def full_bundle(store, tmp_path_factory):
    spec = RunSpec.for_method("full", scoring=Scoring(passage_tokens=64, backend="onnx"), max_steps=2, batch_size=8,
                              max_seq_length=32)
    run_id = make_run(store, spec, name="full for snippets")
    return run_id, write_bundle(store, run_id, tmp_path_factory.mktemp("out") / "bundle", dim=256)


@pytest.fixture(scope="module")
def reference(full_bundle, tmp_path_factory):
    """The sentence-transformers snippet's hits: what every other snippet must find."""
    return _run_snippet(full_bundle[1], "sentence_transformers_search.py", tmp_path_factory.mktemp("cwd"))


def test_the_run_scored_both_models_on_onnx_and_the_bundle_carries_its_files(store, full_bundle):
    from core.workspace.run_folder import load_results

    run_id, bundle = full_bundle
    systems = load_results(store.run_dir(run_id)).systems
    assert {r: s.conditions.backend for r, s in systems.items()} == {"base": "onnx", "tuned": "onnx", "bm25": None,
                                                                    "base_hybrid": "onnx", "hybrid": "onnx"}
    files = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()}
    assert {"model/model.safetensors", "model/modules.json", "onnx/model.onnx", "onnx/model_int8.onnx",
            "onnx/onnx.json", "onnx/tokenizer.json", "embeddings.parquet", "export.json", "README.md"} <= files
    assert {f"snippets/{n}" for n in SNIPPETS} <= files
    info = json.loads((bundle / "export.json").read_text())
    assert info["truncate_dim"] == 256 and info["scored_with_backend"] == "onnx"
    assert info["onnx"]["fp32_min_cosine_vs_torch"] >= 0.999 and info["onnx"]["of"] == "the tuned model"
    onnx_cfg = json.loads((bundle / "onnx" / "onnx.json").read_text())
    assert onnx_cfg["modes"] == ["mean"] and onnx_cfg["max_seq_length"] == 64


def test_sentence_transformers_snippet_finds_the_example_questions_passage(full_bundle, reference):
    assert reference[0][2] == "d24"  # the example question is q24: "why the cylinder makes noise case 24"
    assert float(reference[0][1]) > float(reference[1][1])


@pytest.mark.parametrize("name", [n for n in SNIPPETS if n != "sentence_transformers_search.py"])
def test_snippet_runs_against_the_exported_folder(name, full_bundle, reference, tmp_path):
    hits = _run_snippet(full_bundle[1], name, tmp_path)
    # the same stored vectors and the same question vector (ONNX fp32: cosine >= 0.999): the same top 5
    assert [h[2] for h in hits] == [r[2] for r in reference]
    assert abs(float(hits[0][1]) - float(reference[0][1])) < 2e-3


def test_onnx_snippet_int8_and_a_question_of_ones_own(full_bundle, reference, tmp_path):
    hits = _run_snippet(full_bundle[1], "onnx_search.py", tmp_path, "--int8", "why the cylinder makes noise case 24")
    assert hits[0][2] == reference[0][2]


def test_adapter_bundle_snippets_apply_the_adapter(store, tmp_path):
    from core.retrieval.embedding import default_model_path

    spec = RunSpec.for_method("adapter", base_model=default_model_path(), scoring=Scoring(passage_tokens=64), epochs=3)
    run_id = make_run(store, spec, name="adapter for snippets")
    bundle = write_bundle(store, run_id, tmp_path / "bundle", dim=128)
    info = json.loads((bundle / "export.json").read_text())
    assert info["onnx"]["of"].startswith("the base model") and info["adapter"] == "adapter.npz"
    st_hits = _run_snippet(bundle, "sentence_transformers_search.py", tmp_path)
    onnx_hits = _run_snippet(bundle, "onnx_search.py", tmp_path)
    assert [h[2] for h in onnx_hits] == [h[2] for h in st_hits] and st_hits[0][2] == "d24"


@pytest.mark.parametrize("base_model", [None, "folder"])
def test_adapter_snippets_load_the_local_base_model_offline(store, tmp_path, monkeypatch, base_model):
    """The base model was the bundled default (None) or a local folder: the sentence-transformers and FAISS
    snippets load that folder, offline, with an empty Hugging Face cache (no hub id to resolve)."""
    import shutil

    from core.retrieval.embedding import default_model_path

    if base_model == "folder":
        base_model = str(shutil.copytree(default_model_path(), tmp_path / "my base model"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    spec = RunSpec.for_method("adapter", base_model=base_model, scoring=Scoring(passage_tokens=64), epochs=2)
    run_id = make_run(store, spec, name=f"adapter on {base_model}")
    bundle = write_bundle(store, run_id, tmp_path / "bundle", with_onnx=False)
    info = json.loads((bundle / "export.json").read_text())
    assert info["base_model_path"] and os.path.isdir(info["base_model_path"])
    st_hits = _run_snippet(bundle, "sentence_transformers_search.py", tmp_path)
    faiss_hits = _run_snippet(bundle, "faiss_search.py", tmp_path)
    assert [h[2] for h in st_hits] == [h[2] for h in faiss_hits] and st_hits[0][2] == "d24"
