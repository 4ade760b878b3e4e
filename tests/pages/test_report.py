"""The stakeholder report: self-contained HTML with the verdict, intervals, maps and cases."""

import re

from core.cli import main
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
    for section in ("Scores", "Confidence intervals and significance", "Embedding maps: before and after",
                    "Winners and losers", "Data and leakage", "Settings", "Library versions"):
        assert f">{section}<" in html
    assert "tuned (adapter)" in html and "BM25" in html and "hybrid" in html
    assert html.count('class="plotly-graph-div"') == 3  # bars + two maps
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
