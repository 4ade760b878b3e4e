"""The Train page's panels: the New run form (base model, "which base model?", method, settings, the
optional rerank stage, the estimate and Launch) and the live panel of one run: progress with its unit and
ETA, cancel, loss and validation curves, then the results, the failure, or the way to resume an interrupted run.

The live panel polls the job's snapshot in a fragment (``widgets.poll_run``; the worker thread never
calls Streamlit); after a restart the panel falls back to what the run folder says.
"""

from __future__ import annotations

import dataclasses
import time

import streamlit as st

from core.dataset import CUT_COPIES, count_passages
from core.execute import execute
from core.generate.advice import method_advice
from core.insight.history import EXPLORABLE, NOT_TUNING
from core.insight.models import comparison_table, from_json
from core.insight.plots import loss_curve, quality_vs_time
from core.retrieval.embedding import resolve_model
from core.retrieval.rerank import RerankSettings
from core.tuning.full import latest_checkpoint
from core.tuning.methods import method_of
from core.tuning.nudge import nudge_applies
from core.tuning.runs import create_run
from core.tuning.shootout import load_shootout
from core.tuning.spec import LAUNCHABLE, METHOD_LABELS, ModelsSettings, RunSpec, Scoring, field_help
from core.workspace.files import read_json
from core.workspace.jobs import BusyError, fmt_duration
from core.workspace.run_folder import load_results, read_error
from ui import resources as res
from ui import state, widgets

EXPLORED_KEY = "etl_train_explored"  # the last launched run already selected for exploring
SEED_KEPT = "etl_cfg_seed__chosen"  # the seed chosen under Advanced settings, kept while it is closed
ADVISED_KEY = "etl_cfg_method__advised"  # the dataset whose generated questions preselected the method
RERANK_ON = "etl_cfg_rerank__on"  # whether the optional rerank stage is on (kept while its section is closed)


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


def _done(run_id: str, method: str, said_unchanged: bool | None = None) -> None:
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
    widgets.metric_tiles(results, said_unchanged=said_unchanged)
    widgets.metrics_table(results, key=f"etl_train_table_{run_id}")
    widgets.verdict_panel(results, key=f"etl_train_ci_{run_id}")
    c = st.columns(3)
    c[0].page_link("pages/4_Embedding_map.py", label="See the embedding maps", icon=":material/scatter_plot:")
    c[1].page_link("pages/5_Compare.py", label="Compare question by question", icon=":material/compare_arrows:")
    c[2].page_link("pages/6_Runs.py", label="Download the tuned model", icon=":material/download:")


def evaluation_marks(run_id: str, metric: str = "MRR@10") -> dict[str, float] | None:
    """The run's evaluation scores in the validation curve's metric, base and tuned, to mark on the loss chart
    (``loss_curve(marks=...)``): the curve is measured on held-out training questions, these on the evaluation
    questions, so the two can be compared. None without results."""
    results = load_results(res.get_store().run_dir(run_id))
    if results is None or "tuned" not in results.systems:
        return None
    scores = {f"evaluation, {role} model": results.systems[role].metrics.get(metric) for role in ("base", "tuned")}
    return {k: v for k, v in scores.items() if v is not None} or None


def _progress(snap) -> None:
    c = st.columns(4)
    c[0].metric("Phase", snap.phase)
    c[1].metric("Epoch", f"{snap.epoch:.2f}" if snap.epoch is not None else "–")
    c[2].metric("Elapsed", fmt_duration(time.time() - snap.started) if snap.started else "–")
    eta = snap.eta_seconds
    c[3].metric(f"Left for these {snap.unit}" if snap.total else "Left in this phase",
                fmt_duration(eta) if eta is not None else "timing…" if snap.total else "–",
                help="From the rate of the last 30 seconds (until there is one: timing the first of them); later "
                "phases (validation, scoring) come on top.")
    text = f"{snap.message} · {snap.step:,}/{snap.total:,} {snap.unit}" if snap.total else (snap.message or "Starting…")
    if snap.total and eta is None:  # say what is being measured, not just "measuring"
        text += f" · {widgets.time_left(snap)}"
    st.progress(snap.fraction, text=widgets.plain(text))


def _ended_badly(run_id: str, run: dict, snap) -> None:
    store = res.get_store()
    if snap.status == "failed":
        err = read_error(store.run_dir(run_id))
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


