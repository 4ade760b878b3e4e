"""Plot builders: figures from small frames, stable source colours, link traces, highlight, curves."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from core.insight import map_figure, plots


def _points() -> pd.DataFrame:
    """Both spaces of a tiny projection: 4 queries, 9 passages from 3 sources (+1 without)."""
    rng = np.random.default_rng(0)
    rows = []
    sources = ["b.pdf p.1", "a.pdf p.2", "c.docx", None]
    for space in ("base", "tuned"):
        for i in range(4):
            rows.append((space, "query", f"q{i}", f"question {i} " + "why " * 80, None, ["improved", "worsened", "same", "same"][i]))
        for j in range(9):
            src = sources[j % 4] if not (space == "tuned" and j == 8) else sources[0]
            rows.append((space, "passage", f"d{j}", f"passage <{j}> text", src, None))
    df = pd.DataFrame(rows, columns=["space", "kind", "id", "text", "source", "movement"])
    df["x"] = rng.normal(size=len(df)).astype(np.float32)
    df["y"] = rng.normal(size=len(df)).astype(np.float32)
    return df


def _role(fig: go.Figure, role: str) -> list:
    return [t for t in fig.data if t.meta == role]


def _passage_colours(fig: go.Figure) -> dict[str, str]:
    """{passage id: colour} from the figure's passage traces."""
    out = {}
    for t in _role(fig, "passages"):
        cols = t.marker.color
        cols = [cols] * len(t.customdata) if isinstance(cols, str) else list(cols)
        out.update(zip(t.customdata, cols))
    return out


def test_embedding_map_builds_and_is_serialisable():
    pts = _points()
    fig = map_figure.embedding_map(pts, "base", title="Base model")
    assert isinstance(fig, go.Figure)
    json.loads(fig.to_json())  # plotly can serialise it (what Streamlit does)
    assert fig.layout.yaxis.scaleanchor == "x"
    assert fig.layout.xaxis.showticklabels is False and fig.layout.yaxis.showticklabels is False
    assert fig.layout.uirevision == "embedding-map-base"
    assert fig.layout.title.text == "Base model"
    (q,) = _role(fig, "queries")
    assert len(q.x) == 4 and set(q.customdata) == {"q0", "q1", "q2", "q3"}
    assert sum(len(t.x) for t in _role(fig, "passages")) == 9
    # Hover: long text cut with its length noted, HTML escaped, movement shown.
    assert "chars)" in q.text[0] and "improved" in q.text[0]
    assert all(len(h) < 400 for h in q.text)
    p_text = " ".join(h for t in _role(fig, "passages") for h in t.text)
    assert "&lt;3&gt;" in p_text and "<3>" not in p_text


def test_colour_by_file_agrees_between_spaces_and_skips_query_colour():
    pts = _points()
    pts["file"] = pts["source"].map(lambda v: v.split(" p.")[0] if isinstance(v, str) else None)
    base = map_figure.embedding_map(pts, "base", color_by="file")
    tuned = map_figure.embedding_map(pts, "tuned", color_by="file")
    cb, ct = _passage_colours(base), _passage_colours(tuned)
    files = pts.set_index(["space", "id"])["file"].map(plots._source_name)
    by_file: dict[str, set] = {}
    for space, cols in (("base", cb), ("tuned", ct)):
        for pid, col in cols.items():
            by_file.setdefault(files[(space, pid)], set()).add(col)
    assert all(len(c) == 1 for c in by_file.values()), by_file  # one file, one colour, in either map
    coloured = {f: next(iter(c)) for f, c in by_file.items() if f != plots.NO_SOURCE}
    assert len(set(coloured.values())) == len(coloured)  # distinct files differ
    for fig, cols in ((base, cb), (tuned, ct)):
        (q,) = _role(fig, "queries")
        assert q.marker.color not in set(cols.values()) and q.marker.symbol == plots.QUERY_SYMBOL


def test_many_files_keep_a_readable_number_of_colours():
    n = 98  # the expert's 98 papers: 98 colours cannot be told apart
    pts = pd.DataFrame({"space": "base", "kind": "passage", "id": [f"d{i}" for i in range(n)],
                        "x": np.arange(n, dtype=np.float32), "y": np.zeros(n, dtype=np.float32),
                        "source": [f"paper{i:03d}.pdf p.1" for i in range(n)],
                        "file": [f"paper{i:03d}.pdf" for i in range(n)]})
    fig = map_figure.embedding_map(pts, "base", color_by="file")
    names = [t.name for t in _role(fig, "passages")]
    assert len(names) == map_figure.FILE_COLORS_MAX + 1 and names[-1] == f"{n - map_figure.FILE_COLORS_MAX} other documents (86)"
    one = map_figure.embedding_map(pts, "base", color_by="file:paper007.pdf")
    assert [t.name for t in _role(one, "passages")] == ["paper007.pdf (1)", "other documents (97)"]
    hover = " ".join(h for t in _role(fig, "passages") for h in t.text)
    assert "paper050.pdf p.1" in hover  # every passage names its source on hover


