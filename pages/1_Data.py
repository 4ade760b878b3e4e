"""Data: upload question/passage files (or answers + documents), check them, split, save a dataset."""

from __future__ import annotations

from pathlib import PurePath

import pandas as pd
import streamlit as st

from core.dataset import DataError, join_train_eval, merge_datasets
from core.ingest.documents import link_answers
from core.ingest.splits import SPLIT_MODES, leakage_report, split_dataset
from core.insight.history import datasets_frame
from ui import resources as res
from ui import state, widgets

ROLES = {
    "split": "Training + evaluation (split below)",
    "train": "Training only",
    "eval": "Evaluation only",
}
SPLIT_HELP = {
    "query": "each question on its own (fastest to fill both sides; the same passage may sit on both)",
    "passage": "questions that share an answer passage stay together, so no answer is seen in both training "
    "and evaluation (recommended: scores are not flattered)",
    "document": "all questions about one source document stay together (needs source documents)",
}
PREVIEW_ROWS = 5
MAX_PROBLEMS_SHOWN = 5

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
    "Question files",
    type=["csv", "tsv", "jsonl", "json", "zip"],
    accept_multiple_files=True,
    key="etl_qa_files",
    help="One row per (question, passage) pair, with a header such as question,passage[,negative]. "
    "A file with question,answer columns works too when you also upload the documents.",
)
doc_files = right.file_uploader(
    "Documents (for files that give answers instead of passages)",
    type=["txt", "md", "pdf", "docx", "html", "htm"],
    accept_multiple_files=True,
    key="etl_doc_files",
    help="Cut into passages; each answer is linked to the passage that contains it.",
)


def mapping_form(name: str, columns: list[str], current) -> None:
    """Let the user say which column is which; the file is re-read with that mapping."""
    st.info("Which column holds what? Choose below and apply: the file is read again with your choice.")
    none = "(none)"
    options = [none, *columns]

    def pick(role: str, label: str) -> str | None:
        cur = getattr(current, role, None) if current else None
        idx = options.index(cur) if cur in options else 0
        val = st.selectbox(label, options, index=idx, key=f"etl_map_{role}_{name}")
        return None if val == none else val

    with st.form(f"etl_mapform_{name}"):
        c = st.columns(4)
        with c[0]:
            q = pick("query", "Question column")
        with c[1]:
            p = pick("passage", "Passage column")
        with c[2]:
            n = pick("negative", "Wrong passage (optional)")
        with c[3]:
            a = pick("answer", "Answer column (no passages)")
        if st.form_submit_button("Apply columns"):
            mappings[name] = {"query": q, "passage": p, "negative": n, "answer": a}
            st.rerun()


def guess_role(name: str) -> str:
    stem = PurePath(name).stem.lower()
    if any(w in stem for w in ("eval", "test", "dev", "val")):
        return "eval"
    if "train" in stem:
        return "train"
    return "split"


