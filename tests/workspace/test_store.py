"""Catalog + folders: atomic saves, concurrency, interrupted runs."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from core.dataset import DataError, QADataset
from core.workspace.files import atomic_write_json, read_json
from core.workspace.store import Store, default_root


def _ds(n=3, tag="x"):
    return QADataset(
        {f"q{i}": f"{tag} question {i}" for i in range(n)},
        {f"d{i}": f"{tag} passage {i}" for i in range(n)},
        {f"q{i}": [f"d{i}"] for i in range(n)},
    )


def test_save_and_load_roundtrip(tmp_path):
    st = Store(tmp_path)
    ds_id = st.save_dataset("mine", _ds(), _ds(2, "e"), report={"rows": 3})
    train, ev = st.load_dataset(ds_id)
    assert train.to_json() == _ds().to_json() and ev.to_json() == _ds(2, "e").to_json()
    assert st.get_dataset(ds_id)["n_train"] == 3 and st.dataset_report(ds_id) == {"rows": 3}


def test_duplicate_and_empty_names_refused(tmp_path):
    st = Store(tmp_path)
    st.save_dataset("a", _ds())
    with pytest.raises(DataError, match="already exists"):
        st.save_dataset("a", _ds())
    with pytest.raises(DataError, match="name"):
        st.save_dataset("  ", _ds())
    with pytest.raises(DataError, match="nothing to save"):
        st.save_dataset("empty", QADataset({}, {}, {}))
    assert len(st.list_datasets()) == 1


def test_failed_write_leaves_no_trace(tmp_path, monkeypatch):
    st = Store(tmp_path)
    import core.workspace.store as store_mod

    real = store_mod.atomic_write_json
    calls = {"n": 0}

    def flaky(path, obj):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        real(path, obj)

    monkeypatch.setattr(store_mod, "atomic_write_json", flaky)
    with pytest.raises(OSError):
        st.save_dataset("x", _ds(), _ds(2))
    assert st.list_datasets() == []
    assert [p for p in (tmp_path / "datasets").iterdir()] == []


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    p = tmp_path / "f.json"
    atomic_write_json(p, {"v": 1})
    with pytest.raises(TypeError):
        atomic_write_json(p, {1j: 2})  # complex keys are not JSON: fails mid-write
    assert read_json(p) == {"v": 1}
    assert [x.name for x in tmp_path.iterdir()] == ["f.json"]


def test_twenty_concurrent_saves_lose_nothing(tmp_path):
    st = Store(tmp_path)
    errors = []

    def save(i):
        try:
            Store(tmp_path).save_dataset(f"ds{i}", _ds(3, str(i)))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    names = sorted(d["name"] for d in st.list_datasets())
    assert names == sorted(f"ds{i}" for i in range(20))
    for d in st.list_datasets():
        assert st.load_dataset(d["id"])[0].queries["q0"].startswith(d["name"][2:])


def test_runs_lifecycle_and_interrupted(tmp_path):
    st = Store(tmp_path)
    ds_id = st.save_dataset("d", _ds())
    r1 = st.create_run(ds_id, "full", {"epochs": 1})
    r2 = st.create_run(ds_id, "adapter", {})
    st.update_run(r1, status="running", started=1.0)
    st.update_run(r2, status="done", metrics={"MRR@10": 0.5})
    assert read_json(st.run_dir(r2) / "status.json")["status"] == "done"
    # A running run whose last heartbeat is older than the staleness bound -> interrupted.
    assert st.mark_interrupted(stale_seconds=0.0) == [r1]
    assert st.get_run(r1)["status"] == "interrupted" and st.get_run(r2)["metrics"] == {"MRR@10": 0.5}
    # A run that beat recently is left alone.
    r3 = st.create_run(ds_id, "full", {})
    st.update_run(r3, status="running", heartbeat=__import__("time").time())
    assert st.mark_interrupted(stale_seconds=30.0) == []
    with pytest.raises(ValueError, match="active"):
        st.delete_run(r3)
    st.delete_run(r2)
    assert not Path(st.run_dir(r2)).exists() and {r["id"] for r in st.list_runs()} == {r1, r3}


def test_default_root_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("ETL_WORKSPACE", str(tmp_path / "ws"))
    assert Store().root == tmp_path / "ws" and os.path.isdir(tmp_path / "ws" / "runs")


def test_default_root_is_the_project_folder_not_the_package(monkeypatch):
    """Without $ETL_WORKSPACE the workspace is <project>/workspace (git-ignored), never inside core/."""
    monkeypatch.delenv("ETL_WORKSPACE", raising=False)
    project = Path(__file__).resolve().parents[2]
    assert default_root() == project / "workspace"
    assert "/workspace/" in (project / ".gitignore").read_text().splitlines()


def test_a_run_keeps_the_data_it_was_made_on(tmp_path):
    st = Store(tmp_path)
    ds = _ds()
    ds_id = st.save_dataset("d", ds, ds)
    run_id = st.create_run(ds_id, "adapter", {})
    train, ev = st.snapshot_run_data(run_id, ds_id)
    st.delete_dataset(ds_id)  # or labels added later: the run's questions must not change under it
    again_train, again_ev = st.run_data(run_id)
    assert again_train.to_json() == train.to_json() and again_ev.to_json() == ev.to_json()


def test_collection_without_questions_then_updated_with_them(tmp_path):
    st = Store(tmp_path)
    passages = QADataset({}, {"p1": "Passage one.", "p2": "Passage two."}, {})
    with pytest.raises(DataError, match="no question"):
        st.save_dataset("docs", passages)
    ds_id = st.save_dataset("docs", passages, meta={"kind": "collection"})
    with pytest.raises(DataError, match="no passages"):
        st.save_dataset("empty", QADataset({}, {}, {}), meta={"kind": "collection"})
    before = st.get_dataset(ds_id)
    assert before["n_train"] == 0 and before["n_passages"] == 2
    train = QADataset({"q1": "what is one?"}, passages.corpus, {"q1": ["p1"]})
    ev = QADataset({"e1": "which is two?"}, passages.corpus, {"e1": ["p2"]}, origins={"e1": "human"})
    st.update_dataset(ds_id, train=train, eval=ev, meta={"question_origin": "human-labelled"})
    row = st.get_dataset(ds_id)
    assert (row["n_train"], row["n_eval"]) == (1, 1) and row["updated"] >= before["updated"]
    assert json.loads(row["meta"]) == {"kind": "collection", "question_origin": "human-labelled"}
    t, e = st.load_dataset(ds_id)
    assert t.to_json() == train.to_json() and e.origins == {"e1": "human"}
