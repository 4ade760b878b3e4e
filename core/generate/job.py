"""Question generation as a background run of the store (method ``"generate"``).

A generation run is an ordinary run: the page (or the CLI) builds a :class:`GenerationSpec`,
the store saves ``spec.to_dict()`` as the run's ``config.json`` (:func:`create_generation_run`),
and :func:`run_generation` executes it inside a job (``core.workspace.jobs``), so it gets the
workspace lock, progress with an ETA, cancel, heartbeat and a line in the run history.

The job, phase by phase (the pipeline itself is :func:`generate`, which the CLI calls too):

1. ``generating``: offline pseudo-queries (:mod:`core.generate.offline`, seconds) or an
   OpenAI-compatible endpoint (:mod:`core.generate.llm`): every answer is cached as it
   arrives (:class:`~core.generate.cache.QuestionCache` in the workspace cache folder), so a
   cancelled or failed run loses nothing and the next run asks only for what is missing.
2. ``encoding`` + ``filtering``: the round trip searches every passage with the base model
   at the passage token limit runs use (:class:`core.tuning.spec.Scoring`), through the
   workspace's embedding cache (a later training run on the same passages finds them
   encoded), then the other filters (:mod:`core.generate.filters`).
3. ``saving``: into the run folder, ``questions.json`` (every question with its verdict),
   ``generation.json`` (:class:`GenerationSummary`: counts, the funnel, what went wrong) and
   ``data/passages.json`` (the passages the questions point to, so the run reads back
   without its dataset).

The API key is never part of the spec: it is an argument of :func:`run_generation` and
:func:`generate`, held in memory by the job's closure, and :class:`~core.generate.llm.ApiKey`
refuses to be pickled. Nothing this module writes contains it.

Outcomes: done (with counts, possibly "0 kept", explained); cancelled (what was asked is
cached; ``generation.json`` says how far it got); failed when the endpoint stopped the job
before any question came back (unreachable, 401, 403, 404: the message of
:mod:`core.generate.faults`). A fatal error after some questions still saves and filters
those, and the summary says how to resume.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, get_args

from core.generate.cache import QuestionCache
from core.generate.filters import FilterReport, FilterSettings, filter_questions, recommended_settings
from core.generate.llm import ApiKey, GenerationResult, LLMSettings, generate_questions, with_env_defaults
from core.generate.offline import OfflineResult, OfflineSettings, generate_offline
from core.generate.pairs import GeneratedQuestion, collection_passages, llm_origin, offline_origin
from core.retrieval.embedding import EmbeddingCache, encode, load_model, model_fingerprint, text_key
from core.retrieval.evaluation import PASSAGE_TOKENS
from core.workspace.files import atomic_write_json, read_json
from core.workspace.jobs import Cancelled, Reporter
from core.workspace.run_folder import read_config
from core.workspace.store import Store

logger = logging.getLogger(__name__)

GENERATE_METHOD = "generate"  # the run method of a generation run in the store
QUESTIONS_FILE = "questions.json"
SUMMARY_FILE = "generation.json"
PASSAGES_FILE = "data/passages.json"
Backend = Literal["offline", "llm"]
BACKENDS: tuple[str, ...] = get_args(Backend)


class GenerationStopped(RuntimeError):
    """The endpoint stopped the job before any question came back; the message says why and what to do."""


@dataclass
class GenerationSpec:
    """What a generation run does. Saved as the run's config.json; holds no secret."""

    dataset_id: str = field(
        default="",
        metadata={"help": "The collection (or dataset) whose passages get questions: all its passages, the "
                  "training and evaluation splits together."},
    )
    backend: Backend = field(
        default="offline",
        metadata={
            "help": "offline: pseudo-queries cut from the passages, no LLM, seconds for thousands of passages. "
            "llm: questions written by a model behind any OpenAI-compatible endpoint (Ollama, llama.cpp, vLLM, "
            "LM Studio, OpenAI).",
            "label": "Backend",
        },
    )
    offline: OfflineSettings = field(
        default_factory=OfflineSettings, metadata={"help": "The offline method and its settings."}
    )
    llm: LLMSettings = field(
        default_factory=LLMSettings,
        metadata={"help": "Endpoint, model, prompt and request settings; the API key is never part of them."},
    )
    filters: FilterSettings = field(
        default_factory=FilterSettings, metadata={"help": "Which generated questions are kept."}
    )
    base_model: str | None = field(
        default=None,
        metadata={
            "help": "The model the round-trip check searches with. Empty: the bundled all-MiniLM-L6-v2. Use the "
            "model you will tune: the check keeps questions IT can answer from their own passage.",
            "label": "Base model (round trip)",
        },
    )
    max_passages: int = field(
        default=0,
        metadata={
            "help": "Generate for the first N passages only (0: all of them). A first pass on ~100 passages shows "
            "what the generator writes before an LLM spends hours on all of them; the cache keeps those answers "
            "for the full run.",
            "label": "Passages (0 = all)",
            "min": 0,
            "max": 10_000_000,
        },
    )

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}: use one of {', '.join(BACKENDS)}")
        if self.max_passages < 0:
            raise ValueError("max_passages must be 0 (all) or more")

    @classmethod
    def for_backend(cls, dataset_id: str, backend: str = "offline", method: str = "inverse_cloze",
                    **kw: Any) -> GenerationSpec:
        """A spec with the filters recommended for what the backend writes (see ``recommended_settings``).

        Args:
            dataset_id: The collection or dataset.
            backend: "offline" or "llm".
            method: The offline method (ignored for "llm").
            **kw: Other fields (``offline``/``llm`` settings objects, ``base_model``, ``max_passages``).
        """
        offline = kw.pop("offline", None) or OfflineSettings(method=method)
        spec = cls(dataset_id=dataset_id, backend=backend, offline=offline, **kw)
        if "filters" not in kw:
            spec.filters = recommended_settings(spec.origin)
        return spec

    @property
    def origin(self) -> str:
        """The origin every question of this run gets, e.g. ``generated:offline:crop``."""
        if self.backend == "offline":
            return offline_origin(self.offline.method)
        return llm_origin(with_env_defaults(self.llm).model or "?")

    def resolved(self) -> GenerationSpec:
        """A copy with the endpoint's empty base URL / model filled from the environment (what gets saved)."""
        return replace(self, llm=with_env_defaults(self.llm))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GenerationSpec:
        """Read a spec written by :meth:`to_dict` (store keys ``method`` / ``dataset_id`` extras allowed).

        Raises:
            ValueError: unknown setting names.
        """
        d = {k: v for k, v in d.items() if k != "method"}
        subs = {"offline": OfflineSettings, "llm": LLMSettings, "filters": FilterSettings}
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown generation setting(s): {', '.join(unknown)}")
        kw: dict[str, Any] = {}
        for name, value in d.items():
            if name in subs and isinstance(value, dict):
                sub = subs[name]
                bad = sorted(set(value) - {f.name for f in dataclasses.fields(sub)})
                if bad:
                    raise ValueError(f"unknown {name} setting(s): {', '.join(bad)}")
                value = sub(**value)
            kw[name] = value
        return cls(**kw)

    @classmethod
    def load(cls, run_dir: str | Path) -> GenerationSpec:
        """The spec saved in a run folder's config.json."""
        return cls.from_dict(read_config(run_dir))


