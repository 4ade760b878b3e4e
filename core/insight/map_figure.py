"""The embedding map figure: one space of a projection, passages in a few readable colour groups,
questions in black, each question's link to its answer coloured by how tuning moved it, and a
highlighted question with its top passages ringed. Built from data frames only (``core.insight.
projection`` makes the points); shared colours and hover text come from ``core.insight.plots``.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.insight.plots import (
    HIGHLIGHT_SIZE,
    MAP_HEIGHT,
    MOVEMENT_COLORS,
    MOVEMENT_ORDER,
    NO_SOURCE,
    PALETTE,
    POINT_SIZE,
    QUERY_COLOR,
    QUERY_SYMBOL,
    _hover,
    _source_name,
    _strings,
    hover_column,
    new_figure,
)


def _xy_lookup(df: pd.DataFrame) -> pd.DataFrame:
    """x, y per point id (str index, first row of an id): vectorised lookups for links and rings."""
    out = df[["x", "y"]].set_axis(df["id"].astype(str).to_numpy())
    return out[~out.index.duplicated()]


def _segments(starts: pd.DataFrame, ends: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Line segments from each row of ``starts`` (x, y) to the same row of ``ends``, as one x and one y array
    with None between segments (one trace, many lines). Object arrays: plotly checks them at once, and None
    (a gap in the line) reaches the browser as null."""
    n = len(starts)
    xs = np.full(3 * n, None, dtype=object)
    ys = np.full(3 * n, None, dtype=object)
    xs[0::3], xs[1::3] = starts["x"].astype(float).to_numpy(), ends["x"].astype(float).to_numpy()
    ys[0::3], ys[1::3] = starts["y"].astype(float).to_numpy(), ends["y"].astype(float).to_numpy()
    return xs, ys


FILE_COLORS_MAX = 12  # files coloured one by one; more than this many distinct colours cannot be told apart
OTHER_COLOR = "#cfcfcf"
COLOR_MODES = {
    "answer": "answer passages by rank change",
    "file": "source document",
}


def passage_groups(ps: pd.DataFrame, color_by: str = "answer") -> list[tuple[str, str, pd.DataFrame]]:
    """Passages split into a few readable colour groups: (legend name, colour, rows).

    ``color_by``:
      * ``"answer"``: passages that answer an evaluation question, coloured by that question's rank
        change (column ``answers``: improved / worsened / same); every other passage grey;
      * ``"file"``: the ``FILE_COLORS_MAX`` documents with most passages on the map get a colour each
        (column ``file``), the rest share one grey group;
      * ``"file:<name>"``: that document's passages in colour, all others grey.
    """
    if color_by == "answer" and "answers" in ps.columns:
        ans = ps["answers"].fillna("")
        out = [(f"answer, question {cls}", MOVEMENT_COLORS[cls], ps[(ans == cls).to_numpy()]) for cls in MOVEMENT_ORDER]
        out.append(("other passages", OTHER_COLOR, ps[(ans == "").to_numpy()]))
    elif color_by.startswith("file") and "file" in ps.columns:
        files = ps["file"].map(_source_name)
        if color_by.startswith("file:"):
            chosen = color_by[5:]
            out = [(chosen, PALETTE[0], ps[(files == chosen).to_numpy()]),
                   ("other documents", OTHER_COLOR, ps[(files != chosen).to_numpy()])]
        else:
            top = [f for f in files.value_counts().index if f != NO_SOURCE][:FILE_COLORS_MAX]
            out = [(f, PALETTE[i % len(PALETTE)], ps[(files == f).to_numpy()]) for i, f in enumerate(sorted(top))]
            rest = ~files.isin(top).to_numpy()
            n_other = files[rest].nunique()
            out.append((f"{n_other} other documents" if n_other else "other passages", OTHER_COLOR, ps[rest]))
    else:
        out = [("passages", PALETTE[0], ps)]
    return [(name, color, part) for name, color, part in out if len(part)]


OTHERS_FLOOR = 300  # other passages a map always draws around its questions and answers, for context
MAP_QUESTIONS = 400  # questions a map draws at most by default (a fixed sample above this many; 0: all)


