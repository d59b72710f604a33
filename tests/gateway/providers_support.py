"""Fake LLM provider APIs for the gateway tests: OpenAI ``/v1/chat/completions``,
Anthropic ``/v1/messages`` and Cohere ``/v2/chat`` on loopback, validating what they are
sent and building what they answer with the official ``openai``, ``anthropic`` and
``cohere`` packages' own types. Imported by module name (``providers_support``)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import cohere
import pydantic
from aiohttp import web
from anthropic.types import Message as AnthropicMessage
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming
from openai.types.chat import ChatCompletion
from openai.types.chat.completion_create_params import CompletionCreateParamsNonStreaming

KEY = "sk-test-" + "Zq8vN3xW7tY2pL5mK9rB4cF6"  # never to be seen outside the request header
OPENAI_REQUEST = pydantic.TypeAdapter(CompletionCreateParamsNonStreaming)
ANTHROPIC_REQUEST = pydantic.TypeAdapter(MessageCreateParamsNonStreaming)
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


class FakeProviders:
    """OpenAI ``/v1/chat/completions``, Anthropic ``/v1/messages`` and Cohere ``/v2/chat``
    as they answer; what they are sent is validated against the official request types.
    The last message steers them: "fail" -> 500, "deny" -> 401, "slow" -> 2 s."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.busy = 0
        self.loop = asyncio.new_event_loop()
        self.url = ""

    def _handler(self, provider: str) -> Any:
        async def handle(request: web.Request) -> web.Response:
            body = await request.json()
            if provider == "openai":
                OPENAI_REQUEST.validate_python(body)
            elif provider == "anthropic":
                ANTHROPIC_REQUEST.validate_python(body)
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
            return web.json_response(_answer(provider, body["model"], f"echo: {last}"))
        return handle

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