@dataclass
class GenerationSummary:
    """What a generation run did, in counts (``generation.json``; the page and the CLI show it).

    Attributes:
        backend: "offline" or "llm".
        origin: The origin of every question (e.g. ``generated:llm:qwen2.5:7b``).
        passages: Passages in the collection (the round trip searches all of them).
        passages_asked: Passages questions were generated for (``max_passages`` may limit it).
        generated: Questions generated.
        kept: Questions every filter kept.
        funnel: Dropped questions by their first failing filter, plus ``generated`` and ``kept``.
        flagged: Questions each filter flagged (a question may count under several).
        line: The funnel in words, e.g. "412 generated, 37 duplicates, 51 failed round-trip, 324 kept".
        empty: Why nothing is left and what to change (None when something is kept).
        passages_without: Passages that gave no question.
        why_without: The most common reason a passage gave none (offline), or the first error (LLM).
        llm: The LLM job's counts (cache hits, requests, failures, retries), for the LLM backend.
        problems: Plain-words remarks: failed passages, language warnings, a stop.
        fatal: The error that stopped an LLM job early, else None.
        cancelled: The user cancelled.
        generation_seconds: Time spent generating.
        filter_seconds: Time spent encoding and filtering.
        encode_cost: What the round trip encoded (passages and questions not already in the embedding
            cache), in character units (:func:`encode_cost`): with ``encode_seconds``, this machine's
            measured rate, which the next estimate uses (``core.generate.timing``).
        encode_seconds: Time the round trip spent encoding them (model loading left out).
        encode_model: The round trip's model (``spec.base_model``; "" for the bundled one).
        encode_fingerprint: Its embedding-cache key at the runs' passage limit (to count what is cached).
    """

    backend: str
    origin: str
    passages: int = 0
    passages_asked: int = 0
    generated: int = 0
    kept: int = 0
    funnel: dict[str, int] = field(default_factory=dict)
    flagged: dict[str, int] = field(default_factory=dict)
    line: str = ""
    empty: str | None = None
    passages_without: int = 0
    why_without: str = ""
    llm: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    fatal: str | None = None
    cancelled: bool = False
    generation_seconds: float = 0.0
    filter_seconds: float = 0.0
    encode_cost: int = 0
    encode_seconds: float = 0.0
    encode_model: str = ""
    encode_fingerprint: str = ""

    @property
    def headline(self) -> dict[str, int]:
        """The counts the run history keeps in the catalog (``metrics``)."""
        return {"generated": self.generated, "kept": self.kept}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GenerationSummary:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


