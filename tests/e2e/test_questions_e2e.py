"""Only passages, no questions, in real Chromium: generate questions offline on the Questions page, review
them, label 3 evaluation questions, train (smoke), and see Compare score base / tuned / BM25 / hybrid on
the labelled questions with the "human-labelled" note. Screenshots go to test-artifacts/.

The collection starts as documents uploaded on the Data page (14 of the bundled sample's manuals) and
saved there as a collection: passages, no questions."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from core.dataset import question_origin
from core.workspace.store import Store
from tests.e2e.conftest import ROOT, start_app, stop_app
from tests.e2e.test_e2e import SLOW, TRAIN_TIMEOUT, go, idle, open_front_page, set_number, shot, upload

pytestmark = pytest.mark.e2e

NAME = "Hydraulics manuals"
LABELS = (
    "why does the pump scream for the first few minutes on frosty mornings",
    "how often should the return filter element be changed",
    "what causes the cylinder to creep down under load",
)


DOCUMENTS = sorted((ROOT / "sample_data" / "documents").glob("*"))[:14]


@pytest.fixture
def app_with_collection(tmp_path):
    """The app on a workspace of its own (no dataset but the sample)."""
    ws = tmp_path / "ws"
    store = Store(ws)
    url, proc = start_app(ws)
    try:
        yield url, store
    finally:
        stop_app(proc)


def test_from_passages_to_a_model_scored_on_labelled_questions(page: Page, app_with_collection, artifacts):
    url, store = app_with_collection
    open_front_page(page, url)

    # 0. Documents only: upload them on the Data page and save them as a collection.
    upload(page, "Documents or passages", [str(p) for p in DOCUMENTS], timeout=TRAIN_TIMEOUT)
    expect(page.get_by_text(re.compile(r"[\d,]+ passages from 14 file\(s\), no questions yet")).first).to_be_visible()
    page.get_by_label("Collection name").fill(NAME)
    page.get_by_role("button", name="Save collection").click()
    idle(page)
    expect(page.get_by_text(re.compile(f"Saved collection .{NAME}.")).first).to_be_visible()
    shot(page, artifacts, "q0_collection_saved")
    passages = store.get_dataset(store.find_dataset(NAME)["id"])["n_passages"]
    go(page, "Questions")
    expect(page.get_by_test_id("stSidebar").get_by_role("combobox", name="Dataset")).to_have_value(NAME)
    expect(page.get_by_text(f"{passages} passages · 0 training questions").first).to_be_visible()

    # 1. Generate (offline is the default): live progress, then the funnel with its counts.
    page.get_by_role("button", name="Generate questions").click()
    funnel = page.get_by_text(re.compile(r"^\d+ generated, .*\d+ kept$"))
    expect(funnel).to_be_visible(timeout=TRAIN_TIMEOUT)
    idle(page)
    ready = page.get_by_text(re.compile(r"questions are ready: review them")).first
    expect(ready).to_be_visible()
    ready.scroll_into_view_if_needed()
    shot(page, artifacts, "q1_generate")

    # 2. Review: bulk choice, then the kept questions become the training split.
    page.get_by_role("tab", name="2 · Review").click()
    idle(page)
    page.get_by_role("button", name="Keep those that passed the filters").click()
    idle(page)
    expect(page.get_by_test_id("stDataFrame").first).to_be_visible()
    use = page.get_by_role("button", name=re.compile(r"^Use the \d+ kept questions as the training split$"))
    n = int(re.search(r"\d+", use.inner_text()).group())
    assert n > 0
    shot(page, artifacts, "q2_review")
    use.click()
    idle(page)
    expect(page.get_by_text(f"The training split now holds {n} generated questions").first).to_be_visible()
    expect(page.get_by_text(f"{passages} passages · {n} training questions").first).to_be_visible()

    # 3. Label three evaluation questions: type, tick the first candidate, save (the rest shown: not relevant).
    page.get_by_role("tab", name="3 · Label").click()
    idle(page)
    for i, question in enumerate(LABELS, start=1):
        box = page.get_by_label("Question", exact=True)
        box.fill(question)
        box.press("Enter")
        idle(page)
        relevant = page.get_by_test_id("stCheckbox").filter(has_text="Relevant")
        # the top 20 of the base model and of BM25, pooled blind: 20 to 40 passages, each once
        expect(relevant.nth(min(20, passages) - 1)).to_be_visible(timeout=SLOW)
        assert relevant.count() <= 40
        expect(page.get_by_text("Passages shown and not ticked are recorded as not relevant").first).to_be_visible()
        if i == 1:
            page.get_by_text("Read in full").first.click()  # any passage can be read whole
            idle(page)
            shot(page, artifacts, "q3_label_candidates")
        relevant.first.click()
        idle(page)
        page.get_by_role("button", name="Save label (1 passage)").click()
        idle(page)
        expect(page.get_by_text(f"Saved question label-{i:05d} with 1 relevant passage").first).to_be_visible()
        expect(box).to_have_value("")
    expect(page.get_by_text("With 3 labelled questions, a difference smaller than ~0.24").first).to_be_visible()
    shot(page, artifacts, "q3_label_done")
    ds_id = store.find_dataset(NAME)["id"]
    train, ev = store.load_dataset(ds_id)
    assert len(train) == n and question_origin(train) == "generated"
    assert len(ev) == 3 and question_origin(ev) == "human-labelled" and set(ev.queries.values()) == set(LABELS)

    # 4. Train (smoke: batch 8, 2 steps) on the generated questions, scored on the labelled ones.
    go(page, "Train")
    expect(page.get_by_text(f"{n:,} training questions, 3 evaluation questions").first).to_be_visible()
    set_number(page, "Batch size", "8")
    page.get_by_text("Advanced settings").click()
    set_number(page, "Max steps", "2")
    page.get_by_role("button", name="Launch training").click()
    done = page.get_by_role("heading", name=re.compile(r"· done$"))
    expect(done).to_be_visible(timeout=TRAIN_TIMEOUT)
    idle(page)
    done.scroll_into_view_if_needed()
    shot(page, artifacts, "q4_train_done")

    # 5. Compare: base / tuned / BM25 / hybrid on the 3 labelled questions, said to be human-labelled.
    go(page, "Compare")
    expect(page.get_by_text(re.compile(r"for the same 3 evaluation questions \(human-labelled\)")).first).to_be_visible()
    page.get_by_text("Chart of these scores").click()  # drawn only when opened
    idle(page)
    legend = page.get_by_test_id("stPlotlyChart").first.locator(".legendtext")
    expect(legend.first).to_be_attached(timeout=SLOW)
    assert legend.all_text_contents() == ["base", "tuned (full)", "BM25", "hybrid (base + BM25)", "hybrid (tuned + BM25)"]
    expect(page.get_by_text("evaluation questions are generated")).to_have_count(0)  # no optimism warning
    shot(page, artifacts, "q5_compare")
