"""The Embedding map page's panels: the UMAP settings form, the run's maps loaded or fitted (with progress), the
"questions vs passages" view (the default) and the link view of a chosen question or a handful.

The figures themselves are built in ``ui.resources`` (``cloud_figures``, ``map_figures``; the prefetch of the
selected run shares them).
"""

from __future__ import annotations

import streamlit as st

from core.insight import explore
from core.insight.clouds import AnswerNearby
from core.insight.explore import fmt_rank, ranks_table
from core.insight.map_figure import COLOR_MODES, MAP_QUESTIONS, handful
from ui import resources as res
from ui import state, widgets

QUESTIONS_KEY = "etl_map_questions"  # questions a map draws (0: all), kept apart from the projection's settings
VIEW_KEY = "etl_map_view"
VIEWS = {"clouds": "Questions vs passages", "links": "Links: a few questions to their answers"}
LINKS_KEY = "etl_map_links"
HANDFUL = 5  # questions the link view draws at once (most improved / most worsened)
LINK_CHOICES = {"improved": f"the {HANDFUL} most improved", "worsened": f"the {HANDFUL} most worsened",
                "one": "one question"}


def projection(view, params):
    """The run's 2-D maps for ``params``: loaded from the run folder, else fitted (with progress) and saved.

    The file name comes from ``ProjectionParams.key()``, so each setting is fitted once per run.
    """
    if (view.run_dir / f"projection-{params.key()}.npz").exists():
        try:
            return view.projection(params)
        except (ValueError, OSError):
            pass
    status, update = widgets.status_progress(
        "Drawing the maps with UMAP… (the first map after a server start takes about a minute here)"
    )
    with status:
        proj = view.projection(params, progress=update)
    status.update(
        label=f"Maps ready ({proj.seconds:.0f} s; saved with the run)", state="complete", expanded=False
    )
    return proj


def settings_form(saved: dict) -> None:
    """UMAP settings; 'Redraw maps' keeps them in the session and reruns."""
    with st.form("etl_map_form", border=False):
        c = st.columns(4)
        n_neighbors = c[0].slider(
            "Neighbours",
            2,
            100,
            saved["n_neighbors"],
            help="How many neighbours shape each point's place: small values show local "
            "clusters, large values the overall layout. 15 is UMAP's default.",
        )
        min_dist = c[1].slider(
            "Minimum distance",
            0.0,
            0.99,
            float(saved["min_dist"]),
            0.01,
            help="How tightly points may pack: small values make topics clump visibly.",
        )
        sample = c[2].number_input(
            "Points on the map",
            100,
            10_000,
            saved["sample"],
            100,
            help="Points per map (and passages the UMAP layout is fitted on). The questions drawn (see Questions on "
            "the map), their answer passages and the highlighted question's top passages are always drawn; other "
            "passages, a fixed random sample, fill the map up to this many (at least 300 of them), less the points "
            "of questions left out. ~1,500 stays quick.",
        )
        seed = c[3].number_input("Seed", 0, 100_000, saved["seed"], help="Same seed and settings, same map.")
        questions = c[2].number_input(
            "Questions on the map", 0, 100_000, st.session_state.get(QUESTIONS_KEY, MAP_QUESTIONS), 100,
            help=f"Evaluation questions drawn (0: all), with their answer passages: above this many, a fixed random "
            f"sample, and the map draws fewer points (other passages do not take their place). {MAP_QUESTIONS} "
            "keeps the page quick; the scores below always count every question.",
        )
        if st.form_submit_button("Redraw maps"):
            st.session_state[QUESTIONS_KEY] = int(questions)
            st.session_state[state.MAP_PARAMS_KEY] = {
                "n_neighbors": int(n_neighbors),
                "min_dist": float(min_dist),
                "sample": int(sample),
                "seed": int(seed),
            }
            st.rerun()


@st.cache_data(show_spinner=False, max_entries=16)
def _unchanged(run_dir: str, _view) -> str | None:
    return explore.unchanged_note(_view)


def unchanged_note(view) -> str | None:
    """``core.insight.explore.unchanged_note`` of the run, once per run."""
    return _unchanged(str(view.run_dir), view)


def clouds_projection(view, params):
    """The run's "questions vs passages" pictures (``core.insight.explore.clouds_projection``): read from the run
    folder, else fitted (with progress) and saved."""
    if (view.run_dir / explore.CLOUDS_FILE.format(key=params.key())).exists():
        try:
            return explore.clouds_projection(view, params)
        except (ValueError, OSError):
            pass
    status, update = widgets.status_progress(
        "Drawing questions and passages with UMAP… (the first map after a server start takes about a minute here)"
    )
    with status:
        proj = explore.clouds_projection(view, params, progress=update)
    status.update(label=f"Pictures ready ({proj.seconds:.0f} s; saved with the run)", state="complete",
                  expanded=False)
    return proj


