"""Chat models behind their providers' APIs (issue 5, part): OpenAI-compatible, Anthropic
and Cohere. The wire format is checked with the official ``openai``, ``anthropic`` and
``cohere`` packages' own types on fake upstreams on loopback."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import cohere
import httpx
import openai
import pytest
from gateway_support import ROW
from providers_support import KEY, PROVIDERS, FakeProviders, check_request

from overlay_sdk.client import ControlPlane, Overlay
from overlay_sdk.gateway import GatewayHandle
from overlay_sdk.gateway.backends import _retryable
from overlay_sdk.observe import metrics_frame
from overlay_sdk.telemetry import read_calls


@dataclass
class Chat:
    provider: str
    gw: GatewayHandle
    overlay: Overlay
    env: str


@pytest.fixture(scope="module", params=list(PROVIDERS))
def chat(request: pytest.FixtureRequest, plane: ControlPlane, fake: FakeProviders,
         legacy_url: str) -> Iterator[Chat]:
    provider: str = request.param
    params, path = PROVIDERS[provider]
    env = f"OVERLAY_TEST_{provider.upper()}_KEY"
    os.environ[env] = KEY
    keyed = {"api_key_env": env} if provider != "ollama" else {}  # ollama runs keyless
    v = plane.models.register(f"chat-{provider}", provider=provider, params=params, **keyed)
    name = f"chat-{provider}"
    o = plane.overlays.create(name, host=legacy_url, routes={str(v): 100},
                              slo={"timeoutMs": 500})
    try:
        with plane.start_gateway(port=0, endpoints={str(v): fake.url + path}) as gw:
            gw.wait(o)
            yield Chat(provider, gw, o, env)
    finally:
        plane.overlays.delete(name)
        del os.environ[env]


def invoke(chat: Chat, inputs: Any) -> tuple[int, dict[str, str], Any]:
    async def go() -> tuple[int, dict[str, str], Any]:
        async with aiohttp.ClientSession() as s, s.post(
                f"{chat.gw.url}/_overlay/{chat.overlay.name}/invoke",
                json={"inputs": inputs}) as r:
            return r.status, dict(r.headers), await r.json()
    return asyncio.run(go())


FINISH = {"openai": "stop", "anthropic": "end_turn", "cohere": "COMPLETE", "ollama": "stop"}


def test_a_routed_chat_call(chat: Chat, fake: FakeProviders, plane: ControlPlane) -> None:
    status, headers, body = invoke(chat, "Summarise account 42")
    assert status == 200, body
    assert body["outputs"] == {"content": "echo: Summarise account 42",
                               "finish_reason": FINISH[chat.provider]}
    route = chat.overlay.spec.routes[0]
    assert headers["x-overlay-model-version"] == f"{route.model}:{route.version}"
    provider, sent, sent_headers = fake.requests[-1]
    assert provider == chat.provider
    assert sent["model"] == PROVIDERS[chat.provider][0]["model"]
    assert sent["messages"] == [{"role": "user", "content": "Summarise account 42"}]
    if chat.provider == "anthropic":  # as the official SDK sends it since 2026-10-21
        assert sent_headers["Authorization"] == f"Bearer {KEY}"
        assert sent_headers["anthropic-version"] == "2026-10-21"
        assert sent["max_tokens"] == 512 and "temperature" not in sent
    elif chat.provider == "ollama":
        assert "Authorization" not in sent_headers and sent["temperature"] == 0.2
    else:
        assert sent_headers["Authorization"] == f"Bearer {KEY}" and sent["temperature"] == 0.2
    chat.gw.flush()
    record = read_calls(plane.telemetry_url, overlay=chat.overlay.name).iloc[-1]
    assert (record["tokens_in"], record["tokens_out"]) == (11, 3)
    assert record["input.prompt"] == "Summarise account 42"


def test_messages_and_call_settings(chat: Chat, fake: FakeProviders) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    sampling = {} if chat.provider == "anthropic" else {"temperature": 0.9}
    status, _, body = invoke(chat, {"messages": messages, "max_tokens": 20, "stop": "END",
                                    **sampling})
    assert status == 200 and body["outputs"]["content"] == "echo: Hi"
    _, sent, _ = fake.requests[-1]
    # OpenAI's own API takes the limit as max_completion_tokens (max_tokens is deprecated)
    limit = "max_completion_tokens" if chat.provider == "openai" else "max_tokens"
    assert sent[limit] == 20 and sent.get("temperature") == sampling.get("temperature")
    if chat.provider == "anthropic":  # system text travels apart, stops are a list
        assert sent["system"] == "Be brief." and sent["messages"] == messages[1:]
        assert sent["stop_sequences"] == ["END"]
    elif chat.provider == "cohere":
        assert sent["messages"] == messages and sent["stop_sequences"] == ["END"]
    else:
        assert sent["messages"] == messages and sent["stop"] == "END"


@pytest.mark.parametrize(("inputs", "field"), [
    ("", "inputs"), ([{"role": "robot", "content": "x"}], "inputs.messages[0].role"),
    ({"messages": [{"role": "user", "content": 3}]}, "inputs.messages[0].content"),
    ({"messages": [{"role": "user", "content": "x"}], "api_key": "y"}, "inputs.api_key"),
    ({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"},
     "inputs.temperature"),
    ({"messages": [{"role": "user", "content": "x"}], "max_tokens": -5}, "inputs.max_tokens"),
])
def test_bad_chat_inputs_are_422_naming_the_field(chat: Chat, inputs: Any, field: str) -> None:
    status, _, body = invoke(chat, inputs)
    assert status == 422 and body["error"]["field"] == field


def test_errors_are_retried_when_they_may_pass_and_fail_open(chat: Chat,
                                                             fake: FakeProviders) -> None:
    before = len(fake.requests)
    status, _, body = invoke(chat, "fail")
    assert status == 502 and body["degraded"] is True and "500" in body["error"]["message"]
    assert len(fake.requests) - before == 3  # the first try and two retries
    before = len(fake.requests)
    status, _, body = invoke(chat, "deny")
    assert status == 502 and "401" in body["error"]["message"]
    assert KEY[-4:] not in body["error"]["message"]  # not even the part the provider shows
    assert len(fake.requests) - before == 1  # a refused key is not retried


def test_a_request_the_provider_refuses_is_the_callers_not_the_models(
        chat: Chat, fake: FakeProviders) -> None:
    for _ in range(6):  # past the breaker's threshold
        status, _, body = invoke(chat, "too long")
        assert status == 422 and body["degraded"] is False and "400" in body["error"]["message"]
    status, _, _ = invoke(chat, "hello")
    assert status == 200  # the breaker was not charged for the callers' mistakes
    before = len(fake.requests)
    assert invoke(chat, "overloaded")[0] == 502
    assert len(fake.requests) - before == 3  # 529 (Anthropic: overloaded) is retried


def test_a_rate_limit_is_retried_after_the_time_the_provider_asks(chat: Chat,
                                                                    fake: FakeProviders) -> None:
    start = time.perf_counter()
    status, _, body = invoke(chat, "busy")
    assert status == 200 and body["outputs"]["content"] == "echo: busy"
    assert time.perf_counter() - start >= 0.15  # waited as retry-after-ms said


def test_anthropic_needs_more_than_system_messages(chat: Chat) -> None:
    status, _, body = invoke(chat, [{"role": "system", "content": "Be brief."}])
    if chat.provider == "anthropic":
        assert status == 422 and body["error"]["field"] == "inputs.messages"
    else:
        assert status == 200


def test_a_timeout_stops_the_call_and_its_retries(chat: Chat, fake: FakeProviders) -> None:
    before = len(fake.requests)
    status, _, _ = invoke(chat, "late fail")  # each attempt fails after 0.4 s
    time.sleep(1.2)  # long enough for a third attempt, were the retries still running
    attempts = len(fake.requests) - before
    assert status == 504 and attempts <= 2  # cancelled at 500 ms: no retry outlives it


def test_a_slow_provider_times_out(chat: Chat) -> None:
    start = time.perf_counter()
    status, _, body = invoke(chat, "slow")
    assert status == 504 and "500 ms" in body["error"]["message"]
    assert time.perf_counter() - start < 1.5


def stream(chat: Chat, inputs: Any, **extra: Any
           ) -> tuple[int, dict[str, str], list[tuple[str, Any]] | Any]:
    """A streamed invoke: (status, headers, [(event, data)]) for an event stream, else
    (status, headers, JSON body)."""
    async def go() -> tuple[int, dict[str, str], Any]:
        async with aiohttp.ClientSession() as s, s.post(
                f"{chat.gw.url}/_overlay/{chat.overlay.name}/invoke",
                json={"inputs": inputs, "stream": True, **extra}) as r:
            if r.headers.get("Content-Type", "").startswith("text/event-stream"):
                text = (await r.read()).decode()
                events = []
                for block in text.split("\n\n"):
                    fields = dict(line.split(": ", 1) for line in block.splitlines())
                    if fields:
                        events.append((fields["event"], json.loads(fields["data"])))
                return r.status, dict(r.headers), events
            return r.status, dict(r.headers), await r.json()
    return asyncio.run(go())


def test_the_fake_providers_speak_the_official_clients_protocol(fake: FakeProviders) -> None:
    """The fakes are checked by the providers' own client libraries, streamed and whole."""
    messages = [{"role": "user", "content": "hi there"}]
    with openai.OpenAI(base_url=fake.url + "/v1", api_key=KEY, max_retries=0) as client:
        whole = client.chat.completions.create(model="gpt-4o-mini", messages=messages)  # type: ignore[arg-type]
        assert whole.choices[0].message.content == "echo: hi there"
        chunks = list(client.chat.completions.create(
            model="gpt-4o-mini", messages=messages, stream=True,  # type: ignore[arg-type]
            stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "echo: hi there")
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    with anthropic.Anthropic(base_url=fake.url, api_key=KEY, max_retries=0) as claude, \
            claude.messages.stream(model="claude-fake-1", max_tokens=64,
                                   messages=messages) as events:  # type: ignore[arg-type]
        final = events.get_final_message()
    assert final.content[0].text == "echo: hi there"  # type: ignore[union-attr]
    assert final.usage.output_tokens == 3 and final.stop_reason == "end_turn"
    # their errors are the providers' own: the clients raise their own classes for them
    with openai.OpenAI(base_url=fake.url + "/v1", api_key=KEY, max_retries=0) as client, \
            pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4o-mini", messages=[  # type: ignore[arg-type]
            {"role": "user", "content": "fail"}])
    with anthropic.Anthropic(base_url=fake.url, api_key=KEY, max_retries=0) as claude, \
            pytest.raises(anthropic.AuthenticationError, match="Incorrect API key"):
        claude.messages.create(model="claude-fake-1", max_tokens=64, messages=[  # type: ignore[arg-type]
            {"role": "user", "content": "deny"}])
    with httpx.Client() as http:
        co = cohere.ClientV2(api_key=KEY, base_url=fake.url, httpx_client=http)
        pieces = list(co.chat_stream(model="command-r", messages=messages))  # type: ignore[arg-type]
    text = "".join(e.delta.message.content.text for e in pieces  # type: ignore[union-attr]
                   if e.type == "content-delta")
    assert text == "echo: hi there"


