"""The live panel of one run on the Train page: progress with its unit and ETA, cancel, loss and
validation curves, then the results, the failure, or the way to resume an interrupted run.

A fragment with ``run_every`` polls the job's snapshot while it runs (the worker thread never
calls Streamlit); after a restart the panel falls back to what the run folder says.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import streamlit as st

from core.insight.models import comparison_table, from_json
from core.insight.plots import loss_curve, quality_vs_time
from core.insight.results import load_results
from core.tuning.estimate import fmt_duration
from core.tuning.execute import execute
from core.tuning.full import latest_checkpoint
from core.tuning.shootout import load_shootout
from core.workspace.jobs import BusyError, history_from_files
from core.workspace.store import read_json
from ui import resources as res
from ui import state, widgets

STATUS_ICON = {
    "queued": ":material/hourglass_empty:",
    "running": ":material/sync:",
    "done": ":green[:material/check_circle:]",
    "failed": ":red[:material/error:]",
    "cancelled": ":material/stop_circle:",
    "interrupted": ":orange[:material/warning:]",
}
EXPLORED_KEY = "etl_train_explored"  # the last launched run already selected for exploring


def launch(run_id: str, resume: bool = False) -> None:
    """Start ``run_id`` in the background and show it here (errors are shown, nothing is lost)."""
    store, runner = res.get_store(), res.get_runner()
    try:
        runner.submit(run_id, lambda job, rid=run_id: execute(store, rid, job, resume=resume, prepare_views=True))
    except BusyError as exc:
        if resume:
            store.update_run(run_id, status="interrupted", error=f"Not resumed: {exc}")
        else:  # never started: leave no trace of it
            store.update_run(run_id, status="cancelled", error=f"Not started: {exc}")
            store.delete_run(run_id)
        st.error(widgets.plain(str(exc)))
        return
    st.session_state[state.TRAIN_RUN_KEY] = run_id
    st.rerun()


def _explore_once(run_id: str) -> None:
    """Select a run this session launched for the Map and Compare pages, once, when it is done."""
    if st.session_state.get(state.TRAIN_RUN_KEY) == run_id and st.session_state.get(EXPLORED_KEY) != run_id:
        state.select_run(run_id)
        st.session_state[EXPLORED_KEY] = run_id


def _models_done(run_id: str) -> None:
    out = read_json(res.get_store().run_dir(run_id) / "models.json")
    if not out:
        st.warning("The comparison finished but its results file is missing.")
        return
    cands, bm25 = from_json(out)
    best = max(cands, key=lambda c: c.dense["nDCG@10"])
    st.info(f":material/emoji_events: Best dense model here: **{widgets.plain(best.model)}** (nDCG@10 "
            f"{best.dense['nDCG@10']:.3f}; BM25 {bm25['nDCG@10']:.3f}) on {out['n_questions']} evaluation "
            "questions. Paste its name into 'Base model' above to train from it.")
    st.dataframe(comparison_table(cands, bm25), hide_index=True, width="stretch", key=f"etl_models_{run_id}",
                 column_config={m: st.column_config.NumberColumn(m, format="%.3f")
                                for m in ("nDCG@10", "MRR@10", "Accuracy@10", "hybrid nDCG@10")})


def _done(run_id: str, method: str) -> None:
    store = res.get_store()
    if method == "models":
        _models_done(run_id)
        return
    if method == "shootout":
        out = load_shootout(store.run_dir(run_id))
        if out is None:
            st.warning("The shoot-out finished but its results file is missing.")
            return
        st.info(f":material/emoji_events: {widgets.plain(out.verdict)}")
        table = out.table()
        st.dataframe(table.drop(columns=["method run"]), width="stretch", key=f"etl_shootout_table_{run_id}",
                     column_config={**{m: st.column_config.NumberColumn(m, format="%.3f")
                                       for m in ("Accuracy@10", "MRR@10", "nDCG@10")},
                                    "seconds": st.column_config.NumberColumn("seconds", format="%.1f")})
        st.plotly_chart(quality_vs_time(table), key=f"etl_shootout_chart_{run_id}", height=360)
        st.caption("Each method is also a run of its own: pick it in the sidebar to open its map and comparison "
                   "(with confidence intervals).")
        return
    _explore_once(run_id)
    results = load_results(store.run_dir(run_id))
    if results is None:
        st.warning("The run finished but its results file is missing.")
        return
    widgets.metric_tiles(results)
    widgets.metrics_table(results, key=f"etl_train_table_{run_id}")
    widgets.verdict_panel(results, key=f"etl_train_ci_{run_id}")
    c = st.columns(3)
    c[0].page_link("pages/4_Embedding_map.py", label="See the embedding maps", icon=":material/scatter_plot:")
    c[1].page_link("pages/5_Compare.py", label="Compare question by question", icon=":material/compare_arrows:")
    c[2].page_link("pages/6_Runs.py", label="Download the tuned model", icon=":material/download:")


def _progress(snap) -> None:
    c = st.columns(4)
    c[0].metric("Phase", snap.phase)
    c[1].metric("Epoch", f"{snap.epoch:.2f}" if snap.epoch is not None else "–")
    c[2].metric("Elapsed", fmt_duration(time.time() - snap.started) if snap.started else "–")
    eta = snap.eta_seconds
    c[3].metric(f"Left for these {snap.unit}" if snap.total else "Left in this phase",
                fmt_duration(eta) if eta is not None else "measuring…" if snap.total else "–",
                help="From the rate of the last 30 seconds; later phases (validation, scoring) come on top.")
    text = f"{snap.message} · {snap.step:,}/{snap.total:,} {snap.unit}" if snap.total else (snap.message or "Starting…")
    st.progress(snap.fraction, text=widgets.plain(text))


def _ended_badly(run_id: str, run: dict, snap) -> None:
    store = res.get_store()
    if snap.status == "failed":
        err = read_json(store.run_dir(run_id) / "error.json", {}) or {}
        st.error(f"The run failed: {widgets.plain(snap.error or run.get('error') or err.get('error', 'unknown error'))}")
        tb = snap.traceback or err.get("traceback")
        if tb:
            with st.expander("Technical details (traceback)"):
                st.code(tb, language=None)
    elif snap.status == "cancelled":
        st.warning("This run was cancelled; nothing was saved for it. Launch it again when you are ready.")
    if snap.status in ("interrupted", "failed"):
        if snap.status == "interrupted":
            st.warning(widgets.plain(run.get("error") or "The app stopped while this run was active."))
        ckpt = latest_checkpoint(store.run_dir(run_id)) if run["method"] == "full" else None
        if ckpt is not None:
            step = ckpt.name.split("-")[-1]
            busy = res.get_runner().active() is not None
            if st.button(f"Resume from step {step}", icon=":material/play_arrow:", key=f"etl_resume_{run_id}",
                         disabled=busy, help="Continues training from the last saved checkpoint (model, optimizer "
                         "and schedule) instead of starting over."):
                store.update_run(run_id, status="queued", error=None, ended=None)
                launch(run_id, resume=True)
        elif run["method"] == "full":
            every = (run.get("config") or {}).get("settings", {}).get("checkpoint_every")
            st.info("It stopped before its first checkpoint was saved" + (f" (one every {every} steps)" if every else "")
                    + ", so it cannot resume: launch it again above with the same settings.")


def poll_run(run_id: str, draw: Callable[[dict, Any, Any], None], on_done: Callable[[], None] | None = None) -> None:
    """A fragment that polls ``run_id``'s job snapshot while it runs here (else reads the run folder)
    and calls ``draw(run, snapshot, job or None)`` under the run's heading; polling stops at the end.

    Args:
        on_done: called once when the job ends done, before the rerun that stops the polling.
    """
    store, runner = res.get_store(), res.get_runner()
    job = runner.get(run_id)
    live = job is not None and not job.snapshot().finished

    @st.fragment(run_every=widgets.POLL_SECONDS if live else None)
    def panel() -> None:
        try:
            run = store.get_run(run_id)
        except KeyError:
            st.info("This run was deleted.")
            return
        snap = job.snapshot() if job is not None else history_from_files(store, run_id)
        if live and snap.finished:  # the job just ended: one full rerun stops the polling
            if snap.status == "done" and on_done is not None:
                on_done()  # before the rerun, so the sidebar shows its effect at once
            st.rerun()
        st.markdown(f"#### {STATUS_ICON.get(snap.status, '')} {widgets.plain(run['name'])} · {snap.status}")
        draw(run, snap, job)

    panel()


def live_panel(run_id: str) -> None:
    """The Train page's panel of ``run_id``: progress and cancel while it runs, then its outcome."""

    def draw(run: dict, snap, job) -> None:
        st.caption(f"Method {run['method']} · run id {run_id}")
        if snap.status in ("queued", "running"):
            _progress(snap)
            if job is not None:  # the click runs job.cancel before the (fragment) rerun draws "Cancelling"
                st.button("Cancel run", icon=":material/stop:", key=f"etl_cancel_{run_id}", on_click=job.cancel)
        if snap.losses or snap.evals:
            build = lambda: loss_curve(snap.losses, snap.evals)  # noqa: E731
            # A finished run's curve no longer changes: built once; a live one is redrawn as it grows.
            key = (snap.status, len(snap.losses), len(snap.evals))  # a resumed run draws anew
            fig = res.figure(run_id, "loss", key, build) if snap.finished else build()
            st.plotly_chart(fig, key=f"etl_loss_{run_id}", height=300)
        for note in snap.notes:
            st.caption(f":material/info: {widgets.plain(note)}")
        if snap.status == "done":
            _done(run_id, run["method"])
        else:
            _ended_badly(run_id, run, snap)

    poll_run(run_id, draw, on_done=lambda: _explore_once(run_id))
