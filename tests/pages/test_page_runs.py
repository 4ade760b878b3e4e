"""Runs page: history, zip download of the tuned model, delete with confirmation."""

from __future__ import annotations

import io
import zipfile

from tests.pages.conftest import make_finished_run, open_app, texts


def test_history_download_and_delete(tiny_dataset):
    store, ds_id = tiny_dataset
    run_id = make_finished_run(store, ds_id, name="run to delete")  # its own run: deleting it affects no other test
    others = [r["id"] for r in store.list_runs() if r["id"] != run_id]
    at = open_app("6_Runs.py")
    assert not at.exception
    history = at.dataframe[0].value
    row = history[history["id"] == run_id]
    assert row["name"].tolist() == ["run to delete"] and row["status"].tolist() == ["done"]
    assert history["MRR@10"].notna().all()
    assert at.download_button(key="etl_runs_zip").label.startswith("Download model")
    from core.insight.export import model_zip

    with zipfile.ZipFile(io.BytesIO(model_zip(store.run_dir(run_id)))) as zf:
        assert f"{run_id}/adapter.npz" in zf.namelist()

    delete = at.button(key="etl_runs_del_btn")
    assert delete.disabled  # nothing happens before the confirmation
    at.selectbox(key="etl_runs_del").set_value(run_id).run()
    at.checkbox(key=f"etl_runs_del_ok_{run_id}").check().run()
    at.button(key="etl_runs_del_btn").click().run()
    assert not at.exception
    assert "Deleted run" in texts(at)
    assert [r["id"] for r in store.list_runs()] == others and not store.run_dir(run_id).exists()


def test_active_run_cannot_be_deleted(tiny_dataset):
    store, ds_id = tiny_dataset
    run_id = store.create_run(ds_id, "adapter", {}, name="still queued")
    try:
        at = open_app("6_Runs.py")
        at.selectbox(key="etl_runs_del").set_value(run_id).run()
        at.checkbox(key=f"etl_runs_del_ok_{run_id}").check().run()
        at.button(key="etl_runs_del_btn").click().run()
        assert "still active" in at.error[0].value
        assert store.get_run(run_id)["status"] == "queued"
    finally:  # leave no active run behind for the next test
        store.update_run(run_id, status="cancelled")
        store.delete_run(run_id)


def test_a_run_that_kept_the_base_model_says_so(tiny_dataset):
    """Issue 26: an adapter run that kept the identity (no epoch beat the base model) is the base model
    unchanged; the download section says so before anyone ships it, and a changed run gets no such note."""
    from core.tuning.adapter import LinearAdapter

    store, ds_id = tiny_dataset
    run_id = make_finished_run(store, ds_id, name="kept the base")
    kept = LinearAdapter.load(store.run_dir(run_id) / "adapter.npz")
    assert (kept.weight == LinearAdapter.identity(kept.dim).weight).all()  # the tiny set: nothing to beat
    at = open_app("6_Runs.py")
    at.selectbox(key="etl_runs_dl").set_value(run_id).run()
    assert not at.exception
    page = texts(at)
    assert "No epoch of the query adapter beat the base model" in page
    assert "this bundle is the base model unchanged" in page
    LinearAdapter(kept.weight * 1.5, kept.bias).save(store.run_dir(run_id) / "adapter.npz")  # a changed adapter
    at.run()
    assert "this bundle is the base model unchanged" not in texts(at)
