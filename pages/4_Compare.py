"""Compare: base vs tuned (with BM25 and hybrid baselines), question by question, and live search."""

from __future__ import annotations

import streamlit as st

from core.insight.explore import search_table
from core.insight.plots import metric_bars, rank_scatter
from ui import resources as res
from ui import state, widgets

FILTERS = {"all": "All questions", "improved": "Improved", "worsened": "Worsened", "same": "Unchanged"}

st.title("Compare")
widgets.hint(
    "How much did tuning help? The table compares the base model, the tuned model, keyword search (BM25) and a "
    "hybrid; below, see which questions won or lost, and try your own question against both models."
)
view = widgets.require_run()
results = view.results

widgets.metric_tiles(results)
widgets.metrics_table(results, key="etl_cmp_table")
widgets.verdict_panel(results, key="etl_cmp_ci")
with st.expander("Chart", expanded=True):
    st.plotly_chart(metric_bars(results.table()), key="etl_cmp_bars", height=340)

st.subheader("Question by question")
wl = res.winners_losers(view.run_id)
counts = wl["movement"].value_counts()
pick = st.segmented_control(
    "Show",
    list(FILTERS),
    format_func=lambda f: f"{FILTERS[f]} ({len(wl) if f == 'all' else int(counts.get(f, 0))})",
    default="all",
    key="etl_cmp_filter",
)
shown = wl if pick in (None, "all") else wl[wl["movement"] == pick]
if pick == "worsened":
    shown = shown.iloc[::-1]  # biggest losses first
left, right = st.columns([3, 2])
left.dataframe(
    shown,
    hide_index=True,
    width="stretch",
    height=360,
    column_config={
        "question": st.column_config.TextColumn("question", width="medium"),
        "rank before": st.column_config.NumberColumn(
            "rank before",
            help="Rank of the answer passage with the base model (empty: not in the top 100)",
            format="%d",
        ),
        "rank after": st.column_config.NumberColumn("rank after", help="…with the tuned model", format="%d"),
        "change": st.column_config.NumberColumn("places gained", format="%+d"),
    },
)
with right:
    scatter = wl.rename(columns={"rank before": "base model", "rank after": "tuned model"})
    st.plotly_chart(rank_scatter(scatter, "base model", "tuned model"), key="etl_cmp_scatter", height=360)
    st.caption("One dot per question; below the diagonal = the answer moved up after tuning.")

st.subheader("Try a question")


def prefill() -> None:
    q = st.session_state.get("etl_cmp_pick")
    if q:
        st.session_state[state.QUERY_TEXT_KEY] = view.eval.queries[q]


c1, c2 = st.columns([3, 1])
c1.selectbox(
    "Start from an evaluation question (optional)",
    [None, *view.query_ids],
    key="etl_cmp_pick",
    format_func=lambda q: "(type your own below)" if q is None else widgets.short(view.eval.queries[q], 120),
    on_change=prefill,
)
k = c2.number_input("Passages to show", 1, 50, 5, key="etl_cmp_k")
text = st.text_input(
    "Your question", key=state.QUERY_TEXT_KEY, placeholder="e.g. how often should hoses be replaced?"
)
if text.strip():
    with st.spinner("Searching with both models… (the first search loads them)"):
        found = view.search(text, int(k))
    if not found["base"]["gold"].any() and not found["tuned"]["gold"].any():
        st.caption("✓ marks the known answer passage when your text is one of the evaluation questions.")
    cols = st.columns(2)
    for col, space, other, title in (
        (cols[0], "base", "tuned", "Base model"),
        (cols[1], "tuned", "base", f"After tuning: {results.systems['tuned'].name}"),
    ):
        with col:
            st.markdown(f"**{title}**")
            st.dataframe(
                search_table(found[space], other),
                hide_index=True,
                width="stretch",
                key=f"etl_cmp_hits_{space}",
                column_config={"passage": st.column_config.TextColumn("passage", width="large")},
            )
