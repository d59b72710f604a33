"""Chat models behind an OpenAI-compatible API (issue 5, part): the wire format is checked
with the official ``openai`` package's own types on a fake upstream on loopback."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pydantic
import pytest
from aiohttp import web
from openai.types.chat import ChatCompletion
from openai.types.chat.completion_create_params import CompletionCreateParamsNonStreaming

from overlay_sdk.client import ControlPlane, Overlay
from overlay_sdk.gateway import GatewayHandle
from overlay_sdk.telemetry import read_calls

KEY_ENV = "OVERLAY_TEST_OPENAI_KEY"
KEY = "sk-test-" + "Zq8vN3xW7tY2pL5mK9rB4cF6"  # never to be seen outside the request header
REQUEST = pydantic.TypeAdapter(CompletionCreateParamsNonStreaming)


class FakeOpenAI:
    """``POST /v1/chat/completions`` as OpenAI answers it; what it is sent is validated
    against the official request type. The last user message steers it: "fail" -> 500,
    "deny" -> 401, "slow" -> answers after 2 s."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, Any], str | None]] = []
        self.loop = asyncio.new_event_loop()
        self.url = ""

    async def _completions(self, request: web.Request) -> web.Response:
        body = await request.json()
        REQUEST.validate_python(body)  # raises (-> 500, and the test sees it) if off-spec
        self.requests.append((body, request.headers.get("Authorization")))
        last = body["messages"][-1]["content"]
        if last == "fail":
            return web.json_response({"error": {"message": "overloaded"}}, status=500)
        if last == "deny":
            return web.json_response({"error": {"message": "bad key"}}, status=401)
        if last == "slow":
            await asyncio.sleep(2)
        answer = ChatCompletion.model_validate({
            "id": "chatcmpl-1", "object": "chat.completion", "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": f"echo: {last}"}}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
        })
        return web.json_response(answer.model_dump(mode="json", exclude_none=True))

    def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._completions)
        self.runner = web.AppRunner(app, access_log=None)
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.runner.setup())
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            self.loop.run_until_complete(site.start())
            self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/v1"
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


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def chat(plane: ControlPlane, fake: FakeOpenAI, legacy_url: str
         ) -> Iterator[tuple[GatewayHandle, Overlay]]:
    old = os.environ.get(KEY_ENV)
    os.environ[KEY_ENV] = KEY
    v = plane.models.register("copilot", provider="openai",
                              params={"model": "gpt-4o-mini", "temperature": 0.2},
                              api_key_env=KEY_ENV)
    o = plane.overlays.create("copilot", host=legacy_url, routes={f"copilot:{v.version}": 100},
                              slo={"timeoutMs": 500})
    try:
        with plane.start_gateway(port=0, endpoints={f"copilot:{v.version}": fake.url}) as gw:
            gw.wait(o)
            yield gw, o
    finally:
        if old is None:
            del os.environ[KEY_ENV]
        else:
            os.environ[KEY_ENV] = old


def invoke(gw: GatewayHandle, inputs: Any) -> tuple[int, dict[str, str], Any]:
    async def go() -> tuple[int, dict[str, str], Any]:
        async with aiohttp.ClientSession() as s, s.post(
                f"{gw.url}/_overlay/copilot/invoke", json={"inputs": inputs}) as r:
            return r.status, dict(r.headers), await r.json()
    return asyncio.run(go())


def test_a_routed_chat_call(chat: tuple[GatewayHandle, Overlay], fake: FakeOpenAI,
                            plane: ControlPlane) -> None:
    gw, o = chat
    status, headers, body = invoke(gw, "Summarise account 42")
    assert status == 200, body
    assert body["outputs"] == {"content": "echo: Summarise account 42", "finish_reason": "stop"}
    assert headers["x-overlay-model-version"] == f"copilot:{o.spec.routes[0].version}"
    sent, auth = fake.requests[-1]
    assert sent["model"] == "gpt-4o-mini" and sent["temperature"] == 0.2
    assert sent["messages"] == [{"role": "user", "content": "Summarise account 42"}]
    assert auth == f"Bearer {KEY}"
    gw.flush()
    record = read_calls(plane.telemetry_url, overlay="copilot").iloc[-1]
    assert (record["tokens_in"], record["tokens_out"]) == (11, 3)
    assert record["input.prompt"] == "Summarise account 42"


