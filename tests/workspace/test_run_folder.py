"""core.workspace.run_folder: the one module that reads and writes a run folder."""

from __future__ import annotations

import json

import pytest

from core.dataset import QADataset
from core.workspace import run_folder as rf
from core.workspace.store import Store


def _ds() -> QADataset:
    return QADataset(queries={"q1": "What is serviced?"}, corpus={"p1": "The pump is serviced yearly.", "p2": "Other."},
                     relevant_docs={"q1": ["p1"]})


def test_a_new_run_folder_holds_its_config_and_nothing_else(tmp_path):
    st = Store(tmp_path)
    run_id = st.create_run(None, "full", {"method": "full", "seed": 7})
    d = st.run_dir(run_id)
    assert rf.is_run_folder(d) and not rf.is_run_folder(tmp_path)
    assert rf.read_config(d)["seed"] == 7
    assert rf.load_results(d) is None and rf.load_vectors(d) is None and rf.read_data(d) is None
    assert rf.judgments_at_start(d) is None and rf.read_error(d) == {} and rf.read_progress(d) == []


def test_data_copy_and_the_judgments_as_they_were(tmp_path):
    st = Store(tmp_path)
    ds = _ds()
    ds_id = st.save_dataset("d", ds, ds)
    run_id = st.create_run(ds_id, "full", {})
    d = st.run_dir(run_id)
    assert rf.judgments_at_start(d) is None  # no judgments existed when it started: no copy
    (st.dataset_dir(ds_id) / "judgments.json").write_text(json.dumps({"q1": {"p2": {"relevant": False}}}))
    st.snapshot_run_data(run_id, ds_id)
    train, ev = rf.read_data(d)
    assert train.fingerprint() == ds.fingerprint() and ev.queries == ds.queries
    assert rf.judgments_at_start(d) == {"q1": {"p2": {"relevant": False}}}
    more = QADataset(queries=ds.queries, corpus=ds.corpus, relevant_docs={"q1": ["p1", "p2"]})
    assert rf.write_eval(d, more) and rf.read_data(d)[1].relevant_docs["q1"] == ["p1", "p2"]
    (d / rf.DATA / rf.JUDGMENTS).write_text("{not json")
    with pytest.raises(ValueError):
        rf.judgments_at_start(d)


def test_a_run_made_before_data_copies_keeps_reading_its_dataset(tmp_path):
    st = Store(tmp_path)
    ds_id = st.save_dataset("d", _ds(), _ds())
    run_id = st.create_run(ds_id, "full", {})
    assert not rf.write_eval(st.run_dir(run_id), _ds())  # nothing of its own to replace
    assert st.run_data(run_id)[0].fingerprint() == _ds().fingerprint()


def test_progress_error_and_ending_round_trip(tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    rf.append_progress(d, {"kind": "phase", "name": "training"})
    rf.append_progress(d, {"kind": "loss", "value": 0.5})
    assert [e["kind"] for e in rf.read_progress(d)] == ["phase", "loss"]
    rf.write_error(d, "boom", "Traceback ...")
    assert rf.read_error(d) == {"error": "boom", "traceback": "Traceback ..."}
    assert rf.read_ending(d) == {}
    rf.reserve_ending(d)
    assert rf.read_ending(d) == {} and (d / rf.ENDING_FILE).stat().st_size == rf.ENDING_BYTES
    assert rf.write_ending(d, "done", None)
    assert rf.read_ending(d)["status"] == "done" and (d / rf.ENDING_FILE).stat().st_size == rf.ENDING_BYTES
