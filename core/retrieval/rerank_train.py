"""Training the rerank stage's cross-encoder on a run's (question, passage) pairs with mined negatives.

Split from :mod:`core.retrieval.rerank` (settings, loading, reranking, the cost model), which this module
builds on: :func:`train_reranker` starts from :func:`core.retrieval.rerank.reranker_start` (the base model's
weights with a fresh scoring head, or a given cross-encoder) and trains through sentence-transformers'
``CrossEncoderTrainer``; hard negatives come from :func:`mine_from_ranking`. A stop raises
:class:`core.retrieval.rerank.RerankStopped`.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.dataset import QADataset
from core.retrieval.embedding import EmbeddingCache, load_model
from core.retrieval.evaluation import dense_ranking
from core.retrieval.index import Ranking
from core.retrieval.rerank import (
    NegativeSource,
    Progress,
    RerankSettings,
    RerankStopped,
    reranker_start,
)
from core.retrieval.trainer_args import shared_args

logger = logging.getLogger(__name__)

@dataclass
class RerankTrainInfo:
    """What training the reranker did."""

    start_from: str  # the checkpoint trained from
    pairs: int  # (question, positive) pairs trained on
    rows: int  # rows the trainer saw per epoch (bce: pairs x (1 + negatives); mnrl: pairs)
    negatives_per_pair: float  # mean negatives per pair actually found
    negatives_from: str  # where the negatives came from, in words
    left_out: int  # pairs left out (mnrl: fewer negatives than asked)
    steps: int
    epochs_run: float
    seconds: float
    final_loss: float | None = None
    losses: list[tuple[int, float]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)



# ------------------------------------------------------------------------------------------- training


def mine_from_ranking(ds: QADataset, ranking: Ranking, num: int, depth: int, seed: int = 0) -> dict[str, list[str]]:
    """Per question of ``ds`` (rows of ``ranking`` in ``ds.query_ids`` order), up to ``num`` passages sampled at
    random among its top ``depth`` that are not labelled relevant (in rank order once drawn)."""
    ids, _ = ranking
    if len(ids) != len(ds.query_ids):
        raise ValueError(f"The ranking to mine negatives from has {len(ids)} rows but the training set has "
                         f"{len(ds.query_ids)} questions: rank the training questions, in order.")
    rng = np.random.default_rng(seed)
    out: dict[str, list[str]] = {}
    for q, row in zip(ds.query_ids, ids):
        positives = set(ds.relevant_docs[q])
        pool = [d for d in list(dict.fromkeys(row))[:depth] if d not in positives and d in ds.corpus]
        pick = sorted(rng.choice(len(pool), size=min(num, len(pool)), replace=False).tolist()) if pool else []
        out[q] = [pool[j] for j in pick]
    return out


def _sample_questions(train: QADataset, max_pairs: int, seed: int) -> list[str]:
    """Training questions whose (question, positive) pairs number at most ``max_pairs`` (0: all), drawn at
    random, kept in dataset order."""
    qids = [q for q in train.query_ids if any(d in train.corpus for d in train.relevant_docs[q])]
    if max_pairs <= 0:
        return qids
    rng = np.random.default_rng(seed)
    chosen, total = set(), 0
    for i in rng.permutation(len(qids)).tolist():
        n = sum(d in train.corpus for d in train.relevant_docs[qids[i]])
        if total + n > max_pairs and total > 0:
            continue
        chosen.add(qids[i])
        total += n
        if total >= max_pairs:
            break
    return [q for q in qids if q in chosen]


def _negatives(sub: QADataset, settings: RerankSettings, negatives_from: NegativeSource, rows: list[int],
               base_model: str | None, device: str | None, cache: EmbeddingCache | None, progress: Progress | None,
               seed: int) -> tuple[dict[str, list[str]], str]:
    """Per question of ``sub``: its labelled negatives first, then mined ones, ``settings.negatives`` at most."""
    want = settings.negatives
    own = {q: [d for d in sub.negatives.get(q, []) if d in sub.corpus and d not in sub.relevant_docs[q]][:want]
           for q in sub.query_ids}
    if want == 0:
        return {q: [] for q in sub.query_ids}, "none (in-batch only)"
    if all(len(v) >= want for v in own.values()):
        return own, "the dataset's labelled negatives"
    if negatives_from is None:
        encoder = load_model(base_model, device=device)
        ranking = dense_ranking(encoder, sub, settings.max_length, cache=cache, progress=progress,
                                k=max(settings.top_k, want)).ranking
        source = "the base model's dense ranking"
    elif callable(negatives_from):
        ranking = negatives_from(sub)
        source = "the first stage's ranking"
    else:
        ids, scores = negatives_from
        ranking = ([ids[i] for i in rows], [scores[i] for i in rows])
        source = "the first stage's ranking"
    mined = mine_from_ranking(sub, ranking, want, max(settings.top_k, want), seed)
    out = {q: (own[q] + [d for d in mined[q] if d not in own[q]])[:want] for q in sub.query_ids}
    return out, source if not any(own.values()) else f"the dataset's labelled negatives, then {source}"


def _callback(progress: Progress | None, should_stop: Callable[[], bool] | None, losses: list[tuple[int, float]]):
    from transformers import TrainerCallback

    class RerankCallback(TrainerCallback):
        """Steps, losses and cancel (within one step), as ``core.tuning.full``'s callback."""

        def on_train_begin(self, args, state, control, **kw):
            if progress:
                progress(state.global_step, state.max_steps, "steps")

        def on_step_end(self, args, state, control, **kw):
            if progress:
                progress(state.global_step, state.max_steps, "steps")
            if should_stop and should_stop():
                control.should_training_stop = True
                control.should_save = False

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                losses.append((state.global_step, float(logs["loss"])))

    return RerankCallback()


