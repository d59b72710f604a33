"""Passthrough acceptance (issue 4): host traffic goes through the gateway unchanged.

Three overlays on three hosts share this module's gateway: ``proxy-echo`` (the echoing
host), ``proxy-legacy`` (the sample legacy app) and ``proxy-down`` (a closed port). With
several hosts, every request selects one with ``Host: <overlay>.localhost:<port>``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict
from yarl import URL

from overlay_sdk.client import ControlPlane, Overlay
from overlay_sdk.gateway import GatewayHandle
from overlay_sdk.routing import plan

VIA = "1.1 overlay-gateway"
ROUTES = {"fraud:1": 50, "fraud:2": 50}
# fields that differ between two answers to the same request, or are per connection
PER_HOP = frozenset({"date", "via", "connection", "keep-alive", "transfer-encoding"})


@dataclass
class Reply:
    status: int
    headers: CIMultiDict[str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


def _session() -> aiohttp.ClientSession:
    # no cookie jar: the echo host's Set-Cookie must not come back as a Cookie header
    return aiohttp.ClientSession(auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar())


async def _fetch(method: str, url: str, *, host: str | None = None,
                 headers: Iterable[tuple[str, str]] = (), data: Any = None) -> Reply:
    sent: CIMultiDict[str] = CIMultiDict(headers)
    if host is not None:
        sent["Host"] = host
    async with _session() as s, s.request(method, URL(url, encoded=True), headers=sent,
                                          data=data, allow_redirects=False) as r:
        return Reply(r.status, CIMultiDict(r.headers), await r.read())


def fetch(method: str, url: str, *, host: str | None = None,
          headers: Iterable[tuple[str, str]] = (), data: Any = None) -> Reply:
    """One request with a fresh client; the raw URL is sent as written (no re-encoding)."""
    return asyncio.run(_fetch(method, url, host=host, headers=headers, data=data))


def seen(reply: Reply) -> dict[str, Any]:
    """What the echo host received, with its headers as a case-insensitive multidict."""
    doc = reply.json()
    doc["headers"] = CIMultiDict((k, v) for k, v in doc["headers"])
    doc["bytes"] = doc["body"].encode("latin-1")
    return doc


def end_to_end(headers: CIMultiDict[str]) -> list[tuple[str, str]]:
    """The end-to-end fields by name; fields of one name keep their order (only that order
    carries meaning, RFC 9110 section 5.3)."""
    fields = [(k.lower(), v) for k, v in headers.items() if k.lower() not in PER_HOP]
    return sorted(fields, key=lambda field: field[0])


@dataclass
class Setup:
    gw: GatewayHandle
    port: int
    echo_url: str
    legacy_url: str
    down_url: str
    overlays: dict[str, Overlay]

    def host(self, name: str) -> str:
        return f"{name}.localhost:{self.port}"

    @property
    def echo(self) -> str:
        return self.host("proxy-echo")

    @property
    def legacy(self) -> str:
        return self.host("proxy-legacy")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def setup(plane: ControlPlane, gateway: GatewayHandle, echo_url: str, legacy_url: str
          ) -> Iterator[Setup]:
    down_url = f"http://127.0.0.1:{_closed_port()}"
    made = {
        "proxy-echo": plane.overlays.create("proxy-echo", host=echo_url, mode="passthrough",
                                            routes=ROUTES, sticky={"header": "x-user-id"}),
        "proxy-legacy": plane.overlays.create("proxy-legacy", host=legacy_url,
                                              mode="passthrough", routes=ROUTES),
        "proxy-down": plane.overlays.create("proxy-down", host=down_url, mode="passthrough",
                                            routes=ROUTES),
    }
    for o in made.values():
        gateway.wait(o)
    port = URL(gateway.url).port
    assert port is not None
    yield Setup(gateway, port, echo_url, legacy_url, down_url, made)


# -- everything not claimed is proxied unchanged -------------------------------------------

@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_method_raw_path_query_and_body_reach_the_host_unchanged(setup: Setup,
                                                                 method: str) -> None:
    path = "/echo/a%2Fb/c%20d?x=1&x=2&y=%2F&z=a+b&empty=&u=%C3%A9"
    body = f"{method} body \x00\xff".encode("latin-1") + os.urandom(64)
    reply = fetch(method, setup.gw.url + path, host=setup.echo, data=body,
                  headers=[("Content-Type", "application/octet-stream")])
    assert reply.status == 200, reply.body
    got = seen(reply)
    assert got["method"] == method
    assert got["path"] == path
    assert got["bytes"] == body


@pytest.mark.parametrize("status", [201, 404, 500, 503])
def test_host_status_codes_come_back(setup: Setup, status: int) -> None:
    reply = fetch("POST", f"{setup.gw.url}/echo?status={status}", host=setup.echo, data=b"{}")
    assert reply.status == status
    assert seen(reply)["path"] == f"/echo?status={status}"


def test_legacy_host_404_comes_back_with_its_body(setup: Setup) -> None:
    reply = fetch("GET", f"{setup.gw.url}/api/nothing-here", host=setup.legacy)
    assert reply.status == 404
    assert reply.json() == {"error": "no route /api/nothing-here"}
    assert reply.headers["X-Legacy-App"] == "acme-crm"


def test_end_to_end_response_headers_pass_and_hop_by_hop_ones_do_not(setup: Setup) -> None:
    direct = fetch("GET", f"{setup.echo_url}/echo")
    # the host really sends them (else this test proves nothing)
    assert direct.headers["X-Hop"] == "must go" and "Keep-Alive" in direct.headers
    reply = fetch("GET", f"{setup.gw.url}/echo", host=setup.echo)
    assert reply.status == 200
    assert reply.headers.getall("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]
    assert reply.headers["X-Host-Header"] == "kept"
    assert reply.headers["Content-Type"].startswith("application/json")
    assert "X-Hop" not in reply.headers
    assert "Keep-Alive" not in reply.headers
    assert "x-hop" not in reply.headers.get("Connection", "").lower()
    assert reply.headers.getall("Via") == [VIA]


def test_request_hop_by_hop_headers_are_dropped_end_to_end_ones_pass(setup: Setup) -> None:
    sent = [
        ("Connection", "X-Foo"), ("X-Foo", "hop secret"), ("TE", "trailers"),
        ("Keep-Alive", "timeout=5"), ("Proxy-Connection", "keep-alive"),
        ("Authorization", "Bearer host-token"), ("Cookie", "session=abc; theme=dark"),
        ("X-Custom", "custom value"), ("X-Multi", "one"), ("X-Multi", "two"),
    ]
    got = seen(fetch("GET", f"{setup.gw.url}/echo", host=setup.echo, headers=sent))["headers"]
    for hop in ("X-Foo", "TE", "Keep-Alive", "Proxy-Connection"):
        assert hop not in got, f"hop-by-hop {hop} reached the host"
    assert "x-foo" not in got.get("Connection", "").lower()
    assert got.getall("Authorization") == ["Bearer host-token"]
    assert got.getall("Cookie") == ["session=abc; theme=dark"]
    assert got.getall("X-Custom") == ["custom value"]
    assert got.getall("X-Multi") == ["one", "two"]


def test_forwarding_headers_are_added(setup: Setup) -> None:
    got = seen(fetch("GET", f"{setup.gw.url}/echo", host=setup.echo))["headers"]
    assert got.getall("X-Forwarded-For") == ["127.0.0.1"]
    assert got.getall("X-Forwarded-Proto") == ["http"]
    assert got.getall("X-Forwarded-Host") == [setup.echo]
    assert got.getall("Via") == [VIA]
    # the outbound Host is the host application's own authority
    assert got["Host"] == URL(setup.echo_url).raw_authority


def test_forwarding_headers_extend_a_chain_from_an_earlier_proxy(setup: Setup) -> None:
    sent = [("X-Forwarded-For", "203.0.113.7"), ("Via", "1.1 edge"),
            ("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "crm.example.com")]
    got = seen(fetch("GET", f"{setup.gw.url}/echo", host=setup.echo, headers=sent))["headers"]
    assert got.getall("X-Forwarded-For") == ["203.0.113.7, 127.0.0.1"]
    assert got.getall("Via") == [f"1.1 edge, {VIA}"]
    assert got.getall("X-Forwarded-Proto") == ["https"]
    assert got.getall("X-Forwarded-Host") == ["crm.example.com"]


def test_a_1mb_upload_arrives_byte_identical(setup: Setup) -> None:
    body = os.urandom(1 << 20)
    got = seen(fetch("POST", f"{setup.gw.url}/echo", host=setup.echo, data=body))
    assert got["length"] == len(body)
    assert got["bytes"] == body


def test_a_chunked_upload_arrives_whole(setup: Setup) -> None:
    pieces = [os.urandom(48 * 1024) for _ in range(12)]

    async def produce() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece
            await asyncio.sleep(0.005)

    async def go() -> Reply:
        return await _fetch("PUT", f"{setup.gw.url}/echo/chunked", host=setup.echo,
                            data=produce())

    got = seen(asyncio.run(go()))
    assert got["method"] == "PUT"
    assert "Content-Length" not in got["headers"]  # it did arrive chunked
    assert got["bytes"] == b"".join(pieces)


def test_a_1mb_download_arrives_byte_identical_with_its_length(setup: Setup) -> None:
    size = 1 << 20
    reply = fetch("GET", f"{setup.gw.url}/big?size={size}", host=setup.echo)
    assert reply.status == 200
    assert reply.body == bytes(range(256)) * (size // 256)
    assert reply.headers["Content-Length"] == str(size)
    assert reply.headers["Content-Type"] == "application/x-bin"


def test_head_keeps_the_hosts_content_length(setup: Setup) -> None:
    direct = fetch("HEAD", f"{setup.echo_url}/big?size=4096")
    reply = fetch("HEAD", f"{setup.gw.url}/big?size=4096", host=setup.echo)
    assert direct.headers["Content-Length"] == "4096"
    assert reply.status == 200
    assert reply.headers["Content-Length"] == "4096"
    assert reply.body == b""


@pytest.mark.parametrize("target,path", [
    ("legacy", "/api/customers"),
    ("legacy", "/crm/customers/2"),
    ("legacy", "/crm/customers/99"),
    ("legacy", "/"),
    ("echo", "/big?size=2048"),
    ("echo", "/big?size=1048576"),
])
def test_the_gateway_answers_as_the_host_does(setup: Setup, target: str, path: str) -> None:
    base = setup.legacy_url if target == "legacy" else setup.echo_url
    host = setup.legacy if target == "legacy" else setup.echo
    direct = fetch("GET", base + path)
    reply = fetch("GET", setup.gw.url + path, host=host)
    assert reply.status == direct.status
    assert reply.body == direct.body
    assert end_to_end(reply.headers) == end_to_end(direct.headers)
    assert reply.headers["Via"] == VIA


# -- spoofed x-overlay-* headers --------------------------------------------------------------

USERS = ["ada", "grace", "alan", "edsger", "barbara", "ken", "margaret", "linus"]


@pytest.mark.parametrize("spoof", [
    [],
    [("x-overlay-version", "fraud:1")],
    [("X-Overlay-Version", "fraud:2"), ("x-overlay-version", "evil:9")],
    [("X-Overlay-Model-Version", "fraud:1"), ("x-overlay-anything", "steer"),
     ("X-OVERLAY-REVISION", "99")],
])
def test_the_host_sees_exactly_the_planned_version_whatever_the_client_sends(
        setup: Setup, spoof: list[tuple[str, str]]) -> None:
    o = setup.overlays["proxy-echo"]
    expected = plan(o.spec, overlay=o.name, revision=o.revision)
    assert set(expected.version_for(u) for u in USERS) == {"fraud:1", "fraud:2"}
    for user in USERS:
        got = seen(fetch("GET", f"{setup.gw.url}/echo", host=setup.echo,
                         headers=[("x-user-id", user), *spoof]))["headers"]
        overlay_fields = [(k.lower(), v) for k, v in got.items()
                          if k.lower().startswith("x-overlay-")]
        assert overlay_fields == [("x-overlay-version", expected.version_for(user))], user


def test_without_a_sticky_key_the_host_sees_one_routed_version(setup: Setup) -> None:
    got = seen(fetch("GET", f"{setup.gw.url}/echo", host=setup.echo,
                     headers=[("x-overlay-version", "evil:9")]))["headers"]
    assert len(got.getall("x-overlay-version")) == 1
    assert got["x-overlay-version"] in ROUTES


# -- streaming is relayed unbuffered ---------------------------------------------------------

async def _arrivals(url: str, host: str) -> tuple[Reply, list[tuple[float, bytes]]]:
    """The response and each piece of its body with its arrival time (s after the request)."""
    pieces: list[tuple[float, bytes]] = []
    async with _session() as s:
        start = time.monotonic()
        async with s.get(url, headers={"Host": host}) as r:
            async for chunk in r.content.iter_any():
                pieces.append((time.monotonic() - start, chunk))
            return Reply(r.status, CIMultiDict(r.headers), b"".join(p for _, p in pieces)), pieces


def _arrival_of(pieces: list[tuple[float, bytes]], marker: bytes) -> float:
    """When the piece completing the first occurrence of ``marker`` arrived."""
    so_far = b""
    for at, piece in pieces:
        so_far += piece
        if marker in so_far:
            return at
    raise AssertionError(f"{marker!r} never arrived")


def test_a_chunked_stream_arrives_as_the_host_produces_it(setup: Setup) -> None:
    # the legacy app writes "chunk i\n" 5 times, 0.2 s apart
    reply, pieces = asyncio.run(_arrivals(f"{setup.gw.url}/api/stream", setup.legacy))
    assert reply.status == 200
    assert reply.body == b"".join(f"chunk {i}\n".encode() for i in range(5))
    times = [_arrival_of(pieces, f"chunk {i}\n".encode()) for i in range(5)]
    end = pieces[-1][0]
    assert times[0] < end - 0.5, f"first chunk at {times[0]:.2f} s, stream ended {end:.2f} s"
    for earlier, later in itertools.pairwise(times):
        assert later - earlier > 0.1, f"chunks bunched up: {times}"


def test_server_sent_events_arrive_one_by_one(setup: Setup) -> None:
    reply, pieces = asyncio.run(_arrivals(f"{setup.gw.url}/api/events", setup.legacy))
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "text/event-stream"
    assert reply.headers["Cache-Control"] == "no-cache"
    events = [f'id: {i}\nevent: tick\ndata: {{"n": {i}}}\n\n'.encode() for i in range(5)]
    assert reply.body == b"".join(events)
    times = [_arrival_of(pieces, event) for event in events]
    assert times[0] < pieces[-1][0] - 0.5
    for earlier, later in itertools.pairwise(times):
        assert later - earlier > 0.1, f"events bunched up: {times}"


# -- WebSocket -----------------------------------------------------------------------------------

def test_websocket_echo_through_the_gateway(setup: Setup) -> None:
    big = os.urandom(200 * 1024)

    async def go() -> tuple[str | None, list[Any]]:
        async with _session() as s, s.ws_connect(
                f"{setup.gw.url}/ws/echo", protocols=("crm.v2", "crm.v1"),
                headers={"Host": setup.legacy}, max_msg_size=0) as ws:
            got: list[Any] = []
            await ws.send_str("hello, héllo")
            got.append(await ws.receive_str(timeout=5))
            await ws.send_bytes(b"\x00\x01\xfe\xff")
            got.append(await ws.receive_bytes(timeout=5))
            await ws.send_bytes(big)
            got.append(await ws.receive_bytes(timeout=5))
            await ws.send_str("z" * 200 * 1024)
            got.append(await ws.receive_str(timeout=5))
            return ws.protocol, got

    protocol, got = asyncio.run(go())
    assert protocol == "crm.v2"  # what the host chose of the client's offer
    assert got == ["hello, héllo", b"\x00\x01\xfe\xff", big, "z" * 200 * 1024]



def test_websocket_close_codes_pass_both_ways(setup: Setup) -> None:
    async def client_closes() -> int | None:
        async with _session() as s, s.ws_connect(
                f"{setup.gw.url}/ws/echo", headers={"Host": setup.legacy}) as ws:
            await ws.send_str("bye")
            assert await ws.receive_str(timeout=5) == "bye"
            await ws.close(code=4001)
            return ws.close_code

    async def host_closes() -> tuple[aiohttp.WSMsgType, Any]:
        async with _session() as s, s.ws_connect(
                f"{setup.gw.url}/ws/echo", headers={"Host": setup.legacy},
                max_msg_size=0) as ws:
            await ws.send_bytes(b"x" * (1024 * 1024 + 1))  # over the app's 1 MiB limit
            message = await ws.receive(timeout=5)
            return message.type, message.data

    assert asyncio.run(client_closes()) == 4001  # the host's reply to the client's close
    kind, code = asyncio.run(host_closes())
    assert kind == aiohttp.WSMsgType.CLOSE and code == 1009  # the host's own close code


# -- when the host is down, and choosing a host ---------------------------------------------

def test_a_host_that_is_down_gets_a_fast_502_naming_it(setup: Setup) -> None:
    start = time.perf_counter()
    reply = fetch("GET", f"{setup.gw.url}/anything", host=setup.host("proxy-down"))
    assert reply.status == 502
    assert setup.down_url in reply.text and "running" in reply.text
    assert time.perf_counter() - start < 2


@pytest.mark.parametrize("host", ["crm.example.com", "unrelated.localhost:1234", "localhost"])
def test_with_several_hosts_an_unknown_host_name_is_refused_with_the_choices(
        setup: Setup, host: str) -> None:
    reply = fetch("GET", f"{setup.gw.url}/api/customers", host=host)
    assert reply.status == 421
    assert "Host" in reply.text
    for name in setup.overlays:
        assert f"{name}.localhost" in reply.text


def test_the_host_name_selects_the_overlay_host(setup: Setup) -> None:
    legacy = fetch("GET", f"{setup.gw.url}/api/customers", host=setup.legacy)
    assert legacy.status == 200 and legacy.json()[0]["name"] == "Ada Lovelace"
    echo = fetch("GET", f"{setup.gw.url}/echo", host=setup.echo)
    assert echo.status == 200 and seen(echo)["method"] == "GET"
    # the legacy host's own authority, as when DNS points its name at the gateway
    own = URL(setup.legacy_url).authority
    assert fetch("GET", f"{setup.gw.url}/api/customers", host=own).status == 200
