"""How long a run will take, before it starts, phase by phase.

Each method's cost model (``core.tuning.methods``: ``Method.cost``) adds its phases; the rates and the
token counting they use are in ``core.tuning.cost`` (measured on this project's 2-core CPU machines, per
token, so long passages cost more than short ones, as they do; each loss's factor in
``core.tuning.losses``). The estimate is a guide, not a promise; the live panel measures the real rate
while it runs.
"""

from __future__ import annotations

from core.dataset import QADataset, corpus_words
from core.retrieval.rerank import estimate_seconds as rerank_seconds
from core.tuning.cost import (  # noqa: F401 - the names callers and tests import from here
    ENCODE_SECONDS_PER_TOKEN,
    FAST_FIT_SECONDS,
    STARTUP_SECONDS,
    TOKEN_SAMPLE,
    TRAIN_SECONDS_PER_TOKEN,
    WORDS_TO_TOKENS,
    Estimate,
    fmt_duration,
    over,
    spread,
    tokens,
    trainer_seconds,
    windows_per_passage,
)
from core.tuning.holdout import split_validation
from core.tuning.losses import LOSSES
from core.tuning.methods import method_of
from core.tuning.spec import RunSpec, parts

LOSS_COST = {x.name: x.cost for x in LOSSES}  # each loss's training time relative to CachedMNRL

# The helpers' names before they moved to core.tuning.cost.
_spread, _tokens, _over, _windows_per_passage, _full_training = spread, tokens, over, windows_per_passage, trainer_seconds


def estimate_run(spec: RunSpec, train: QADataset, ev: QADataset) -> Estimate:
    """The phases of ``spec`` on (train, ev) and their rough durations.

    The base model encodes the evaluation passages (and, for the adapter and NUDGE, the training
    passages) once; later runs on the same data reuse those vectors from the cache, so a repeat
    run is faster than this estimate says. Each method (each of a shoot-out's) adds its own phases.
    """
    passage_tokens = spec.scoring.passage_tokens
    est = Estimate()
    est.add("loading the model", STARTUP_SECONDS)
    ev_tokens = tokens(ev.corpus.values(), passage_tokens) + tokens(ev.queries.values(), passage_tokens)
    est.add(f"encoding {corpus_words(ev)} with the base model (first run only; then cached)",
            ev_tokens * ENCODE_SECONDS_PER_TOKEN)
    for name, sub in parts(spec.settings) or [(spec.method, spec.settings)]:
        method = method_of(name)
        if method.cost is not None:
            method.cost(est, spec, sub, train, ev, ev_tokens)
    if spec.rerank is not None:
        n_val = len(split_validation(train, spec.scoring.validation_share, spec.seed)[1] or [])
        train_s, per_question = rerank_seconds(len(train.pairs()), len(ev), spec.rerank)
        sides = 1 if not spec.rerank.model else 2  # a brought reranker reranks each side's best
        est.add("training the reranker" if not spec.rerank.model else "loading the reranker", train_s)
        est.add(f"reranking the top {spec.rerank.top_k} for {len(ev):,} evaluation and {n_val:,} validation "
                f"questions ({per_question:.1f} s each)", sides * per_question * (len(ev) + n_val))
    return est
