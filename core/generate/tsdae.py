"""TSDAE domain adaptation: a base model adapted to the passages alone (no questions at all).

TSDAE (Wang, Reimers & Gurevych, Findings of EMNLP 2021, "TSDAE: Using Transformer-based
Sequential Denoising Auto-Encoder for Unsupervised Sentence Embedding Learning") deletes
60% of the words of a text, encodes what is left into one vector, and trains a decoder
(tied to the encoder's weights) to rebuild the original text from that vector alone. The
encoder learns what matters in the domain's texts. sentence-transformers implements the
loss (``DenoisingAutoEncoderLoss``); this module feeds it the user's passages and saves
the adapted encoder as an ordinary model folder, usable as a base model for fine-tuning.

Choices, with reasons:

* Passages are cut into windows of about ``max_tokens`` tokens (words / 1.3) so long
  passages are read whole instead of truncated, and the noise is applied to each window;
  the paper trains on sentences, GPL's comparison on passages.
* Every epoch gets its own deletion noise, drawn up front from ``seed`` (the
  sentence-transformers dataset draws it afresh on each access): deterministic runs.
* Batch 8, learning rate 3e-5, constant schedule, no weight decay: the paper's settings.
* The base model keeps its own pooling (mean pooling for all-MiniLM-L6-v2; the paper
  prefers CLS for models trained from scratch, but changing a trained model's pooling
  would undo its training) and its ``max_seq_length`` in the saved folder.

Progress and cancel go through callbacks (``progress(step, total_steps)``,
``should_stop()``), checked after every step, so a cancel lands within one step; a
cancelled run saves nothing and raises :class:`core.workspace.jobs.Cancelled`.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.retrieval.embedding import forget_fingerprint, load_model
from core.retrieval.trainer_args import shared_args
from core.workspace.files import atomic_write_json
from core.workspace.jobs import Cancelled

logger = logging.getLogger(__name__)

WORDS_TO_TOKENS = 1.3  # rough WordPiece tokens per English word (as core.ingest.qafiles assumes)
MIN_WINDOW_WORDS = 3  # a tail window shorter than this joins the window before it
SETTINGS_FILE = "tsdae.json"  # written into the saved model folder: how it was adapted
Progress = Callable[[int, int], None]  # (steps done, steps in all)


@dataclass
class TSDAESettings:
    """How the base model is adapted with TSDAE (defaults: the paper's, where it gives them)."""

    epochs: int = field(
        default=1,
        metadata={
            "help": "Passes over the passages, each with fresh deletion noise. The paper saturates after about "
            "10,000 sentences seen; a small collection needs several passes to get there.",
            "label": "Epochs",
            "min": 1,
            "max": 50,
        },
    )
    batch_size: int = field(
        default=8,
        metadata={
            "help": "Texts per step: 8 in the paper. TSDAE has no in-batch negatives, so a bigger batch buys "
            "nothing but memory.",
            "label": "Batch size",
            "min": 1,
            "max": 256,
        },
    )
    learning_rate: float = field(
        default=3e-5,
        metadata={
            "help": "3e-5, constant, no weight decay: the paper's setting.",
            "label": "Learning rate",
            "min": 1e-7,
            "max": 1e-3,
            "step": 1e-5,
            "format": "%.0e",
        },
    )
    max_tokens: int = field(
        default=128,
        metadata={
            "help": "Tokens per training text: passages are cut into windows of about this size, so long ones "
            "are read whole. Cost grows fast with length on a CPU.",
            "label": "Max tokens per text",
            "choices": [32, 64, 128, 256],
        },
    )
    deletion_ratio: float = field(
        default=0.6,
        metadata={
            "help": "Share of words deleted from the encoder's input: 0.6 was best in the paper.",
            "label": "Deletion ratio",
            "min": 0.1,
            "max": 0.9,
            "step": 0.1,
            "advanced": True,
        },
    )
    seed: int = field(
        default=42,
        metadata={
            "help": "Seed of the noise and the shuffling: same passages and seed, same model.",
            "label": "Seed",
            "advanced": True,
        },
    )
    max_steps: int = field(
        default=-1,
        metadata={
            "help": "-1 runs every epoch; a small number (e.g. 2) is a quick smoke test.",
            "label": "Max steps",
            "min": -1,
            "max": 1_000_000,
            "advanced": True,
        },
    )


@dataclass
class TSDAEResult:
    """What a TSDAE run produced.

    Attributes:
        model_dir: The saved model folder (load it with ``core.retrieval.embedding.load_model``).
        base_model: The model it started from (None: the bundled default).
        texts: Training windows per epoch.
        steps: Optimizer steps run.
        final_loss: The last logged reconstruction loss (None if none was logged).
        seconds: Wall time.
    """

    model_dir: str
    base_model: str | None
    texts: int
    steps: int
    final_loss: float | None
    seconds: float


def windows(passages: Sequence[str], max_tokens: int) -> list[str]:
    """Passages cut into consecutive windows of about ``max_tokens`` tokens (words / 1.3).

    Returns:
        The windows, in passage order; empty passages give none.
    """
    size = max(MIN_WINDOW_WORDS, int(max_tokens / WORDS_TO_TOKENS))
    out: list[str] = []
    for text in passages:
        words = text.split()
        parts = [words[i : i + size] for i in range(0, len(words), size)]
        if len(parts) > 1 and len(parts[-1]) < MIN_WINDOW_WORDS:
            parts[-2].extend(parts.pop())
        out.extend(" ".join(p) for p in parts if p)
    return out


def delete_words(text: str, ratio: float, rng: random.Random) -> str:
    """``text`` with each word deleted with probability ``ratio`` (at least one word is kept)."""
    words = text.split()
    if not words:
        return text
    kept = [w for w in words if rng.random() >= ratio]
    return " ".join(kept) if kept else rng.choice(words)


def _callback(progress: Progress | None, should_stop: Callable[[], bool], losses: list[float]):
    from transformers import TrainerCallback

    class _Progress(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            if progress:
                progress(0, state.max_steps)

        def on_step_end(self, args, state, control, **kw):
            if progress:
                progress(state.global_step, state.max_steps)
            if should_stop():
                control.should_training_stop = True
                control.should_save = False

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))

    return _Progress()


