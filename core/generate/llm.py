"""Questions from passages through any OpenAI-compatible chat-completions endpoint.

Ollama, llama.cpp's server, vLLM, LM Studio and OpenAI all speak this protocol; the
official ``openai`` client talks to them. :func:`generate_questions` is the job-facing
function: it sends one request per passage (at most ``max_parallel`` at a time, from a
thread pool), parses the answer (:mod:`core.generate.parse`), stores every useful answer
in a :class:`~core.generate.cache.QuestionCache` as soon as it arrives, and returns a
:class:`GenerationResult`. A cancelled or failed job therefore resumes where it stopped,
and a re-run of finished work makes no request at all.

Where the settings come from: :class:`LLMSettings` (saved with a job, shown in forms);
empty ``base_url`` / ``model`` fall back to ``ETL_LLM_BASE_URL`` / ``ETL_LLM_MODEL``, then
``OPENAI_BASE_URL`` (:func:`with_env_defaults`). The API key is never part of the
settings: it travels as an :class:`ApiKey` (from the form, else ``ETL_LLM_API_KEY``, else
``OPENAI_API_KEY``; :func:`resolve_api_key`), whose repr hides it and which refuses to be
pickled. It is not written to the cache, logs, results or messages.

Retries: 429, 408/409, 5xx, timeouts and connection errors are retried with exponential
backoff (``backoff_s``, doubling, plus a little jitter), honouring ``Retry-After`` /
``retry-after-ms`` when the server sends one; 400, 401, 403, 404 and 422 are not retried
(asking again cannot help); a Retry-After over :data:`MAX_RETRY_WAIT_S` fails the passage
instead of holding the job. The client's own retries are turned off so this module alone
decides. When the job stops (cancel, fatal error), a request waiting to be retried gives up
at once and its passage is left for the next run (neither failed nor cached).

Errors: every fault becomes one :class:`~core.generate.faults.GenerationError` with a message
for the user; :mod:`core.generate.faults` lists them. Settings that cannot work raise before
any request; an unreachable endpoint, 401, 403 and 404 stop the job after the first request
(the first passage is sent alone) and come back as ``GenerationResult.fatal``; other faults
are per passage (``GenerationResult.errors``), and :data:`STOP_AFTER_FAILURES_IN_A_ROW` of them
in a row stop the job too. Questions in another script than their passage give a warning.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from core.generate.cache import QuestionCache, cache_key
from core.generate.faults import (
    RETRYABLE_KINDS,
    GenerationError,
    classify,
    language_warning,
    no_questions,
    not_a_completion,
    retry_after,
    wait_too_long,
)
from core.generate.llm_settings import (  # noqa: F401 - re-exported: the public API of this module
    NO_KEY_PLACEHOLDER,
    ApiKey,
    LLMSettings,
    check_settings,
    fill_prompt,
    resolve_api_key,
    with_env_defaults,
)
from core.generate.pairs import GeneratedQuestion, llm_origin
from core.generate.parse import parse_questions

logger = logging.getLogger(__name__)

# Failed passages in a row (after their retries) that stop the job: a dead server or a model
# that never answers in the expected shape should not be asked 5,000 times.
STOP_AFTER_FAILURES_IN_A_ROW = 5
# Longest wait honoured from a Retry-After header; a longer one is answered by failing the
# passage (the next run resumes it) instead of holding the job.
MAX_RETRY_WAIT_S = 120.0
# How often the coordinating thread checks should_stop() while requests are in flight.
POLL_S = 0.2
Progress = Callable[[int, int], None]  # (passages done, passages in all)



# --------------------------------------------------------------------------- the job


@dataclass
class GenerationResult:
    """What a generation job produced; everything in it was also cached as it arrived.

    Attributes:
        questions: Passage id -> questions, in passage order (from the cache and from this run).
        errors: Passage id -> the user message of that passage's failure.
        error_kinds: Passage id -> :data:`~core.generate.faults.ErrorKind` of that failure.
        warnings: Passage id -> a remark on questions that were kept (e.g. another script).
        total: Passages given.
        from_cache: Passages answered from the cache (no request).
        requested: Passages sent to the endpoint in this run (answered or failed).
        failed: Passages without questions: failed requests, useless answers, empty passages.
        http_requests: HTTP requests made, retries included.
        retries: Retries made.
        cancelled: should_stop() asked to stop.
        fatal: The error that stopped the job early (unreachable, 401, 403, 404, or
            too many failures in a row), else None.
        model: The model asked.
        seconds: Wall time of the job.
    """

    questions: dict[str, list[str]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    error_kinds: dict[str, str] = field(default_factory=dict)
    warnings: dict[str, str] = field(default_factory=dict)
    total: int = 0
    from_cache: int = 0
    requested: int = 0
    failed: int = 0
    http_requests: int = 0
    retries: int = 0
    cancelled: bool = False
    fatal: GenerationError | None = None
    model: str = ""
    seconds: float = 0.0

    @property
    def not_attempted(self) -> int:
        """Passages left for the next run (stopped, cancelled or fatal error before asking)."""
        return self.total - len(self.questions) - self.failed

    @property
    def n_questions(self) -> int:
        return sum(len(v) for v in self.questions.values())

    @property
    def complete(self) -> bool:
        """Every passage has questions."""
        return len(self.questions) == self.total

    def summary(self) -> str:
        """One line for the page or the CLI, ending with what to do when the job did not finish."""
        line = (
            f"{self.n_questions} questions for {len(self.questions)} of {self.total} passages "
            f"({self.from_cache} from cache, {self.requested} asked, {self.failed} failed)."
        )
        if self.fatal is not None:
            line += f" Stopped: {self.fatal}"
        elif self.cancelled:
            line += f" Cancelled with {self.not_attempted} passages left: run again to resume."
        elif self.failed:
            line += " Run again to retry the failed passages."
        return line

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able mapping for a job's status file (the fatal error as kind, message, status)."""
        out = asdict(replace(self, fatal=None))
        out["fatal"] = (
            None
            if self.fatal is None
            else {"kind": self.fatal.kind, "message": str(self.fatal), "status": self.fatal.status}
        )
        out["not_attempted"] = self.not_attempted
        out["n_questions"] = self.n_questions
        return out

    def to_questions(self) -> list[GeneratedQuestion]:
        """Every question as a :class:`GeneratedQuestion` with origin ``generated:llm:<model>``."""
        origin = llm_origin(self.model)
        return [GeneratedQuestion(q, pid, origin) for pid, qs in self.questions.items() for q in qs]


