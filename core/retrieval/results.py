"""The results of a run: one typed object, written once by the run (``core.workspace.run_folder``
saves and reads it), read by every view.

Systems are named by role, never by position; each is a deployable pipeline
(``core.retrieval.pipeline``):

    base    the base model, dense            tuned        the tuned system, dense
    bm25    keyword search (BM25)            base_hybrid  base + BM25, fused (its own fusion choice)
    hybrid  tuned + BM25, fused              rerank / base_rerank   a cross-encoder over a first stage

``RunResults.best`` says which pipeline was best with and without tuning (picked by one rule on
the validation hold-out), ``recommended`` which to deploy; the comparison of the two best is
the headline (``headline_delta``), the dense-only comparison comes second.

The files they are saved in are described in ``core.workspace.run_folder``.

``RunResults.table()`` is the one metrics table (systems x metrics); the pages, the CLI, the
report and the export only format it. ``RunResults.fairness_problems()`` lists any condition
that differs between the systems compared (the run refuses to save results that have any).
Runs saved before this format are upgraded in place on first read (their conditions are
marked as not recorded).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from core.retrieval import stats
from core.retrieval.evaluation import Conditions, RetrievalResult, unfair
from core.retrieval.fusion import FusionChoice
from core.retrieval.metrics import HEADLINE, metrics_frame
from core.retrieval.pipeline import (
    HYBRID,
    ROLES,
    BestChoice,
    Pipeline,
    best_of,
    fusion_unfair,
    legacy_pipeline,
)

logger = logging.getLogger(__name__)

DENSE_ROLES = ("base", "tuned")
LEGACY_ORDER = ("base", "tuned", "bm25", "hybrid")  # systems by position, in results saved before roles
PER_QUERY_COLUMNS = ("gold_rank", "Accuracy@10", "MRR@10", "nDCG@10")
NOT_RECORDED = "not recorded"


@dataclass
class System:
    """One scored system of a run."""

    role: str
    name: str
    metrics: dict[str, float]
    seconds: float
    conditions: Conditions
    pipeline: Pipeline | None = None  # what a user would deploy to get these scores

    def to_dict(self) -> dict:
        return {"name": self.name, "metrics": self.metrics, "seconds": self.seconds,
                "conditions": self.conditions.to_dict(),
                "pipeline": self.pipeline.to_dict() if self.pipeline else None}


@dataclass
class RunResults:
    """Everything a finished run measured (see the module docstring).

    Attributes:
        method: the run's method.
        systems: role -> System, in ROLES order.
        comparisons: paired intervals and tests (roles as ``a``/``b``).
        verdict: the plain-language verdict.
        fusion: how the hybrid fused, and on what that was decided.
        training: what the fit did, in sentences ready to show (``training_lines``).
        question_origin: what the evaluation questions are ("human-labelled", "generated", "mixed",
            or "as uploaded" when the data did not say).
        total_seconds: the whole run.
        training_seconds: the fit alone (model load and training for a full fine-tune).
        notes: remarks made while running (e.g. a method that saw its own validation questions).
        best: the best pipeline with and without tuning and how they were picked (None in runs saved
            before pipelines were compared).
        judging: how far the evaluation labels cover what each system returned, and any re-scoring after
            judging (``core.insight.judging.judging_summary``; None in runs saved before it).
    """

    method: str
    systems: dict[str, System]
    comparisons: list[stats.Delta] = field(default_factory=list)
    verdict: str = ""
    fusion: FusionChoice | None = None
    training: list[str] = field(default_factory=list)
    question_origin: str = "as uploaded"
    total_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    training_seconds: float = 0.0
    best: BestChoice | None = None
    judging: dict[str, Any] | None = None

    @property
    def roles(self) -> list[str]:
        return [r for r in ROLES if r in self.systems]

    @property
    def names(self) -> dict[str, str]:
        return {r: s.name for r, s in self.systems.items()}

    @property
    def eval_questions(self) -> int:
        return self.systems["base"].conditions.questions

    @property
    def eval_passages(self) -> int:
        return self.systems["base"].conditions.passages

    @property
    def passage_tokens(self) -> int | None:
        return self.systems["base"].conditions.passage_tokens

    @property
    def pipelines(self) -> dict[str, Pipeline]:
        return {r: s.pipeline or legacy_pipeline(r, s.name, self.fusion) for r, s in self.systems.items()}

    @property
    def recommended(self) -> str:
        """The role to deploy (the best pipeline with tuning only when significantly better than the best
        without; before pipelines were compared: the tuned system)."""
        if self.best is None:
            return "tuned"
        return stats.recommended(self.best.untuned, self.best.tuned, self.comparisons)

    @property
    def headline_delta(self) -> stats.Delta | None:
        """Best pipeline with tuning vs best without, on nDCG@10 (None before pipelines were compared)."""
        return stats.find(self.comparisons, self.best.untuned, self.best.tuned) if self.best else None

    @property
    def dense_delta(self) -> stats.Delta | None:
        """Tuned vs base model, dense alone, on nDCG@10."""
        return stats.find(self.comparisons, "base", "tuned")

    def headline_lines(self) -> list[str]:
        """The pipeline-against-pipeline headline in plain sentences (CLI, report, model card; the pages
        draw the same facts as tiles). Empty for runs saved before pipelines were compared."""
        head = self.headline_delta
        if head is None:
            return []
        u, t = self.systems[head.a], self.systems[head.b]
        lines = [f"Best retriever without tuning: {u.name} (nDCG@10 {head.mean_a:.3f}).",
                 f"Best retriever with tuning: {t.name} (nDCG@10 {head.mean_b:.3f}).",
                 f"Change: {stats.signed(head.delta)} nDCG@10, 95% interval [{stats.signed(head.low)}, {stats.signed(head.high)}], "
                 f"{stats.fmt_p(head.p_value)}, over {head.n} evaluation questions; {self.best.describe()}.",
                 f"Deploy: {self.systems[self.recommended].name} ({self.pipelines[self.recommended].describe()})."]
        if head.n < stats.SMALL_N:
            lines.append(f"With {head.n} questions a change smaller than about {head.detectable:.2f} cannot be told "
                         "from chance.")
        dense = self.dense_delta
        if dense is not None:
            lines.append(f"Dense alone (tuned vs base model): {dense.delta:+.3f} nDCG@10 "
                         f"[{stats.signed(dense.low)}, {stats.signed(dense.high)}], {stats.fmt_p(dense.p_value)}.")
        return lines

    @property
    def headline(self) -> dict[str, float]:
        """The tuned system's Accuracy@10, MRR@10 and nDCG@10 (what the run history shows)."""
        m = self.systems["tuned"].metrics
        return {k: m[k] for k in ("Accuracy@10", "MRR@10", "nDCG@10")}

    def table(self, columns: list[str] | None = None) -> pd.DataFrame:
        """Systems x metrics (index: display names, in role order)."""
        return metrics_frame({s.name: s.metrics for s in self.systems.values()}, columns or HEADLINE)

    def table_markdown(self, digits: int = 4) -> str:
        """``table()`` as a Markdown table (model cards, the export README)."""
        t = self.table()
        lines = ["| system | " + " | ".join(t.columns) + " |", "|---" * (len(t.columns) + 1) + "|"]
        lines += [f"| {name} | " + " | ".join(f"{v:.{digits}f}" for v in row) + " |" for name, row in t.iterrows()]
        return "\n".join(lines)

    def comparisons_table(self) -> pd.DataFrame:
        return stats.deltas_frame(self.comparisons, self.names)

    def fairness_problems(self) -> list[str]:
        """Conditions that differ between systems that are compared (empty: a fair comparison)."""
        out = fusion_unfair(self.pipelines)
        base = self.systems["base"].conditions
        for role, s in self.systems.items():
            if role == "base":
                continue
            out += [f"{s.name} vs {self.systems['base'].name}: {p}" for p in unfair(base, s.conditions)]
        tuned = self.systems.get("tuned")
        if tuned and tuned.conditions.passage_tokens != base.passage_tokens:
            msg = (f"{tuned.name} vs {self.systems['base'].name}: different passage token limits "
                   f"({base.passage_tokens} vs {tuned.conditions.passage_tokens})")
            if msg not in out:
                out.append(msg)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": 2,
            "method": self.method,
            "systems": {r: s.to_dict() for r, s in self.systems.items()},
            "comparisons": [d.to_dict() for d in self.comparisons],
            "verdict": self.verdict,
            "fusion": self.fusion.to_dict() if self.fusion else None,
            "training": self.training,
            "question_origin": self.question_origin,
            "total_seconds": self.total_seconds,
            "notes": self.notes,
            "training_seconds": self.training_seconds,
            "headline": self.headline,
            "best": self.best.to_dict() if self.best else None,
            "recommended": self.recommended,
            "judging": self.judging,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunResults:
        fusion = FusionChoice.from_dict(d["fusion"]) if d.get("fusion") else None
        systems = {}
        for role in ROLES:
            if role in d["systems"]:
                s = d["systems"][role]
                pipe = (Pipeline.from_dict(s["pipeline"]) if s.get("pipeline")
                        else legacy_pipeline(role, s["name"], fusion if role == HYBRID else None))
                systems[role] = System(role, s["name"], dict(s["metrics"]), float(s.get("seconds", 0.0)),
                                       Conditions(**s["conditions"]), pipe)
        comps = [stats.Delta(**{k: v for k, v in c.items() if k != "significant"}) for c in d.get("comparisons", [])]
        return cls(d.get("method", "?"), systems, comps, d.get("verdict", ""), fusion, list(d.get("training", [])),
                   d.get("question_origin", "as uploaded"), float(d.get("total_seconds", 0.0)),
                   list(d.get("notes", [])), float(d.get("training_seconds", 0.0)),
                   BestChoice.from_dict(d["best"]) if d.get("best") else None, d.get("judging") or None)


