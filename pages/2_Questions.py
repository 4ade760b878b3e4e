"""Questions: generate training questions from the selected collection, review them, and label
evaluation questions by hand. Drawing is ``ui.questions``; the work is ``core.generate``."""

from __future__ import annotations

import streamlit as st

from core.dataset import generated_ids
from core.generate.labels import human_labels
from core.generate.pairs import collection_passages
from ui import questions, state, widgets
from ui import resources as res

state.through_app(__file__)
st.title("Questions")
widgets.hint(
    "Only documents, no questions? Generate training questions from your passages, review them, and label a few "
    "dozen real questions yourself: training uses the generated ones, the scores come from yours."
)
with st.container():  # always there, so what follows keeps its place (and the open tab) after a message
    state.show_flash()
store, runner = res.get_store(), res.get_runner()
runner.refresh()

ds_id = state.selected_dataset()
if not ds_id:
    st.info("No collection yet: add documents or passages on the **Data** page.")
    st.page_link("pages/1_Data.py", label="Go to Data", icon=":material/upload_file:")
    st.stop()

meta = store.get_dataset(ds_id)
train, ev = res.load_dataset(ds_id)
passages, sources = collection_passages(train, ev)
n_human = len(human_labels(ev))
st.markdown(
    f"**{widgets.plain(meta['name'])}**: {len(passages):,} passages · {len(train):,} training questions · "
    f"{len(ev) if ev else 0:,} evaluation questions ({n_human} labelled by you). Change it in the sidebar."
)

# Only the open tab's content runs (the tabs' state tracking reruns the page on a switch): a collection's
# review table and labelling bench cost nothing while another tab is open.
generate_tab, review_tab, label_tab = st.tabs(["1 · Generate", "2 · Review", "3 · Label"], key="etl_q_tabs",
                                              on_change="rerun")
with generate_tab:
    if generate_tab.open:
        with st.container(border=True):
            questions.generate_form(ds_id, len(passages))
        current = questions.shown_generation(ds_id)
        if current:
            questions.generation_panel(current)
with review_tab:
    if review_tab.open:
        questions.review(ds_id, len(train), len(train) - len(generated_ids(train)))
with label_tab:
    if label_tab.open:
        questions.label_bench(ds_id, ev, passages, sources)

if len(train) and n_human:
    st.page_link("pages/3_Train.py", label="Next: train on the generated questions, scored on yours",
                 icon=":material/model_training:")