class _Interrupted(Exception):
    """A request given up between retries because the job is stopping: the passage is left for the next run."""


class _Counters:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.http = 0
        self.retries = 0

    def add(self, http: int = 0, retries: int = 0) -> None:
        with self.lock:
            self.http += http
            self.retries += retries


def _ask(
    client: Any, settings: LLMSettings, key: ApiKey, prompt: str, stop: threading.Event, counters: _Counters,
    status: Callable[[str], None] | None = None, probing: bool = False,
) -> tuple[str, str | None]:
    """One chat completion with retries. Returns (content, finish_reason); raises GenerationError.

    ``status`` hears "waiting for the endpoint (attempt k of n, T s each)" before each try of the first
    request of a job (``probing``)."""
    attempt = 0
    kwargs: dict[str, Any] = {"temperature": settings.temperature}
    if settings.max_answer_tokens > 0:
        kwargs["max_tokens"] = settings.max_answer_tokens
    while True:
        counters.add(http=1)
        if status is not None and probing:  # the first passage: until it answers, say what the job waits for
            status(f"waiting for the endpoint (attempt {attempt + 1} of {settings.retries + 1}, "
                   f"{settings.timeout_s:g} s each)")
        try:
            resp = client.chat.completions.create(
                model=settings.model, messages=[{"role": "user", "content": prompt}], **kwargs
            )
            choices = getattr(resp, "choices", None)
            if not isinstance(choices, list):
                raise GenerationError("bad_response", not_a_completion(settings.base_url, "no 'choices'"))
            if not choices:
                return "", None
            return (choices[0].message.content or ""), choices[0].finish_reason
        except Exception as exc:  # noqa: BLE001 - every fault becomes one GenerationError
            err = classify(
                exc,
                base_url=settings.base_url,
                model=settings.model,
                timeout_s=settings.timeout_s,
                retries=settings.retries,
                secret=key.reveal(),
            )
            if err.kind not in RETRYABLE_KINDS or attempt >= settings.retries:
                raise err from None
            if stop.is_set():
                raise _Interrupted() from None
            wait_s = retry_after(exc)
            if wait_s is None:
                wait_s = settings.backoff_s * (2**attempt) * (1 + 0.1 * random.random())
            elif wait_s > MAX_RETRY_WAIT_S:
                raise wait_too_long(err, wait_s) from None
            attempt += 1
            counters.add(retries=1)
            logger.info("retry %d/%d in %.1f s after %s", attempt, settings.retries, wait_s, err.kind)
            if stop.wait(wait_s):
                raise _Interrupted() from None


