"""The one Streamlit-aware helper: cached resources, session-state keys, small shared widgets.

Pages import this module and ``core``; nothing in ``core`` imports Streamlit.

Cached resources are keyed by the workspace root (``$ETL_WORKSPACE``), so one server process
(or one test process switching workspaces) never mixes two workspaces:

* ``get_store()``   the catalog + run folders (thread-safe: one SQLite connection per call);
* ``get_runner()``  the process-wide job registry: every browser tab sees the same running job;
* ``get_run_view(run_id)``  a finished run's eval data, results and vectors (plus the query
  encoders it loads on the first free-text search).

Session state (the keys below) holds only small values: ids, settings, messages.
"""

from __future__ import annotations

import functools
import inspect
import re
import time
from datetime import datetime
from typing import Any

import pandas as pd
import streamlit as st

from core.dataset import DataError, QADataset
from core.store import Store, default_root

# --------------------------------------------------------------------------- session-state keys
# The selections are plain keys (not widget keys): any page may set them at any time, and they
# survive page changes whether or not the sidebar widgets are drawn in a given run.
DATASET_KEY = "etl_dataset_id"  # id of the selected dataset (Train uses it)
RUN_KEY = "etl_run_id"  # id of the selected finished run (Map, Compare)
TRAIN_RUN_KEY = "etl_train_run"  # Train page: id of the run whose live panel is shown
_DATASET_PICKER = "etl_pick_dataset"  # the sidebar selectbox mirroring DATASET_KEY
_RUN_PICKER = "etl_pick_run"  # the sidebar selectbox mirroring RUN_KEY
FLASH_KEY = "etl_flash"  # one message shown after the rerun that follows an action
MAPPINGS_KEY = "etl_mappings"  # Data page: {file name: column mapping chosen by hand}
MAP_PARAMS_KEY = "etl_map_params"  # Map page: UMAP settings last submitted
QUERY_TEXT_KEY = "etl_query_text"  # Compare page: the free-text query box

POLL_SECONDS = 1.0  # live panel refresh while a job runs: smooth enough, cheap for the server
HEADLINE = ["Accuracy@10", "MRR@10", "nDCG@10"]  # the three numbers shown as metric tiles
DELTA_EPS = 0.0005  # changes smaller than this are shown uncoloured (rounding noise at 3 decimals)

METRIC_HELP = (
    "Each cell: score (change vs the base model). **Accuracy@k**: share of questions whose answer "
    "passage is in the top k. **MRR@10**: 1 / rank of the first answer passage (0 beyond 10), averaged. "
    "**nDCG@10**: like MRR but rewards every answer passage by position. **Recall@10**: share of the "
    "answer passages found in the top 10. **MAP@100**: mean average precision over the top 100. "
    "All range 0-1, higher is better. BM25 is keyword search; hybrid fuses tuned + BM25."
)

# --------------------------------------------------------------------------- duration estimate
# Measured on this project's 2-core CPU machines (other work running beside it):
# a full fine-tune epoch over ~700 pairs at 256 tokens takes ~3 minutes -> ~0.26 s per pair,
# roughly proportional to the tokens per text (shorter texts, cheaper steps).
FULL_SECONDS_PER_PAIR = 180 / 700
FULL_REFERENCE_TOKENS = 256
# Encoding ~3,000 passages takes ~2 minutes -> 0.04 s per passage (base and tuned each encode the
# eval corpus; the embedding cache makes the base side free on a second run).
ENCODE_SECONDS_PER_PASSAGE = 120 / 3000
# Loading torch, sentence-transformers and the model: ~15 s cold on 2 cores.
STARTUP_SECONDS = 15
# Adapter / NUDGE fits on cached vectors: a few seconds after encoding.
FAST_FIT_SECONDS = 5
# CachedMNRL computes every embedding twice (once without gradients), ~1/3 more time than MNRL.
LOSS_COST = {"cached_mnrl": 1.35, "matryoshka": 1.05}
# Validation during a full fine-tune searches at most this many passages once per epoch
# (core.tuning.full.VAL_CORPUS_CAP).
VAL_PASSAGES = 400