def test_colour_by_answer_movement():
    pts = _points()
    pts["answers"] = None
    pts.loc[pts["id"] == "d0", "answers"] = "improved"
    pts.loc[pts["id"] == "d1", "answers"] = "worsened"
    fig = map_figure.embedding_map(pts, "base")  # the default colouring
    groups = {t.name.split(" (")[0]: t for t in _role(fig, "passages")}
    assert set(groups) == {"answer, question improved", "answer, question worsened", "other passages"}
    assert list(groups["answer, question improved"].customdata) == ["d0"]
    assert groups["answer, question worsened"].marker.color == plots.MOVEMENT_COLORS["worsened"]


def test_links_use_at_most_three_line_traces():
    pts = _points()
    links = pd.DataFrame(
        {
            "query_id": ["q0", "q1", "q2", "q3", "q0", "missing"],
            "passage_id": ["d0", "d1", "d2", "d3", "d4", "d0"],
            "movement": ["improved", "worsened", "same", "same", "improved", "same"],
        }
    )
    fig = map_figure.embedding_map(pts, "base", links=links)
    line_traces = [t for t in fig.data if t.mode == "lines"]
    assert len(line_traces) <= 3 and all(t.meta == "links" for t in line_traces)
    by_name = {t.name.split(":")[1].split("(")[0].strip(): t for t in line_traces}
    assert set(by_name) == {"improved", "worsened", "same"}
    assert by_name["improved"].line.color == plots.MOVEMENT_COLORS["improved"]
    assert len(by_name["improved"].x) == 6 and by_name["improved"].x[2] is None  # 2 segments
    assert len(by_name["same"].x) == 6  # the pair with an unknown query is skipped
    base = pts[pts["space"] == "base"].set_index("id")
    assert tuple(by_name["worsened"].x[:2]) == (base.loc["q1", "x"], base.loc["d1", "x"])
    # 1,000 links are still 3 traces; links without a movement column are all "same".
    rng = np.random.default_rng(1)
    many = pd.DataFrame({"query_id": rng.choice(["q0", "q1", "q2", "q3"], 1000),
                         "passage_id": rng.choice([f"d{j}" for j in range(9)], 1000),
                         "movement": rng.choice(["improved", "worsened", "same"], 1000)})  # fmt: skip
    fig = map_figure.embedding_map(pts, "base", links=many)
    assert len(_role(fig, "links")) == 3
    fig = map_figure.embedding_map(pts, "base", links=many[["query_id", "passage_id"]])
    (only,) = _role(fig, "links")
    assert only.line.color == plots.MOVEMENT_COLORS["same"]


def test_highlight_enlarges_the_chosen_points():
    pts = _points()
    fig = map_figure.embedding_map(pts, "tuned", highlight={"query_id": "q2", "top_ids": ["d5", "d1", "nope"]})
    (hq,) = _role(fig, "highlight-query")
    (hp,) = _role(fig, "highlight-passages")
    tuned = pts[pts["space"] == "tuned"].set_index("id")
    assert (hq.x[0], hq.y[0]) == (tuned.loc["q2", "x"], tuned.loc["q2", "y"])
    assert list(hp.customdata) == ["d5", "d1"] and list(hp.text) == ["1", "2"]
    assert hp.x[0] == tuned.loc["d5", "x"]
    base_size = _role(fig, "queries")[0].marker.size
    assert hq.marker.size > base_size and hp.marker.size > _role(fig, "passages")[0].marker.size
    # A highlight whose ids are not on the map adds nothing and does not fail.
    fig2 = map_figure.embedding_map(pts, "tuned", highlight={"query_id": "zz", "top_ids": []})
    assert not _role(fig2, "highlight-query") and not _role(fig2, "highlight-passages")


def test_embedding_map_minimal_columns():
    pts = _points()[["space", "kind", "id", "x", "y"]]
    fig = map_figure.embedding_map(pts, "base")
    (p,) = _role(fig, "passages")
    assert p.name == "passages (9)" and len(p.x) == 9


