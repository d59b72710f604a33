"""Chat models behind an OpenAI-compatible API (OpenAI, Ollama, vLLM). Pure.

The invoke endpoint takes for a chat model, as ``{"inputs": ...}``:

- a string: one user message;
- a list of messages ``[{"role": "system"|"user"|"assistant", "content": "..."}]``;
- ``{"messages": [...]}``, optionally with request settings the caller may set per call
  (``temperature``, ``max_tokens``, ``top_p``, ``stop``).

:func:`openai_request` builds the ``POST /chat/completions`` body from the version's
registered ``params`` (its ``model`` and defaults) and the call; :func:`openai_result`
reads the answer: the assistant's text, why it stopped, and the token usage that
telemetry records.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["CALL_SETTINGS", "ROLES", "ChatInputError", "ChatResult", "messages_of",
           "openai_request", "openai_result"]

ROLES = ("system", "user", "assistant")
CALL_SETTINGS = ("temperature", "max_tokens", "top_p", "stop")
_NOT_SENT = frozenset({"base_url"})  # registry params that configure the gateway, not the API
MAX_MESSAGES = 256


class ChatInputError(ValueError):
    """The call's inputs are not a chat; ``field`` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class ChatResult:
    """What a chat completion gave."""

    content: str
    finish_reason: str | None
    tokens_in: int | None
    tokens_out: int | None

    def output(self) -> dict[str, Any]:
        """The invoke answer's ``outputs`` for a chat model."""
        return {"content": self.content, "finish_reason": self.finish_reason}


def _message(value: Any, index: int) -> dict[str, str]:
    field = f"inputs.messages[{index}]"
    if not isinstance(value, Mapping):
        raise ChatInputError(field, 'give {"role": "user", "content": "..."}')
    role, content = value.get("role"), value.get("content")
    if role not in ROLES:
        raise ChatInputError(f"{field}.role", f"give one of {', '.join(ROLES)}, got {role!r:.40}")
    if not isinstance(content, str):
        raise ChatInputError(f"{field}.content", f"give the message text, got {content!r:.40}")
    return {"role": str(role), "content": content}


def messages_of(inputs: Any) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """(messages, per-call settings) of an invoke body's ``inputs`` for a chat model."""
    settings: dict[str, Any] = {}
    if isinstance(inputs, str):
        if not inputs.strip():
            raise ChatInputError("inputs", "is empty; give the user's message")
        return [{"role": "user", "content": inputs}], settings
    raw: Any = inputs
    if isinstance(inputs, Mapping):
        unknown = sorted(set(inputs) - {"messages", *CALL_SETTINGS})
        if unknown:
            raise ChatInputError(f"inputs.{unknown[0]}", "not a chat setting; give messages and "
                               f"optionally {', '.join(CALL_SETTINGS)}")
        raw = inputs.get("messages")
        settings = {k: inputs[k] for k in CALL_SETTINGS if k in inputs}
    if not isinstance(raw, list) or not raw:
        raise ChatInputError("inputs", 'give a message text, a list of messages, or {"messages": '
                           '[{"role": "user", "content": "..."}]}')
    if len(raw) > MAX_MESSAGES:
        raise ChatInputError("inputs.messages", f"has {len(raw)} messages; send at most "
                           f"{MAX_MESSAGES}")
    return [_message(m, i) for i, m in enumerate(raw)], settings


def openai_request(params: Mapping[str, Any], messages: list[dict[str, str]],
                   settings: Mapping[str, Any]) -> dict[str, Any]:
    """The ``/chat/completions`` body: the version's params, the call's settings over
    them, the messages; never streamed (the gateway answers whole)."""
    body = {k: v for k, v in params.items() if k not in _NOT_SENT}
    body.update(settings)
    body["messages"] = messages
    body["stream"] = False
    return body


def openai_result(body: Any) -> ChatResult:
    """Read a chat completion answer; ValueError naming what is missing."""
    try:
        choice = body["choices"][0]
        content = choice["message"].get("content") or ""
        usage = body.get("usage") or {}
    except (KeyError, IndexError, TypeError, AttributeError) as err:
        raise ValueError(f"not a chat completion answer (missing {err})") from None
    return ChatResult(content=str(content), finish_reason=choice.get("finish_reason"),
                      tokens_in=usage.get("prompt_tokens"),
                      tokens_out=usage.get("completion_tokens"))
