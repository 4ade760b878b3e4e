"""A stakeholder report of one finished run: one self-contained HTML file.

Everything is inside the file (plotly's JavaScript inlined once, figures as JSON, no
link to the network), so it opens offline and can be mailed. All user text (questions,
passages, names) is HTML-escaped.

    html = build_report(store, run_id)          # or: python -m core report RUN
"""

from __future__ import annotations

import html
import json
import platform
import time
from importlib import metadata
from typing import Any

import pandas as pd

from core.dataset import QADataset
from core.generate.pairs import origin_summary, origin_warning
from core.ingest.splits import leakage_report
from core.insight.clouds import AnswerNearby
from core.insight.explore import clouds_projection, open_run, unchanged_note
from core.insight.judging import RESCORED_PREFIX, unjudged_lines
from core.insight.matryoshka import quality_by_dimension
from core.insight.projection import ALIGNMENT_HELP, ProjectionParams
from core.retrieval.results import RunResults
from core.retrieval.stats import signed
from core.workspace.run_folder import MODEL, artifact
from core.workspace.store import Store

LIBRARIES = ("torch", "sentence-transformers", "transformers", "faiss-cpu", "bm25s", "umap-learn", "plotly",
             "scipy", "numpy", "pandas")
TOP_CASES = 5  # winners and losers listed with their passages
PASSAGE_CHARS = 700  # passage text shown per case
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;
color:#1f2328;line-height:1.45}
h1{margin-bottom:.2em} h2{margin-top:1.8em;border-bottom:1px solid #d0d7de;padding-bottom:.2em}
.verdict{font-size:1.15em;background:#eef6ff;border-left:5px solid #0969da;padding:.8em 1em;margin:1em 0}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em} th,td{border:1px solid #d0d7de;padding:.3em .6em;
text-align:left;vertical-align:top} th{background:#f6f8fa} td.num{text-align:right;font-variant-numeric:tabular-nums}
.up{color:#1a7f37}.down{color:#cf222e} .muted{color:#656d76;font-size:.9em}
.maps{display:grid;grid-template-columns:1fr 1fr;gap:1em} .case{margin:.8em 0;padding:.6em .8em;border:1px solid #d0d7de;
border-radius:6px} .case p{margin:.3em 0}
.warn{background:#fff8c5;border-left:5px solid #bf8700;padding:.6em 1em} pre{white-space:pre-wrap;background:#f6f8fa;padding:.8em;font-size:.85em}
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for lib in LIBRARIES:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            out[lib] = "not installed"
    return out


def _table(df: pd.DataFrame, fmt: dict[str, str] | None = None, index: bool = True) -> str:
    fmt = fmt or {}
    cols = list(df.columns)
    head = ("<th></th>" if index else "") + "".join(f"<th>{_e(c)}</th>" for c in cols)
    rows = []
    for idx, row in df.iterrows():
        cells = [f"<th>{_e(idx)}</th>"] if index else []
        for c in cols:
            v = row[c]
            if isinstance(v, float):
                cells.append(f'<td class="num">{format(v, fmt.get(c, ".3f"))}</td>')
            else:
                cells.append(f"<td>{_e(v)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _metrics_html(results: RunResults) -> str:
    table = results.table()
    delta = table - table.iloc[0]
    head = "<th>system</th>" + "".join(f"<th>{_e(c)}</th>" for c in table.columns)
    rows = []
    for i, system in enumerate(table.index):
        cells = [f"<th>{_e(system)}</th>"]
        for c in table.columns:
            v, d = table.loc[system, c], delta.loc[system, c]
            cls = "up" if d > 0.0005 else "down" if d < -0.0005 else ""
            extra = f' <span class="{cls}">({signed(d)})</span>' if i else ""
            cells.append(f'<td class="num">{v:.3f}{extra}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _fusion_notes(results: RunResults) -> list[str]:
    """How each hybrid's fusion was decided (one line per hybrid; the one stored note for older runs)."""
    notes = [p.fusion.note for p in results.pipelines.values() if p.hybrid and p.fusion and p.fusion.note]
    return list(dict.fromkeys(notes)) or ([results.fusion.note] if results.fusion else [])


def _pipelines_html(results: RunResults) -> list[str]:
    """The headline section: best retriever with tuning vs best without, then every pipeline's stages."""
    lines = results.headline_lines()
    if not lines:
        return []
    rows = pd.DataFrame({
        "stages": [p.describe() for p in results.pipelines.values()],
        "uses tuning": ["yes" if p.uses_tuning else "no" for p in results.pipelines.values()],
        "nDCG@10": [results.systems[r].metrics["nDCG@10"] for r in results.pipelines],
    }, index=[results.systems[r].name for r in results.pipelines])
    return ["<h2>Best retriever with tuning vs best without</h2>",
            "<ul>" + "".join(f"<li>{_e(line)}</li>" for line in lines) + "</ul>",
            _table(rows, {"nDCG@10": ".3f"})]


def _judging_html(results: RunResults) -> list[str]:
    """The Scores section's judging lines: the re-scoring note, each system's share of its top 10 nobody judged
    (when the questions were judged), and the warning when the judgments came from only some systems' lists."""
    j = results.judging or {}
    out = [f"<p><b>Judged after the run:</b> {_e(j['rescored'])}</p>"] if j.get("rescored") else []
    out += [f'<p class="muted">{_e(line)}</p>' for line in unjudged_lines(results) if line != j.get("warning")]
    if j.get("warning"):
        out.append(f'<p class="warn"><b>Warning:</b> {_e(j["warning"])}</p>')
    return out


def split_description(report: dict, meta: dict, train: QADataset | None = None, ev: QADataset | None = None) -> str:
    """How a dataset's questions were split, in words, whatever shape its report has. A dataset whose
    questions were generated or labelled here (a collection of documents) says so instead of "given files"."""
    if train is not None and ev is not None and any(o for o in [*train.origins.values(), *ev.origins.values()]):
        return f"training: {origin_summary(train)}; evaluation: {origin_summary(ev)}"
    split = report.get("split") if isinstance(report, dict) else None
    if isinstance(split, str):  # datasets saved before splits were recorded as a report
        return split
    by = (split or {}).get("by") or report.get("by") or meta.get("split_by")
    if by in (None, "given", "given files"):
        files = [f for f in ((split or {}).get("train_file"), (split or {}).get("eval_file")) if f]
        return "given files (separate training and evaluation files" + (f": {', '.join(files)})" if files else ")")
    frac = (split or {}).get("eval_fraction")
    return f"by {by}" + (f", {frac:.0%} of the questions for evaluation" if frac else "")


def _case_html(view, qid: str, row: pd.Series) -> str:
    def rank(r) -> str:
        return ">100" if r != r else str(int(r))

    gold = view.eval.relevant_docs[qid][0]
    passage = view.eval.corpus.get(gold, "")
    if len(passage) > PASSAGE_CHARS:
        passage = passage[:PASSAGE_CHARS] + "…"
    source = view.eval.sources.get(gold, "")
    return (
        f'<div class="case"><p><b>{_e(row["question"])}</b></p>'
        f"<p>Answer passage rank: base {rank(row['rank before'])} → tuned {rank(row['rank after'])}</p>"
        f'<p class="muted">{_e(source) + ": " if source else ""}{_e(passage)}</p></div>'
    )


def _legend_below(fig):
    """Two maps side by side: the legend goes below each, so the map keeps its column's width."""
    return fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.02, "x": 0})


def _maps_html(view, wl: pd.DataFrame, fig_html, tuned_name: str) -> list[str]:
    """The Embedding map page's two views, for the report: questions vs passages before and after (one frame,
    the same axes) with the share of questions finding their answer and what it means, then the link view of the
    most improved and most worsened questions; a run that kept the base model says so above them."""
    from core.insight.map_figure import (  # heavy: plotly, loaded only when drawing
        cloud_points,
        clouds_map,
        embedding_map,
        frame_ranges,
        handful,
        handful_sample,
    )

    params = ProjectionParams()
    unchanged = unchanged_note(view)
    nearby = AnswerNearby.of(view.results, unchanged)
    note = ([f'<p class="warn"><b>Unchanged:</b> {_e(unchanged)} The two pictures below are one map drawn twice, '
             "not a change.</p>"] if unchanged else [])
    clouds = clouds_projection(view, params)
    points = cloud_points(clouds.points, view.eval.queries, view.eval.corpus, view.eval.sources)
    ranges = frame_ranges(points)
    n_q = int(((points["space"] == "base") & (points["kind"] == "query")).sum())
    n_p = int(((points["space"] == "base") & (points["kind"] == "passage")).sum())
    drawn = (f"{n_q:,} of the {len(view.query_ids):,} evaluation questions (orange) and "
             f"{n_p:,} of the {len(view.passage_ids):,} passages (blue"
             + (", a uniform random sample)" if n_p < len(view.passage_ids) else ")"))
    out = ["<h2>Questions and passages: before and after</h2>", *note,
           f"<p><b>{_e(nearby.label())}: {_e(nearby.headline())}.</b><br>{_e(nearby.meaning())}</p>",
           '<div class="maps"><div>'
           + fig_html(clouds_map(points, "base", f"Before: base model<br><sup>{nearby.title('base')}</sup>", ranges),
                      560)
           + "</div><div>"
           + fig_html(clouds_map(points, "tuned", f"After: {_e(tuned_name)}<br><sup>{nearby.title('tuned')}</sup>",
                                 ranges), 560)
           + "</div></div>",
           f'<p class="muted">{drawn}, in one UMAP layout of both models\' vectors: the two pictures share their axes. '
           "Questions far from every passage form a cloud of their own; tuning that brings them to their answers "
           "mixes the two clouds. UMAP keeps neighbours, not distances: the number above is measured on every "
           "passage.</p>"]

    chosen = [*handful(wl, "improved"), *handful(wl, "worsened")]
    out.append("<h3>Links: the most improved and the most worsened questions</h3>")
    if not chosen:
        out.append("<p>No question's answer moved up or down the ranking: there are no links to show.</p>")
    else:
        proj = view.projection(params)
        shown = handful_sample(view.map_points(proj, wl), chosen, view.eval.relevant_docs, params.sample,
                               params.seed)
        links = view.gold_links(wl)
        links = links[links["query_id"].astype(str).isin(chosen)]
        counts = wl.loc[chosen, "movement"].value_counts()
        out += [f"<p>The {int(counts.get('improved', 0))} questions whose answer moved furthest up the ranking "
                f"(green) and the {int(counts.get('worsened', 0))} whose answer moved furthest down (red), each "
                "joined to its answer passage; grey dots are other passages. The tuned map is aligned onto the "
                "base one so positions compare.</p>",
                '<div class="maps"><div>'
                + fig_html(_legend_below(embedding_map(shown, "base", links, title="Before: base model")), 620)
                + "</div><div>"
                + fig_html(_legend_below(embedding_map(shown, "tuned", links, title=f"After: {tuned_name}")), 620)
                + "</div></div>"]
    base, tuned = view.alignment("base"), view.alignment("tuned")
    out.append(_table(pd.DataFrame({
        "base": [base["answer_first"], base["median_rank"], base["margin"]],
        "tuned": [tuned["answer_first"], tuned["median_rank"], tuned["margin"]],
        "what it means": [ALIGNMENT_HELP[k] for k in ("answer_first", "median_rank", "margin")],
    }, index=["nearest passage is the answer (share)", "median rank of the answer",
              "answer vs best wrong passage (margin)"])))
    return out


def build_report(store: Store, run_id: str, progress=None, with_maps: bool = True) -> str:
    """The whole report as one HTML string.

    Args:
        progress: optional callable(message, fraction) (the maps take ~20 s the first time).
        with_maps: include the before/after UMAP maps (fitted once per run, then read back).

    Raises:
        FileNotFoundError: the run has not finished (no results).
    """
    from core.insight.plots import metric_bars  # heavy: plotly, loaded only when drawing
    run = store.get_run(run_id)
    view = open_run(store, run_id)
    results = view.results
    try:
        ds = store.get_dataset(run["dataset_id"])
    except KeyError:  # the dataset was deleted after the run: the run's own copy of its data remains
        ds = {"name": "(dataset deleted since)", "meta": "{}", "fingerprint": None}
    meta = json.loads(ds.get("meta") or "{}")
    train, ev = store.run_data(run_id)
    report = store.dataset_report(run["dataset_id"])
    tuned_name = results.systems["tuned"].name

    figures: list[str] = []

    def fig_html(fig, height: int = 420) -> str:
        fig.update_layout(height=height)
        first = not figures
        out = fig.to_html(full_html=False, include_plotlyjs=True if first else False,
                          config={"displaylogo": False, "responsive": True})
        figures.append(out)
        return out

    parts = [f"<h1>Retrieval tuning report: {_e(run.get('name') or run_id)}</h1>",
             f'<p class="muted">Run {_e(run_id)} · method {_e(run["method"])} · dataset “{_e(ds["name"])}” · '
             f"generated {time.strftime('%Y-%m-%d %H:%M')} by Embedding Tuning Lab</p>",
             f'<div class="verdict">{_e(results.verdict or "No verdict (no per-question data).")}</div>',
             *_pipelines_html(results),
             "<h2>Scores</h2>",
             f"<p>{results.eval_questions} evaluation questions ({_e(results.question_origin)}) searching "
             f"{results.eval_passages} passages; base and tuned models both read passages at "
             f"{results.passage_tokens} tokens. Changes in brackets are against the base model. BM25 is keyword "
             "search; each hybrid fuses one model's ranking with BM25's.</p>",
             _metrics_html(results)]
    warning = origin_warning(results.question_origin)
    if warning:
        parts.insert(-1, f'<p class="warn"><b>Warning:</b> {_e(warning)}</p>')
    parts += _judging_html(results)
    ci = results.comparisons_table()
    if not ci.empty:
        parts += ["<h3>Confidence intervals and significance</h3>",
                  _table(ci, {"delta": "+.3f", "p-value": ".4f"}, index=False),
                  '<p class="muted">Change: mean per-question difference (second minus first system). p-value: '
                  "paired randomization test (sign flips: all of them up to 15 questions, else 10,000). 95% CI: "
                  "every change the same test does not reject, so it excludes 0 exactly when p &lt; 0.05.</p>"]
    parts.append(fig_html(metric_bars(results.table()), 380))
    dims = quality_by_dimension(view)
    parts += ["<h3>Quality against vector size</h3>",
              _table(dims, {"Accuracy@10": ".3f", "MRR@10": ".3f", "nDCG@10": ".3f", "MB per 1M passages": ".1f"},
                     index=False),
              '<p class="muted">Each model\'s stored vectors cut to their first dimensions and re-normalised '
              "(no re-encoding), searched as the run searched. Storage: float32 per passage, per million "
              "passages.</p>"]

    wl = view.winners_losers()
    wl.index = wl.index.astype(str)  # per_query.csv is read back without dtypes: "7" would be 7
    if with_maps:
        if progress:
            progress("Drawing the before/after pictures", 0.1)
        parts += _maps_html(view, wl, fig_html, tuned_name)

    if progress:
        progress("Writing the report", 0.8)
    improved = wl[wl["movement"] == "improved"].head(TOP_CASES)
    worsened = wl[wl["movement"] == "worsened"].iloc[::-1].head(TOP_CASES)
    counts = wl["movement"].value_counts()
    parts += ["<h2>Winners and losers</h2>",
              f"<p>{int(counts.get('improved', 0))} questions improved, {int(counts.get('worsened', 0))} worsened, "
              f"{int(counts.get('same', 0))} unchanged (rank of the answer passage, base → tuned).</p>",
              "<h3>Biggest wins</h3>" + ("".join(_case_html(view, q, r) for q, r in improved.iterrows()) or "<p>None.</p>"),
              "<h3>Biggest losses</h3>" + ("".join(_case_html(view, q, r) for q, r in worsened.iterrows()) or "<p>None.</p>")]

    leak = leakage_report(train, ev) if ev is not None else None
    parts += ["<h2>Data and leakage</h2>",
              _table(pd.DataFrame({"value": [
                  ds["name"], ds.get("fingerprint") or train.fingerprint(), ev.fingerprint() if ev else "",
                  len(train), len(ev) if ev else 0, len(ev.corpus) if ev else 0, results.question_origin,
                  split_description(report, meta, train, ev),
              ]}, index=["dataset", "training data fingerprint", "evaluation data fingerprint", "training questions",
                         "evaluation questions", "evaluation passages", "evaluation questions are",
                         "where the questions came from"]))]
    if leak is not None:
        parts.append(f"<p>Questions shared by training and evaluation: {len(leak.exact_duplicates)} identical, "
                     f"{len(leak.near_duplicates)} near-identical; {leak.shared_passages} passages answer questions "
                     "on both sides. Shared questions flatter the tuned model's score.</p>")
        rows = [(train.queries.get(t, ""), ev.queries.get(e, ""), 1.0) for t, e in leak.exact_duplicates[:20]]
        rows += [(train.queries.get(t, ""), ev.queries.get(e, ""), float(s)) for t, e, s in leak.near_duplicates[:20]]
        if rows:
            parts.append(_table(pd.DataFrame(rows, columns=["training question", "evaluation question", "similarity"]),
                                {"similarity": ".2f"}, index=False))

    settings = view.spec.describe()
    parts += ["<h2>Settings</h2>",
              _table(pd.DataFrame({"value": [v for _, v in settings]}, index=[k for k, _ in settings])),
              "<h3>What the fit did</h3>",
              "".join(f"<p>{_e(line)}</p>" for line in results.training + _fusion_notes(results)
                      + [n for n in results.notes if not n.startswith(RESCORED_PREFIX)]),
              f'<p class="muted">The whole run took {results.total_seconds / 60:.1f} min.</p>',
              "<h2>Library versions</h2>",
              _table(pd.DataFrame({"version": _versions()}))]
    card = artifact(store.run_dir(run_id), MODEL) / "README.md"
    if card.exists():
        parts += ["<h2>Model card</h2>",
                  "<details><summary>The tuned model's README.md (sentence-transformers model card with this "
                  "tool's evaluation section)</summary>"
                  f"<pre>{_e(card.read_text(encoding='utf-8', errors='replace'))}</pre></details>"]
    body = "\n".join(parts)
    title = _e(f"Report: {run.get('name') or run_id}")
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>'
            f"<body>{body}</body></html>")
