"""Fake LLM provider APIs for the gateway tests: OpenAI ``/v1/chat/completions``,
Anthropic ``/v1/messages`` and Cohere ``/v2/chat`` on loopback, validating what they are
sent and building what they answer with the official ``openai``, ``anthropic`` and
``cohere`` packages' own types. Imported by module name (``providers_support``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from typing import Any

import cohere
import pydantic
from aiohttp import web
from anthropic.types import Message as AnthropicMessage
from anthropic.types import RawMessageStreamEvent
from anthropic.types.message_create_params import (
    MessageCreateParamsNonStreaming,
    MessageCreateParamsStreaming,
)
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.chat.completion_create_params import (
    CompletionCreateParamsNonStreaming,
    CompletionCreateParamsStreaming,
)

KEY = "sk-test-" + "Zq8vN3xW7tY2pL5mK9rB4cF6"  # never to be seen outside the request header
OPENAI_REQUEST = pydantic.TypeAdapter(CompletionCreateParamsNonStreaming)
ANTHROPIC_REQUEST = pydantic.TypeAdapter(MessageCreateParamsNonStreaming)
OPENAI_STREAM_REQUEST = pydantic.TypeAdapter(CompletionCreateParamsStreaming)
ANTHROPIC_STREAM_REQUEST = pydantic.TypeAdapter(MessageCreateParamsStreaming)
ANTHROPIC_EVENT = pydantic.TypeAdapter(RawMessageStreamEvent)
COHERE_MESSAGES = pydantic.TypeAdapter(list[cohere.ChatMessageV2])
PROVIDERS = {  # provider -> (registered params, the fake's base path)
    "openai": ({"model": "gpt-4o-mini", "temperature": 0.2}, "/v1"),
    "anthropic": ({"model": "claude-sonnet-4-5", "temperature": 0.2}, "/v1"),
    "cohere": ({"model": "command-r", "temperature": 0.2}, "/v2"),
}


def _answer(provider: str, model: str, text: str) -> dict[str, Any]:
    """An answer built with the provider's own response type."""
    if provider == "openai":
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
    if provider == "openai":
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


class FakeProviders:
    """OpenAI ``/v1/chat/completions``, Anthropic ``/v1/messages`` and Cohere ``/v2/chat``
    as they answer; what they are sent is validated against the official request types.
    The last message steers them: "fail" -> 500, "deny" -> 401, "slow" -> 2 s; streamed
    (``"stream": true``), "stall" stops after the first piece and "break" sends an error
    event (a dropped connection for Cohere) after it."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.busy = 0
        self.loop = asyncio.new_event_loop()
        self.url = ""

    def _handler(self, provider: str) -> Any:
        async def handle(request: web.Request) -> web.Response:
            body = await request.json()
            streamed = body.get("stream") is True
            if provider == "openai":
                (OPENAI_STREAM_REQUEST if streamed else OPENAI_REQUEST).validate_python(body)
            elif provider == "anthropic":
                (ANTHROPIC_STREAM_REQUEST if streamed else ANTHROPIC_REQUEST
                 ).validate_python(body)
            else:
                COHERE_MESSAGES.validate_python(body["messages"])
                assert isinstance(body["model"], str)
            self.requests.append((provider, body, dict(request.headers)))
            last = body["messages"][-1]["content"]
            if last == "fail":
                return web.json_response({"error": {"message": "overloaded"}}, status=500)
            if last == "deny":  # as OpenAI does: the key, partly masked, in the message
                shown = f"{KEY[:8]}{'*' * 16}{KEY[-4:]}"
                return web.json_response(
                    {"error": {"message": f"Incorrect API key provided: {shown}."}}, status=401)
            if last == "too long":  # what a provider says of a prompt past its context
                return web.json_response({"error": {"message": "context length"}}, status=400)
            if last == "overloaded":
                return web.json_response({"error": {"message": "overloaded"}}, status=529)
            if last == "busy":  # 429 with a retry-after the gateway must honour
                self.busy += 1
                if self.busy % 2:
                    return web.json_response({"error": {"message": "rate limited"}},
                                             status=429, headers={"retry-after-ms": "150"})
            if last == "late fail":
                await asyncio.sleep(0.4)
                return web.json_response({"error": {"message": "late"}}, status=500)
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
                elif provider == "openai":
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
        self.runner = web.AppRunner(app, access_log=None)
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.runner.setup())
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            self.loop.run_until_complete(site.start())
            self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.wait(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
