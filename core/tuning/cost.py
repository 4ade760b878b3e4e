"""The estimate's measured rates and token counting: what each method's cost model
(``core.tuning.methods``) and ``core.tuning.estimate`` add up.

Costs are per token, measured on this project's 2-core CPU machines (all-MiniLM-L6-v2; other
work running beside it), so long passages cost more than short ones, as they do:

* encoding: sec-10k's 395 evaluation passages (169,320 tokens as counted here, most cut at 512)
  took 64 s with torch on 2 idle cores (bench/bench_encode.py, 2026-11-29) -> ~3.8e-4 s per token
  (an earlier figure, 1e-4, made the adapter's first run look 3-4 times shorter than it was);
* a full fine-tune (CachedMNRL, batch 32): sec-10k's 38 steps of 32 pairs at 256 tokens took
  ~700 s of training -> ~2e-3 s per (question + passage) token pair seen (other losses: their
  ``core.tuning.losses`` cost factor);
* loading torch, sentence-transformers and the model: ~15 s cold.

A leaf besides ``core.retrieval.windows`` / ``core.tuning.pairs`` (window arithmetic).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from core.dataset import QADataset
from core.retrieval.windows import SPECIAL_TOKENS
from core.tuning.losses import loss_of
from core.tuning.pairs import WINDOW_OVERLAP
from core.workspace.jobs import fmt_duration

WORDS_TO_TOKENS = 1.3  # subword tokens per whitespace word in English prose (WordPiece)
ENCODE_SECONDS_PER_TOKEN = 3.8e-4  # inference, 2 cores (measured: see the module docstring)
TRAIN_SECONDS_PER_TOKEN = 2.0e-3  # forward + backward per token of each pair seen, 2 cores
STARTUP_SECONDS = 15
FAST_FIT_SECONDS = 5  # adapter / NUDGE fit on cached vectors
TOKEN_SAMPLE = 4000  # texts counted exactly; a larger collection is counted on an even spread of this many


def spread(texts, sample: int) -> tuple[list[str], float]:
    """``texts`` itself, or above ``sample`` texts every (n / sample)-th one, with the factor that scales a sum
    over the picked texts to all of them: an ETA needs no exact count, and 100k passages took a second on the
    Train page."""
    texts = texts if isinstance(texts, list) else list(texts)
    n = len(texts)
    if n <= sample:
        return texts, 1.0
    return [texts[int(i * n / sample)] for i in range(sample)], n / sample


def count(text: str) -> int:
    return int(len(text.split()) * WORDS_TO_TOKENS) + 2


def tokens(texts, cap: int, sample: int = TOKEN_SAMPLE) -> int:
    """Estimated tokens of ``texts`` (each cut at ``cap``), counted on a spread of at most ``sample`` texts."""
    picked, scale = spread(texts, sample)
    return round(sum(min(count(t), cap) for t in picked) * scale)


def over(texts, cap: int, sample: int = TOKEN_SAMPLE) -> tuple[int, int]:
    """(how many, their tokens uncut) of the ``texts`` longer than ``cap`` tokens, on the same spread."""
    picked, scale = spread(texts, sample)
    counts = [c for c in map(count, picked) if c > cap]
    return round(len(counts) * scale), round(sum(counts) * scale)


def windows_per_passage(texts, cap: int, sample: int = TOKEN_SAMPLE) -> float:
    """Mean training windows per text at ``cap`` tokens (``core.tuning.pairs``' windows), on a spread."""
    picked, _ = spread(texts, sample)
    body = max(cap - SPECIAL_TOKENS, 1)
    stride = max(body - min(WINDOW_OVERLAP, body // 2), 1)
    return sum(1 + max(0, math.ceil((count(t) - 2 - body) / stride)) for t in picked) / max(len(picked), 1)


def trainer_seconds(settings, train: QADataset, speed: float = 1.0) -> float:
    """Seconds of sentence-transformers training for ``settings`` (a ``FullSettings`` or a subclass) on
    ``train``: pairs seen x tokens per pair x the measured rate x the loss's factor x ``speed`` (a method's
    own factor: 1 for the full fine-tune)."""
    cap = settings.max_seq_length
    pairs = train.pairs()
    if not pairs:
        return 0.0
    per_pair = (tokens([q for q, _ in pairs], cap) + tokens([p for _, p in pairs], cap)) / len(pairs)
    seen = len(pairs) * max(settings.epochs, 1)
    if settings.train_passage == "all":  # one pair per training window of a long passage
        seen *= windows_per_passage([p for _, p in pairs], cap)
    if settings.max_steps > 0:
        seen = min(seen, settings.max_steps * settings.batch_size)
    cost = seen * per_pair * TRAIN_SECONDS_PER_TOKEN * loss_of(settings.loss).cost * speed
    return cost * (1 + 0.5 * max(settings.hard_negatives, 0))  # each negative: one more passage per pair


@dataclass
class Estimate:
    """Seconds per phase of a run, in order."""

    parts: list[tuple[str, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the run will leave out (e.g. the time budget's line)

    @property
    def seconds(self) -> float:
        return sum(s for _, s in self.parts)

    def add(self, what: str, seconds: float) -> None:
        self.parts.append((what, seconds))

    def text(self) -> str:
        """'about 7 min: encoding 3,873 passages with the base model (~6 min) + ...'."""
        return f"{fmt_duration(self.seconds)}: " + " + ".join(f"{w} ({fmt_duration(s)})" for w, s in self.parts
                                                            if s >= 1)