def train_tsdae(
    passages: dict[str, str] | Sequence[str],
    settings: TSDAESettings,
    out_dir: str | Path,
    base_model: str | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    device: str | None = None,
) -> TSDAEResult:
    """Adapt ``base_model`` to the passages with TSDAE and save it to ``out_dir``.

    Args:
        passages: Passage id -> text, or the texts.
        settings: Epochs, batch, learning rate, tokens per text, noise, seed, step cap.
        out_dir: The model folder to write (replaced if it exists, only once training has
            finished); ``tsdae.json`` in it records the settings.
        base_model: A model name or folder as ``load_model`` takes; None: the bundled default.
        progress: Called with (steps done, steps in all) at the start and after each step.
        should_stop: Checked after each step; True stops training and saves nothing.
        device: "cpu" / "cuda" / "mps"; None picks the best available.

    Returns:
        Where the model is and what the run did (:class:`TSDAEResult`).

    Raises:
        ValueError: no usable text, a setting out of range, or a base model whose
            architecture has no decoder form (TSDAE needs an ``...LMHead`` class in transformers).
        core.workspace.jobs.Cancelled: ``should_stop()`` returned True.
    """
    t0 = time.perf_counter()
    should_stop = should_stop or (lambda: False)
    texts = list(passages.values()) if isinstance(passages, dict) else list(passages)
    if settings.epochs < 1 or settings.batch_size < 1 or settings.max_tokens < 8:
        raise ValueError("TSDAE needs epochs >= 1, batch size >= 1 and max tokens >= 8.")
    if not 0 < settings.deletion_ratio < 1:
        raise ValueError("The deletion ratio must be between 0 and 1.")
    chunks = windows(texts, settings.max_tokens)
    if not chunks:
        raise ValueError("TSDAE needs passages with text; every passage given is empty.")
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import DenoisingAutoEncoderLoss
    from transformers.trainer_callback import PrinterCallback

    rng = random.Random(settings.seed)
    noisy, clean = [], []
    for _ in range(settings.epochs):
        for text in chunks:
            noisy.append(delete_words(text, settings.deletion_ratio, rng))
            clean.append(text)
    data = Dataset.from_dict({"noisy": noisy, "text": clean})  # column order: (damaged, original)

    model = load_model(base_model, device=device)
    search_length = model.max_seq_length
    model.max_seq_length = settings.max_tokens
    try:
        loss = DenoisingAutoEncoderLoss(model, tie_encoder_decoder=True)
    except (ValueError, OSError, AssertionError) as exc:
        raise ValueError(
            f"TSDAE cannot build a decoder for {base_model or 'the default model'}: {exc}"
        ) from exc

    out_dir = Path(out_dir)
    work = out_dir.parent / f".{out_dir.name}.tsdae-{uuid.uuid4().hex[:8]}"
    args = SentenceTransformerTrainingArguments(
        **shared_args(device, settings.seed, gpu_mixed=False),  # float32: TSDAE was measured so
        output_dir=str(work / "checkpoints"),
        num_train_epochs=1,  # the epochs are already in the data, each with its own noise
        max_steps=settings.max_steps,
        per_device_train_batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        lr_scheduler_type="constant",
        weight_decay=0.0,
        warmup_steps=0,
        save_strategy="no",
    )
    losses: list[float] = []
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=data,
        loss=loss,
        callbacks=[_callback(progress, should_stop, losses)],
    )
    trainer.remove_callback(PrinterCallback)
    logger.info("TSDAE: %d windows x %d epochs from %d passages", len(chunks), settings.epochs, len(texts))
    try:
        trainer.train()
        if should_stop():
            raise Cancelled()
        model.max_seq_length = search_length
        staged = work / "model"
        model.save(str(staged))
        atomic_write_json(
            staged / SETTINGS_FILE,
            {
                "method": "tsdae",
                "base_model": base_model,
                "settings": asdict(settings),
                "passages": len(texts),
                "windows": len(chunks),
                "steps": trainer.state.global_step,
            },
        )
        old = out_dir.parent / f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}"
        if out_dir.exists():
            os.replace(out_dir, old)
        os.replace(staged, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    forget_fingerprint(model)
    return TSDAEResult(
        model_dir=str(out_dir),
        base_model=base_model,
        texts=len(chunks),
        steps=trainer.state.global_step,
        final_loss=losses[-1] if losses else None,
        seconds=time.perf_counter() - t0,
    )