def estimate_seconds(
    method: str,
    n_pairs: int,
    n_train_passages: int,
    n_eval_passages: int,
    epochs: int = 1,
    max_seq_length: int = 256,
    batch_size: int = 32,
    max_steps: int = -1,
    hard_negatives: int = 0,
    loss: str = "mnrl",
) -> float:
    """A rough duration of a run before it starts (see the constants above for the reasons)."""
    encode_eval = n_eval_passages * ENCODE_SECONDS_PER_PASSAGE
    if method != "full":
        return (
            STARTUP_SECONDS
            + encode_eval
            + n_train_passages * ENCODE_SECONDS_PER_PASSAGE * 0.2
            + FAST_FIT_SECONDS
        )
    pairs_seen = n_pairs * max(epochs, 1)
    if max_steps and max_steps > 0:
        pairs_seen = min(pairs_seen, max_steps * batch_size)
    scale = max(min(max_seq_length, 512), 32) / FULL_REFERENCE_TOKENS
    train = pairs_seen * FULL_SECONDS_PER_PAIR * scale * LOSS_COST.get(loss, 1.0)
    train *= 1 + 0.5 * max(hard_negatives, 0)  # each mined negative is one more passage per pair to encode
    val = min(n_train_passages, VAL_PASSAGES) * ENCODE_SECONDS_PER_PASSAGE * max(epochs, 1)
    mining = n_train_passages * ENCODE_SECONDS_PER_PASSAGE if hard_negatives else 0.0
    return STARTUP_SECONDS + 2 * encode_eval + train + val + mining


def fmt_duration(seconds: float | None) -> str:
    """'12 s', 'about 4 min', 'about 1 h 10 min'; '' for None."""
    if seconds is None:
        return ""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"about {round(s / 60)} min"
    return f"about {s // 3600} h {round((s % 3600) / 60)} min"


# --------------------------------------------------------------------------- cached resources
@st.cache_resource(show_spinner=False)
def _store(root: str) -> Store:
    return Store(root)


def get_store() -> Store:
    """The workspace store ($ETL_WORKSPACE or ./workspace), shared by all sessions."""
    return _store(str(default_root()))


@st.cache_resource(show_spinner=False)
def _runner(root: str):
    from core.tuning.jobs import JobRunner

    return JobRunner(_store(root))


def get_runner():
    """The process-wide ``core.tuning.jobs.JobRunner`` (one job at a time, seen by every tab)."""
    return _runner(str(default_root()))


@st.cache_resource(show_spinner="Adding the sample dataset…")
def _sample(root: str) -> str:
    from core.sample import ensure_sample

    return ensure_sample(_store(root))[0]


def ensure_sample() -> str | None:
    """Save the bundled sample dataset once per workspace; None (with a warning) if it cannot load."""
    try:
        return _sample(str(default_root()))
    except (OSError, DataError) as exc:
        st.sidebar.warning(f"The sample dataset could not be added: {plain(str(exc))}")
        return None


@st.cache_resource(show_spinner=False)
def warm_up_maps() -> None:
    """Compile UMAP's numba code once per server process, in the background, at start-up: the
    first map someone opens then skips that ~30 s (core.insight.projection.warm_up)."""
    import threading

    from core.insight.projection import warm_up

    threading.Thread(target=warm_up, name="umap-warm-up", daemon=True).start()


@st.cache_resource(show_spinner="Opening the run…", max_entries=4)
def _run_view(root: str, run_id: str):
    from core.insight.explore import open_run

    return open_run(_store(root), run_id)


def get_run_view(run_id: str):
    """``core.insight.explore.RunView`` of a finished run, cached (its query encoders load once)."""
    return _run_view(str(default_root()), run_id)


