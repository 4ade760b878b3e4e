"""Compare page: judge the new finds of a run (one question, blind), save, re-score, see before and after."""

from __future__ import annotations

import pytest

from core.generate.judgments import load_judgments, record_judgments
from core.insight.judging import unjudged_finds
from core.retrieval.coverage import found_by_name
from core.workspace.run_folder import load_results
from tests.pages.conftest import make_finished_run, open_app, texts
from ui import compare as ui_compare
from ui import state


@pytest.fixture(scope="module")
def bench_run(tiny_dataset):
    """A finished run on a dataset whose evaluation labels were judged on the bench (base and BM25 pools)."""
    store, ds_id = tiny_dataset
    _, ev = store.load_dataset(ds_id)
    for q in ev.query_ids:
        record_judgments(store, ds_id, q, {ev.relevant_docs[q][0]: (True, ["base", "bm25"])})
    return store, ds_id, make_finished_run(store, ds_id, name="judged")


def test_judge_one_question_save_and_rescore(bench_run):
    store, ds_id, run_id = bench_run
    before = load_results(store.run_dir(run_id))
    n_finds = before.judging["finds"]
    at = open_app()
    at.session_state[state.RUN_KEY] = run_id
    at.switch_page("pages/5_Compare.py").run()
    assert not at.exception
    shown = texts(at)
    assert "that nobody judged, counted as not relevant" in shown
    assert before.judging["warning"] and before.judging["warning"] in shown
    label = f"Judge the new finds ({n_finds:,} passages unjudged in the pipelines' top 10)"
    assert label in [e.label for e in at.expander]
    assert not any(c.key and c.key.startswith("etl_judge_") for c in at.checkbox)  # closed: nothing drawn

    at.session_state[ui_compare.OPEN_KEY] = True
    at.run()
    assert not at.exception
    finds = unjudged_finds(store, run_id)
    qid = finds[0].question_id
    mine = [f for f in finds if f.question_id == qid]
    boxes = [c for c in at.checkbox if c.key and c.key.startswith(f"etl_judge_{qid}_")]
    assert len(boxes) == len(mine) and all(b.label == "answers the question" for b in boxes)
    _, ev = store.run_data(run_id)
    assert ev.queries[qid] in texts(at)
    assert not any(name in texts(at) for name in ("found by", "BM25:", "tuned (adapter):"))  # blind
    ticked = mine[0].passage_id
    at.checkbox(key=f"etl_judge_{qid}_{ticked}").check()
    next(b for b in at.button if b.label == "Save and next").click().run()
    assert not at.exception
    assert f"Saved {len(mine)} judgment" in texts(at) and "1 relevant" in texts(at)
    judged = load_judgments(store, ds_id)[qid]
    assert judged[ticked]["relevant"] is True and found_by_name(run_id, mine[0].found_by[0]) in judged[ticked]["found_by"]
    assert all(judged[f.passage_id]["relevant"] is False for f in mine[1:])
    _, ds_ev = store.load_dataset(ds_id)
    assert ticked in ds_ev.relevant_docs[qid]
    label = f"Judge the new finds ({n_finds - len(mine):,} passages unjudged in the pipelines' top 10)"
    assert label in [e.label for e in at.expander]
    assert not [c for c in at.checkbox if c.key and c.key.startswith(f"etl_judge_{qid}_")]  # the next question

    at.button(key="etl_judge_rescore").click().run()
    assert not at.exception
    after = load_results(store.run_dir(run_id))
    assert after.judging["rescored"] in texts(at)
    table = next(df.value for df in at.dataframe if "nDCG@10 before" in df.value.columns)
    base = after.systems["base"].name
    assert table.loc[base, "nDCG@10 before"] == pytest.approx(before.systems["base"].metrics["nDCG@10"])
    assert table.loc[base, "nDCG@10 after"] == pytest.approx(after.systems["base"].metrics["nDCG@10"])
    metrics = at.dataframe[0].value  # the page's metrics table shows the re-scored numbers
    assert metrics.loc[base, "nDCG@10"] == f"{after.systems['base'].metrics['nDCG@10']:.3f}"
