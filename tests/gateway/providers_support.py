"""Fake LLM provider APIs for the gateway tests: OpenAI ``/v1/chat/completions``,
Anthropic ``/v1/messages`` and Cohere ``/v2/chat`` on loopback, validating what they are
sent and building what they answer with the official ``openai``, ``anthropic`` and
``cohere`` packages' own types. Imported by module name (``providers_support``)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import json
import threading
import time
from typing import Any

import cohere
import pydantic
from aiohttp import web
from anthropic.types import ErrorResponse as AnthropicError
from anthropic.types import Message as AnthropicMessage
from anthropic.types import RawMessageStreamEvent
from anthropic.types.message_create_params import (
    MessageCreateParamsNonStreaming,
    MessageCreateParamsStreaming,
)
from openai.types import ErrorObject as OpenAIError
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.chat.completion_create_params import (
    CompletionCreateParamsNonStreaming,
    CompletionCreateParamsStreaming,
)

KEY = "sk-test-" + "Zq8vN3xW7tY2pL5mK9rB4cF6"  # never to be seen outside the request header
ANTHROPIC_EVENT = pydantic.TypeAdapter(RawMessageStreamEvent)
COHERE_MESSAGES = pydantic.TypeAdapter(list[cohere.ChatMessageV2])
COHERE_KEYS = (frozenset(inspect.signature(cohere.ClientV2.chat).parameters)
               - {"self", "request_options"}) | {"stream"}
COHERE_TYPES: dict[str, Any] = {"model": str, "temperature": float, "p": float, "k": int,
                                "max_tokens": int, "seed": int, "stream": bool}
PROVIDERS = {  # provider -> (registered params, the fake's base path)
    "openai": ({"model": "gpt-4o-mini", "temperature": 0.2}, "/v1"),
    # Anthropic's API refuses sampling settings since version 2026-10-21
    "anthropic": ({"model": "claude-sonnet-5-5", "max_tokens": 512}, "/v1"),
    "cohere": ({"model": "command-r", "temperature": 0.2}, "/v2"),
    "ollama": ({"model": "llama3.2", "temperature": 0.2}, "/ollama/v1"),  # keyless
}


@functools.cache
def _adapter(typed: Any) -> pydantic.TypeAdapter[Any]:
    return pydantic.TypeAdapter(typed)  # (slow to build: once per type)


def _keys(typed: Any) -> frozenset[str]:
    return frozenset(typed.__required_keys__ | typed.__optional_keys__)


def check_request(provider: str, body: dict[str, Any], headers: Any) -> str | None:
    """What is wrong with a request for the provider's API (None: nothing), by the official
    request types: unknown fields refused (the types alone let them through) and lazily
    validated message lists read to the end. Anthropic: the types are those of API version
    2026-10-21 (the SDK's); the 2023-06-01 version also takes sampling settings."""
    streamed = body.get("stream") is True
    if provider == "anthropic":
        version = headers.get("anthropic-version")
        if version not in ("2026-10-21", "2023-06-01"):
            return f"anthropic-version {version!r} is not a Messages API version"
        if version == "2023-06-01":
            body = {k: v for k, v in body.items() if k not in ("temperature", "top_p", "top_k")}
    try:
        if provider in ("openai", "ollama", "anthropic"):
            if provider == "anthropic":
                typed: Any = MessageCreateParamsStreaming if streamed else (
                    MessageCreateParamsNonStreaming)
            else:
                typed = CompletionCreateParamsStreaming if streamed else (
                    CompletionCreateParamsNonStreaming)
            unknown = set(body) - _keys(typed)
            if unknown:
                return f"unknown fields {sorted(unknown)}"
            checked = _adapter(typed).validate_python(body)
            list(checked["messages"])  # an Iterable[...] field is checked as it is read
        else:
            unknown = set(body) - COHERE_KEYS
            if unknown:
                return f"unknown fields {sorted(unknown)}"
            COHERE_MESSAGES.validate_python(body["messages"])
            for name, kind in COHERE_TYPES.items():
                if name in body and not isinstance(body[name], kind | (int if kind is float
                                                                       else kind)):
                    return f"{name} must be {kind.__name__}"
            stops = body.get("stop_sequences", [])
            if not (isinstance(stops, list) and all(isinstance(x, str) for x in stops)):
                return "stop_sequences must be a list of strings"
    except (pydantic.ValidationError, KeyError, TypeError) as err:
        return f"{type(err).__name__}: {err}"
    return None


_ANTHROPIC_ERRORS = {400: "invalid_request_error", 401: "authentication_error",
                     429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}


def error_body(provider: str, status: int, message: str) -> dict[str, Any]:
    """An error answer in the provider's own shape (built with its types)."""
    if provider == "anthropic":
        return AnthropicError.model_validate({"type": "error", "error": {
            "type": _ANTHROPIC_ERRORS.get(status, "api_error"), "message": message},
        }).model_dump(mode="json", exclude_none=True)
    if provider == "cohere":
        return {"message": message}
    kind = {401: "invalid_request_error", 429: "requests"}.get(status, "server_error")
    return {"error": OpenAIError.model_validate({
        "message": message, "type": kind, "param": None,
        "code": "invalid_api_key" if status == 401 else None}).model_dump(mode="json")}


def _answer(provider: str, model: str, text: str) -> dict[str, Any]:
    """An answer built with the provider's own response type."""
    if provider in ("openai", "ollama"):
        return ChatCompletion.model_validate({
            "id": "chatcmpl-1", "object": "chat.completion", "created": int(time.time()),
            "model": model, "usage": {"prompt_tokens": 11, "completion_tokens": 3,
                                      "total_tokens": 14},
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
        }).model_dump(mode="json", exclude_none=True)
    if provider == "anthropic":
        return AnthropicMessage.model_validate({
            "id": "msg_1", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
            "stop_sequence": None, "usage": {"input_tokens": 11, "output_tokens": 3},
        }).model_dump(mode="json", exclude_none=True)
    return json.loads(cohere.V2ChatResponse.model_validate({
        "id": "c1", "finish_reason": "COMPLETE",
        "message": {"role": "assistant", "content": [{"type": "text", "text": text}]},
        "usage": {"tokens": {"input_tokens": 11, "output_tokens": 3}},
    }).json(exclude_none=True))


def stream_events(provider: str, model: str, text: str) -> list[tuple[str | None, str]]:
    """(event name, data) of a streamed answer with ``text`` cut in words, each event
    built with the provider's own stream types."""
    words = [w + " " for w in text.split(" ")]
    words[-1] = words[-1].rstrip()
    if provider in ("openai", "ollama"):
        def chunk(**fields: Any) -> str:
            return ChatCompletionChunk.model_validate({
                "id": "chatcmpl-1", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": model, **fields,
            }).model_dump_json(exclude_none=True)
        events = [chunk(choices=[{"index": 0, "delta": {"role": "assistant", "content": w}}])
                  for w in words]
        events.append(chunk(choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}]))
        events.append(chunk(choices=[], usage={"prompt_tokens": 11, "completion_tokens": 3,
                                               "total_tokens": 14}))
        return [(None, e) for e in events] + [(None, "[DONE]")]
    if provider == "anthropic":
        raw = [
            {"type": "message_start", "message": {
                "id": "msg_1", "type": "message", "role": "assistant", "model": model,
                "content": [], "stop_reason": None, "stop_sequence": None,
                "usage": {"input_tokens": 11, "output_tokens": 1}}},
            {"type": "content_block_start", "index": 0,
             "content_block": {"type": "text", "text": ""}},
            {"type": "ping"},
            *({"type": "content_block_delta", "index": 0,
               "delta": {"type": "text_delta", "text": w}} for w in words),
            {"type": "content_block_stop", "index": 0},
            {"type": "message_delta", "delta": {"stop_reason": "end_turn",
                                                "stop_sequence": None},
             "usage": {"output_tokens": 3}},
            {"type": "message_stop"},
        ]
        out = []
        for event in raw:
            if event["type"] != "ping":  # (ping is not in the union of typed events)
                ANTHROPIC_EVENT.validate_python(event)
            out.append((str(event["type"]), json.dumps(event)))
        return out
    raw = [
        {"type": "message-start", "id": "c1", "delta": {"message": {"role": "assistant"}}},
        {"type": "content-start", "index": 0,
         "delta": {"message": {"content": {"type": "text", "text": ""}}}},
        *({"type": "content-delta", "index": 0,
           "delta": {"message": {"content": {"text": w}}}} for w in words),
        {"type": "content-end", "index": 0},
        {"type": "message-end", "delta": {"finish_reason": "COMPLETE", "usage": {
            "tokens": {"input_tokens": 11, "output_tokens": 3}}}},
    ]
    adapter = pydantic.TypeAdapter(cohere.StreamedChatResponseV2)
    return [(str(e["type"]), json.dumps(e)) for e in raw if adapter.validate_python(e)]