@dataclass
class Generated:
    """The output of :func:`generate`: the questions, their verdicts and how they were made.

    Attributes:
        questions: Every generated question, in passage order.
        report: The filters' verdicts (None when nothing was generated or the run stopped first).
        summary: The counts (:class:`GenerationSummary`).
        llm: The LLM job's result (LLM backend only).
        offline: The offline generator's result (offline backend only).
    """

    questions: list[GeneratedQuestion]
    report: FilterReport | None
    summary: GenerationSummary
    llm: GenerationResult | None = None
    offline: OfflineResult | None = None

    def kept(self) -> list[GeneratedQuestion]:
        """The questions every filter kept."""
        return self.report.kept(self.questions) if self.report is not None else []


def _phase_progress(reporter: Reporter, unit: str) -> Callable[[int, int], None]:
    def progress(done: int, total: int) -> None:
        if reporter.should_stop():
            raise Cancelled()
        reporter.progress(done, total, unit)

    return progress


TEXT_OVERHEAD_CHARS = 250  # encoding one text costs about as much as 250 more characters (measured: see timing)
CHARS_PER_TOKEN = 5  # generous: text past the token limit is never read, so it costs nothing


def encode_cost(texts, kind: str, fp: str = "", cache=None, tokens: int = 512) -> int:
    """What encoding the distinct ``texts`` the embedding cache does not hold yet costs, in character units:
    each text's characters up to the token limit plus :data:`TEXT_OVERHEAD_CHARS` (``core.generate.timing``
    divides this by a measured rate)."""
    unique = {text_key(t): t for t in texts}
    have = cache.get(fp, kind, list(unique)) if cache is not None and fp else {}
    cap = tokens * CHARS_PER_TOKEN
    return sum(min(len(t), cap) + TEXT_OVERHEAD_CHARS for k, t in unique.items() if k not in have)


