"""The documents-only journey in real Chromium (issue 27, "done when"): six small documents of our own
(two of them the same safety notice, one reflowed) are uploaded on Data and saved as a collection, training questions
are generated offline on Questions, three evaluation questions are labelled on the bench, two query adapters
are trained (the second one so gently that it keeps the identity), then the Embedding map, Compare and Runs
are opened.

Two checks run across the pages, reading what the page says:
* the collection has ONE passage count: Data (after the repeat is kept once), Questions, Train (dataset line,
  estimate, scores), Embedding map, Compare and Runs all say the same number;
* a run that kept the base model says so on Train (beside its curve), on Compare (beside its scores), on the
  Embedding map and on Runs.
Screenshots go to test-artifacts/j*.png."""

from __future__ import annotations

import re
import textwrap

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import start_app, stop_app
from tests.e2e.test_e2e import SLOW, TRAIN_TIMEOUT, go, idle, open_front_page, set_number, shot, upload

pytestmark = pytest.mark.e2e

NAME = "Apiary notes"
SAFETY = (
    "Before opening any colony, light the smoker with dry pine needles or burlap and let it burn until it gives a "
    "cool white smoke rather than flames. Wear a veil at every visit, even with calm bees, and keep the hive tool "
    "in a pocket rather than on the ground where it can be lost in the grass. Work from the side or the back of "
    "the hive, never across the entrance, so the foragers can still come and go. If more than a few bees start "
    "to sting, close the hive calmly, walk away for ten minutes and try again later in the day."
)
DOCUMENTS = {
    "hive-inspection.txt": [
        "A full inspection every seven to ten days in spring tells the keeper whether the queen is laying. Look "
        "for eggs standing upright at the bottom of the cells: they are less than three days old, so a queen was "
        "present very recently. A good brood frame shows a compact oval of capped worker cells with few empty "
        "gaps. Scattered, sunken or perforated cappings are a warning sign of disease and should be photographed "
        "and shown to the regional bee inspector before the frame is moved to another hive.",
        "Record what you see on a card kept under the roof: the number of frames covered by bees, frames of brood, "
        "stores, temperament and any queen cells. Over a season these cards show whether a colony is building up "
        "or dwindling far better than memory does, and they make the decision to unite two weak colonies in late "
        "summer an easy one.",
    ],
    "swarm-control.txt": [
        "Colonies prepare to swarm when the brood nest becomes crowded, usually from late April to early July. "
        "The first sign is a row of queen cups along the bottom bars that suddenly contain eggs and royal jelly. "
        "Once the cells are sealed, the old queen will leave with half the workers on the first fine day, and "
        "the honey crop of that hive is mostly lost for the season.",
        "The artificial swarm is the classic answer: move the old hive a metre aside, put a new box with one "
        "frame of eggs and the old queen on the original stand, and let the flying bees return to it. The old box "
        "keeps the brood and the queen cells and raises a new queen, while the foragers in the new box believe "
        "they have already swarmed and settle down to draw comb.",
    ],
    "varroa-treatment.txt": [
        "The varroa mite feeds on developing bees and spreads deformed wing virus, and an untreated colony "
        "usually collapses within two or three years. Count the natural mite drop on a sticky board under an "
        "open mesh floor for one week in early August: more than ten mites a day means the colony needs treating "
        "straight after the honey has been taken off.",
        "Oxalic acid trickled between the frames in midwinter works best when the colony has no sealed brood, "
        "because the mites then ride on adult bees and cannot hide under cappings. Use a syringe and give five "
        "millilitres per seam of bees, warmed to hive temperature, and never treat the same colony twice in one "
        "winter because the acid harms the young bees as well as the mites.",
    ],
    "honey-and-winter.txt": [
        "Take honey off only when at least three quarters of the cells on a frame are capped with wax; uncapped "
        "nectar holds too much water and will ferment in the jar. A refractometer settles any doubt: honey is "
        "ready below eighteen per cent water. Clear the supers with a porter escape board placed under them the "
        "evening before, and carry them away before robbing wasps notice the open boxes.",
        "Extract in a warm kitchen with the windows shut. Slice the cappings with a hot knife, spin the frames in "
        "a tangential extractor first at low speed and then faster, and run the honey through a double sieve "
        "into a settling tank. After two days the air bubbles rise to the top and can be skimmed before bottling "
        "into clean, dry jars with tamper-proof lids.",
        "A colony needs about twenty kilograms of stores to survive a northern winter. Heft the hive from the "
        "back in October: if it lifts easily, feed thick sugar syrup of two kilograms of sugar per litre of water "
        "while the weather is still warm enough for the bees to take it down and cap it.",
        "Fit a mouse guard across the entrance before the first frosts, strap the hive down against storms, and "
        "put a sheet of insulation above the crown board. Leave the open mesh floor in place: bees cope well with "
        "cold but not with damp, and condensation dripping onto the cluster kills more colonies than low "
        "temperatures ever do.",
    ],
    "smoker-and-veil.txt": [SAFETY],
    "visitor-safety-sheet.txt": [textwrap.fill(SAFETY, 72)],  # the same notice, reflowed: one passage, kept once
}
LABELS = (
    "how can I tell whether the queen is still laying",
    "what should I do when I see sealed queen cells",
    "when is honey dry enough to extract",
)


