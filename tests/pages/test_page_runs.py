"""Runs page: history, zip download of the tuned model, delete with confirmation."""

from __future__ import annotations

import io
import zipfile

from tests.pages.conftest import open_app, texts


def test_history_download_and_delete(finished_run):
    store, run_id = finished_run
    at = open_app("5_Runs.py")
    assert not at.exception
    history = at.dataframe[0].value
    assert history["name"].tolist() == ["tiny adapter"] and history["status"].tolist() == ["done"]
    assert history["MRR@10"].notna().all()
    assert at.download_button(key="etl_runs_zip").label.startswith("Download model")
    from core.insight.export import model_zip

    with zipfile.ZipFile(io.BytesIO(model_zip(store.run_dir(run_id)))) as zf:
        assert f"{run_id}/adapter.npz" in zf.namelist()

    delete = at.button(key="etl_runs_del_btn")
    assert delete.disabled  # nothing happens before the confirmation
    at.checkbox(key=f"etl_runs_del_ok_{run_id}").check().run()
    at.button(key="etl_runs_del_btn").click().run()
    assert not at.exception
    assert "Deleted run" in texts(at)
    assert store.list_runs() == [] and not store.run_dir(run_id).exists()
    assert "No run yet" in texts(at)


def test_active_run_cannot_be_deleted(tiny_dataset):
    store, ds_id = tiny_dataset
    run_id = store.create_run(ds_id, "adapter", {}, name="still queued")
    at = open_app("5_Runs.py")
    at.checkbox(key=f"etl_runs_del_ok_{run_id}").check().run()
    at.button(key="etl_runs_del_btn").click().run()
    assert "still active" in at.error[0].value
    assert store.get_run(run_id)["status"] == "queued"