def _round_trip_vectors(questions, passages, spec, reporter, embedding_cache, model, device, summary):
    """(question vectors, passage vectors) with the base model at the runs' passage token limit; the
    characters encoded and the time taken go into ``summary`` (this machine's measured rate)."""
    if model is None:
        reporter.phase("preparing", "Loading the base model for the round-trip check")
        model = load_model(spec.base_model, device=device)
    model.max_seq_length = PASSAGE_TOKENS  # as runs encode passages: the cache serves both
    fp = model_fingerprint(model)
    texts = list(passages.values())
    q_texts = [q.question for q in questions]
    limit = model.max_seq_length
    cost = (encode_cost(texts, "passage", fp, embedding_cache, limit)
            + encode_cost(q_texts, "query", fp, embedding_cache, limit))
    t0 = time.perf_counter()
    reporter.phase("encoding", f"Round trip: encoding {len(passages):,} passages with the base model")
    p_vecs = encode(model, texts, kind="passage", cache=embedding_cache, progress=_phase_progress(reporter, "passages"))
    reporter.phase("encoding", f"Round trip: encoding {len(questions):,} questions")
    q_vecs = encode(model, q_texts, kind="query", cache=embedding_cache, progress=_phase_progress(reporter, "questions"))
    summary.encode_cost, summary.encode_seconds = cost, time.perf_counter() - t0
    summary.encode_model, summary.encode_fingerprint = spec.base_model or "", fp
    logger.info("round trip: encoding cost %d (character units) in %.1f s", cost, summary.encode_seconds)
    return q_vecs, p_vecs


def _llm_problems(res: GenerationResult) -> list[str]:
    out = []
    if res.failed:
        first = next(iter(res.errors.values()), "")
        out.append(f"{res.failed} passage(s) gave no question; run again to retry them. First reason: {first}")
    if res.warnings:
        out.append(f"{len(res.warnings)} passage(s) got questions in another script than the passage: "
                   f"{next(iter(res.warnings.values()))}")
    return out


