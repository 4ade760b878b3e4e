"""The stakeholder report: self-contained HTML with the verdict, intervals, maps and cases."""

import json
import re

import pytest

from core.cli import main
from core.execute import execute
from core.insight.explore import open_run
from core.insight.map_figure import handful
from core.insight.report import build_report
from core.sample import ensure_sample
from core.tuning.runs import create_run
from core.tuning.spec import RunSpec
from core.workspace.jobs import Job
from core.workspace.store import Store
from tests.conftest import make_tiny_dataset
from tests.pages.conftest import save_cheap_projection


def test_report_is_self_contained_and_escaped(finished_run, tmp_path, capsys):
    store, run_id = finished_run
    save_cheap_projection(store, run_id)
    out = tmp_path / "r.html"
    assert main(["report", run_id, "--out", str(out), "--workspace", str(store.root)]) == 0
    html = out.read_text(encoding="utf-8")
    # offline: plotly inlined once, nothing fetched from the network
    assert "Plotly.newPlot" in html and len(html) > 1_000_000  # the plotly library is inside the file
    assert not re.search(r"<script[^>]+src=", html) and not re.search(r"<link[^>]+href=", html)
    for section in ("Scores", "Confidence intervals and significance", "Questions and passages: before and after",
                    "Links: the most improved and the most worsened questions", "Winners and losers",
                    "Data and leakage", "Settings", "Library versions"):
        assert f">{section}<" in html
    assert "tuned (adapter)" in html and "BM25" in html and "hybrid" in html
    # the tiny adapter kept the base model: said above the two pictures, and no links (no question moved)
    assert "<b>Unchanged:</b> No epoch of the query adapter beat the base model" in html
    assert "one map drawn twice, not a change" in html and "there are no links to show" in html
    assert "Answer in the top 10: 100% of the 6 questions, before and after" in html
    assert html.count('class="plotly-graph-div"') == 3  # bars + the two clouds
    assert html.count("plotly.js v") <= 2  # the library inlined once (its banner), not per figure
    assert "sentence-transformers" in html and "fingerprint" in html


def test_report_escapes_user_text(finished_run, tmp_path):
    from core.insight.report import build_report

    store, run_id = finished_run
    run = store.get_run(run_id)
    store.update_run(run_id, name="<script>alert(1)</script>")
    try:
        html = build_report(store, run_id, with_maps=False)
    finally:
        store.update_run(run_id, name=run["name"])
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_report_unknown_run(finished_run, capsys):
    store, _ = finished_run
    assert main(["report", "run-nope", "--workspace", str(store.root)]) == 2
    assert "no run" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("way", ["sample", "cli-train-eval", "cli-split", "app-split", "shootout-child"])
def test_every_finished_run_gets_its_report(way, tmp_path):
    """However a run's dataset and run were made, its report builds (the CLI's --train/--eval run crashed)."""
    from core.cli import _dataset_from_files
    from core.execute import execute
    from core.insight.report import build_report
    from core.sample import ensure_sample
    from core.tuning.runs import create_run
    from core.tuning.shootout import load_shootout
    from core.tuning.spec import RunSpec
    from core.workspace.jobs import Job
    from core.workspace.store import Store
    from tests.test_cli import _pairs_file

    store = Store(tmp_path / "ws")
    ds = make_tiny_dataset(40)
    if way == "sample":
        ds_id = ensure_sample(store)[0]
    elif way == "cli-train-eval":
        ds_id = _dataset_from_files(store, str(_pairs_file(tmp_path / "t.jsonl", ds.subset(ds.query_ids[:30]))),
                                    str(_pairs_file(tmp_path / "e.jsonl", ds.subset(ds.query_ids[30:]))), 42, "passage",
                                    "adapter")
    elif way == "cli-split":
        ds_id = _dataset_from_files(store, str(_pairs_file(tmp_path / "t.jsonl", ds)), None, 42, "query", "adapter")
    else:
        from core.ingest.splits import split_dataset

        train, ev, rep = split_dataset(ds, 0.25, 42, "passage")
        ds_id = store.save_dataset("app", train, ev, report={"split": rep.to_dict(), "by": "passage"},
                                   meta={"origin": "upload", "split_by": "passage"})
    if way == "shootout-child":
        spec = RunSpec.for_method("shootout", methods=["adapter"])
    else:
        spec = RunSpec.for_method("adapter", epochs=2)
    run_id = create_run(store, ds_id, spec)
    job = Job(store, run_id)
    job.run(lambda j: execute(store, run_id, j, device="cpu"))
    assert job.snapshot().status == "done", job.snapshot().error
    if way == "shootout-child":
        run_id = load_shootout(store.run_dir(run_id)).children["adapter"]
    html = build_report(store, run_id, with_maps=False)
    assert ">Settings<" in html and "base model" in html and "all-MiniLM-L6-v2 (bundled)" in html
    assert "None</td>" not in html and "{&#x27;" not in html  # no raw None or dict in the settings


def test_report_draws_the_two_clouds_with_the_number_and_the_handfuls_links(workspace, tmp_path):
    """A run whose adapter moved: the number beside the clouds is the run's Accuracy@10, and the link view shows
    the 5 most improved and 5 most worsened questions (not every question)."""
    store = Store(workspace)
    run_id = create_run(store, ensure_sample(store)[0], RunSpec.for_method("adapter", epochs=3, val_fraction=0.0))
    Job(store, run_id).run(lambda j: execute(store, run_id, j, device="cpu"))
    save_cheap_projection(store, run_id)
    html = build_report(store, run_id)
    view = open_run(store, run_id)
    base, tuned = (view.results.systems[r].metrics["Accuracy@10"] for r in ("base", "tuned"))
    points = round(tuned * 100) - round(base * 100)
    assert f"Answer in the top 10: {base:.0%} → {tuned:.0%} of the {len(view.query_ids)} questions " \
           f"({points:+d} points)" in html
    assert "Unchanged:" not in html and html.count('class="plotly-graph-div"') == 5  # bars, 2 clouds, 2 link maps
    specs = [json.loads(m) for m in re.findall(r'Plotly\.newPlot\(\s*"[^"]+",\s*(\[.*?\]),\s*\{', html)]
    wl = view.winners_losers()
    wl.index = wl.index.astype(str)
    chosen = sorted(handful(wl, "improved") + handful(wl, "worsened"))
    drawn = [sorted(t["customdata"]) for data in specs for t in data if t.get("meta") == "queries"]
    assert drawn == [chosen, chosen]  # both link maps: the handful only