def test_a_streamed_chat_call(chat: Chat, fake: FakeProviders, plane: ControlPlane) -> None:
    status, headers, events = stream(chat, "Summarise account 42")
    assert status == 200, events
    assert headers["Content-Type"].startswith("text/event-stream")
    assert headers["x-overlay-model-version"] == f"chat-{chat.provider}:1"
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "done" and set(kinds[:-1]) == {"delta"} and len(kinds) > 3
    assert "".join(data["content"] for kind, data in events if kind == "delta") == (
        "echo: Summarise account 42")
    done = events[-1][1]
    assert done["finish_reason"] == FINISH[chat.provider]
    assert (done["tokens_in"], done["tokens_out"]) == (11, 3)
    provider, body, _ = fake.requests[-1]
    assert provider == chat.provider and body["stream"] is True
    if chat.provider == "openai":
        assert body["stream_options"] == {"include_usage": True}
    chat.gw.flush()
    last = read_calls(plane.telemetry_url, overlay=chat.overlay.name).iloc[-1]
    assert last["status"] == "ok"
    assert last["output"] == {"content": "echo: Summarise account 42",
                              "finish_reason": FINISH[chat.provider]}
    assert (last["tokens_in"], last["tokens_out"]) == (11, 3)


def test_a_stream_that_fails_before_its_first_piece_is_a_degraded_answer(chat: Chat) -> None:
    status, _, body = stream(chat, "fail")
    # retried twice, then an error (or, on a loaded machine, the 500 ms SLO runs out first)
    assert (status, body["error"]["code"]) in ((502, "model_error"), (504, "model_timeout"))
    assert body["degraded"] is True


