"""Cached resources: the store, the job runner, run views, parsed uploads and the base model.

Cached resources are keyed by the workspace root (``$ETL_WORKSPACE``), so one server process
(or one test process switching workspaces) never mixes two workspaces:

* ``get_store()``   the catalog + run folders (thread-safe: one SQLite connection per call);
* ``get_runner()``  the process-wide job registry: every browser tab sees the same running job;
* ``get_run_view(run_id)``  a finished run's eval data, results and vectors (plus the query
  encoders it loads on the first free-text search).

``st.cache_resource`` holds shared objects (they must be thread-safe); ``st.cache_data`` holds
frames and parsed files.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st

from core.dataset import DataError, QADataset
from core.ingest.chunking import load_documents as chunk_documents
from core.ingest.intake import dismissed_in_store, link_to_documents, read_passages, read_qa_file
from core.ingest.meaning import MeaningTasks
from core.ingest.passages import read_passage_columns as read_passage_file_columns
from core.ingest.qafiles import read_columns as read_qa_columns
from core.insight import explore
from core.insight.clouds import AnswerNearby
from core.insight.projection import ProjectionParams
from core.insight.projection import warm_up as umap_warm_up
from core.retrieval.embedding import DEFAULT_MODEL, EmbeddingCache, load_model
from core.sample import ensure_sample as add_sample
from core.tuning.estimate import estimate_run
from core.tuning.spec import RunSpec, Scoring
from core.workspace.jobs import JobRunner
from core.workspace.store import Store, default_root

logger = logging.getLogger(__name__)


@st.cache_resource(show_spinner=False)
def _store(root: str) -> Store:
    return Store(root)


def get_store() -> Store:
    """The workspace store ($ETL_WORKSPACE or ./workspace), shared by all sessions."""
    return _store(str(default_root()))


@st.cache_resource(show_spinner=False)
def _runner(root: str):
    return JobRunner(_store(root))


def get_runner():
    """The process-wide ``core.workspace.jobs.JobRunner`` (one job at a time, seen by every tab)."""
    return _runner(str(default_root()))


@st.cache_resource(show_spinner="Adding the sample dataset…")
def _sample(root: str) -> str:
    return add_sample(_store(root))[0]


def ensure_sample() -> str | None:
    """Save the bundled sample dataset once per workspace; None (with a warning) if it cannot load."""
    try:
        return _sample(str(default_root()))
    except (OSError, DataError) as exc:
        st.sidebar.warning(f"The sample dataset could not be added: {exc}")
        return None


@st.cache_resource(show_spinner=False)
def warm_up_maps() -> None:
    """Compile UMAP's numba code once per server process, in the background: a map drawn with other settings
    then skips that ~30 s (core.insight.projection.warm_up). Started when someone opens the Embedding map's
    settings (the only way to ask for a new map), not at start-up or when a map is shown: the compiler holds a
    core and Python's lock for half a minute, which made every page opened meanwhile seconds slower."""
    threading.Thread(target=umap_warm_up, name="umap-warm-up", daemon=True).start()


def _import_charts() -> None:
    """What the first chart or styled table of a process pays: plotly's figure classes and their validators,
    the lab's template, pandas' Styler (its HTML templates compile at import)."""
    import plotly.graph_objects as go
    import plotly.io as pio
    from pandas.io.formats.style import Styler  # noqa: F401

    from core.insight.plots import new_figure  # imports plotly: what this warm-up thread is for

    fig = new_figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="markers", text=["a", "b"], customdata=["a", "b"],
                             marker={"size": 6, "symbol": "circle-open", "line": {"width": 1}}, name="x"))
    fig.add_trace(go.Scatter(x=[0, 1, None], y=[0, 1, None], mode="lines", hoverinfo="skip", yaxis="y2"))
    fig.add_trace(go.Bar(x=["a"], y=[1.0], error_y={"type": "data", "array": [0.1]}, text=["1"]))
    fig.update_layout(legend={"orientation": "h"}, xaxis={"title": {"text": "x"}}, yaxis2={"overlaying": "y"})
    pio.to_json(fig.to_dict(), validate=False)


@st.cache_resource(show_spinner=False)
def warm_up() -> None:
    """Load the chart and table libraries once per server process, in a background thread at start-up
    (about a second of imports that the first Map, Compare or Train page would otherwise pay)."""
    threading.Thread(target=_import_charts, name="charts-warm-up", daemon=True).start()


