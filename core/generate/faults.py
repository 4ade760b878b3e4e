"""What can go wrong when asking an endpoint for questions, and the one message the user reads.

Every fault becomes a :class:`GenerationError` whose message says what happened and what
to do. Its ``kind`` is one of:

* ``"settings"``: no base URL, no model, a prompt without ``{passage}``, a bad number;
  raised by :func:`core.generate.llm.generate_questions` before any request.
* Fatal (``fatal=True``): they stop the whole job early, since every other passage would
  fail the same way, and are returned as ``GenerationResult.fatal``:

  - ``"unreachable"``: connection refused, DNS failure, ... (after the retries);
  - ``"auth"``: 401, the key is wrong or missing;
  - ``"forbidden"``: 403, the key may not use this model;
  - ``"not_found"``: 404, an unknown model, or a base URL without ``/v1``.

* Per passage (``GenerationResult.errors``; the passage is not cached, the next run asks again):

  - ``"bad_request"``: 400/413/422, usually a passage over the model's context (not retried);
  - ``"rate_limited"``: 429 after the retries, or a Retry-After too long to wait for;
  - ``"server"``: 5xx (and 408/409) after the retries;
  - ``"timeout"``: no answer within the timeout, after the retries;
  - ``"bad_response"``: an HTTP 200 that is not a chat completion (a web page, a proxy);
  - ``"no_questions"``: an empty answer, prose without a question, an answer cut off.

  Too many failed passages in a row also stop the job (a fatal error of the last kind).

Retried kinds: :data:`RETRYABLE_KINDS`. The API key is scrubbed from every message built
from a server's answer. A passage whose questions come back in another writing system
than its own gets a warning (:func:`language_warning`), not an error: the questions are
kept, but the prompt probably expects another language.
"""

from __future__ import annotations

import email.utils
import time
import unicodedata
from typing import Any, Literal

ENV_API_KEY = "ETL_LLM_API_KEY"  # the variable the messages point to for the key
QUOTE_CHARS = 160  # characters of a server message or model answer quoted in a message

ErrorKind = Literal[
    "settings",
    "unreachable",
    "auth",
    "forbidden",
    "not_found",
    "bad_request",
    "rate_limited",
    "server",
    "timeout",
    "bad_response",
    "no_questions",
]
FATAL_KINDS = frozenset({"unreachable", "auth", "forbidden", "not_found"})
RETRYABLE_KINDS = frozenset({"unreachable", "rate_limited", "server", "timeout"})
LOCAL_URLS = "Ollama: http://localhost:11434/v1, llama.cpp: http://localhost:8080/v1, LM Studio: http://localhost:1234/v1"


class GenerationError(Exception):
    """A fault of question generation, with one message for the user (see the module docstring).

    Attributes:
        kind: What went wrong (:data:`ErrorKind`).
        fatal: True when it stops the whole job (unreachable endpoint, 401, 403, 404, or
            too many failures in a row).
        status: The HTTP status, when there was one.
    """

    def __init__(
        self, kind: ErrorKind, message: str, *, status: int | None = None, fatal: bool | None = None
    ):
        super().__init__(message)
        self.kind = kind
        self.fatal = kind in FATAL_KINDS if fatal is None else fatal
        self.status = status

    @property
    def message(self) -> str:
        return str(self)