def file_panel(name: str, data: bytes, docs) -> tuple[str, object, str] | None:
    """Report of one QA file; returns (role, dataset, summary) when it can be used."""
    try:
        loaded = res.load_qa(name, data, mappings.get(name))
    except DataError as exc:
        widgets.show_data_error(exc)
        columns = res.read_columns(name, data)
        if columns:
            mapping_form(name, columns, None)
        return None
    rep = loaded.report
    st.markdown(
        f"**{widgets.plain(rep.summary())}** · format {rep.format}"
        + (f" · {rep.encoding}" if rep.encoding else "")
    )
    for p in rep.problems[:MAX_PROBLEMS_SHOWN]:
        text = p.message if not p.where or p.where.lower() in p.message.lower() else f"{p.where}: {p.message}"
        (st.error if p.level == "error" else st.warning)(widgets.plain(text))
    if len(rep.problems) > MAX_PROBLEMS_SHOWN:
        with st.expander(f"{len(rep.problems) - MAX_PROBLEMS_SHOWN} more warnings"):
            for p in rep.problems[MAX_PROBLEMS_SHOWN:]:
                st.markdown(f"- {widgets.plain(p.message)}")
    if rep.mapping is not None and (not rep.mapping.confident or name in mappings):
        with st.expander("Columns", expanded=not rep.mapping.confident):
            mapping_form(name, res.read_columns(name, data), rep.mapping)

    ds = loaded.dataset
    if loaded.answers and not ds.corpus:
        if docs is None or not docs.chunks:
            preview = pd.DataFrame(
                {
                    "question": [ds.queries[q] for q in list(loaded.answers)[:PREVIEW_ROWS]],
                    "answer": list(loaded.answers.values())[:PREVIEW_ROWS],
                }
            )
            st.dataframe(preview, hide_index=True, width="stretch")
            st.info(
                "This file gives answers, not passages: upload the documents that contain them (top right), "
                "and each answer will be linked to the passage that holds it."
            )
            return None
        use_model = st.checkbox(
            "Also match answers by meaning (loads the model; slower)",
            key=f"etl_emb_{name}",
            help="For answers worded differently from the documents. Off: exact and keyword matching only.",
        )
        with st.spinner("Linking answers to passages…"):
            ds, links = link_answers(
                ds.queries, loaded.answers, docs.chunks, model=res.base_model() if use_model else None
            )
        labels = {c.id: c.label for c in docs.chunks}
        n_ok = sum(link.linked for link in links)
        st.markdown(
            f"**{n_ok} of {len(links)} answers linked to a passage** "
            f"({len(links) - n_ok} below the confidence threshold are left out)."
        )
        st.dataframe(
            pd.DataFrame(
                {
                    "question": [loaded.dataset.queries.get(lk.query_id, "") for lk in links],
                    "answer": [loaded.answers.get(lk.query_id, "") for lk in links],
                    "linked passage from": [
                        labels.get(lk.chunk_id or lk.candidate_id or "", "") for lk in links
                    ],
                    "how": [lk.method for lk in links],
                    "confidence": [lk.confidence for lk in links],
                }
            ),
            hide_index=True,
            width="stretch",
            column_config={
                "question": st.column_config.TextColumn(width="medium"),
                "answer": st.column_config.TextColumn(width="medium"),
                "linked passage from": st.column_config.TextColumn(width="medium"),
                "how": st.column_config.TextColumn(width="small"),
                "confidence": st.column_config.ProgressColumn(
                    "confidence", min_value=0.0, max_value=1.0, format="%.2f", width="small"
                ),
            },
        )
        if n_ok == 0:
            return None
    else:
        pairs = [
            (ds.queries[q], ds.corpus[d])
            for q in ds.query_ids[:PREVIEW_ROWS]
            for d in ds.relevant_docs[q][:1]
        ]
        st.dataframe(pd.DataFrame(pairs, columns=["question", "passage"]), hide_index=True, width="stretch")
    role = st.columns([1, 2])[0].selectbox(
        "Use this file for",
        list(ROLES),
        format_func=ROLES.get,
        index=list(ROLES).index(guess_role(name)),
        key=f"etl_role_{name}",
    )
    return role, ds, rep.summary()


docs = None
if doc_files:
    docs = res.load_documents(tuple((f.name, f.getvalue()) for f in doc_files))
    with right:
        st.caption(f"{len(docs.files)} document(s) read, {len(docs.chunks)} passages.")
        for problem in docs.problems:
            st.error(widgets.plain(problem))
        for note in docs.notes:
            st.warning(widgets.plain(note))

parts: list[tuple[str, object, str]] = []
summaries: dict[str, str] = {}
for f in qa_files or []:
    with st.container(border=True):
        st.markdown(f"#### {widgets.plain(f.name)}")
        got = file_panel(f.name, f.getvalue(), docs)
        if got:
            parts.append(got)
            summaries[f.name] = got[2]