def map_questions(query_ids: list[str], limit: int, seed: int = 42, keep: Collection[str] = ()) -> list[str]:
    """The evaluation questions a map draws: all of them up to ``limit`` (0: no limit), else a fixed random
    sample of ``limit`` in their order, plus every question in ``keep`` (the highlighted one). Each drawn
    question's answer passages are drawn with it (the page passes them to ``drawn_points``). At 790 questions
    both maps together drew 3,000 SVG points; the browser needed over 2 s for them on this machine."""
    if not limit or len(query_ids) <= limit:
        return list(query_ids)
    rng = np.random.default_rng(seed)
    chosen = set(rng.choice(np.asarray(query_ids, dtype=object), size=limit, replace=False)) | set(keep)
    return [q for q in query_ids if q in chosen]


def drawn_points(points: pd.DataFrame, always: Collection[str], limit: int, seed: int = 42,
                 floor: int = OTHERS_FLOOR, questions: Collection[str] | None = None) -> pd.DataFrame:
    """The rows of ``points`` a map draws, about ``limit`` points per map: the questions (all, or those in
    ``questions``; see ``map_questions``), every passage in ``always`` (their answers, the highlighted
    question's top passages), and other passages up to ``limit`` in all (at least ``floor`` of them), a
    fixed random choice (both spaces of a point together). A large run's projection also holds each
    question's top passages in both models so any question can be highlighted; drawing them all (8,500
    points at 10k passages) makes the page slow, and at 100k passages the browser spent seconds drawing
    1,500 other passages beside 790 questions and their answers."""
    ids = points["id"].astype(str)
    is_query = (points["kind"] == "query").to_numpy()
    keep_query = is_query if questions is None else is_query & ids.isin({str(q) for q in questions}).to_numpy()
    must = keep_query | (~is_query & ids.isin(set(always)).to_numpy())
    others = np.unique(ids[~must & ~is_query].to_numpy())
    budget = max(floor, limit - len(np.unique(ids[must].to_numpy())))
    if len(others) > budget:
        others = np.random.default_rng(seed).choice(others, size=budget, replace=False)
    return points[must | (~is_query & ids.isin(set(others)).to_numpy())]


def map_sample(points: pd.DataFrame, query_ids: list[str], relevant_docs: dict[str, Collection[str]], limit: int,
               seed: int = 42, n_questions: int = MAP_QUESTIONS, highlighted: str | None = None,
               ringed: Collection[str] = (), floor: int = OTHERS_FLOOR) -> tuple[pd.DataFrame, list[str]]:
    """What a run's two maps draw: ``(rows of points, drawn question ids)``. The questions (``map_questions``:
    at most ``n_questions``, the ``highlighted`` one always), their answer passages, the ``ringed`` passages,
    and other passages up to ``limit`` points (``drawn_points``). Questions left out free their points and
    their answers' without other passages taking their place: a sample of questions means fewer points."""
    drawn_q = map_questions(query_ids, n_questions, seed, keep=[highlighted] if highlighted is not None else [])
    gold = {d for q in drawn_q for d in relevant_docs[q]}
    all_gold = {d for q in query_ids for d in relevant_docs[q]}
    thinned = len(query_ids) - len(drawn_q) + len(all_gold) - len(gold)
    return drawn_points(points, gold | set(ringed), limit - thinned, seed, floor, questions=drawn_q), drawn_q


