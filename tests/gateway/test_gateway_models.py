"""The invoke endpoint, model backends, fail-open and the shadow queue (issue 4)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from gateway_support import ROW, invoke_body

from overlay_sdk.client import ControlPlane, Overlay
from overlay_sdk.gateway import GatewayHandle
from overlay_sdk.routing import plan
from overlay_sdk.telemetry import read_calls


def call(gw: GatewayHandle, overlay: str, body: bytes | None = None, *,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    async def go() -> tuple[int, dict[str, str], Any]:
        async with aiohttp.ClientSession() as s, s.post(
                f"{gw.url}/_overlay/{overlay}/invoke", data=body or invoke_body(),
                headers={"Content-Type": "application/json", **(headers or {})}) as r:
            return r.status, dict(r.headers), await r.json(content_type=None)
    return asyncio.run(go())


@pytest.fixture(scope="module")
def overlays(plane: ControlPlane, gateway: GatewayHandle, legacy_url: str
             ) -> Iterator[dict[str, Overlay]]:
    made = {
        "split": plane.overlays.create(
            "split", host=legacy_url, routes={"fraud:1": 50, "fraud:2": 50},
            sticky={"header": "x-user-id"}),
        "broken": plane.overlays.create(
            "broken", host=legacy_url, routes={"broken:1": 100}, slo={"timeoutMs": 300}),
        "hang": plane.overlays.create(
            "hang", host=legacy_url, routes={"hang:1": 100}, slo={"timeoutMs": 200}),
    }
    for o in made.values():
        gateway.wait(o)
    yield made


def test_invoke_routes_by_the_plan_and_names_the_version(gateway: GatewayHandle,
                                                          overlays: dict[str, Overlay]) -> None:
    o = overlays["split"]
    expected = plan(o.spec, overlay=o.name, revision=o.revision)
    seen = set()
    for user in ("ada", "grace", "alan", "edsger", "barbara", "ken"):
        for _ in range(2):  # the same key always gets the same version
            status, headers, body = call(gateway, "split", headers={"x-user-id": user})
            assert status == 200, body
            assert headers["x-overlay-model-version"] == expected.version_for(user)
            assert body["version"] == expected.version_for(user)
            assert body["outputs"] in ([0], [1])
            seen.add(body["version"])
    assert seen == {"fraud:1", "fraud:2"}


def test_spoofed_overlay_headers_do_not_steer_routing(gateway: GatewayHandle,
                                                      overlays: dict[str, Overlay]) -> None:
    o = overlays["split"]
    want = plan(o.spec, overlay=o.name, revision=o.revision).version_for("ada")
    other = "fraud:2" if want == "fraud:1" else "fraud:1"
    _, headers, _ = call(gateway, "split", headers={
        "x-user-id": "ada", "x-overlay-version": other, "X-Overlay-Model-Version": other})
    assert headers["x-overlay-model-version"] == want


def test_inputs_are_checked_against_the_signature(gateway: GatewayHandle,
                                                  overlays: dict[str, Overlay]) -> None:
    status, _, body = call(gateway, "split", json.dumps(
        {"inputs": {"amount": 1.0, "velocity": 2.0}}).encode())
    assert status == 422
    assert body["error"]["field"] == "inputs"
    assert "age_days" in body["error"]["message"] and "risk_score" in body["error"]["message"]
    status, _, body = call(gateway, "split", invoke_body(amount="lots"))
    assert status == 422 and body["error"]["field"] == "inputs.amount"
    status, _, body = call(gateway, "split", b"{not json")
    assert status == 400 and "JSON" in body["error"]["message"]
    status, _, body = call(gateway, "split", b'{"rows": []}')
    assert status == 422 and body["error"]["field"] == "inputs"
    # ints for double features, lists of records and columns all work
    rows = [ROW, {**ROW, "amount": 5}]
    for inputs in (rows, {k: [r[k] for r in rows] for k in ROW}):
        status, _, body = call(gateway, "split", json.dumps({"inputs": inputs}).encode())
        assert status == 200 and len(body["outputs"]) == 2


def test_unknown_overlay_is_404_naming_those_served(gateway: GatewayHandle,
                                                   overlays: dict[str, Overlay]) -> None:
    status, _, body = call(gateway, "nope")
    assert status == 404 and "split" in body["error"]["message"]


def test_failing_model_gives_a_degraded_answer_then_the_breaker_opens(
        gateway: GatewayHandle, overlays: dict[str, Overlay]) -> None:
    status, headers, body = call(gateway, "broken")
    assert status == 502 and body["degraded"] is True
    assert "division by zero" in body["error"]["message"]
    assert headers["x-overlay-model-version"] == "broken:1"
    for _ in range(5):
        call(gateway, "broken")
    start = time.perf_counter()
    status, _, body = call(gateway, "broken")
    assert status == 503 and "circuit open" in body["error"]["message"]
    assert time.perf_counter() - start < 0.2  # refused at once, no model call


def test_hanging_model_fails_within_the_timeout(gateway: GatewayHandle,
                                                overlays: dict[str, Overlay]) -> None:
    start = time.perf_counter()
    status, _, body = call(gateway, "hang")
    elapsed = time.perf_counter() - start
    assert status == 504 and "200 ms" in body["error"]["message"]
    assert 0.19 < elapsed < 0.6


def test_host_traffic_is_untouched_when_every_model_fails(
        gateway: GatewayHandle, overlays: dict[str, Overlay], legacy_url: str) -> None:
    async def both(path: str, method: str = "GET", data: bytes | None = None
                   ) -> list[tuple[int, bytes, dict[str, str]]]:
        out = []
        async with aiohttp.ClientSession() as s:
            for base in (legacy_url, gateway.url):
                async with s.request(method, base + path, data=data,
                                     headers={"Host": "hang.localhost"}) as r:
                    kept = {k: v for k, v in r.headers.items()
                            if k not in ("Date", "Via", "Server", "Connection")}
                    out.append((r.status, await r.read(), kept))
        return out

    for _ in range(6):  # the breakers of broken and hang are open by now, or soon
        call(gateway, "hang")
    for path, method, data in (("/api/customers", "GET", None), ("/crm/customers/1", "GET", None),
                               ("/api/score", "POST", json.dumps(ROW).encode()),
                               ("/no/such/page", "GET", None)):
        direct, through = asyncio.run(both(path, method, data))
        assert through == direct, path


def test_calls_are_recorded_in_telemetry(plane: ControlPlane, gateway: GatewayHandle,
                                         overlays: dict[str, Overlay]) -> None:
    before = len(read_calls(plane.telemetry_url, overlay="split"))
    call(gateway, "split", headers={"x-user-id": "ada", "traceparent":
                                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
    gateway.flush()
    calls = read_calls(plane.telemetry_url, overlay="split")
    assert len(calls) == before + 1
    last = calls.iloc[-1]
    assert last["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert last["role"] == "primary" and last["status"] == "ok" and last["source"] == "invoke"
    assert last["input.amount"] == ROW["amount"]
    assert last["latency_ms"] > 0


class ScoringServer:
    """A model container speaking MLflow's scoring protocol, on a thread's event loop."""

    def __init__(self) -> None:
        self.requests: list[Any] = []
        self.loop = asyncio.new_event_loop()
        self.runner: Any = None
        self.url = ""

    async def _start(self) -> None:
        from aiohttp import web

        async def health(_: web.Request) -> web.Response:
            return web.json_response({"status": "ok"})

        async def invocations(request: web.Request) -> web.Response:
            body = await request.json()
            self.requests.append(body)
            rows = body["dataframe_split"]["data"]
            return web.json_response({"predictions": [len(r) for r in rows]})

        app = web.Application()
        app.router.add_get("/health", health)
        app.router.add_post("/invocations", invocations)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    def start(self) -> None:
        import threading

        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def test_a_container_model_is_called_over_http_and_fails_open_when_it_goes_away(
        plane: ControlPlane, legacy_url: str) -> None:
    server = ScoringServer()
    server.start()
    try:
        o = plane.overlays.create("container", host=legacy_url, routes={"scorer:1": 100},
                                  slo={"timeoutMs": 500})
        with plane.start_gateway(port=0, endpoints={"scorer:1": server.url}) as gw:
            gw.wait(o)
            status, headers, body = call(gw, "container")
            assert status == 200 and body["outputs"] == [4]
            assert headers["x-overlay-model-version"] == "scorer:1"
            sent = server.requests[-1]["dataframe_split"]
            assert dict(zip(sent["columns"], sent["data"][0], strict=True)) == ROW
            server.stop()  # the container goes away: connections are refused
            start = time.perf_counter()
            status, _, body = call(gw, "container")
            assert time.perf_counter() - start < 0.5
            assert status == 502 and body["degraded"] is True
            assert "scorer:1" in body["error"]["message"]
            assert "Connect" in body["error"]["message"]  # aiohttp's ClientConnectorError

            async def host() -> int:
                async with aiohttp.ClientSession() as s, s.get(
                        gw.url + "/api/customers", headers={"Host": "container.localhost"}) as r:
                    return r.status

            assert asyncio.run(host()) == 200
    finally:
        server.close()
