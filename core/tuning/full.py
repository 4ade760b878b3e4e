"""Full fine-tuning: the only module that imports sentence-transformers' trainer and losses.

Recipe (defaults in ``TrainConfig``, each with its reason): MultipleNegativesRankingLoss
with the no-duplicates batch sampler (in-batch negatives, none of them a copy of the
positive); optional CachedMNRL (large effective batch on small memory) and
MatryoshkaLoss; optional hard negatives mined with sentence-transformers' own
``mine_hard_negatives`` and a relative margin that keeps likely false negatives out;
retrieval metrics on a validation part of the training data after each epoch (our
metrics, ``core.retrieval.evaluation``), the best epoch kept, early stopping; the model saved in
sentence-transformers format with a model card that carries its metrics.
"""

from __future__ import annotations

import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.dataset import QADataset
from core.tuning.jobs import Cancelled, Reporter

VAL_METRIC = "mrr@10"  # what picks the best epoch: rewards the first relevant hit near the top
VAL_CORPUS_CAP = 400  # validation searches at most this many passages (its positives + others), for speed


@dataclass
class TrainConfig:
    """Settings of a full fine-tune. Defaults carry their reasons."""

    base_model: str | None = None  # None: the bundled all-MiniLM-L6-v2
    epochs: int = 2  # small domain sets overfit after a few passes; the best epoch is kept anyway
    batch_size: int = 32  # bigger batch = more in-batch negatives for the loss to learn from
    learning_rate: float = 5e-5  # higher than 2e-5: one or two epochs must move a small model
    warmup_ratio: float = 0.1  # short warm-up keeps the first steps from wrecking the pretrained space
    scheduler: str = "linear"  # linear decay to 0 by the last step
    max_seq_length: int = 256  # tokens per text while training: cost grows fast with length on CPU
    index_max_seq_length: int = 512  # tokens per passage when encoding for search (base and tuned alike):
    # long passages cut at 256 lose their second half; encoding is cheap next to training
    loss: str = "cached_mnrl"  # same gradients as plain MNRL, computed in chunks: ~2 GB of RAM instead of ~6
    # at batch 32 (measured on sec-10k), for ~1/3 more compute; "mnrl" | "cached_mnrl" | "matryoshka"
    mini_batch_size: int = 16  # CachedMNRL: texts per forward chunk (memory), not the effective batch
    matryoshka_dims: list[int] = field(default_factory=lambda: [384, 256, 128, 64])
    hard_negatives: int = 0  # mined negatives per pair; 0 = in-batch negatives only
    hn_relative_margin: float = 0.05  # a mined negative must score < 95% of the positive (false-negative guard)
    hn_range_max: int = 30  # mine among the base model's top 30 passages
    val_fraction: float = 0.1  # training questions held out to pick the best epoch (never the eval split)
    early_stopping_patience: int = 2  # epochs without validation gain before stopping
    seed: int = 42
    max_steps: int = -1  # >0 caps training steps (smoke tests)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def _losses():
    """One place that knows where sentence-transformers keeps its losses (they moved in v6)."""
    try:
        from sentence_transformers.sentence_transformer import losses
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers import losses
    return losses


def _evaluator_base():
    try:
        from sentence_transformers.sentence_transformer.evaluation import SentenceEvaluator
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.evaluation import SentenceEvaluator
    return SentenceEvaluator


def split_validation(ds: QADataset, fraction: float, seed: int) -> tuple[QADataset, QADataset | None]:
    """Hold out ``fraction`` of training questions, grouped by passage, for epoch selection.

    Returns (train part, validation part or None when the data is too small). The
    validation corpus is its positives plus random other training passages, capped at
    VAL_CORPUS_CAP.
    """
    qids = ds.query_ids
    if fraction <= 0 or len(qids) < 20:
        return ds, None
    by_doc: dict[str, list[str]] = {}
    for q in qids:
        by_doc.setdefault(ds.relevant_docs[q][0], []).append(q)
    groups = list(by_doc.values())
    random.Random(seed).shuffle(groups)
    val_q: list[str] = []
    for g in groups:
        if len(val_q) >= fraction * len(qids):
            break
        val_q += g
    val_set = set(val_q)
    train_q = [q for q in qids if q not in val_set]
    pos = {d for q in val_q for d in ds.relevant_docs[q]}
    others = [d for d in ds.corpus if d not in pos]
    random.Random(seed).shuffle(others)
    corpus_ids = [d for d in ds.corpus if d in pos or d in set(others[: max(0, VAL_CORPUS_CAP - len(pos))])]
    train_corpus = [d for d in ds.corpus if any(d in ds.relevant_docs[q] or d in ds.negatives.get(q, []) for q in train_q)]
    return ds.subset(train_q, train_corpus), ds.subset(val_q, corpus_ids)