def embedding_map(
    points: pd.DataFrame,
    space: str,
    links: pd.DataFrame | None = None,
    highlight: dict | None = None,
    title: str | None = None,
    uirevision: str | None = None,
    color_by: str = "answer",
) -> go.Figure:
    """Scatter of one space of a projection: passages coloured by ``color_by``, queries in black, gold links.

    Args:
        points: ``Projection.points`` (columns space, kind, id, x, y), optionally with ``text``
            (hover text), ``source`` (passage's source document; colours) and ``movement`` (queries:
            improved/worsened/same; shown on hover). Pass the frame with BOTH spaces: source colours
            come from the sorted sources of the whole frame, so the base and tuned figures agree.
        space: "base" or "tuned": which rows to draw.
        links: optional DataFrame(query_id, passage_id[, movement]): a thin segment from each query
            to its gold passage, one trace per movement class (green improved, red worsened, grey
            same; no movement column = all "same"). Pairs whose ends are not on the map are skipped.
        highlight: optional {"query_id": str, "top_ids": [passage id, ...]}: that query drawn large
            and its top passages ringed, numbered by rank.
        title: figure title.
        uirevision: plotly uirevision; default ``"embedding-map-<space>"`` so zoom and pan survive
            Streamlit reruns.
        color_by: how passages are coloured (see ``passage_groups``); the source is always on hover.

    Returns:
        The figure. Each trace's ``meta`` names its role ("links", "passages", "queries",
        "highlight-query", "highlight-passages") and ``customdata`` holds point ids.
    """
    df = points[points["space"] == space]
    qs = df[df["kind"] == "query"]
    ps = df[df["kind"] == "passage"]
    fig = new_figure()

    if links is not None and len(links):
        q_xy, p_xy = _xy_lookup(qs), _xy_lookup(ps)
        move = links["movement"] if "movement" in links.columns else pd.Series("same", index=links.index)
        for cls in MOVEMENT_ORDER:
            sel = links[move.fillna("same").to_numpy() == cls]
            q_ids, p_ids = sel["query_id"].astype(str).to_numpy(), sel["passage_id"].astype(str).to_numpy()
            on_map = q_xy.index.get_indexer(q_ids) >= 0
            on_map &= p_xy.index.get_indexer(p_ids) >= 0  # pairs whose ends are not both drawn are skipped
            if not on_map.any():
                continue
            n_pairs = int(on_map.sum())
            xs, ys = _segments(q_xy.loc[q_ids[on_map]], p_xy.loc[p_ids[on_map]])
            fig.add_trace(
                go.Scatter(
                    x=xs,
                    y=ys,
                    mode="lines",
                    line={"color": MOVEMENT_COLORS[cls], "width": 0.8},
                    name=f"gold link: {cls} ({n_pairs})",
                    hoverinfo="skip",
                    opacity=0.7,
                    meta="links",
                    legendgroup="links",
                )
            )

    if len(ps):
        for name, color, part in passage_groups(ps, color_by):
            fig.add_trace(
                go.Scatter(
                    x=part["x"].to_numpy(),
                    y=part["y"].to_numpy(),
                    mode="markers",
                    name=f"{name} ({len(part)})",
                    marker={"size": POINT_SIZE, "opacity": 0.8, "line": {"width": 0}, "color": color},
                    text=_strings(_hover(part, "passage")),
                    hovertemplate="%{text}<extra></extra>",
                    customdata=_strings(part["id"].astype(str)),
                    meta="passages",
                    legendgroup="passages",
                )
            )

    if len(qs):
        fig.add_trace(
            go.Scatter(
                x=qs["x"].to_numpy(),
                y=qs["y"].to_numpy(),
                mode="markers",
                name=f"questions ({len(qs)})",
                marker={"size": POINT_SIZE + 1, "symbol": QUERY_SYMBOL, "color": QUERY_COLOR, "line": {"width": 1}},
                text=_strings(_hover(qs, "question")),
                hovertemplate="%{text}<extra></extra>",
                customdata=_strings(qs["id"].astype(str)),
                meta="queries",
            )
        )

    if highlight:
        _add_highlight(fig, qs, ps, highlight)

    fig.update_layout(
        title=title,
        height=MAP_HEIGHT,
        margin={"l": 10, "r": 10, "t": 50 if title else 20, "b": 10},
        legend={"itemsizing": "constant", "groupclick": "toggleitem"},
        hovermode="closest",
        uirevision=uirevision or f"embedding-map-{space}",
    )
    # UMAP axes have no units or meaning: hide ticks and grid, keep distances honest (equal aspect).
    axis = {"showticklabels": False, "showgrid": False, "zeroline": False, "title": None}
    fig.update_xaxes(**axis)
    fig.update_yaxes(**axis, scaleanchor="x", scaleratio=1)
    return fig