def build_results(method: str, systems: dict[str, RetrievalResult], *, fusion: FusionChoice | None,
                  training: list[str], question_origin: str, total_seconds: float,
                  notes: list[str] | None = None, training_seconds: float = 0.0,
                  pipelines: dict[str, Pipeline] | None = None, val_scores: dict[str, float] | None = None,
                  n_val: int = 0) -> tuple[RunResults, pd.DataFrame]:
    """The run's results and its per-question frame, with intervals and the verdict computed.

    Args:
        pipelines: role -> the pipeline each system is (with its fusion); without them the systems are
            compared as models only (no best-pipeline headline).
        val_scores: role -> nDCG@10 on the validation hold-out, the same rule for every pipeline; None
            when nothing was held out (each side's best is then picked on the evaluation questions).
        n_val: validation questions behind ``val_scores``.

    Raises:
        ValueError: the systems were not measured under the same conditions, or one hybrid's fusion was
            chosen and the other's not (a bug upstream: an unfair comparison is never saved).
    """
    per_query = per_query_frame(systems)
    roles = [r for r in ROLES if r in systems]
    pipelines = pipelines or {}
    out = RunResults(method, {r: System(r, pipelines[r].name if r in pipelines else res.name, res.metrics, res.seconds,
                                        res.conditions, pipelines.get(r))
                              for r, res in ((r, systems[r]) for r in roles)},
                     fusion=fusion, training=training, question_origin=question_origin,
                     total_seconds=total_seconds, notes=list(notes or []), training_seconds=training_seconds)
    problems = out.fairness_problems()
    if problems:
        raise ValueError("Unfair comparison, results not saved: " + "; ".join(problems))
    out.comparisons = stats.compare_systems(per_query, roles)
    fixed_note = fusion.note if fusion is not None and fusion.fixed else None
    sides = {p.uses_tuning for r, p in pipelines.items() if r in systems}
    if sides == {True, False}:
        if val_scores:
            out.best = best_of({r: pipelines[r] for r in roles}, val_scores, "validation", n_val)
        else:
            out.best = best_of({r: pipelines[r] for r in roles}, {r: out.systems[r].metrics[stats.PRIMARY]
                                                                 for r in roles}, "evaluation", out.eval_questions)
        pairs = [(out.best.untuned, out.best.tuned)]
        if "base_hybrid" in roles and HYBRID in roles:
            pairs.append(("base_hybrid", HYBRID))  # what tuning adds to a hybrid the user may already run
        pairs += [(p.first_stage, r) for r, p in pipelines.items()  # each rerank stage against what it reranks
                  if r in roles and p.first_stage in roles]
        done = {(d.a, d.b, d.metric) for d in out.comparisons}
        for a, b in pairs:
            out.comparisons += [stats.compare(per_query, a, b, m) for m in stats.PER_QUERY_METRICS
                                if (a, b, m) not in done and f"{a}|{m}" in per_query]
            done |= {(a, b, m) for m in stats.PER_QUERY_METRICS}
        head = stats.pipeline_verdict(out.best.untuned, out.best.tuned, out.comparisons, out.names)
        dense = stats.verdict(out.comparisons, roles, out.names, fusion_note=fixed_note, recommend=False)
        out.verdict = f"{head} Dense alone: {dense[0].lower()}{dense[1:]}"
    else:
        out.verdict = stats.verdict(out.comparisons, roles, out.names, fusion_note=fixed_note)
    return out, per_query


def per_query_frame(systems: dict[str, RetrievalResult]) -> pd.DataFrame:
    """'<role>|<metric>' columns (gold rank and the per-question metrics) for each system."""
    frames = []
    for role, r in systems.items():
        f = r.per_query[list(PER_QUERY_COLUMNS)].copy()
        f.columns = [f"{role}|{c}" for c in f.columns]
        frames.append(f)
    return pd.concat(frames, axis=1)