def forget_run(run_id: str) -> None:
    """Drop cached views and frames of a run (after deleting it)."""
    _run_view.clear()
    _winners_losers.clear()


@st.cache_data(show_spinner=False, max_entries=16)
def _winners_losers(root: str, run_id: str) -> pd.DataFrame:
    df = _run_view(root, run_id).winners_losers()
    df.index = df.index.astype(str)  # per_query.csv is read back without dtypes: "7" would be 7
    return df


def winners_losers(run_id: str) -> pd.DataFrame:
    """Per eval question: gold rank before -> after, change and movement (cached per run)."""
    return _winners_losers(str(default_root()), run_id)


@st.cache_data(show_spinner=False, max_entries=8)
def _dataset(root: str, ds_id: str):
    return _store(root).load_dataset(ds_id)


def load_dataset(ds_id: str) -> tuple[QADataset, QADataset | None]:
    """(train, eval or None) of a saved dataset (cached: saved datasets never change)."""
    return _dataset(str(default_root()), ds_id)


@functools.cache
def default_reasons(obj: Any) -> dict[str, str]:
    """{name: reason} from the comments beside defaults where they are declared
    (``epochs: int = 2  # reason`` in a dataclass, ``EPOCHS = 30  # reason`` in a module)."""
    try:
        src = inspect.getsource(obj)
    except (OSError, TypeError):
        return {}
    found = re.finditer(r"^\s*(\w+)\s*(?::[^=\n]+)?=[^#\n]+#\s*(.+)$", src, re.M)
    return {m.group(1): m.group(2).strip() for m in found}


@st.cache_data(show_spinner=False, max_entries=32)
def load_qa(name: str, data: bytes, mapping: dict | None = None):
    """``core.ingest.qafiles.load_qa_file`` cached by file bytes and mapping (reruns do not re-parse).

    Passages longer than what a passage is searched by (``TrainConfig.index_max_seq_length``
    tokens, estimated without loading the model) are reported.
    """
    from core.ingest.qafiles import load_qa_file
    from core.tuning.full import TrainConfig

    return load_qa_file(name, data, mapping=mapping, max_tokens=TrainConfig().index_max_seq_length)


@st.cache_data(show_spinner=False, max_entries=32)
def read_columns(name: str, data: bytes) -> list[str]:
    """Column names of a pair table for the mapping form; [] when the file cannot be parsed."""
    from core.ingest.qafiles import read_columns as _read

    try:
        return _read(name, data)
    except DataError:
        return []


@st.cache_data(show_spinner="Reading documents…", max_entries=8)
def load_documents(files: tuple[tuple[str, bytes], ...]):
    """``core.ingest.documents.load_documents`` cached by the uploaded files."""
    from core.ingest.documents import load_documents as _load

    return _load(list(files))


@st.cache_resource(show_spinner="Loading the base model…")
def base_model():
    """The bundled base model (for the answer-linking embedding fallback)."""
    from core.retrieval.embedding import load_model

    return load_model()


# --------------------------------------------------------------------------- text helpers
_MD_SPECIAL = set("\\`*_[]<>$|~#:")


def plain(text: str) -> str:
    """User text made safe for a Markdown element: special characters escaped (``$`` would start
    LaTeX, ``*`` italics, ``[`` links, ``:`` emoji codes, a leading ``-`` a list), so it shows as typed."""
    out = "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in str(text))
    out = re.sub(r"^(\s*)([-+])", r"\1\\\2", out, flags=re.M)  # a leading "-" or "+" would start a list
    return re.sub(r"^(\s*\d+)\.", r"\1\\.", out, flags=re.M)  # "1." would start a numbered list


def flash(message: str, kind: str = "success") -> None:
    """Remember a message to show once after the next rerun (``show_flash``)."""
    st.session_state[FLASH_KEY] = (kind, message)


def show_flash() -> None:
    item = st.session_state.pop(FLASH_KEY, None)
    if item:
        kind, message = item
        getattr(st, kind)(message)


