"""A deep link on a fresh server, in real Chromium: ``/Train`` opened before anyone has loaded the app's
front page must still show the app (sidebar pickers, the sample dataset), not the bare page file.

Streamlit serves a file from ``pages/`` on its own until app.py has run once on the server; the pages
hand over to app.py (ui.state.through_app), which opens the page that was asked for."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import start_app, stop_app
from tests.e2e.test_e2e import SLOW, idle, shot

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("path,heading", [("Train", "Train"), ("Compare", "Compare"),
                                          ("Embedding_map", "Embedding map"), ("Runs", "Runs")])
def test_deep_link_on_a_fresh_server_opens_the_page_inside_the_app(page: Page, tmp_path, artifacts, path, heading):
    ws = tmp_path / "ws"
    ws.mkdir()
    url, proc = start_app(ws)  # a server of its own: nothing has run app.py yet
    try:
        page.set_default_timeout(SLOW)
        page.set_viewport_size({"width": 1400, "height": 1000})
        page.goto(f"{url}/{path}")
        expect(page.get_by_role("heading", name=heading, exact=True).first).to_be_visible(timeout=SLOW)
        idle(page)
        sidebar = page.get_by_test_id("stSidebar")
        expect(sidebar.get_by_role("combobox", name="Dataset")).to_have_value("Hydraulics maintenance (sample)")
        expect(sidebar.get_by_test_id("stSidebarNavLink").filter(has_text="Runs")).to_be_visible()
        expect(sidebar.get_by_test_id("stSidebarNavLink").filter(has_text="app")).to_have_count(0)
        assert page.url.rstrip("/").endswith(f"/{path}")
        shot(page, artifacts, f"deeplink_{path.lower()}")
    finally:
        stop_app(proc)
