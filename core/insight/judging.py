"""Judge the new finds: what a run's pipelines returned that nobody judged, the expert's marks, and re-scoring.

Labels made on the labelling bench (``core.generate.labels``) pool a few systems' lists (BM25, the
base model, maybe a tuned model); a run then scores five pipelines, and whatever a pipeline returns
that nobody judged counts as not relevant. A system that finds answers the pool never showed is
marked down for them (pooling bias). The TREC way out, done here: list each pipeline's top 10 that
nobody judged, let the expert mark them, and re-score the saved rankings with the new labels
(no retraining, no re-encoding).

* :func:`unjudged_finds` (store, run id) -> [:class:`Find`]: per evaluation question, every pipeline's
  top-10 passages that are neither relevant nor judged, each once, shuffled (seeded by the run and
  question: the same order every time, and the order says nothing about which system found it).
* :func:`record_finds` (store, run id, {(question id, passage id): relevant}): the judgments go to the
  dataset's ``judgments.json`` (found by ``"run:<run id>:<role>"``, each role whose top 10 held the
  passage); the relevant ones are added to the dataset's evaluation split and to the run's own copy
  (``runs/<id>/data/eval.json``). ``results.json``'s ``judging`` numbers are refreshed.
* :func:`rescore_run` (store, run id) -> (before, after): every system's per-question metrics and means
  recomputed from the saved rankings with the current labels, comparisons, verdict and best pipeline
  rebuilt as the run built them (a best chosen on validation is kept: it never saw the evaluation
  labels; one chosen on the evaluation questions is chosen again), the conditions' question
  fingerprint updated for every system alike, ``results.json`` and ``per_query.csv`` rewritten, and
  what depended on the old labels (``alignment.json``, ``by_dimension.csv``, the maps' point tables)
  recomputed or removed. The rankings themselves do not change (each hybrid's fusion was chosen on
  the validation hold-out, or fixed).
* :func:`judging_summary`: per system the share of its top 10 (over all evaluation questions) that
  nobody judged, the finds left, which systems' lists the judgments came from, and the warning when
  that was only some of them. Stored as ``RunResults.judging`` at the end of a run and after each
  record or re-score, so pages and the report read it without computing anything.

Which judgments count. A run copies the dataset's ``judgments.json`` when it starts
(``Store.snapshot_run_data`` -> ``runs/<id>/data/judgments.json``): what was judged then. The
judgments that count are that copy merged with the dataset's current file (a later judgment of a
passage wins), for the run's questions whose text the dataset still holds unchanged (a question
removed, or an id reused for another question, keeps only the run's copy). So a passage judged
later, for this run or another run on the same questions, counts as judged here too, and a run
whose dataset was deleted still reads its copy (but cannot record new judgments: they belong to a
dataset). "Judged since the run" is what is in the merged judgments and not in the run's copy (for
runs made before the copy: judged after the run started).

Labels. The run's copy of its evaluation split, plus every passage the counted judgments mark
relevant for one of its questions. Judging only ever adds relevant passages; it never removes a label.

Rescoring needs the rankings: ``rankings_deep.npz`` (top 100, every metric). Runs saved before it
have only ``rankings.json`` (top 10): their @10 metrics are recomputed, MAP@100 keeps its old value
and a first relevant passage past rank 10 keeps its old rank, and the note says so.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from core.dataset import DataError, QADataset
from core.generate.judgments import load_judgments, record_judgments
from core.insight.explore import BY_DIMENSION_FILE, open_run
from core.insight.projection import Projection
from core.retrieval.coverage import DEPTH, fmt_share, found_by_name, judging_summary
from core.retrieval.evaluation import Conditions, RetrievalResult, score_ranking
from core.retrieval.results import NOT_RECORDED, RunResults, build_results
from core.workspace import run_folder
from core.workspace.files import read_json
from core.workspace.run_folder import (
    TOP_SAVED,
    load_deep_rankings,
    load_per_query,
    load_rankings,
    load_results,
)
from core.workspace.store import Store

logger = logging.getLogger(__name__)


RESCORED_PREFIX = "Re-scored after judging"
KEPT_METRICS = ("MAP@100",)  # metrics a run that saved only its top 10 cannot recompute
CHANGE_METRICS = ("nDCG@10", "MRR@10", "Accuracy@10", "MAP@100")  # what the before/after table shows
# judging keys a refresh keeps: each system's unjudged share when the run ended, its scores before any
# judging, the latest re-scoring note and time
KEPT_KEYS = ("unjudged_at_start", "before_judging", "rescored", "rescored_at")
_lock = threading.Lock()  # record and re-score read-modify-write the run's files (sessions share a store)


class Find(NamedTuple):
    """A passage in some pipeline's top 10 for a question that nobody judged.

    Attributes:
        question_id: The evaluation question.
        passage_id: The passage.
        found_by: The run's roles whose top 10 held it (never shown before the expert has judged).
    """

    question_id: str
    passage_id: str
    found_by: tuple[str, ...]


def _norm(text: str) -> str:
    return " ".join(str(text).split()).casefold()


@dataclass
class _RunState:
    """What judging reads of a run: its results, rankings, labels and the judgments that count."""

    run_id: str
    run_dir: Path
    dataset_id: str | None
    dataset_alive: bool
    results: RunResults
    ev: QADataset  # the run's copy of its evaluation split
    qids: list[str]  # the ranked questions, in the run's order
    top: dict[str, dict[str, list[str]]]  # role -> question -> top-10 ids (rankings.json)
    judgments: dict[str, dict[str, dict]]  # merged, the run's questions only
    start: dict[str, dict[str, dict]] | None  # the run's copy (None: made before copies)
    started: float | None

    @property
    def roles(self) -> list[str]:
        return [r for r in self.results.roles if r in self.top]

    def relevant(self, q: str) -> set[str]:
        judged = {p for p, j in self.judgments.get(q, {}).items() if j.get("relevant") and p in self.ev.corpus}
        return set(self.ev.relevant_docs.get(q, [])) | judged

    def summary(self) -> dict[str, Any]:
        out = judging_summary({r: self.top[r] for r in self.roles}, {q: self.relevant(q) for q in self.qids},
                              self.judgments, run_id=self.run_id, start=self.start, started=self.started)
        prior = self.results.judging or {}
        for key in KEPT_KEYS:  # kept from the run's end and an earlier re-score
            if key in prior:
                out[key] = prior[key]
        out.setdefault("unjudged_at_start", prior.get("unjudged", out["unjudged"]))
        return out


def _load(store: Store, run_id: str) -> _RunState:
    run = store.get_run(run_id)
    run_dir = store.run_dir(run_id)
    results = load_results(run_dir)
    if results is None:
        raise FileNotFoundError(f"Run {run_id} has no results yet (status: {run['status']}).")
    rankings = load_rankings(run_dir)
    if not rankings:
        raise DataError(f"Run {run_id} saved no rankings (rankings.json), so its results cannot be judged or "
                        "re-scored: train it again.")
    _, ev = store.run_data(run_id)
    if ev is None:
        raise DataError(f"Run {run_id} has no evaluation data left to judge.")
    top = {role: {q: list(v[0][:DEPTH]) for q, v in r.items()} for role, r in rankings.items()
           if role in results.systems}
    qids = list(next(iter(top.values()), {}))
    missing = [q for q in qids if q not in ev.queries]
    if missing:
        raise DataError(f"{len(missing)} of this run's evaluation questions are no longer in its data "
                        f"(e.g. {missing[0]}): it cannot be judged or re-scored.")
    try:
        start = run_folder.judgments_at_start(run_dir)
    except ValueError as exc:
        raise DataError(f"The judgments copied when run {run_id} started are not valid JSON ({exc}): delete "
                        f"{run_dir / run_folder.DATA / run_folder.JUDGMENTS} to judge this run from its dataset's "
                        "judgments alone.") from exc
    current: dict = {}
    dataset_questions: dict[str, str] = {}
    alive = False
    if run.get("dataset_id"):
        try:
            current = load_judgments(store, run["dataset_id"])
            alive = True
            # the dataset's evaluation questions only (its training split is not read)
            dataset_questions = (read_json(store.dataset_dir(run["dataset_id"]) / "eval.json", {}) or {}).get(
                "queries", {})
        except KeyError:  # the dataset was deleted since: the run's copy remains
            pass
    judgments: dict[str, dict[str, dict]] = {}
    for q in qids:
        mine = dict((start or {}).get(q, {}))
        same = _norm(dataset_questions.get(q, "\0")) == _norm(ev.queries[q])
        if same:
            mine.update(current.get(q, {}))
        if mine:
            judgments[q] = mine
    return _RunState(run_id, run_dir, run.get("dataset_id"), alive, results, ev, qids, top, judgments, start,
                     run.get("started") or run.get("created"))


def unjudged_finds(store: Store, run_id: str) -> list[Find]:
    """Every pipeline's top-10 passages that are neither relevant nor judged, per evaluation question.

    Questions come in the run's order; each question's passages once (whichever pipelines found it),
    shuffled with a seed drawn from the run and the question, so the same list comes back every time
    and its order reveals no system.

    Raises:
        FileNotFoundError: the run has no results. DataError: it has no rankings or evaluation data.
    """
    st = _load(store, run_id)
    out: list[Find] = []
    for q in st.qids:
        rel, judged = st.relevant(q), set(st.judgments.get(q, {}))
        seen: dict[str, list[str]] = {}
        for r in st.roles:
            for d in st.top[r].get(q, []):
                if d not in rel and d not in judged and d in st.ev.corpus:
                    seen.setdefault(d, []).append(r)
        order = sorted(seen)
        random.Random(f"{run_id}|{q}").shuffle(order)
        out += [Find(q, d, tuple(seen[d])) for d in order]
    return out


def _with_relevant(ev: QADataset, add: Mapping[str, set[str]]) -> QADataset:
    """``ev`` with passages added to questions' relevant lists (order kept, new ones appended)."""
    rel = {q: list(v) for q, v in ev.relevant_docs.items()}
    for q, pids in add.items():
        rel[q] = rel.get(q, []) + sorted(p for p in pids if p not in rel.get(q, []))
    return replace(ev, relevant_docs=rel)