def show_data_error(exc: DataError, title: str | None = None) -> None:
    """A DataError as a plain error box: the message, then every further problem it lists."""
    head = f"**{plain(title)}**: " if title else ""
    st.error(head + plain(str(exc)))
    rest = [p for p in exc.problems if p != str(exc)]
    if rest:
        with st.expander(f"All {len(exc.problems)} problems found"):
            for p in rest[:50]:
                st.markdown(f"- {plain(p)}")
            if len(rest) > 50:
                st.caption(f"… and {len(rest) - 50} more.")


def hint(text: str) -> None:
    """The one-line 'what to do here' hint at the top of each page."""
    st.caption(f":material/lightbulb: {text}")


# --------------------------------------------------------------------------- selections
def select_dataset(ds_id: str) -> None:
    """Make ``ds_id`` the selected dataset (the sidebar shows it from the next run on)."""
    st.session_state[DATASET_KEY] = ds_id


def select_run(run_id: str) -> None:
    """Make finished run ``run_id`` the one the Map and Compare pages show."""
    st.session_state[RUN_KEY] = run_id


def _current(key: str, options: list[str]) -> str | None:
    """The selection under ``key`` if still offered, else the first option (newest), remembered."""
    cur = st.session_state.get(key)
    if cur not in options:
        cur = options[0] if options else None
        st.session_state[key] = cur
    return cur


def _done_runs(store: Store) -> list[dict]:
    # newest first; a shoot-out has no map or comparison of its own (its method runs do)
    return [r for r in store.list_runs() if r["status"] == "done" and r["method"] != "shootout"]


def selected_dataset() -> str | None:
    """Id of the selected dataset (default: the newest), or None when there is none."""
    return _current(DATASET_KEY, [d["id"] for d in reversed(get_store().list_datasets())])


def selected_run() -> str | None:
    """Id of the selected finished run (default: the newest), or None when there is none."""
    return _current(RUN_KEY, [r["id"] for r in _done_runs(get_store())])


def dataset_names(store: Store) -> dict[str, str]:
    return {d["id"]: d["name"] for d in store.list_datasets()}


def run_label(run: dict, names: dict[str, str]) -> str:
    created = time.strftime("%d %b %H:%M", time.localtime(run["created"]))
    return f"{run.get('name') or run['id']} · {run['method']} · {names.get(run.get('dataset_id'), '?')} · {created}"


def _picker(label: str, key: str, widget_key: str, options: list[str], labels: dict[str, str], **kw) -> None:
    """A selectbox mirroring the plain session key ``key`` (set before drawing, copied back on change)."""
    st.session_state[widget_key] = _current(key, options)

    def copy_back() -> None:
        st.session_state[key] = st.session_state[widget_key]

    st.selectbox(
        label, options, format_func=lambda i: labels.get(i, i), key=widget_key, on_change=copy_back, **kw
    )


def sidebar() -> None:
    """Dataset and run pickers (their values survive page changes) and the running job, if any."""
    store = get_store()
    datasets = list(reversed(store.list_datasets()))  # newest first
    names = {d["id"]: d["name"] for d in datasets}
    _picker(
        "Dataset",
        DATASET_KEY,
        _DATASET_PICKER,
        list(names),
        names,
        placeholder="No dataset yet",
        help="The dataset the Train page uses. Add datasets on the Data page.",
    )
    done = _done_runs(store)
    labels = {r["id"]: run_label(r, names) for r in done}
    _picker(
        "Run to explore",
        RUN_KEY,
        _RUN_PICKER,
        list(labels),
        labels,
        placeholder="No finished run yet",
        help="The finished run the Embedding map and Compare pages show.",
    )
    job = get_runner().active()
    if job is not None:  # static text: the live numbers are on the Train page (the sidebar is not polled)
        st.info(":material/hourglass_top: A run is training. Follow it on the Train page.")