if parts:
    st.subheader("Split into training and evaluation")
    evals = [ds for role, ds, _ in parts if role == "eval"]
    trains = [ds for role, ds, _ in parts if role != "eval"]
    split_info: dict = {}
    train = ev = None
    if evals and not trains:
        st.warning("Every file is marked 'Evaluation only': mark at least one for training.")
    elif evals:
        st.caption(
            "Separate evaluation file(s): passages present in several files count once, and evaluation "
            "searches the passages of all files."
        )
        train, ev = join_train_eval(merge_datasets(trains), merge_datasets(evals))
        rep = leakage_report(train, ev)
        split_info = {"by": "given files"}
    else:
        c1, c2, c3 = st.columns([2, 1, 3])
        frac = c1.slider(
            "Share of questions kept for evaluation",
            0.05,
            0.5,
            0.2,
            0.05,
            key="etl_eval_frac",
            help="Held out from training and used only to score base vs tuned. 20% is a common "
            "balance between training data and a stable score.",
        )
        seed = c2.number_input("Seed", 0, 10_000, 42, key="etl_seed", help="Same seed, same split.")
        by = c3.radio(
            "Keep together",
            SPLIT_MODES,
            index=1,
            key="etl_split_by",
            format_func=lambda m: f"by {m}",
            captions=[SPLIT_HELP[m] for m in SPLIT_MODES],
            horizontal=False,
        )
        try:
            train, ev, rep = split_dataset(merge_datasets(trains), frac, int(seed), by)
            split_info = {"by": by, "eval_fraction": frac, "seed": int(seed)}
        except DataError as exc:
            widgets.show_data_error(exc)
    if train is not None and ev is not None:
        st.info(widgets.plain(rep.summary()))
        for note in rep.notes:
            st.caption(widgets.plain(note))
        if rep.exact_duplicates or rep.near_duplicates:
            st.warning(
                f"{len(rep.exact_duplicates)} identical and {len(rep.near_duplicates)} near-identical "
                "questions sit on both sides: the evaluation may look better than it is."
            )
            with st.expander("Questions on both sides"):
                rows = [
                    (train.queries.get(t, ""), ev.queries.get(e, ""), 1.0) for t, e in rep.exact_duplicates
                ]
                rows += [
                    (train.queries.get(t, ""), ev.queries.get(e, ""), s) for t, e, s in rep.near_duplicates
                ]
                st.dataframe(
                    pd.DataFrame(rows, columns=["training question", "evaluation question", "similarity"]),
                    hide_index=True,
                    width="stretch",
                )

        st.subheader("Save")
        with st.form("etl_save_dataset"):
            default = PurePath(qa_files[0].name).stem if qa_files else "my dataset"
            name = st.text_input("Dataset name", value=default, key="etl_ds_name", max_chars=80)
            if st.form_submit_button("Save dataset", type="primary"):
                report = {"files": summaries, "split": rep.to_dict(), **split_info}
                meta = {
                    "origin": "upload",
                    "files": [f.name for f in qa_files or []],
                    "documents": [f.name for f in doc_files or []],
                    "split_by": split_info.get("by"),
                }
                try:
                    ds_id = store.save_dataset(name, train, ev, report=report, meta=meta)
                except DataError as exc:
                    widgets.show_data_error(exc)
                except OSError as exc:
                    st.error(
                        f"The dataset could not be written to disk ({widgets.plain(exc.strerror or str(exc))}); "
                        "nothing was saved. Free some space in the workspace folder and save again."
                    )
                else:
                    state.select_dataset(ds_id)
                    state.flash(
                        f"Saved dataset “{name}”: {len(train)} training and {len(ev)} evaluation questions. "
                        "It is selected in the sidebar: go to Train next."
                    )
                    st.rerun()
elif not qa_files:
    st.info("Upload a question file to begin, or use the sample dataset that is already saved.")

st.subheader("Saved datasets")
saved = datasets_frame(store)
if saved.empty:
    st.caption("None yet.")
else:
    st.dataframe(
        saved,
        hide_index=True,
        width="stretch",
        column_config={"created": st.column_config.DatetimeColumn("created", format="D MMM YYYY, HH:mm")},
    )