def quote(text: str) -> str:
    """``text`` on one line, cut to :data:`QUOTE_CHARS` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= QUOTE_CHARS else text[: QUOTE_CHARS - 3] + "..."


def _server_says(exc: Any) -> str:
    body = getattr(exc, "body", None)
    msg = None
    if isinstance(body, dict):
        err = body.get("error", body)
        msg = err.get("message") if isinstance(err, dict) else err if isinstance(err, str) else None
    if not msg:
        resp = getattr(exc, "response", None)
        try:
            msg = resp.text if resp is not None else None
        except Exception:  # noqa: BLE001 - a streamed/closed body: fall back to the exception text
            msg = None
    return quote(msg or getattr(exc, "message", "") or str(exc)).rstrip(". ")


def retry_after(exc: Any) -> float | None:
    """Seconds a 429/503 answer asks to wait (``retry-after-ms`` or ``Retry-After``: seconds or a date)."""
    headers = getattr(getattr(exc, "response", None), "headers", None)
    if not headers:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())


def classify(
    exc: Exception, *, base_url: str, model: str, timeout_s: float, retries: int, secret: str | None
) -> GenerationError:
    """The user-facing :class:`GenerationError` for an exception raised by the openai client.

    Args:
        exc: What the client raised (a GenerationError is returned as it is).
        base_url: The endpoint, named in the messages.
        model: The model asked for.
        timeout_s: The timeout used (named in the timeout message).
        retries: Retries made before giving up (named in the messages).
        secret: The API key, to scrub from anything the server sent back; None if none was given.

    Returns:
        The error; ``kind`` says which one (see the module docstring).
    """
    import openai

    if isinstance(exc, GenerationError):
        return exc
    after = f"after {retries} retr{'y' if retries == 1 else 'ies'}"
    status = getattr(exc, "status_code", None) if isinstance(exc, openai.APIStatusError) else None
    kind: ErrorKind
    if isinstance(exc, openai.APITimeoutError):
        kind, msg = (
            "timeout",
            (
                f"No answer within {timeout_s:g} s ({after}): raise the timeout, lower the parallel requests, or use "
                "a smaller model. Passages done so far are kept; run again to resume."
            ),
        )
    elif isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        kind, msg = (
            "unreachable",
            (
                f"Could not reach the endpoint at {base_url} ({quote(str(cause)) if cause else 'connection failed'}). "
                f"Check that the server is running and the base URL is right ({LOCAL_URLS})."
            ),
        )
    elif status is not None:
        says = _server_says(exc)
        if status == 401:
            kind, msg = (
                "auth",
                (
                    f"The endpoint refused the key (401): check {ENV_API_KEY} or the key field."
                    if secret
                    else f"The endpoint needs an API key (401) and none was given: set {ENV_API_KEY} or fill in the "
                    "key field."
                ),
            )
        elif status == 403:
            kind, msg = (
                "forbidden",
                (
                    f"The endpoint refused access (403) to model {model!r} with this key: check the key's "
                    f"permissions. Server said: {says}."
                ),
            )
        elif status == 404 and "model" in says.lower():
            kind, msg = (
                "not_found",
                (
                    f"The endpoint does not know the model {model!r} (404): check the model name (Ollama: "
                    f"`ollama list`; other servers list theirs at {base_url}/models). Server said: {says}."
                ),
            )
        elif status == 404:
            kind, msg = (
                "not_found",
                (
                    f"Nothing answers at {base_url}/chat/completions (404): check the base URL; it usually ends in "
                    "/v1 (e.g. http://localhost:11434/v1)."
                ),
            )
        elif status in (400, 413, 422):
            kind, msg = (
                "bad_request",
                (
                    f"The endpoint rejected the request ({status}): {says}. A passage longer than the model's "
                    "context is the usual cause: shorten the passages or choose a model with a longer context."
                ),
            )
        elif status == 429:
            kind, msg = (
                "rate_limited",
                (
                    f"The endpoint kept answering 'too many requests' (429) {after}: lower the parallel requests "
                    "or wait a while, then run again (passages done so far are kept)."
                ),
            )
        elif status >= 500 or status in (408, 409):
            kind, msg = (
                "server",
                (
                    f"The endpoint failed with a server error ({status}) {after}: {says}. Run again later to "
                    "resume (passages done so far are kept)."
                ),
            )
        else:
            kind, msg = "bad_response", f"The endpoint answered with HTTP {status}: {says}."
    else:
        kind, msg = "bad_response", not_a_completion(base_url, f"{type(exc).__name__}: {quote(str(exc))}")
    if secret:
        msg = msg.replace(secret, "***")
    return GenerationError(kind, msg, status=status)


def not_a_completion(base_url: str, detail: str) -> str:
    """Message for an answer that is not a chat completion."""
    return (
        f"The endpoint's answer is not a chat completion ({detail}): check that {base_url} is an "
        "OpenAI-compatible API (its base URL usually ends in /v1)."
    )


def wait_too_long(err: GenerationError, seconds: float) -> GenerationError:
    """The error for a Retry-After too long to wait for (the passage is left for a later run)."""
    code = f" ({err.status})" if err.status else ""
    return GenerationError(
        err.kind,
        f"The endpoint asked to wait {seconds:.0f} s before the next request{code}: run again later "
        "(passages done so far are kept).",
        status=err.status,
    )


def no_questions(content: str, finish_reason: str | None) -> GenerationError:
    """The error for an answer that held no question (empty, prose, or cut off)."""
    if not content.strip():
        msg = (
            "The model returned an empty answer. Try another model, or raise 'max answer tokens' if it is a "
            "reasoning model that spends its tokens thinking."
        )
    elif finish_reason == "length":
        msg = (
            f"The answer was cut off before any complete question ('{quote(content)}'): raise "
            "'max answer tokens' or ask for fewer questions."
        )
    else:
        msg = (
            f"The model's answer held no question ('{quote(content)}'). Check that the prompt asks for a "
            "JSON list of questions; if the passage is in another language than the prompt expects, say "
            "in the prompt which language to write in."
        )
    return GenerationError("no_questions", msg)


_SCRIPT_ALIASES = {"HIRAGANA": "CJK", "KATAKANA": "CJK", "CJK": "CJK", "HANGUL": "Hangul"}


def dominant_script(text: str) -> str | None:
    """The writing system of most letters in ``text`` ("Latin", "Cyrillic", "CJK", ...), or None."""
    counts: dict[str, int] = {}
    for ch in text:
        if not ch.isalpha():
            continue
        try:
            first = unicodedata.name(ch).split()[0]
        except ValueError:
            continue
        script = _SCRIPT_ALIASES.get(first, first.capitalize())
        counts[script] = counts.get(script, 0) + 1
    total = sum(counts.values())
    if total < 3:
        return None
    script, n = max(counts.items(), key=lambda kv: kv[1])
    return script if n / total >= 0.5 else None


def language_warning(passage: str, questions: list[str]) -> str | None:
    """A warning when the questions are written in another script than the passage, else None."""
    p, q = dominant_script(passage), dominant_script(" ".join(questions))
    if p and q and p != q:
        return (
            f"The passage is written in {p} script but its questions came back in {q} script: retrieval "
            "needs questions in the passage's language. Say in the prompt which language to write in."
        )
    return None