def live_panel(run_id: str) -> None:
    """The Train page's panel of ``run_id``: progress and cancel while it runs, then its outcome."""

    def draw(run: dict, snap, job) -> None:
        st.caption(f"Method {run['method']} · run id {run_id}")
        if snap.status in ("queued", "running"):
            _progress(snap)
            if job is not None:  # the click runs job.cancel before the (fragment) rerun draws "Cancelling"
                st.button("Cancel run", icon=":material/stop:", key=f"etl_cancel_{run_id}", on_click=job.cancel)
        done = snap.status == "done" and run["method"] in EXPLORABLE
        said_unchanged = widgets.unchanged_note(res.get_store().run_dir(run_id)) if done and not (
            snap.losses or snap.evals) else None  # no curve: said above the scores instead
        if snap.losses or snap.evals:
            marks = evaluation_marks(run_id) if done else None
            build = lambda: loss_curve(snap.losses, snap.evals, marks=marks)  # noqa: E731
            # A finished run's curve no longer changes: built once; a live one is redrawn as it grows.
            key = (snap.status, len(snap.losses), len(snap.evals))  # a resumed run draws anew
            fig = res.figure(run_id, "loss", key, build) if snap.finished else build()
            st.plotly_chart(fig, key=f"etl_loss_{run_id}", height=300)
            if done:  # a falling loss is no proof of a changed model: say so beside the curve
                said_unchanged = widgets.unchanged_note(res.get_store().run_dir(run_id),
                                                        "Training ran (the curve above), but it changed nothing")
        for note in snap.notes:
            st.caption(f":material/info: {widgets.plain(note)}")
        if snap.status == "done":
            _done(run_id, run["method"], said_unchanged)
        else:
            _ended_badly(run_id, run, snap)

    widgets.poll_run(run_id, draw, on_done=lambda: _explore_once(run_id))


# --------------------------------------------------------------------------- the launch form
def choose_model(ds_id: str, ds_name: str) -> None:
    """'Which base model?': candidates scored on this dataset's evaluation questions, as a background run."""
    store, runner = res.get_store(), res.get_runner()
    with widgets.lazy_expander("Which base model? Compare candidates on this dataset's evaluation questions first",
                               key="etl_models_open") as box:
        if not box.open:
            return
        text = st.text_area("Candidate models, one per line", value="\n".join(ModelsSettings().candidates),
                            key="etl_models_candidates", help=field_help(ModelsSettings, "candidates"), height=100)
        names = [line.strip() for line in text.splitlines() if line.strip()]
        st.caption("Each model encodes the evaluation passages once (cached afterwards); the table appears in the "
                   "run panel below: dense and hybrid scores with intervals, speed, size and memory.")
        if st.button("Compare models", icon=":material/compare:", key="etl_models_go",
                     disabled=not names or runner.active() is not None):
            try:
                for name in names:
                    resolve_model(None if name == "all-MiniLM-L6-v2" else name)
            except ValueError as exc:
                st.error(widgets.plain(str(exc)))
                return
            spec = RunSpec.for_method("models", candidates=names)
            launch(create_run(store, ds_id, spec, name=f"{ds_name} · which base model?"))


