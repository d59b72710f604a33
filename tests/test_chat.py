"""Chat requests and answers per provider (pure): what the gateway sends and reads."""

from __future__ import annotations

from typing import Any

import pytest

from overlay_sdk.adapters.chat import (
    DIALECTS,
    anthropic_request,
    cohere_request,
    messages_of,
    openai_api_request,
    openai_request,
)
from overlay_sdk.errors import PayloadError

USER = [{"role": "user", "content": "Hi"}]


def test_inputs_forms() -> None:
    assert messages_of("Hi") == (USER, {})
    assert messages_of(USER) == (USER, {})
    assert messages_of({"messages": USER, "top_p": 0.5}) == (USER, {"top_p": 0.5})
    with pytest.raises(PayloadError) as err:
        messages_of({"messages": USER, "seed": 1})
    assert err.value.field == "inputs.seed"


@pytest.mark.parametrize(("build", "expected"), [
    (openai_request, {"max_tokens": 50, "top_p": 0.9, "stop": ["X"]}),
    (openai_api_request, {"max_completion_tokens": 50, "top_p": 0.9, "stop": ["X"]}),
    (anthropic_request, {"max_tokens": 50, "top_p": 0.9, "stop_sequences": ["X"]}),
    (cohere_request, {"max_tokens": 50, "p": 0.9, "stop_sequences": ["X"]}),
])
def test_registered_params_travel_under_the_providers_names(build: Any,
                                                            expected: dict[str, Any]) -> None:
    """A default registered with the version is renamed like the same setting per call."""
    params = {"model": "m", "max_tokens": 50, "top_p": 0.9, "stop": ["X"],
              "base_url": "http://x"}
    body = build(params, USER, {})
    assert {k: body[k] for k in expected} == expected
    assert "base_url" not in body and body["model"] == "m" and body["stream"] is False


def test_call_settings_win_over_registered_params() -> None:
    body = cohere_request({"model": "m", "top_p": 0.9}, USER, {"top_p": 0.2, "stop": "END"})
    assert body["p"] == 0.2 and "top_p" not in body and body["stop_sequences"] == ["END"]
    body = openai_api_request({"model": "m", "max_tokens": 5}, USER, {"max_tokens": 7})
    assert body["max_completion_tokens"] == 7 and "max_tokens" not in body


def test_anthropic_system_messages_and_required_max_tokens() -> None:
    messages = [{"role": "system", "content": "Be brief."}, *USER]
    body = anthropic_request({"model": "m"}, messages, {})
    assert body["system"] == "Be brief." and body["messages"] == USER
    assert body["max_tokens"] == 1024


def test_ollama_keeps_max_tokens() -> None:
    body = DIALECTS["ollama"].request({"model": "llama3"}, USER, {"max_tokens": 9})
    assert body["max_tokens"] == 9
