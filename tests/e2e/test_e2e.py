"""What a user does, in real Chromium: upload pairs, train (smoke size), watch it finish,
open the embedding maps and the comparison, type a question. Screenshots of each page
go to test-artifacts/."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e

SLOW = 60_000  # ms: model loading and encoding on 2 CPU cores
TRAIN_TIMEOUT = 420_000  # ms: smoke training plus base/tuned scoring of the uploaded passages

# Every assertion waits as long as an action may: while a run trains both cores are busy, and a
# page rerun in another session took 4-10 s here (15-40 s before runner.postScriptGC was turned
# off); the default 5 s is too short on a loaded CI machine.
expect.set_options(timeout=SLOW)


def idle(page: Page, timeout: int = SLOW) -> None:
    """Wait for the script run that follows the last interaction to end."""
    page.wait_for_timeout(300)
    expect(page.locator('[data-test-script-state="running"]')).to_have_count(0, timeout=timeout)


def open_front_page(page: Page, url: str) -> None:
    """The app's first page (Data) at the tests' window size and timeout, drawn and idle."""
    page.set_default_timeout(SLOW)
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(url)
    expect(page.get_by_role("heading", name="Data", exact=True).first).to_be_visible(timeout=SLOW)
    idle(page)


def go(page: Page, title: str) -> None:
    page.get_by_test_id("stSidebarNavLink").filter(has_text=title).click()
    expect(page.get_by_role("heading", name=title, exact=True).first).to_be_visible(timeout=SLOW)
    idle(page)


def shot(page: Page, artifacts, name: str) -> None:
    page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True, animations="disabled")


def upload(page: Page, label: str, files, timeout: int = SLOW) -> None:
    """Put ``files`` into the file uploader labelled ``label`` (found by its label, never by position: in a CI run
    the first dropzone on the page was once the right-hand one, and the pair file landed among the documents)."""
    uploader = page.get_by_test_id("stFileUploader").filter(
        has=page.get_by_test_id("stWidgetLabel").get_by_text(label, exact=True))
    expect(uploader).to_have_count(1)
    uploader.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(files)
    idle(page, timeout=timeout)


def set_number(page: Page, label: str, value: str) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(value)
    box.press("Enter")
    idle(page)


@pytest.fixture
def pair_file(tmp_path):
    """40 pairs of the sample's training file, saved as a user's own export would be."""
    rows = list(csv.DictReader((ROOT / "sample_data" / "qa_train.csv").open(encoding="utf-8")))[:40]
    path = tmp_path / "my_pairs.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["question", "passage"])
        for r in rows:
            w.writerow([r["question"], r["passage"]])
    return path


def test_user_journey(page: Page, app_url, artifacts, pair_file):
    open_front_page(page, app_url)
    # The sample dataset is there from the first start.
    sidebar_dataset = page.get_by_test_id("stSidebar").get_by_role("combobox", name="Dataset")
    expect(sidebar_dataset).to_have_value("Hydraulics maintenance (sample)")

    # 1. Upload a pair file, see the report, save it as a dataset.
    upload(page, "Question files", str(pair_file))
    expect(page.get_by_text("my_pairs.csv").first).to_be_visible()
    expect(page.get_by_text(re.compile(r"40 (questions|pairs)")).first).to_be_visible()
    expect(page.get_by_text("Split into training and evaluation")).to_be_visible()
    page.get_by_label("Dataset name").fill("E2E pairs")
    page.get_by_role("button", name="Save dataset").click()
    idle(page)
    expect(page.get_by_text(re.compile("Saved dataset .E2E pairs.")).first).to_be_visible()
    shot(page, artifacts, "1_data")

    # 2. Train: smoke-size settings, launch, watch the live panel reach done.
    go(page, "Train")
    expect(sidebar_dataset).to_have_value("E2E pairs")
    set_number(page, "Batch size", "8")
    page.get_by_text("Advanced settings").click()
    set_number(page, "Max steps", "2")
    expect(page.get_by_text("Estimated duration")).to_be_visible()
    page.get_by_role("button", name="Launch training").click()
    # the live panel: a phase and a progress bar while it runs
    expect(page.get_by_test_id("stProgress").first).to_be_visible(timeout=SLOW)
    shot(page, artifacts, "2_train_running")
    expect(page.get_by_role("heading", name=re.compile(r"· done$"))).to_be_visible(timeout=TRAIN_TIMEOUT)
    idle(page)
    expect(page.get_by_text("MRR@10").first).to_be_visible()
    page.get_by_role("heading", name=re.compile(r"· done$")).scroll_into_view_if_needed()
    shot(page, artifacts, "2_train_done")

    # 3. Embedding map: both plots drawn (base and tuned).
    go(page, "Embedding map")
    charts = page.get_by_test_id("stPlotlyChart")
    expect(charts.nth(1)).to_be_visible(timeout=SLOW)
    for i in range(2):
        expect(charts.nth(i).locator(".scatterlayer .point").first).to_be_attached(timeout=SLOW)
        assert charts.nth(i).locator(".scatterlayer .point").count() > 20
    expect(page.get_by_text("Answer in the top 10").first).to_be_visible()  # the default view's one number
    page.get_by_text("More measures: nearest passage, median rank, margin").click()
    expect(page.get_by_text("Nearest passage is the answer").first).to_be_visible()
    shot(page, artifacts, "3_embedding_map")

    # 4. Compare: the metrics table, then a typed question answered by both models side by side.
    go(page, "Compare")
    expect(page.get_by_test_id("stDataFrame").first).to_be_visible()
    expect(page.get_by_text("BM25").first).to_be_visible()
    tables = page.get_by_test_id("stDataFrame")
    before = tables.count()  # metrics, winners/losers
    box = page.get_by_label("Your question")
    box.fill("pump sounds like gravel, air or vapour?")
    box.press("Enter")
    idle(page)
    expect(page.get_by_text("Base model", exact=True)).to_be_visible(timeout=SLOW)
    expect(page.get_by_text(re.compile("^After tuning"))).to_be_visible()
    expect(tables).to_have_count(before + 2, timeout=SLOW)  # + base hits, tuned hits
    tables.last.scroll_into_view_if_needed()
    shot(page, artifacts, "4_compare")

    # 5. Runs: the finished run is listed with its download.
    go(page, "Runs")
    expect(page.get_by_role("button", name=re.compile("Download model"))).to_be_visible()
    shot(page, artifacts, "5_runs")

    # 6. The stakeholder report: built on the Runs page, downloaded, opened offline in Chromium.
    page.get_by_role("button", name="Build report").click()
    expect(page.get_by_text("Report ready")).to_be_visible(timeout=TRAIN_TIMEOUT)
    idle(page)
    with page.expect_download() as dl:
        page.get_by_role("button", name=re.compile("Download report")).click()
    report = artifacts / "report.html"
    dl.value.save_as(report)
    doc = page.context.new_page()
    doc.route(re.compile(r"^https?://"), lambda route: route.abort())  # offline: any network fetch fails
    doc.goto(report.as_uri())
    expect(doc.get_by_role("heading", name=re.compile("^Retrieval tuning report"))).to_be_visible()
    expect(doc.locator(".verdict")).to_contain_text("base model")
    expect(doc.locator(".plotly-graph-div")).to_have_count(3)
    expect(doc.locator(".plotly-graph-div").nth(1).locator(".scatterlayer .point").first).to_be_attached()
    doc.set_viewport_size({"width": 1400, "height": 1800})
    doc.screenshot(path=str(artifacts / "8_report.png"), animations="disabled")