def test_messages_and_call_settings(chat: tuple[GatewayHandle, Overlay],
                                    fake: FakeOpenAI) -> None:
    gw, _ = chat
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    status, _, body = invoke(gw, {"messages": messages, "temperature": 0.9, "max_tokens": 20})
    assert status == 200 and body["outputs"]["content"] == "echo: Hi"
    sent, _ = fake.requests[-1]
    assert sent["messages"] == messages
    assert (sent["temperature"], sent["max_tokens"]) == (0.9, 20)


@pytest.mark.parametrize(("inputs", "field"), [
    ("", "inputs"), ([{"role": "robot", "content": "x"}], "inputs.messages[0].role"),
    ({"messages": [{"role": "user", "content": 3}]}, "inputs.messages[0].content"),
    ({"messages": [{"role": "user", "content": "x"}], "api_key": "y"}, "inputs.api_key"),
])
def test_bad_chat_inputs_are_422_naming_the_field(chat: tuple[GatewayHandle, Overlay],
                                                  inputs: Any, field: str) -> None:
    status, _, body = invoke(chat[0], inputs)
    assert status == 422 and body["error"]["field"] == field


def test_errors_are_retried_when_they_may_pass_and_fail_open(
        chat: tuple[GatewayHandle, Overlay], fake: FakeOpenAI) -> None:
    gw, _ = chat
    before = len(fake.requests)
    status, _, body = invoke(gw, "fail")
    assert status == 502 and body["degraded"] is True and "500" in body["error"]["message"]
    assert len(fake.requests) - before == 3  # the first try and two retries
    before = len(fake.requests)
    status, _, body = invoke(gw, "deny")
    assert status == 502 and "401" in body["error"]["message"]
    assert len(fake.requests) - before == 1  # a refused key is not retried


def test_a_slow_provider_times_out(chat: tuple[GatewayHandle, Overlay]) -> None:
    start = time.perf_counter()
    status, _, body = invoke(chat[0], "slow")
    assert status == 504 and "500 ms" in body["error"]["message"]
    assert time.perf_counter() - start < 1.5


def test_the_api_key_is_never_stored_or_logged(chat: tuple[GatewayHandle, Overlay],
                                               plane: ControlPlane,
                                               caplog: pytest.LogCaptureFixture) -> None:
    gw, _ = chat
    with caplog.at_level(logging.DEBUG):
        invoke(gw, "fail")
        invoke(gw, "hello")
    gw.flush()
    assert KEY not in caplog.text
    registry_root = Path(plane.models.tracking_uri.removeprefix("sqlite:///")).parent
    for folder in {plane.home, registry_root}:
        for path in folder.rglob("*"):
            if path.is_file():
                assert KEY.encode() not in path.read_bytes(), path
    assert KEY not in json.dumps(gw.status())


def test_a_missing_key_is_named_in_the_status(plane: ControlPlane, legacy_url: str) -> None:
    v = plane.models.register("copilot", provider="openai", params={"model": "gpt-4o"},
                              api_key_env="OVERLAY_TEST_UNSET_KEY")
    o = plane.overlays.create("keyless", host=legacy_url, routes={f"copilot:{v.version}": 100})
    with plane.start_gateway(port=0, endpoints={f"copilot:{v.version}": "http://127.0.0.1:9/v1"}
                             ) as gw:
        deadline = time.monotonic() + 10
        while (status := o.status()).state != "failed":
            assert time.monotonic() < deadline, status
            time.sleep(0.05)
        assert "OVERLAY_TEST_UNSET_KEY" in status.message and "not set" in status.message
        assert gw.running
