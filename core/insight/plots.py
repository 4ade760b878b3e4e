"""Plotly figures for the lab, built from data frames only.

This file owns how results look: the embedding maps (points of a ``Projection`` with gold links
and a highlighted query), metric bars, the training loss curve and the before/after gold-rank
scatter. Every function takes plain data (DataFrames, lists) and returns a ``plotly`` Figure; none
loads a model, encodes text or runs UMAP (that is ``core.insight.projection``), and none imports streamlit.

Figures use SVG ``Scatter`` rather than WebGL ``Scattergl``: a page shows several figures and
browsers cap WebGL contexts (headless test browsers may lack WebGL), while a few thousand markers
and one path per link class stay fast in SVG.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.insight.projection import rank_movement
from core.retrieval.metrics import HEADLINE

QUERY_COLOR = "#111111"  # queries: near-black open diamonds, a colour no passage ever gets
QUERY_SYMBOL = "diamond-open"
NO_SOURCE = "(no source)"
# Movement colours for links and the rank scatter; greens/reds darker than the passage palette's.
MOVEMENT_COLORS = {"improved": "#1a9641", "worsened": "#d7191c", "same": "#c8c8c8"}
MOVEMENT_ORDER = ("improved", "worsened", "same")
# Qualitative palette for passage sources (Plotly's default 10 + D3's 10 minus near-duplicates
# and greys); sources beyond it get golden-angle hues, never black or grey.
PALETTE = [
    "#636EFA", "#EF553B", "#00CC96", "#AB63FA", "#FFA15A", "#19D3F3", "#FF6692", "#B6E880",
    "#FF97FF", "#FECB52", "#1F77B4", "#FF7F0E", "#2CA02C", "#D62728", "#9467BD", "#8C564B",
    "#E377C2", "#BCBD22", "#17BECF",
]  # fmt: skip
HOVER_CHARS = 200  # hover text is cut here: enough to recognise a passage, short enough to read
POINT_SIZE = 6  # marker size of ordinary points; highlighted ones are drawn at HIGHLIGHT_SIZE
HIGHLIGHT_SIZE = 16
RANK_NAN = 101  # where "not in the top 100" is drawn on rank axes
MAP_HEIGHT = 560


def _template() -> go.layout.Template:
    """Plotly's "plotly_white" look, its layout and the trace defaults of the trace types drawn here only.
    Naming "plotly_white" copies the whole template (defaults for ~25 trace types) into every figure, and a
    figure made without a template first copies the default one: 0.1-0.2 s a figure on this machine."""
    import plotly.io as pio

    white = pio.templates["plotly_white"]
    return go.layout.Template(layout=white.layout, data={k: white.data[k] for k in ("scatter", "bar")})


TEMPLATE = _template()


def new_figure() -> go.Figure:
    """An empty figure with the lab's template (see ``_template``)."""
    return go.Figure(layout={"template": TEMPLATE})


def _source_name(s) -> str:
    if s is None or (isinstance(s, float) and np.isnan(s)) or str(s).strip() == "":
        return NO_SOURCE
    return str(s)


def hover_text(text, limit: int = HOVER_CHARS, width: int = 70) -> str:
    """HTML-escaped ``text`` cut at ``limit`` characters (full length noted), wrapped at ``width``."""
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return ""
    s = " ".join(str(text).split())
    if len(s) > limit:
        s = s[:limit].rstrip() + f"… ({len(s):,} chars)"
    return "<br>".join(html.escape(line) for line in _wrap(s, width))


def _wrap(s: str, width: int) -> list[str]:
    """Greedy word wrap at ``width`` (a word longer than a line stands alone). textwrap.wrap does the same
    with more rules, at about 0.5 ms a text: too slow for the thousands of hover texts of a map."""
    lines, line = [], ""
    for word in s.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        lines.append(line)
    return lines


def _strings(values) -> np.ndarray:
    """Strings as a numpy object array: plotly checks a list element by element (a tenth of a second for a
    few thousand hover texts), an array at once."""
    return np.asarray(list(values), dtype=object)