def _add_highlight(fig: go.Figure, qs: pd.DataFrame, ps: pd.DataFrame, highlight: dict) -> None:
    """Enlarge the highlighted query and ring its top passages (numbered 1..k by rank)."""
    qid = highlight.get("query_id")
    top = [str(t) for t in highlight.get("top_ids") or []]
    p_xy = _xy_lookup(ps)
    q_xy = _xy_lookup(qs)
    shown = [(rank, pid, tuple(p_xy.loc[pid])) for rank, pid in enumerate(top, start=1) if pid in p_xy.index]
    if qid is not None and str(qid) in q_xy.index and shown:
        ends = p_xy.loc[[pid for _, pid, _ in shown]]
        xs, ys = _segments(q_xy.loc[[str(qid)] * len(shown)], ends)
        fig.add_trace(
            go.Scatter(
                x=xs, y=ys, mode="lines", line={"color": QUERY_COLOR, "width": 1, "dash": "dot"},
                hoverinfo="skip", showlegend=False, meta="highlight-links",
            )
        )  # fmt: skip
    if shown:
        by_id = ps.assign(id=ps["id"].astype(str)).drop_duplicates("id").set_index("id", drop=False)
        part = by_id.loc[[pid for _, pid, _ in shown]]
        fig.add_trace(
            go.Scatter(
                x=[xy[0] for _, _, xy in shown],
                y=[xy[1] for _, _, xy in shown],
                mode="markers+text",
                text=[str(r) for r, _, _ in shown],
                textposition="top center",
                hovertext=[f"rank {r}<br>{h}" for (r, _, _), h in zip(shown, _hover(part, "passage"))],
                hovertemplate="%{hovertext}<extra></extra>",
                marker={"size": HIGHLIGHT_SIZE, "symbol": "circle-open", "color": QUERY_COLOR, "line": {"width": 2}},
                name=f"top {len(shown)} passages",
                customdata=[pid for _, pid, _ in shown],
                meta="highlight-passages",
            )
        )
    if qid is not None and str(qid) in q_xy.index:
        row = qs[qs["id"].astype(str) == str(qid)].head(1)
        x, y = (float(v) for v in q_xy.loc[str(qid)])
        fig.add_trace(
            go.Scatter(
                x=[x],
                y=[y],
                mode="markers",
                marker={"size": HIGHLIGHT_SIZE, "symbol": "diamond", "color": QUERY_COLOR,
                        "line": {"width": 2, "color": "white"}},
                text=_hover(row, "question"),
                hovertemplate="%{text}<extra></extra>",
                name="selected question",
                customdata=[str(qid)],
                meta="highlight-query",
            )
        )  # fmt: skip


# The "questions vs passages" view: two clouds in two colours (blue and orange stay apart for colour-blind eyes).
CLOUD_COLORS = {"passage": "#1f77b4", "query": "#e8710a"}
CLOUD_NAMES = {"passage": "passages", "query": "questions"}


def cloud_points(points: pd.DataFrame, queries: dict[str, str], corpus: dict[str, str],
                 sources: dict[str, str] | None = None) -> pd.DataFrame:
    """A clouds projection's points with their hover text (question or passage text, the passage's source)."""
    pts = points.copy()
    is_q = (pts["kind"] == "query").to_numpy()
    ids = pts["id"].astype(str)
    pts["text"] = [queries.get(i, "") if q else corpus.get(i, "") for i, q in zip(ids, is_q)]
    pts["source"] = [None if q else ((sources or {}).get(i) or None) for i, q in zip(ids, is_q)]
    pts["hover"] = hover_column(pts)
    return pts


def frame_ranges(points: pd.DataFrame, pad: float = 0.04) -> tuple[list[float], list[float]]:
    """One x range and one y range holding every point of both spaces (plus ``pad`` of their span): the two
    pictures drawn on the same axes, so where a cloud sits in one compares with the other."""
    x, y = points["x"].astype(float), points["y"].astype(float)
    out = []
    for v in (x, y):
        lo, hi = float(v.min()), float(v.max())
        span = (hi - lo) or 1.0
        out.append([lo - pad * span, hi + pad * span])
    return out[0], out[1]


