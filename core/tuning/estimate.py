"""How long a run will take, before it starts, phase by phase.

Costs are per token, measured on this project's 2-core CPU machines (all-MiniLM-L6-v2; other
work running beside it), so long passages cost more than short ones, as they do:

* encoding: sec-10k's 395 evaluation passages (169,320 tokens as counted here, most cut at 512)
  took 64 s with torch on 2 idle cores (bench/bench_encode.py, 2026-11-29) -> ~3.8e-4 s per token
  (an earlier figure, 1e-4, made the adapter's first run look 3-4 times shorter than it was);
* a full fine-tune (CachedMNRL, batch 32): sec-10k's 38 steps of 32 pairs at 256 tokens took
  ~700 s of training -> ~2e-3 s per (question + passage) token pair seen;
* loading torch, sentence-transformers and the model: ~15 s cold.

The estimate is a guide, not a promise; the live panel measures the real rate while it runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from core.dataset import QADataset
from core.retrieval.rerank import estimate_seconds as rerank_seconds
from core.tuning.holdout import VAL_CORPUS_CAP, split_validation
from core.tuning.spec import RunSpec
from core.workspace.jobs import fmt_duration

WORDS_TO_TOKENS = 1.3  # subword tokens per whitespace word in English prose (WordPiece)
ENCODE_SECONDS_PER_TOKEN = 3.8e-4  # inference, 2 cores (measured: see the module docstring)
TRAIN_SECONDS_PER_TOKEN = 2.0e-3  # forward + backward per token of each pair seen, 2 cores
LOSS_COST = {"cached_mnrl": 1.0, "mnrl": 0.75, "matryoshka": 0.8}  # CachedMNRL computes embeddings twice
STARTUP_SECONDS = 15
FAST_FIT_SECONDS = 5  # adapter / NUDGE fit on cached vectors


TOKEN_SAMPLE = 4000  # texts counted exactly; a larger collection is counted on an even spread of this many


def _spread(texts, sample: int) -> tuple[list[str], float]:
    """``texts`` itself, or above ``sample`` texts every (n / sample)-th one, with the factor that scales a sum
    over the picked texts to all of them: an ETA needs no exact count, and 100k passages took a second on the
    Train page."""
    texts = texts if isinstance(texts, list) else list(texts)
    n = len(texts)
    if n <= sample:
        return texts, 1.0
    return [texts[int(i * n / sample)] for i in range(sample)], n / sample


def _count(text: str) -> int:
    return int(len(text.split()) * WORDS_TO_TOKENS) + 2


def _tokens(texts, cap: int, sample: int = TOKEN_SAMPLE) -> int:
    """Estimated tokens of ``texts`` (each cut at ``cap``), counted on a spread of at most ``sample`` texts."""
    picked, scale = _spread(texts, sample)
    return round(sum(min(_count(t), cap) for t in picked) * scale)


def _over(texts, cap: int, sample: int = TOKEN_SAMPLE) -> tuple[int, int]:
    """(how many, their tokens uncut) of the ``texts`` longer than ``cap`` tokens, on the same spread."""
    picked, scale = _spread(texts, sample)
    counts = [c for c in map(_count, picked) if c > cap]
    return round(len(counts) * scale), round(sum(counts) * scale)


@dataclass
class Estimate:
    """Seconds per phase of a run, in order."""

    parts: list[tuple[str, float]] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(s for _, s in self.parts)

    def add(self, what: str, seconds: float) -> None:
        self.parts.append((what, seconds))

    def text(self) -> str:
        """'about 7 min: encoding 3,873 passages with the base model (~6 min) + ...'."""
        return f"{fmt_duration(self.seconds)}: " + " + ".join(f"{w} ({fmt_duration(s)})" for w, s in self.parts
                                                            if s >= 1)


def estimate_run(spec: RunSpec, train: QADataset, ev: QADataset) -> Estimate:
    """The phases of ``spec`` on (train, ev) and their rough durations.

    The base model encodes the evaluation passages (and, for the adapter and NUDGE, the training
    passages) once; later runs on the same data reuse those vectors from the cache, so a repeat
    run is faster than this estimate says.
    """
    tokens = spec.scoring.passage_tokens
    est = Estimate()
    est.add("loading the model", STARTUP_SECONDS)
    ev_tokens = _tokens(ev.corpus.values(), tokens) + _tokens(ev.queries.values(), tokens)
    est.add(f"encoding {len(ev.corpus):,} passages with the base model (first run only; then cached)",
            ev_tokens * ENCODE_SECONDS_PER_TOKEN)
    methods = spec.settings.methods if spec.method == "shootout" else [spec.method]
    for m in methods:
        sub = spec.child(m).settings if spec.method == "shootout" else spec.settings
        if m == "full":
            if sub.train_passage in ("best", "answer"):  # the base model scores every window of a long passage
                n_long, long_tokens = _over(train.corpus.values(), sub.max_seq_length)
                if n_long:
                    est.add(f"choosing the training window of {n_long:,} long passage{'s' * (n_long != 1)} "
                            "(first run only)", long_tokens * ENCODE_SECONDS_PER_TOKEN)
            est.add("training", _full_training(sub, train))
            val_tokens = _tokens(list(train.corpus.values())[:VAL_CORPUS_CAP], tokens)
            epochs = sub.epochs if sub.max_steps <= 0 else 1
            if spec.scoring.validation_share > 0:
                est.add("validation passes", epochs * val_tokens * ENCODE_SECONDS_PER_TOKEN)
                # the base hybrid chooses its fusion on the same hold-out: the base model searches it once
                est.add("the base model on the validation questions (for the base hybrid's fusion; first run "
                        "only)", val_tokens * ENCODE_SECONDS_PER_TOKEN)
            est.add("encoding the passages with the tuned model", ev_tokens * ENCODE_SECONDS_PER_TOKEN)
        else:
            label = "adapter" if m == "adapter" else "NUDGE"
            est.add(f"encoding {len(train.corpus):,} training passages for the {label} (first run only)",
                    _tokens(train.corpus.values(), tokens) * ENCODE_SECONDS_PER_TOKEN)
            est.add(f"fitting the {label}", FAST_FIT_SECONDS)
    if spec.rerank is not None:
        n_val = len(split_validation(train, spec.scoring.validation_share, spec.seed)[1] or [])
        train_s, per_question = rerank_seconds(len(train.pairs()), len(ev), spec.rerank)
        sides = 1 if not spec.rerank.model else 2  # a brought reranker reranks each side's best
        est.add("training the reranker" if not spec.rerank.model else "loading the reranker", train_s)
        est.add(f"reranking the top {spec.rerank.top_k} for {len(ev):,} evaluation and {n_val:,} validation "
                f"questions ({per_question:.1f} s each)", sides * per_question * (len(ev) + n_val))
    return est


def _full_training(settings, train: QADataset) -> float:
    cap = settings.max_seq_length
    pairs = train.pairs()
    if not pairs:
        return 0.0
    per_pair = (_tokens([q for q, _ in pairs], cap) + _tokens([p for _, p in pairs], cap)) / len(pairs)
    seen = len(pairs) * max(settings.epochs, 1)
    if settings.train_passage == "all":  # one pair per training window of a long passage
        seen *= _windows_per_passage([p for _, p in pairs], cap)
    if settings.max_steps > 0:
        seen = min(seen, settings.max_steps * settings.batch_size)
    cost = seen * per_pair * TRAIN_SECONDS_PER_TOKEN * LOSS_COST.get(settings.loss, 1.0)
    return cost * (1 + 0.5 * max(settings.hard_negatives, 0))  # each negative: one more passage per pair


def _windows_per_passage(texts, cap: int, sample: int = TOKEN_SAMPLE) -> float:
    """Mean training windows per text at ``cap`` tokens (``core.tuning.pairs``' windows), on a spread."""
    from core.retrieval.windows import SPECIAL_TOKENS
    from core.tuning.pairs import WINDOW_OVERLAP

    picked, _ = _spread(texts, sample)
    body = max(cap - SPECIAL_TOKENS, 1)
    stride = max(body - min(WINDOW_OVERLAP, body // 2), 1)
    return sum(1 + max(0, math.ceil((_count(t) - 2 - body) / stride)) for t in picked) / max(len(picked), 1)