def test_metric_bars_grouped():
    table = pd.DataFrame(
        {"MRR@10": [0.5, 0.62], "nDCG@10": [0.55, 0.66], "Accuracy@1": [0.4, 0.5], "n": [10, 10]},
        index=["base", "tuned"],
    )
    fig = plots.metric_bars(table)
    assert fig.layout.barmode == "group"
    assert [t.name for t in fig.data] == ["base", "tuned"]
    assert list(fig.data[0].x) == ["Accuracy@1", "MRR@10", "nDCG@10"]  # headline order, "n" left out
    fig = plots.metric_bars(table.reset_index(names="system"), metrics=["nDCG@10"])
    assert list(fig.data[1].y) == [0.66]
    with pytest.raises(ValueError):
        plots.metric_bars(table, metrics=["nope"])


def test_loss_curve_with_and_without_evals():
    losses = [(i, 2.0 / (i + 1)) for i in range(0, 50, 5)]
    fig = plots.loss_curve(losses)
    assert len(fig.data) == 1 and "yaxis2" not in fig.to_plotly_json()["layout"]
    evals = [(10, {"MRR@10": 0.4}), (0, {"MRR@10": 0.3}), (20, {"nDCG@10": 0.5})]
    fig = plots.loss_curve(losses, evals)
    assert len(fig.data) == 2
    ev = fig.data[1]
    assert ev.yaxis == "y2" and fig.layout.yaxis2.overlaying == "y"
    assert list(ev.x) == [0, 10] and list(ev.y) == [0.3, 0.4]  # sorted; eval without the metric skipped
    fig = plots.loss_curve(losses, evals, metric="nDCG@10")
    assert list(fig.data[1].y) == [0.5]
    # one validation point (a cancelled run) once drew an axis from -0.444 to 1.341: a set range around it
    lo, hi = fig.layout.yaxis2.range
    assert 0.4 < lo < 0.5 < hi < 0.6
    empty = plots.loss_curve([])
    assert len(empty.data) == 0 and "No training" in empty.layout.annotations[0].text
    assert fig.layout.xaxis.dtick is None  # 45 steps: plotly's own ticks
    short = plots.loss_curve([(1, 2.0), (2, 1.5), (5, 0.7)])
    assert short.layout.xaxis.dtick == 1  # whole steps only on a short run


def test_rank_scatter_handles_nan():
    per_query = pd.DataFrame(
        {
            "base": [5, 1, np.nan, 3, np.nan],
            "tuned": [1, 4, 2, np.nan, np.nan],
            "question": ["q a", "q <b>", "q c", "q d", "q e"],
        },
        index=["a", "b", "c", "d", "e"],
    )
    fig = plots.rank_scatter(per_query, "base", "tuned")
    json.loads(fig.to_json())
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    assert ">100" in fig.layout.xaxis.ticktext
    pts = {t.meta: t for t in fig.data if t.mode == "markers"}
    assert set(pts) == {"improved", "worsened", "same"}
    assert list(pts["improved"].customdata) == ["a", "c"]
    # NaN drawn near 101 (jitter is a few percent); finite everywhere.
    allx = np.concatenate([np.asarray(t.x, dtype=float) for t in pts.values()])
    assert np.isfinite(allx).all()
    c = list(pts["improved"].customdata).index("c")
    assert pts["improved"].x[c] == pytest.approx(plots.RANK_NAN, rel=0.07)
    assert "&lt;b&gt;" in pts["worsened"].text[0] and ">100" in pts["worsened"].text[1]
    (diag,) = [t for t in fig.data if t.meta == "diagonal"]
    assert list(diag.x) == list(diag.y)


