"""Settings of the LLM question generator, and the API key that is never part of them.

:class:`LLMSettings` is what a generation job saves and a form shows (every field with its help
text). Empty ``base_url`` / ``model`` fall back to ``ETL_LLM_BASE_URL`` / ``ETL_LLM_MODEL``, then
``OPENAI_BASE_URL`` (:func:`with_env_defaults`). The key travels as an :class:`ApiKey` (from the
form, else ``ETL_LLM_API_KEY``, else ``OPENAI_API_KEY``; :func:`resolve_api_key`), whose repr hides it
and which refuses to be pickled.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

from core.generate.faults import ENV_API_KEY, GenerationError

ENV_BASE_URL = "ETL_LLM_BASE_URL"
ENV_MODEL = "ETL_LLM_MODEL"
OPENAI_ENV_BASE_URL = "OPENAI_BASE_URL"
OPENAI_ENV_API_KEY = "OPENAI_API_KEY"
# Sent when no key is given: local servers (Ollama, llama.cpp, vLLM, LM Studio) need none,
# but the client insists on a value.
NO_KEY_PLACEHOLDER = "no-key"
DEFAULT_PROMPT = """Below is a passage from a document collection.

---------------------
{passage}
---------------------

Write {n} different questions that a person searching this collection could ask and that \
this passage answers.
- Each question must make sense on its own, without the passage: name the subject, never \
say "the passage", "the text" or "the document".
- Write in the language of the passage. Vary the wording; do not copy long phrases from it.
- Ask only about what the passage states.

Answer with a JSON list of {n} strings and nothing else, for example:
["First question?", "Second question?"]"""

class ApiKey:
    """An API key that stays out of reprs, logs, pickles and saved settings.

    ``repr``/``str`` say only whether a key is set; :meth:`reveal` gives the value to the
    one place that needs it (the HTTP client). Pickling or deep-copying raises ``TypeError``,
    so the key cannot end up in a Streamlit data cache or a saved file by accident.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str | None = None):
        self._value = (value or "").strip() or None

    def reveal(self) -> str | None:
        """The key itself (None when not set)."""
        return self._value

    def __bool__(self) -> bool:
        return self._value is not None

    def __repr__(self) -> str:
        return "ApiKey(<hidden>)" if self._value else "ApiKey(<not set>)"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("An API key is never pickled or saved: pass it to the job as an argument.")


def resolve_api_key(given: ApiKey | str | None = None) -> ApiKey:
    """The key to use: ``given`` if set, else ``ETL_LLM_API_KEY``, else ``OPENAI_API_KEY``.

    Returns:
        An ApiKey (possibly not set: local servers need none).
    """
    if isinstance(given, ApiKey) and given:
        return given
    if isinstance(given, str) and given.strip():
        return ApiKey(given)
    return ApiKey(os.environ.get(ENV_API_KEY) or os.environ.get(OPENAI_ENV_API_KEY))


