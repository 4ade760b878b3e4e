"""One run end to end: base scores, the method's fit, tuned scores, BM25 and hybrid, results.

``run_method`` executes a full / adapter / NUDGE run that the store holds (its spec in
``config.json``). Every dense system is scored at the spec's passage token limit through
``core.retrieval.evaluation`` (base and tuned alike), the validation hold-out is removed from
the fit of every method and picks the hybrid's fusion, and the results are written once
(``core.retrieval.results``). A shoot-out runs several of these (``core.tuning.shootout``);
``core.execute`` dispatches between the two.

Files written into the run folder besides the results: ``model/`` (full fine-tune),
``adapter.npz`` (adapter), ``nudged.npy`` + ``nudged_ids.json`` (NUDGE).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.dataset import DataError, QADataset, question_origin
from core.retrieval.backends import backend_of, with_backend
from core.retrieval.coverage import run_end_summary
from core.retrieval.embedding import EmbeddingCache, load_model
from core.retrieval.evaluation import (
    Conditions,
    RetrievalResult,
    dense_ranking,
    encode_dataset,
    evaluate_bm25,
    evaluate_dense,
    evaluate_vectors,
    model_name,
    score_ranking,
)
from core.retrieval.fusion import FusionChoice, choose_fusion, fuse
from core.retrieval.index import DenseIndex, Ranking
from core.retrieval.pipeline import BASE, BASE_HYBRID, BM25, HYBRID, TUNED, standard_pipelines
from core.retrieval.results import RunResults, build_results
from core.tuning.adapter import LinearAdapter, fit_linear_adapter
from core.tuning.holdout import split_validation
from core.tuning.nudge import nudge, nudge_applies, replace_nudged
from core.tuning.rerank_stage import rerank_stage
from core.tuning.spec import RunSpec
from core.workspace.files import atomic_save_npy, atomic_write_json, read_json
from core.workspace.jobs import Reporter
from core.workspace.run_folder import judgments_at_start, load_results, save_results
from core.workspace.store import Store

logger = logging.getLogger(__name__)



def create_run(store: Store, dataset_id: str, spec: RunSpec, name: str | None = None) -> str:
    """Save a new queued run of ``spec`` on dataset ``dataset_id``; returns its id."""
    return store.create_run(dataset_id, spec.method, spec.to_dict(), name=name)


def load_spec(store: Store, run_id: str) -> RunSpec:
    """The spec a run was created with (read back from its config.json)."""
    return RunSpec.load(store.run_dir(run_id))


def eval_origin(store: Store, dataset_id: str, ev: QADataset) -> str:
    """What the evaluation questions are: from each question's recorded origin, else from the dataset's
    metadata, else "as uploaded"."""
    found = question_origin(ev)
    if found != "as uploaded":
        return found
    meta = json.loads(store.get_dataset(dataset_id).get("meta") or "{}")
    return meta.get("question_origin") or found


@dataclass
class _Context:
    """What every method's fit receives."""

    spec: RunSpec
    base: object  # the base SentenceTransformer, at the run's passage token limit
    train: QADataset  # training part (validation hold-out removed)
    val: QADataset | None
    ev: QADataset
    cache: object
    reporter: Reporter
    run_dir: Path
    device: str | None
    resume: bool
    onnx_dir: Path | None = None  # the workspace's cache/onnx (ONNX exports of the encoding backend)
    reuse: bool = False  # re-score with the fit the run saved (model/, adapter.npz, nudged.npy): no training

    def progress(self, done: int, total: int, unit: str) -> None:
        self.reporter.check_cancel()
        self.reporter.progress(done, total, unit)

    def encoder(self, model, which: str):
        """``model`` on the run's encoding backend (``core.retrieval.backends``; torch: the model itself)."""
        return _on_backend(model, self.spec, self.onnx_dir, self.reporter, which)

    def vectors(self, ds: QADataset, label: str) -> tuple[np.ndarray, np.ndarray]:
        """(query vectors, passage vectors) of ``ds`` from the base model (cached)."""
        self.reporter.phase("encoding", f"Encoding {label} with the base model: {len(ds.corpus)} passages, "
                                        f"{len(ds)} questions")
        return encode_dataset(self.base, ds, self.spec.scoring.passage_tokens, cache=self.cache,
                              progress=self.progress)

    def search_vectors(self, ds: QADataset, label: str) -> tuple[np.ndarray, np.ndarray, tuple | None]:
        """(query vectors, passage vectors, windows or None) of ``ds`` from the base model, as the run
        searches (windowed passages when the scoring says so; cached)."""
        self.reporter.phase("encoding", f"Encoding {label} with the base model: {len(ds.corpus)} passages, "
                                        f"{len(ds)} questions")
        found = dense_ranking(self.base, ds, self.spec.scoring.passage_tokens, cache=self.cache,
                              progress=self.progress, overlap=self.spec.overlap)
        return found.queries, found.passages, found.windows