def generate_questions(
    passages: dict[str, str],
    settings: LLMSettings,
    api_key: ApiKey | str | None = None,
    cache: QuestionCache | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    status: Callable[[str], None] | None = None,
) -> GenerationResult:
    """Ask the endpoint for questions on every passage not in the cache yet.

    Answers are cached per endpoint URL, model, prompt and settings. When every answer comes from the
    cache, one request first checks that the endpoint answers at all (a dead or wrong server is not
    hidden by old answers). When the first passage fails every try, the job stops with that error.

    The first passage to ask about is sent alone: if the endpoint is unreachable, refuses
    the key or does not know the model, the job stops after one request. Then up to
    ``settings.max_parallel`` requests are in flight. Each answer with at least one question
    is cached at once (``cache``), so nothing is lost when the job stops.

    Args:
        passages: Passage id -> text.
        settings: How to ask; empty base URL / model are taken from the environment.
        api_key: The key (an :class:`ApiKey` or a string from a form field); None or empty:
            ``ETL_LLM_API_KEY``, then ``OPENAI_API_KEY``, else none (local servers).
        cache: Where answers are looked up and stored; None caches nothing.
        progress: Called with (passages done, passages in all) in the calling thread: once
            at the start (cached ones count as done) and after each passage.
        should_stop: Polled about every 0.2 s; when it returns True no new request starts
            and the job returns once the ones in flight end (their answers are cached).
        status: Told what the job waits for, in words ("waiting for the endpoint (attempt 2 of 5,
            120 s each)"), while the first passage is asked.

    Returns:
        The questions, per-passage errors and warnings, and counts (:class:`GenerationResult`).
        An unreachable endpoint, 401, 403 and 404 end up in ``result.fatal``.

    Raises:
        GenerationError: kind ``"settings"``, before any request (no base URL, no model,
            a prompt without ``{passage}``, a bad number).
    """
    t0 = time.perf_counter()
    settings = with_env_defaults(settings)
    check_settings(settings)
    key = resolve_api_key(api_key)
    should_stop = should_stop or (lambda: False)
    n = settings.questions_per_passage
    result = GenerationResult(total=len(passages), model=settings.model)
    keys = {pid: cache_key(text, settings.prompt, settings.model, n, base_url=settings.base_url,
                           temperature=settings.temperature, max_answer_tokens=settings.max_answer_tokens)
            for pid, text in passages.items()}
    cached = cache.get(list(keys.values())) if cache is not None else {}
    found: dict[str, list[str]] = {}
    todo: list[str] = []
    for pid, text in passages.items():
        if keys[pid] in cached:
            found[pid] = cached[keys[pid]][:n]
            result.from_cache += 1
        elif not text.strip():
            result.errors[pid] = "The passage is empty: there is nothing to ask about."
            result.error_kinds[pid] = "no_questions"
            result.failed += 1
        else:
            todo.append(pid)
    done = result.from_cache + result.failed
    if progress:
        progress(done, result.total)
    logger.info(
        "LLM questions: %d passages, %d cached, %d to ask; model %s at %s (key %s)",
        result.total,
        result.from_cache,
        len(todo),
        settings.model,
        settings.base_url,
        "set" if key else "not set",
    )
    if todo and not should_stop():
        _Requests(passages, keys, settings, key, cache, result, found, status).run(todo, done, progress,
                                                                                    should_stop)
    elif todo:
        result.cancelled = True
    elif found and not should_stop():  # all from the cache: is the endpoint there at all? (one request)
        ok, message = _probe(settings, key, status)
        if not ok:
            result.fatal = GenerationError("unreachable", f"Cached answers not used: {message}", fatal=True)
            found.clear()
            result.from_cache = 0
    result.questions = {pid: found[pid] for pid in passages if pid in found}
    result.seconds = time.perf_counter() - t0
    logger.info("LLM questions: %s", result.summary())
    return result