def test_a_stream_broken_off_ends_with_an_error_event(chat: Chat, plane: ControlPlane
                                                     ) -> None:
    status, _, events = stream(chat, "break")
    assert status == 200
    assert events[0] == ("delta", {"content": "echo: "})
    kind, data = events[-1]
    assert kind == "error" and data["degraded"] is True
    assert data["error"]["code"] == "model_error"
    chat.gw.flush()
    last = read_calls(plane.telemetry_url, overlay=chat.overlay.name).iloc[-1]
    assert last["status"] == "error"
    assert last["output"]["content"].startswith("echo: ")  # what was said is kept


def test_a_stalled_stream_is_cut_at_the_timeout(chat: Chat) -> None:
    started = time.perf_counter()
    status, _, events = stream(chat, "stall")
    took = time.perf_counter() - started
    assert status == 200
    kind, data = events[-1]
    assert kind == "error" and data["error"]["code"] == "model_timeout"
    assert "stalled" in data["error"]["message"] and "timeoutMs" in data["error"]["message"]
    assert took < 1.5  # timeoutMs is 500


def test_a_caller_leaving_a_stream_is_not_the_models_failure(chat: Chat,
                                                             plane: ControlPlane) -> None:
    async def leave() -> str:
        async with aiohttp.ClientSession() as s, s.post(
                f"{chat.gw.url}/_overlay/{chat.overlay.name}/invoke",
                json={"inputs": "stall", "stream": True}) as r:
            return (await r.content.readany()).decode()  # the first piece, then gone

    first = asyncio.run(leave())
    assert first.startswith("event: delta")
    key = f"chat-{chat.provider}:1"
    deadline = time.monotonic() + 5
    while chat.gw.status()["models"][key]["inFlight"]:
        assert time.monotonic() < deadline, chat.gw.status()["models"][key]
        time.sleep(0.02)
    assert chat.gw.status()["models"][key]["breaker"] == "closed"
    chat.gw.flush()
    last = read_calls(plane.telemetry_url, overlay=chat.overlay.name).iloc[-1]
    assert last["status"] == "aborted" and last["output"]["content"] == "echo: "
    aborted = read_calls(plane.telemetry_url, overlay=chat.overlay.name).query(
        "status == 'aborted'")
    summary = metrics_frame(aborted)  # a call the caller left counts, but not as a failure
    assert summary["calls"].sum() >= 1 and summary["error_rate"].max() == 0


