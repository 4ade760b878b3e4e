"""How long generating questions will take on this machine, said before it starts (issue 26).

Offline generation itself takes a second for thousands of passages; the round-trip check is what
costs: it encodes every passage (at the runs' passage token limit) and every generated question with
the base model. Profiled on 2,973 passages cut from 39 sec-10k documents (2 shared CPU cores, about
4 other processes competing): 504 s in all, 322 s encoding the passages, 165 s encoding 1,878
questions, under 2 s generating and filtering. Encoding time follows the characters read (up to the
token limit) plus a cost per text (:func:`core.generate.job.encode_cost`: about 250 characters' worth,
measured), so the estimate is

    cost of what is not in the embedding cache yet (passages and questions) / cost per second

with the rate measured on this machine: by the last generation in this workspace (its
``generation.json``: ``encode_cost`` / ``encode_seconds``), or else just now on a small sample of this
collection's passages and questions (:func:`measure_rate`). What a round trip encodes is cached, so
the training run that follows (same model, same limit) reads those passage vectors instead of
encoding them again.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass

from core.generate.job import TEXT_OVERHEAD_CHARS, GenerationSpec, encode_cost, generation_runs, load_summary
from core.generate.offline import generate_offline
from core.retrieval.embedding import encode, model_fingerprint, text_key
from core.retrieval.evaluation import PASSAGE_TOKENS
from core.workspace.jobs import fmt_duration
from core.workspace.store import Store

logger = logging.getLogger(__name__)

SAMPLE_PASSAGES = 16  # passages (and as many questions) encoded to measure the rate when nothing is stored
MIN_RATE_COST = 20_000  # a stored measurement over less (character units) is too noisy to reuse
LLM_QUESTION_CHARS = 90  # an LLM-written question, on average (the question is not known before it is written)
OFFLINE_SECONDS_PER_PASSAGE = 0.001  # offline generation: ~1 s for 3,866 passages


@dataclass(frozen=True)
class EncodeRate:
    """How fast the base model encodes on this machine.

    Attributes:
        per_second: Encoding cost (character units, :func:`~core.generate.job.encode_cost`) per second.
        model: The model it was measured with ("" for the bundled one).
        fingerprint: That model's embedding-cache key at the runs' passage limit ("" unknown).
        source: Where the figure comes from, in words.
    """

    per_second: float
    model: str = ""
    fingerprint: str = ""
    source: str = ""


def stored_rate(store: Store, model: str | None = None) -> EncodeRate | None:
    """The rate the newest finished generation of this workspace measured with ``model`` (None: bundled).

    Returns:
        None when no finished generation encoded enough (:data:`MIN_RATE_CHARS`) with that model.
    """
    for run in generation_runs(store, status="done"):
        s = load_summary(store.run_dir(run["id"]))
        if (s is not None and s.encode_cost >= MIN_RATE_COST and s.encode_seconds > 0
                and s.encode_model == (model or "")):
            return EncodeRate(s.encode_cost / s.encode_seconds, s.encode_model, s.encode_fingerprint,
                              "the rate the last generation in this workspace measured")
    return None


def measure_rate(model, passages: dict[str, str], spec: GenerationSpec | None = None, sample: int = SAMPLE_PASSAGES,
                 seed: int = 0) -> EncodeRate:
    """Encode a random sample of ``passages`` and of their offline questions (uncached) and time it.

    Args:
        model: The loaded base model (its ``max_seq_length`` is set to the runs' passage limit).
        passages: The collection (id -> text).
        spec: The generation (its base model's name and offline settings); None: the defaults.
        sample: Passages to encode (and up to as many questions made from them).
        seed: Which passages.
    """
    spec = spec or GenerationSpec()
    model.max_seq_length = PASSAGE_TOKENS
    ids = [i for i, t in passages.items() if t.strip()]
    if not ids:
        raise ValueError("No passage to measure the encoding speed on.")
    picked = random.Random(seed).sample(ids, min(sample, len(ids)))
    texts = [passages[i] for i in picked]
    questions = [q.question for q in generate_offline({i: passages[i] for i in picked}, spec.offline).questions]
    questions = list(dict.fromkeys(questions))[:sample]
    encode(model, texts[:1], kind="passage")  # the first call pays one-off costs; not part of the rate
    t0 = time.perf_counter()
    encode(model, texts, kind="passage")
    if questions:
        encode(model, questions, kind="query")
    seconds = max(time.perf_counter() - t0, 1e-3)
    cost = encode_cost(texts, "passage", tokens=model.max_seq_length) + encode_cost(questions, "query",
                                                                                    tokens=model.max_seq_length)
    logger.info("encoding rate: cost %d in %.2f s", cost, seconds)
    return EncodeRate(cost / seconds, spec.base_model or "", model_fingerprint(model),
                      f"measured just now on {len(texts)} of this collection's passages and {len(questions)} "
                      "questions")


def question_cost(passages: dict[str, str], spec: GenerationSpec, tokens: int = 512) -> int:
    """Encoding cost of the questions ``spec`` will generate from ``passages`` (offline: generated now, a second
    for thousands of passages; LLM: ``questions_per_passage`` questions of :data:`LLM_QUESTION_CHARS` each)."""
    ids = list(passages)[: spec.max_passages] if spec.max_passages else list(passages)
    if spec.backend == "offline":
        out = generate_offline({i: passages[i] for i in ids}, spec.offline)
        return encode_cost([q.question for q in out.questions], "query", tokens=tokens)
    return len(ids) * spec.llm.questions_per_passage * (LLM_QUESTION_CHARS + TEXT_OVERHEAD_CHARS)


@dataclass(frozen=True)
class GenerationEstimate:
    """How long a generation will take, before it starts.

    Attributes:
        passages: Passages in the collection (the round trip searches all of them).
        asked: Passages questions are generated for.
        to_encode: Passages the embedding cache does not hold yet (None: not known).
        cost: What the round trip will encode, in character units (passages still to encode, questions).
        seconds: Offline generation plus the round trip (None: no rate to go by); the LLM's own time is
            not in it.
        rate: The rate used.
        round_trip: Whether the round-trip check is on.
        backend: "offline" or "llm".
    """

    passages: int
    asked: int
    to_encode: int | None
    cost: int
    seconds: float | None
    rate: EncodeRate | None
    round_trip: bool
    backend: str = "offline"

    def text(self) -> str:
        """One line for the page, e.g. "about 12 min for 3,866 passages on this machine (...)"."""
        n = f"{self.asked:,} passages"
        if not self.round_trip:
            return (f"seconds for {n} (round-trip check off)" if self.backend == "offline"
                    else f"the endpoint's time for {n} (round-trip check off)")
        what = (f"the round-trip check encodes {self.to_encode:,} passages not encoded yet and the questions with "
                "the base model" if self.to_encode is not None else
                "the round-trip check encodes every passage and question with the base model")
        if self.seconds is None:
            return f"unknown for {n}: {what}, and this machine's speed is not measured yet"
        took = fmt_duration(self.seconds)
        took = took if took.startswith("about") else f"about {took}"
        head = (f"{took} for {n} on this machine" if self.backend == "offline" else
                f"the endpoint's time for {n}, then {took} on this machine")
        return f"{head} ({what}; {self.rate.source})" if self.rate else f"{head} ({what})"


def estimate_generation(passages: dict[str, str], spec: GenerationSpec, rate: EncodeRate | None,
                        cache=None, q_cost: int | None = None) -> GenerationEstimate:
    """The time a generation of ``spec`` on ``passages`` will take on this machine.

    Args:
        passages: The whole collection (the round trip searches all of it).
        spec: The generation's settings (backend, method, filters, base model, passage cap).
        rate: The measured rate (:func:`stored_rate` or :func:`measure_rate`); None: unknown.
        cache: The workspace's ``EmbeddingCache``: passages it holds for the rate's model cost nothing.
        q_cost: :func:`question_cost`, when already computed.
    """
    tokens = PASSAGE_TOKENS
    asked = min(spec.max_passages or len(passages), len(passages))
    gen_seconds = asked * OFFLINE_SECONDS_PER_PASSAGE if spec.backend == "offline" else 0.0
    if not spec.filters.round_trip:
        return GenerationEstimate(len(passages), asked, None, 0, gen_seconds, rate, False, spec.backend)
    texts = list(passages.values())
    to_encode = None
    fp = rate.fingerprint if rate is not None and cache is not None else ""
    if fp:
        keys = {text_key(t) for t in texts}
        to_encode = len(keys) - len(cache.get(fp, "passage", list(keys)))
    cost = encode_cost(texts, "passage", fp, cache, tokens) + (
        question_cost(passages, spec, tokens) if q_cost is None else q_cost)
    seconds = gen_seconds + cost / rate.per_second if rate is not None and rate.per_second > 0 else None
    return GenerationEstimate(len(passages), asked, to_encode, cost, seconds, rate, True, spec.backend)
