"""What keeps the gateway and its host safe when things go wrong (issue 4 review)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from gateway_support import STALL, invoke_body

from overlay_sdk.client import ControlPlane, Overlay
from overlay_sdk.errors import ValidationError
from overlay_sdk.gateway import GatewayHandle
from overlay_sdk.routing import RoutePlan, plan
from overlay_sdk.telemetry import read_calls


def plan_of(o: Overlay) -> RoutePlan:
    return plan(o.spec, overlay=o.name, revision=o.revision)


async def _post(url: str, **kwargs: object) -> tuple[int, dict[str, object] | str]:
    async with aiohttp.ClientSession() as s, s.post(url, **kwargs) as r:  # type: ignore[arg-type]
        text = await r.text()
        try:
            return r.status, json.loads(text)
        except ValueError:
            return r.status, text


def test_a_restarted_or_second_gateway_routes_every_key_alike(
        plane: ControlPlane, gateway: GatewayHandle, legacy_url: str) -> None:
    o = plane.overlays.create("steady", host=legacy_url, routes={"fraud:1": 80, "fraud:2": 20})
    gateway.wait(o)
    o.set_traffic({"fraud:1": 70, "fraud:2": 30})
    o.set_traffic({"fraud:1": 40, "fraud:2": 60})
    o.set_traffic({"fraud:1": 55, "fraud:2": 45})
    gateway.wait(o)
    followed = gateway.gateway.directory.overlays["steady"].plan
    assert followed.assignment != plan_of(o).assignment  # a fresh plan would differ
    with plane.start_gateway(port=0) as second:  # from the plan the first one kept
        second.wait(o)
        from_kept = second.gateway.directory.overlays["steady"].plan
    with sqlite3.connect(plane.home / "gateway.db") as db:
        db.execute("DELETE FROM plans")  # nothing kept: the whole history is replayed
    db.close()
    with plane.start_gateway(port=0) as third:
        third.wait(o)
        replayed = third.gateway.directory.overlays["steady"].plan
    assert from_kept.assignment == replayed.assignment == followed.assignment
    assert replayed.weights() == {"fraud:1": 55, "fraud:2": 45}


def test_a_health_check_that_hangs_fails_the_version_and_blocks_nobody(
        plane: ControlPlane, legacy_url: str) -> None:
    STALL.set()
    try:
        stuck = plane.overlays.create("stalled", host=legacy_url, routes={"stall:1": 100})
        fine = plane.overlays.create("unhurried", host=legacy_url, routes={"fraud:2": 100})
        with plane.start_gateway(port=0, load_timeout=1.0) as gw:
            gw.wait(fine, timeout=10)  # loads beside the hanging one
            deadline = time.monotonic() + 10
            while (status := stuck.status()).state != "failed":
                assert time.monotonic() < deadline, status
                time.sleep(0.05)
            assert "within 1 s (load_timeout)" in status.message
            assert "retrying" not in status.message  # a retry would leave another thread hung
            code, body = asyncio.run(_post(f"{gw.url}/_overlay/stalled/invoke",
                                           data=invoke_body()))
            assert code == 503 and "stall:1" in str(body)
    finally:
        STALL.clear()


def test_a_hung_model_thread_does_not_keep_the_process_alive(tmp_path: Path) -> None:
    script = (
        "import time\n"
        "from overlay_sdk.gateway.threads import DaemonExecutor\n"
        "pool = DaemonExecutor(2, 'model')\n"
        "pool.submit(time.sleep, 120)\n"
        "assert pool.submit(sum, [1, 2]).result(5) == 3\n"
        "pool.shutdown(wait=False)\n"
    )
    start = time.monotonic()
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60, cwd=tmp_path)
    assert time.monotonic() - start < 20


def test_stop_returns_promptly_with_a_stream_open(plane: ControlPlane, legacy_url: str) -> None:
    o = plane.overlays.create("streaming", host=legacy_url, routes={"fraud:1": 100})
    gw = plane.start_gateway(port=0)
    gw.wait(o)
    opened = threading.Event()

    async def listen() -> None:
        async with aiohttp.ClientSession() as s, s.get(
                f"{gw.url}/api/events?count=1000&gap=0.5",
                headers={"Host": "streaming.localhost"}) as r:
            opened.set()
            async for _ in r.content.iter_any():
                pass

    def run() -> None:
        with contextlib.suppress(aiohttp.ClientError):  # cut off by the stop
            asyncio.run(listen())

    listener = threading.Thread(target=run, daemon=True)
    listener.start()
    assert opened.wait(10)
    start = time.monotonic()
    gw.stop()
    assert time.monotonic() - start < 10 and not gw.running
    listener.join(10)


def test_a_host_dying_mid_stream_cuts_the_answer_instead_of_faking_one(
        plane: ControlPlane, gateway: GatewayHandle, echo_url: str) -> None:
    o = plane.overlays.create("dying", host=echo_url, routes={"fraud:1": 100})
    gateway.wait(o)

    async def read() -> tuple[int, bytes, BaseException | None]:
        got = b""
        async with aiohttp.ClientSession() as s, s.get(
                f"{gateway.url}/broken-stream", headers={"Host": "dying.localhost"}) as r:
            try:
                async for chunk in r.content.iter_any():
                    got += chunk
            except aiohttp.ClientPayloadError as err:
                return r.status, got, err
            return r.status, got, None

    status, body, error = asyncio.run(read())
    assert status == 200 and body == b"first part;"
    assert error is not None  # the client learns the answer is incomplete
    plane.overlays.delete("dying")


@pytest.fixture(scope="module")
def forking(plane: ControlPlane, gateway: GatewayHandle, echo_url: str) -> Iterator[Overlay]:
    o = plane.overlays.create("forking", host=echo_url, mode="shadow", routes={"broken:1": 100},
                              match={"method": "POST", "path": "/echo/*"},
                              telemetry={"redact": ["email"]})
    gateway.wait(o)
    yield o
    plane.overlays.delete("forking")


def test_a_streamed_upload_on_a_forked_path_reaches_the_host_whole(
        gateway: GatewayHandle, forking: Overlay) -> None:
    size = 3 * 1024 * 1024  # past the gateway's own 1 MiB limit for bodies it reads

    async def body() -> AsyncIterator[bytes]:
        for _ in range(size // 65536):
            yield b"x" * 65536

    before = gateway.status()["shadow"]["unforked"]
    code, seen = asyncio.run(_post(f"{gateway.url}/echo/upload", data=body(),
                                   headers={"Host": "forking.localhost"}))
    assert code == 200 and isinstance(seen, dict) and seen["length"] == size
    assert gateway.status()["shadow"]["unforked"] == before + 1


def test_a_failing_model_in_shadow_mode_leaves_host_answers_alone(
        plane: ControlPlane, gateway: GatewayHandle, forking: Overlay, echo_url: str) -> None:
    payload = {"amount": 1.0, "email": "ada@example.com"}
    direct = asyncio.run(_post(f"{echo_url}/echo/score", json=payload))
    through = asyncio.run(_post(f"{gateway.url}/echo/score", json=payload,
                                headers={"Host": "forking.localhost"}))
    assert through[0] == direct[0] == 200
    assert isinstance(through[1], dict) and isinstance(direct[1], dict)
    assert through[1]["body"] == direct[1]["body"]  # the host got the request unchanged
    gateway.flush()
    deadline = time.monotonic() + 5
    while not len(calls := read_calls(plane.telemetry_url, overlay="forking")):
        assert time.monotonic() < deadline
        time.sleep(0.05)
        gateway.flush()
    record = calls.iloc[-1]
    assert record["status"] == "error" and "division by zero" in record["error"]
    assert record["host_status"] == 200
    assert record["host_output"]["path"] == "/echo/score"  # the host's own answer, kept
    assert record["input.email"] == "***"


def test_odd_tokens_and_methods_get_clear_answers(plane: ControlPlane, legacy_url: str) -> None:
    o = plane.overlays.create("guarded", host=legacy_url, routes={"fraud:1": 100})
    with plane.start_gateway(port=0, token="s3cret-token") as gw:
        gw.wait(o)
        code, _ = asyncio.run(_post(f"{gw.url}/_overlay/guarded/invoke", data=invoke_body(),
                                    headers={"Authorization": "Bearer s3crét-tökén"}))
        assert code == 401

        async def get() -> tuple[int, str | None]:
            async with aiohttp.ClientSession() as s, s.get(
                    f"{gw.url}/_overlay/guarded/invoke",
                    headers={"Authorization": "Bearer s3cret-token"}) as r:
                return r.status, r.headers.get("Allow")

        assert asyncio.run(get()) == (405, "POST")


@pytest.mark.parametrize(("option", "value"), [
    ("shadow_queue", 0), ("shadow_workers", 0), ("max_in_flight", 0),
    ("threads_per_version", 0), ("breaker_cooldown", 0), ("load_timeout", -1),
])
def test_gateway_options_that_cannot_work_are_refused(plane: ControlPlane, option: str,
                                                      value: float) -> None:
    with pytest.raises(ValidationError, match=option):
        plane.start_gateway(port=0, **{option: value})


def test_a_websocket_upgrade_the_host_refuses_keeps_the_host_status(
        plane: ControlPlane, gateway: GatewayHandle, legacy_url: str) -> None:
    o = plane.overlays.create("nows", host=legacy_url, routes={"fraud:1": 100})
    gateway.wait(o)

    async def connect() -> int:
        async with aiohttp.ClientSession() as s:
            try:
                async with s.ws_connect(f"{gateway.url}/no/such/socket",
                                        headers={"Host": "nows.localhost"}):
                    return 101
            except aiohttp.WSServerHandshakeError as err:
                return err.status

    assert asyncio.run(connect()) == 404
    plane.overlays.delete("nows")


def test_a_refused_upgrade_keeps_the_host_headers(plane: ControlPlane, gateway: GatewayHandle,
                                                  echo_url: str) -> None:
    o = plane.overlays.create("authws", host=echo_url, routes={"fraud:1": 100})
    gateway.wait(o)

    async def connect() -> tuple[int, str | None]:
        async with aiohttp.ClientSession() as s:
            try:
                async with s.ws_connect(f"{gateway.url}/ws-auth",
                                        headers={"Host": "authws.localhost"}):
                    return 101, None
            except aiohttp.WSServerHandshakeError as err:
                assert err.headers is not None
                return err.status, err.headers.get("WWW-Authenticate")

    assert asyncio.run(connect()) == (401, 'Bearer realm="crm"')  # as the host said it
    plane.overlays.delete("authws")