def _write_run_eval(st: _RunState, ev: QADataset) -> None:
    """The run's own copy of its evaluation split (runs made before copies read their dataset: nothing to do)."""
    run_folder.write_eval(st.run_dir, ev)


def _write_results(st: _RunState, results: RunResults) -> None:
    run_folder.write_results(st.run_dir, results)


def record_finds(store: Store, run_id: str, marks: Mapping[tuple[str, str], bool]) -> dict[str, int]:
    """Record the expert's judgments of a run's finds.

    Each judgment goes to the dataset's ``judgments.json`` (found by ``"run:<run id>:<role>"`` for each
    role whose top 10 held it); each relevant passage is added to that question's relevant passages in
    the dataset's evaluation split (when the dataset still holds the question, same text) and in the
    run's own copy. The run's ``judging`` numbers are refreshed; its scores change only on
    :func:`rescore_run`.

    Args:
        store: The workspace.
        run_id: The finished run.
        marks: (question id, passage id) -> relevant (True) or not (False): every passage shown, ticked or not.

    Returns:
        {"judged": passages recorded, "relevant": of them relevant}.

    Raises:
        DataError: nothing to record, a question not among the run's evaluation questions, a passage not
            in its corpus, a relevance that is not True/False, or the run's dataset was deleted.
    """
    if not marks:
        raise DataError("Nothing to record: judge at least one passage.")
    with _lock:
        st = _load(store, run_id)
        questions = set(st.qids)
        for key, value in marks.items():
            if not (isinstance(key, tuple) and len(key) == 2):
                raise DataError(f"A judgment must be keyed by (question id, passage id), not {key!r}.")
            q, p = key
            if q not in questions:
                raise DataError(f"Question {q!r} is not one of this run's evaluation questions.")
            if p not in st.ev.corpus:
                raise DataError(f"Passage {p!r} is not in this run's passages.")
            if not isinstance(value, bool):
                raise DataError(f"The judgment of passage {p} for question {q} must be True or False, not {value!r}.")
        if not st.dataset_alive:
            raise DataError("The dataset this run was made on has been deleted: judgments are kept with a dataset, "
                            "so the new finds cannot be recorded.")
        by_q: dict[str, dict[str, tuple[bool, list[str]]]] = {}
        for (q, p), relevant in marks.items():
            names = [found_by_name(run_id, r) for r in st.roles if p in st.top[r].get(q, [])]
            by_q.setdefault(q, {})[p] = (relevant, names or [f"run:{run_id}"])
        for q, judged in by_q.items():
            record_judgments(store, st.dataset_id, q, judged)
        add = {q: {p for p, (rel, _) in judged.items() if rel} for q, judged in by_q.items()}
        add = {q: ps for q, ps in add.items() if ps}
        if add:
            _write_run_eval(st, _with_relevant(st.ev, add))
            _, dev = store.load_dataset(st.dataset_id)
            if dev is not None:
                mine = {q: {p for p in ps if p in dev.corpus} for q, ps in add.items()
                        if _norm(dev.queries.get(q, "\0")) == _norm(st.ev.queries[q])}
                skipped = sum(len(ps) for ps in add.values()) - sum(len(ps) for ps in mine.values())
                if skipped:
                    logger.info("%d relevant finds of %s kept in the run only: their question or passage is no "
                                "longer in dataset %s", skipped, run_id, st.dataset_id)
                mine = {q: ps for q, ps in mine.items() if ps}
                if mine:
                    store.update_dataset(st.dataset_id, eval=_with_relevant(dev, mine))
        at_start = st.summary()["unjudged_at_start"]  # what nobody had judged when the run ended
        st = _load(store, run_id)
        st.results.judging = {**st.summary(), "unjudged_at_start": at_start}
        _write_results(st, st.results)
    n_rel = sum(bool(v) for v in marks.values())
    logger.info("run %s: %d finds judged (%d relevant)", run_id, len(marks), n_rel)
    return {"judged": len(marks), "relevant": n_rel}