def make_evaluator(val: QADataset, reporter: Reporter, name: str = "val"):
    """A sentence-transformers evaluator that scores with our metrics and reports them."""
    from core.retrieval.embedding import forget_fingerprint
    from core.retrieval.evaluation import evaluate_dense

    base = _evaluator_base()

    class RetrievalEvaluator(base):
        def __init__(self):
            super().__init__()
            self.name = name
            self.primary_metric = VAL_METRIC
            self.greater_is_better = True
            self.step = 0

        def __call__(self, model, output_path=None, epoch: int = -1, steps: int = -1) -> dict[str, float]:
            reporter.phase("evaluating", f"Scoring {len(val)} validation questions")
            forget_fingerprint(model)  # weights changed since the last call
            res = evaluate_dense(model, val, progress=lambda m, f: reporter.progress(int(f * 100), 100))
            metrics = {k.lower(): v for k, v in res.metrics.items()}
            reporter.evaluation(steps, res.metrics)
            reporter.phase("training", "Training")
            metrics = self.prefix_name_to_metrics(metrics, self.name)
            self.store_metrics_in_model_card_data(model, metrics, epoch, steps)
            return metrics

    return RetrievalEvaluator()


def _progress_callback(reporter: Reporter):
    from transformers import TrainerCallback

    class ProgressCallback(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            reporter.phase("training", "Training")
            reporter.progress(0, state.max_steps, 0.0)

        def on_step_end(self, args, state, control, **kw):
            reporter.progress(state.global_step, state.max_steps, state.epoch)
            if reporter.should_stop():
                control.should_training_stop = True
                control.should_evaluate = False
                control.should_save = False

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                reporter.loss(state.global_step, float(logs["loss"]))

    return ProgressCallback()


def _pairs_dataset(ds: QADataset, negatives: dict[str, list[str]] | None = None):
    from datasets import Dataset

    anchors, positives, negs = [], [], []
    for q in ds.query_ids:
        for d in ds.relevant_docs[q]:
            if d not in ds.corpus:
                continue
            anchors.append(ds.queries[q])
            positives.append(ds.corpus[d])
            if negatives is not None:
                n = [x for x in negatives.get(q, []) if x in ds.corpus]
                negs.append(ds.corpus[n[0]] if n else None)
    data: dict[str, list] = {"anchor": anchors, "positive": positives}
    if negatives is not None and all(n is not None for n in negs):
        data["negative"] = negs
    return Dataset.from_dict(data)


def _mine(model, pairs, ds: QADataset, config: TrainConfig, reporter: Reporter):
    from sentence_transformers.util import mine_hard_negatives

    reporter.phase("mining", f"Mining {config.hard_negatives} hard negative(s) per pair")
    mined = mine_hard_negatives(
        pairs,
        model,
        anchor_column_name="anchor",
        positive_column_name="positive",
        corpus=list(ds.corpus.values()),
        range_max=config.hn_range_max,
        relative_margin=config.hn_relative_margin,
        num_negatives=config.hard_negatives,
        sampling_strategy="top",
        output_format="n-tuple" if config.hard_negatives > 1 else "triplet",
        batch_size=config.batch_size,
        verbose=False,
    )
    reporter.note(f"Hard-negative mining kept {len(mined)} of {len(pairs)} pairs (others had no negative past the margin).")
    return mined


def build_loss(model, config: TrainConfig):
    from core.retrieval.embedding import embedding_dim

    losses = _losses()
    if config.loss == "mnrl":
        return losses.MultipleNegativesRankingLoss(model)
    if config.loss == "cached_mnrl":
        return losses.CachedMultipleNegativesRankingLoss(model, mini_batch_size=config.mini_batch_size)
    if config.loss == "matryoshka":
        dims = [d for d in config.matryoshka_dims if d <= embedding_dim(model)]
        return losses.MatryoshkaLoss(model, losses.MultipleNegativesRankingLoss(model), matryoshka_dims=dims)
    raise ValueError(f"unknown loss {config.loss!r}: use mnrl, cached_mnrl or matryoshka")


def train_full(train_ds: QADataset, config: TrainConfig, out_dir: str | Path, reporter: Reporter | None = None,
               device: str | None = None) -> tuple[Any, dict[str, Any]]:
    """Fine-tune a SentenceTransformer on ``train_ds`` and save it to ``out_dir/model``.

    Args:
        train_ds: training questions and passages (its negatives are used if present).
        config: the recipe.
        out_dir: the run folder; ``model/`` is written there, checkpoints are removed.
        reporter: receives phases, steps, losses and validation metrics; its
            ``should_stop()`` cancels within one step.
        device: "cpu" / "cuda" / "mps"; None picks the best available.

    Returns:
        (the tuned model, info dict: steps, seconds, best validation metrics, pairs used).

    Raises:
        Cancelled: the reporter asked to stop.
        ValueError: the dataset has no usable pairs or the config is invalid.
    """
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.training_args import BatchSamplers
    from transformers import EarlyStoppingCallback

    from core.retrieval.embedding import load_model

    reporter = reporter or Reporter()
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    reporter.phase("preparing", "Loading the base model")
    model = load_model(config.base_model, device=device)
    model.max_seq_length = config.max_seq_length
    train_part, val = split_validation(train_ds, config.val_fraction, config.seed)
    if len(train_part) < 2:
        raise ValueError("Training needs at least 2 questions with a passage.")
    if val is None:
        reporter.note("Too few questions to hold some out for validation: the last epoch is kept.")
    user_negs = train_part.negatives or None
    pairs = _pairs_dataset(train_part, user_negs)
    reporter.check_cancel()
    if config.hard_negatives > 0 and "negative" not in pairs.column_names:
        pairs = _mine(model, pairs, train_part, config, reporter)
        reporter.check_cancel()
    loss = build_loss(model, config)
    ckpt = out_dir / "checkpoints"
    use_val = val is not None
    args = SentenceTransformerTrainingArguments(
        output_dir=str(ckpt),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        warmup_ratio=config.warmup_ratio,
        lr_scheduler_type=config.scheduler,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        seed=config.seed,
        data_seed=config.seed,
        eval_strategy="epoch" if use_val and config.max_steps <= 0 else ("steps" if use_val else "no"),
        eval_steps=max(config.max_steps, 1) if use_val and config.max_steps > 0 else None,
        save_strategy=("epoch" if config.max_steps <= 0 else "steps") if use_val else "no",
        save_steps=max(config.max_steps, 1) if config.max_steps > 0 else None,
        save_only_model=True,
        save_total_limit=2,
        load_best_model_at_end=use_val,
        metric_for_best_model=f"eval_val_{VAL_METRIC}" if use_val else None,
        greater_is_better=True,
        logging_steps=1,
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        use_cpu=(device == "cpu"),
    )
    callbacks = [_progress_callback(reporter)]
    if use_val and config.early_stopping_patience > 0:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=pairs,
        loss=loss,
        evaluator=make_evaluator(val, reporter) if use_val else None,
        callbacks=callbacks,
    )
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # log dicts go to the reporter, not to stdout
    trainer.train()
    if reporter.should_stop():
        shutil.rmtree(ckpt, ignore_errors=True)
        raise Cancelled()
    best = None
    if use_val and trainer.state.best_metric is not None:
        best = {"metric": f"val {VAL_METRIC}", "value": trainer.state.best_metric,
                "checkpoint": Path(trainer.state.best_model_checkpoint or "").name}
    reporter.phase("saving", "Saving the tuned model")
    model.max_seq_length = config.index_max_seq_length
    model_dir = out_dir / "model"
    model.save(str(model_dir))
    shutil.rmtree(ckpt, ignore_errors=True)
    from core.retrieval.embedding import forget_fingerprint

    forget_fingerprint(model)
    info = {
        "steps": trainer.state.global_step,
        "epochs_run": trainer.state.epoch,
        "pairs": len(pairs),
        "validation_questions": len(val) if val else 0,
        "best": best,
        "train_seconds": time.perf_counter() - t0,
        "model_dir": str(model_dir),
    }
    return model, info


def append_model_card_metrics(model_dir: str | Path, table_markdown: str, note: str = "") -> None:
    """Add an evaluation section (our metrics table) to the saved model's README.md."""
    readme = Path(model_dir) / "README.md"
    text = readme.read_text(encoding="utf-8") if readme.exists() else "# Fine-tuned embedding model\n"
    section = "\n\n## Evaluation (Embedding Tuning Lab)\n\n" + (note + "\n\n" if note else "") + table_markdown + "\n"
    readme.write_text(text + section, encoding="utf-8")
