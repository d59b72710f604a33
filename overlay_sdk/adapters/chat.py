"""Chat models behind a provider's API: OpenAI-compatible chat completions (OpenAI,
Ollama, vLLM), Anthropic Messages and Cohere chat (v2). Pure.

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

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from overlay_sdk.errors import PayloadError

__all__ = [
    "ANTHROPIC_LEGACY",
    "ANTHROPIC_VERSION",
    "CALL_SETTINGS",
    "DIALECTS",
    "ROLES",
    "SAMPLING",
    "ChatResult",
    "Dialect",
    "anthropic_request",
    "anthropic_result",
    "anthropic_version",
    "cohere_request",
    "cohere_result",
    "messages_of",
    "openai_api_request",
    "openai_request",
    "openai_result",
    "refused_sampling",
]

ROLES = ("system", "user", "assistant")
CALL_SETTINGS = ("temperature", "max_tokens", "top_p", "stop")
# registry params that configure the gateway's call, not sent in the body
_NOT_SENT = frozenset({"base_url", "anthropic_version"})
ANTHROPIC_VERSION = "2026-10-21"
"""The Messages API version the gateway speaks by default: the one the official SDKs send
since 2026-10-21. It refuses sampling settings (``temperature``, ``top_p``, ``top_k``)."""
ANTHROPIC_LEGACY = "2023-06-01"
"""The earlier version, which still takes sampling settings: register a version with
``params={"anthropic_version": "2023-06-01"}`` for workloads that need them."""
SAMPLING = ("temperature", "top_p", "top_k")
MAX_MESSAGES = 256


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
        raise PayloadError(field, 'give {"role": "user", "content": "..."}')
    role, content = value.get("role"), value.get("content")
    if role not in ROLES:
        raise PayloadError(f"{field}.role", f"give one of {', '.join(ROLES)}, got {role!r:.40}")
    if not isinstance(content, str):
        raise PayloadError(f"{field}.content", f"give the message text, got {content!r:.40}")
    return {"role": str(role), "content": content}


def _setting(name: str, value: Any) -> Any:
    """A per-call setting, checked before any provider sees it."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    ok = {
        "temperature": number and 0 <= value <= 2,
        "top_p": number and 0 <= value <= 1,
        "max_tokens": isinstance(value, int) and not isinstance(value, bool) and value >= 1,
        "stop": isinstance(value, str) or (isinstance(value, list) and 0 < len(value) <= 4
                                           and all(isinstance(v, str) for v in value)),
    }[name]
    if not ok:
        want = {"temperature": "a number from 0 to 2", "top_p": "a number from 0 to 1",
                "max_tokens": "a whole number >= 1",
                "stop": "a string or a list of up to 4 strings"}[name]
        raise PayloadError(f"inputs.{name}", f"give {want}, got {value!r:.40}")
    return value


def messages_of(inputs: Any) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """(messages, per-call settings) of an invoke body's ``inputs`` for a chat model."""
    settings: dict[str, Any] = {}
    if isinstance(inputs, str):
        if not inputs.strip():
            raise PayloadError("inputs", "is empty; give the user's message")
        return [{"role": "user", "content": inputs}], settings
    raw: Any = inputs
    if isinstance(inputs, Mapping):
        if "stream" in inputs:
            raise PayloadError("inputs.stream", 'goes beside "inputs", not in it: '
                               '{"inputs": {...}, "stream": true}')
        unknown = sorted(set(inputs) - {"messages", *CALL_SETTINGS})
        if unknown:
            raise PayloadError(f"inputs.{unknown[0]}", "not a chat setting; give messages and "
                               f"optionally {', '.join(CALL_SETTINGS)}")
        raw = inputs.get("messages")
        settings = {k: _setting(k, inputs[k]) for k in CALL_SETTINGS if k in inputs}
        if not isinstance(raw, list) or not raw:
            raise PayloadError("inputs.messages", 'give a list of messages: [{"role": "user", '
                               '"content": "..."}]')
    if not isinstance(raw, list) or not raw:
        raise PayloadError("inputs", 'give a message text, a list of messages, or {"messages": '
                           '[{"role": "user", "content": "..."}]}')
    if len(raw) > MAX_MESSAGES:
        raise PayloadError("inputs.messages", f"has {len(raw)} messages; send at most "
                           f"{MAX_MESSAGES}")
    return [_message(m, i) for i, m in enumerate(raw)], settings


