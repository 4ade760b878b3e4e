"""Full fine-tuning with sentence-transformers' Trainer: the only module that builds a Trainer.

Recipe (``FullSettings``, each default with its reason): MultipleNegativesRankingLoss with the
no-duplicates batch sampler (in-batch negatives, none a copy of the positive); CachedMNRL by
default (the same gradients on small memory); optional MatryoshkaLoss; optional hard negatives
mined once from the base model's cached vectors with a relative margin that keeps likely false
negatives out (``core.tuning.pairs``); optional guided in-batch filtering (GISTEmbedLoss). The run's validation hold-out (``core.tuning.holdout``) is scored
with our metrics after each epoch, the best epoch is kept, early stopping; the model is saved
in sentence-transformers format with its passage token limit set to the run's search limit. Optional
weight merging (``FullSettings.merge_base``, WiSE-FT): the kept model mixed with the base weights, the mix
chosen on the same hold-out (:func:`merge_with_base`); hard negatives from BM25 (``negatives_from``).

Resumable: a checkpoint with optimizer and scheduler state is written every
``checkpoint_every`` steps (and at epoch ends), so an interrupted run continues from the last
one (``train_full(..., resume=True)``, the Trainer's ``resume_from_checkpoint``). Cancel lands
within one step and skips any validation pass that has not started.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.dataset import QADataset
from core.retrieval.embedding import forget_fingerprint, load_model
from core.retrieval.evaluation import encode_dataset, evaluate_dense
from core.retrieval.trainer_args import shared_args
from core.tuning import st
from core.tuning.budget import plan_budget
from core.tuning.losses import loss_of
from core.tuning.pairs import mine_bm25_negatives, mine_negatives, positive_texts
from core.workspace.jobs import Cancelled, Reporter

if TYPE_CHECKING:  # the method modules (which the spec reads) import this one
    from core.tuning.methods.full import FullSettings
    from core.tuning.spec import RunSpec

logger = logging.getLogger(__name__)

VAL_METRIC = "mrr@10"  # what picks the best epoch: rewards the first relevant hit near the top
MERGE_WEIGHTS = (0.25, 0.5, 0.75, 1.0)  # weight merging (FullSettings.merge_base): the tuned model's share w
MERGE_METRIC = "nDCG@10"  # what picks the merge weight on the validation hold-out
CHECKPOINTS = "checkpoints"  # folder under the run folder; removed when the run ends (kept when interrupted)


@dataclass
class TrainInfo:
    """What a full fine-tune did (saved in results under ``training``)."""

    steps: int
    epochs_run: float
    pairs: int
    validation_questions: int
    best_metric: str | None
    best_value: float | None
    best_step: int | None
    seconds: float
    resumed_from_step: int | None = None
    budget: str | None = None  # what the time budget left out (``core.tuning.budget``), None: nothing
    merge_weight: float | None = None  # weight merging: the tuned share w kept (None: no merging)
    merge_scores: list[list[float]] | None = None  # [w, validation nDCG@10] per weight tried


def save_whole(model, folder: Path) -> None:
    """The full fine-tune's save: the whole sentence-transformers model."""
    model.save(str(folder))


@dataclass(frozen=True)
class TrainHooks:
    """What a method that trains on this path changes in it (the full fine-tune: nothing).

    Attributes:
        folder: the folder under the run folder the fit is saved to (written whole, then renamed).
        prepare: (model, settings) called once the training pairs are made, before the Trainer is built
            (e.g. adding LoRA layers); None: the model trains as loaded.
        save: (model, folder) writes what the run keeps.
        finish: the trained model -> the model that is scored (e.g. adapters merged); None: itself.
        speed: the method's training time per token relative to the full fine-tune's (its cost model's factor):
            the time budget (``core.tuning.budget``) counts with it.
        load_checkpoint: (model, checkpoint folder) loads a checkpoint the Trainer wrote back into the model being
            trained (the best epoch at the end, or resuming), for methods whose checkpoints sentence-transformers
            cannot load as a whole model (adapter weights only); None: the Trainer's own loading.
    """

    folder: str = "model"
    prepare: Callable[[Any, Any], None] | None = None
    save: Callable[[Any, Path], None] = save_whole
    finish: Callable[[Any], Any] | None = None
    load_checkpoint: Callable[[Any, Path], None] | None = None
    speed: float = 1.0  # training time per token relative to the full fine-tune (the estimate's; the time budget)


