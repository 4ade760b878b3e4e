"""Data: upload question/passage files (or answers + documents), check them, split, save a dataset.

Widgets only: reading, linking answers, splitting and saving are ``core.ingest.intake``."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.dataset import DataError
from core.ingest import intake
from core.ingest.splits import SPLIT_MODES
from core.insight.history import datasets_frame
from ui import resources as res
from ui import state, widgets

PREVIEW_ROWS = 5
MAX_PROBLEMS_SHOWN = 5
MAPPING_LABELS = {"query": "Question column", "passage": "Passage column",
                  "negative": "Wrong passage (optional)", "answer": "Answer column (no passages)"}
_text = st.column_config.TextColumn
LINK_COLUMNS = {"question": _text(width="medium"), "answer": _text(width="medium"),
                "linked passage from": _text(width="medium"), "how": _text(width="small"),
                "confidence": st.column_config.ProgressColumn("confidence", min_value=0.0, max_value=1.0,
                                                              format="%.2f", width="small")}

st.title("Data")
widgets.hint(
    "Upload question/passage pairs (CSV, TSV, JSONL, JSON or a BEIR zip), or questions with answers plus the "
    "documents that hold them; check the report, split, and save a named dataset. The sample dataset is "
    "already saved: you can go straight to Train."
)
state.show_flash()
store = res.get_store()
mappings: dict = st.session_state.setdefault(state.MAPPINGS_KEY, {})

left, right = st.columns(2)
qa_files = left.file_uploader(
    "Question files", type=["csv", "tsv", "jsonl", "json", "zip"], accept_multiple_files=True,
    key="etl_qa_files", help="One row per (question, passage) pair, with a header such as "
    "question,passage[,negative]. A file with question,answer columns works too when you also upload "
    "the documents.",
)
doc_files = right.file_uploader(
    "Documents (for files that give answers instead of passages)",
    type=["txt", "md", "pdf", "docx", "html", "htm"], accept_multiple_files=True, key="etl_doc_files",
    help="Cut into passages; each answer is linked to the passage that contains it.",
)


def mapping_form(name: str, columns: list[str], current) -> None:
    """Let the user say which column is which; the file is re-read with that mapping."""
    st.info("Which column holds what? Choose below and apply: the file is read again with your choice.")
    options = ["(none)", *columns]
    with st.form(f"etl_mapform_{name}"):
        chosen = {}
        for col, (role, label) in zip(st.columns(4), MAPPING_LABELS.items(), strict=True):
            cur = getattr(current, role, None) if current else None
            idx = options.index(cur) if cur in options else 0
            val = col.selectbox(label, options, index=idx, key=f"etl_map_{role}_{name}")
            chosen[role] = None if val == options[0] else val
        if st.form_submit_button("Apply columns"):
            mappings[name] = chosen
            st.rerun()


def show_report(name: str, data: bytes, rep) -> None:
    """The report line, the first problems (the rest in an expander) and, when unsure, the column chooser."""
    st.markdown(f"**{widgets.plain(rep.summary())}** · format {rep.format}"
                + (f" · {rep.encoding}" if rep.encoding else ""))
    for p in rep.problems[:MAX_PROBLEMS_SHOWN]:
        (st.error if p.level == "error" else st.warning)(widgets.plain(intake.problem_text(p)))
    if len(rep.problems) > MAX_PROBLEMS_SHOWN:
        with st.expander(f"{len(rep.problems) - MAX_PROBLEMS_SHOWN} more warnings"):
            for p in rep.problems[MAX_PROBLEMS_SHOWN:]:
                st.markdown(f"- {widgets.plain(p.message)}")
    if rep.mapping is not None and (not rep.mapping.confident or name in mappings):
        with st.expander("Columns", expanded=not rep.mapping.confident):
            mapping_form(name, res.read_columns(name, data), rep.mapping)


def file_panel(name: str, data: bytes, docs) -> intake.Part | None:
    """Report of one QA file; returns it as a part of the dataset when it can be used."""
    try:
        loaded = res.load_qa(name, data, mappings.get(name))
    except DataError as exc:
        widgets.show_data_error(exc)
        if columns := res.read_columns(name, data):
            mapping_form(name, columns, None)
        return None
    show_report(name, data, loaded.report)
    ds = loaded.dataset
    if intake.needs_documents(loaded):
        if docs is None or not docs.chunks:
            rows = intake.answers_preview(loaded, PREVIEW_ROWS)
            st.dataframe(pd.DataFrame(rows, columns=["question", "answer"]), hide_index=True, width="stretch")
            st.info("This file gives answers, not passages: upload the documents that contain them "
                    "(top right), and each answer will be linked to the passage that holds it.")
            return None
        use_model = st.checkbox(
            "Also match answers by meaning (loads the model; slower)", key=f"etl_emb_{name}",
            help="For answers worded differently from the documents. Off: exact and keyword matching only.",
        )
        with st.spinner("Linking answers to passages…"):
            model = res.base_model() if use_model else None
            linked = intake.link_to_documents(loaded, docs.chunks, model=model)
        n, ok = len(linked.links), linked.n_linked
        st.markdown(f"**{ok} of {n} answers linked to a passage** ({n - ok} below the confidence threshold "
                    "are left out).")
        st.dataframe(pd.DataFrame(linked.rows, columns=list(LINK_COLUMNS)), hide_index=True, width="stretch",
                     column_config=LINK_COLUMNS)
        if ok == 0:
            return None
        ds = linked.dataset
    else:
        rows = intake.pairs_preview(ds, PREVIEW_ROWS)
        st.dataframe(pd.DataFrame(rows, columns=["question", "passage"]), hide_index=True, width="stretch")
    roles = list(intake.ROLES)
    role = st.columns([1, 2])[0].selectbox("Use this file for", roles, format_func=intake.ROLES.get,
                                           index=roles.index(intake.guess_role(name)), key=f"etl_role_{name}")
    return intake.Part(name, ds, loaded.report.summary(), role)


docs = None
if doc_files:
    docs = res.load_documents(tuple((f.name, f.getvalue()) for f in doc_files))
    with right:
        st.caption(f"{len(docs.files)} document(s) read, {len(docs.chunks)} passages.")
        for problem in docs.problems:
            st.error(widgets.plain(problem))
        for note in docs.notes:
            st.warning(widgets.plain(note))

parts: list[intake.Part] = []
for f in qa_files or []:
    with st.container(border=True):
        st.markdown(f"#### {widgets.plain(f.name)}")
        if part := file_panel(f.name, f.getvalue(), docs):
            parts.append(part)

if parts:
    st.subheader("Split into training and evaluation")
    mode, split = intake.split_mode(parts), None
    if mode == "no-train":
        st.warning(intake.NO_TRAINING_FILE)
    elif mode == "given":
        st.caption("Separate evaluation file(s): passages present in several files count once, and "
                   "evaluation searches the passages of all files.")
        split = intake.split_parts(parts)
    else:
        c1, c2, c3 = st.columns([2, 1, 3])
        frac = c1.slider("Share of questions kept for evaluation", 0.05, 0.5, 0.2, 0.05,
                         key="etl_eval_frac", help="Held out from training and used only to score base vs "
                         "tuned. 20% is a common balance between training data and a stable score.")
        seed = c2.number_input("Seed", 0, 10_000, 42, key="etl_seed", help="Same seed, same split.")
        by = c3.radio("Keep together", SPLIT_MODES, index=1, key="etl_split_by",
                      format_func=lambda m: f"by {m}", captions=[intake.SPLIT_HELP[m] for m in SPLIT_MODES],
                      horizontal=False)
        try:
            split = intake.split_parts(parts, frac, int(seed), by)
        except DataError as exc:
            widgets.show_data_error(exc)
    if split is not None:
        st.info(widgets.plain(split.report.summary()))
        for note in split.report.notes:
            st.caption(widgets.plain(note))
        if split.leaks:
            rep, columns = split.report, ["training question", "evaluation question", "similarity"]
            st.warning(f"{len(rep.exact_duplicates)} identical and {len(rep.near_duplicates)} near-identical "
                       "questions sit on both sides: the evaluation may look better than it is.")
            with st.expander("Questions on both sides"):
                leaks = pd.DataFrame(split.leak_rows(), columns=columns)
                st.dataframe(leaks, hide_index=True, width="stretch")

        st.subheader("Save")
        with st.form("etl_save_dataset"):
            qa_names, doc_names = [f.name for f in qa_files or []], [f.name for f in doc_files or []]
            name = st.text_input("Dataset name", intake.default_name(qa_names), key="etl_ds_name", max_chars=80)
            if st.form_submit_button("Save dataset", type="primary"):
                try:
                    ds_id = intake.save_split(store, name, split, parts, qa_names, doc_names)
                except DataError as exc:  # a bad name, or the disk refused the write (nothing left behind)
                    widgets.show_data_error(exc)
                else:
                    state.select_dataset(ds_id)
                    sizes = f"{len(split.train)} training and {len(split.eval)} evaluation questions"
                    state.flash(f"Saved dataset “{name}”: {sizes}. It is selected in the sidebar: go to Train "
                                "next.")
                    st.rerun()
elif not qa_files:
    st.info("Upload a question file to begin, or use the sample dataset that is already saved.")

st.subheader("Saved datasets")
saved = datasets_frame(store)
created = st.column_config.DatetimeColumn("created", format="D MMM YYYY, HH:mm")
if saved.empty:
    st.caption("None yet.")
else:
    st.dataframe(saved, hide_index=True, width="stretch", column_config={"created": created})