def test_hover_text_wraps_every_word_into_lines_of_the_width_and_escapes():
    import textwrap

    from core.insight.plots import hover_text

    text = "The pump <screams> on frosty mornings & the return filter " * 3 + "x" * 90
    out = hover_text(text, limit=10_000, width=30)
    lines = out.split("<br>")
    assert " ".join(lines).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") == " ".join(text.split())
    assert all(len(line.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")) <= 30 for line in lines[:-1])
    assert lines[-1] == "x" * 90  # a word longer than a line stands alone
    # same lines as the standard library's wrap wherever no word is longer than the width
    short = " ".join(text.split()[:-1])
    assert hover_text(short, limit=10_000, width=30).split("<br>") == [
        line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") for line in textwrap.wrap(short, 30)]


def test_a_map_draws_every_question_and_kept_passage_and_caps_the_others():
    import pandas as pd

    from core.insight.map_figure import drawn_points

    rows = []
    for space in ("base", "tuned"):
        rows += [(space, "query", f"q{i}", 0.0, 0.0) for i in range(5)]
        rows += [(space, "passage", f"p{i}", 0.0, 0.0) for i in range(50)]
    points = pd.DataFrame(rows, columns=["space", "kind", "id", "x", "y"])
    shown = drawn_points(points, {"p1", "p2", "p49"}, limit=18, floor=0)
    ids = set(shown["id"])
    assert {f"q{i}" for i in range(5)} | {"p1", "p2", "p49"} <= ids
    assert len(ids) == 18 and len(shown) == 2 * len(ids)  # 5 questions + 3 kept + 10 others; both spaces
    assert drawn_points(points, {"p1"}, limit=10).equals(drawn_points(points, {"p1"}, limit=10))  # fixed choice
    assert len(set(drawn_points(points, {"p1", "p2"}, limit=6, floor=4)["id"])) == 5 + 2 + 4  # the floor holds
    assert len(drawn_points(points, set(), limit=1000)) == len(points)


def test_chart_warm_up_builds_a_figure_with_the_lab_template():
    """The start-up thread (ui.resources.warm_up) must not fail silently: it runs the same code here."""
    from core.insight.plots import TEMPLATE, new_figure
    from ui.resources import _import_charts

    _import_charts()
    fig = new_figure()
    assert fig.layout.template.layout.plot_bgcolor == TEMPLATE.layout.plot_bgcolor == "white"
    assert set(fig.layout.template.data.to_plotly_json()) == {"scatter", "bar"}  # not plotly's 25 trace types


def test_a_map_draws_a_stated_sample_of_questions_with_their_answers_and_the_highlighted_one():
    import pandas as pd

    from core.insight.map_figure import drawn_points, map_questions

    qids = [f"q{i}" for i in range(30)]
    assert map_questions(qids, 0) == qids and map_questions(qids, 30) == qids  # no cap / under the cap: all
    sample = map_questions(qids, 10, seed=3, keep=["q29"])
    assert sample == map_questions(qids, 10, seed=3, keep=["q29"])  # a fixed choice
    assert "q29" in sample and len(set(sample) - {"q29"}) >= 9 and len(sample) <= 11
    assert sample == [q for q in qids if q in set(sample)]  # in the questions' order
    rows = []
    for space in ("base", "tuned"):
        rows += [(space, "query", q, 0.0, 0.0) for q in qids]
        rows += [(space, "passage", f"p{i}", 0.0, 0.0) for i in range(60)]
    points = pd.DataFrame(rows, columns=["space", "kind", "id", "x", "y"])
    answers = {f"p{q[1:]}" for q in sample}  # question qN's answer is pN
    shown = drawn_points(points, answers, limit=0, floor=5, questions=sample)
    drawn = set(shown["id"])
    assert {q for q in drawn if q.startswith("q")} == set(sample)  # exactly the sampled questions
    assert answers <= drawn and len(drawn) == len(sample) + len(answers) + 5  # + the floor of other passages
    assert not (shown["kind"] == "query").to_numpy()[~shown["id"].isin(sample).to_numpy()].any()


def test_a_sample_of_questions_means_fewer_points_not_other_passages_in_their_place():
    import pandas as pd

    from core.insight.map_figure import map_sample

    qids = [f"q{i}" for i in range(30)]
    relevant = {q: [f"p{q[1:]}"] for q in qids}  # qN's answer is pN
    rows = []
    for space in ("base", "tuned"):
        rows += [(space, "query", q, 0.0, 0.0) for q in qids]
        rows += [(space, "passage", f"p{i}", 0.0, 0.0) for i in range(200)]
    points = pd.DataFrame(rows, columns=["space", "kind", "id", "x", "y"])
    full, all_q = map_sample(points, qids, relevant, limit=80, n_questions=0, floor=0)
    assert all_q == qids and full["id"].nunique() == 80  # 30 questions + 30 answers + 20 others
    shown, drawn = map_sample(points, qids, relevant, limit=80, n_questions=10, highlighted="q29", ringed={"p150"},
                               floor=0)
    ids = set(shown["id"])
    assert "q29" in drawn and {q for q in ids if q.startswith("q")} == set(drawn)
    assert {f"p{q[1:]}" for q in drawn} | {"p150"} <= ids  # answers of the drawn questions, the ringed passage
    others = ids - set(drawn) - {f"p{q[1:]}" for q in drawn} - {"p150"}
    assert len(others) == 20 - 1  # the other passages are not refilled (one place went to the ringed passage)


def test_clouds_map_draws_two_colours_on_shared_axes():
    pts = _points()
    ranges = map_figure.frame_ranges(pts)
    base, tuned = (map_figure.clouds_map(pts, s, title=s, ranges=ranges) for s in ("base", "tuned"))
    for fig in (base, tuned):
        assert [t.meta for t in fig.data] == ["cloud-passage", "cloud-query"]  # questions drawn on top
        assert [t.marker.color for t in fig.data] == [map_figure.CLOUD_COLORS["passage"],
                                                      map_figure.CLOUD_COLORS["query"]]
        assert [t.name for t in fig.data] == ["passages (9)", "questions (4)"]
        assert list(fig.layout.xaxis.range) == ranges[0] and list(fig.layout.yaxis.range) == ranges[1]
        assert json.loads(fig.to_json())["data"]  # serialisable
    x = pts["x"].astype(float)
    assert ranges[0][0] < x.min() and ranges[0][1] > x.max()  # every point of both spaces inside the frame


def test_handful_picks_the_most_improved_and_most_worsened():
    wl = pd.DataFrame({"movement": ["improved", "improved", "same", "worsened", "worsened", "worsened"],
                       "change": [9, 2, 0, -1, -5, -30]}, index=[1, 2, 3, 4, 5, 6])
    assert map_figure.handful(wl, "improved", 5) == ["1", "2"]
    assert map_figure.handful(wl, "worsened", 2) == ["6", "5"]  # the biggest losses first
    with pytest.raises(ValueError):
        map_figure.handful(wl, "same")


def test_handful_sample_draws_only_the_chosen_and_colours_their_answers_by_their_own_movement():
    pts = _points()
    pts["answers"] = [None if k == "query" else "worsened" for k in pts["kind"]]  # d0 also answers a worsened one
    shown = map_figure.handful_sample(pts, ["q0"], {"q0": ["d0"], "q1": ["d1"]}, limit=8, floor=2)
    assert set(shown.loc[shown["kind"] == "query", "id"]) == {"q0"}
    ans = shown.set_index(["space", "id"])["answers"]
    assert ans[("base", "d0")] == "improved"  # q0's movement, not the other question's
    assert ans.drop(index=[("base", "d0"), ("tuned", "d0")], errors="ignore").isna().all()


def test_loss_curve_axis_fits_the_validation_and_marks_the_evaluation():
    """Issue 27: a full fine-tune's validation curve (0.61 -> 0.73) looked flat on a 0..1 axis while the
    evaluation improved by 0.12; the axis fits the points, names the metric, and marks base and tuned."""
    losses = [(i, 1.0 / (i + 1)) for i in range(0, 100, 10)]
    evals = [(0, {"MRR@10": 0.61}), (50, {"MRR@10": 0.70}), (100, {"MRR@10": 0.73})]
    marks = {"evaluation, base model": 0.55, "evaluation, tuned model": 0.67}
    fig = plots.loss_curve(losses, evals, marks=marks)
    lo, hi = fig.layout.yaxis2.range
    assert 0.5 < lo < 0.55 and 0.73 < hi < 0.76  # the data and the marks, a little padding, not 0..1
    assert "MRR@10" in fig.layout.yaxis2.title.text
    assert fig.data[1].name == "validation MRR@10 (held-out training questions)"
    lines = {t.name: t for t in fig.data[2:]}
    assert set(lines) == {"evaluation, base model: MRR@10 0.550", "evaluation, tuned model: MRR@10 0.670"}
    base = lines["evaluation, base model: MRR@10 0.550"]
    assert base.yaxis == "y2" and list(base.y) == [0.55, 0.55] and list(base.x) == [0, 100]
    assert base.line.dash == "dash"
    # without marks: the range fits the validation points alone; a rate never leaves 0..1
    lo, hi = plots.loss_curve(losses, evals).layout.yaxis2.range
    assert 0.55 < lo < 0.61 and 0.73 < hi <= 0.76
    assert plots.metric_range([0.0, 1.0]) == pytest.approx([-0.1, 1.1])
    flat = plots.loss_curve(losses, [(0, {"MRR@10": 1.0}), (9, {"MRR@10": 1.0})], marks={"evaluation": 1.0})
    lo, hi = flat.layout.yaxis2.range  # a perfect score stays inside the plot, its ticks distinct
    assert lo == pytest.approx(0.97) and 1.0 < hi <= 1.01 and flat.layout.yaxis2.tickformat == ".3f"


def test_metric_range_pads_and_widens_a_flat_curve():
    assert plots.metric_range([0.3, 0.3]) == pytest.approx([0.27, 0.33])
    lo, hi = plots.metric_range([0.2, 0.4])
    assert lo == pytest.approx(0.18) and hi == pytest.approx(0.42)