def generate(
    passages: dict[str, str],
    spec: GenerationSpec,
    *,
    api_key: ApiKey | str | None = None,
    reporter: Reporter | None = None,
    cache_folder: str | Path | None = None,
    embedding_cache=None,
    model=None,
    device: str | None = None,
) -> Generated:
    """Generate questions for ``passages`` and filter them (the job's and the CLI's pipeline).

    Args:
        passages: Passage id -> text: the whole collection (the round trip searches all of it).
        spec: Backend, its settings, the filters, the base model, the passage cap.
        api_key: The endpoint's key, in memory only (LLM backend); None: ``ETL_LLM_API_KEY``,
            then ``OPENAI_API_KEY``, else none (local servers).
        reporter: Phases, progress and cancel (a ``core.workspace.jobs.Job``, or anything with ``phase``,
            ``progress`` and ``should_stop``, like the CLI's printer); None: silent.
        cache_folder: Folder of the LLM answer cache (the workspace's ``cache/``); None: no cache.
        embedding_cache: An ``EmbeddingCache`` for the round trip's encodes; None: no cache.
        model: An already loaded base model for the round trip (else ``spec.base_model`` is loaded).
        device: "cpu" / "cuda" / "mps" for loading the model; None: the best available.

    Returns:
        The questions with their verdicts and the counts (:class:`Generated`). When an LLM job was
        cancelled, ``summary.cancelled`` is set and nothing is filtered.

    Raises:
        core.generate.faults.GenerationError: LLM settings that cannot work (before any request).
        core.workspace.jobs.Cancelled: a cancel during offline generation or filtering.
        ValueError: bad offline settings.
    """
    reporter = reporter or Reporter()
    spec = spec.resolved()
    ids = list(passages)
    asked_ids = ids[: spec.max_passages] if spec.max_passages else ids
    asked = {pid: passages[pid] for pid in asked_ids}
    summary = GenerationSummary(spec.backend, spec.origin, passages=len(passages), passages_asked=len(asked))
    out = Generated([], None, summary)
    t0 = time.perf_counter()
    if spec.backend == "offline":
        reporter.phase("generating", f"{spec.offline.method} pseudo-queries from {len(asked):,} passages")
        out.offline = generate_offline(asked, spec.offline, progress=_phase_progress(reporter, "passages"))
        out.questions = list(out.offline.questions)
        summary.passages_without = len(out.offline.skipped)
        if out.offline.skipped:
            reason, n = Counter(out.offline.skipped.values()).most_common(1)[0]
            summary.why_without = f"most often: {reason}, {n} passage{'s' if n != 1 else ''}"
    else:
        reporter.phase("generating", f"Asking {spec.llm.model} for {spec.llm.questions_per_passage} questions on "
                                     f"each of {len(asked):,} passages (cached answers are reused)")
        cache = QuestionCache.in_folder(cache_folder) if cache_folder is not None else None
        res = generate_questions(asked, spec.llm, api_key, cache=cache,
                                 progress=lambda d, t: reporter.progress(d, t, "passages"),
                                 should_stop=reporter.should_stop, status=reporter.note)
        out.llm = res
        out.questions = res.to_questions()
        summary.passages_without = res.total - len(res.questions)
        summary.why_without = next(iter(res.errors.values()), "")
        summary.llm = {k: v for k, v in res.to_dict().items() if k not in ("questions", "errors", "warnings",
                                                                              "error_kinds")}
        summary.problems = _llm_problems(res)
        summary.fatal = str(res.fatal) if res.fatal is not None else None
        summary.cancelled = res.cancelled
        if res.cancelled or res.fatal is not None:
            summary.problems.append(res.summary())
    summary.generation_seconds = time.perf_counter() - t0
    summary.generated = len(out.questions)
    if summary.cancelled or not out.questions:
        if not out.questions and not summary.cancelled:
            summary.line = "0 generated, 0 kept"
            summary.empty = _nothing_generated(summary, out)
        return out

    t1 = time.perf_counter()
    vectors: dict[str, Any] = {}
    if spec.filters.round_trip:
        q_vecs, p_vecs = _round_trip_vectors(out.questions, passages, spec, reporter, embedding_cache, model, device,
                                             summary)
        vectors = {"question_vectors": q_vecs, "passage_vectors": p_vecs}
    reporter.phase("filtering", f"Filtering {len(out.questions):,} questions")
    if reporter.should_stop():
        raise Cancelled()
    out.report = filter_questions(out.questions, passages, spec.filters, **vectors)
    summary.filter_seconds = time.perf_counter() - t1
    summary.kept = out.report.n_kept
    summary.funnel = out.report.funnel()
    summary.flagged = out.report.flagged()
    summary.line = out.report.summary()
    summary.empty = out.report.explain_empty()
    return out


def _nothing_generated(summary: GenerationSummary, out: Generated) -> str:
    """Why a run produced no question at all, in words."""
    if summary.fatal:
        return f"No question was generated: {summary.fatal}"
    if not summary.passages_asked:
        return "The collection has no passages: add documents or a passages file on the Data page."
    if out.offline is not None:
        return (f"None of the {summary.passages_asked} passages gave a {out.offline.method} query "
                f"({summary.why_without}). Try another method: crop works on any passage of 4+ words.")
    return f"No passage gave a question. First reason: {summary.why_without}"


# --------------------------------------------------------------------------- the run


def create_generation_run(store: Store, spec: GenerationSpec, name: str | None = None) -> str:
    """Save a queued generation run of ``spec`` (its config.json, the endpoint resolved); returns its id."""
    spec = spec.resolved()
    return store.create_run(spec.dataset_id, GENERATE_METHOD, spec.to_dict(), name=name)


