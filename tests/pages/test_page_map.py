"""Embedding map page: a finished run drawn before/after, a highlighted question, alignment figures."""

from __future__ import annotations

import pytest

from tests.pages.conftest import open_app, save_cheap_projection, texts
from ui import resources as res
from ui import state


def test_empty_state_without_a_finished_run(workspace):
    at = open_app("3_Embedding_map.py")
    assert not at.exception
    assert "No finished run yet" in texts(at)


def test_two_maps_highlight_and_alignment(finished_run):
    store, run_id = finished_run
    save_cheap_projection(store, run_id)  # the default-settings map, without UMAP's JIT warm-up
    at = open_app()
    at.session_state[state.RUN_KEY] = run_id
    at.switch_page("pages/3_Embedding_map.py").run()
    assert not at.exception
    charts = at.get("plotly_chart")
    assert len(charts) == 2
    assert "Before: base model" in charts[0].proto.spec and "After: tuned (adapter)" in charts[1].proto.spec
    labels = [m.label for m in at.metric]
    assert "Question ↔ answer similarity" in labels
    view = res.get_run_view(run_id)
    at.selectbox(key="etl_map_query").set_value(view.query_ids[0]).run()
    assert not at.exception
    assert '"selected question"' in at.get("plotly_chart")[0].proto.spec
    assert "Answer passage rank:" in texts(at)


@pytest.mark.slow
def test_new_settings_fit_umap_and_save_with_the_run(finished_run):
    store, run_id = finished_run
    at = open_app()
    at.session_state[state.RUN_KEY] = run_id
    at.switch_page("pages/3_Embedding_map.py").run()
    at.slider[0].set_value(5)  # neighbours
    at.number_input[0].set_value(300)  # points on the map
    at.button[0].click().run(timeout=300)  # "Redraw maps": UMAP fits (tens of seconds on 2 cores)
    assert not at.exception
    assert (store.run_dir(run_id) / "projection-n5-d0.1-s300-r42.npz").exists()
    assert len(at.get("plotly_chart")) == 2
