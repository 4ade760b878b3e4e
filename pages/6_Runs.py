"""Runs: the history, two runs side by side, the tuned model as a zip, deleting a run."""

from __future__ import annotations

import re

import streamlit as st

from core.csvsafe import safe_frame
from core.insight.export import bundle_zip, dimension_options, onnx_ready, prepare_bundle
from core.insight.history import dataset_names, done_runs, not_comparable, run_label, runs_frame
from core.insight.report import build_report
from core.insight.unchanged import UNCHANGED_BUNDLE, base_unchanged
from core.workspace.files import atomic_write_bytes
from core.workspace.run_folder import load_results
from ui import resources as res
from ui import state, widgets

state.through_app(__file__)
st.title("Runs")
widgets.hint(
    "Every run so far: compare two side by side, download a tuned model as a zip, or delete runs you no "
    "longer need."
)
state.show_flash()
store = res.get_store()
runs = store.list_runs()
names = dataset_names(store)
if not runs:
    st.info("No run yet: launch one on the **Train** page.")
    st.page_link("pages/3_Train.py", label="Go to Train", icon=":material/model_training:")
    st.stop()

labels = {r["id"]: run_label(r, names) for r in runs}
done = [r["id"] for r in done_runs(store)]  # tuning runs only (no shoot-out parent, no question generation)

st.subheader("History")
st.dataframe(
    safe_frame(runs_frame(runs, names)),
    hide_index=True,
    width="stretch",
    column_config={
        "created": st.column_config.DatetimeColumn("created", format="D MMM YYYY, HH:mm"),
        **{m: st.column_config.TextColumn(m, help="Tuned model on the evaluation questions")
           for m in ("Accuracy@10", "MRR@10", "nDCG@10")},
    },
)

st.subheader("Compare two runs")
scored = {rid: r for rid in done if (r := load_results(store.run_dir(rid))) is not None}
if len(scored) < 2:
    st.caption("Two finished runs are needed.")
else:
    ids = list(scored)
    n_q = {rid: f"{labels[rid]} · {r.eval_questions:,} evaluation questions" for rid, r in scored.items()}
    cols = st.columns(2)
    a = cols[0].selectbox("Run A", ids, format_func=n_q.get, key="etl_runs_cmp_0")
    like = [rid for rid in ids if rid != a and not not_comparable(scored[a], scored[rid])]
    every = cols[1].checkbox("Also offer runs scored on other evaluation questions or passages",
                             key="etl_runs_cmp_any", help="Their numbers are not comparable with run A's: a score "
                             "is an average over the questions asked, among the passages searched.")
    offered = [rid for rid in ids if rid != a] if every else like
    if not offered:
        cols[1].info("No other finished run was scored on the same evaluation questions and passages as run A: "
                     "only such runs compare. Tick the box above to see the others anyway.")
    else:
        b = cols[1].selectbox("Run B", offered, format_func=n_q.get, key="etl_runs_cmp_1",
                              help="Runs scored on the same evaluation questions and passages as run A"
                              + (", then the others." if every else "."))
        differ = not_comparable(scored[a], scored[b])
        if differ:
            st.error(f"These two runs are not comparable: {widgets.plain('; '.join(differ))}. A score is an average "
                     "over the questions asked, among the passages searched, so their numbers measure different "
                     "things: compare each run's change against its own base model, not the scores.",
                     icon=":material/warning:")
        for col, letter, rid in zip(st.columns(2), "AB", (a, b)):  # below the warning, not beside it
            with col:
                widgets.unchanged_note(store.run_dir(rid), f"Run {letter}")
                widgets.metrics_table(scored[rid], key=f"etl_runs_table_{'AB'.index(letter)}", explain=False,
                                      lead="nDCG@10")
    st.caption(widgets.METRIC_HELP)

st.subheader("Download a tuned model")
if not done:
    st.caption("No finished run yet.")