def rescore_run(store: Store, run_id: str) -> tuple[RunResults, RunResults]:
    """Re-score every system of a finished run from its saved rankings with the current labels.

    See the module docstring for what is recomputed and what is kept. When the labels are those the run
    was last scored with, nothing is written and ``before`` comes back twice.

    Returns:
        (results before, results after).

    Raises:
        FileNotFoundError: the run has no results. DataError: it has no rankings or evaluation data.
    """
    with _lock:
        st = _load(store, run_id)
        before = st.results
        labels = _with_relevant(st.ev, {q: st.relevant(q) for q in st.qids})
        ev = labels.subset(st.qids)  # the ranked questions, in their order
        fingerprint = Conditions.of(ev).questions_fingerprint
        if fingerprint == before.systems["base"].conditions.questions_fingerprint:
            return before, before  # scored with these very labels (runs that did not record it: always re-scored)
        deep = load_deep_rankings(st.run_dir)
        deep = deep if deep and all(r in deep for r in before.roles) else None
        old_pq = load_per_query(st.run_dir) if deep is None else None
        systems: dict[str, RetrievalResult] = {}
        for role in before.roles:
            s = before.systems[role]
            source = deep[role] if deep else st.top.get(role, {})
            ids = [list(source.get(q, [])) for q in ev.query_ids]
            cond = s.conditions if s.conditions.questions_fingerprint == NOT_RECORDED else replace(
                s.conditions, questions_fingerprint=fingerprint)
            res = score_ranking(s.name, ev, (ids, [[] for _ in ids]), s.seconds, cond)
            if deep is None:  # top 10 only: ranks past 10 and MAP@100 cannot be recomputed
                col = f"{role}|gold_rank"
                if old_pq is not None and col in old_pq:
                    old = old_pq[col].reindex(res.per_query.index.astype(str))
                    res.per_query["gold_rank"] = res.per_query["gold_rank"].fillna(pd.Series(old.to_numpy(),
                                                                                          index=res.per_query.index))
                for m in KEPT_METRICS:
                    if m in s.metrics:
                        res.metrics[m] = s.metrics[m]
            systems[role] = res
        keep_best = before.best is not None and before.best.chosen_on == "validation"
        after, per_query = build_results(
            before.method, systems, fusion=before.fusion, training=before.training,
            question_origin=before.question_origin, total_seconds=before.total_seconds,
            notes=[n for n in before.notes if not n.startswith(RESCORED_PREFIX)],
            training_seconds=before.training_seconds, pipelines=before.pipelines if before.best else None,
            val_scores=before.best.scores if keep_best else None, n_val=before.best.n if keep_best else 0)
        _write_run_eval(st, labels)
        at_start = st.summary()["unjudged_at_start"]
        st.ev = labels
        summary = {**st.summary(), "unjudged_at_start": at_start}
        first = (before.judging or {}).get("before_judging") or {
            r: {m: s.metrics[m] for m in CHANGE_METRICS if m in s.metrics} for r, s in before.systems.items()}
        note = (f"{RESCORED_PREFIX} {summary['judged_since_run']} new finds ({summary['relevant_since_run']} "
                "relevant): " + ", ".join(
                    f"{after.systems[r].name} nDCG@10 {first[r]['nDCG@10']:.3f} -> {after.systems[r].metrics['nDCG@10']:.3f}"
                    for r in after.roles if r in first and "nDCG@10" in first[r]) + ".")
        if deep is None:
            note += (f" {', '.join(KEPT_METRICS)} and ranks past {TOP_SAVED} kept from before judging: this run saved "
                     f"only its top {TOP_SAVED} per question.")
        after.notes.append(note)
        after.judging = {**summary, "before_judging": first, "rescored": note, "rescored_at": time.time()}
        pq = per_query.copy()
        pq.insert(0, "question", [ev.queries[q] for q in pq.index])
        run_folder.write_per_query(st.run_dir, pq)
        _write_results(st, after)
        store.update_run(run_id, metrics=after.headline)
        _refresh_saved_views(store, run_id)
    logger.info("run %s re-scored: %s", run_id, note)
    return before, after