def clouds_view(view, params, nearby: AnswerNearby) -> None:
    """The default view: the number, its one line, and the two clouds before and after on the same axes."""
    left, right = st.columns([1, 2])
    delta = None if nearby.unchanged or not nearby.points else f"{nearby.points:+d} points vs base ({nearby.base:.0%})"
    left.metric(nearby.label(), f"{nearby.tuned:.0%}", delta=delta, help=nearby.meaning())
    right.markdown(f"**{nearby.headline()}**")
    right.caption(nearby.meaning())
    try:
        proj = clouds_projection(view, params)
    except ValueError as exc:
        st.warning(f"No pictures for this run: {widgets.plain(str(exc))}")
        return
    figures = res.cloud_figures(view, proj, nearby)
    a, b = st.columns(2)
    a.plotly_chart(figures["base"], key="etl_clouds_base")
    b.plotly_chart(figures["tuned"], key="etl_clouds_tuned")
    pts = proj.points[proj.points["space"] == "base"]
    n_q, n_p = int((pts["kind"] == "query").sum()), int((pts["kind"] == "passage").sum())
    q_all, p_all = len(view.query_ids), len(view.passage_ids)
    st.caption(
        f"Orange: {'all ' if n_q == q_all else ''}{n_q:,} of the {q_all:,} evaluation questions"
        f"{'' if n_q == q_all else ' (a fixed random sample)'}; blue: "
        + (f"all {p_all:,} passages" if n_p == p_all else f"{n_p:,} of the {p_all:,} passages, a uniform random sample")
        + f". One UMAP layout ({params.key()}) of both models' vectors, the two pictures on the same axes. Questions "
        "far from every passage form a cloud of their own; tuning that brings them to their answers mixes the two "
        "clouds. UMAP keeps neighbours, not distances: read the number above, measured on every passage."
    )


def links_view(view, params) -> None:
    """The link view: each chosen question joined to its answer before and after, for one question or a handful
    (the most improved or most worsened, from the run's per-question ranks)."""
    try:
        proj = projection(view, params)
    except ValueError as exc:
        st.warning(f"No map for this run: {widgets.plain(str(exc))}")
        return
    wl = res.winners_losers(view.run_id)
    pick = st.radio("Links for", list(LINK_CHOICES), format_func=LINK_CHOICES.get, key=LINKS_KEY, horizontal=True)
    qid, k = None, 5
    if pick == "one":
        c1, c2 = st.columns([3, 1])
        qid = c1.selectbox("Question", view.query_ids, format_func=lambda q: widgets.short(view.eval.queries[q]),
                           key="etl_map_query")
        k = c2.slider("Top passages ringed", 1, proj.ring_depth, min(5, proj.ring_depth), key="etl_map_k",
                      help=f"The question's top passages (up to {proj.ring_depth}) in each model, numbered by rank.")
        chosen: tuple[str, ...] = (str(qid),)
    else:
        chosen = tuple(handful(wl, pick, HANDFUL))
        if not chosen:
            st.info(f"No question's answer moved {'up' if pick == 'improved' else 'down'} the ranking with tuning: "
                    "there is nothing to link here. Pick one question instead.")
            return
    points = res.map_points(view, proj)
    files = sorted({f for f in points.loc[points["kind"] == "passage", "file"].dropna()})
    modes = {**COLOR_MODES, **({"file:": "one document"} if files else {})}
    c3, c4 = st.columns([2, 1])
    mode = c3.radio("Colour passages by", list(modes), format_func=modes.get, key="etl_map_color", horizontal=True)
    if mode == "file:":
        mode += c4.selectbox("Document", files, key="etl_map_file")
    figures, shown, _ = res.map_figures(view, proj, 0, mode, qid, k, questions=chosen)
    left, right = st.columns(2)
    left.plotly_chart(figures["base"], key="etl_map_base")
    right.plotly_chart(figures["tuned"], key="etl_map_tuned")
    n_p = int((shown["kind"] == "passage").sum()) // 2
    st.caption(
        f"◇ the chosen question{'s' if len(chosen) > 1 else ''}; a line joins each to its answer passage (green: "
        "tuning moved the answer up the ranking, red: down, grey: no change)"
        + ("; ringed and numbered: its top passages in each model" if qid is not None else "")
        + f". Grey dots: other passages for context ({n_p:,} of {len(view.passage_ids):,} drawn). UMAP "
        f"{params.key()}; the tuned map is rotated and scaled onto the base one, so positions compare."
    )
    if qid is not None and str(qid) in wl.index:
        row = wl.loc[str(qid)]
        st.markdown(f"Answer passage rank: **{fmt_rank(row['rank before'])} → {fmt_rank(row['rank after'])}** "
                    f"({row['movement']})")
    else:
        st.dataframe(ranks_table(wl.loc[[q for q in chosen if q in wl.index]]), hide_index=True)