class _Requests:
    """The requests of one job: a thread pool, the probe-first rule, the stop rules and the counts."""

    def __init__(
        self,
        passages: dict[str, str],
        keys: dict[str, str],
        settings: LLMSettings,
        key: ApiKey,
        cache: QuestionCache | None,
        result: GenerationResult,
        found: dict[str, list[str]],
        status: Callable[[str], None] | None = None,
    ):
        self.status = status
        self.passages, self.keys, self.settings, self.key = passages, keys, settings, key
        self.cache, self.result, self.found = cache, result, found
        self.counters = _Counters()
        self.stop = threading.Event()
        self.in_a_row = 0
        self.probing = True  # the first request goes alone: a fatal fault then costs one request
        self.client: Any = None

    def work(self, pid: str) -> list[str]:
        """One passage, in a worker thread: ask, parse, cache. Raises GenerationError or _Interrupted."""
        s, n = self.settings, self.settings.questions_per_passage
        content, finish = _ask(
            self.client, s, self.key, fill_prompt(s, self.passages[pid]), self.stop, self.counters, self.status,
            probing=self.probing,
        )
        questions = parse_questions(content)[:n]
        if not questions:
            raise no_questions(content, finish)
        if self.cache is not None:
            secret = self.key.reveal()
            raw = content.replace(secret, "***") if secret else content  # a server could echo it back
            self.cache.put(self.keys[pid], questions, raw, s.model, n)
        return questions

    def record(self, pid: str, fut: Future) -> bool:
        """Book one finished request in the result; False when it was interrupted (not attempted)."""
        r = self.result
        try:
            questions = fut.result()
        except _Interrupted:
            return False
        except GenerationError as err:
            r.errors[pid], r.error_kinds[pid] = str(err), err.kind
            r.failed += 1
            self.in_a_row += 1
            if r.fatal is None and err.fatal:
                r.fatal = err
            elif r.fatal is None and self.probing and err.kind in RETRYABLE_KINDS:
                tries = self.settings.retries + 1
                r.fatal = GenerationError(
                    err.kind,
                    f"Stopped: the first passage failed all {tries} tr{'ies' if tries != 1 else 'y'} "
                    f"({self.settings.timeout_s:g} s each); the endpoint's last error: {err}",
                    status=err.status,
                    fatal=True,
                )
            elif r.fatal is None and self.in_a_row >= STOP_AFTER_FAILURES_IN_A_ROW:
                r.fatal = GenerationError(
                    err.kind,
                    f"Stopped after {self.in_a_row} passages in a row failed; the last one: {err}",
                    status=err.status,
                    fatal=True,
                )
            if r.fatal is not None:
                self.stop.set()
        else:
            self.found[pid] = questions
            self.in_a_row = 0
            warning = language_warning(self.passages[pid], questions)
            if warning:
                r.warnings[pid] = warning
        r.requested += 1
        self.probing = False
        return True

    def run(
        self, todo: list[str], done: int, progress: Progress | None, should_stop: Callable[[], bool]
    ) -> None:
        from openai import OpenAI

        s = self.settings
        self.client = OpenAI(
            base_url=s.base_url,
            api_key=self.key.reveal() or NO_KEY_PLACEHOLDER,
            timeout=s.timeout_s,
            max_retries=0,  # this module decides about retries (see the module docstring)
        )
        queue = iter(todo)
        pending: dict[Future, str] = {}
        try:
            with ThreadPoolExecutor(max_workers=s.max_parallel, thread_name_prefix="etl-llm") as pool:
                try:
                    while True:
                        limit = 1 if self.probing else s.max_parallel
                        while len(pending) < limit and not self.stop.is_set():
                            pid = next(queue, None)
                            if pid is None:
                                break
                            pending[pool.submit(self.work, pid)] = pid
                        if not pending:
                            break
                        finished, _ = wait(list(pending), timeout=POLL_S, return_when=FIRST_COMPLETED)
                        if not self.stop.is_set() and should_stop():
                            self.result.cancelled = True
                            self.stop.set()
                        for fut in finished:
                            if self.record(pending.pop(fut), fut):
                                done += 1
                                if progress:
                                    progress(done, self.result.total)
                except BaseException:
                    self.stop.set()  # an unexpected error: requests in flight end at their next retry
                    raise
        finally:
            self.client.close()
            self.result.http_requests = self.counters.http
            self.result.retries = self.counters.retries
        if self.result.fatal is not None:
            logger.warning("LLM questions stopped early: %s", self.result.fatal)


PROBE_PASSAGE = (
    "The hydraulic pump must be inspected every 500 operating hours. Replace the seals when oil is found "
    "under the housing."
)


def _probe(settings: LLMSettings, key: ApiKey, status: Callable[[str], None] | None) -> tuple[bool, str]:
    """One request, no retry (:func:`check_connection`), before a run is served from the cache."""
    if status is not None:
        status(f"checking the endpoint before using cached answers ({settings.timeout_s:g} s at most)")
    return check_connection(settings, key)


def check_connection(settings: LLMSettings, api_key: ApiKey | str | None = None) -> tuple[bool, str]:
    """Ask the endpoint for one question on a short passage: is it reachable, is the key good, is the model known?

    One request, no retry, nothing cached.

    Returns:
        (True, what the model answered) or (False, the message of the fault, as a job would show it).
    """
    s = replace(with_env_defaults(settings), questions_per_passage=1, retries=0, max_parallel=1)
    try:
        res = generate_questions({"probe": PROBE_PASSAGE}, s, api_key, cache=None)
    except GenerationError as err:
        return False, str(err)
    if res.fatal is not None:
        return False, str(res.fatal)
    if not res.questions:
        return False, next(iter(res.errors.values()), "The endpoint gave no question.")
    return True, f"{s.model} at {s.base_url} answered: “{res.questions['probe'][0]}”"