def clouds_map(points: pd.DataFrame, space: str, title: str | None = None,
               ranges: tuple[list[float], list[float]] | None = None, uirevision: str | None = None) -> go.Figure:
    """One space of a projection as two clouds: passages in blue, questions in orange (drawn on top).

    Args:
        points: rows to draw of both spaces (a clouds projection's points, ``cloud_points``).
        space: "base" or "tuned".
        title: the figure's title.
        ranges: (x range, y range) shared by both pictures (``frame_ranges`` of the frame of both spaces).

    Returns:
        The figure; traces' ``meta`` are "cloud-passage" and "cloud-query", ``customdata`` their ids.
    """
    df = points[points["space"] == space]
    fig = new_figure()
    for kind, size, opacity, symbol in (("passage", POINT_SIZE - 1, 0.45, "circle"),
                                        ("query", POINT_SIZE + 1, 0.85, "diamond")):
        part = df[df["kind"] == kind]
        if not len(part):
            continue
        fig.add_trace(go.Scatter(
            x=part["x"].to_numpy(), y=part["y"].to_numpy(), mode="markers",
            name=f"{CLOUD_NAMES[kind]} ({len(part):,})",
            marker={"size": size, "opacity": opacity, "color": CLOUD_COLORS[kind], "symbol": symbol,
                    "line": {"width": 0}},
            text=_strings(_hover(part, "question" if kind == "query" else "passage")),
            hovertemplate="%{text}<extra></extra>",
            customdata=_strings(part["id"].astype(str)), meta=f"cloud-{kind}",
        ))
    fig.update_layout(
        title=title, height=MAP_HEIGHT, margin={"l": 10, "r": 10, "t": 60 if title else 20, "b": 10},
        legend={"orientation": "h", "yanchor": "top", "y": -0.02, "x": 0, "itemsizing": "constant"},
        hovermode="closest", uirevision=uirevision or f"clouds-{space}",
    )
    axis = {"showticklabels": False, "showgrid": False, "zeroline": False, "title": None}
    x_range, y_range = ranges or frame_ranges(points)
    fig.update_xaxes(**axis, range=x_range, constrain="domain")
    fig.update_yaxes(**axis, range=y_range, scaleanchor="x", scaleratio=1, constrain="domain")
    return fig


def handful(wl: pd.DataFrame, which: str, n: int = 5) -> list[str]:
    """The ``n`` most improved (``which`` "improved") or most worsened ("worsened") questions of a run's
    per-question ranks (``RunView.winners_losers``: sorted by places gained, best first), as str ids."""
    if which not in ("improved", "worsened"):
        raise ValueError(f"which must be 'improved' or 'worsened', not {which!r}")
    moved = wl[wl["movement"] == which]
    picked = moved.head(n) if which == "improved" else moved.iloc[::-1].head(n)
    return [str(q) for q in picked.index]


def handful_sample(points: pd.DataFrame, questions: Collection[str], relevant_docs: dict[str, Collection[str]],
                   limit: int, seed: int = 42, ringed: Collection[str] = (),
                   floor: int = OTHERS_FLOOR) -> pd.DataFrame:
    """What the link view draws for a few chosen questions: those questions, their answer passages (coloured
    by how their question moved; other questions' answers lose that colour), the ``ringed`` passages, and other
    passages (a fixed random sample) up to about ``limit`` points, for context."""
    questions = [str(q) for q in questions]
    answers = {str(d) for q in questions for d in relevant_docs.get(q, ())}
    shown = drawn_points(points, answers | {str(r) for r in ringed}, limit, seed, floor, questions=questions)
    if "answers" in shown.columns and "movement" in shown.columns:  # coloured by the chosen question they answer
        qs = shown[shown["kind"] == "query"]
        movement = dict(zip(qs["id"].astype(str), qs["movement"]))
        colour: dict[str, str] = {}
        for q in questions:
            for d in relevant_docs.get(q, ()):
                colour.setdefault(str(d), movement.get(q) or "same")
        is_p = (shown["kind"] == "passage").to_numpy()
        shown = shown.assign(answers=[colour.get(i) if p else None for i, p in zip(shown["id"].astype(str), is_p)])
    return shown
