"""Compare page: metrics table with deltas, winners/losers filter, free-text search side by side."""

from __future__ import annotations

from core.retrieval.stats import signed
from tests.pages.conftest import open_app, texts
from ui import resources as res
from ui import state


def test_table_filter_and_search(finished_run):
    store, run_id = finished_run
    at = open_app()
    at.session_state[state.RUN_KEY] = run_id
    at.switch_page("pages/5_Compare.py").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table.index) == ["base", "tuned (adapter)", "BM25", "hybrid (base + BM25)", "hybrid (tuned + BM25)"]
    assert "(" in table.loc["BM25", "MRR@10"]  # score (change vs base)
    # the headline first: best pipeline with tuning vs best without, and what to deploy
    results = res.get_run_view(run_id).results
    head = results.headline_delta
    assert at.subheader[0].value == "Best retriever with tuning vs best without"
    labels = [m.label for m in at.metric]
    assert labels[:3] == [f"Without tuning: {results.systems[head.a].name}",
                          f"With tuning: {results.systems[head.b].name}", "Deploy"]
    assert at.metric[2].value == results.systems[results.recommended].name
    assert f"{signed(head.delta)} nDCG@10, 95% interval [{signed(head.low)}, {signed(head.high)}]" in texts(at)
    if head.n < 30:
        assert any("cannot be told from chance" in w.value for w in at.warning)
    assert len(at.get("plotly_chart")) == 1  # the rank scatter; the closed expanders draw nothing
    n_tables = len(at.dataframe)
    for key in ("etl_cmp_bars_open", "etl_cmp_dims_open", "etl_cmp_ci_open"):  # open each: its content appears
        at.session_state[key] = True
    at.run()
    assert not at.exception
    assert len(at.get("plotly_chart")) == 3  # + metric bars, quality against dimensions
    assert len(at.dataframe) == n_tables + 2  # + the intervals table, the dimensions table
    assert "Change: mean per-question difference" in texts(at)
    at.segmented_control(key="etl_cmp_filter").set_value("worsened").run()
    assert not at.exception
    view = res.get_run_view(run_id)
    question = view.eval.queries[view.query_ids[0]]
    at.text_input(key=state.QUERY_TEXT_KEY).set_value(question).run()
    assert not at.exception
    base, tuned = (df.value for df in at.main.dataframe[-2:])  # the two result tables, side by side
    hits = {"base": base, "tuned": tuned}
    for df in hits.values():
        assert len(df) == 5 and {"rank", "answer", "score", "base → tuned", "passage", "source"} <= set(df.columns)
    assert "✓" in hits["base"]["answer"].tolist() + hits["tuned"]["answer"].tolist()
    assert "Base model" in texts(at)
    assert at.text_input(key=state.QUERY_TEXT_KEY).placeholder == f"e.g. {question}"  # from this dataset
    questions = next(df.value for df in at.dataframe if "base → tuned" in df.value.columns
                     and "question" in df.value.columns)  # winners and losers
    assert list(questions.columns) == ["question", "base → tuned", "places gained", "movement"]
    assert "None" not in " ".join(questions["base → tuned"])
