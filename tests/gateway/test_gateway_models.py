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
    gateway.gateway._telemetry.flush()  # type: ignore[union-attr]
    calls = read_calls(plane.telemetry_url, overlay="split")
    assert len(calls) == before + 1
    last = calls.iloc[-1]
    assert last["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert last["role"] == "primary" and last["status"] == "ok" and last["source"] == "invoke"
    assert last["input.amount"] == ROW["amount"]
    assert last["latency_ms"] > 0
