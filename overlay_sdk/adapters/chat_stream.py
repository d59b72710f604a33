"""Streamed chat answers: server-sent events as each provider sends them, read into text
pieces, why the answer stopped and the token usage. Pure.

- OpenAI-compatible (OpenAI, Ollama, vLLM): ``data: {chat.completion.chunk}`` lines, then
  ``data: [DONE]``; usage comes in a last chunk when the request asks for it
  (``stream_options.include_usage``, which :func:`stream_body` sets).
- Anthropic Messages: typed events (``message_start`` with the input tokens,
  ``content_block_delta`` with text, ``message_delta`` with the stop reason and output
  tokens, ``message_stop``; ``error`` mid-stream).
- Cohere v2 chat: ``content-delta`` with text, ``message-end`` with the finish reason and
  usage.

The gateway relays the pieces to its caller as its own events (``delta``, then ``done``
or ``error``), the same for every provider, and keeps the whole answer for telemetry.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from overlay_sdk.adapters.chat import ChatResult

__all__ = ["STREAMERS", "Piece", "SSEDecoder", "Streamer", "Transcript", "anthropic_piece",
           "cohere_piece", "openai_piece", "stream_body"]


@dataclass(frozen=True)
class Piece:
    """What one provider event says: text to pass on, and/or how the answer ends."""

    text: str = ""
    finish_reason: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    error: str | None = None
    done: bool = False


class SSEDecoder:
    """Server-sent events from bytes as they arrive (the WHATWG event-stream rules: lines
    end in LF, CRLF or CR; ``data`` lines join with LF; a blank line dispatches; lines
    starting with ``:`` are comments)."""

    def __init__(self) -> None:
        self._buffer = b""
        self._event = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[tuple[str, str]]:
        """The (event, data) pairs completed by ``chunk``."""
        self._buffer += chunk
        events: list[tuple[str, str]] = []
        while True:
            cut = _line_end(self._buffer)
            if cut is None:
                return events
            end, size = cut
            line = self._buffer[:end].decode("utf-8", "replace")
            self._buffer = self._buffer[end + size:]
            if not line:
                if self._data:
                    events.append((self._event or "message", "\n".join(self._data)))
                self._event, self._data = "", []
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                self._data.append(value)
            elif name == "event":
                self._event = value


def _line_end(buffer: bytes) -> tuple[int, int] | None:
    """(index, length) of the first line ending in ``buffer``; a CR at the very end waits
    for the next byte (it may be half of CRLF)."""
    lf, cr = buffer.find(b"\n"), buffer.find(b"\r")
    if cr == -1 or (lf != -1 and lf < cr):
        return (lf, 1) if lf != -1 else None
    if cr + 1 == len(buffer):
        return None
    return (cr, 2) if buffer[cr + 1:cr + 2] == b"\n" else (cr, 1)


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def _object(data: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        raise ValueError(f"a stream event is not JSON: {data[:80]!r}") from None
    if not isinstance(value, dict):
        raise ValueError(f"a stream event is not a JSON object: {data[:80]!r}")
    return value


def _error_text(value: Any) -> str:
    if isinstance(value, Mapping):
        return str(value.get("message") or value)
    return str(value)


def openai_piece(event: str, data: str) -> Piece | None:
    """A chat.completion.chunk (or ``[DONE]``, or an error object)."""
    if data.strip() == "[DONE]":
        return Piece(done=True)
    chunk = _object(data)
    if "error" in chunk:
        return Piece(error=_error_text(chunk["error"]))
    usage = chunk.get("usage") or {}
    choices = chunk.get("choices") or []
    choice = choices[0] if choices and isinstance(choices[0], Mapping) else {}
    delta = choice.get("delta") or {}
    return Piece(text=str(delta.get("content") or ""), finish_reason=choice.get("finish_reason"),
                 tokens_in=_count(usage.get("prompt_tokens")),
                 tokens_out=_count(usage.get("completion_tokens")))


def anthropic_piece(event: str, data: str) -> Piece | None:
    """One of Anthropic's typed stream events (``ping`` and block starts say nothing)."""
    body = _object(data)
    kind = body.get("type", event)
    if kind == "message_start":
        usage = (body.get("message") or {}).get("usage") or {}
        return Piece(tokens_in=_count(usage.get("input_tokens")))
    if kind == "content_block_delta":
        delta = body.get("delta") or {}
        return Piece(text=str(delta.get("text") or "")) if delta.get("type") == "text_delta" \
            else None
    if kind == "message_delta":
        usage = body.get("usage") or {}
        return Piece(finish_reason=(body.get("delta") or {}).get("stop_reason"),
                     tokens_out=_count(usage.get("output_tokens")))
    if kind == "message_stop":
        return Piece(done=True)
    if kind == "error":
        return Piece(error=_error_text(body.get("error")))
    return None


def cohere_piece(event: str, data: str) -> Piece | None:
    """One of Cohere v2's chat stream events."""
    body = _object(data)
    kind = body.get("type", event)
    delta = body.get("delta") or {}
    if kind == "content-delta":
        content = (delta.get("message") or {}).get("content") or {}
        return Piece(text=str(content.get("text") or ""))
    if kind == "message-end":
        tokens = (delta.get("usage") or {}).get("tokens") or {}
        return Piece(finish_reason=delta.get("finish_reason"), done=True,
                     tokens_in=_count(tokens.get("input_tokens")),
                     tokens_out=_count(tokens.get("output_tokens")))
    return None


@dataclass(frozen=True)
class Streamer:
    """How one provider streams: what to add to the request, how to read each event."""

    piece: Callable[[str, str], Piece | None]
    request: Mapping[str, Any] = field(default_factory=dict)


def stream_body(body: Mapping[str, Any], streamer: Streamer) -> dict[str, Any]:
    """A chat request ``body`` asking for a streamed answer."""
    return {**body, "stream": True, **streamer.request}


_OPENAI = Streamer(openai_piece, {"stream_options": {"include_usage": True}})
STREAMERS = {"openai": _OPENAI, "ollama": _OPENAI, "anthropic": Streamer(anthropic_piece),
             "cohere": Streamer(cohere_piece)}
"""Provider -> how its stream is asked for and read."""


@dataclass
class Transcript:
    """A streamed answer put together, piece by piece."""

    parts: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    done: bool = False

    def add(self, piece: Piece) -> None:
        if piece.text:
            self.parts.append(piece.text)
        if piece.finish_reason is not None:
            self.finish_reason = piece.finish_reason
        if piece.tokens_in is not None:
            self.tokens_in = piece.tokens_in
        if piece.tokens_out is not None:  # Anthropic's count is cumulative: the last wins
            self.tokens_out = piece.tokens_out
        self.done = self.done or piece.done

    def result(self) -> ChatResult:
        return ChatResult("".join(self.parts), self.finish_reason, self.tokens_in,
                          self.tokens_out)