def question_rows(questions: list[GeneratedQuestion], report: FilterReport | None) -> list[dict[str, Any]]:
    """One JSON-able row per question: the record, then its verdict (``kept``, ``why``, ``rank``, ...)."""
    verdicts = report.rows(questions) if report is not None else [{} for _ in questions]
    return [{**asdict(q), **{k: v for k, v in r.items() if k not in ("question", "passage_id", "origin")}}
            for q, r in zip(questions, verdicts)]


def run_generation(store: Store, run_id: str, reporter: Reporter | None = None,
                   api_key: ApiKey | str | None = None, device: str | None = None) -> GenerationSummary:
    """Execute generation run ``run_id`` (what a job runs) and write its files (see the module docstring).

    Args:
        store: The workspace.
        run_id: A run made by :func:`create_generation_run`.
        reporter: The job (phases, progress, cancel).
        api_key: The endpoint's key, in memory only; never written anywhere.
        device: For the round trip's model.

    Returns:
        The counts (also in ``generation.json``).

    Raises:
        core.workspace.jobs.Cancelled: the user cancelled (what was generated is cached; counts saved).
        GenerationStopped: the endpoint stopped the job before any question came back.
        core.generate.faults.GenerationError: LLM settings that cannot work.
    """
    reporter = reporter or Reporter()
    run_dir = store.run_dir(run_id)
    spec = GenerationSpec.load(run_dir)
    reporter.phase("preparing", "Reading the passages")
    train, ev = store.load_dataset(spec.dataset_id)
    passages, sources = collection_passages(train, ev)
    atomic_write_json(run_dir / PASSAGES_FILE, {"corpus": passages, "sources": sources})
    try:
        out = generate(passages, spec, api_key=api_key, reporter=reporter, cache_folder=store.root / "cache",
                       embedding_cache=EmbeddingCache(store.cache_path), device=device)
    except Cancelled:
        atomic_write_json(run_dir / SUMMARY_FILE, {**GenerationSummary(spec.backend, spec.origin).to_dict(),
                                                   "cancelled": True})
        raise
    reporter.phase("saving", f"Saving {len(out.questions):,} questions")
    if out.questions:
        atomic_write_json(run_dir / QUESTIONS_FILE, question_rows(out.questions, out.report))
    atomic_write_json(run_dir / SUMMARY_FILE, out.summary.to_dict())
    for line in out.summary.problems:
        reporter.note(line)
    if out.summary.cancelled:
        raise Cancelled()
    if out.summary.fatal and not out.questions:
        raise GenerationStopped(out.summary.fatal)
    logger.info("generation run %s: %s", run_id, out.summary.line)
    return out.summary


# --------------------------------------------------------------------------- reading a run back


def load_summary(run_dir: str | Path) -> GenerationSummary | None:
    """A generation run's counts (None before it saved any)."""
    d = read_json(Path(run_dir) / SUMMARY_FILE)
    return GenerationSummary.from_dict(d) if d else None


def load_rows(run_dir: str | Path) -> list[dict[str, Any]]:
    """A generation run's questions with their verdicts (``questions.json``; [] when none)."""
    return list(read_json(Path(run_dir) / QUESTIONS_FILE, []) or [])


def load_passages(run_dir: str | Path) -> tuple[dict[str, str], dict[str, str]]:
    """(passages, sources) a generation run's questions point to (its own copy)."""
    d = read_json(Path(run_dir) / PASSAGES_FILE, {}) or {}
    return dict(d.get("corpus", {})), dict(d.get("sources", {}))


def generation_runs(store: Store, dataset_id: str | None = None, status: str | None = None) -> list[dict]:
    """Generation runs, newest first (of one dataset, and in one status, when given)."""
    return [r for r in store.list_runs() if r["method"] == GENERATE_METHOD
            and (dataset_id is None or r.get("dataset_id") == dataset_id)
            and (status is None or r["status"] == status)]