def _training_args(settings: RerankSettings, out: Path, seed: int, device: str | None, use_mnrl: bool):
    from sentence_transformers import CrossEncoderTrainingArguments
    from sentence_transformers.training_args import BatchSamplers

    return CrossEncoderTrainingArguments(
        **shared_args(device, seed),  # bf16 on a CPU not measured for the cross-encoder: float32 there
        output_dir=str(out),
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps,
        per_device_train_batch_size=settings.batch_size,
        learning_rate=settings.lr,
        warmup_steps=0.1,  # a share of the steps (transformers 5)
        batch_sampler=BatchSamplers.NO_DUPLICATES if use_mnrl else BatchSamplers.BATCH_SAMPLER,
        eval_strategy="no",
        save_strategy="no",
    )


def train_reranker(train: QADataset, out_dir: str | Path, settings: RerankSettings, base_model_path: str | None = None,
                   *, negatives_from: NegativeSource = None, progress: Progress | None = None,
                   should_stop: Callable[[], bool] | None = None, seed: int = 0, device: str | None = None,
                   cache: EmbeddingCache | None = None):
    """Train a cross-encoder on ``train``'s (question, positive) pairs with mined hard negatives; save it.

    Args:
        train: the training questions (a run's validation hold-out already removed).
        out_dir: where the trained cross-encoder is saved (replaced when it exists; written whole or not at all).
        settings: the rerank settings (``start_from``, ``negatives``, ``epochs``, ...); ``settings.model`` is
            ignored here (a brought model is not trained).
        base_model_path: the run's base model (a folder, hub id or None for the bundled one): the checkpoint training
            starts from when ``settings.start_from`` is empty, and the encoder that mines negatives when
            ``negatives_from`` is None.
        negatives_from: where hard negatives are mined: a ``Ranking`` of ``train`` (rows in ``train.query_ids``
            order), a function that ranks a ``QADataset`` (called on the sampled training questions), or None (the
            base model's dense ranking). A dataset's labelled negatives are used first.
        progress: (done, total, unit): "steps" while training (and the encoder's units while mining).
        should_stop: polled every step; True stops within one step, saves nothing and raises :class:`RerankStopped`.
        seed: sampling of pairs and negatives, head initialisation, shuffling.
        device: "cpu" / "cuda" / "mps"; None picks the best available.
        cache: the embedding cache (base-model vectors when mining with the base model).

    Returns:
        (the trained ``CrossEncoder``, :class:`RerankTrainInfo`).

    Raises:
        ValueError: bad settings, fewer than 2 usable training questions, no negative found with the bce loss, or a
            starting checkpoint that cannot be loaded.
        RerankStopped: ``should_stop()`` said so.
    """
    import torch
    from datasets import Dataset
    from sentence_transformers import CrossEncoderTrainer
    from sentence_transformers.cross_encoder import losses
    from transformers.trainer_callback import PrinterCallback

    settings.validate()
    if isinstance(negatives_from, tuple) and len(negatives_from[0]) != len(train.query_ids):
        raise ValueError(f"The ranking to mine negatives from has {len(negatives_from[0])} rows but the training set "
                         f"has {len(train.query_ids)} questions: rank the training questions, in order.")
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    qids = _sample_questions(train, settings.max_pairs, seed)
    if len(qids) < 2:
        raise ValueError("Training a reranker needs at least 2 questions with a relevant passage in the collection.")
    sub = train.subset(qids)
    row_of = {q: i for i, q in enumerate(train.query_ids)}
    negs, source = _negatives(sub, settings, negatives_from, [row_of[q] for q in qids], base_model_path, device, cache,
                              progress, seed)
    if should_stop and should_stop():
        raise RerankStopped()
    pairs = [(q, d) for q in sub.query_ids for d in sub.relevant_docs[q] if d in sub.corpus]
    n_neg = settings.negatives
    left_out = 0
    if settings.loss == "bce":
        a, b, label = [], [], []
        for q, d in pairs:
            for text, y in [(sub.corpus[d], 1.0)] + [(sub.corpus[x], 0.0) for x in negs[q]]:
                a.append(sub.queries[q])
                b.append(text)
                label.append(y)
        if not any(y == 0.0 for y in label):
            raise ValueError("No negative was found for any training question (each question's first-stage top "
                             f"{settings.top_k} holds only its relevant passages), so the bce loss has nothing to "
                             "learn. Use the mnrl loss, or give a larger collection.")
        data = {"query": a, "passage": b, "label": label}
    else:
        keep = [(q, d) for q, d in pairs if len(negs[q]) >= n_neg]
        left_out = len(pairs) - len(keep)
        if len(keep) < 2:
            raise ValueError(f"Fewer than 2 training pairs have {n_neg} negative(s): lower the number of negatives.")
        pairs = keep
        data = {"anchor": [sub.queries[q] for q, _ in pairs], "positive": [sub.corpus[d] for _, d in pairs]}
        for j in range(n_neg):
            data[f"negative_{j + 1}"] = [sub.corpus[negs[q][j]] for q, _ in pairs]
    dataset = Dataset.from_dict(data)
    if left_out:
        logger.info("%d of %d pairs had fewer than %d negatives and were left out", left_out, left_out + len(pairs),
                    n_neg)

    start = settings.start_from or base_model_path
    torch.manual_seed(seed)  # the fresh scoring head
    model = reranker_start(start, device=device, max_length=settings.max_length)
    found = [len(negs[q]) for q, _ in pairs]
    if settings.loss == "bce":
        loss = losses.BinaryCrossEntropyLoss(model, pos_weight=torch.tensor(float(max(np.mean(found), 1.0))))
    else:
        loss = losses.MultipleNegativesRankingLoss(model, num_negatives=min(4, max(settings.batch_size - 1, 0)))
    partial = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    losses_seen: list[tuple[int, float]] = []
    trainer = CrossEncoderTrainer(
        model=model,
        args=_training_args(settings, partial / "trainer", seed, device, settings.loss == "mnrl"),
        train_dataset=dataset,
        loss=loss,
        callbacks=[_callback(progress, should_stop, losses_seen)],
    )
    trainer.remove_callback(PrinterCallback)
    try:
        trainer.train()
        if should_stop and should_stop():
            raise RerankStopped()
        shutil.rmtree(partial / "trainer", ignore_errors=True)
        model.save_pretrained(str(partial))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        partial.rename(out_dir)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    model._etl_name = str(out_dir)
    state = trainer.state
    info = RerankTrainInfo(
        start_from=str(start or "the bundled base model"),
        pairs=len(pairs),
        rows=len(dataset),
        negatives_per_pair=float(np.mean(found)) if found else 0.0,
        negatives_from=source,
        left_out=left_out,
        steps=int(state.global_step),
        epochs_run=float(state.epoch or 0),
        seconds=time.perf_counter() - t0,
        final_loss=losses_seen[-1][1] if losses_seen else None,
        losses=losses_seen,
    )
    logger.info("reranker trained: %d pairs, %d rows, %d steps in %.0f s", info.pairs, info.rows, info.steps,
                info.seconds)
    return model, info
