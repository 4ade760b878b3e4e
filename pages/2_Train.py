"""Train: choose a method and settings, launch a background run, watch it live, see the results."""

from __future__ import annotations

import time

import streamlit as st

from core.insight.plots import loss_curve, quality_vs_time
from core.retrieval.embedding import resolve_model
from core.store import read_json
from core.tuning import adapters
from core.tuning.estimate import estimate_seconds, fmt_duration
from core.tuning.full import TrainConfig
from core.tuning.jobs import BusyError, history_from_files
from core.tuning.runs import execute_run, load_results
from core.tuning.shootout import shootout_table
from ui import resources as res
from ui import state, widgets

METHODS = {
    "full": "Full fine-tune",
    "adapter": "Query adapter",
    "nudge": "NUDGE",
    "shootout": "All methods (shoot-out)",
}
METHOD_CAPTIONS = {
    "full": "Updates all the model's weights. Best results; minutes to hours on a CPU.",
    "adapter": "Learns a small transform of question vectors on top of the unchanged model. Seconds; "
    "passages need no re-encoding.",
    "nudge": "Moves the stored passage vectors toward their training questions. Seconds; "
    "for a fixed collection of passages only.",
    "shootout": "Runs the three methods one after another on this split (NUDGE only where it applies) and "
    "puts them beside BM25 and the hybrid: quality against time.",
}
STATUS_ICON = {
    "queued": ":material/hourglass_empty:",
    "running": ":material/sync:",
    "done": ":green[:material/check_circle:]",
    "failed": ":red[:material/error:]",
    "cancelled": ":material/stop_circle:",
    "interrupted": ":orange[:material/warning:]",
}
SEQ_LENGTHS = [64, 128, 256, 384, 512]
LOSSES = ["mnrl", "cached_mnrl", "matryoshka"]
EXPLORED_KEY = "etl_train_explored"  # the last launched run already selected for exploring

st.title("Train")
widgets.hint(
    "Pick a method and launch: training runs in the background, so you can leave this page and come back; "
    "the scores appear here when it finishes."
)
store, runner = res.get_store(), res.get_runner()
defaults = TrainConfig()
why = widgets.default_reasons(TrainConfig)
why_adapter = widgets.default_reasons(adapters)


def setting(widget, label: str, reason: str, **kw):
    """A settings widget with its default and the default's reason as a one-line caption under it."""
    value = widget(label, **kw)
    default = kw.get("value", (kw.get("options") or [None])[kw.get("index", 0)] if "options" in kw else None)
    if reason:
        st.caption(f"Default {default:g}: {reason}" if isinstance(default, int | float) else reason)
    return value