def _renamed(settings: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """``settings`` under the provider's names (``stop`` as a list where it wants one);
    names it has no other name for are kept."""
    out = {names.get(k, k): v for k, v in settings.items() if k not in _NOT_SENT}
    stop = out.get("stop_sequences")
    if isinstance(stop, str):
        out["stop_sequences"] = [stop]
    return out


def _body(params: Mapping[str, Any], settings: Mapping[str, Any],
          names: Mapping[str, str]) -> dict[str, Any]:
    """The version's registered params, then the call's settings over them, both under the
    provider's names (a registered ``top_p`` reaches Cohere as ``p``, as a per-call one)."""
    return {**_renamed(params, names), **_renamed(settings, names)}


def openai_request(params: Mapping[str, Any], messages: list[dict[str, str]],
                   settings: Mapping[str, Any]) -> dict[str, Any]:
    """The ``/chat/completions`` body of OpenAI-compatible servers (Ollama, vLLM): the
    version's params, the call's settings over them, the messages; not streamed (a
    streamed call sets ``stream`` over it)."""
    body = _body(params, settings, {})
    body["messages"] = messages
    body["stream"] = False
    return body


_OPENAI_SETTINGS = {"max_tokens": "max_completion_tokens"}


def openai_api_request(params: Mapping[str, Any], messages: list[dict[str, str]],
                       settings: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`openai_request` for OpenAI's own API, where ``max_tokens`` is deprecated
    and refused by its reasoning models: it is sent as ``max_completion_tokens``."""
    body = _body(params, settings, _OPENAI_SETTINGS)
    body["messages"] = messages
    body["stream"] = False
    return body


def _count(value: Any) -> int | None:
    """A token count as an int (Cohere sends 11.0); None when absent or not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def openai_result(body: Any) -> ChatResult:
    """Read a chat completion answer; ValueError naming what is missing."""
    try:
        choice = body["choices"][0]
        content = choice["message"].get("content") or ""
        usage = body.get("usage") or {}
    except (KeyError, IndexError, TypeError, AttributeError) as err:
        raise ValueError(f"not a chat completion answer (missing {err})") from None
    return ChatResult(content=str(content), finish_reason=choice.get("finish_reason"),
                      tokens_in=_count(usage.get("prompt_tokens")),
                      tokens_out=_count(usage.get("completion_tokens")))


ANTHROPIC_MAX_TOKENS = 1024  # Anthropic requires max_tokens; used when neither side gave it
_ANTHROPIC_SETTINGS = {"stop": "stop_sequences"}
_COHERE_SETTINGS = {"top_p": "p", "stop": "stop_sequences"}


def anthropic_request(params: Mapping[str, Any], messages: list[dict[str, str]],
                      settings: Mapping[str, Any]) -> dict[str, Any]:
    """The ``/v1/messages`` body: system messages go to the top-level ``system`` field
    (Anthropic takes only user and assistant turns), ``max_tokens`` is always set."""
    body = _body(params, settings, _ANTHROPIC_SETTINGS)
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    if system:
        body["system"] = system
    body["messages"] = [m for m in messages if m["role"] != "system"]
    body.setdefault("max_tokens", ANTHROPIC_MAX_TOKENS)
    body["stream"] = False
    return body


def anthropic_result(body: Any) -> ChatResult:
    """Read an Anthropic ``Message``; ValueError naming what is missing."""
    try:
        text = "".join(b.get("text", "") for b in body["content"] if b.get("type") == "text")
        usage = body.get("usage") or {}
    except (KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"not an Anthropic message answer (missing {err})") from None
    return ChatResult(content=text, finish_reason=body.get("stop_reason"),
                      tokens_in=_count(usage.get("input_tokens")),
                      tokens_out=_count(usage.get("output_tokens")))


def cohere_request(params: Mapping[str, Any], messages: list[dict[str, str]],
                   settings: Mapping[str, Any]) -> dict[str, Any]:
    """The ``/v2/chat`` body (Cohere's names: ``p``, ``stop_sequences``)."""
    body = _body(params, settings, _COHERE_SETTINGS)
    body["messages"] = messages
    body["stream"] = False
    return body


def cohere_result(body: Any) -> ChatResult:
    """Read a Cohere v2 chat answer; ValueError naming what is missing."""
    try:
        content = body["message"].get("content") or []
        text = "".join(c.get("text", "") for c in content if c.get("type") == "text")
        tokens = (body.get("usage") or {}).get("tokens") or {}
    except (KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"not a Cohere chat answer (missing {err})") from None
    return ChatResult(content=text, finish_reason=body.get("finish_reason"),
                      tokens_in=_count(tokens.get("input_tokens")),
                      tokens_out=_count(tokens.get("output_tokens")))


@dataclass(frozen=True)
class Dialect:
    """How one provider's chat API is spoken: where, with which headers, what body."""

    base_url: str
    path: str
    request: Callable[[Mapping[str, Any], list[dict[str, str]], Mapping[str, Any]],
                      dict[str, Any]]
    result: Callable[[Any], ChatResult]
    auth: Callable[[str, Mapping[str, Any]], dict[str, str]]


def _bearer(key: str, params: Mapping[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def anthropic_version(params: Mapping[str, Any]) -> str:
    """The Messages API version a version's params ask for (default
    :data:`ANTHROPIC_VERSION`)."""
    return str(params.get("anthropic_version") or ANTHROPIC_VERSION)


def refused_sampling(values: Mapping[str, Any], params: Mapping[str, Any]) -> str | None:
    """The first sampling setting in ``values`` that the Anthropic API version of
    ``params`` refuses (every one since 2026-10-21), else None."""
    if anthropic_version(params) == ANTHROPIC_LEGACY:
        return None
    return next((k for k in SAMPLING if k in values), None)


def _anthropic_auth(key: str, params: Mapping[str, Any]) -> dict[str, str]:
    """As the official SDKs send it since 2026-10-21: the key as a bearer token."""
    return {"Authorization": f"Bearer {key}", "anthropic-version": anthropic_version(params)}


DIALECTS = {
    "openai": Dialect("https://api.openai.com/v1", "/chat/completions", openai_api_request,
                      openai_result, _bearer),
    "ollama": Dialect("http://127.0.0.1:11434/v1", "/chat/completions", openai_request,
                      openai_result, _bearer),
    "anthropic": Dialect("https://api.anthropic.com/v1", "/messages", anthropic_request,
                         anthropic_result, _anthropic_auth),
    "cohere": Dialect("https://api.cohere.com/v2", "/chat", cohere_request, cohere_result,
                      _bearer),
}
"""Provider -> how its chat API is spoken (``base_url`` is the default; a version's
``params["base_url"]`` or the gateway's ``endpoints`` override it)."""
