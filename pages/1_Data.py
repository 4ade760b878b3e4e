"""Data: upload question/passage files (or answers + documents, or documents alone), check them, split, save.

Widgets only: reading, linking answers, splitting and saving are ``core.ingest.intake``; matching answers
by meaning runs in the background (``core.ingest.meaning``) and a fragment polls its progress."""

from __future__ import annotations

import streamlit as st

from core.csvsafe import safe_frame
from core.ingest import intake
from core.insight.history import datasets_frame
from ui import data as panels
from ui import resources as res
from ui import state, widgets

DOCUMENT_TYPES = panels.DOCUMENT_TYPES
PASSAGE_TYPES = panels.PASSAGE_TYPES

state.through_app(__file__)
st.title("Data")
widgets.hint(
    "Upload question/passage pairs (CSV, TSV, JSONL, JSON, Parquet or a BEIR zip), or questions with answers plus "
    "the documents that hold them; check the report, split, and save a named dataset. Only documents? Upload them "
    "on the right (or a passages export from your vector store) and save them as a collection: the Questions page "
    "then generates training questions and lets you label evaluation questions. The sample dataset is already "
    "saved: you can go straight to Train."
)
state.show_flash()
store = res.get_store()

left, right = st.columns(2)
qa_files = left.file_uploader(
    "Question files", type=["csv", "tsv", "jsonl", "json", "parquet", "zip"], accept_multiple_files=True,
    key="etl_qa_files", help="One row per (question, passage) pair, with a header such as "
    "question,passage[,negative]; optional columns passage_id, source, answer and origin are kept. A file with "
    "question,answer columns works too when you also upload the documents.",
)
doc_files = right.file_uploader(
    "Documents or passages", type=DOCUMENT_TYPES + PASSAGE_TYPES, accept_multiple_files=True, key="etl_doc_files",
    help="Documents (PDF, Word, text, Markdown, HTML) are cut into passages; a table of passages (CSV, TSV, JSONL, "
    "JSON or Parquet with a text column and optional id and source columns, as a vector store exports them) is "
    "read as it is. With a question file that gives answers, each answer is linked to the passage that holds it; "
    "without a question file, save them as a collection.",
)


# --------------------------------------------------------------------------- documents and passages (right)

doc_uploads = [f for f in doc_files or [] if f.name.rsplit(".", 1)[-1].lower() in DOCUMENT_TYPES]
table_uploads = [f for f in doc_files or [] if f not in doc_uploads]
docs = res.load_documents(tuple((f.name, f.getvalue()) for f in doc_uploads)) if doc_uploads else None
passage_files: list[intake.PassageFile] = []
with right:
    if docs is not None:
        st.caption(f"{len(docs.files):,} document(s) read, cut into {len(docs.chunks):,} passages.")
        for problem in docs.problems:
            st.error(widgets.plain(problem))
        for note in docs.notes:
            st.warning(widgets.plain(note))
    for f in table_uploads:
        with st.container(border=True):
            st.markdown(f"##### {widgets.plain(f.name)}")
            if pf := panels.passages_panel(f.name, f.getvalue()):
                passage_files.append(pf)
chunks, merge_notes = intake.collection_chunks(docs.chunks if docs else [], passage_files)
with right:
    for note in merge_notes:
        st.caption(widgets.plain(note))

# --------------------------------------------------------------------------- question files (left, then full width)

parts: list[intake.Part] = []
for f in qa_files or []:
    with st.container(border=True):
        st.markdown(f"#### {widgets.plain(f.name)}")
        if part := panels.file_panel(f.name, f.getvalue(), chunks):
            parts.append(part)

if parts:
    panels.split_and_save(parts, [f.name for f in qa_files or []], [f.name for f in doc_files or []])
elif chunks and not qa_files:
    panels.collection_form(chunks, docs, passage_files, [f.name for f in doc_files or []])
elif not qa_files:
    st.info("To begin, upload a question file (left), or use the sample dataset that is already saved. Only "
            "documents? Upload them under 'Documents or passages' (right), or a passages export from your vector "
            "store, and save them as a collection; then go to Questions to generate training questions and label "
            "evaluation questions.")

st.subheader("Saved datasets")
saved = datasets_frame(store)
created = st.column_config.DatetimeColumn("created", format="D MMM YYYY, HH:mm")
if saved.empty:
    st.caption("None yet.")
else:
    st.dataframe(safe_frame(saved), hide_index=True, width="stretch", column_config={"created": created})
