"""Embedding map: the evaluation questions and passages in 2-D, before and after tuning."""

from __future__ import annotations

from dataclasses import asdict

import streamlit as st

from core.insight.plots import embedding_map
from core.insight.projection import ProjectionParams, alignment_stats
from ui import resources as res
from ui import state, widgets

st.title("Embedding map")
widgets.hint(
    "Dots are passages (one colour per source document), ◇ are questions; a line joins each question to its "
    "answer passage: green when tuning moved the answer up the ranking, red when down. Pick a question to "
    "ring its top passages in both maps."
)
view = widgets.require_run()

saved = st.session_state.get(state.MAP_PARAMS_KEY) or asdict(ProjectionParams())
with st.expander("Map settings (UMAP)"):
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
            help="Questions + passages drawn; above this a fixed random sample is used "
            "(every sampled question's answer passage is kept). ~1,500 stays quick.",
        )
        seed = c[3].number_input("Seed", 0, 100_000, saved["seed"], help="Same seed and settings, same map.")
        if st.form_submit_button("Redraw maps"):
            st.session_state[state.MAP_PARAMS_KEY] = {
                "n_neighbors": int(n_neighbors),
                "min_dist": float(min_dist),
                "sample": int(sample),
                "seed": int(seed),
            }
            st.rerun()

params = ProjectionParams(**saved)
try:
    proj = res.projection(view, params)
except ValueError as exc:
    st.warning(f"No map for this run: {widgets.plain(str(exc))}")
    st.stop()
points = res.map_points(view, proj)
links = res.gold_links(view)

tuned_name = view.results.systems["tuned"].name
c1, c2 = st.columns([3, 1])
qid = c1.selectbox(
    "Highlight a question",
    [None, *view.query_ids],
    format_func=lambda q: "(none)" if q is None else widgets.short(view.eval.queries[q]),
    key="etl_map_query",
)
k = c2.slider("Top passages ringed", 1, 10, 5, key="etl_map_k")


def highlight(system: str) -> dict | None:
    if qid is None:
        return None
    ranked = view.rankings.get(system, {}).get(qid)
    return {"query_id": qid, "top_ids": ranked[0][:k] if ranked else []}


def draw(space: str, system: str, title: str, key: str) -> None:
    fig = embedding_map(points, space, links, highlight(system), title=title)
    # Two maps side by side: the legend goes below, so each map keeps the column's full width.
    fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.02, "x": 0}, height=640)
    st.plotly_chart(fig, key=key)


left, right = st.columns(2)
with left:
    draw("base", "base", "Before: base model", "etl_map_base")
with right:
    draw("tuned", "tuned", f"After: {tuned_name}", "etl_map_tuned")
st.caption(
    f"{len(points) // 2} points per map · UMAP {params.key()} · the tuned map is rotated and scaled onto "
    "the base one, so positions compare. Distances on a UMAP map are only roughly meaningful: the numbers "
    "below are measured in the full embedding space."
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

st.subheader("Do questions sit closer to their answers?")
base = alignment_stats(view.base_q, view.gold_vectors("base"), view.base_d)
tuned = alignment_stats(view.tuned_q, view.gold_vectors("tuned"), view.tuned_d)
m = st.columns(3)
m[0].metric(
    "Question ↔ answer similarity",
    f"{tuned['mean_query_gold_cosine']:.3f}",
    delta=f"{tuned['mean_query_gold_cosine'] - base['mean_query_gold_cosine']:+.3f} vs base",
    help="Mean cosine similarity between each question and its answer passage (higher: closer).",
)
m[1].metric(
    "Gap between question and passage clouds",
    f"{tuned['centroid_distance']:.3f}",
    delta=f"{tuned['centroid_distance'] - base['centroid_distance']:+.3f} vs base",
    delta_color="inverse",
    help="Distance between the average question vector and the average passage vector (lower: the two "
    "kinds of text share more of the space).",
)
m[2].metric(
    "Question/passage centre similarity",
    f"{tuned['centroid_cosine']:.3f}",
    delta=f"{tuned['centroid_cosine'] - base['centroid_cosine']:+.3f} vs base",
    help="Cosine between the average question and the average passage vector.",
)
st.caption(
    f"Base model: similarity {base['mean_query_gold_cosine']:.3f}, gap {base['centroid_distance']:.3f}, "
    f"centre similarity {base['centroid_cosine']:.3f}."
)
