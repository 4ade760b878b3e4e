"""Embedding map: the evaluation questions and passages in 2-D, before and after tuning.

The sections in order; the views, the settings form and the maps' fitting are ``ui.embedding_map``."""

from __future__ import annotations

from dataclasses import asdict

import streamlit as st

from core.insight.clouds import AnswerNearby
from core.insight.projection import ALIGNMENT_HELP, ProjectionParams
from ui import embedding_map, state, widgets
from ui import resources as res

state.through_app(__file__)
st.title("Embedding map")
widgets.hint(
    "Questions (orange) and passages (blue) before and after tuning, on the same axes: questions far from the "
    "passages form their own cloud, and tuning that brings questions to their answers mixes the two. The number "
    "says how many questions find their answer. Switch to Links to follow a few questions to their answers."
)
view = widgets.require_run()

saved = st.session_state.get(state.MAP_PARAMS_KEY) or asdict(ProjectionParams())
with widgets.lazy_expander("Map settings (UMAP)", key="etl_map_settings_open") as box:
    if box.open:
        res.warm_up_maps()  # a new map may follow: compile UMAP now, in the background (once per process)
        embedding_map.settings_form(saved)
params = ProjectionParams(**saved)

unchanged = embedding_map.unchanged_note(view)
shown = st.radio("View", list(embedding_map.VIEWS), format_func=embedding_map.VIEWS.get, key=embedding_map.VIEW_KEY,
                 horizontal=True)
if unchanged:
    st.info(f"{widgets.plain(unchanged)} The two pictures below are one map drawn twice, not a change.",
            icon=":material/info:")
if shown == "clouds":
    embedding_map.clouds_view(view, params, AnswerNearby.of(view.results, unchanged))
else:
    embedding_map.links_view(view, params)

with st.expander("More measures: nearest passage, median rank, margin"):
    base, tuned = view.alignment("base"), view.alignment("tuned")
    m = st.columns(3)
    m[0].metric("Nearest passage is the answer", f"{tuned['answer_first']:.0%}",
                **widgets.metric_delta((tuned['answer_first'] - base['answer_first']) * 100, "+.0f", " points vs base"),
                help=ALIGNMENT_HELP["answer_first"])
    m[1].metric("Median rank of the answer", f"{tuned['median_rank']:g}",
                **widgets.metric_delta(tuned['median_rank'] - base['median_rank'], "+g", inverse=True),
                help=ALIGNMENT_HELP["median_rank"])
    m[2].metric("Answer vs best wrong passage", f"{tuned['margin']:+.3f}",
                **widgets.metric_delta(tuned['margin'] - base['margin']), help=ALIGNMENT_HELP["margin"])
    for key, label in (("answer_first", "Nearest passage"), ("median_rank", "Median rank"), ("margin", "Margin")):
        st.caption(f"**{label}**: {ALIGNMENT_HELP[key]}")
    st.caption(f"Base model: {base['answer_first']:.0%} nearest, median rank {base['median_rank']:g}, "
               f"margin {base['margin']:+.3f}. Measured over all {len(view.passage_ids):,} passages, not the map.")