FULL_HOOKS = TrainHooks()


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest resumable checkpoint of a run folder (one with optimizer state), or None."""
    folder = Path(run_dir) / CHECKPOINTS
    if not folder.is_dir():
        return None
    found = [p for p in folder.glob("checkpoint-*") if (p / "trainer_state.json").exists()
             and (p / "optimizer.pt").exists() and p.name.split("-")[-1].isdigit()]
    return max(found, key=lambda p: int(p.name.split("-")[-1]), default=None)


def make_evaluator(val: QADataset, reporter: Reporter, passage_tokens: int, name: str = "val",
                   overlap: int | None = None):
    """A sentence-transformers evaluator that scores ``val`` with our metrics and reports them.

    Passages are encoded at ``passage_tokens`` (the run's search limit), then the model's
    training length is restored. A cancel requested before or during the pass stops it.
    """
    class RetrievalEvaluator(st.sentence_evaluator()):
        def __init__(self):
            super().__init__()
            self.name = name
            self.primary_metric = VAL_METRIC
            self.greater_is_better = True

        def __call__(self, model, output_path=None, epoch: int = -1, steps: int = -1) -> dict[str, float]:
            reporter.check_cancel()
            reporter.phase("evaluating", f"Scoring {len(val):,} validation questions")

            def progress(done: int, total: int, unit: str) -> None:
                reporter.check_cancel()
                reporter.progress(done, total, unit)

            train_len = model.max_seq_length
            try:
                res = evaluate_dense(model, val, passage_tokens=passage_tokens, progress=progress, overlap=overlap)
            finally:
                model.max_seq_length = train_len
            reporter.evaluation(steps, res.metrics)
            reporter.phase("training", "Training")
            metrics = self.prefix_name_to_metrics({k.lower(): v for k, v in res.metrics.items()}, self.name)
            self.store_metrics_in_model_card_data(model, metrics, epoch, steps)
            return metrics

    return RetrievalEvaluator()


def _callbacks(reporter: Reporter, checkpoint_every: int):
    from transformers import TrainerCallback

    class ProgressCallback(TrainerCallback):
        """Steps, losses and cancel; a resumable checkpoint every ``checkpoint_every`` steps."""

        def on_train_begin(self, args, state, control, **kw):
            reporter.phase("training", "Training")
            reporter.progress(state.global_step, state.max_steps, "steps", 0.0)

        def on_step_end(self, args, state, control, **kw):
            reporter.progress(state.global_step, state.max_steps, "steps", state.epoch)
            if checkpoint_every > 0 and state.global_step % checkpoint_every == 0:
                control.should_save = True
            if reporter.should_stop():
                control.should_training_stop = True
                control.should_evaluate = False
                control.should_save = False

        def on_epoch_end(self, args, state, control, **kw):
            if reporter.should_stop():  # no validation pass or save after a cancel
                control.should_evaluate = False
                control.should_save = False

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                reporter.loss(state.global_step, float(logs["loss"]))

    return ProgressCallback()


def training_pairs(train: QADataset, model, settings: FullSettings, passage_tokens: int, cache, reporter: Reporter):
    """The Trainer's dataset: anchor, positive[, negative_1..n] columns (see ``core.tuning.pairs``)."""
    from datasets import Dataset

    def progress(done: int, total: int, unit: str) -> None:
        reporter.check_cancel()
        reporter.progress(done, total, unit)

    if settings.train_passage != "first":
        how = {"best": "the one the base model scores best", "answer": "the one holding the answer, else the best",
               "all": "every window"}.get(settings.train_passage, settings.train_passage)
        reporter.phase("preparing", f"Choosing the training window of each long passage ({how})")
    rows = positive_texts(train, model, settings.train_passage, settings.max_seq_length, cache, progress)
    data: dict[str, list] = {"anchor": [q for _, q, _ in rows], "positive": [p for _, _, p in rows]}
    negs = {q: [d for d in train.negatives.get(q, []) if d in train.corpus] for q in train.query_ids}
    n_neg = settings.hard_negatives
    if n_neg > 0 and not any(negs.values()) and getattr(settings, "negatives_from", "dense") == "bm25":
        reporter.phase("mining", f"Mining {n_neg} hard negative(s) per question with keyword search (BM25)")
        negs = mine_bm25_negatives(train, num=n_neg, range_max=settings.hn_range_max,
                                   relative_margin=settings.hn_relative_margin)
    elif n_neg > 0 and not any(negs.values()):
        reporter.phase("mining", f"Mining {n_neg} hard negative(s) per question from the base model's vectors")
        q_vecs, d_vecs = encode_dataset(model, train, passage_tokens, cache=cache, progress=progress)
        ids = list(train.corpus)
        row = {d: i for i, d in enumerate(ids)}
        mined = mine_negatives(q_vecs, [[row[d] for d in train.relevant_docs[q]] for q in train.query_ids], d_vecs,
                               num=n_neg, range_max=settings.hn_range_max, relative_margin=settings.hn_relative_margin)
        negs = {q: [ids[i] for i in m] for q, m in zip(train.query_ids, mined)}
        model.max_seq_length = settings.max_seq_length
    if n_neg > 0 or any(negs.values()):
        n_neg = max(n_neg, 1)
        keep = [i for i, (q, _, _) in enumerate(rows) if len(negs.get(q, [])) >= n_neg]
        if len(keep) < len(rows):
            reporter.note(f"{len(rows) - len(keep)} of {len(rows)} pairs had no negative past the margin and were "
                          "left out.")
        data = {k: [v[i] for i in keep] for k, v in data.items()}
        for j in range(n_neg):
            data[f"negative_{j + 1}"] = [train.corpus[negs[rows[i][0]][j]] for i in keep]
    return Dataset.from_dict(data)


def build_loss(model, settings: FullSettings, base_model: str | None = None, device: str | None = None):
    """The settings' loss (``core.tuning.losses``), with the base model loaded again, frozen, as its guide
    when the loss needs one."""
    loss = loss_of(settings.loss)
    guide = None
    if loss.needs_guide:
        guide = load_model(base_model, device=device)  # the base model, frozen: judges in-batch negatives
        guide.max_seq_length = settings.max_seq_length
    return loss.build(st.losses(), model, settings, guide)


def _training_args(settings: FullSettings, seed: int, ckpt: Path, use_val: bool, device: str | None):
    from sentence_transformers import SentenceTransformerTrainingArguments
    from sentence_transformers.training_args import BatchSamplers

    by_steps = settings.max_steps > 0  # smoke runs: validate and save once, at the last step
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1  # started by torchrun (core.tuning.ddp)
    import torch

    gpu = torch.cuda.is_available() and device != "cpu"
    return SentenceTransformerTrainingArguments(
        # bf16 on a CPU: measured on this path (bench/bench_bf16.py); not across processes (torchrun with gloo)
        **shared_args(device, seed, cpu_bf16_ok=not distributed),
        output_dir=str(ckpt),
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps,
        per_device_train_batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        warmup_steps=settings.warmup_ratio,  # a float below 1 is a share of the steps (transformers 5)
        lr_scheduler_type=settings.scheduler,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        eval_strategy=("steps" if by_steps else "epoch") if use_val else "no",
        eval_steps=settings.max_steps if use_val and by_steps else None,
        save_strategy="steps" if by_steps else "epoch",
        save_steps=settings.max_steps if by_steps else None,
        save_only_model=False,  # optimizer + scheduler state: what resuming needs
        save_total_limit=2,  # the best checkpoint is kept on top of this
        load_best_model_at_end=use_val,
        metric_for_best_model=f"eval_val_{VAL_METRIC}" if use_val else None,
        greater_is_better=True,
        ddp_backend=("nccl" if gpu else "gloo") if distributed else None,
        ddp_find_unused_parameters=False if distributed else None,
    )


def interpolate(base: dict, tuned: dict, w: float) -> dict:
    """Weights ``(1 - w) x base + w x tuned`` for every floating-point tensor of two state dicts of one
    architecture (other tensors, e.g. position ids, are the tuned model's).

    Raises:
        ValueError: the two state dicts do not hold the same tensors (not the same architecture).
    """
    if set(base) != set(tuned) or any(base[k].shape != tuned[k].shape for k in tuned):
        raise ValueError("Weight merging needs the base and the tuned model to have the same architecture.")
    return {k: (1 - w) * base[k].to(v.dtype) + w * v if v.is_floating_point() else v for k, v in tuned.items()}


def choose_merge(scores: list[tuple[float, float]]) -> float:
    """The merge weight with the best validation score, of ``[(w, score), ...]``; a tie goes to the larger w
    (the less merged model: merging must earn its place)."""
    if not scores:
        raise ValueError("no merge weight was scored")
    return max(scores, key=lambda ws: (round(ws[1], 10), ws[0]))[0]


def merge_with_base(model, base_model: str | None, val: QADataset, passage_tokens: int, reporter: Reporter,
                    weights: tuple[float, ...] = MERGE_WEIGHTS, device: str | None = None,
                    overlap: int | None = None) -> tuple[float, list[list[float]]]:
    """Weight merging (WiSE-FT): ``model`` (tuned) becomes ``(1 - w) x base + w x tuned`` for the ``w`` of
    ``weights`` whose validation nDCG@10 on ``val`` is best (ties: the larger w).

    Only ``val`` (the run's hold-out) is scored: the evaluation questions never choose. ``model``'s weights
    are changed in place; its ``max_seq_length`` is kept.

    Returns:
        (the chosen w, [[w, validation nDCG@10], ...] in the order tried).
    """
    import torch

    train_len = model.max_seq_length
    reporter.phase("evaluating", f"Weight merging: scoring {len(weights)} mixes of the tuned and base weights on "
                              f"{len(val):,} validation questions")
    base = load_model(base_model, device=device)
    with torch.no_grad():
        base_sd = {k: v.detach().to(next(model.parameters()).device).clone() for k, v in base.state_dict().items()}
        tuned_sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    del base
    scores: list[list[float]] = []
    try:
        for w in weights:
            reporter.check_cancel()
            with torch.no_grad():
                model.load_state_dict(interpolate(base_sd, tuned_sd, float(w)))
            forget_fingerprint(model)
            res = evaluate_dense(model, val, passage_tokens=passage_tokens, overlap=overlap,
                                 progress=lambda done, total, unit: reporter.progress(done, total, unit))
            scores.append([float(w), float(res.metrics[MERGE_METRIC])])
            logger.info("merge w=%.2f: validation %s %.4f", w, MERGE_METRIC, scores[-1][1])
        chosen = choose_merge([(w, v) for w, v in scores])
        with torch.no_grad():
            model.load_state_dict(interpolate(base_sd, tuned_sd, chosen))
    except BaseException:
        with torch.no_grad():
            model.load_state_dict(tuned_sd)
        raise
    finally:
        forget_fingerprint(model)
        model.max_seq_length = train_len
    return chosen, scores


def train_full(train: QADataset, val: QADataset | None, spec: RunSpec, run_dir: str | Path,
               reporter: Reporter | None = None, device: str | None = None,
               resume: bool = False, cache=None, hooks: TrainHooks = FULL_HOOKS) -> tuple[Any, TrainInfo]:
    """Fine-tune ``spec.base_model`` on ``train`` and save it to ``run_dir/model`` (``hooks.folder``).

    Args:
        train: the training part (the validation hold-out already removed); its negatives are
            used when present, else mined when ``hard_negatives`` > 0.
        val: the validation hold-out (picks the best epoch), or None (the last epoch is kept).
        spec: the run spec; ``spec.settings`` is the ``FullSettings``.
        run_dir: the run folder; ``model/`` is written there, checkpoints are removed at the end.
        reporter: phases, steps, losses, validation metrics; ``should_stop()`` cancels within a step.
        device: "cpu" / "cuda" / "mps"; None picks the best available.
        resume: continue from the run folder's latest checkpoint (see ``latest_checkpoint``).
        cache: the embedding cache (base-model vectors for window choice and mining are read from it).
        hooks: what the method changes in this path (``TrainHooks``; the full fine-tune: nothing).

    Returns:
        (the tuned model, its max_seq_length set to the run's passage token limit; TrainInfo).

    Raises:
        Cancelled: the reporter asked to stop (checkpoints are removed).
        ValueError: fewer than 2 training questions, or ``resume`` without a checkpoint.
    """
    from accelerate.utils import extract_model_from_parallel
    from sentence_transformers import SentenceTransformerTrainer
    from transformers import EarlyStoppingCallback
    from transformers.trainer_callback import PrinterCallback

    settings: FullSettings = spec.settings
    reporter = reporter or Reporter()
    run_dir = Path(run_dir)
    ckpt = run_dir / CHECKPOINTS
    start = latest_checkpoint(run_dir) if resume else None
    if resume and start is None:
        raise ValueError("This run has no saved checkpoint to resume from: launch it again instead.")
    t0 = time.perf_counter()
    reporter.phase("preparing", "Loading the base model")
    model = load_model(spec.base_model, device=device)
    model.max_seq_length = settings.max_seq_length
    if len(train) < 2:
        raise ValueError("Training needs at least 2 questions with a passage.")
    if val is None:
        reporter.note("No validation questions were held out: the last epoch is kept.")
    budget = plan_budget(settings, train, spec.seed, hooks.speed)  # after the hold-out: subsets training only
    if budget.mix:
        reporter.note(budget.mix)
    if budget.cut:
        reporter.note(budget.line(done=False))
    train = budget.kept  # the mix and the budget's subset (the split itself when neither left anything out)
    pairs = training_pairs(train, model, settings, spec.scoring.passage_tokens, cache, reporter)
    model.max_seq_length = settings.max_seq_length
    if hooks.prepare is not None:
        hooks.prepare(model, settings)
    reporter.check_cancel()
    use_val = val is not None
    callbacks = [_callbacks(reporter, settings.checkpoint_every)]
    if use_val and settings.early_stopping_patience > 0:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=settings.early_stopping_patience))
    trainer = SentenceTransformerTrainer(
        model=model,
        args=_training_args(settings, spec.seed, ckpt, use_val, device),
        train_dataset=pairs,
        loss=build_loss(model, settings, spec.base_model, device),
        evaluator=make_evaluator(val, reporter, spec.scoring.passage_tokens, overlap=spec.overlap) if use_val else None,
        callbacks=callbacks,
    )
    trainer.remove_callback(PrinterCallback)  # log dicts go to the reporter, not to stdout
    if hooks.load_checkpoint is not None:  # the method's checkpoints: its own loader (best epoch, resuming)
        trainer._load_from_checkpoint = lambda path, model=None: hooks.load_checkpoint(trainer.model, Path(path))
    if start is not None:
        reporter.note(f"Resuming from {start.name} (step {start.name.split('-')[-1]}).")
        logger.info("resuming %s from %s", run_dir.name, start)
    try:
        trainer.train(resume_from_checkpoint=str(start) if start else None)
    except Cancelled:
        shutil.rmtree(ckpt, ignore_errors=True)
        raise
    # the Trainer (accelerate) wrapped the model's forward in its mixed-precision autocast: take it off, so the
    # tuned model encodes as the base model does (float32 on a CPU) and as the saved model will
    extract_model_from_parallel(model, keep_fp32_wrapper=False)
    if reporter.should_stop():
        shutil.rmtree(ckpt, ignore_errors=True)
        raise Cancelled()
    state = trainer.state
    best_step = None
    if use_val and state.best_model_checkpoint:
        tail = Path(state.best_model_checkpoint).name.split("-")[-1]
        best_step = int(tail) if tail.isdigit() else None
    merge_weight, merge_scores = None, None
    if getattr(settings, "merge_base", False):
        if hooks != FULL_HOOKS:
            reporter.note("Weight merging applies to the full fine-tune only: the model is kept as trained.")
        elif not use_val:
            reporter.note("Weight merging needs validation questions to choose the weight: the model is kept as "
                          "trained.")
        else:
            merge_weight, merge_scores = merge_with_base(model, spec.base_model, val, spec.scoring.passage_tokens,
                                                         reporter, device=device, overlap=spec.overlap)
    reporter.phase("saving", "Saving the tuned model")
    model.max_seq_length = spec.scoring.passage_tokens  # the tuned model searches like the base model
    if int(os.environ.get("RANK", "0")) == 0:  # one writer when several processes trained (torchrun)
        staged = run_dir / f".{hooks.folder}.tmp"  # saved whole, then renamed: never a half-written model/
        shutil.rmtree(staged, ignore_errors=True)
        try:
            hooks.save(model, staged)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        shutil.rmtree(run_dir / hooks.folder, ignore_errors=True)
        os.replace(staged, run_dir / hooks.folder)
        shutil.rmtree(ckpt, ignore_errors=True)
    if hooks.finish is not None:
        model = hooks.finish(model)
    forget_fingerprint(model)
    info = TrainInfo(
        steps=state.global_step,
        epochs_run=float(state.epoch or 0),
        pairs=len(pairs),
        validation_questions=len(val) if val else 0,
        best_metric=f"validation {VAL_METRIC.replace('mrr', 'MRR')}" if use_val and state.best_metric is not None
        else None,
        best_value=float(state.best_metric) if use_val and state.best_metric is not None else None,
        best_step=best_step,
        seconds=time.perf_counter() - t0,
        resumed_from_step=int(start.name.split("-")[-1]) if start else None,
        budget=" ".join(x for x in (budget.mix, budget.line()) if x) or None,  # what the mix and the budget left out
        merge_weight=merge_weight,
        merge_scores=merge_scores,
    )
    return model, info


def append_model_card_metrics(model_dir: str | Path, table_markdown: str, note: str = "") -> None:
    """Add an evaluation section (our metrics table) to the saved model's README.md."""
    readme = Path(model_dir) / "README.md"
    text = readme.read_text(encoding="utf-8") if readme.exists() else "# Fine-tuned embedding model\n"
    heading = "\n\n## Evaluation (Embedding Tuning Lab)\n\n"
    text = text.split(heading)[0]  # a re-scored run (e.g. a rerank stage added) replaces its section
    readme.write_text(text + heading + (note + "\n\n" if note else "") + table_markdown + "\n", encoding="utf-8")
