"""The LLM generator's settings (core.generate.llm_settings): the key is never part of them, each setting that
cannot work gets its own message, the environment fills what is left empty, the prompt's placeholders."""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest

from core.generate.faults import GenerationError
from core.generate.llm_settings import (
    DEFAULT_PROMPT,
    ApiKey,
    LLMSettings,
    check_settings,
    fill_prompt,
    resolve_api_key,
    with_env_defaults,
)

OK = {"base_url": "http://localhost:11434/v1", "model": "qwen2.5:7b"}


@pytest.fixture(autouse=True)
def _no_llm_env(monkeypatch):
    for name in ("ETL_LLM_BASE_URL", "ETL_LLM_MODEL", "ETL_LLM_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def test_the_key_is_no_setting_and_the_settings_save_as_plain_json():
    assert not [f.name for f in dataclasses.fields(LLMSettings) if "key" in f.name.lower()]
    saved = json.loads(json.dumps(dataclasses.asdict(LLMSettings(**OK))))
    assert LLMSettings(**saved) == LLMSettings(**OK)


def test_an_api_key_hides_itself_and_refuses_copies():
    key = ApiKey("  sk-secret  ")
    assert key.reveal() == "sk-secret" and bool(key)
    assert repr(key) == str(key) == f"{key}" == "ApiKey(<hidden>)"
    with pytest.raises(TypeError, match="never pickled"):
        copy.deepcopy(key)
    with pytest.raises(TypeError):
        copy.copy(key)
    for blank in (None, "", "   "):
        assert not ApiKey(blank) and ApiKey(blank).reveal() is None
        assert repr(ApiKey(blank)) == "ApiKey(<not set>)"


def test_a_blank_key_given_falls_back_to_the_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "env-key")
    assert resolve_api_key(ApiKey("  ")).reveal() == "env-key"
    assert resolve_api_key("   ").reveal() == "env-key"
    monkeypatch.delenv("OPENAI_API_KEY")
    assert not resolve_api_key(None)


def test_env_defaults_fill_only_what_is_empty_and_leave_the_settings_as_they_were(monkeypatch):
    monkeypatch.setenv("ETL_LLM_BASE_URL", " http://env:8080/v1/ ")
    monkeypatch.setenv("ETL_LLM_MODEL", " env-model ")
    given = LLMSettings(base_url="  ", model="")
    filled = with_env_defaults(given)
    assert (filled.base_url, filled.model) == ("http://env:8080/v1", "env-model")
    assert (given.base_url, given.model) == ("  ", "")  # a copy: the form's settings are unchanged
    mine = with_env_defaults(LLMSettings(base_url="https://api.example/v1///", model=" m "))
    assert (mine.base_url, mine.model) == ("https://api.example/v1", "m")


def test_settings_that_work_pass():
    check_settings(LLMSettings(**OK))
    check_settings(LLMSettings(base_url="https://api.openai.com/v1", model="gpt", retries=0, max_answer_tokens=0))


@pytest.mark.parametrize(("change", "message"), [
    ({"base_url": ""}, "No endpoint is set: fill in the base URL"),
    ({"base_url": "localhost:11434/v1"}, "The base URL 'localhost:11434/v1' must start with http:// or https://"),
    ({"base_url": "ftp://host/v1"}, "The base URL 'ftp://host/v1' must start with"),
    ({"model": ""}, "No model is set: fill in the model name or set ETL_LLM_MODEL."),
    ({"prompt": "Ask {n} questions."}, "The prompt has no {passage} placeholder"),
    ({"questions_per_passage": 0}, "Questions per passage must be at least 1."),
    ({"max_parallel": 0}, "Max parallel must be at least 1."),
    ({"retries": -1}, "Retries must be at least 0."),
    ({"max_answer_tokens": -5}, "Max answer tokens must be at least 0."),
    ({"timeout_s": 0.0}, "The timeout must be more than 0 seconds."),
])
def test_each_setting_that_cannot_work_says_why(change, message):
    with pytest.raises(GenerationError) as exc:
        check_settings(LLMSettings(**{**OK, **change}))
    assert exc.value.kind == "settings"
    assert str(exc.value).startswith(message)


def test_every_default_sits_inside_the_form_range_and_has_a_label():
    s = LLMSettings()
    for f in dataclasses.fields(LLMSettings):
        assert f.metadata.get("help") and f.metadata.get("label"), f.name
        value = getattr(s, f.name)
        assert f.metadata.get("min", value) <= value <= f.metadata.get("max", value), f.name


def test_the_prompt_gets_the_passage_and_the_count_and_keeps_other_braces():
    s = LLMSettings(questions_per_passage=5)
    text = fill_prompt(s, 'A passage with {braces} and "quotes".')
    assert 'A passage with {braces} and "quotes".' in text
    assert "Write 5 different questions" in text and "JSON list of 5 strings" in text
    assert "{n}" not in text and "{passage}" not in text
    assert DEFAULT_PROMPT.count("{passage}") == 1