@dataclass
class LLMSettings:
    """How questions are asked of an OpenAI-compatible endpoint. Holds no secret: safe to save."""

    base_url: str = field(
        default="",
        metadata={
            "help": "The endpoint's OpenAI-compatible base URL, usually ending in /v1: Ollama "
            "http://localhost:11434/v1, llama.cpp server http://localhost:8080/v1, LM Studio "
            "http://localhost:1234/v1, vLLM http://localhost:8000/v1, OpenAI https://api.openai.com/v1. "
            "Empty: ETL_LLM_BASE_URL, then OPENAI_BASE_URL.",
            "label": "Base URL",
        },
    )
    model: str = field(
        default="",
        metadata={
            "help": "Model name as the endpoint knows it (Ollama: as `ollama list` shows it, e.g. "
            "qwen2.5:7b). Empty: ETL_LLM_MODEL.",
            "label": "Model",
        },
    )
    questions_per_passage: int = field(
        default=3,
        metadata={
            "help": "Questions asked for per passage. 3 gives variety without near-copies of each other; "
            "each extra question costs output tokens, not another request.",
            "label": "Questions per passage",
            "min": 1,
            "max": 20,
        },
    )
    prompt: str = field(
        default=DEFAULT_PROMPT,
        metadata={
            "help": "What the model is asked. {passage} is replaced by the passage text (required) and {n} "
            "by the number of questions. Ask for a JSON list: other shapes are parsed too, less "
            "reliably. Changing it invalidates the cache (new answers are asked for).",
            "label": "Prompt",
            "advanced": True,
        },
    )
    temperature: float = field(
        default=0.7,
        metadata={
            "help": "Sampling temperature: 0.7 varies the wording between questions of one passage while "
            "staying on its facts; 0 repeats itself more.",
            "label": "Temperature",
            "min": 0.0,
            "max": 2.0,
            "step": 0.1,
            "advanced": True,
        },
    )
    max_answer_tokens: int = field(
        default=0,
        metadata={
            "help": "Cap on the answer's length in tokens. 0 lets the server decide, the most compatible "
            "choice (OpenAI's reasoning models refuse this parameter). Raise it if answers are cut off.",
            "label": "Max answer tokens",
            "min": 0,
            "max": 32768,
            "advanced": True,
        },
    )
    max_parallel: int = field(
        default=4,
        metadata={
            "help": "Requests in flight at once. A local server on one GPU gains little beyond 4 (it "
            "queues them); hosted APIs allow more but rate-limit (429) bursts.",
            "label": "Parallel requests",
            "min": 1,
            "max": 64,
            "advanced": True,
        },
    )
    timeout_s: float = field(
        default=120.0,
        metadata={
            "help": "Seconds to wait for one answer. A 7B model on a CPU can need a minute for a long passage.",
            "label": "Timeout (s)",
            "min": 1.0,
            "max": 3600.0,
            "advanced": True,
        },
    )
    retries: int = field(
        default=4,
        metadata={
            "help": "Retries of one request after 429, 5xx, a timeout or a dropped connection, waiting "
            "1, 2, 4, 8 s (x backoff) or what Retry-After says. 401/404/400 are never retried.",
            "label": "Retries",
            "min": 0,
            "max": 10,
            "advanced": True,
        },
    )
    backoff_s: float = field(
        default=1.0,
        metadata={
            "help": "First wait before a retry, in seconds; it doubles at each retry.",
            "label": "Backoff (s)",
            "min": 0.0,
            "max": 60.0,
            "advanced": True,
            "hidden": True,
        },
    )


def with_env_defaults(settings: LLMSettings) -> LLMSettings:
    """A copy with empty ``base_url`` / ``model`` filled from the environment (see module docstring)."""
    base = (
        settings.base_url.strip()
        or os.environ.get(ENV_BASE_URL, "")
        or os.environ.get(OPENAI_ENV_BASE_URL, "")
    )
    model = settings.model.strip() or os.environ.get(ENV_MODEL, "")
    return replace(settings, base_url=base.strip().rstrip("/"), model=model.strip())


def check_settings(settings: LLMSettings) -> None:
    """Raise :class:`GenerationError` (kind ``"settings"``) for settings that cannot work."""
    if not settings.base_url:
        raise GenerationError(
            "settings",
            (
                "No endpoint is set: fill in the base URL (e.g. http://localhost:11434/v1 for Ollama) or set "
                f"{ENV_BASE_URL}, or use the offline methods instead."
            ),
        )
    if not settings.base_url.startswith(("http://", "https://")):
        raise GenerationError(
            "settings",
            (
                f"The base URL {settings.base_url!r} must start with http:// or https:// "
                "(e.g. http://localhost:11434/v1)."
            ),
        )
    if not settings.model:
        raise GenerationError("settings", f"No model is set: fill in the model name or set {ENV_MODEL}.")
    if "{passage}" not in settings.prompt:
        raise GenerationError(
            "settings",
            (
                "The prompt has no {passage} placeholder, so the model would never see the passage: "
                "put {passage} where the text should go."
            ),
        )
    for name, low in (
        ("questions_per_passage", 1),
        ("max_parallel", 1),
        ("retries", 0),
        ("max_answer_tokens", 0),
    ):
        if getattr(settings, name) < low:
            raise GenerationError(
                "settings", f"{name.replace('_', ' ').capitalize()} must be at least {low}."
            )
    if settings.timeout_s <= 0:
        raise GenerationError("settings", "The timeout must be more than 0 seconds.")


def fill_prompt(settings: LLMSettings, passage: str) -> str:
    """The prompt for one passage (``{passage}`` and ``{n}`` replaced; other braces left alone)."""
    return settings.prompt.replace("{n}", str(settings.questions_per_passage)).replace("{passage}", passage)