def launch_form(ds_id: str) -> None:
    meta = store.get_dataset(ds_id)
    train, ev = res.load_dataset(ds_id)
    st.markdown(
        f"Dataset **{widgets.plain(meta['name'])}**: {len(train)} training questions, {len(ev) if ev else 0} evaluation "
        f"questions, {meta['n_passages']} passages. Change it in the sidebar."
    )
    if ev is None or len(ev) == 0:
        st.warning(
            "This dataset has no evaluation questions, so a run could not be scored. Split it on the Data page."
        )
        return
    base_model = st.text_input(
        "Base model",
        value="",
        placeholder="all-MiniLM-L6-v2 (bundled)",
        key="etl_cfg_base_model",
        help="Empty: the bundled all-MiniLM-L6-v2 (384 dimensions, quick on a CPU). Or the path of a local "
        "sentence-transformers folder, or a Hugging Face id when this machine is online.",
    )
    method = st.radio(
        "Method",
        list(METHODS),
        format_func=METHODS.get,
        horizontal=True,
        key="etl_cfg_method",
        captions=[METHOD_CAPTIONS[m] for m in METHODS],
    )
    if method == "nudge":
        st.caption(
            "NUDGE only applies when the evaluation questions search the training corpus (the same passages)."
        )
        ok, reason = adapters.nudge_applies(train.corpus, ev.corpus)
        if not ok:
            st.warning(widgets.plain(reason))

    config: dict = {"base_model": base_model.strip() or None}
    epochs = 1
    if method in ("full", "shootout"):
        if method == "shootout":
            st.caption("Settings of the full fine-tune (the adapter and NUDGE use their defaults):")
        c = st.columns(5)
        with c[0]:
            epochs = setting(
                st.number_input,
                "Epochs",
                why.get("epochs", ""),
                min_value=1,
                max_value=50,
                value=defaults.epochs,
                key="etl_cfg_epochs",
            )
        with c[1]:
            batch = setting(
                st.number_input,
                "Batch size",
                why.get("batch_size", ""),
                min_value=2,
                max_value=512,
                value=defaults.batch_size,
                key="etl_cfg_batch_size",
            )
        with c[2]:
            lr = setting(
                st.number_input,
                "Learning rate",
                why.get("learning_rate", ""),
                min_value=1e-7,
                max_value=1e-2,
                value=defaults.learning_rate,
                step=1e-5,
                format="%.0e",
                key="etl_cfg_lr",
            )
        with c[3]:
            seq = setting(
                st.selectbox,
                "Max tokens per text",
                why.get("max_seq_length", ""),
                options=SEQ_LENGTHS,
                index=SEQ_LENGTHS.index(defaults.max_seq_length),
                key="etl_cfg_max_seq_length",
            )
        with c[4]:
            hn = setting(
                st.number_input,
                "Hard negatives",
                why.get("hard_negatives", ""),
                min_value=0,
                max_value=5,
                value=defaults.hard_negatives,
                key="etl_cfg_hard_negatives",
            )
        with st.expander("Advanced settings"):
            a = st.columns(4)
            with a[0]:
                max_steps = setting(
                    st.number_input,
                    "Max steps",
                    "-1 runs every epoch; a small number (e.g. 2) is a quick smoke test.",
                    min_value=-1,
                    max_value=100_000,
                    value=defaults.max_steps,
                    key="etl_cfg_max_steps",
                )
            with a[1]:
                val_fraction = setting(
                    st.number_input,
                    "Validation share",
                    why.get("val_fraction", ""),
                    min_value=0.0,
                    max_value=0.5,
                    value=defaults.val_fraction,
                    step=0.05,
                    key="etl_cfg_val_fraction",
                )
            with a[2]:
                loss = setting(
                    st.selectbox,
                    "Loss",
                    why.get("loss", ""),
                    options=LOSSES,
                    index=LOSSES.index(defaults.loss),
                    key="etl_cfg_loss",
                )
            with a[3]:
                seed = setting(
                    st.number_input,
                    "Seed",
                    "Fixed so runs repeat.",
                    min_value=0,
                    max_value=100_000,
                    value=defaults.seed,
                    key="etl_cfg_seed",
                )
        config |= {
            "epochs": int(epochs),
            "batch_size": int(batch),
            "learning_rate": float(lr),
            "max_seq_length": int(seq),
            "hard_negatives": int(hn),
            "max_steps": int(max_steps),
            "val_fraction": float(val_fraction),
            "loss": loss,
            "seed": int(seed),
        }
        estimate = estimate_seconds(
            "full",
            len(train.pairs()),
            len(train.corpus),
            len(ev.corpus),
            int(epochs),
            int(seq),
            int(batch),
            int(max_steps),
            int(hn),
            loss,
        )
        if method == "shootout":
            fast = estimate_seconds("adapter", len(train.pairs()), len(train.corpus), len(ev.corpus))
            nudge_ok = adapters.nudge_applies(train.corpus, ev.corpus)[0]
            estimate += fast * (2 if nudge_ok else 1)
            config = {
                "base_model": config["base_model"],
                "methods": ["full", "adapter", "nudge"],
                "full": {k: v for k, v in config.items() if k != "base_model"},
            }
    else:
        if method == "adapter":
            c = st.columns(3)
            with c[0]:
                epochs = setting(
                    st.number_input,
                    "Epochs",
                    why_adapter.get("EPOCHS", ""),
                    min_value=1,
                    max_value=500,
                    value=adapters.EPOCHS,
                    key="etl_cfg_adapter_epochs",
                )
            with c[1]:
                lr = setting(
                    st.number_input,
                    "Learning rate",
                    why_adapter.get("LR", ""),
                    min_value=1e-6,
                    max_value=1e-1,
                    value=adapters.LR,
                    format="%.0e",
                    step=1e-4,
                    key="etl_cfg_adapter_lr",
                )
            with c[2]:
                seed = setting(
                    st.number_input,
                    "Seed",
                    why_adapter.get("SEED", ""),
                    min_value=0,
                    max_value=100_000,
                    value=adapters.SEED,
                    key="etl_cfg_adapter_seed",
                )
            config |= {"epochs": int(epochs), "lr": float(lr), "seed": int(seed)}
        else:
            seed = setting(
                st.number_input,
                "Seed",
                "Chooses the validation questions that pick NUDGE's step size.",
                min_value=0,
                max_value=100_000,
                value=adapters.SEED,
                key="etl_cfg_nudge_seed",
            )
            config |= {"seed": int(seed)}
        estimate = estimate_seconds(method, len(train.pairs()), len(train.corpus), len(ev.corpus))
    st.info(
        f":material/timer: Estimated duration: **{fmt_duration(estimate)}** on this machine "
        f"({len(train.pairs())} training pairs, {len(ev.corpus)} passages to search)."
    )

    name = st.text_input(
        "Run name",
        value=f"{meta['name']} · {METHODS[method]}",
        key=f"etl_cfg_run_name_{ds_id}_{method}",
        max_chars=100,
    )
    active = runner.active()
    if active is not None:
        st.warning(
            f"Run “{widgets.plain(store.get_run(active.run_id)['name'])}” is training now. Wait for it or "
            "cancel it below, then launch again."
        )
    if st.button(
        "Launch training",
        icon=":material/rocket_launch:",
        type="primary",
        disabled=active is not None,
        key="etl_launch",
    ):
        try:
            resolve_model(config["base_model"])
        except ValueError as exc:
            st.error(widgets.plain(str(exc)))
            return
        run_id = store.create_run(ds_id, method, config, name=name.strip() or None)
        try:
            runner.submit(run_id, lambda job, rid=run_id: execute_run(store, rid, job))
        except BusyError as exc:
            store.update_run(run_id, status="cancelled", error=f"Not started: {exc}")
            store.delete_run(run_id)
            st.error(str(exc))
            return
        st.session_state[state.TRAIN_RUN_KEY] = run_id
        st.rerun()