def _hover(df: pd.DataFrame, label: str) -> list[str]:
    """Hover strings for the rows of ``df``: bold label and id, then source/movement, then text (the ``hover``
    column when the frame has one: ``hover_column`` made it once for a run's map points)."""
    if "hover" in df.columns:
        return df["hover"].tolist()
    out = []
    for row in df.itertuples(index=False):
        head = f"<b>{label}</b> {html.escape(str(row.id))}"
        extra = []
        src = getattr(row, "source", None)
        if label == "passage" and "source" in df.columns:
            extra.append(html.escape(_source_name(src)))
        mov = getattr(row, "movement", None)
        if label == "question" and isinstance(mov, str):
            extra.append(mov)
        if extra:
            head += " · " + " · ".join(extra)
        body = hover_text(getattr(row, "text", None)) if "text" in df.columns else ""
        out.append(head + ("<br>" + body if body else ""))
    return out


def hover_column(points: pd.DataFrame) -> list[str]:
    """``_hover`` of every row of a map's points (``kind`` query -> "question", else "passage"), for a ``hover``
    column: a map is rebuilt for each highlighted question, its hover texts need building only once."""
    out = [""] * len(points)
    is_q = (points["kind"] == "query").to_numpy()
    for mask, label in ((is_q, "question"), (~is_q, "passage")):
        rows = np.flatnonzero(mask)
        for i, h in zip(rows, _hover(points.iloc[rows], label)):
            out[i] = h
    return out


def metric_bars(table: pd.DataFrame, metrics: list[str] | None = None) -> go.Figure:
    """Grouped bars: one group per metric, one bar per system.

    Args:
        table: systems x metrics (index = system name; a ``system`` column is used as the index if
            present), values in metric units.
        metrics: columns to show, in order; default the :data:`core.retrieval.metrics.HEADLINE` metrics the
            table has, else all its numeric columns.

    Returns:
        The figure (y axis fixed to 0..1 when every value lies there, so runs compare by eye).
    """
    t = table.set_index("system") if "system" in table.columns else table
    if metrics is None:
        metrics = [m for m in HEADLINE if m in t.columns] or list(t.select_dtypes("number").columns)
    missing = [m for m in metrics if m not in t.columns]
    if missing:
        raise ValueError(f"metrics not in the table: {missing}")
    fig = new_figure()
    for system, row in t[metrics].iterrows():
        vals = row.astype(float)
        fig.add_trace(
            go.Bar(
                x=metrics,
                y=vals.tolist(),
                name=str(system),
                text=[f"{v:.3f}" if np.isfinite(v) else "" for v in vals],
                textposition="outside",
                hovertemplate=f"<b>{html.escape(str(system))}</b><br>%{{x}}: %{{y:.4f}}<extra></extra>",
            )
        )
    values = t[metrics].to_numpy(dtype=float)
    in_unit = values.size and np.nanmin(values) >= 0 and np.nanmax(values) <= 1
    fig.update_layout(
        barmode="group",
        yaxis={"range": [0, 1.08]} if in_unit else {},  # headroom for the value labels
        legend={"orientation": "h", "y": -0.15},
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        uirevision="metric-bars",
    )
    return fig


MARK_COLOURS = ("#7F7F7F", "#2CA02C")  # the evaluation's before (base) and after (tuned) lines


def metric_range(values: list[float], pad: float = 0.1, min_span: float = 0.05) -> list[float]:
    """A y range that fits ``values`` (a 0..1 score) with a little room: ``pad`` of the span on each side,
    at least ``min_span`` wide, kept inside 0..1 when the values are. A validation curve drawn on 0..1 looked
    flat while it rose by 0.12 (issue 27)."""
    lo, hi = min(values), max(values)
    span = max(hi - lo, min_span)
    mid = (lo + hi) / 2
    lo, hi = min(lo, mid - span / 2) - pad * span, max(hi, mid + span / 2) + pad * span
    if min(values) >= 0 and max(values) <= 1:  # a rate: no further past its bounds than the padding
        lo, hi = max(lo, -pad * span), min(hi, 1.0 + pad * span)
    return [lo, hi]


