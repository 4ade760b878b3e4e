"""Train: choose a method and its settings, launch a background run, watch it live, see the results.

The sections in order; the launch form and the live panel are ``ui.train``."""

from __future__ import annotations

import streamlit as st

from core.tuning.methods import REGISTERED
from ui import resources as res
from ui import state, train, widgets

METHOD_CAPTIONS = {m.name: m.caption for m in REGISTERED}  # the Train page's line under each method

state.through_app(__file__)
st.title("Train")
widgets.hint(
    "Pick a method and launch: training runs in the background, so you can leave this page and come back; "
    "the scores appear here when it finishes."
)
res.get_runner().refresh()  # runs whose process stopped (the CLI killed, another server gone) show as interrupted

ds_id = state.selected_dataset()
with st.container(border=True):
    st.subheader("New run")
    if ds_id:
        train.launch_form(ds_id, METHOD_CAPTIONS)
    else:
        st.info("No dataset yet: add one on the **Data** page.")

st.subheader("Current run")
current = train.shown_run()
if current:
    train.live_panel(current)
else:
    st.info("No run yet: launch one above.")
