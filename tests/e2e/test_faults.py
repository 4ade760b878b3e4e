"""Faults and concurrency in real Chromium: two sessions and one training job, then kill -9 of
the app mid-training and a restart. Screenshots go to test-artifacts/."""

from __future__ import annotations

import re
import signal

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import start_app, stop_app
from tests.e2e.test_e2e import SLOW, TRAIN_TIMEOUT, go, idle, set_number, shot

pytestmark = pytest.mark.e2e


def open_page(browser: Browser, url: str) -> Page:
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.set_default_timeout(SLOW)
    page.goto(url)
    expect(page.get_by_role("heading", name="Data", exact=True).first).to_be_visible(timeout=SLOW)
    idle(page)
    return page


def test_two_sessions_then_kill_9_mid_training(browser: Browser, tmp_path, artifacts):
    ws = tmp_path / "ws"
    ws.mkdir()
    url, proc = start_app(ws)
    try:
        a = open_page(browser, url)
        # An earlier finished run (smoke size) that must survive the crash.
        go(a, "Train")
        set_number(a, "Batch size", "8")
        a.get_by_text("Advanced settings").click()
        set_number(a, "Max steps", "2")
        a.get_by_role("button", name="Launch training").click()
        expect(a.get_by_role("heading", name=re.compile(r"· done$"))).to_be_visible(timeout=TRAIN_TIMEOUT)
        idle(a)

        # A long run (every epoch) from session A ...
        set_number(a, "Max steps", "-1")
        a.get_by_label("Run name").fill("long run to be killed")
        a.get_by_label("Run name").press("Enter")
        idle(a)
        a.get_by_role("button", name="Launch training").click()
        expect(a.get_by_text(re.compile(r"^Training · \d+/\d+")).first).to_be_visible(timeout=TRAIN_TIMEOUT)

        # ... and session B, in its own browser context, sees it and cannot start a second one.
        b = open_page(browser, url)
        go(b, "Train")
        expect(b.get_by_text(re.compile("is training now. Wait for it or cancel it"))).to_be_visible()
        expect(b.get_by_role("button", name="Launch training")).to_be_disabled()
        expect(b.get_by_role("heading", name=re.compile(r"long run to be killed · running$"))).to_be_visible()
        b.get_by_role("heading", name=re.compile(r"long run to be killed · running$")).scroll_into_view_if_needed()
        shot(b, artifacts, "6_second_session_sees_running_job")

        # The app dies mid-training (kill -9 of the whole server), then starts again.
        stop_app(proc, signal.SIGKILL)
        url, proc = start_app(ws)
        a.goto(url)
        idle(a)
        go(a, "Train")
        expect(a.get_by_role("heading", name=re.compile(r"long run to be killed · interrupted$"))).to_be_visible()
        expect(a.get_by_text("stopped while it was active").first).to_be_visible()
        expect(a.get_by_role("button", name="Launch training")).to_be_enabled()
        a.get_by_role("heading", name=re.compile(r"· interrupted$")).scroll_into_view_if_needed()
        shot(a, artifacts, "7_after_kill_9_interrupted")

        # Everything saved before the crash is intact and readable.
        sidebar_dataset = a.get_by_test_id("stSidebar").get_by_role("combobox", name="Dataset")
        expect(sidebar_dataset).to_have_value("Hydraulics maintenance (sample)")
        go(a, "Compare")  # the finished smoke run is the one to explore
        expect(a.get_by_test_id("stDataFrame").first).to_be_visible()
        expect(a.get_by_text("BM25").first).to_be_visible()
        go(a, "Runs")
        expect(a.get_by_role("button", name=re.compile("Download model"))).to_be_visible()
    finally:
        stop_app(proc)