@st.cache_resource(show_spinner=False, max_entries=4)
def _run_view(root: str, run_id: str):
    return explore.open_run(_store(root), run_id)


def get_run_view(run_id: str):
    """``core.insight.explore.RunView`` of a finished run, cached (its query encoders load once)."""
    with st.spinner("Opening the run…"):
        return _run_view(str(default_root()), run_id)


_PREFETCHED: set[str] = set()
_PREFETCH_LOCK = threading.Lock()


def _once(key: str) -> bool:
    """True the first time ``key`` is asked for in this process (a prefetch starts once)."""
    with _PREFETCH_LOCK:
        if key in _PREFETCHED:
            return False
        _PREFETCHED.add(key)
        return True


def prefetch(dataset_id: str | None, run_id: str | None) -> None:
    """Load the selected dataset, and open the selected run with its saved default map and that map's two
    figures, in a background thread, once per dataset / run and process, so the first Train, Questions, Map or
    Compare page finds them ready. At 100k passages that is 1-2 s of reading JSON and building figures the
    first page would otherwise wait for. Called by app.py on every page; a no-op once started."""
    root = str(default_root())
    todo = []
    if dataset_id and _once(f"dataset:{dataset_id}"):
        todo.append(lambda: load_dataset(dataset_id))
    if run_id and _once(f"run:{run_id}"):
        todo.append(lambda: _prefetch_run(root, run_id))
    if not todo:
        return

    def work() -> None:
        for step in todo:
            try:
                step()
            except Exception:  # noqa: BLE001 - what cannot load says so on its page, not here
                logger.debug("prefetch failed", exc_info=True)

    threading.Thread(target=work, name="prefetch", daemon=True).start()


def _prefetch_run(root: str, run_id: str) -> None:
    view = _run_view(root, run_id)  # the cached function: the page's own call returns the same view
    params = ProjectionParams()
    if (view.run_dir / explore.CLOUDS_FILE.format(key=params.key())).exists():  # saved only: never fit UMAP here
        cloud_figures(view, explore.clouds_projection(view, params), AnswerNearby.of(view.results))  # shown first


def forget_run(run_id: str) -> None:
    """Drop cached views and frames of a run (after deleting it)."""
    _run_view.clear()
    _figure.clear()
    _map_points.clear()
    _winners_losers.clear()
    _by_dimension.clear()


@st.cache_data(show_spinner=False, max_entries=16)
def _winners_losers(root: str, run_id: str) -> pd.DataFrame:
    df = _run_view(root, run_id).winners_losers()
    df.index = df.index.astype(str)  # per_query.csv is read back without dtypes: "7" would be 7
    return df


@st.cache_data(show_spinner="Scoring smaller vectors…", max_entries=16)
def _by_dimension(root: str, run_id: str) -> pd.DataFrame:
    return _run_view(root, run_id).by_dimension()


def quality_by_dimension(run_id: str) -> pd.DataFrame:
    """``core.insight.matryoshka.quality_by_dimension`` of a run (cached; no encoding)."""
    return _by_dimension(str(default_root()), run_id)


def winners_losers(run_id: str) -> pd.DataFrame:
    """Per eval question: gold rank before -> after, change and movement (cached per run)."""
    return _winners_losers(str(default_root()), run_id)


@st.cache_data(show_spinner=False, max_entries=64)
def _estimate(root: str, ds_id: str, updated: float | None, spec_json: str, _train, _ev):
    return estimate_run(RunSpec.from_dict(json.loads(spec_json)), _train, _ev)


def estimate(ds_id: str, spec, train: QADataset, ev: QADataset):
    """``core.tuning.estimate.estimate_run`` of ``spec`` on a saved dataset's (train, eval), once per dataset
    version and settings: it counts the tokens of every passage, a second on 100k passages."""
    updated = get_store().get_dataset(ds_id).get("updated")
    return _estimate(str(default_root()), ds_id, updated, json.dumps(spec.to_dict(), sort_keys=True), train, ev)


@st.cache_resource(show_spinner=False, max_entries=8)
def _dataset(root: str, ds_id: str, updated: float | None):
    return _store(root).load_dataset(ds_id)


