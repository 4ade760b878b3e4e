"""Train: choose a method and its settings, launch a background run, watch it live, see the results."""

from __future__ import annotations

import dataclasses

import streamlit as st

from core.generate.advice import method_advice
from core.insight.history import NOT_TUNING
from core.retrieval.embedding import resolve_model
from core.retrieval.rerank import RerankSettings
from core.tuning.nudge import nudge_applies
from core.tuning.runs import create_run
from core.tuning.spec import LAUNCHABLE, METHOD_LABELS, ModelsSettings, RunSpec, Scoring, field_help
from ui import resources as res
from ui import state, train, widgets

SEED_KEPT = "etl_cfg_seed__chosen"  # the seed chosen under Advanced settings, kept while it is closed
ADVISED_KEY = "etl_cfg_method__advised"  # the dataset whose generated questions preselected the method
RERANK_ON = "etl_cfg_rerank__on"  # whether the optional rerank stage is on (kept while its section is closed)
METHOD_CAPTIONS = {
    "full": "Updates all the model's weights. Best results; minutes to hours on a CPU.",
    "adapter": "Learns a small transform of question vectors on top of the unchanged model. The first run "
    "encodes the collection with the base model once (the estimate below includes it); then seconds.",
    "nudge": "Moves the stored passage vectors toward their training questions. For a fixed collection of "
    "passages only; the first run encodes the collection once.",
    "shootout": "Runs the three methods one after another on this split (NUDGE only where it applies) and "
    "puts them beside BM25 and the hybrid: quality against time.",
}

state.through_app(__file__)
st.title("Train")
widgets.hint(
    "Pick a method and launch: training runs in the background, so you can leave this page and come back; "
    "the scores appear here when it finishes."
)
store, runner = res.get_store(), res.get_runner()
runner.refresh()  # runs whose process stopped (the CLI killed, another server gone) show as interrupted


def choose_model(ds_id: str, ds_name: str) -> None:
    """'Which base model?': candidates scored on this dataset's evaluation questions, as a background run."""
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
            train.launch(create_run(store, ds_id, spec, name=f"{ds_name} · which base model?"))


def launch_form(ds_id: str) -> None:
    meta = store.get_dataset(ds_id)
    train, ev = res.load_dataset(ds_id)
    st.markdown(
        f"Dataset **{widgets.plain(meta['name'])}**: {len(train):,} training questions, {len(ev) if ev else 0:,} "
        f"evaluation questions, {meta['n_passages']:,} passages. Change it in the sidebar."
    )
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
                      key="etl_cfg_method", captions=[METHOD_CAPTIONS[m] for m in LAUNCHABLE])
    if advice is not None and method == advice.method:
        st.info(widgets.plain(advice.why), icon=":material/recommend:")
    elif advice is not None and method in advice.against:
        st.warning(widgets.plain(advice.against[method]), icon=":material/warning:")
    if method == "nudge":
        ok, reason = nudge_applies(train.corpus, ev.corpus)
        if not ok:
            st.warning(widgets.plain(reason))
    spec = RunSpec.for_method(method, base_model=base_model.strip() or None)
    key = f"etl_cfg_{method}"
    if method == "shootout":
        spec.settings = widgets.settings_form(spec.settings, f"{key}_methods")
        st.caption("Settings of the full fine-tune (the adapter and NUDGE use their defaults):")
        full = widgets.settings_form(spec.settings.full, f"{key}_full")
        spec.settings = dataclasses.replace(spec.settings, full=full)
    else:
        spec.settings = widgets.settings_form(spec.settings, key)
    # Closed, the advanced widgets are not drawn (a lighter page); the values chosen in them are kept.
    with widgets.lazy_expander("Advanced settings", key="etl_cfg_advanced") as box:
        sub = spec.settings.full if method == "shootout" else spec.settings
        sub = widgets.settings_form(sub, f"{key}_adv", advanced=True, draw=box.open)
        if method == "shootout":
            spec.settings = dataclasses.replace(spec.settings, full=sub)
        else:
            spec.settings = sub
        if box.open:
            st.markdown("**Scoring** (the same for every system of the run)")
        spec.scoring = widgets.settings_form(Scoring(), "etl_cfg_scoring", advanced=True, draw=box.open)
        seed = st.session_state.get(SEED_KEPT, 42)
        if box.open:
            seed = int(st.number_input("Seed", 0, 100_000, seed, key="etl_cfg_seed", help=field_help(RunSpec, "seed")))
            st.session_state[SEED_KEPT] = seed
        spec.seed = seed
    if method != "shootout":
        spec.rerank = rerank_form()
    if not box.open:
        fresh = RunSpec.for_method(method)
        fresh_sub = fresh.settings.full if method == "shootout" else fresh.settings
        changed = (widgets.changed_settings(sub, fresh_sub) + widgets.changed_settings(spec.scoring, Scoring())
                   + ([f"seed {spec.seed}"] if spec.seed != fresh.seed else []))
        if changed:
            st.caption(f"Advanced settings changed: {widgets.plain(', '.join(changed))}.")
    estimate = res.estimate(ds_id, spec, train, ev)
    st.info(f":material/timer: Estimated duration: **{widgets.plain(estimate.text())}** on this machine "
            f"({len(train.pairs())} training pairs, {len(ev.corpus):,} passages to search).")
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
            spec = RunSpec.from_dict(spec.to_dict())  # validated
        except ValueError as exc:
            st.error(widgets.plain(str(exc)))
            return
        train.launch(create_run(store, ds_id, spec, name=name.strip() or None))


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
    train.live_panel(current)
else:
    st.info("No run yet: launch one above.")
