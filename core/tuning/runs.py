"""One run end to end: base scores, the method's fit, tuned scores, BM25 and hybrid, results.

``run_method`` executes a run of a method with a fit (``core.tuning.methods``: full, adapter, NUDGE, ...)
that the store holds (its spec in ``config.json``); the method's ``fit`` does its part. Every dense system is scored at the spec's passage token limit through
``core.retrieval.evaluation`` (base and tuned alike), the validation hold-out is removed from
the fit of every method and picks the hybrid's fusion, and the results are written once
(``core.retrieval.results``). A shoot-out runs several of these (``core.tuning.shootout``);
``core.execute`` dispatches between the two.

Files written into the run folder besides the results: the method's ``saves`` (``model/`` for the full
fine-tune, ``adapter.npz`` for the adapter, ``nudged.npy`` + ``nudged_ids.json`` for NUDGE, ...).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from core.dataset import DataError, QADataset, corpus_words, question_origin
from core.retrieval.coverage import run_end_summary
from core.retrieval.embedding import EmbeddingCache, load_model
from core.retrieval.evaluation import (
    RetrievalResult,
    dense_ranking,
    evaluate_bm25,
    evaluate_dense,
    score_ranking,
)
from core.retrieval.fusion import FusionChoice, choose_fusion, fuse
from core.retrieval.index import Ranking
from core.retrieval.pipeline import BASE, BASE_HYBRID, BM25, HYBRID, TUNED, standard_pipelines
from core.retrieval.results import RunResults, build_results
from core.tuning.context import FitContext, ValRanking, on_backend
from core.tuning.full import append_model_card_metrics
from core.tuning.holdout import split_validation
from core.tuning.methods import fitted, method_of
from core.tuning.rerank_stage import rerank_stage
from core.tuning.spec import RunSpec
from core.workspace.jobs import Reporter
from core.workspace.run_folder import judgments_at_start, save_results
from core.workspace.store import Store

logger = logging.getLogger(__name__)



def create_run(store: Store, dataset_id: str, spec: RunSpec, name: str | None = None) -> str:
    """Save a new queued run of ``spec`` on dataset ``dataset_id``; returns its id."""
    return store.create_run(dataset_id, spec.method, spec.to_dict(), name=name)


def load_spec(store: Store, run_id: str) -> RunSpec:
    """The spec a run was created with (read back from its config.json)."""
    return RunSpec.load(store.run_dir(run_id))


def eval_origin(dataset_meta: dict, ev: QADataset) -> str:
    """What the evaluation questions are: from each question's recorded origin, else from the dataset's
    metadata, else "as uploaded"."""
    found = question_origin(ev)
    if found != "as uploaded":
        return found
    return dataset_meta.get("question_origin") or found


_Context = FitContext  # what every method's fit receives (core.tuning.context)
RERANK_LINE_MARK = "Rerank stage: "  # starts each training line the rerank stage wrote (dropped on re-scoring)


def _choose_on_validation(ctx: _Context, val: QADataset | None, val_ranking: ValRanking
                          ) -> tuple[dict[str, FusionChoice], dict[str, float] | None, dict[str, Ranking] | None]:
    """Each hybrid's fusion, every pipeline's validation nDCG@10 and ranking, by one procedure on the same
    hold-out.

    The base hybrid gets its own fusion choice exactly as the tuned one does; without a hold-out both use
    fixed RRF and no validation score exists (each side's best is then picked on the evaluation questions).
    """
    if val is None or len(val) == 0:
        return ({BASE_HYBRID: choose_fusion(None, None, label="Base hybrid"),
                 HYBRID: choose_fusion(None, None, label="Tuned hybrid")}, None, None)
    sparse = evaluate_bm25(val).ranking()
    tuned = val_ranking(val)
    ctx.reporter.phase("evaluating", f"Choosing the base hybrid's fusion on the same {len(val):,} validation questions")
    base = dense_ranking(ctx.base, val, ctx.spec.scoring.passage_tokens, cache=ctx.cache, progress=ctx.progress,
                         overlap=ctx.spec.overlap).ranking
    fusions = {BASE_HYBRID: choose_fusion(val, base, sparse=sparse, label="Base hybrid"),
               HYBRID: choose_fusion(val, tuned, sparse=sparse, label="Tuned hybrid")}
    rankings = {BASE: base, TUNED: tuned, BM25: sparse, BASE_HYBRID: fuse(base, sparse, fusions[BASE_HYBRID]),
                HYBRID: fuse(tuned, sparse, fusions[HYBRID])}
    ndcg = {r: score_ranking(r, val, rk).metrics["nDCG@10"] for r, rk in rankings.items()}
    return fusions, ndcg, rankings


_on_backend = on_backend  # the name rerank_stage and older callers know


@dataclass(frozen=True)
class Finished:
    """What a finished run holds in memory once its files are saved: enough for the map's view to be drawn
    without reading them back (``core.insight.explore.RunView.of_finished``)."""

    spec: RunSpec
    eval: QADataset
    results: RunResults
    systems: dict[str, RetrievalResult]


def run_method(store: Store, run_id: str, reporter: Reporter | None = None, device: str | None = None,
               resume: bool = False, rescore: RunResults | None = None) -> RunResults:
    """Execute a run of a method with a fit and save its results (``finish_method``'s results)."""
    return finish_method(store, run_id, reporter, device, resume, rescore).results


def finish_method(store: Store, run_id: str, reporter: Reporter | None = None, device: str | None = None,
                  resume: bool = False, rescore: RunResults | None = None) -> Finished:
    """Execute a run of a method with a fit and save its results (see the module docstring); return what it
    holds at the end.

    With ``rescore`` (the run's earlier results) the run is re-scored with the fit it saved (no training), its
    training lines and time kept from those results: e.g. after a rerank stage was added to its spec (``python -m core rescore RUN --rerank``). Encodings come from the cache.

    Raises:
        DataError: the dataset cannot serve this method (no evaluation split; NUDGE on a disjoint corpus).
        core.workspace.jobs.Cancelled: the reporter asked to stop.
    """
    reporter = reporter or Reporter()
    spec = load_spec(store, run_id)
    method = method_of(spec.method)
    if method.fit is None:
        raise ValueError(f"run_method runs a method with a fit ({', '.join(fitted())}), not {spec.method!r}")
    run_dir = store.run_dir(run_id)
    # re-scoring keeps the data the run was scored on (its own copy), not the dataset as it is now
    reuse_fit = rescore is not None
    train, ev, dataset_meta = store.scoring_data(run_id, fresh=not reuse_fit)
    if ev is None or len(ev) == 0:
        raise DataError("This dataset has no evaluation split: split it on the Data page first.")
    t0 = time.perf_counter()
    train_part, val = split_validation(train, spec.scoring.validation_share, spec.seed, passages=ev.corpus)
    cache = EmbeddingCache(store.cache_path)
    reporter.phase("preparing", "Loading the base model")
    onnx_dir = store.cache_path.parent / "onnx"
    base = _on_backend(load_model(spec.base_model, device=device), spec, onnx_dir, reporter, "base")
    ctx = _Context(spec, base, train_part, val, ev, cache, reporter, run_dir, device, resume, onnx_dir, reuse_fit)
    before = rescore
    reporter.phase("encoding", f"Scoring the base model: {len(ev):,} evaluation questions, {corpus_words(ev)}")
    base_res = evaluate_dense(base, ev, passage_tokens=spec.scoring.passage_tokens, name="base", cache=cache,
                              progress=ctx.progress, label=spec.model_label, overlap=spec.overlap)
    reporter.check_cancel()
    tuned, training, val_ranking, fit_seconds = method.fit(ctx)
    if before is not None:  # re-scored: what the fit did, as the run first reported it
        training = [line for line in before.training if not line.startswith(RERANK_LINE_MARK)]
        fit_seconds = before.training_seconds
    reporter.check_cancel()
    pipes = standard_pipelines(tuned.name)
    fusions, val_scores, val_rankings = _choose_on_validation(ctx, val, val_ranking)
    for role in (BASE_HYBRID, HYBRID):
        pipes[role] = pipes[role].with_fusion(fusions[role])
        reporter.note(fusions[role].note)
    reporter.phase("evaluating", "BM25 and the two hybrids (base + BM25, tuned + BM25)")
    bm25 = evaluate_bm25(ev)
    systems = {BASE: base_res, TUNED: tuned, BM25: bm25}
    for role, dense in ((BASE_HYBRID, base_res), (HYBRID, tuned)):
        systems[role] = score_ranking(pipes[role].name, ev, fuse(dense.ranking(), bm25.ranking(), fusions[role]),
                                      dense.seconds + bm25.seconds, dense.conditions)
    if spec.rerank is not None:
        extra = rerank_stage(ctx, spec.rerank, val, val_rankings, val_scores, systems, pipes)
        systems |= extra.systems
        pipes |= extra.pipelines
        if val_scores is not None:
            val_scores |= extra.val_scores
        training = training + [RERANK_LINE_MARK + line for line in extra.lines]
    results, per_query = build_results(spec.method, systems, fusion=fusions[HYBRID], training=training,
                                       question_origin=eval_origin(dataset_meta, ev),
                                       total_seconds=time.perf_counter() - t0, training_seconds=fit_seconds,
                                       pipelines=pipes, val_scores=val_scores, n_val=len(val) if val else 0)
    try:  # the unjudged share of each system's top 10; a run never fails for it
        results.judging = run_end_summary(judgments_at_start(run_dir) or {}, ev, systems, run_id)
    except (OSError, ValueError) as exc:
        logger.warning("judging summary of %s skipped: %s", run_id, exc)
    save_results(run_dir, results, per_query, ev.queries, systems)
    if method.card_folder is not None:
        append_model_card_metrics(run_dir / method.card_folder, "\n".join(f"- {line}" for line in results.headline_lines())
                                  + "\n\n" + results.table_markdown(),
                                  f"Evaluated on {len(ev)} held-out questions against {len(ev.corpus)} passages, "
                                  f"passages read at {spec.scoring.passage_tokens} tokens by both models.")
    reporter.phase("done", "Finished")
    logger.info("run %s done: %s", run_id, results.verdict)
    return Finished(spec, ev, results, systems)
