"""Embedding map: the evaluation questions and passages in 2-D, before and after tuning."""

from __future__ import annotations

from dataclasses import asdict

import streamlit as st

from core.insight.map_figure import COLOR_MODES, MAP_QUESTIONS
from core.insight.projection import ALIGNMENT_HELP, ProjectionParams
from ui import resources as res
from ui import state, widgets

QUESTIONS_KEY = "etl_map_questions"  # questions a map draws (0: all), kept apart from the projection's settings

state.through_app(__file__)
st.title("Embedding map")
widgets.hint(
    "Dots are passages, ◇ are questions; a line joins each question to its answer passage: green when tuning "
    "moved the answer up the ranking, red when down. Passages are coloured the same way by default (or by source "
    "document); hover names each source. Pick a question to ring its top passages in both maps."
)
view = widgets.require_run()


def settings_form(saved: dict) -> None:
    """UMAP settings; 'Redraw maps' keeps them in the session and reruns."""
    with st.form("etl_map_form", border=False):
        c = st.columns(4)
        n_neighbors = c[0].slider(
            "Neighbours",
            2,
            100,
            saved["n_neighbors"],
            help="How many neighbours shape each point's place: small values show local "
            "clusters, large values the overall layout. 15 is UMAP's default.",
        )
        min_dist = c[1].slider(
            "Minimum distance",
            0.0,
            0.99,
            float(saved["min_dist"]),
            0.01,
            help="How tightly points may pack: small values make topics clump visibly.",
        )
        sample = c[2].number_input(
            "Points on the map",
            100,
            10_000,
            saved["sample"],
            100,
            help="Points per map (and passages the UMAP layout is fitted on). The questions drawn (see Questions on "
            "the map), their answer passages and the highlighted question's top passages are always drawn; other "
            "passages, a fixed random sample, fill the map up to this many (at least 300 of them), less the points "
            "of questions left out. ~1,500 stays quick.",
        )
        seed = c[3].number_input("Seed", 0, 100_000, saved["seed"], help="Same seed and settings, same map.")
        questions = c[2].number_input(
            "Questions on the map", 0, 100_000, st.session_state.get(QUESTIONS_KEY, MAP_QUESTIONS), 100,
            help=f"Evaluation questions drawn (0: all), with their answer passages: above this many, a fixed random "
            f"sample, and the map draws fewer points (other passages do not take their place). {MAP_QUESTIONS} "
            "keeps the page quick; the scores below always count every question.",
        )
        if st.form_submit_button("Redraw maps"):
            st.session_state[QUESTIONS_KEY] = int(questions)
            st.session_state[state.MAP_PARAMS_KEY] = {
                "n_neighbors": int(n_neighbors),
                "min_dist": float(min_dist),
                "sample": int(sample),
                "seed": int(seed),
            }
            st.rerun()


saved = st.session_state.get(state.MAP_PARAMS_KEY) or asdict(ProjectionParams())
with widgets.lazy_expander("Map settings (UMAP)", key="etl_map_settings_open") as box:
    if box.open:
        res.warm_up_maps()  # a new map may follow: compile UMAP now, in the background (once per process)
        settings_form(saved)

params = ProjectionParams(**saved)
try:
    proj = res.projection(view, params)
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

n_questions = st.session_state.get(QUESTIONS_KEY, MAP_QUESTIONS)
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

        def fmt(r):
            return ">100" if r != r else str(int(r))  # NaN: not in the top 100

        st.markdown(
            f"Answer passage rank: **{fmt(row['rank before'])} → {fmt(row['rank after'])}** ({row['movement']})"
        )

st.subheader("Do questions find their answers?")
base, tuned = view.alignment("base"), view.alignment("tuned")
m = st.columns(3)
m[0].metric("Nearest passage is the answer", f"{tuned['answer_first']:.0%}",
            delta=f"{(tuned['answer_first'] - base['answer_first']) * 100:+.0f} points vs base",
            help=ALIGNMENT_HELP["answer_first"])
m[1].metric("Median rank of the answer", f"{tuned['median_rank']:g}",
            delta=f"{tuned['median_rank'] - base['median_rank']:+g} vs base", delta_color="inverse",
            help=ALIGNMENT_HELP["median_rank"])
m[2].metric("Answer vs best wrong passage", f"{tuned['margin']:+.3f}",
            delta=f"{tuned['margin'] - base['margin']:+.3f} vs base", help=ALIGNMENT_HELP["margin"])
for key, label in (("answer_first", "Nearest passage"), ("median_rank", "Median rank"), ("margin", "Margin")):
    st.caption(f"**{label}**: {ALIGNMENT_HELP[key]}")
st.caption(f"Base model: {base['answer_first']:.0%} nearest, median rank {base['median_rank']:g}, "
           f"margin {base['margin']:+.3f}. Measured over all {len(view.passage_ids):,} passages, not the map.")
