"""What a session's first page starts for the others: the browser's chart and table code (an off-screen
chart and table, first page only) and the server's prefetch of the selected dataset and run with the
default map's figures, so the first Train / Map / Compare page does not wait for them."""

from __future__ import annotations

import threading
import time

from tests.pages.conftest import open_app, save_cheap_projection
from ui import resources as res
from ui import state, widgets


def _wait_for_prefetch(timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while any(t.name == "prefetch" for t in threading.enumerate()):
        assert time.monotonic() < end, "the prefetch thread did not finish"
        time.sleep(0.05)


def test_the_first_page_preloads_chart_and_table_code_once(workspace):
    at = open_app()
    assert not at.exception
    assert len(at.sidebar.get("plotly_chart")) == 1 and len(at.sidebar.dataframe) == 1  # off-screen, in the sidebar
    assert at.session_state[widgets.PRELOADED_KEY]
    at.run()  # any later run of the session: nothing extra drawn
    assert not at.sidebar.get("plotly_chart") and not at.sidebar.dataframe


def test_the_selected_run_and_its_default_map_are_ready_before_the_map_page_opens(finished_run, monkeypatch):
    import core.insight.explore as explore
    import core.insight.map_figure as map_figure

    store, run_id = finished_run
    save_cheap_projection(store, run_id)
    for cached in (res._run_view, res._figure, res._map_points):
        cached.clear()
    res._PREFETCHED.clear()
    calls = {"open_run": 0, "clouds_map": 0}

    def counting(name, fn):
        def wrapper(*a, **k):
            calls[name] += 1
            return fn(*a, **k)
        return wrapper

    monkeypatch.setattr(explore, "open_run", counting("open_run", explore.open_run))
    monkeypatch.setattr(map_figure, "clouds_map", counting("clouds_map", map_figure.clouds_map))
    from streamlit.testing.v1 import AppTest

    from tests.pages.conftest import APP

    at = AppTest.from_file(APP, default_timeout=90)
    at.session_state[state.RUN_KEY] = run_id
    at.run()  # the Data page; the prefetch starts in the background
    assert not at.exception
    _wait_for_prefetch()
    assert calls == {"open_run": 1, "clouds_map": 2}  # the run opened and both default pictures built, once
    at.switch_page("pages/4_Embedding_map.py").run()
    assert not at.exception
    assert len(at.get("plotly_chart")) == 2
    assert calls == {"open_run": 1, "clouds_map": 2}  # the page drew what the prefetch built
    res.prefetch(None, run_id)  # once per run and process
    assert not any(t.name == "prefetch" for t in threading.enumerate())