def launch_form(ds_id: str, captions: dict[str, str]) -> None:
    """The New run form: dataset line, base model, method (``captions``: a line under each), its settings,
    advanced settings, the rerank stage, the estimate and Launch. The spec is built once from the chosen parts,
    so ``RunSpec`` checks their combination; an invalid one is said here instead of the estimate."""
    store, runner = res.get_store(), res.get_runner()
    meta = store.get_dataset(ds_id)
    train, ev = res.load_dataset(ds_id)
    n_passages, n_cut = count_passages(train, ev)  # the collection's count, as the Data and Questions pages say
    st.markdown(
        f"Dataset **{widgets.plain(meta['name'])}**: {len(train):,} training questions, {len(ev) if ev else 0:,} "
        f"evaluation questions, {n_passages:,} passages. Change it in the sidebar."
    )
    if n_cut:
        st.caption(f"Training also reads {n_cut:,} {CUT_COPIES}.")
    if ev is None or len(ev) == 0:
        st.warning("This dataset has no evaluation questions, so a run could not be scored: split a question file on "
                   "the Data page, or label a few real questions on the Questions page (Label).")
        return
    base_model = st.text_input("Base model", value="", placeholder="all-MiniLM-L6-v2 (bundled)",
                               key="etl_cfg_base_model", help=field_help(RunSpec, "base_model"))
    choose_model(ds_id, meta["name"])
    advice = method_advice(train)  # generated training questions: preselect what measured best for them, once
    if advice is not None and st.session_state.get(ADVISED_KEY) != ds_id:
        st.session_state["etl_cfg_method"] = advice.method
        st.session_state[ADVISED_KEY] = ds_id
    method = st.radio("Method", list(LAUNCHABLE), format_func=METHOD_LABELS.get, horizontal=True,
                      key="etl_cfg_method", captions=[captions[m] for m in LAUNCHABLE])
    if advice is not None and method == advice.method:
        st.info(widgets.plain(advice.why), icon=":material/recommend:")
    elif advice is not None and method in advice.against:
        st.warning(widgets.plain(advice.against[method]), icon=":material/warning:")
    if method_of(method).searches_training_passages:
        ok, reason = nudge_applies(train.corpus, ev.corpus)
        if not ok:
            st.warning(widgets.plain(reason))
    defaults = RunSpec.for_method(method)
    key = f"etl_cfg_{method}"
    if method == "shootout":
        settings = widgets.settings_form(defaults.settings, f"{key}_methods")
        st.caption("Settings of the full fine-tune (the adapter and NUDGE use their defaults):")
        settings = dataclasses.replace(settings, full=widgets.settings_form(settings.full, f"{key}_full"))
    else:
        settings = widgets.settings_form(defaults.settings, key)
    # Closed, the advanced widgets are not drawn (a lighter page); the values chosen in them are kept.
    with widgets.lazy_expander("Advanced settings", key="etl_cfg_advanced") as box:
        sub = settings.full if method == "shootout" else settings
        sub = widgets.settings_form(sub, f"{key}_adv", advanced=True, draw=box.open)
        settings = dataclasses.replace(settings, full=sub) if method == "shootout" else sub
        if box.open:
            st.markdown("**Scoring** (the same for every system of the run)")
        scoring = widgets.settings_form(Scoring(), "etl_cfg_scoring", advanced=True, draw=box.open)
        seed = st.session_state.get(SEED_KEPT, 42)
        if box.open:
            seed = int(st.number_input("Seed", 0, 100_000, seed, key="etl_cfg_seed", help=field_help(RunSpec, "seed")))
            st.session_state[SEED_KEPT] = seed
    rerank = rerank_form() if method != "shootout" else None
    if not box.open:
        fresh_sub = defaults.settings.full if method == "shootout" else defaults.settings
        changed = (widgets.changed_settings(sub, fresh_sub) + widgets.changed_settings(scoring, Scoring())
                   + ([f"seed {seed}"] if seed != defaults.seed else []))
        if changed:
            st.caption(f"Advanced settings changed: {widgets.plain(', '.join(changed))}.")
    try:  # built once, from the chosen parts: RunSpec checks the combination (e.g. GIST with 2 hard negatives)
        spec = RunSpec(method=method, base_model=base_model.strip() or None, seed=seed, scoring=scoring,
                       settings=settings, rerank=rerank)
    except ValueError as exc:
        st.error(widgets.plain(str(exc)))
        return
    estimate = res.estimate(ds_id, spec, train, ev)
    st.info(f":material/timer: Estimated duration: **{widgets.plain(estimate.text())}** on this machine "
            f"({len(train.pairs()):,} training pairs, {len(ev.corpus):,} passages to search).")
    for note in estimate.notes:  # what the run will leave out (the time budget)
        st.caption(f":material/hourglass_bottom: {widgets.plain(note)}")
    name = st.text_input("Run name", value=f"{meta['name']} · {METHOD_LABELS[method]}",
                         key=f"etl_cfg_run_name_{ds_id}_{method}", max_chars=100)
    active = runner.active()
    if active is not None:
        st.warning(f"Run “{widgets.plain(store.get_run(active.run_id)['name'])}” is training now. Wait for it or "
                   "cancel it below, then launch again.")
    if st.button("Launch training", icon=":material/rocket_launch:", type="primary", disabled=active is not None,
                 key="etl_launch"):
        try:
            resolve_model(spec.base_model)
        except ValueError as exc:
            st.error(widgets.plain(str(exc)))
            return
        launch(create_run(store, ds_id, spec, name=name.strip() or None))


def rerank_form() -> RerankSettings | None:
    """The optional rerank stage: a cross-encoder rescoring the best retriever's top k (off by default)."""
    on = st.session_state.get(RERANK_ON, False)
    with widgets.lazy_expander("Rerank stage (optional)", key="etl_cfg_rerank_open") as box:
        if box.open:
            st.caption("A cross-encoder reads each question with each of the best retriever's top passages and "
                       "reorders them: slower per question (about 1 s here for the top 20 at 128 tokens; the estimate below "
                       "counts your settings), and more accurate when the "
                       "cross-encoder was trained for reranking. Bring one (both sides get it), or train one on your "
                       "training questions (it then counts as tuning): trained here from the bundled model on a few "
                       "hundred questions it made rankings much worse (sec-10k nDCG@10 0.826 -> 0.272). Scored in the "
                       "same table as every retriever, so you see which it does.")
            on = st.toggle("Add a rerank stage", value=on, key="etl_cfg_rerank_toggle")
            st.session_state[RERANK_ON] = on
        settings = widgets.settings_form(RerankSettings(), "etl_cfg_rerank", draw=box.open and on)
        settings = widgets.settings_form(settings, "etl_cfg_rerank_adv", advanced=True, draw=box.open and on)
    settings = dataclasses.replace(settings, model=settings.model or "", start_from=settings.start_from or "")
    if on and not box.open:
        st.caption(f"Rerank stage on: the top {settings.top_k} reranked by "
                   + (f"{widgets.plain(settings.model)}." if settings.model else "a cross-encoder trained on your "
                      "training questions."))
    return settings if on else None


def shown_run() -> str | None:
    """The run to show: this session's last launch, else the running job, else the newest run."""
    store, runner = res.get_store(), res.get_runner()
    active = runner.active()
    for candidate in (st.session_state.get(state.TRAIN_RUN_KEY), active.run_id if active else None):
        if candidate:
            try:
                if store.get_run(candidate)["method"] not in NOT_TUNING:  # question generation: Questions page
                    return candidate
            except KeyError:
                continue
    runs = [r for r in store.list_runs() if r["method"] not in NOT_TUNING]
    return runs[0]["id"] if runs else None
