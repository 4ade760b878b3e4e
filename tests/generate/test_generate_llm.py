"""LLM question generation against a real HTTP server on loopback, through the real openai client.

Every fault of issue 12 is played by tests/llm_server.py: each must give one clear message,
keep what was generated (cached) and resume. Waits are kept short (backoff 10 ms) so the
only long wait is the one a Retry-After header asks for.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pickle
import socket
import time
from pathlib import Path

import pytest
from llm_server import FakeLLMServer, canned_questions, llm_server_fixture  # noqa: F401 - the llm_server fixture

from core.generate.cache import QuestionCache
from core.generate.faults import GenerationError
from core.generate.llm import (
    STOP_AFTER_FAILURES_IN_A_ROW,
    ApiKey,
    LLMSettings,
    fill_prompt,
    generate_questions,
    resolve_api_key,
    with_env_defaults,
)

SECRET = "sk-test-SECRET-0123456789abcdef"


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch):
    for var in ("ETL_LLM_API_KEY", "OPENAI_API_KEY", "ETL_LLM_BASE_URL", "OPENAI_BASE_URL", "ETL_LLM_MODEL"):
        monkeypatch.delenv(var, raising=False)


def fast(server: FakeLLMServer, **kw) -> LLMSettings:
    base = {
        "base_url": server.base_url,
        "model": server.model,
        "backoff_s": 0.01,
        "retries": 2,
        "timeout_s": 5.0,
    }
    return LLMSettings(**{**base, **kw})


def passages(n: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    out = {
        f"p{i}": f"Passage {i}: the pump on line {i} must be inspected every {100 + i} hours."
        for i in range(n)
    }
    out.update(extra or {})
    return out


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- the happy path


def test_questions_for_every_passage_then_all_from_cache(llm_server, tmp_path):
    ps = passages(5)
    settings = fast(llm_server, questions_per_passage=2)
    cache = QuestionCache(tmp_path / "q.sqlite")
    r = generate_questions(ps, settings, None, cache)
    assert r.complete and not r.errors and r.fatal is None
    assert (r.total, r.from_cache, r.requested, r.failed) == (5, 0, 5, 0)
    for pid, text in ps.items():
        assert r.questions[pid] == canned_questions(fill_prompt(settings, text), 2)
    assert list(r.questions) == list(ps)  # passage order, whatever the completion order
    assert llm_server.requests == 5 and len(cache) == 5

    llm_server.reset_counts()
    again = generate_questions(ps, settings, None, cache)
    assert llm_server.requests == 1  # a re-run costs one request: the check that the endpoint answers
    assert (again.from_cache, again.requested) == (5, 0)
    assert again.questions == r.questions


def test_cache_key_is_url_model_passage_prompt_and_settings(llm_server, tmp_path):
    ps = passages(2)
    cache = QuestionCache(tmp_path / "q.sqlite")
    generate_questions(ps, fast(llm_server), None, cache)
    llm_server.reset_counts()
    generate_questions(ps, fast(llm_server, questions_per_passage=4), None, cache)
    assert llm_server.requests == 2  # another n: new answers
    llm_server.reset_counts()
    generate_questions(ps, fast(llm_server, prompt="Questions on: {passage}"), None, cache)
    assert llm_server.requests == 2  # another prompt: new answers
    llm_server.reset_counts()
    generate_questions(ps, fast(llm_server, temperature=0.1), None, cache)
    assert llm_server.requests == 2  # another temperature: new answers
    llm_server.reset_counts()
    generate_questions(ps, fast(llm_server, temperature=0.1), None, cache)
    assert llm_server.requests == 1  # the same: from the cache, after one check of the endpoint
    with FakeLLMServer(model=llm_server.model) as other:  # another endpoint, same model and prompt
        r = generate_questions(ps, fast(other, temperature=0.1), None, cache)
        assert other.requests == 2 and r.from_cache == 0


@pytest.mark.parametrize("fmt", ["json", "fenced", "object", "numbered"])
def test_answer_shapes_over_http(llm_server, fmt):
    llm_server.answer_format = fmt
    settings = fast(llm_server)
    r = generate_questions({"a": "Some passage about valves."}, settings)
    assert r.questions["a"] == canned_questions(fill_prompt(settings, "Some passage about valves."), 3)


def test_parallel_requests_respect_the_cap(tmp_path):
    with FakeLLMServer(delay_s=0.2) as server:
        r = generate_questions(passages(8), fast(server, max_parallel=3))
        assert r.complete
        assert server.max_concurrent == 3
        server.reset_counts()
        generate_questions(passages(8, {"x": "another"}), fast(server, max_parallel=1, prompt="Q: {passage}"))
        assert server.max_concurrent == 1


def test_progress_counts_cached_passages_and_ends_at_total(llm_server, tmp_path):
    cache = QuestionCache(tmp_path / "q.sqlite")
    generate_questions(passages(3), fast(llm_server), None, cache)
    calls: list[tuple[int, int]] = []
    generate_questions(passages(6), fast(llm_server), None, cache, progress=lambda d, t: calls.append((d, t)))
    assert calls[0] == (3, 6) and calls[-1] == (6, 6)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


# --------------------------------------------------------------------------- faults that stop the job


def test_wrong_key_stops_after_one_request(llm_server):
    llm_server.api_key = "the-right-key"
    r = generate_questions(passages(10), fast(llm_server, max_parallel=4), SECRET)
    assert r.fatal is not None and r.fatal.kind == "auth" and r.fatal.status == 401
    assert str(r.fatal) == "The endpoint refused the key (401): check ETL_LLM_API_KEY or the key field."
    assert llm_server.requests == 1  # the probe; 401 is not retried, nothing else was sent
    assert r.not_attempted == 9 and r.failed == 1
    assert r.summary().endswith("Stopped: " + str(r.fatal))
    saved = json.loads(json.dumps(r.to_dict()))
    assert saved["fatal"] == {"kind": "auth", "message": str(r.fatal), "status": 401}
    assert saved["not_attempted"] == 9


def test_missing_key_says_none_was_given(llm_server):
    llm_server.api_key = "the-right-key"
    r = generate_questions(passages(2), fast(llm_server))
    assert r.fatal is not None and r.fatal.kind == "auth"
    assert "none was given" in str(r.fatal) and "ETL_LLM_API_KEY" in str(r.fatal)


def test_key_from_environment_is_used(llm_server, monkeypatch):
    llm_server.api_key = SECRET
    monkeypatch.setenv("ETL_LLM_API_KEY", SECRET)
    r = generate_questions(passages(2), fast(llm_server))
    assert r.complete
    assert set(llm_server.auth_headers) == {f"Bearer {SECRET}"}


def test_unknown_model_404(llm_server):
    r = generate_questions(passages(6), fast(llm_server, model="no-such-model"))
    assert r.fatal is not None and r.fatal.kind == "not_found" and r.fatal.status == 404
    msg = str(r.fatal)
    assert msg.startswith("The endpoint does not know the model 'no-such-model' (404): check the model name")
    assert "ollama list" in msg
    assert llm_server.requests == 1


def test_base_url_without_v1_404(llm_server):
    url = llm_server.base_url.removesuffix("/v1")
    r = generate_questions(passages(3), fast(llm_server, base_url=url))
    assert r.fatal is not None and r.fatal.kind == "not_found"
    assert str(r.fatal).startswith(f"Nothing answers at {url}/chat/completions (404): check the base URL")


def test_unreachable_endpoint_is_retried_then_stops():
    url = f"http://127.0.0.1:{closed_port()}/v1"
    r = generate_questions(passages(5), LLMSettings(base_url=url, model="m", retries=1, backoff_s=0.01))
    assert r.fatal is not None and r.fatal.kind == "unreachable"
    assert str(r.fatal).startswith(f"Could not reach the endpoint at {url} (")
    assert "Check that the server is running" in str(r.fatal)
    assert (r.http_requests, r.retries, r.requested, r.not_attempted) == (2, 1, 1, 4)


# --------------------------------------------------------------------------- faults of one passage


def test_rate_limited_then_ok_honours_retry_after(llm_server):
    ps = passages(2, {"busy": "FAULT:429_once a passage that meets a rate limit"})
    settings = fast(llm_server, backoff_s=0.01)
    r = generate_questions(ps, settings)
    assert r.complete and not r.errors
    assert r.retries == 1 and llm_server.requests == 4
    first, second = llm_server.arrivals[fill_prompt(settings, ps["busy"])]
    assert second - first >= 0.9  # the server asked for 1 s; our own backoff would have waited 10 ms


def test_rate_limited_every_time(llm_server):
    r = generate_questions(passages(1, {"busy": "FAULT:429 always limited"}), fast(llm_server, retries=2))
    assert r.error_kinds == {"busy": "rate_limited"}
    assert r.errors["busy"].startswith(
        "The endpoint kept answering 'too many requests' (429) after 2 retries"
    )
    assert "lower the parallel requests" in r.errors["busy"]
    assert llm_server.requests == 1 + 3
    assert r.questions.keys() == {"p0"} and r.fatal is None


def test_retry_after_too_long_is_not_waited_for(llm_server):
    r = generate_questions({"busy": "FAULT:429_hour"}, fast(llm_server))
    assert r.errors["busy"] == (
        "The endpoint asked to wait 3600 s before the next request (429): run again later "
        "(passages done so far are kept)."
    )
    assert llm_server.requests == 1


def test_server_error_retried_then_reported(llm_server):
    ps = passages(2, {"flaky": "FAULT:500_once recovers", "broken": "FAULT:500 never recovers"})
    r = generate_questions(ps, fast(llm_server, retries=2, max_parallel=1))
    assert "flaky" in r.questions and "broken" not in r.questions
    assert r.error_kinds == {"broken": "server"}
    assert r.errors["broken"] == (
        "The endpoint failed with a server error (500) after 2 retries: The server had an error while "
        "processing your request. Run again later to resume (passages done so far are kept)."
    )
    assert r.retries == 1 + 2 and r.fatal is None


def test_timeout(tmp_path):
    with FakeLLMServer(slow_s=6.0) as server:
        t0 = time.perf_counter()
        r = generate_questions({"slow": "FAULT:slow takes ages"}, fast(server, timeout_s=0.4, retries=1))
        assert time.perf_counter() - t0 < 4.5  # two 0.4 s timeouts, not the 6 s answer
    assert r.error_kinds == {"slow": "timeout"}
    assert r.errors["slow"].startswith("No answer within 0.4 s (after 1 retry): raise the timeout")
    assert r.http_requests == 2


def test_non_json_and_empty_answers_are_reported_and_not_cached(llm_server, tmp_path):
    ps = passages(2, {"prose": "FAULT:non_json chatty model", "blank": "FAULT:empty silent model"})
    cache = QuestionCache(tmp_path / "q.sqlite")
    r = generate_questions(ps, fast(llm_server), None, cache)
    assert r.error_kinds == {"prose": "no_questions", "blank": "no_questions"}
    assert r.errors["prose"].startswith("The model's answer held no question ('Sure! This passage describes")
    assert "say in the prompt which language to write in" in r.errors["prose"]
    assert r.errors["blank"].startswith("The model returned an empty answer.")
    assert len(cache) == 2
    llm_server.reset_counts()
    again = generate_questions(ps, fast(llm_server), None, cache)
    assert llm_server.requests == 2  # only the two useless answers are asked again
    assert again.from_cache == 2


def test_answer_that_is_not_a_chat_completion(llm_server):
    r = generate_questions({"odd": "FAULT:not_completion"}, fast(llm_server))
    assert r.error_kinds == {"odd": "bad_response"}
    assert "is not a chat completion" in r.errors["odd"] and "/v1" in r.errors["odd"]


def test_passage_in_another_script_gets_a_warning(llm_server):
    ps = {
        "en": "The pump must be inspected every 500 hours.",
        "zh": "泵必须每五百小时检查一次。密封件磨损时会漏油。",
    }
    r = generate_questions(ps, fast(llm_server))
    assert r.complete
    assert set(r.warnings) == {"zh"}
    assert r.warnings["zh"].startswith(
        "The passage is written in CJK script but its questions came back in Latin"
    )


def test_empty_passage_is_not_sent(llm_server):
    r = generate_questions({"a": "text", "b": "   "}, fast(llm_server))
    assert llm_server.requests == 1
    assert r.errors == {"b": "The passage is empty: there is nothing to ask about."}


def test_many_failures_in_a_row_stop_the_job(llm_server):
    ps = {pid: (text if pid == "p0" else f"FAULT:500 {text}") for pid, text in passages(12).items()}
    r = generate_questions(ps, fast(llm_server, retries=0, max_parallel=1))
    assert r.fatal is not None and r.fatal.fatal
    assert str(r.fatal).startswith(
        f"Stopped after {STOP_AFTER_FAILURES_IN_A_ROW} passages in a row failed; the last"
    )
    assert r.requested == 1 + STOP_AFTER_FAILURES_IN_A_ROW
    assert r.not_attempted == 12 - 1 - STOP_AFTER_FAILURES_IN_A_ROW


def test_the_first_passage_failing_every_try_stops_the_job_and_says_what_it_waits_for(llm_server):
    llm_server.fault = "500"
    said: list[str] = []
    r = generate_questions(passages(6), fast(llm_server, retries=2, backoff_s=0.01), status=said.append)
    assert r.fatal is not None and r.requested == 1 and r.http_requests == 3 and r.not_attempted == 5
    assert str(r.fatal).startswith("Stopped: the first passage failed all 3 tries (5 s each); the endpoint's last "
                                   "error: The endpoint failed with a server error (500)"), str(r.fatal)
    assert said == [f"waiting for the endpoint (attempt {i} of 3, 5 s each)" for i in (1, 2, 3)]


def test_cached_answers_are_not_served_when_the_endpoint_is_down_and_raw_answers_are_capped(tmp_path):
    from core.generate.cache import MAX_RAW_CHARS

    ps = passages(3)
    cache = QuestionCache(tmp_path / "q.sqlite")
    with FakeLLMServer() as server:
        settings = fast(server)
        first = generate_questions(ps, settings, None, cache)
        assert first.complete
        server.fault = "500"  # the same endpoint now fails: its old answers are not served as if it worked
        broken = generate_questions(ps, dataclasses.replace(settings, retries=0), None, cache)
        assert broken.fatal is not None and not broken.questions and broken.from_cache == 0
        server.fault = None
        again = generate_questions(ps, settings, None, cache)
        assert again.complete and again.from_cache == 3 and "(3 from cache" in again.summary()
    big = "x" * (1 << 20)
    cache.put("k", ["q?"], big, "m", 1)
    assert len(cache.raw("k")) < MAX_RAW_CHARS + 100


# --------------------------------------------------------------------------- cancel and resume


def test_cancel_keeps_answers_and_resumes(tmp_path):
    ps = passages(10)
    cache = QuestionCache(tmp_path / "q.sqlite")
    with FakeLLMServer(delay_s=0.05) as server:
        settings = fast(server, max_parallel=1)
        seen: list[int] = []
        r = generate_questions(
            ps,
            settings,
            None,
            cache,
            progress=lambda d, t: seen.append(d),
            should_stop=lambda: len(seen) >= 4,
        )
        assert r.cancelled and 0 < len(r.questions) < 10
        assert r.summary().endswith("run again to resume.")
        done_first = len(r.questions)
        assert len(cache) == done_first  # every answer was stored as it came

        # The same endpoint again: only the rest is asked for.
        server.reset_counts()
        rest = generate_questions(ps, settings, None, cache)
        assert rest.complete and rest.from_cache == done_first
        assert server.requests == 10 - done_first

    # Another endpoint (nothing listens there): the job stops at once; the first server's answers are not
    # passed off as this one's.
    dead = dataclasses.replace(settings, base_url=f"http://127.0.0.1:{closed_port()}/v1", retries=0)
    down = generate_questions(ps, dead, None, cache)
    assert down.fatal is not None and down.fatal.kind == "unreachable"
    assert down.questions == {} and down.from_cache == 0


def test_cancel_during_a_retry_wait_leaves_the_passage_for_the_next_run(llm_server):
    ps = {"ok": "a passage", "flaky": "FAULT:500 a passage on a broken shard"}
    calls: list[int] = []
    t0 = time.perf_counter()
    r = generate_questions(
        ps,
        fast(llm_server, backoff_s=30.0, max_parallel=1),
        progress=lambda d, t: calls.append(d),
        should_stop=lambda: len(calls) >= 2,
    )
    assert time.perf_counter() - t0 < 10  # the 30 s wait was cut short
    assert r.cancelled and r.questions.keys() == {"ok"}
    assert r.failed == 0 and not r.errors and r.not_attempted == 1


def test_resume_after_a_failed_job(llm_server, tmp_path):
    cache = QuestionCache(tmp_path / "q.sqlite")
    llm_server.api_key = "right"
    failed = generate_questions(passages(4), fast(llm_server), "wrong", cache)
    assert failed.fatal is not None and not failed.questions
    llm_server.reset_counts()
    ok = generate_questions(passages(4), fast(llm_server), "right", cache)
    assert ok.complete and llm_server.requests == 4


# --------------------------------------------------------------------------- the key


def test_key_never_reaches_disk_logs_or_reprs(llm_server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    llm_server.api_key = SECRET
    cache = QuestionCache(tmp_path / "cache" / "q.sqlite")
    settings = fast(llm_server)
    key = ApiKey(SECRET)
    r = generate_questions(passages(3, {"echo": "FAULT:500_echo"}), settings, key, cache)
    assert set(llm_server.auth_headers) == {f"Bearer {SECRET}"}  # the key was used...
    texts = [
        repr(settings),
        str(dataclasses.asdict(settings)),
        repr(key),
        str(key),
        repr(r),
        r.summary(),
        json.dumps(r.to_dict()),
        *r.errors.values(),
        caplog.text,
    ]
    assert "LLM questions:" in caplog.text and any(rec.name.startswith("openai") for rec in caplog.records)
    # ...and is in no repr, message or log (ours or the client's), even when the server echoes it:
    assert not [t for t in texts if SECRET in t]
    assert "credentials Bearer ***" in r.errors["echo"]
    for f in (tmp_path / "cache").iterdir():  # the SQLite file and its WAL/SHM companions
        assert SECRET.encode() not in Path(f).read_bytes(), f
    assert "ApiKey(<hidden>)" == repr(key)
    with pytest.raises(TypeError):
        pickle.dumps(key)
    assert not [f.name for f in dataclasses.fields(LLMSettings) if "key" in f.name]


def test_key_resolution_order(monkeypatch):
    assert not resolve_api_key(None)
    monkeypatch.setenv("OPENAI_API_KEY", "from-openai")
    assert resolve_api_key(None).reveal() == "from-openai"
    monkeypatch.setenv("ETL_LLM_API_KEY", "from-etl")
    assert resolve_api_key("").reveal() == "from-etl"
    assert resolve_api_key(" typed ").reveal() == "typed"
    assert resolve_api_key(ApiKey("obj")).reveal() == "obj"


# --------------------------------------------------------------------------- settings


def test_settings_from_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://openai.example/v1")
    assert with_env_defaults(LLMSettings()).base_url == "http://openai.example/v1"
    monkeypatch.setenv("ETL_LLM_BASE_URL", "http://localhost:11434/v1/")
    monkeypatch.setenv("ETL_LLM_MODEL", "qwen2.5:7b")
    s = with_env_defaults(LLMSettings())
    assert (s.base_url, s.model) == ("http://localhost:11434/v1", "qwen2.5:7b")
    assert with_env_defaults(LLMSettings(model="mine")).model == "mine"


@pytest.mark.parametrize(
    ("settings", "start"),
    [
        (LLMSettings(model="m"), "No endpoint is set"),
        (
            LLMSettings(base_url="localhost:11434", model="m"),
            "The base URL 'localhost:11434' must start with http",
        ),
        (LLMSettings(base_url="http://x/v1"), "No model is set"),
        (
            LLMSettings(base_url="http://x/v1", model="m", prompt="Ask about {n} things"),
            "The prompt has no {passage}",
        ),
        (LLMSettings(base_url="http://x/v1", model="m", max_parallel=0), "Max parallel must be at least 1"),
    ],
)
def test_settings_that_cannot_work_raise_before_any_request(settings, start):
    with pytest.raises(GenerationError) as exc:
        generate_questions({"a": "text"}, settings)
    assert exc.value.kind == "settings" and str(exc.value).startswith(start)


def test_every_setting_has_help():
    for f in dataclasses.fields(LLMSettings):
        assert f.metadata.get("help"), f.name


def test_prompt_placeholders():
    s = LLMSettings(prompt='Give {n} questions as ["q?"] about: {passage}', questions_per_passage=2)
    assert fill_prompt(s, "TEXT {x}") == 'Give 2 questions as ["q?"] about: TEXT {x}'