def test_stream_must_be_a_boolean(chat: Chat) -> None:
    status, _, body = stream(chat, "hi", stream="yes")
    assert status == 422 and body["error"]["field"] == "stream"


def test_a_model_that_cannot_stream_says_so(gateway: GatewayHandle, plane: ControlPlane,
                                            legacy_url: str) -> None:
    o = plane.overlays.create("tabular", host=legacy_url, routes={"fraud:1": 100})
    try:
        gateway.wait(o)
        chat = Chat("sklearn", gateway, o, "")
        status, _, body = stream(chat, ROW)
        assert status == 422
        assert body["error"]["field"] == "stream" and "fraud:1" in body["error"]["message"]
    finally:
        plane.overlays.delete("tabular")


def test_the_api_key_is_never_stored_or_logged(chat: Chat, plane: ControlPlane,
                                               caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        invoke(chat, "fail")
        invoke(chat, "deny")
        invoke(chat, "hello")
        stream(chat, "deny")
        stream(chat, "break")
    chat.gw.flush()
    assert KEY not in caplog.text
    registry_root = Path(plane.models.tracking_uri.removeprefix("sqlite:///")).parent
    for folder in {plane.home, registry_root}:
        for path in folder.rglob("*"):
            if path.is_file():
                assert KEY.encode() not in path.read_bytes(), path
    errors = read_calls(plane.telemetry_url, overlay=chat.overlay.name)["error"].dropna()
    assert errors.str.contains("401").any()
    assert not errors.str.contains(KEY[-4:], regex=False).any()  # nor the part shown
    assert KEY not in json.dumps(chat.gw.status())


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


def test_anthropic_refuses_sampling_unless_its_earlier_api_version_is_asked_for(
        chat: Chat, plane: ControlPlane, fake: FakeProviders, legacy_url: str) -> None:
    if chat.provider != "anthropic":
        pytest.skip("Anthropic's API versions")
    status, _, body = invoke(chat, {"messages": [{"role": "user", "content": "Hi"}],
                                    "temperature": 0.3})
    assert status == 422 and body["error"]["field"] == "inputs.temperature"
    assert "2026-10-21" in body["error"]["message"]
    sampled = plane.models.register("claude-sampled", provider="anthropic", api_key_env=chat.env,
                                    params={"model": "claude-sonnet-4-6", "temperature": 0.2})
    legacy = plane.models.register("claude-legacy", provider="anthropic", api_key_env=chat.env,
                                   params={"model": "claude-sonnet-4-6", "temperature": 0.2,
                                           "anthropic_version": "2023-06-01"})
    made = [plane.overlays.create("sampled", host=legacy_url, routes={str(sampled): 100}),
            plane.overlays.create("legacy", host=legacy_url, routes={str(legacy): 100})]
    base = fake.url + "/v1"
    try:
        with plane.start_gateway(port=0, endpoints={str(sampled): base, str(legacy): base}
                                 ) as gw:
            gw.wait(made[1])
            # a registered sampling setting cannot load under the current API version
            deadline = time.monotonic() + 10
            while (status := made[0].status()).state != "failed":
                assert time.monotonic() < deadline, status
                time.sleep(0.05)
            assert "params.temperature" in status.message and "2023-06-01" in status.message
            served = Chat("anthropic", gw, made[1], chat.env)
            status, _, body = invoke(served, {"messages": [{"role": "user", "content": "Hi"}],
                                              "temperature": 0.7})
            assert status == 200, body
            _, sent, headers = fake.requests[-1]
            assert headers["anthropic-version"] == "2023-06-01" and sent["temperature"] == 0.7
            assert "anthropic_version" not in sent
    finally:
        for o in made:
            plane.overlays.delete(o.name)


def test_the_fakes_refuse_what_the_real_apis_refuse() -> None:
    """The fakes' checks can fail: unknown fields, bad roles, wrong names per provider."""
    ok = {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": False}
    current = {"anthropic-version": "2026-10-21"}
    assert check_request("openai", ok, {}) is None
    assert "unknown" in (check_request("openai", {**ok, "stop_sequences": ["x"]}, {}) or "")
    assert check_request("openai", {**ok, "messages": [{"role": "robot", "content": 5}]},
                         {}) is not None
    assert check_request("anthropic", {**ok, "max_tokens": 5}, current) is None
    assert check_request("anthropic", {**ok, "max_tokens": 5, "temperature": 1.0},
                         current) is not None
    assert check_request("anthropic", {**ok, "max_tokens": 5, "temperature": 1.0},
                         {"anthropic-version": "2023-06-01"}) is None
    assert check_request("anthropic", {**ok, "max_tokens": 5, "messages": [
        {"role": "robot", "content": "x"}]}, current) is not None
    assert check_request("anthropic", {**ok, "max_tokens": 5}, {}) is not None  # no version
    assert check_request("cohere", {**ok, "p": 0.5}, {}) is None
    assert check_request("cohere", {**ok, "top_p": 0.5}, {}) is not None


@pytest.mark.parametrize(("status", "headers", "retry"), [
    (500, {}, True), (529, {}, True), (429, {}, True), (408, {}, True), (400, {}, False),
    (401, {}, False), (500, {"x-should-retry": "false"}, False),
    (403, {"x-should-retry": "true"}, True), (200, {"x-should-retry": "true"}, False),
])
def test_providers_say_when_a_retry_may_pass(status: int, headers: dict[str, str],
                                             retry: bool) -> None:
    assert _retryable(status, headers) is retry