def require_run() -> Any:
    """The selected finished run's view, or an empty-state message and ``st.stop()``."""
    run_id = selected_run()
    if not run_id:
        st.info(
            "No finished run yet: launch one on the **Train** page (the sample dataset takes a few minutes)."
        )
        st.page_link("pages/2_Train.py", label="Go to Train", icon=":material/model_training:")
        st.stop()
    try:
        return get_run_view(run_id)
    except (FileNotFoundError, KeyError) as exc:
        st.warning(f"This run cannot be shown: {plain(str(exc))}")
        st.stop()


# --------------------------------------------------------------------------- shared widgets
def _tile(col, label: str, value: float, base: float) -> None:
    d = value - base
    col.metric(
        label,
        f"{value:.3f}",
        delta=f"{d:+.3f} vs base",
        delta_color="normal" if abs(d) >= DELTA_EPS else "off",
    )


def metric_tiles(results: dict) -> None:
    """Tuned model's headline metrics as tiles, with the change vs the base model (and BM25's MRR@10)."""
    order = results["order"]
    base, tuned = results["systems"][order[0]], results["systems"][order[1]]
    cols = st.columns(len(HEADLINE) + 1)
    for col, m in zip(cols, HEADLINE):
        _tile(col, f"{m} (tuned)", tuned[m], base[m])
    bm25 = results["systems"].get(order[2]) if len(order) > 2 else None
    if bm25:
        _tile(cols[-1], "MRR@10 (BM25, keywords)", bm25["MRR@10"], base["MRR@10"])
    if all(abs(tuned[m] - base[m]) < 1e-9 for m in HEADLINE):
        st.info(
            "The tuned model scores exactly like the base model: on the held-out training questions no setting "
            "beat the starting point, so the method kept it (nothing changed). Try a full fine-tune, more "
            "training pairs, or more epochs."
        )


def metrics_table(results: dict, key: str | None = None, explain: bool = True) -> pd.DataFrame:
    """Systems x metrics, each cell 'score (change vs base)', gains green and losses red.

    Returns the numeric table (systems x metrics) it showed.
    """
    from core.tuning.runs import results_table

    table = results_table(results)
    delta = table - table.iloc[0]
    text = table.map(lambda v: f"{v:.3f}").astype(object)
    for system in table.index[1:]:
        for c in table.columns:
            text.loc[system, c] = f"{table.loc[system, c]:.3f} ({delta.loc[system, c]:+.3f})"

    def colour(col: pd.Series) -> list[str]:
        d = delta[col.name]
        return ["color: #1a7f37" if v > DELTA_EPS else "color: #cf222e" if v < -DELTA_EPS else "" for v in d]

    st.dataframe(text.style.apply(colour, axis=0), width="stretch", key=key)
    if explain:
        st.caption(METRIC_HELP)
    return table


def runs_frame(runs: list[dict], names: dict[str, str]) -> pd.DataFrame:
    """The run history as a display table (newest first)."""
    rows = []
    for r in runs:
        m = r.get("metrics") or {}
        rows.append(
            {
                "name": r.get("name") or r["id"],
                "status": r["status"],
                "method": r["method"],
                "dataset": names.get(r.get("dataset_id"), "(deleted)"),
                "created": datetime.fromtimestamp(r["created"]),
                "Accuracy@10": m.get("Accuracy@10"),
                "MRR@10": m.get("MRR@10"),
                "nDCG@10": m.get("nDCG@10"),
                "id": r["id"],
            }
        )
    return pd.DataFrame(rows)


def datasets_frame(store: Store) -> pd.DataFrame:
    rows = [
        {
            "name": d["name"],
            "train questions": d["n_train"],
            "eval questions": d["n_eval"],
            "passages": d["n_passages"],
            "created": datetime.fromtimestamp(d["created"]),
        }
        for d in reversed(store.list_datasets())
    ]
    return pd.DataFrame(rows)


