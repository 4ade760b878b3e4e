"""The Embedding map page's panels: the UMAP settings form, and the run's maps loaded or fitted (with progress).

The figures themselves are built in ``ui.resources.map_figures`` (the prefetch of the selected run shares them).
"""

from __future__ import annotations

import streamlit as st

from core.insight.map_figure import MAP_QUESTIONS
from ui import state, widgets

QUESTIONS_KEY = "etl_map_questions"  # questions a map draws (0: all), kept apart from the projection's settings


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