def load_dataset(ds_id: str) -> tuple[QADataset, QADataset | None]:
    """(train, eval or None) of a saved dataset (cached until the dataset is updated). Shared by every rerun
    and tab, not copied (a copy of 100k passages cost a few tenths of a second each rerun): read it, never
    change it; changes go through the store, which updates the dataset and so the cache key."""
    return _dataset(str(default_root()), ds_id, get_store().get_dataset(ds_id).get("updated"))


@st.cache_data(show_spinner=False, max_entries=32)
def load_qa(name: str, data: bytes, mapping: dict | None = None):
    """``core.ingest.intake.read_qa_file`` cached by file bytes and mapping (reruns do not re-parse).

    Passages longer than what a passage is searched by (``Scoring.passage_tokens`` tokens,
    estimated without loading the model) are reported.
    """
    return read_qa_file(name, data, mapping=mapping, max_tokens=Scoring().passage_tokens)


@st.cache_data(show_spinner=False, max_entries=32)
def read_columns(name: str, data: bytes) -> list[str]:
    """Column names of a pair table for the mapping form; [] when the file cannot be parsed."""
    try:
        return read_qa_columns(name, data)
    except DataError:
        return []


@st.cache_data(show_spinner="Reading documents…", max_entries=8)
def load_documents(files: tuple[tuple[str, bytes], ...]):
    """``core.ingest.chunking.load_documents`` cached by the uploaded files (bad files are named, not fatal)."""
    return chunk_documents(list(files))


@st.cache_resource(show_spinner="Loading the base model…")
def base_model():
    """The bundled base model (for the answer-linking embedding fallback)."""
    return load_model()


def base_model_name() -> str:
    """The name of what ``base_model()`` loads, without loading it (a key for cached work done with it)."""
    return DEFAULT_MODEL


@st.cache_data(show_spinner="Linking answers to passages…", max_entries=8)
def link_answers(name: str, data: bytes, mapping: dict | None, chunks_key: str, _chunks):
    """``core.ingest.intake.link_to_documents`` without a model (exact, normalised, BM25), cached by the
    question file, its mapping and ``chunks_key`` (the chunks' ids, which hash their files and texts)."""
    return link_to_documents(load_qa(name, data, mapping), _chunks)


@st.cache_resource(show_spinner=False)
def meaning_tasks():
    """The process-wide ``core.ingest.meaning.MeaningTasks``: matching answers by meaning in the background,
    one task per (answers, passages, model), shared by every rerun and tab."""
    return MeaningTasks()


@st.cache_resource(show_spinner=False)
def _embedding_cache(root: str):
    return EmbeddingCache(_store(root).cache_path)


def embedding_cache():
    """The workspace's ``core.retrieval.embedding.EmbeddingCache`` (thread-safe; shared)."""
    return _embedding_cache(str(default_root()))


@st.cache_data(show_spinner="Reading passages…", max_entries=16)
def load_passages(name: str, data: bytes, mapping: dict | None = None):
    """``core.ingest.intake.read_passages`` cached by file bytes and mapping (passages longer than a passage
    is searched by are reported, tokens estimated)."""
    return read_passages(name, data, mapping=mapping, max_tokens=Scoring().passage_tokens)


@st.cache_data(show_spinner=False, max_entries=16)
def read_passage_columns(name: str, data: bytes) -> list[str]:
    """Column names of a passages file for the mapping form; [] when the file cannot be parsed."""
    try:
        return read_passage_file_columns(name, data)
    except DataError:
        return []


@st.cache_data(show_spinner=False, max_entries=4)
def _dismissed(root: str, versions: tuple) -> set:
    return dismissed_in_store(_store(root))


def dismissed_flags() -> set:
    """Near duplicates dismissed in any saved dataset (``core.ingest.intake.dismissed_in_store``), cached until
    a dataset is added, changed or deleted."""
    versions = tuple((d["id"], d.get("updated")) for d in get_store().list_datasets())
    return _dismissed(str(default_root()), versions)



@st.cache_resource(show_spinner=False, max_entries=64)
def _figure(root: str, run_id: str, kind: str, key: tuple, _build: Callable[[], Any]):
    return _build()


