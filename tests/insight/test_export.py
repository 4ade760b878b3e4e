"""core.insight.export: the bundle of a finished run (files, Parquet schema, dimension, README, zip,
CLI), on tiny adapter runs made with core.tuning (no transformer training; ONNX left out here: the
ONNX part and every snippet run in tests/insight/test_snippets.py)."""

from __future__ import annotations

import io
import json
import os
import zipfile

import numpy as np
import pytest

from core.dataset import QADataset
from core.insight.export import (
    _files_of,
    bundle_zip,
    dimension_choices,
    dimension_options,
    model_zip,
    write_bundle,
)
from core.insight.matryoshka import truncate
from core.tuning.spec import RunSpec, Scoring
from core.workspace.run_folder import load_vectors
from core.workspace.store import Store
from tests.conftest import make_tiny_dataset


def make_run(store: Store, spec: RunSpec, name: str = "tiny", n: int = 30) -> str:
    """A finished run of ``spec`` on a tiny dataset (train 24 questions, eval 6 against all passages)."""
    from core.execute import execute
    from core.tuning.runs import create_run
    from core.workspace.jobs import Job

    ds = make_tiny_dataset(n)
    q = ds.query_ids
    train = ds.subset(q[:24], [f"d{i}" for i in range(24)])
    ev = QADataset({k: ds.queries[k] for k in q[24:]}, ds.corpus, {k: ds.relevant_docs[k] for k in q[24:]},
                   sources={d: f"manual-{i % 3}.pdf" for i, d in enumerate(ds.corpus)})
    ds_id = store.save_dataset(name, train, ev)
    run_id = create_run(store, ds_id, spec, name=name)
    job = Job(store, run_id)
    job.run(lambda j: execute(store, run_id, j, device="cpu"))
    assert job.snapshot().status == "done", job.snapshot().error
    return run_id


@pytest.fixture(scope="module")
def adapter_run(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("export") / "ws")
    spec = RunSpec.for_method("adapter", scoring=Scoring(passage_tokens=64), epochs=3)
    return store, make_run(store, spec, name="my adapter run")


def _parquet(path):
    import pyarrow.parquet as pq

    return pq.read_table(path)


def test_bundle_files_parquet_schema_and_export_json(adapter_run, tmp_path):
    store, run_id = adapter_run
    out = write_bundle(store, run_id, tmp_path / "bundle", dim=128, with_onnx=False)
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert {"pipeline.json", "search.py", "pipeline/ids.json", "pipeline/texts.json"} <= files  # the retriever
    files = {f for f in files if not f.startswith("pipeline") and f != "search.py"}
    assert files == {"README.md", "export.json", "config.json", "results.json", "adapter.npz", "embeddings.parquet",
                     "snippets/sentence_transformers_search.py", "snippets/faiss_search.py",
                     "snippets/qdrant_search.py", "snippets/llamaindex_search.py", "snippets/langchain_search.py"}
    table = _parquet(out / "embeddings.parquet")
    assert table.schema.names == ["id", "text", "source", "vector"]
    import pyarrow as pa

    vtype = table.schema.field("vector").type
    assert pa.types.is_fixed_size_list(vtype) and vtype.list_size == 128 and vtype.value_type == pa.float32()
    assert all(table.schema.field(c).type == pa.string() for c in ("id", "text", "source"))
    _, ev = store.run_data(run_id)
    assert table.column("id").to_pylist() == list(ev.corpus)
    assert table.column("text").to_pylist() == list(ev.corpus.values())
    assert table.column("source").to_pylist()[:2] == ["manual-0.pdf", "manual-1.pdf"]
    vectors = np.stack(table.column("vector").to_numpy(zero_copy_only=False)).astype(np.float32)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert np.allclose(vectors, truncate(load_vectors(store.run_dir(run_id))["tuned_d"], 128), atol=1e-6)
    info = json.loads((out / "export.json").read_text())
    assert (info["method"], info["dimension"], info["truncate_dim"], info["full_dimension"]) == ("adapter", 128, 128, 384)
    assert info["embeddings"]["rows"] == len(ev.corpus) == 30 and info["onnx"] is None
    assert info["base_model"] == "sentence-transformers/all-MiniLM-L6-v2" and info["adapter"] == "adapter.npz"
    assert info["example_query"] == ev.queries[ev.query_ids[0]] and info["max_seq_length"] == 64
    readme = (out / "README.md").read_text()
    assert "# my adapter run" in readme and "A new model means re-indexing the collection" in readme
    assert "128 of 384 dimensions" in readme and 'np.load("adapter.npz"' in readme


def test_zip_holds_the_same_files_inside_one_folder(adapter_run, tmp_path):
    store, run_id = adapter_run
    folder = write_bundle(store, run_id, tmp_path / "b", with_onnx=False)
    with zipfile.ZipFile(io.BytesIO(bundle_zip(store, run_id, with_onnx=False))) as zf:
        assert zf.testzip() is None
        names = set(zf.namelist())
        info = json.loads(zf.read(f"{run_id}/export.json"))
    assert names == {f"{run_id}/{p.relative_to(folder).as_posix()}" for p in folder.rglob("*") if p.is_file()}
    assert all(not n.startswith("/") and ".." not in n for n in names)
    assert info["dimension"] == 384 and info["truncate_dim"] is None  # default: the full size
    with zipfile.ZipFile(io.BytesIO(model_zip(store.run_dir(run_id)))) as zf:  # a run folder's bundle
        assert f"{run_id}/adapter.npz" in zf.namelist()