ValRanking = Callable[[QADataset], Ranking]
RERANK_LINE_MARK = "Rerank stage: "  # starts each training line the rerank stage wrote (dropped on re-scoring)


def _fit_full(ctx: _Context) -> tuple[RetrievalResult, list[str], ValRanking, float]:
    from core.tuning.full import TrainInfo, train_full

    info = None
    if ctx.reuse:  # re-scoring: the saved tuned model
        ctx.reporter.phase("preparing", "Loading the tuned model the run saved")
        model = load_model(str(ctx.run_dir / "model"), device=ctx.device)
    elif ctx.spec.settings.processes > 1:  # several processes: torchrun workers train, this process scores
        from core.tuning.ddp import launch  # torch.distributed and torchrun: only for several processes

        info = TrainInfo(**launch(ctx.run_dir, ctx.spec.settings.processes, ctx.cache.path, ctx.reporter, ctx.resume))
        model = load_model(str(ctx.run_dir / "model"), device=ctx.device)
    else:
        model, info = train_full(ctx.train, ctx.val, ctx.spec, ctx.run_dir, ctx.reporter, ctx.device, ctx.resume,
                                 cache=ctx.cache)
    model = ctx.encoder(model, "tuned")
    ctx.reporter.phase("evaluating", f"Scoring the tuned model: {len(ctx.ev)} evaluation questions")
    res = evaluate_dense(model, ctx.ev, passage_tokens=ctx.spec.scoring.passage_tokens, name="tuned (full)",
                         cache=ctx.cache, progress=ctx.progress, label=f"tuned model of {ctx.run_dir.name}",
                         overlap=ctx.spec.overlap)
    procs = ctx.spec.settings.processes

    def val_ranking(val: QADataset) -> Ranking:
        ctx.reporter.phase("evaluating", f"Choosing the hybrid's fusion on {len(val)} validation questions")
        return dense_ranking(model, val, ctx.spec.scoring.passage_tokens, cache=ctx.cache,
                             progress=ctx.progress, overlap=ctx.spec.overlap).ranking

    if info is None:
        return res, [], val_ranking, 0.0
    lines = [f"Trained {info.steps} steps ({info.epochs_run:.1f} epochs) on {info.pairs} pairs in "
             f"{info.seconds / 60:.1f} min" + (f", {procs} processes (torchrun)." if procs > 1 else ".")]
    if info.resumed_from_step:
        lines.append(f"Resumed after an interruption from the checkpoint at step {info.resumed_from_step}.")
    if info.best_value is not None:
        lines.append(f"The {info.best_metric} was best ({info.best_value:.3f}) at step {info.best_step}: "
                     f"that checkpoint is the tuned model ({info.validation_questions} held-out questions).")
    else:
        lines.append("No validation questions were held out: the model after the last step is kept.")
    return res, lines, val_ranking, info.seconds


def _positives(ds: QADataset, ids: list[str]) -> list[list[int]]:
    row = {d: i for i, d in enumerate(ids)}
    return [[row[d] for d in ds.relevant_docs[q] if d in row] for q in ds.query_ids]


