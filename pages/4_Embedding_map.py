"""Embedding map: the evaluation questions and passages in 2-D, before and after tuning.

The sections in order; the settings form and the maps' fitting are ``ui.embedding_map``."""

from __future__ import annotations

from dataclasses import asdict

import streamlit as st

from core.insight.explore import fmt_rank
from core.insight.map_figure import COLOR_MODES, MAP_QUESTIONS
from core.insight.projection import ALIGNMENT_HELP, ProjectionParams
from ui import embedding_map, state, widgets
from ui import resources as res

state.through_app(__file__)
st.title("Embedding map")
widgets.hint(
    "Dots are passages, ◇ are questions; a line joins each question to its answer passage: green when tuning "
    "moved the answer up the ranking, red when down. Passages are coloured the same way by default (or by source "
    "document); hover names each source. Pick a question to ring its top passages in both maps."
)
view = widgets.require_run()

saved = st.session_state.get(state.MAP_PARAMS_KEY) or asdict(ProjectionParams())
with widgets.lazy_expander("Map settings (UMAP)", key="etl_map_settings_open") as box:
    if box.open:
        res.warm_up_maps()  # a new map may follow: compile UMAP now, in the background (once per process)
        embedding_map.settings_form(saved)

params = ProjectionParams(**saved)
try:
    proj = embedding_map.projection(view, params)
except ValueError as exc:
    st.warning(f"No map for this run: {widgets.plain(str(exc))}")
    st.stop()
points = res.map_points(view, proj)
files = sorted({f for f in points.loc[points["kind"] == "passage", "file"].dropna()})
c1, c2, c3 = st.columns([3, 1, 2])
qid = c1.selectbox(
    "Highlight a question",
    [None, *view.query_ids],
    format_func=lambda q: "(none)" if q is None else widgets.short(view.eval.queries[q]),
    key="etl_map_query",
)
k = c2.slider("Top passages ringed", 1, proj.ring_depth, min(5, proj.ring_depth), key="etl_map_k",
              help=f"Each question's top {proj.ring_depth} passages in both models are always on the map.")
modes = {**COLOR_MODES, **({"file:": "one document"} if files else {})}
mode = c3.radio("Colour passages by", list(modes), format_func=modes.get, key="etl_map_color", horizontal=True)
if mode == "file:":
    mode += c3.selectbox("Document", files, key="etl_map_file")

n_questions = st.session_state.get(embedding_map.QUESTIONS_KEY, MAP_QUESTIONS)
figures, shown, drawn_q = res.map_figures(view, proj, n_questions, mode, qid, k)
left, right = st.columns(2)
left.plotly_chart(figures["base"], key="etl_map_base")
right.plotly_chart(figures["tuned"], key="etl_map_tuned")
n_q, n_p = len(view.query_ids), int((shown["kind"] == "passage").sum()) // 2
on_map = (f"All {n_q:,} evaluation questions are" if len(drawn_q) == n_q else
          f"{len(drawn_q):,} of the {n_q:,} evaluation questions (a fixed random sample; a highlighted question is "
          "always drawn; change it under Map settings) are")
st.caption(
    f"{on_map} on both maps with their answer passages; a highlighted question's top "
    f"passages (up to {proj.ring_depth}) in both models are drawn and ringed; the other passages are a random "
    f"sample ({n_p:,} of "
    f"{len(view.passage_ids):,} passages shown; raise 'Points on the map' to see more). UMAP {params.key()}; the "
    "tuned map is rotated and scaled onto the base one, so positions compare. Distances on a UMAP map are only "
    "roughly meaningful: the numbers below are measured in the full embedding space."
)

if qid is not None:
    wl = res.winners_losers(view.run_id)
    if qid in wl.index:
        row = wl.loc[qid]
        st.markdown(
            f"Answer passage rank: **{fmt_rank(row['rank before'])} → {fmt_rank(row['rank after'])}** "
            f"({row['movement']})"
        )

st.subheader("Do questions find their answers?")
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