def test_dimensions_offered_and_refused(adapter_run, tmp_path):
    store, run_id = adapter_run
    assert dimension_choices(384) == [384, 256, 128, 64] and dimension_choices(128) == [128, 64]
    options = dimension_options(store, run_id)
    assert [d for d, _ in options] == [384, 256, 128, 64]
    assert options[0][1].startswith("384 (full size): nDCG@10 ") and "MB per million passages" in options[1][1]
    with pytest.raises(ValueError, match="not offered"):
        write_bundle(store, run_id, tmp_path / "x", dim=100, with_onnx=False)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not an empty folder"):
        write_bundle(store, run_id, tmp_path / "full", with_onnx=False)


def test_unfinished_run_refused(adapter_run):
    store, _ = adapter_run
    ds_id = store.list_datasets()[0]["id"]
    run_id = store.create_run(ds_id, "full", RunSpec.for_method("full").to_dict(), name="queued")
    with pytest.raises(FileNotFoundError, match="did not finish"):
        bundle_zip(store, run_id)
    with pytest.raises(FileNotFoundError):
        model_zip(store.run_dir("run-that-never-was"))


def test_symlinks_in_a_model_folder_are_not_followed(tmp_path):
    d = tmp_path / "model"
    (d / "1_Pooling").mkdir(parents=True)
    (d / "model.safetensors").write_bytes(b"\0" * 10)
    (d / "1_Pooling" / "config.json").write_text("{}")
    (tmp_path / "secret.txt").write_text("do not export")
    os.symlink(tmp_path / "secret.txt", d / "link.txt")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.txt").write_text("outside the run")
    os.symlink(tmp_path / "elsewhere", d / "linked_dir")
    assert [p.relative_to(d).as_posix() for p in _files_of(d)] == ["1_Pooling/config.json", "model.safetensors"]


def test_cli_export(adapter_run, tmp_path):
    from core.cli import main

    store, run_id = adapter_run
    out = tmp_path / "cli-bundle"
    argv = ["export", run_id, "--out", str(out), "--dim", "64", "--no-onnx", "--workspace", str(store.root)]
    assert main(argv) == 0
    assert json.loads((out / "export.json").read_text())["dimension"] == 64
    assert main(argv) == 2  # the folder is not empty any more: refused, not overwritten
    assert main(["export", run_id, "--out", str(tmp_path / "b.zip"), "--no-onnx", "--workspace", str(store.root)]) == 0
    with zipfile.ZipFile(tmp_path / "b.zip") as zf:
        assert f"{run_id}/embeddings.parquet" in zf.namelist()
    assert main(["export", "run-nope", "--out", str(tmp_path / "n"), "--workspace", str(store.root)]) == 2


@pytest.mark.slow
def test_windowed_run_exports_one_row_per_window(tmp_path):
    store = Store(tmp_path / "ws")
    spec = RunSpec.for_method("adapter", scoring=Scoring(passage_tokens=12, windows=True, window_overlap=2), epochs=2)
    run_id = make_run(store, spec, name="windows")
    out = write_bundle(store, run_id, tmp_path / "w", with_onnx=False)
    table = _parquet(out / "embeddings.parquet").to_pandas()
    vectors = load_vectors(store.run_dir(run_id))
    assert len(table) == len(vectors["tuned_w"]) > 30  # every passage is longer than one 12-token window
    assert list(table.columns) == ["id", "text", "source", "vector", "passage_id"]
    first = table[table["passage_id"] == "d0"]
    assert first["id"].tolist()[:2] == ["d0#1", "d0#2"]
    _, ev = store.run_data(run_id)
    assert all(t in ev.corpus["d0"] for t in first["text"])  # each window's text is a piece of its passage
    info = json.loads((out / "export.json").read_text())
    assert info["windows"] == {"size": 12, "overlap": 2} and info["embeddings"]["passages"] == 30


def test_one_permission_policy_files_with_passage_text_are_owner_only(adapter_run, tmp_path):
    """Maps' points (hover texts), the bundle's embeddings.parquet and every other bundle file are owner-only,
    like datasets; the workspace's folders are 0700."""
    import stat

    from core.insight.explore import open_run

    store, run_id = adapter_run
    open_run(store, run_id).prepare()
    run_dir = store.run_dir(run_id)
    points = sorted(run_dir.glob("map-points-*.parquet"))
    assert points, sorted(p.name for p in run_dir.iterdir())
    for p in [*points, run_dir / "by_dimension.csv", *(store.dataset_dir(d["id"]) / "train.json"
                                                       for d in store.list_datasets())]:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    for d in (store.root, store.root / "datasets", store.root / "runs", store.root / "cache", run_dir):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    out = write_bundle(store, run_id, tmp_path / "bundle", with_onnx=False)
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.name == "embeddings.parquet" for p in files)
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in files} == {p.name: 0o600 for p in files}
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