def shown_run() -> str | None:
    """The run to show: this session's last launch, else the running job, else the newest run."""
    run_id = st.session_state.get(state.TRAIN_RUN_KEY)
    active = runner.active()
    for candidate in (run_id, active.run_id if active else None):
        if candidate:
            try:
                store.get_run(candidate)
                return candidate
            except KeyError:
                continue
    runs = store.list_runs()
    return runs[0]["id"] if runs else None


def explore_once(run_id: str) -> None:
    """Select a run this session launched for the Map and Compare pages, once, when it is done
    (later choices in the sidebar are left alone)."""
    if st.session_state.get(state.TRAIN_RUN_KEY) == run_id and st.session_state.get(EXPLORED_KEY) != run_id:
        state.select_run(run_id)
        st.session_state[EXPLORED_KEY] = run_id


def draw_shootout(run_id: str) -> None:
    out = read_json(store.run_dir(run_id) / "shootout.json")
    if not out:
        st.warning("The shoot-out finished but its results file is missing.")
        return
    table = shootout_table(out)
    st.info(f":material/emoji_events: {widgets.plain(out['verdict'])}")
    st.dataframe(
        table.drop(columns=["method run"]),
        width="stretch",
        key=f"etl_shootout_table_{run_id}",
        column_config={
            **{m: st.column_config.NumberColumn(m, format="%.3f") for m in ("Accuracy@10", "MRR@10", "nDCG@10")},
            "seconds": st.column_config.NumberColumn("seconds", format="%.1f"),
        },
    )
    st.plotly_chart(quality_vs_time(table), key=f"etl_shootout_chart_{run_id}", height=360)
    st.caption(
        "Each method is also a run of its own: pick it in the sidebar to open its map and comparison (with "
        "confidence intervals)."
    )