def number(text: str) -> int:
    return int(text.replace(",", ""))


def count_in(page: Page, pattern: str) -> int:
    """The passage count the first visible text matching ``pattern`` (one group: the number) says."""
    node = page.get_by_text(re.compile(pattern)).first
    expect(node).to_be_visible(timeout=SLOW)
    return number(re.search(pattern, node.inner_text()).group(1))


def counts_in(page: Page, pattern: str) -> list[int]:
    """Every passage count the texts matching ``pattern`` say (at least one)."""
    nodes = page.get_by_text(re.compile(pattern))
    expect(nodes.first).to_be_visible(timeout=SLOW)
    return [number(re.search(pattern, t).group(1)) for t in nodes.all_inner_texts()]


@pytest.fixture
def app(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    url, proc = start_app(ws)
    try:
        yield url
    finally:
        stop_app(proc)


@pytest.fixture
def documents(tmp_path) -> list[str]:
    folder = tmp_path / "documents"
    folder.mkdir()
    for name, paragraphs in DOCUMENTS.items():
        (folder / name).write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")
    return [str(folder / name) for name in DOCUMENTS]


def train(page: Page, name: str, epochs: str | None = None, lr: str | None = None) -> None:
    """Launch a query adapter run named ``name`` from the Train page and wait until it is done."""
    page.get_by_text("Query adapter", exact=True).click()
    idle(page)
    if epochs:
        set_number(page, "Epochs", epochs)
    if lr:
        set_number(page, "Learning rate", lr)
    page.get_by_label("Run name").fill(name)
    page.get_by_role("button", name="Launch training").click()
    expect(page.get_by_role("heading", name=re.compile(rf"{name} · done$"))).to_be_visible(timeout=TRAIN_TIMEOUT)
    idle(page)


def test_documents_only_journey_one_passage_count_and_the_kept_model_said(page: Page, app, documents, artifacts):
    open_front_page(page, app)
    counts: dict[str, int] = {}

    # Data: the notice is cut twice and kept once; the collection's count is said when it is saved.
    upload(page, "Documents or passages", documents, timeout=TRAIN_TIMEOUT)
    cut = count_in(page, r"^6 document\(s\) read, cut into ([\d,]+) passages\.$")
    n = count_in(page, r"^1 passage with the same text as another .*kept once: ([\d,]+) passages in the collection")
    assert n == cut - 1 > 4
    counts["Data (upload)"] = count_in(page, r"^([\d,]+) passages from 6 file\(s\), no questions yet")
    page.get_by_label("Collection name").fill(NAME)
    page.get_by_role("button", name="Save collection").click()
    idle(page)
    counts["Data (saved)"] = count_in(page, rf"^Saved collection .{NAME}.: ([\d,]+) passages\.")
    shot(page, artifacts, "j0_data_collection_saved")

    # Questions: generate offline, keep those that passed the filters, use them as the training split.
    go(page, "Questions")
    counts["Questions"] = count_in(page, rf"^{NAME}: ([\d,]+) passages · 0 training questions")
    page.get_by_role("button", name="Generate questions").click()
    expect(page.get_by_text(re.compile(r"^\d+ generated, .*\d+ kept$"))).to_be_visible(timeout=TRAIN_TIMEOUT)
    idle(page)
    page.get_by_role("tab", name="2 · Review").click()
    idle(page)
    page.get_by_role("button", name="Keep those that passed the filters").click()
    idle(page)
    use = page.get_by_role("button", name=re.compile(r"^Use the \d+ kept questions as the training split$"))
    n_train = int(re.search(r"\d+", use.inner_text()).group())
    use.click()
    idle(page)
    counts["Questions (training split)"] = count_in(page, rf"^{NAME}: ([\d,]+) passages · {n_train} training questions")

    # Label: type a question, tick the first candidate, save; three times.
    page.get_by_role("tab", name="3 · Label").click()
    idle(page)
    for i, question in enumerate(LABELS, start=1):
        box = page.get_by_label("Question", exact=True)
        box.fill(question)
        box.press("Enter")
        idle(page)
        relevant = page.get_by_test_id("stCheckbox").filter(has_text="Relevant")
        expect(relevant.nth(n - 1)).to_be_visible(timeout=SLOW)  # a small collection: every passage is a candidate
        relevant.first.click()
        idle(page)
        page.get_by_role("button", name="Save label (1 passage)").click()
        idle(page)
        expect(page.get_by_text(f"Saved question label-{i:05d} with 1 relevant passage").first).to_be_visible()
    counts["Questions (labelled)"] = count_in(page, rf"^{NAME}: ([\d,]+) passages · {n_train} training questions · "
                                                    r"3 evaluation questions")
    shot(page, artifacts, "j1_questions_labelled")

    # Train: a query adapter with its defaults, then one that cannot move (1 epoch at the smallest rate): it
    # keeps the identity, and says so beside its curve.
    go(page, "Train")
    counts["Train (dataset)"] = count_in(page, r"^Dataset .*, 3 evaluation questions, ([\d,]+) passages\.")
    train(page, "adapter")
    train(page, "kept base", epochs="1", lr="0.000001")
    counts["Train (estimate)"] = count_in(page, r"training pairs, ([\d,]+) passages to search\)")
    counts["Train (scores)"] = count_in(page, r"^Every system searched the same ([\d,]+) passages")
    note = page.get_by_text(re.compile("^Training ran \\(the curve above\\), but it changed nothing: .*the tuned "
                                       "model is the base model unchanged"))
    expect(note).to_be_visible()
    note.scroll_into_view_if_needed()
    shot(page, artifacts, "j2_train_kept_base")

    # Embedding map (the kept run is the newest, so the one shown): one map drawn twice, said so.
    go(page, "Embedding map")
    expect(page.get_by_text(re.compile("the tuned model is the base model unchanged.*The two pictures below are one "
                                       "map drawn twice, not a change"))).to_be_visible(timeout=TRAIN_TIMEOUT)
    counts["Embedding map (pictures)"] = count_in(page, r"blue: all ([\d,]+) passages\.")
    page.get_by_text("More measures: nearest passage, median rank, margin").click()
    idle(page)
    counts["Embedding map (measures)"] = count_in(page, r"Measured over all ([\d,]+) passages, not the map\.")
    shot(page, artifacts, "j3_map_kept_base")

    # Compare: the scores of the kept run say so.
    go(page, "Compare")
    expect(page.get_by_text(re.compile("^These scores: .*the tuned model is the base model unchanged"))).to_be_visible()
    counts["Compare"] = count_in(page, r"^Every system searched the same ([\d,]+) passages")
    shot(page, artifacts, "j4_compare_kept_base")

    # Runs: the two runs side by side (same questions, same passages), and the kept one's bundle said unchanged.
    go(page, "Runs")
    expect(page.get_by_text("These two runs are not comparable")).to_have_count(0)
    both = counts_in(page, r"^Every system searched the same ([\d,]+) passages")
    assert len(both) == 2
    counts["Runs (run A)"], counts["Runs (run B)"] = both
    # Run A is the newest (the kept one); the adapter with its defaults may keep the identity on so few questions too
    expect(page.get_by_text(re.compile("^Run A: .*the tuned model is the base model unchanged"))).to_be_visible()
    expect(page.get_by_text(re.compile("You can still download it, but this bundle is the base model unchanged"))
           ).to_be_visible()
    shot(page, artifacts, "j5_runs")

    assert counts == dict.fromkeys(counts, n), counts
