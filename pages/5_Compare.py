"""Compare: base vs tuned (with BM25 and hybrid baselines), question by question, and live search.

The sections in order; the judging section and the passage card are ``ui.compare``."""

from __future__ import annotations

import streamlit as st

from core.csvsafe import safe_frame
from core.insight.explore import fmt_rank, ranks_table, search_table
from core.insight.plots import metric_bars, quality_by_dimension_chart, rank_scatter
from ui import compare, state, widgets
from ui import resources as res

FILTERS = {"all": "All questions", "improved": "Improved", "worsened": "Worsened", "same": "Unchanged"}
RANK_HELP = "The answer passage's rank with the base model → with the tuned model (▲ moved up after tuning)."

state.through_app(__file__)
st.title("Compare")
widgets.hint(
    "Does the best retriever with tuning beat the best one you could build without it? First that answer, then "
    "the models alone; the table compares the base and tuned models, keyword search (BM25) and the hybrids of "
    "each model with BM25; below, see which questions won or lost (select one to read its answer passage), and try your own "
    "question against both models."
)
view = widgets.require_run()
results = view.results

widgets.pipeline_headline(results)
said_unchanged = widgets.unchanged_note(res.get_store().run_dir(view.run_id), "These scores")
widgets.metric_tiles(results, said_unchanged=said_unchanged)
widgets.metrics_table(results, key="etl_cmp_table")
compare.unjudged_note(results)
widgets.verdict_panel(results, key="etl_cmp_ci")
with widgets.lazy_expander("Chart of these scores", key="etl_cmp_bars_open") as box:
    if box.open:
        st.plotly_chart(res.figure(view.run_id, "bars", (), lambda: metric_bars(results.table())),
                        key="etl_cmp_bars", height=340)
with widgets.lazy_expander("Smaller vectors: quality against dimensions (no re-encoding)",
                           key="etl_cmp_dims_open") as box:
    if box.open:
        dims = res.quality_by_dimension(view.run_id)
        st.plotly_chart(res.figure(view.run_id, "dims", (), lambda: quality_by_dimension_chart(dims)),
                        key="etl_cmp_dims", height=300)
        st.dataframe(dims, hide_index=True, width="stretch", key="etl_cmp_dims_table",
                     column_config={m: st.column_config.NumberColumn(m, format="%.3f")
                                    for m in ("Accuracy@10", "MRR@10", "nDCG@10")})
        st.caption("Each model's stored vectors cut to their first dimensions and re-normalised, searched as the "
                   "run searched. Storage is float32 per passage. Pick the size when you download the model (Runs "
                   "page).")
compare.judge_section(view)

st.subheader("Question by question")
wl = res.winners_losers(view.run_id)
counts = wl["movement"].value_counts()
pick = st.segmented_control(
    "Show", list(FILTERS), default="all", key="etl_cmp_filter",
    format_func=lambda f: f"{FILTERS[f]} ({len(wl) if f == 'all' else int(counts.get(f, 0))})",
)
shown = wl if pick in (None, "all") else wl[wl["movement"] == pick]
if pick == "worsened":
    shown = shown.iloc[::-1]  # biggest losses first
left, right = st.columns([3, 2])
table = ranks_table(shown)
picked = left.dataframe(
    table, hide_index=True, width="stretch", height=360, key="etl_cmp_questions", on_select="rerun",
    selection_mode="single-row",
    column_config={"question": st.column_config.TextColumn("question", width="medium"),
                   "base → tuned": st.column_config.TextColumn("base → tuned", help=RANK_HELP),
                   "places gained": st.column_config.NumberColumn("places gained", format="%+d",
                                                                  help="'>100' counts as 101")},
)
with right:
    scatter = wl.rename(columns={"rank before": "base model", "rank after": "tuned model"})
    fig = res.figure(view.run_id, "rank_scatter", (), lambda: rank_scatter(scatter, "base model", "tuned model"))
    st.plotly_chart(fig, key="etl_cmp_scatter", height=360)
    st.caption("One dot per question; below the diagonal = the answer moved up after tuning.")
rows = picked.selection.rows if picked and picked.selection else []
if rows:
    qid = table.index[rows[0]]
    row = wl.loc[qid]
    st.markdown(f"**{widgets.plain(view.eval.queries[qid])}** · answer rank {fmt_rank(row['rank before'])} with the "
                f"base model → {fmt_rank(row['rank after'])} after tuning")
    for pid in view.eval.relevant_docs[qid]:
        compare.passage_card(view, pid, "Answer passage", qid)
else:
    st.caption("Select a question in the table to read its answer passage in full.")

st.subheader("Try a question")

c1, c2 = st.columns([3, 1])
c1.selectbox(
    "Start from an evaluation question (optional)", [None, *view.query_ids], key="etl_cmp_pick",
    on_change=compare.prefill, args=(view,),
    format_func=lambda q: "(type your own below)" if q is None else widgets.short(view.eval.queries[q], 120),
)
k = c2.number_input("Passages to show", 1, 50, 5, key="etl_cmp_k")
example = view.eval.queries[view.query_ids[0]] if view.query_ids else "your question"
text = st.text_input("Your question", key=state.QUERY_TEXT_KEY, placeholder=f"e.g. {widgets.short(example, 80)}")
if text.strip():
    with st.spinner("Searching with both models… (the first search loads them)"):
        found = view.search(text, int(k))
    st.caption("✓ marks the known answer when your text is one of the evaluation questions. Select a row to read "
               "the passage in full.")
    cols = st.columns(2)
    chosen = []
    for col, space, title in ((cols[0], "base", "Base model"),
                              (cols[1], "tuned", f"After tuning: {results.systems['tuned'].name}")):
        with col:
            st.markdown(f"**{title}**")
            event = st.dataframe(
                safe_frame(search_table(found[space], space)), hide_index=True, width="stretch", key=f"etl_cmp_hits_{space}",
                on_select="rerun", selection_mode="single-row",
                column_config={"passage": st.column_config.TextColumn("passage", width="large"),
                               "base → tuned": st.column_config.TextColumn(
                                   "base → tuned", help="This passage's rank with the base model → with the tuned "
                                   "model (▲ moved up after tuning; >100: not in that model's top 100).")},
            )
            if event and event.selection and event.selection.rows:
                chosen.append((space, found[space].iloc[event.selection.rows[0]]))
    qid = next((q for q in view.query_ids if view.eval.queries[q].strip().lower() == text.strip().lower()), None)
    for space, hit in chosen:
        compare.passage_card(view, hit["passage_id"],
                             f"Rank {hit['rank']} with the {'base' if space == 'base' else 'tuned'} model", qid)