def draw_done(run_id: str, snap) -> None:
    if store.get_run(run_id)["method"] == "shootout":
        draw_shootout(run_id)
        return
    explore_once(run_id)
    results = snap.result if snap.result and "systems" in snap.result else load_results(store, run_id)
    if not results:
        st.warning("The run finished but its results file is missing.")
        return
    widgets.metric_tiles(results)
    widgets.metrics_table(results, key=f"etl_train_table_{run_id}")
    widgets.verdict_panel(results, key=f"etl_train_ci_{run_id}")
    c = st.columns(3)
    c[0].page_link("pages/3_Embedding_map.py", label="See the embedding maps", icon=":material/scatter_plot:")
    c[1].page_link(
        "pages/4_Compare.py", label="Compare question by question", icon=":material/compare_arrows:"
    )
    c[2].page_link("pages/5_Runs.py", label="Download the tuned model", icon=":material/download:")


def live_panel(run_id: str) -> None:
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
            if snap.status == "done":
                explore_once(run_id)  # before the rerun, so the sidebar shows it at once
            st.rerun()
        status = snap.status
        st.markdown(f"#### {STATUS_ICON.get(status, '')} {widgets.plain(run['name'])} · {status}")
        st.caption(f"Method {run['method']} · run id {run_id}")
        if status in ("queued", "running"):
            c = st.columns(4)
            c[0].metric("Phase", snap.phase)
            c[1].metric("Epoch", f"{snap.epoch:.2f}" if snap.epoch is not None else "–")
            c[2].metric("Elapsed", fmt_duration(time.time() - snap.started) if snap.started else "–")
            c[3].metric("Time left in this phase", fmt_duration(snap.eta_seconds) or "–")
            text = (
                f"{snap.message} · {snap.step}/{snap.total}" if snap.total else (snap.message or "Starting…")
            )
            st.progress(snap.fraction, text=text)
            if job is not None:  # the click runs job.cancel before the (fragment) rerun draws "Cancelling"
                st.button(
                    "Cancel run", icon=":material/stop:", key=f"etl_cancel_{run_id}", on_click=job.cancel
                )
        if snap.losses or snap.evals:
            st.plotly_chart(loss_curve(snap.losses, snap.evals), key=f"etl_loss_{run_id}", height=300)
        for note in snap.notes:
            st.caption(f":material/info: {widgets.plain(note)}")
        if status == "done":
            draw_done(run_id, snap)
        elif status == "failed":
            err = read_json(store.run_dir(run_id) / "error.json", {}) or {}
            st.error(
                f"The run failed: {widgets.plain(snap.error or run.get('error') or err.get('error', 'unknown error'))}"
            )
            tb = snap.traceback or err.get("traceback")
            if tb:
                with st.expander("Technical details (traceback)"):
                    st.code(tb, language=None)
        elif status == "cancelled":
            st.warning(
                "This run was cancelled; nothing was saved for it. Launch it again when you are ready."
            )
        elif status == "interrupted":
            st.warning(widgets.plain(run.get("error") or "The app stopped while this run was active."))

    panel()


ds_id = state.selected_dataset()
with st.container(border=True):
    st.subheader("New run")
    if ds_id:
        launch_form(ds_id)
    else:
        st.info("No dataset yet: add one on the **Data** page.")

st.subheader("Current run")
current = shown_run()
if current:
    live_panel(current)
else:
    st.info("No run yet: launch one above.")