def loss_curve(
    losses: list[tuple[int, float]],
    evals: list[tuple[int, dict]] | None = None,
    metric: str = "MRR@10",
    marks: dict[str, float] | None = None,
) -> go.Figure:
    """Training loss per step and, if given, a validation metric per evaluation.

    Args:
        losses: (step, loss) pairs, in any order.
        evals: (step, {metric name: value}) pairs; evaluations lacking ``metric`` are skipped.
        metric: which metric of ``evals`` to plot, on a secondary y axis at the right, its range fitted to
            the points (and the marks) with a little padding.
        marks: {label: value} in ``metric``, drawn as dashed horizontal lines on that axis, each labelled: the
            run's evaluation score before and after tuning, so the validation curve (held-out training
            questions) can be read against what the evaluation measured.

    Returns:
        The figure; with no losses and no evals it carries a "no training steps yet" note.
    """
    fig = new_figure()
    loss = sorted((int(s), float(v)) for s, v in losses or [])
    if loss:
        fig.add_trace(
            go.Scatter(
                x=[s for s, _ in loss],
                y=[v for _, v in loss],
                mode="lines",
                name="training loss",
                line={"color": "#636EFA", "width": 1.5},
                hovertemplate="step %{x}<br>loss %{y:.4f}<extra></extra>",
            )
        )
    ev = sorted((int(s), float(d[metric])) for s, d in evals or [] if metric in d and d[metric] is not None)
    if ev:
        fig.add_trace(
            go.Scatter(
                x=[s for s, _ in ev],
                y=[v for _, v in ev],
                mode="lines+markers",
                name=f"validation {metric} (held-out training questions)",
                yaxis="y2",
                line={"color": "#EF553B", "width": 2},
                hovertemplate=f"step %{{x}}<br>{html.escape(metric)} %{{y:.4f}}<extra></extra>",
            )
        )
    layout: dict = {
        "xaxis": {"title": {"text": "step"}},
        "yaxis": {"title": {"text": "loss"}},
        "legend": {"orientation": "h", "y": 1.12},
        "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
        "hovermode": "x unified",
        "uirevision": "loss-curve",
    }
    last = max([s for s, _ in loss] + [s for s, _ in ev] + [0])
    if last <= 12:  # short runs: one tick per whole step, not 1.5, 2.5
        layout["xaxis"]["dtick"] = 1
    marks = {k: float(v) for k, v in (marks or {}).items() if v is not None}
    if ev or marks:  # the axis fits the points and the marks (0..1 hid a rise of 0.12)
        y2 = metric_range([v for _, v in ev] + list(marks.values()))
        layout["yaxis2"] = {
            "title": {"text": f"{metric} (validation{' and evaluation' if marks else ''})"}, "overlaying": "y",
            "side": "right", "showgrid": False, "tickformat": ".2f" if y2[1] - y2[0] >= 0.1 else ".3f",
            "range": y2,
        }
        if marks:  # four legend entries take two rows: room above the plot, not over the lines
            layout["legend"] = {"orientation": "h", "y": 1.02, "yanchor": "bottom"}
            layout["margin"] = {**layout["margin"], "t": 70}
        x0, x1 = (min([s for s, _ in loss] + [s for s, _ in ev]), last) if (loss or ev) else (0, 1)
        for (label, value), colour in zip(marks.items(), MARK_COLOURS * len(marks)):
            fig.add_trace(
                go.Scatter(
                    x=[x0, x1], y=[value, value], mode="lines", name=f"{label}: {metric} {value:.3f}", yaxis="y2",
                    line={"color": colour, "width": 1.5, "dash": "dash"},
                    hovertemplate=f"{html.escape(label)}<br>{html.escape(metric)} {value:.3f}<extra></extra>",
                )
            )
    if not loss and not ev:
        layout["annotations"] = [
            {"text": "No training steps yet", "showarrow": False, "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5}
        ]
    fig.update_layout(**layout)
    return fig


def rank_scatter(per_query: pd.DataFrame, before: str, after: str) -> go.Figure:
    """Gold rank before vs after tuning, one point per query, on log axes.

    Points below the diagonal improved. Ranks that are NaN (gold not in the top 100) are drawn at
    101, labelled ">100". Points get a small deterministic jitter (a few percent, in log space) so
    queries with equal ranks do not hide each other; hover shows the exact ranks.

    Args:
        per_query: one row per query (index = query id) with gold-rank columns ``before`` and
            ``after`` and optionally ``question`` (hover text).
        before: column of ranks before tuning.
        after: column of ranks after tuning.

    Returns:
        The figure, points coloured by movement (improved / worsened / same).
    """
    b = per_query[before].astype(float)
    a = per_query[after].astype(float)
    move = rank_movement(b, a).reindex(per_query.index)
    rng = np.random.default_rng(0)
    jitter = 0.025  # log10 units: ~6% either way, visible separation without leaving the rank's band
    fig = new_figure()
    fig.add_trace(
        go.Scatter(
            x=[1, RANK_NAN], y=[1, RANK_NAN], mode="lines", line={"color": "#999999", "dash": "dash", "width": 1},
            hoverinfo="skip", showlegend=False, meta="diagonal",
        )
    )  # fmt: skip
    for cls in MOVEMENT_ORDER:
        sel = (move == cls).to_numpy()
        if not sel.any():
            continue
        bx = b[sel].fillna(RANK_NAN).to_numpy()
        ay = a[sel].fillna(RANK_NAN).to_numpy()
        jx = bx * 10 ** rng.uniform(-jitter, jitter, len(bx))
        jy = ay * 10 ** rng.uniform(-jitter, jitter, len(ay))
        rows = per_query[sel]
        qtext = rows["question"] if "question" in rows.columns else pd.Series([None] * len(rows))
        hover = [
            f"<b>{html.escape(str(qid))}</b> · {cls}<br>rank {_rank_label(r0)} → {_rank_label(r1)}"
            + (f"<br>{h}" if (h := hover_text(q)) else "")
            for qid, r0, r1, q in zip(rows.index, b[sel], a[sel], qtext)
        ]
        fig.add_trace(
            go.Scatter(
                x=jx,
                y=jy,
                mode="markers",
                name=f"{cls} ({int(sel.sum())})",
                marker={"color": MOVEMENT_COLORS[cls], "size": 7, "opacity": 0.8,
                        "line": {"width": 0.5, "color": "#555555"}},
                text=_strings(hover),
                hovertemplate="%{text}<extra></extra>",
                customdata=_strings(str(i) for i in rows.index),
                meta=cls,
            )
        )  # fmt: skip
    ticks = [1, 2, 3, 5, 10, 20, 50, RANK_NAN]  # no "100" tick: it would overlap ">100"
    labels = [str(t) for t in ticks[:-1]] + [">100"]
    axis = {
        "type": "log",
        "range": [np.log10(0.8), np.log10(140)],
        "tickvals": ticks,
        "ticktext": labels,
        "showgrid": True,
        "zeroline": False,
    }
    fig.update_layout(
        xaxis={**axis, "title": {"text": f"gold rank, {before}"}},
        yaxis={**axis, "title": {"text": f"gold rank, {after}"}, "scaleanchor": "x", "scaleratio": 1},
        legend={"orientation": "h", "y": -0.18},
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        hovermode="closest",
        uirevision="rank-scatter",
    )
    return fig


def _rank_label(r) -> str:
    return ">100" if r is None or not np.isfinite(r) else str(int(r))


def quality_vs_time(table: pd.DataFrame, metric: str = "nDCG@10") -> go.Figure:
    """Shoot-out: one point per system, time (log) across, quality up."""
    fig = new_figure()
    for system, row in table.iterrows():
        fig.add_trace(go.Scatter(
            x=[max(float(row["seconds"]), 0.01)], y=[float(row[metric])], mode="markers+text", name=str(system),
            text=[html.escape(str(system))], textposition="top center", marker={"size": 12},
            hovertemplate=f"{html.escape(str(system))}<br>{metric} %{{y:.3f}}<br>%{{x:.1f}} s<extra></extra>",
        ))
    fig.update_layout(xaxis={"title": "seconds (log scale)", "type": "log"}, yaxis={"title": metric},
                      showlegend=False, margin={"l": 50, "r": 20, "t": 30, "b": 50})
    return fig


def quality_by_dimension_chart(table: pd.DataFrame, metric: str = "nDCG@10") -> go.Figure:
    """Quality against vector size, one line per model (``core.insight.matryoshka``), storage on hover."""
    fig = new_figure()
    for model, part in table.groupby("model", sort=False):
        part = part.sort_values("dimensions")
        fig.add_trace(go.Scatter(
            x=part["dimensions"], y=part[metric], mode="lines+markers", name=f"{model} model",
            customdata=part["MB per 1M passages"],
            hovertemplate=f"{html.escape(str(model))}: %{{x}} dimensions<br>{metric} %{{y:.3f}}<br>"
                          "%{customdata} MB per million passages<extra></extra>",
        ))
    fig.update_layout(xaxis={"title": "dimensions kept", "type": "log",
                                                      "tickvals": sorted(table["dimensions"].unique())},
                      yaxis={"title": metric, "range": [0, 1.02]}, margin={"l": 50, "r": 20, "t": 30, "b": 50},
                      legend={"orientation": "h", "y": -0.25})
    return fig
