"""The optional rerank stage of a run: a cross-encoder over the best first stage, scored like every pipeline.

``core.tuning.runs.run_method`` calls :func:`rerank_stage` once the five first-stage pipelines are
scored (``RunSpec.rerank`` set). Which first stage it reranks is decided by the rule that picks the
best pipeline (``core.retrieval.pipeline.best_of``): the highest nDCG@10 on the validation hold-out,
or on the evaluation questions when nothing was held out.

- A reranker **trained** on the run's training pairs (``RerankSettings.model`` empty) is tuning: it
  reranks the best first stage of all, and the new pipeline ``rerank`` stands on the "with tuning"
  side whatever it reranks.
- A reranker the user **brings** is not tuning: it reranks the best first stage of each side, so
  both sides get it alike (``base_rerank`` without tuning, ``rerank`` with).

Each new pipeline is scored on the evaluation questions and, when a hold-out exists, on it too (so
it takes part in the best-pipeline choice), with its time per question measured here; the trained
cross-encoder is saved in the run folder (``reranker/``) and ships in the export bundle.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace

from core.dataset import QADataset
from core.retrieval.evaluation import RetrievalResult, score_ranking
from core.retrieval.index import Ranking
from core.retrieval.pipeline import BASE_RERANK, RERANK, ROLES, SIMPLICITY, Pipeline
from core.retrieval.rerank import RerankSettings, RerankStopped, load_reranker, rerank_dataset
from core.retrieval.rerank_train import train_reranker
from core.workspace.jobs import Cancelled

logger = logging.getLogger(__name__)

FOLDER = "reranker"  # the trained cross-encoder, in the run folder


@dataclass
class RerankOutcome:
    """What the rerank stage added: systems, pipelines and validation scores by role, and lines for the run."""

    systems: dict[str, RetrievalResult] = field(default_factory=dict)
    pipelines: dict[str, Pipeline] = field(default_factory=dict)
    val_scores: dict[str, float] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _best(roles: list[str], scores: dict[str, float]) -> str:
    return max(roles, key=lambda r: (round(scores[r], 10), -SIMPLICITY.get(r, 9), -ROLES.index(r)))


def rerank_stage(ctx, settings: RerankSettings, val: QADataset | None, val_rankings: dict[str, Ranking] | None,
                 val_scores: dict[str, float] | None, systems: dict[str, RetrievalResult],
                 pipes: dict[str, Pipeline]) -> RerankOutcome:
    """Train or load the cross-encoder and score the reranked pipeline(s) (see the module docstring).

    Args:
        ctx: the run's context (``core.tuning.runs._Context``: training split, evaluation split, reporter, ...).
        settings: the rerank settings.
        val, val_rankings, val_scores: the hold-out, each first-stage pipeline's ranking of it and its nDCG@10
            (None without a hold-out).
        systems, pipes: the scored first-stage pipelines by role.

    Raises:
        core.workspace.jobs.Cancelled: the user stopped the run.
    """
    t0 = time.perf_counter()
    out = RerankOutcome()
    trained = not settings.model
    scores = val_scores or {r: systems[r].metrics["nDCG@10"] for r in pipes}
    if trained:
        targets = [(RERANK, _best(list(pipes), scores))]
    else:
        targets = [(BASE_RERANK, _best([r for r, p in pipes.items() if not p.uses_tuning], scores)),
                   (RERANK, _best([r for r, p in pipes.items() if p.uses_tuning], scores))]
    try:
        if trained:
            ctx.reporter.phase("training", f"Training the reranker (a cross-encoder) on {len(ctx.train)} training "
                                           "questions with mined negatives")
            model, info = train_reranker(ctx.train, ctx.run_dir / FOLDER, settings, ctx.spec.base_model,
                                         progress=ctx.progress, should_stop=ctx.reporter.should_stop,
                                         seed=ctx.spec.seed, device=ctx.device, cache=ctx.cache)
            label = "a cross-encoder trained on this run's questions"
            out.lines.append(f"Reranker: a cross-encoder trained from {info.start_from} on {info.pairs} question/passage "
                             f"pairs ({info.rows} rows with mined negatives) in {info.seconds / 60:.1f} min.")
        else:
            ctx.reporter.phase("preparing", f"Loading the reranker {settings.model}")
            model = load_reranker(settings.model, device=ctx.device, max_length=settings.max_length)
            label = settings.model
        for role, first in targets:
            name = f"{pipes[first].name} + reranker"
            ctx.reporter.phase("evaluating", f"Reranking the top {settings.top_k} of {pipes[first].name} for "
                                             f"{len(ctx.ev)} evaluation questions")
            ranking, per_question = rerank_dataset(model, ctx.ev, systems[first].ranking(), settings.top_k,
                                                   progress=ctx.progress, should_stop=ctx.reporter.should_stop)
            res = score_ranking(name, ctx.ev, ranking, systems[first].seconds + per_question * len(ctx.ev),
                                systems[first].conditions)
            out.systems[role] = res
            out.pipelines[role] = replace(pipes[first], role=role, name=name, rerank=label,
                                          rerank_top_k=settings.top_k, rerank_trained=trained, first_stage=first)
            if val is not None and val_rankings is not None:
                ctx.reporter.phase("evaluating", f"Reranking {pipes[first].name} on {len(val)} validation questions")
                v_rank, _ = rerank_dataset(model, val, val_rankings[first], settings.top_k,
                                           should_stop=ctx.reporter.should_stop)
                out.val_scores[role] = score_ranking(role, val, v_rank).metrics["nDCG@10"]
            out.lines.append(f"{name}: the top {settings.top_k} of {pipes[first].name} rescored at "
                             f"{per_question:.2f} s per question on this machine (nDCG@10 "
                             f"{systems[first].metrics['nDCG@10']:.3f} -> {res.metrics['nDCG@10']:.3f}).")
    except RerankStopped as exc:
        raise Cancelled() from exc
    out.seconds = time.perf_counter() - t0
    logger.info("rerank stage: %s", "; ".join(out.lines))
    return out