def sse(event: str | None, data: str) -> bytes:
    return (f"event: {event}\n" if event else "").encode() + f"data: {data}\n\n".encode()


class LoopbackApp:
    """An aiohttp application served on a free loopback port from a thread of its own
    (its own event loop), for fake upstreams in the gateway tests."""

    def __init__(self, app: web.Application) -> None:
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(app, access_log=None)
        self.url = ""
        self.thread: threading.Thread | None = None

    def start(self) -> str:
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.runner.setup())
            self.loop.run_until_complete(web.TCPSite(self.runner, "127.0.0.1", 0).start())
            self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.wait(10)
        return self.url

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        if self.thread is not None:
            self.thread.join(10)
        self.loop.close()


class FakeProviders:
    """OpenAI ``/v1/chat/completions``, Anthropic ``/v1/messages`` and Cohere ``/v2/chat``
    as they answer; what they are sent is validated against the official request types.
    The last message steers them: "fail" -> 500, "deny" -> 401, "slow" -> 2 s; streamed
    (``"stream": true``), "stall" stops after the first piece and "break" sends an error
    event (a dropped connection for Cohere) after it."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.refused: list[tuple[str, str]] = []  # requests the real API would refuse
        self.busy = 0
        self.url = ""
        self._server: LoopbackApp | None = None

    def _handler(self, provider: str) -> Any:
        async def handle(request: web.Request) -> web.Response:
            body = await request.json()
            streamed = body.get("stream") is True
            wrong = check_request(provider, body, request.headers)
            if wrong is not None:  # what the real API would refuse: the test sees why
                self.refused.append((provider, wrong))
                return web.json_response(error_body(provider, 400, f"fake {provider}: {wrong}"),
                                         status=400)
            self.requests.append((provider, body, dict(request.headers)))
            last = body["messages"][-1]["content"]

            def error(status: int, message: str, **headers: str) -> web.Response:
                return web.json_response(error_body(provider, status, message), status=status,
                                         headers=headers)

            if last == "fail":
                return error(500, "The server had an error while processing your request.")
            if last == "deny":  # as OpenAI does: the key, partly masked, in the message
                shown = f"{KEY[:8]}{'*' * 16}{KEY[-4:]}"
                return error(401, f"Incorrect API key provided: {shown}.")
            if last == "too long":  # what a provider says of a prompt past its context
                return error(400, "prompt is too long: 210000 tokens > 200000 maximum")
            if last == "overloaded":
                return error(529, "Overloaded")
            if last == "busy":  # 429 with a retry-after the gateway must honour
                self.busy += 1
                if self.busy % 2:
                    return error(429, "Rate limit reached", **{"retry-after-ms": "150"})
            if last == "late fail":
                await asyncio.sleep(0.4)
                return error(500, "late")
            if last == "slow":
                await asyncio.sleep(2)
            if streamed:
                return await self._stream(request, provider, body["model"], last)
            return web.json_response(_answer(provider, body["model"], f"echo: {last}"))
        return handle

    async def _stream(self, request: web.Request, provider: str, model: str, last: str
                      ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        events = stream_events(provider, model, f"echo: {last}")
        first_text = next(i for i, (_, data) in enumerate(events) if "echo: " in data)
        with contextlib.suppress(ConnectionResetError):  # the gateway hung up (a stall)
            await self._relay(request, response, provider, events, first_text, last)
        return response

    async def _relay(self, request: web.Request, response: web.StreamResponse, provider: str,
                     events: list[tuple[str | None, str]], first_text: int, last: str
                     ) -> None:
        for index, (event, data) in enumerate(events):
            await response.write(sse(event, data))
            if index == first_text and last in ("stall", "break"):
                if last == "stall":
                    await asyncio.sleep(2)
                elif provider in ("openai", "ollama"):
                    await response.write(sse(None, json.dumps({"error": {
                        "message": "server overloaded", "type": "server_error"}})))
                elif provider == "anthropic":
                    await response.write(sse("error", json.dumps({"type": "error", "error": {
                        "type": "overloaded_error", "message": "Overloaded"}})))
                else:
                    assert request.transport is not None
                    request.transport.close()
                return
            await asyncio.sleep(0.01)
        await response.write_eof()

    def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handler("openai"))
        app.router.add_post("/v1/messages", self._handler("anthropic"))
        app.router.add_post("/v2/chat", self._handler("cohere"))
        app.router.add_post("/ollama/v1/chat/completions", self._handler("ollama"))
        self._server = LoopbackApp(app)
        self.url = self._server.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