def _fit_adapter(ctx: _Context) -> tuple[RetrievalResult, list[str], ValRanking, float]:
    t0 = time.perf_counter()
    s = ctx.spec.settings
    if ctx.reuse:  # re-scoring: the saved adapter
        adapter, hist, fit_seconds = LinearAdapter.load(ctx.run_dir / "adapter.npz"), None, 0.0
    else:
        q_vecs, d_vecs = ctx.vectors(ctx.train, "the training questions")
        ids = list(ctx.train.corpus)
        ctx.reporter.phase("training", "Fitting the query adapter")
        adapter, hist = fit_linear_adapter(
            q_vecs, _positives(ctx.train, ids), d_vecs, epochs=s.epochs, lr=s.lr, temperature=s.temperature,
            weight_decay=s.weight_decay, batch_size=s.batch_size, val_fraction=s.val_fraction, seed=ctx.spec.seed,
            patience=s.patience,
            progress=lambda m, f: ctx.reporter.progress(int(round(f * s.epochs)), s.epochs, "epochs"),
            should_stop=ctx.reporter.should_stop, corpus_ids=ids)
        fit_seconds = time.perf_counter() - t0
        for i, loss in enumerate(hist.losses):
            ctx.reporter.loss(i + 1, loss)
        ctx.reporter.check_cancel()
        adapter.save(ctx.run_dir / "adapter.npz")
    e_q, e_d, e_w = ctx.search_vectors(ctx.ev, "the evaluation data")
    label = f"{model_name(ctx.base)} + query adapter"
    res = evaluate_vectors("tuned (adapter)", ctx.ev, adapter.transform(e_q), e_d,
                           Conditions.of(ctx.ev, ctx.spec.scoring.passage_tokens, label, ctx.spec.overlap,
                                         backend=backend_of(ctx.base)),
                           time.perf_counter() - t0, windows=e_w)

    def val_ranking(val: QADataset) -> Ranking:
        vq, vd, vw = ctx.search_vectors(val, "the validation questions")
        return evaluate_vectors("v", val, adapter.transform(vq), vd, res.conditions, windows=vw).ranking()

    if hist is None:
        return res, [], val_ranking, fit_seconds
    c = hist.chosen
    kept = "no change (the identity: no epoch beat the base model)" if c["epoch"] == 0 else f"epoch {c['epoch']}"
    lines = [f"Query adapter fitted on {c['n_train']} questions; {c['n_val']} of them held back chose what to keep: "
             f"{kept}."]
    if c.get("val_mrr@10") is not None:
        lines.append(f"Its validation MRR@10 was {c['val_mrr@10']:.3f} against {c['baseline_val_mrr@10']:.3f} "
                     "for the base model.")
    return res, lines, val_ranking, fit_seconds


def _fit_nudge(ctx: _Context) -> tuple[RetrievalResult, list[str], ValRanking, float]:
    ok, why = nudge_applies(ctx.train.corpus, ctx.ev.corpus)
    if not ok:
        raise DataError(why)
    if ctx.spec.scoring.windows:
        raise DataError("NUDGE moves one stored vector per passage; with windowed passages each passage has "
                        "several. Turn 'Windowed passages' off for NUDGE, or use the adapter or a full fine-tune.")
    t0 = time.perf_counter()
    if ctx.reuse:  # re-scoring: the saved nudged vectors
        new_d = np.load(ctx.run_dir / "nudged.npy", allow_pickle=False)
        ids = read_json(ctx.run_dir / "nudged_ids.json")
        return _score_nudge(ctx, new_d, ids, t0, [], 0.0)
    q_vecs, d_vecs = ctx.vectors(ctx.train, "the training questions")
    ids = list(ctx.train.corpus)
    ctx.reporter.phase("training", "NUDGE: moving passage vectors toward their questions")
    s = ctx.spec.settings
    new_d, hist = nudge(q_vecs, _positives(ctx.train, ids), d_vecs, variant=s.variant, val_fraction=s.val_fraction,
                        seed=ctx.spec.seed, corpus_ids=ids,
                        progress=lambda m, f: ctx.reporter.progress(int(f * 100), 100, "% of step sizes"))
    fit_seconds = time.perf_counter() - t0
    ctx.reporter.check_cancel()
    atomic_save_npy(ctx.run_dir / "nudged.npy", new_d.astype(np.float32))
    atomic_write_json(ctx.run_dir / "nudged_ids.json", ids)
    c = hist.chosen
    lines = [f"{c['variant']}: step size {c['gamma']:g} chosen on {c['n_val']} held-back training questions; "
             f"{c['passages_changed']} passages moved."]
    return _score_nudge(ctx, new_d, ids, t0, lines, fit_seconds)


def _score_nudge(ctx: _Context, new_d: np.ndarray, ids: list[str], t0: float, lines: list[str],
                 fit_seconds: float) -> tuple[RetrievalResult, list[str], ValRanking, float]:
    e_q, e_d = ctx.vectors(ctx.ev, "the evaluation data")
    label = f"{model_name(ctx.base)} + NUDGE passage vectors"
    res = evaluate_vectors("tuned (NUDGE)", ctx.ev, e_q, replace_nudged(list(ctx.ev.corpus), e_d, ids, new_d),
                           Conditions.of(ctx.ev, ctx.spec.scoring.passage_tokens, label, backend=backend_of(ctx.base)),
                           time.perf_counter() - t0)

    def val_ranking(val: QADataset) -> Ranking:
        vq, vd = ctx.vectors(val, "the validation questions")
        return DenseIndex(list(val.corpus), replace_nudged(list(val.corpus), vd, ids, new_d)).search(vq)

    return res, lines, val_ranking, fit_seconds