def figure(run_id: str, kind: str, key: tuple, build: Callable[[], Any]):
    """A run's chart built once per (run, chart, settings) and shared by every rerun and tab: a map or scatter of
    thousands of points takes a second or more to build, every time a page opens. The figure is not to be
    changed after (``build`` sets its layout)."""
    return _figure(str(default_root()), run_id, kind, key, build)


@st.cache_resource(show_spinner=False, max_entries=8)
def _map_points(root: str, run_id: str, params_key: str, _view, _proj) -> pd.DataFrame:
    return _view.map_points(_proj, winners_losers(run_id))


def map_points(view, proj) -> pd.DataFrame:
    """Projection points with hover text, passage sources and each question's movement; built once per run and
    map settings (not to be changed by the caller)."""
    return _map_points(str(default_root()), view.run_id, proj.params.key(), view, proj)


def map_figures(view, proj, n_questions: int, mode: str = "answer", qid: str | None = None, k: int = 5,
                questions: tuple[str, ...] | None = None):
    """The Embedding map page's two figures (base, tuned) for a projection and the page's choices, and what they
    drew: ``(figures, shown points, drawn question ids)``. Built once per run and choices (``figure``); the page
    and the prefetch of the selected run share them.

    Args:
        n_questions: questions drawn at most (``map_questions``; 0: all).
        mode: how passages are coloured (``COLOR_MODES`` or "file:<name>").
        qid: the highlighted question; ``k``: its top passages ringed.
        questions: draw only these questions with their links (``handful_sample``: a chosen few), not a sample.
    """
    from core.insight.map_figure import embedding_map, handful_sample, map_sample  # plotly: not at start-up

    points, links = map_points(view, proj), gold_links(view)
    params = proj.params

    def highlight(space: str) -> dict | None:
        if qid is None:
            return None
        ranked = view.rankings.get(space, {}).get(qid)
        return {"query_id": qid, "top_ids": ranked[0][:k] if ranked else []}

    ringed = {d for space in ("base", "tuned") for d in ((highlight(space) or {}).get("top_ids") or [])}
    if questions is not None:
        drawn_q = list(dict.fromkeys([*questions, *([qid] if qid is not None else [])]))
        shown = handful_sample(points, drawn_q, view.eval.relevant_docs, params.sample, params.seed, ringed)
        links = links[links["query_id"].astype(str).isin(drawn_q)]
    else:
        shown, drawn_q = map_sample(points, view.query_ids, view.eval.relevant_docs, params.sample, params.seed,
                                    n_questions, qid, ringed)
    titles = {"base": "Before: base model", "tuned": f"After: {view.results.systems['tuned'].name}"}

    def build(space: str):
        fig = embedding_map(shown, space, links, highlight(space), title=titles[space], color_by=mode)
        # Two maps side by side: the legend goes below, so each map keeps the column's full width.
        fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.02, "x": 0}, height=640)
        return fig

    figures = {space: figure(view.run_id, "map", (params.key(), n_questions, space, titles[space], mode, qid, k,
                                                  questions),
                             lambda space=space: build(space)) for space in ("base", "tuned")}
    return figures, shown, drawn_q


def cloud_figures(view, proj, nearby) -> dict:
    """The "questions vs passages" view's two figures (base, tuned) of a clouds projection
    (``core.insight.explore.clouds_projection``): one frame, the same axes ranges, each titled with its share of
    questions finding their answer (``nearby``: ``core.insight.clouds.AnswerNearby``). Built once per run."""
    from core.insight.map_figure import cloud_points, clouds_map, frame_ranges  # plotly: not at start-up

    titles = {"base": f"Before: base model<br><sup>{nearby.title('base')}</sup>",
              "tuned": f"After: {view.results.systems['tuned'].name}<br><sup>{nearby.title('tuned')}</sup>"}

    def build(space: str):
        points = cloud_points(proj.points, view.eval.queries, view.eval.corpus, view.eval.sources)
        return clouds_map(points, space, titles[space], frame_ranges(points))

    return {space: figure(view.run_id, "clouds", (proj.params.key(), space, titles[space]),
                          lambda space=space: build(space)) for space in ("base", "tuned")}


def gold_links(view) -> pd.DataFrame:
    """(query_id, passage_id, movement): each eval question to its first gold passage."""
    return view.gold_links(winners_losers(view.run_id))