def combine(parts: list[QADataset]) -> QADataset:
    """Several uploaded files of one role as one dataset (ids re-keyed by content, so a passage
    present in two files is one passage)."""
    from core.dataset import rekey_by_text

    if len(parts) == 1:
        return parts[0]
    out = QADataset({}, {}, {})
    for i, ds in enumerate(parts):
        r = rekey_by_text(ds, f"f{i + 1}-q")
        out.queries.update(r.queries)
        out.corpus.update(r.corpus)
        out.relevant_docs.update(r.relevant_docs)
        out.negatives.update(r.negatives)
        out.sources.update(r.sources)
    return out


def search_table(df: pd.DataFrame, other: str) -> pd.DataFrame:
    """A ``RunView.search`` result for display: ✓ on the gold passage, rank movement vs ``other``."""

    def move(rank: int, other_rank: float) -> str:
        if pd.isna(other_rank):
            return f"new (not in {other}'s top 100)"
        d = int(other_rank) - rank
        return (
            f"▲ {d} (was {int(other_rank)})"
            if d > 0
            else f"▼ {-d} (was {int(other_rank)})"
            if d < 0
            else "same"
        )

    return pd.DataFrame(
        {
            "rank": df["rank"],
            "gold": ["✓" if g else "" for g in df["gold"]],
            "score": df["score"].round(3),
            f"vs {other}": [move(r, o) for r, o in zip(df["rank"], df["other_rank"])],
            "passage": df["passage"],
            "source": df["source"],
        }
    )


def status_progress(label: str):
    """A ``st.status`` box with a progress bar; returns (status, callback(message, fraction))."""
    status = st.status(label, expanded=True)
    bar = status.progress(0.0, text="Starting…")

    def update(message: str, fraction: float) -> None:
        bar.progress(min(max(float(fraction), 0.0), 1.0), text=message)

    return status, update


# --------------------------------------------------------------------------- embedding map
def projection(view, params):
    """The run's 2-D maps for ``params``: loaded from the run folder, else fitted (with progress) and saved.

    The file name comes from ``ProjectionParams.key()``, so each setting is fitted once per run.
    """
    if (view.run_dir / f"projection-{params.key()}.npz").exists():
        try:
            return view.projection(params)
        except (ValueError, OSError):
            pass
    status, update = status_progress(
        "Drawing the maps with UMAP… (the first map after a server start takes about a minute here)"
    )
    with status:
        proj = view.projection(params, progress=update)
    status.update(
        label=f"Maps ready ({proj.seconds:.0f} s; saved with the run)", state="complete", expanded=False
    )
    return proj


def map_points(view, proj) -> pd.DataFrame:
    """Projection points with hover text, passage sources and each question's movement."""
    return view.map_points(proj, winners_losers(view.run_id))


def gold_links(view) -> pd.DataFrame:
    """(query_id, passage_id, movement): each eval question to its first gold passage."""
    return view.gold_links(winners_losers(view.run_id))


def short(text: str, n: int = 90) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def verdict_panel(results: dict, key: str) -> None:
    """The plain-language verdict and the paired intervals/tests behind it."""
    from core.tuning.runs import comparisons_table

    line = results.get("verdict")
    if not line:
        return
    st.info(f":material/gavel: {plain(line)}")
    table = comparisons_table(results)
    with st.expander("Confidence intervals and significance (per question, paired)"):
        st.dataframe(
            table,
            hide_index=True,
            width="stretch",
            key=key,
            column_config={
                "delta": st.column_config.NumberColumn("change", format="%+.3f"),
                "p-value": st.column_config.NumberColumn("p-value", format="%.4f"),
            },
        )
        st.caption(
            "Change: mean per-question difference (second system minus first). 95% CI: paired bootstrap over "
            "questions (2,000 resamples). p-value: paired randomization test (10,000 sign flips). A difference "
            "is called real when p < 0.05 and the interval excludes 0."
        )