else:
    rid = st.selectbox("Run", done, format_func=labels.get, key="etl_runs_dl")
    method = next(r["method"] for r in runs if r["id"] == rid)
    what = {
        "full": "the fine-tuned model folder (sentence-transformers format)",
        "adapter": "the adapter weights (use with the base model)",
        "nudge": "the nudged passage vectors (use with the base model)",
    }.get(method, "the run's files")
    st.caption(
        f"The bundle holds {what}, its ONNX files (fp32 and int8), the collection's embeddings as Parquet (id, "
        "text, source, vector), snippets that run as they are (sentence-transformers, FAISS, Qdrant, LlamaIndex, "
        "LangChain, ONNX Runtime), the settings, the scores and a README. A new model means re-indexing your "
        "collection: the README says what to re-encode."
    )
    unchanged = base_unchanged(store.run_dir(rid))
    if unchanged:
        st.warning(f"{widgets.plain(unchanged)} You can still download it, but {UNCHANGED_BUNDLE} (its README says "
                   "so too): deploying it changes nothing. For a model that differs, tune on other questions (label "
                   "real ones on the Questions page, or try the full fine-tune).", icon=":material/info:")
    safe = (
        re.sub(r"[^A-Za-z0-9_.-]+", "-", next(r["name"] for r in runs if r["id"] == rid)).strip("-.") or rid
    )
    try:
        dims = dict(dimension_options(store, rid))
        ready = onnx_ready(store, rid)
    except FileNotFoundError as exc:
        st.error(widgets.plain(str(exc)))
    else:
        dim = st.selectbox("Vector size (Matryoshka: fewer dimensions, less storage)", list(dims),
                           format_func=dims.get, key=f"etl_runs_dim_{rid}")
        if not ready:
            st.caption("The first bundle of a model exports it to ONNX (about a minute on a CPU): prepare it here "
                       "to follow the export, or download at once and wait.")
            if st.button("Prepare the ONNX files", icon=":material/memory:", key="etl_runs_onnx"):
                status, update = widgets.status_progress("Exporting the model to ONNX (once per model)…")
                with status:
                    prepare_bundle(store, rid, progress=update)
                status.update(label="ONNX files ready", state="complete", expanded=False)
        st.download_button(
            "Download model bundle (.zip)",
            icon=":material/download:",
            data=lambda rid=rid, dim=dim: bundle_zip(store, rid, dim=dim),
            file_name=f"{safe[:60]}-{dim}d.zip",
            mime="application/zip",
            key="etl_runs_zip",
            on_click="ignore",
        )

    st.subheader("Report for stakeholders")
    st.caption(
        "One HTML file that opens offline in any browser: the verdict, scores with confidence intervals, "
        "the before/after maps, the biggest wins and losses, the data and its leakage check, settings and versions."
    )
    report_path = store.run_dir(rid) / "report.html"
    if st.button("Build report", icon=":material/description:", key="etl_runs_report_build"):
        status, update = widgets.status_progress("Building the report… (the maps take up to a minute the first time)")
        with status:
            html = build_report(store, rid, progress=update)
            atomic_write_bytes(report_path, html.encode("utf-8"))
        status.update(label="Report ready", state="complete", expanded=False)
    if report_path.exists():
        st.download_button(
            "Download report (.html)",
            icon=":material/download:",
            data=report_path.read_bytes(),
            file_name=f"{safe[:60]}-report.html",
            mime="text/html",
            key="etl_runs_report_dl",
            on_click="ignore",
        )

st.subheader("Delete a run")
rid = st.selectbox("Run to delete", list(labels), format_func=labels.get, key="etl_runs_del")
sure = st.checkbox(
    "Yes, delete this run with its model and results (this cannot be undone)", key=f"etl_runs_del_ok_{rid}"
)
if st.button("Delete run", icon=":material/delete:", disabled=not sure, key="etl_runs_del_btn"):
    try:
        store.delete_run(rid)
    except ValueError as exc:
        st.error(widgets.plain(str(exc)))
    else:
        res.forget_run(rid)
        state.flash(f"Deleted run “{labels[rid]}”.")
        st.rerun()