FITS = {"full": _fit_full, "adapter": _fit_adapter, "nudge": _fit_nudge}


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
    ctx.reporter.phase("evaluating", f"Choosing the base hybrid's fusion on the same {len(val)} validation questions")
    base = dense_ranking(ctx.base, val, ctx.spec.scoring.passage_tokens, cache=ctx.cache, progress=ctx.progress,
                         overlap=ctx.spec.overlap).ranking
    fusions = {BASE_HYBRID: choose_fusion(val, base, sparse=sparse, label="Base hybrid"),
               HYBRID: choose_fusion(val, tuned, sparse=sparse, label="Tuned hybrid")}
    rankings = {BASE: base, TUNED: tuned, BM25: sparse, BASE_HYBRID: fuse(base, sparse, fusions[BASE_HYBRID]),
                HYBRID: fuse(tuned, sparse, fusions[HYBRID])}
    ndcg = {r: score_ranking(r, val, rk).metrics["nDCG@10"] for r, rk in rankings.items()}
    return fusions, ndcg, rankings


def _on_backend(model, spec: RunSpec, onnx_dir: Path | None, reporter: Reporter, which: str):
    """``model`` on ``spec.scoring.backend``; an ONNX backend exports the model once (progress shown)."""
    backend = spec.scoring.backend
    if backend == "torch":
        return model
    reporter.phase("preparing", f"Preparing the {which} model for the {backend} backend (an ONNX export, once "
                                "per model)")
    return with_backend(model, backend, onnx_dir, progress=lambda done, total, unit: reporter.progress(done, total, unit))


def run_method(store: Store, run_id: str, reporter: Reporter | None = None, device: str | None = None,
               resume: bool = False, reuse_fit: bool = False) -> RunResults:
    """Execute a full / adapter / NUDGE run and save its results (see the module docstring).

    With ``reuse_fit`` the run is re-scored with the fit it saved (no training): e.g. after a rerank stage
    was added to its spec (``python -m core rescore RUN --rerank``). Encodings come from the cache.

    Raises:
        DataError: the dataset cannot serve this method (no evaluation split; NUDGE on a disjoint corpus).
        core.workspace.jobs.Cancelled: the reporter asked to stop.
    """
    reporter = reporter or Reporter()
    run = store.get_run(run_id)
    spec = load_spec(store, run_id)
    if spec.method not in FITS:
        raise ValueError(f"run_method runs full, adapter or nudge, not {spec.method!r}")
    run_dir = store.run_dir(run_id)
    # re-scoring keeps the data the run was scored on (its own copy), not the dataset as it is now
    train, ev = store.run_data(run_id) if reuse_fit else store.snapshot_run_data(run_id, run["dataset_id"])
    if ev is None or len(ev) == 0:
        raise DataError("This dataset has no evaluation split: split it on the Data page first.")
    t0 = time.perf_counter()
    train_part, val = split_validation(train, spec.scoring.validation_share, spec.seed)
    cache = EmbeddingCache(store.cache_path)
    reporter.phase("preparing", "Loading the base model")
    onnx_dir = store.cache_path.parent / "onnx"
    base = _on_backend(load_model(spec.base_model, device=device), spec, onnx_dir, reporter, "base")
    ctx = _Context(spec, base, train_part, val, ev, cache, reporter, run_dir, device, resume, onnx_dir, reuse_fit)
    before = load_results(run_dir) if reuse_fit else None
    reporter.phase("encoding", f"Scoring the base model: {len(ev)} evaluation questions, {len(ev.corpus)} passages")
    base_res = evaluate_dense(base, ev, passage_tokens=spec.scoring.passage_tokens, name="base", cache=cache,
                              progress=ctx.progress, label=spec.model_label, overlap=spec.overlap)
    reporter.check_cancel()
    tuned, training, val_ranking, fit_seconds = FITS[spec.method](ctx)
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
                                       question_origin=eval_origin(store, run["dataset_id"], ev),
                                       total_seconds=time.perf_counter() - t0, training_seconds=fit_seconds,
                                       pipelines=pipes, val_scores=val_scores, n_val=len(val) if val else 0)
    try:  # the unjudged share of each system's top 10; a run never fails for it
        results.judging = run_end_summary(judgments_at_start(run_dir) or {}, ev, systems, run_id)
    except (OSError, ValueError) as exc:
        logger.warning("judging summary of %s skipped: %s", run_id, exc)
    save_results(run_dir, results, per_query, ev.queries, systems)
    if spec.method == "full":
        from core.tuning.full import append_model_card_metrics

        append_model_card_metrics(run_dir / "model", "\n".join(f"- {line}" for line in results.headline_lines())
                                  + "\n\n" + results.table_markdown(),
                                  f"Evaluated on {len(ev)} held-out questions against {len(ev.corpus)} passages, "
                                  f"passages read at {spec.scoring.passage_tokens} tokens by both models.")
    reporter.phase("done", "Finished")
    logger.info("run %s done: %s", run_id, results.verdict)
    return results
