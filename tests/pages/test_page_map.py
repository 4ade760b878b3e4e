"""Embedding map page: a finished run drawn before/after, a highlighted question, alignment figures."""

from __future__ import annotations

import json

import pytest

from tests.pages.conftest import open_app, save_cheap_projection, texts
from ui import resources as res
from ui import state


def test_empty_state_without_a_finished_run(workspace):
    at = open_app("4_Embedding_map.py")
    assert not at.exception
    assert "No finished run yet" in texts(at)


def test_two_maps_highlight_and_alignment(finished_run):
    store, run_id = finished_run
    save_cheap_projection(store, run_id)  # the default-settings map, without UMAP's JIT warm-up
    at = open_app()
    at.session_state[state.RUN_KEY] = run_id
    at.switch_page("pages/4_Embedding_map.py").run()
    assert not at.exception
    charts = at.get("plotly_chart")
    assert len(charts) == 2
    assert "Before: base model" in charts[0].proto.spec and "After: tuned (adapter)" in charts[1].proto.spec
    labels = [m.label for m in at.metric]
    assert labels == ["Nearest passage is the answer", "Median rank of the answer", "Answer vs best wrong passage"]
    view = res.get_run_view(run_id)
    base = view.alignment("base")
    assert at.metric[0].value == f"{view.alignment('tuned')['answer_first']:.0%}"
    assert f"margin {base['margin']:+.3f}" in texts(at)
    spec = json.loads(charts[0].proto.spec)
    questions = next(t for t in spec["data"] if t.get("meta") == "queries")
    assert sorted(questions["customdata"]) == sorted(view.query_ids)  # every evaluation question is on the map
    assert f"All {len(view.query_ids)} evaluation questions are on both maps" in texts(at)
    at.session_state["etl_map_questions"] = 3  # "Questions on the map" (Map settings): a stated sample
    at.run()
    assert not at.exception
    spec = json.loads(at.get("plotly_chart")[1].proto.spec)
    drawn = next(t for t in spec["data"] if t.get("meta") == "queries")["customdata"]
    assert len(drawn) == 3 and set(drawn) < set(view.query_ids)
    passages = {d for t in spec["data"] if t.get("meta") == "passages" for d in t["customdata"]}
    assert {d for q in drawn for d in view.eval.relevant_docs[q]} <= passages  # their answers are drawn
    assert f"3 of the {len(view.query_ids)} evaluation questions (a fixed random sample" in texts(at)
    at.session_state["etl_map_questions"] = 0  # all again
    at.selectbox(key="etl_map_query").set_value(view.query_ids[0]).run()
    at.slider(key="etl_map_k").set_value(5).run()
    assert not at.exception
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert any(t.get("name") == "selected question" for t in spec["data"])
    rings = next(t for t in spec["data"] if t.get("meta") == "highlight-passages")
    assert rings["text"] == ["1", "2", "3", "4", "5"]  # k rings, not 1 or 2
    assert "Answer passage rank:" in texts(at)
    at.radio(key="etl_map_color").set_value("file").run()
    assert not at.exception


@pytest.mark.slow
def test_new_settings_fit_umap_and_save_with_the_run(finished_run):
    store, run_id = finished_run
    at = open_app()
    at.session_state[state.RUN_KEY] = run_id
    at.switch_page("pages/4_Embedding_map.py").run()
    assert "Neighbours" not in [s.label for s in at.slider]  # "Map settings" is closed: its form is not drawn
    at.session_state["etl_map_settings_open"] = True
    at.run()
    at.slider[0].set_value(5)  # neighbours
    at.number_input[0].set_value(300)  # points on the map
    at.button[0].click().run(timeout=300)  # "Redraw maps": UMAP fits (tens of seconds on 2 cores)
    assert not at.exception
    assert (store.run_dir(run_id) / "projection-n5-d0.1-s300-r42.npz").exists()
    assert len(at.get("plotly_chart")) == 2
