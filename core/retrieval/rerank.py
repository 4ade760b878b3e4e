"""A rerank stage: a cross-encoder rescoring the top k of a first-stage ranking.

A cross-encoder reads the question and a passage together and gives one relevance score per pair:
more accurate than comparing two vectors, far too slow to run over a whole collection, so it only
rescores the top ``top_k`` of a first stage (dense, BM25 or a fusion of them). Below ``top_k`` the
first stage's order is kept, so metrics read at depth 100 stay defined.

Where the cross-encoder comes from (:class:`RerankSettings`):

* brought: a local cross-encoder folder, or a hub id when the machine is online
  (:func:`load_reranker`);
* trained on the run's training pairs (:func:`train_reranker`) with sentence-transformers'
  ``CrossEncoderTrainer``: from the base model's checkpoint (a sentence-transformers bi-encoder
  folder holds a plain BERT checkpoint; as a ``CrossEncoder`` with one label it gets a fresh scoring
  head) or from a given checkpoint. Each (question, positive) pair is trained with mined hard
  negatives: passages the first stage ranks in the question's top ``top_k`` (what the reranker will
  be shown) that are not labelled relevant, sampled at random among them (the very top non-positive
  is the likeliest unlabelled positive); a dataset's own negatives are used first.

Costs (:func:`estimate_seconds`) are measured on this project's 2-core CPU machine; see the constants.

This module knows nothing of runs (``core.tuning``): a caller passes ``progress`` and ``should_stop``;
a stop raises :class:`RerankStopped`, which a job maps to its own cancel.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from core.dataset import QADataset
from core.retrieval import metrics as M
from core.retrieval.embedding import pick_device, resolve_model
from core.retrieval.index import Ranking

logger = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]  # (done, total, unit)
RerankLoss = Literal["bce", "mnrl"]
NegativeSource = Ranking | Callable[[QADataset], Ranking] | None

PREDICT_CHUNK = 8  # questions scored per progress update (8 x 30 = 240 pairs)
PREDICT_BATCH = 32  # pairs per forward pass when reranking

# Measured on this machine (2 CPU cores shared with other work: load average 6-9 while measuring), a cross-encoder
# on all-MiniLM-L6-v2's checkpoint at 256 tokens, sec-10k (its passages fill the 256 tokens):
# * training, 600 pairs x (1 + 3 negatives) = 2,400 rows, batch 16: 20 steps took 312 s (15.6 s a step of
#   16 x 256 tokens) -> ~3.8e-3 s per token of each row trained on; the full epoch (150 steps) ~39 min;
# * reranking the dense top 30 of 50 validation questions: 4.5 and 3.4 s per question (two runs) -> ~5e-4 s per
#   token of each (question, passage) pair scored.
# Quality on those 50 questions (dense nDCG@10 0.571): the fresh head untrained 0.126; after 20 steps (lr 2e-5)
# 0.085; after 50 steps (lr 5e-5) 0.113. A part-trained reranker is far worse than its first stage, so a run must
# score the rerank stage on held-out questions before keeping it (the full epoch was not measured: ~38 min here).
TRAIN_SECONDS_PER_TOKEN = 3.8e-3  # forward + backward, per token of each (question, passage) row trained on
PREDICT_SECONDS_PER_TOKEN = 5.0e-4  # inference, per token of each (question, passage) pair reranked
LOAD_SECONDS = 5.0  # building the cross-encoder (torch and sentence-transformers already loaded)


class RerankStopped(Exception):
    """``should_stop()`` asked training or reranking to stop (nothing was saved)."""


def _setting(default: Any, help: str, **meta: Any) -> Any:
    """A dataclass field with its help text (and form hints) in ``metadata``, as ``core.tuning.spec.setting``."""
    return field(default=default, metadata={"help": help, **meta})


@dataclass
class RerankSettings:
    """A cross-encoder reranking the first stage's top k: brought, or trained on the run's pairs."""

    model: str = _setting(
        "",
        "A ready cross-encoder to rerank with, used as it is (no training): a local folder, or a hub id when this "
        "machine is online. Empty: train one on the run's training pairs. Measured: trained from the bundled "
        "all-MiniLM-L6-v2 on 300 sec-10k pairs it lowered nDCG@10 from 0.826 to 0.272 (sample: 0.637 to 0.229), so "
        "bring a cross-encoder trained for reranking when you have one (bench/RESULTS.md).",
        label="Reranker model (empty: train one)",
    )
    start_from: str = _setting(
        "",
        "When training: the checkpoint to start from. Empty: the run's base model (its transformer weights, with a "
        "fresh scoring head). A cross-encoder folder here is fine-tuned further.",
        label="Train from", advanced=True,
    )
    top_k: int = _setting(
        30,
        "How many of the first stage's results the cross-encoder rescores per question; the rest keep their order "
        "below them. Cost grows linearly with it; a passage the first stage ranks below it is never reached.",
        label="Rerank top k", min=1, max=100,
    )
    epochs: int = _setting(1, "Passes over the training pairs.", label="Epochs (reranker)", min=1, max=10)
    negatives: int = _setting(
        3,
        "Hard negatives per (question, positive) pair: passages the first stage ranks in the question's top k that "
        "are not labelled relevant (sampled among them). Each one is one more pair to score per step.",
        label="Negatives per question", min=0, max=10,
    )
    batch_size: int = _setting(16, "(question, passage) rows per training step.", label="Batch size (reranker)",
                               min=2, max=256, advanced=True)
    lr: float = _setting(2e-5, "Learning rate (sentence-transformers' reranker examples use 2e-5).",
                         label="Learning rate (reranker)", min=1e-7, max=1e-2, step=1e-5, format="%.0e", advanced=True)
    max_length: int = _setting(
        256,
        "Tokens of question + passage together the cross-encoder reads, in training and reranking (the passage is cut "
        "first). Cost grows with it.",
        label="Max tokens per pair (reranker)", choices=[128, 256, 384, 512], advanced=True,
    )
    max_pairs: int = _setting(
        600,
        "The most (question, positive) pairs trained on, sampled when there are more (0: all), to bound training "
        "time on a CPU.",
        label="Max training pairs (reranker)", min=0, max=100_000, advanced=True,
    )
    loss: RerankLoss = _setting(
        "bce",
        "bce: each (question, passage) row is labelled relevant or not (binary cross-entropy, positives weighted by "
        "the number of negatives, as sentence-transformers' reranker recipe). mnrl: the positive must outscore the "
        "question's negatives and other questions' passages in the batch.",
        label="Loss (reranker)", choices=["bce", "mnrl"], advanced=True,
    )
    max_steps: int = _setting(-1, "-1 runs every epoch; a small number (e.g. 2) is a quick smoke test.",
                              advanced=True, hidden=True)

    def validate(self) -> None:
        """Raise ValueError naming each setting out of range."""
        problems = []
        for name, low in (("top_k", 1), ("epochs", 1), ("negatives", 0), ("batch_size", 1), ("max_length", 16),
                          ("max_pairs", 0)):
            if int(getattr(self, name)) < low:
                problems.append(f"{name} must be at least {low} (got {getattr(self, name)})")
        if not self.lr > 0:
            problems.append(f"lr must be positive (got {self.lr})")
        if self.loss not in ("bce", "mnrl"):
            problems.append(f"loss must be 'bce' or 'mnrl' (got {self.loss!r})")
        if self.loss == "bce" and not self.model and self.negatives < 1:
            problems.append("the bce loss needs at least 1 negative per question (with none every row is relevant)")
        if problems:
            raise ValueError("Rerank settings: " + "; ".join(problems) + ".")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RerankSettings:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


# ---------------------------------------------------------------------------------------------- loading


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _folder_kind(path: Path) -> str:
    """'cross-encoder', 'bi-encoder' (a sentence-transformers embedding model) or 'checkpoint' (a plain
    transformers model without a scoring head) for a model folder."""
    st_config = path / "config_sentence_transformers.json"
    if (path / "modules.json").exists():
        model_type = "SentenceTransformer"
        if st_config.exists():
            try:
                model_type = json.loads(st_config.read_text(encoding="utf-8")).get("model_type", model_type)
            except (OSError, ValueError):
                pass
        return "cross-encoder" if model_type == "CrossEncoder" else "bi-encoder"
    try:
        archs = json.loads((path / "config.json").read_text(encoding="utf-8")).get("architectures") or []
    except (OSError, ValueError):
        archs = []
    return "cross-encoder" if any(a.endswith("ForSequenceClassification") for a in archs) else "checkpoint"


def _resolve(name: str, what: str) -> tuple[str, bool]:
    """(folder path or hub id, is_local) for a model choice; refuses a hub id while offline, before any
    network call."""
    target = resolve_model(name)  # the bundled alias -> its folder; an existing folder -> absolute path
    local = Path(target).is_dir()
    if not local and _offline():
        raise ValueError(
            f"{what} {name!r} is not a local folder, and this machine is offline (HF_HUB_OFFLINE is set), so it "
            "cannot be downloaded from the Hugging Face hub. Give the path of a local model folder instead.")
    return target, local


def _build(target: str, *, device: str | None, max_length: int | None, num_labels: int | None, name: str, what: str):
    from sentence_transformers import CrossEncoder

    try:
        # safetensors only: a pickled pytorch_model.bin can run code when loaded, so it is refused
        model = CrossEncoder(target, device=pick_device(device), trust_remote_code=False, num_labels=num_labels,
                             max_length=max_length, model_kwargs={"use_safetensors": True})
    except Exception as exc:  # noqa: BLE001 - re-raised with a user-facing message
        hint = " This machine is offline: give a local model folder instead." if _offline() else ""
        raise ValueError(f"Could not load {what} {name!r}: {exc}.{hint}") from exc
    if model.num_labels != 1:
        raise ValueError(f"{what} {name!r} gives {model.num_labels} scores per pair (a classifier); a reranker needs "
                         "one relevance score per (question, passage) pair.")
    model._etl_name = name
    return model


def load_reranker(name_or_path: str, device: str | None = None, max_length: int | None = None):
    """Load a ready cross-encoder (safetensors, no remote code).

    Args:
        name_or_path: a local cross-encoder folder, or a hub id (only when HF_HUB_OFFLINE is not set).
        device: "cpu" / "cuda" / "mps"; None picks the best available.
        max_length: tokens of question + passage read per pair; None keeps the model's own.

    Returns:
        A ``sentence_transformers.CrossEncoder`` with one output.

    Raises:
        ValueError: offline and not a local folder (no network call is made); a folder that holds an embedding
            model or a checkpoint without a scoring head (train from it instead); a model that fails to load or
            gives more than one score per pair.
    """
    if not name_or_path or not str(name_or_path).strip():
        raise ValueError("No reranker model given: name a cross-encoder folder, or leave it empty to train one.")
    target, local = _resolve(str(name_or_path).strip(), "Reranker model")
    if local:
        kind = _folder_kind(Path(target))
        if kind == "bi-encoder":
            raise ValueError(
                f"{name_or_path} is an embedding model (a sentence-transformers bi-encoder), not a cross-encoder: it "
                "has no head that scores a (question, passage) pair. Leave the reranker model empty to train one "
                "from it, or give it as the checkpoint to train from.")
        if kind == "checkpoint":
            raise ValueError(
                f"{name_or_path} holds a transformers checkpoint without a scoring head, not a cross-encoder: its "
                "scores would be random. Give it as the checkpoint to train a reranker from instead.")
    return _build(target, device=device, max_length=max_length, num_labels=None, name=str(name_or_path),
                  what="Reranker model")


def reranker_start(name_or_path: str | None, device: str | None = None, max_length: int | None = None):
    """The cross-encoder training starts from: a cross-encoder as it is, or any other checkpoint (a
    sentence-transformers bi-encoder folder included) with a fresh one-score head. None: the bundled base model."""
    target, local = _resolve(name_or_path or "", "Checkpoint to train the reranker from")
    num_labels = None if local and _folder_kind(Path(target)) == "cross-encoder" else 1
    return _build(target, device=device, max_length=max_length, num_labels=num_labels,
                  name=name_or_path or "the base model", what="Checkpoint to train the reranker from")


# ----------------------------------------------------------------------------------------------- rerank


def rerank(model, questions: Sequence[str], passages: Mapping[str, str], first_stage: Ranking, top_k: int = 30,
           depth: int = M.DEPTH, *, batch_size: int = PREDICT_BATCH, progress: Progress | None = None,
           should_stop: Callable[[], bool] | None = None) -> tuple[Ranking, float]:
    """Rescore each question's first-stage top ``top_k`` with the cross-encoder.

    Args:
        model: a ``CrossEncoder`` with one output (:func:`load_reranker`, :func:`train_reranker`).
        questions: the question texts, one per row of ``first_stage`` (e.g. ``[ds.queries[q] for q in
            ds.query_ids]``).
        passages: passage id -> text, holding every id of the first stage's top ``top_k``.
        first_stage: per question, passage ids best first and their scores.
        top_k: how many of each list are rescored; the rest follow in their first-stage order.
        depth: the length each returned list is cut to.
        progress: called with (done, total, "questions") after each chunk of questions.
        should_stop: polled between chunks; True raises :class:`RerankStopped`.

    Returns:
        (ranking, seconds per question). The top ``top_k`` of each list are the same passages as the first stage's,
        ordered by the cross-encoder's score (its raw logit, higher is better; ties keep the first-stage order) and
        carrying that score; below them the first-stage passages and scores follow unchanged, so the two parts'
        scores are on different scales. Seconds per question: the wall time of scoring, divided by the questions.

    Raises:
        ValueError: ``questions`` and ``first_stage`` differ in length, ``top_k`` below 1, or a passage id of a
            top ``top_k`` is missing from ``passages``.
    """
    import torch

    ids, scores = first_stage
    if len(ids) != len(scores) or len(ids) != len(questions):
        raise ValueError(f"The first stage ranks {len(ids)} questions (with {len(scores)} score lists) but "
                         f"{len(questions)} question texts were given: they must be the same questions, in order.")
    if int(top_k) < 1:
        raise ValueError(f"top_k must be at least 1 (got {top_k}).")
    top_k = int(top_k)
    missing = sorted({d for row in ids for d in row[:top_k] if d not in passages})
    if missing:
        shown = ", ".join(repr(d) for d in missing[:5])
        raise ValueError(f"{len(missing)} passage id(s) of the first stage's top {top_k} have no text: {shown}"
                         f"{' ...' if len(missing) > 5 else ''}. Rerank with the collection the first stage searched.")
    n = len(ids)
    out_ids: list[list[str]] = []
    out_scores: list[list[float]] = []
    identity = torch.nn.Identity()  # raw logits: a sigmoid saturates at 1.0 and would tie confident pairs
    t0 = time.perf_counter()
    if progress:
        progress(0, n, "questions")
    for start in range(0, n, PREDICT_CHUNK):
        if should_stop and should_stop():
            raise RerankStopped()
        rows = range(start, min(start + PREDICT_CHUNK, n))
        pairs = [(questions[i], passages[d]) for i in rows for d in ids[i][:top_k]]
        got = model.predict(pairs, batch_size=batch_size, show_progress_bar=False, activation_fn=identity,
                            convert_to_numpy=True) if pairs else np.zeros(0, np.float32)
        got = np.asarray(got, dtype=np.float64).reshape(-1)
        at = 0
        for i in rows:
            head = ids[i][:top_k]
            ce = got[at: at + len(head)]
            at += len(head)
            order = sorted(range(len(head)), key=lambda j: (-ce[j], j))  # ties: first-stage order
            out_ids.append(([head[j] for j in order] + list(ids[i][top_k:]))[:depth])
            out_scores.append(([float(ce[j]) for j in order] + [float(s) for s in scores[i][top_k:]])[:depth])
        if progress:
            progress(rows.stop, n, "questions")
    seconds = time.perf_counter() - t0
    return (out_ids, out_scores), seconds / max(n, 1)


def rerank_dataset(model, ds: QADataset, first_stage: Ranking, top_k: int = 30, depth: int = M.DEPTH,
                   **kw) -> tuple[Ranking, float]:
    """:func:`rerank` over a dataset's questions (rows in ``ds.query_ids`` order) and its corpus."""
    return rerank(model, [ds.queries[q] for q in ds.query_ids], ds.corpus, first_stage, top_k, depth, **kw)


