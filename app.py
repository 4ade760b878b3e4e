"""Embedding Tuning Lab: the router. Page config, navigation, the sidebar pickers, the page."""

from __future__ import annotations

import streamlit as st

from ui import resources as res
from ui import state, widgets

st.set_page_config(page_title="Embedding Tuning Lab", page_icon=":material/science:", layout="wide")

st.session_state[state.APP_KEY] = True  # pages check it (state.through_app)
res.ensure_sample()
res.warm_up()

pg = st.navigation(
    [
        st.Page("pages/1_Data.py", title="Data", icon=":material/upload_file:", default=True),
        st.Page("pages/2_Questions.py", title="Questions", icon=":material/quiz:"),
        st.Page("pages/3_Train.py", title="Train", icon=":material/model_training:"),
        st.Page("pages/4_Embedding_map.py", title="Embedding map", icon=":material/scatter_plot:"),
        st.Page("pages/5_Compare.py", title="Compare", icon=":material/compare_arrows:"),
        st.Page("pages/6_Runs.py", title="Runs", icon=":material/history:"),
    ]
)

goto = st.session_state.pop(state.GOTO_KEY, None)
if goto:  # a deep link that reached a page before app.py had run: open that page now, in the navigation
    st.switch_page(goto)

with st.sidebar:
    st.markdown("### :material/science: Embedding Tuning Lab")
    widgets.sidebar()
widgets.preload_components()  # the browser loads the chart and table code while the first page is read
res.prefetch(state.selected_dataset(), state.selected_run())  # the server loads them while the page is read

pg.run()
