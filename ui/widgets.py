"""Widgets every page shares: escaping user text, hints, errors, the sidebar, metric tiles and tables,
the verdict panel, a progress box, a run's polled panel. Everything here draws; logic lives in ``core``.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st

from core.dataset import DataError
from core.generate.pairs import origin_warning as warning_text
from core.insight.history import dataset_choices, done_runs, run_label
from core.insight.unchanged import base_unchanged
from core.retrieval.results import RunResults
from core.retrieval.stats import SMALL_N, TYPICAL_DELTA_SD, fmt_p, signed
from core.workspace.jobs import fmt_duration, history_from_files
from ui import state
from ui.resources import get_run_view, get_runner, get_store

POLL_SECONDS = 1.0  # live panel refresh while a job runs: smooth enough, cheap for the server
STATUS_ICON = {
    "queued": ":material/hourglass_empty:",
    "running": ":material/sync:",
    "done": ":green[:material/check_circle:]",
    "failed": ":red[:material/error:]",
    "cancelled": ":material/stop_circle:",
    "interrupted": ":orange[:material/warning:]",
}
HEADLINE = ["Accuracy@10", "MRR@10", "nDCG@10"]  # the three numbers shown as metric tiles

METRIC_HELP = (
    "Each cell: score (change vs the base model). **Accuracy@k**: share of questions whose answer "
    "passage is in the top k. **MRR@10**: 1 / rank of the first answer passage (0 beyond 10), averaged. "
    "**nDCG@10**: like MRR but rewards every answer passage by position. **Recall@10**: share of the "
    "answer passages found in the top 10. **MAP@100**: mean average precision over the top 100. "
    "All range 0-1, higher is better. BM25 is keyword search; each hybrid fuses one model (base or tuned) with BM25."
)


# --------------------------------------------------------------------------- text helpers
_MD_SPECIAL = set("\\`*_[]<>$|~#:")


def plain(text: str) -> str:
    """User text made safe for a Markdown element: special characters escaped (``$`` would start
    LaTeX, ``*`` italics, ``[`` links, ``:`` emoji codes, a leading ``-`` a list), so it shows as typed."""
    out = "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in str(text))
    out = re.sub(r"^(\s*)([-+])", r"\1\\\2", out, flags=re.M)  # a leading "-" or "+" would start a list
    return re.sub(r"^(\s*\d+)\.", r"\1\\.", out, flags=re.M)  # "1." would start a numbered list



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



def _picker(label: str, key: str, widget_key: str, options: list[str], labels: dict[str, str], **kw) -> None:
    """A selectbox mirroring the plain session key ``key`` (set before drawing, copied back on change)."""
    st.session_state[widget_key] = state.current(key, options)

    def copy_back() -> None:
        st.session_state[key] = st.session_state[widget_key]

    st.selectbox(
        label, options, format_func=lambda i: labels.get(i, i), key=widget_key, on_change=copy_back, **kw
    )


def sidebar() -> None:
    """Dataset and run pickers (their values survive page changes) and the running job, if any."""
    store = get_store()
    datasets = dataset_choices(store)  # the user's own, newest first; the sample last
    names = {d["id"]: d["name"] for d in datasets}
    _picker(
        "Dataset",
        state.DATASET_KEY,
        state.DATASET_PICKER,
        list(names),
        names,
        placeholder="No dataset yet",
        help="The dataset the Train page uses. Add datasets on the Data page.",
    )
    done = done_runs(store)
    labels = {r["id"]: run_label(r, names) for r in done}
    _picker(
        "Run to explore",
        state.RUN_KEY,
        state.RUN_PICKER,
        list(labels),
        labels,
        placeholder="No finished run yet",
        help="The finished run the Embedding map and Compare pages show.",
    )
    job = get_runner().active()
    if job is not None:  # static text: the live numbers are on the Train page (the sidebar is not polled)
        what = "Questions are being generated (Questions page)" if get_store().get_run(job.run_id)["method"] == \
            "generate" else "A run is training. Follow it on the Train page"
        st.info(f":material/hourglass_top: {what}.")


PRELOADED_KEY = "etl_preloaded"  # session flag: the chart and table code was asked for at this session's start
_PRELOAD_CSS = ("<style>.st-key-etl_preload{position:absolute;left:-10000px;width:320px;height:1px;overflow:hidden;"
                "opacity:0;pointer-events:none}</style>")


def preload_components() -> None:
    """On a session's first page only: a tiny chart and table, drawn off-screen, so the browser loads and
    starts the chart (plotly.js) and table code while the first page is read. Else the first page with a chart
    paid it: 2.5-3 s of the browser's main thread in headless Chromium on this machine, once per tab."""
    if st.session_state.get(PRELOADED_KEY):
        return
    st.session_state[PRELOADED_KEY] = True
    import plotly.graph_objects as go

    with st.sidebar.container(key="etl_preload"):
        st.html(_PRELOAD_CSS)
        st.plotly_chart(go.Figure(go.Scatter(x=[0, 1], y=[0, 1])), key="etl_preload_chart", height=100)
        st.dataframe(pd.DataFrame({"a": [1]}), key="etl_preload_table", height=80)


def require_run() -> Any:
    """The selected finished run's view, or an empty-state message and ``st.stop()``."""
    run_id = state.selected_run()
    if not run_id:
        st.info(
            "No finished run yet: launch one on the **Train** page (the sample dataset takes a few minutes)."
        )
        st.page_link("pages/3_Train.py", label="Go to Train", icon=":material/model_training:")
        st.stop()
    try:
        return get_run_view(run_id)
    except (FileNotFoundError, KeyError) as exc:
        st.warning(f"This run cannot be shown: {plain(str(exc))}")
        st.stop()


# --------------------------------------------------------------------------- shared widgets
def metric_delta(change: float, fmt: str = "+.3f", suffix: str = " vs base", inverse: bool = False,
                 coloured: bool = True) -> dict[str, Any]:
    """``st.metric``'s delta arguments for a change, by the one rule every metric card follows: a change that
    shows as zero once rounded to ``fmt`` is neutral (no arrow, no colour, no sign: "0.000 vs base"), so "no
    change" is never drawn as a gain or a loss.

    Args:
        change: The change (after minus before), in the unit shown.
        fmt: Its format, with the sign (``"+.3f"``, ``"+.0f"``, ``"+g"``).
        suffix: Said after the number.
        inverse: Lower is better (a rank): a fall is green.
        coloured: False keeps a non-zero change grey (e.g. not significant); its arrow still shows the direction.

    Returns:
        ``delta``, ``delta_color`` and ``delta_arrow`` for ``st.metric(..., **metric_delta(...))``.
    """
    text = f"{change:{fmt}}"
    if float(text) == 0:  # "+0.000", "-0.000", "+0": rounding noise, or no change at all
        return {"delta": f"{0.0:{fmt.replace('+', '')}}{suffix}", "delta_color": "off", "delta_arrow": "off"}
    return {"delta": text + suffix, "delta_color": ("inverse" if inverse else "normal") if coloured else "off",
            "delta_arrow": "auto"}


def time_left(snap: Any) -> str:
    """A job's time left in words for a progress line: "about 13 min left", "timing the first passages to
    estimate the time left" while the rate is still being measured, "" when the phase has no count."""
    if snap.eta_seconds is not None:
        return f"{fmt_duration(snap.eta_seconds)} left"
    return f"timing the first {snap.unit} to estimate the time left" if snap.total else ""


def unchanged_note(run_dir: Any, what: str = "") -> bool:
    """Under a chart or the scores of a run that kept the base model (``core.insight.unchanged``): say so there,
    so a falling loss curve or a table of scores is not read as a changed model. True when it said so.

    Args:
        run_dir: The run's folder.
        what: What the note stands beside ("This loss curve", "These scores"), said first.
    """
    why = base_unchanged(run_dir)
    if why:
        head = f"{what}: " if what else ""
        st.warning(f"{head}{plain(why)}", icon=":material/info:")
    return bool(why)


def _tile(col, label: str, value: float, base: float) -> None:
    col.metric(label, f"{value:.3f}", **metric_delta(value - base))


def pipeline_headline(results: RunResults) -> None:
    """What the lab answers first: the best retriever with tuning against the best without, the change
    with its interval and p, and which to deploy. Older runs (no pipeline comparison) show nothing."""
    head = results.headline_delta
    if head is None:
        return
    st.subheader("Best retriever with tuning vs best without")
    u, t = results.systems[head.a], results.systems[head.b]
    cols = st.columns([2, 2, 3])
    cols[0].metric(f"Without tuning: {u.name}", f"{head.mean_a:.3f}", help="nDCG@10 on the evaluation questions. "
                   + results.pipelines[head.a].describe())
    cols[1].metric(f"With tuning: {t.name}", f"{head.mean_b:.3f}",
                   **metric_delta(head.delta, suffix="" if head.significant else " (not significant)",
                                  coloured=head.significant),
                   help="nDCG@10 on the evaluation questions. " + results.pipelines[head.b].describe())
    deploy = results.recommended
    cols[2].metric("Deploy", results.systems[deploy].name, help=results.pipelines[deploy].describe())
    st.caption(
        f"Change {signed(head.delta)} nDCG@10, 95% interval [{signed(head.low)}, {signed(head.high)}], "
        f"{plain(fmt_p(head.p_value))}, {head.n:,} questions; {plain(results.best.describe())}. "
        "Every pipeline searched the same passages for the same questions, and both hybrids chose their fusion "
        "the same way."
    )
    if head.n < SMALL_N:
        spread = (f"at the spread of the per-question change measured here ({head.sd:.2f}; the Questions page "
                  f"assumes a typical {TYPICAL_DELTA_SD:.2f} before any run)" if head.sd else "at a typical spread")
        st.warning(f"With {head.n} evaluation questions a change smaller than about {head.detectable:.2f} nDCG@10 "
                   f"cannot be told from chance ({spread}): label more questions to see smaller ones.",
                   icon=":material/info:")
    st.markdown("**Dense alone: tuned model vs base model**")


def metric_tiles(results: RunResults, said_unchanged: bool | None = None) -> None:
    """The tuned system's headline metrics as tiles, with the change vs the base model (and BM25's).

    Args:
        said_unchanged: What ``unchanged_note`` said: True, the run kept the base model (said there, not again);
            False, the model changed (equal scores then mean equal rankings, not a kept model); None, not asked.
    """
    base, tuned = results.systems["base"].metrics, results.systems["tuned"].metrics
    cols = st.columns(len(HEADLINE) + 1)
    for col, m in zip(cols, HEADLINE):
        _tile(col, f"{m} (tuned)", tuned[m], base[m])
    if "bm25" in results.systems:
        _tile(cols[-1], "nDCG@10 (BM25, keywords)", results.systems["bm25"].metrics["nDCG@10"], base["nDCG@10"])
    if said_unchanged is False and all(abs(tuned[m] - base[m]) < 1e-9 for m in HEADLINE):
        st.info("The tuned model scores exactly like the base model on these evaluation questions: tuning changed "
                "the model, not its rankings here. Try more training pairs or epochs, or label harder questions.")
    elif said_unchanged is None and all(abs(tuned[m] - base[m]) < 1e-9 for m in HEADLINE):
        st.info(
            "The tuned model scores exactly like the base model: on the held-out training questions no setting "
            "beat the starting point, so the method kept it (nothing changed). Try a full fine-tune, more "
            "training pairs, or more epochs."
        )


def metrics_table(results: RunResults, key: str | None = None, explain: bool = True,
                  lead: str | None = None) -> pd.DataFrame:
    """Systems x metrics, each cell 'score (change vs base)', gains green and losses red, with the
    conditions every system was scored under. Returns the numeric table it showed.

    Args:
        lead: A metric to show first (the headline nDCG@10 in a narrow table, where the last columns are cut).
    """
    table = results.table()
    if lead in table.columns:
        table = table[[lead, *(c for c in table.columns if c != lead)]]
    delta = table - table.iloc[0]
    text = table.map(lambda v: f"{v:.3f}")
    shown = delta.map(lambda v: float(f"{v:.3f}"))  # the change as the cell shows it: zero is neutral (metric_delta)
    text.iloc[1:] = text.iloc[1:] + shown.iloc[1:].map(lambda v: f" ({v:+.3f})" if v else " (0.000)")

    def colour(col: pd.Series) -> list[str]:
        d = shown[col.name]
        return ["color: #1a7f37" if v > 0 else "color: #cf222e" if v < 0 else "" for v in d]

    st.dataframe(text.style.apply(colour, axis=0), width="stretch", key=key)
    st.caption(
        f"Every system searched the same {results.eval_passages:,} passages for the same {results.eval_questions:,} "
        f"evaluation questions ({plain(results.question_origin)}); base and tuned models read passages at "
        f"{results.passage_tokens} tokens"
        + (f", {plain(results.systems['base'].conditions.windows)}" if results.systems["base"].conditions.windows else "")
        + ("; searched exactly." if results.systems["base"].conditions.index == "exact"
           else f"; searched with {plain(results.systems['base'].conditions.index)}.")
    )
    origin_warning(results.question_origin)
    if explain:
        st.caption(METRIC_HELP)
    return table


def origin_warning(question_origin: str) -> None:
    """A warning when the evaluation questions are (partly) generated: their scores are optimistic."""
    text = warning_text(question_origin)
    if text:
        st.warning(plain(text), icon=":material/warning:")


def verdict_panel(results: RunResults, key: str) -> None:
    """The plain-language verdict and the paired intervals/tests behind it."""
    if not results.verdict:
        return
    st.info(f":material/gavel: {plain(results.verdict)}")
    with lazy_expander("Confidence intervals and significance (per question, paired)", key=f"{key}_open") as box:
        if not box.open:
            return
        st.dataframe(
            results.comparisons_table(),
            hide_index=True,
            width="stretch",
            key=key,
            column_config={
                "delta": st.column_config.NumberColumn("change", format="%+.3f"),
                "p-value": st.column_config.NumberColumn("p-value", format="%.4f"),
            },
        )
        st.caption(
            "Change: mean per-question difference (second system minus first). p-value: paired randomization "
            "test (sign flips: all of them up to 15 questions, else 10,000). 95% CI: every change that same test "
            "would not reject, so the interval excludes 0 exactly when p < 0.05."
        )


def lazy_expander(label: str, key: str, expanded: bool = False, **kw):
    """An expander whose content runs only while it is open (Streamlit's expander state tracking:
    opening or closing it reruns the page). A closed one costs the page nothing, server or browser:
    ``with lazy_expander(...) as box: if box.open: ...``. Widgets drawn in it lose their state while it
    is closed; ``settings_form(..., draw=box.open)`` keeps their values."""
    return st.expander(label, expanded=expanded, key=key, on_change="rerun", **kw)


def settings_form(obj: Any, key: str, advanced: bool = False, columns: int = 4, draw: bool = True) -> Any:
    """Widgets for the fields of a settings dataclass (label, help and bounds from each field's
    metadata); returns a new instance with the values chosen.

    Args:
        obj: the current settings (defaults the first time).
        key: widget key prefix (unique per page and method).
        advanced: draw the fields marked ``advanced`` (else the others).
        draw: False inside a closed ``lazy_expander``: no widgets, the values last chosen here (kept in
            the session under ``key``) or ``obj``'s.
    """
    kept_key = f"{key}__chosen"
    kept: dict[str, Any] = st.session_state.get(kept_key) or {}
    hints = typing.get_type_hints(type(obj))
    fields = [f for f in dataclasses.fields(obj) if not f.metadata.get("hidden") and "help" in f.metadata
              and bool(f.metadata.get("advanced")) == advanced and not dataclasses.is_dataclass(hints[f.name])]
    if not draw:
        return dataclasses.replace(obj, **{f.name: kept[f.name] for f in fields if f.name in kept})
    values = {}
    cols = st.columns(min(columns, max(len(fields), 1)))
    for i, f in enumerate(fields):
        meta, current, hint = f.metadata, kept.get(f.name, getattr(obj, f.name)), hints[f.name]
        kw = {"help": meta["help"], "key": f"{key}_{f.name}"}
        label = meta.get("label") or f.name.replace("_", " ")
        with cols[i % len(cols)]:
            options = meta.get("choices") or (list(typing.get_args(hint)) if typing.get_origin(hint) is typing.Literal
                                               else None)
            if options:
                names = meta.get("option_labels") or {}
                values[f.name] = st.selectbox(label, options, index=options.index(current),
                                              format_func=lambda v, n=names: str(n.get(v, v)), **kw)
            elif hint is bool:
                values[f.name] = st.checkbox(label, value=current, **kw)
            elif hint in (int, float):
                num = {k: hint(meta[k]) for k in ("min", "max", "step") if k in meta}
                values[f.name] = hint(st.number_input(label, value=hint(current), min_value=num.get("min"),
                                                      max_value=num.get("max"), step=num.get("step"),
                                                      format=meta.get("format"), **kw))
            elif typing.get_origin(hint) is list and meta.get("options"):
                values[f.name] = st.multiselect(label, meta["options"], default=current, **kw)
            else:
                text = st.text_input(label, value=current or "", **kw)
                values[f.name] = text.strip() or None
    st.session_state[kept_key] = values
    return dataclasses.replace(obj, **values)


def changed_settings(obj: Any, default: Any, advanced: bool = True) -> list[str]:
    """'label value' for each (advanced) field of ``obj`` that differs from ``default``: what a closed
    ``lazy_expander`` holds, said under it so a changed setting is never out of sight."""
    out = []
    for f in dataclasses.fields(obj):
        if "help" in f.metadata and bool(f.metadata.get("advanced")) == advanced and not f.metadata.get("hidden"):
            value = getattr(obj, f.name)
            if value != getattr(default, f.name) and not dataclasses.is_dataclass(value):
                shown = (f.metadata.get("option_labels") or {}).get(value, value) if isinstance(value, str) else value
                out.append(f"{f.metadata.get('label') or f.name.replace('_', ' ')} {shown}")
    return out


def status_progress(label: str):
    """A ``st.status`` box with a progress bar; returns (status, callback(message, fraction))."""
    status = st.status(label, expanded=True)
    bar = status.progress(0.0, text="Starting…")

    def update(message: str, fraction: float) -> None:
        bar.progress(min(max(float(fraction), 0.0), 1.0), text=message)

    return status, update


def poll_run(run_id: str, draw: Callable[[dict, Any, Any], None], on_done: Callable[[], None] | None = None) -> None:
    """A fragment that polls ``run_id``'s job snapshot while it runs here (else reads the run folder)
    and calls ``draw(run, snapshot, job or None)`` under the run's heading; polling stops at the end.

    Args:
        on_done: called once when the job ends done, before the rerun that stops the polling.
    """
    store, runner = get_store(), get_runner()
    job = runner.get(run_id)
    live = job is not None and not job.snapshot().finished

    @st.fragment(run_every=POLL_SECONDS if live else None)
    def panel() -> None:
        try:
            run = store.get_run(run_id)
        except KeyError:
            st.info("This run was deleted.")
            return
        snap = job.snapshot() if job is not None else history_from_files(store, run_id)
        if live and snap.finished:  # the job just ended: one full rerun stops the polling
            if snap.status == "done" and on_done is not None:
                on_done()  # before the rerun, so the sidebar shows its effect at once
            st.rerun()
        st.markdown(f"#### {STATUS_ICON.get(snap.status, '')} {plain(run['name'])} · {snap.status}")
        draw(run, snap, job)

    panel()


def short(text: str, n: int = 90) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"