# ------------------------------------------------------------------------------------------- estimate


def estimate_seconds(n_pairs: int, n_questions: int, settings: RerankSettings,
                     tokens_per_pair: float | None = None) -> tuple[float, float]:
    """How long the rerank stage will take on this machine, from the measured rates (module constants).

    Args:
        n_pairs: the (question, positive) training pairs available (capped at ``settings.max_pairs``).
        n_questions: the questions to rerank; with none, reranking costs nothing (0 s per question).
        settings: the rerank settings; with ``settings.model`` set nothing is trained.
        tokens_per_pair: mean tokens of question + passage, cut at ``settings.max_length``; None: the cap (most
            passages of a retrieval collection reach it).

    Returns:
        (training seconds, rerank seconds per question). Mining negatives with the base model (when the run has no
        first-stage ranking of the training questions yet) is not counted: it is an encoding pass the run's other
        estimates already price.
    """
    tokens = float(min(tokens_per_pair or settings.max_length, settings.max_length))
    per_question = settings.top_k * tokens * PREDICT_SECONDS_PER_TOKEN if n_questions > 0 else 0.0
    if settings.model:
        return LOAD_SECONDS, per_question
    pairs = n_pairs if settings.max_pairs <= 0 else min(n_pairs, settings.max_pairs)
    rows_per_pair = 1 + settings.negatives  # bce: one row each; mnrl scores as many pairs, plus in-batch ones
    if settings.loss == "mnrl":
        rows_per_pair += min(4, max(settings.batch_size - 1, 0))
    rows = pairs * rows_per_pair * settings.epochs
    if settings.max_steps > 0:
        rows = min(rows, settings.max_steps * settings.batch_size * (rows_per_pair if settings.loss == "mnrl" else 1))
    return LOAD_SECONDS + rows * tokens * TRAIN_SECONDS_PER_TOKEN, per_question