def _refresh_saved_views(store: Store, run_id: str) -> None:
    """Recompute what the run folder saved from the old labels: how questions meet their answers
    (``alignment.json``) and each saved map's point table (movement, answer colouring); quality by
    dimension is removed (recomputed when next asked for). The maps themselves do not depend on labels."""
    run_dir = store.run_dir(run_id)
    for path in [run_dir / "alignment.json", run_dir / BY_DIMENSION_FILE, *run_dir.glob("map-points-*.parquet")]:
        path.unlink(missing_ok=True)
    try:
        view = open_run(store, run_id)
    except FileNotFoundError:  # no vectors (a run saved without them): nothing was derived from them
        return
    try:
        view.alignment("base"), view.alignment("tuned")
        for path in sorted(run_dir.glob("projection-*.npz")):
            view.map_points(Projection.load(path))
    except (OSError, ValueError, KeyError) as exc:  # recomputed when next opened instead
        logger.warning("views of %s not refreshed after re-scoring: %s", run_id, exc)


def score_changes(before: RunResults, after: RunResults) -> pd.DataFrame:
    """Per system: each of ``CHANGE_METRICS`` before any judging (``before_judging`` when recorded, else
    ``before``'s) and after, nDCG@10's change, and the share of its top 10 nobody judged when the run
    ended and now."""
    first = (after.judging or {}).get("before_judging") or {
        r: s.metrics for r, s in before.systems.items()}
    rows = []
    for r in after.roles:
        a = after.systems[r].metrics
        b = first.get(r, before.systems[r].metrics if r in before.systems else {})
        row = {"system": after.systems[r].name}
        for m in CHANGE_METRICS:
            if m in a and m in b:
                row[f"{m} before"], row[f"{m} after"] = float(b[m]), float(a[m])
        row["nDCG@10 change"] = row.get("nDCG@10 after", float("nan")) - row.get("nDCG@10 before", float("nan"))
        j = after.judging or {}
        for label, shares in (("before", j.get("unjudged_at_start") or (before.judging or {}).get("unjudged")),
                              ("after", j.get("unjudged"))):
            share = (shares or {}).get(r)
            row[f"unjudged top-10 {label}"] = float(share) if share is not None else float("nan")
        rows.append(row)
    return pd.DataFrame(rows).set_index("system")


def unjudged_lines(results: RunResults) -> list[str]:
    """The share of each system's top 10 nobody judged, in words ([] when the run's questions were never
    judged or the run predates these numbers), then the warning when there is one."""
    j = results.judging or {}
    if not j.get("has_judgments"):
        return []
    shares = j.get("unjudged") or {}
    parts = [f"{results.systems[r].name} {fmt_share(shares[r])}" for r in results.roles if r in shares]
    lines = ["Share of each system's top 10 (all evaluation questions) that nobody judged, counted as not "
             "relevant: " + ", ".join(parts) + "."] if parts else []
    if j.get("warning"):
        lines.append(j["warning"])
    return lines
