"""The sample legacy app (examples/legacy_app): pages, JSON, the decision rule, streaming,
the WebSocket echo."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import aiohttp
import pytest

APP = Path(__file__).resolve().parents[1] / "examples" / "legacy_app" / "app.py"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    number = _free_port()
    proc = subprocess.Popen([sys.executable, str(APP), "--port", str(number)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("Acme CRM on http://127.0.0.1:")
        yield number
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def request(port: int, method: str, path: str, body: object = None
            ) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    data = None if body is None else json.dumps(body).encode()
    conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    out = resp.status, dict(resp.getheaders()), resp.read()
    conn.close()
    return out


def test_html_pages_and_json(port: int) -> None:
    status, headers, body = request(port, "GET", "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b"<body>" in body and b"Ada Lovelace" in body
    assert request(port, "GET", "/crm/customers/2")[2].count(b"Grace Hopper") == 2
    assert request(port, "GET", "/crm/customers/9")[0] == 404
    status, headers, body = request(port, "GET", "/api/customers")
    assert status == 200 and len(json.loads(body)) == 3
    assert headers["X-Legacy-App"] == "acme-crm"


def test_the_legacy_decision_rule(port: int) -> None:
    ok = {"amount": 0.1, "age_days": 1.0, "velocity": 0.2, "risk_score": 0.0}
    assert json.loads(request(port, "POST", "/api/score", ok)[2])["decision"] == "approve"
    risky = {**ok, "risk_score": 2.0}
    assert json.loads(request(port, "POST", "/api/score", risky)[2])["rule"].startswith("R7")
    status, _, body = request(port, "POST", "/api/score", {"amount": 1})
    assert status == 400 and b"age_days" in body


def test_chunks_and_events_arrive_as_they_are_sent(port: int) -> None:
    for path, marker in (("/api/stream", b"chunk 0"), ("/api/events", b"event: tick")):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", path)
        resp = conn.getresponse()
        started = time.monotonic()
        first = resp.read1(65536) if hasattr(resp, "read1") else resp.read(16)
        first_at = time.monotonic() - started
        rest = resp.read()
        total = time.monotonic() - started
        conn.close()
        assert marker in first
        assert first_at < 0.15 < total  # the first piece came before the stream ended
        assert (first + rest).count(marker.split(b" ")[0]) >= 5


# --- the WebSocket echo (GET /ws/echo) -----------------------------------------------------

RFC_KEY, RFC_ACCEPT = "dGhlIHNhbXBsZSBub25jZQ==", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455 1.3


def client_frame(opcode: int, payload: bytes = b"", fin: bool = True, masked: bool = True
                 ) -> bytes:
    """A frame as a client sends it: masked (unless told not to), any length."""
    first, size = (0x80 if fin else 0) | opcode, len(payload)
    bit = 0x80 if masked else 0
    if size < 126:
        head = struct.pack("!BB", first, bit | size)
    elif size < 1 << 16:
        head = struct.pack("!BBH", first, bit | 126, size)
    else:
        head = struct.pack("!BBQ", first, bit | 127, size)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def server_frame(stream: BinaryIO) -> tuple[bool, int, bytes]:
    """The next frame from the server as (fin, opcode, payload); it must not be masked."""
    first, second = stream.read(2)
    assert not second & 0x80, "server frames are not masked"
    size = second & 0x7F
    if size == 126:
        (size,) = struct.unpack("!H", stream.read(2))
    elif size == 127:
        (size,) = struct.unpack("!Q", stream.read(8))
    return bool(first & 0x80), first & 0x0F, stream.read(size)


def raw_upgrade(port: int, **headers: str) -> tuple[socket.socket, BinaryIO, bytes]:
    """A raw socket after an upgrade request to /ws/echo: (socket, reader, response head)."""
    fields = {"Host": f"127.0.0.1:{port}", "Connection": "Upgrade", "Upgrade": "websocket",
              "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": RFC_KEY}
    fields.update({name.replace("_", "-"): value for name, value in headers.items()})
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    lines = "".join(f"{name}: {value}\r\n" for name, value in fields.items())
    sock.sendall(f"GET /ws/echo HTTP/1.1\r\n{lines}\r\n".encode())
    stream = sock.makefile("rb")
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = stream.readline()
        assert line, "connection closed during the handshake"
        head += line
    return sock, stream, head


def test_websocket_echoes_text_binary_and_large_messages(port: int) -> None:
    big = os.urandom(200_000)  # 64-bit length both ways

    async def session() -> list[aiohttp.WSMessage]:
        async with aiohttp.ClientSession() as client, \
                client.ws_connect(f"http://127.0.0.1:{port}/ws/echo") as ws:
            assert ws.protocol is None
            replies = []
            for message in ("hello, CRM", "é" * 1000, b"\x00\x01\xff", big):
                if isinstance(message, str):
                    await ws.send_str(message)
                else:
                    await ws.send_bytes(message)
                replies.append(await ws.receive(timeout=5))
            return replies

    replies = asyncio.run(session())
    assert [(m.type, m.data) for m in replies] == [
        (aiohttp.WSMsgType.TEXT, "hello, CRM"), (aiohttp.WSMsgType.TEXT, "é" * 1000),
        (aiohttp.WSMsgType.BINARY, b"\x00\x01\xff"), (aiohttp.WSMsgType.BINARY, big)]


def test_websocket_ping_subprotocol_and_close_code(port: int) -> None:
    async def session() -> tuple[str | None, aiohttp.WSMessage, int | None]:
        async with aiohttp.ClientSession() as client, client.ws_connect(
                f"http://127.0.0.1:{port}/ws/echo", protocols=("crm.v2", "crm.v1"),
                autoping=False) as ws:
            await ws.ping(b"are you there")
            pong = await ws.receive(timeout=5)
            await ws.close(code=4001, message=b"done")
            return ws.protocol, pong, ws.close_code

    protocol, pong, close_code = asyncio.run(session())
    assert protocol == "crm.v2"  # the first one offered
    assert (pong.type, pong.data) == (aiohttp.WSMsgType.PONG, b"are you there")
    assert close_code == 4001  # the server's close frame echoed our code


def test_websocket_message_limit_is_one_mebibyte(port: int) -> None:
    async def session() -> tuple[aiohttp.WSMessage, aiohttp.WSMessage]:
        async with aiohttp.ClientSession() as client, \
                client.ws_connect(f"http://127.0.0.1:{port}/ws/echo") as ws:
            await ws.send_bytes(b"x" * (1 << 20))
            at_limit = await ws.receive(timeout=5)
            await ws.send_bytes(b"x" * ((1 << 20) + 1))
            return at_limit, await ws.receive(timeout=5)

    at_limit, past = asyncio.run(session())
    assert at_limit.type == aiohttp.WSMsgType.BINARY and len(at_limit.data) == 1 << 20
    assert (past.type, past.data) == (aiohttp.WSMsgType.CLOSE, 1009)


def test_websocket_handshake_and_fragments_on_a_raw_socket(port: int) -> None:
    sock, stream, head = raw_upgrade(port, Sec_WebSocket_Protocol="a, b")
    with sock, stream:
        assert head.startswith(b"HTTP/1.1 101 ")
        assert f"Sec-WebSocket-Accept: {RFC_ACCEPT}\r\n".encode() in head
        assert b"Sec-WebSocket-Protocol: a\r\n" in head
        sock.sendall(client_frame(0x1, b"Hel", fin=False)
                     + client_frame(0x9, b"mid-message ping")  # control frames may interleave
                     + client_frame(0x0, b"lo, ", fin=False)
                     + client_frame(0x0, b"w\xc3\xb6rld"))
        assert server_frame(stream) == (True, 0xA, b"mid-message ping")
        assert server_frame(stream) == (True, 0x1, "Hello, wörld".encode())
        chunks = [os.urandom(40_000), os.urandom(300)]  # 16-bit and 7-bit lengths
        sock.sendall(client_frame(0x2, chunks[0], fin=False) + client_frame(0x0, chunks[1]))
        assert server_frame(stream) == (True, 0x2, b"".join(chunks))
        sock.sendall(client_frame(0x8, struct.pack("!H", 1000) + b"bye"))
        assert server_frame(stream) == (True, 0x8, struct.pack("!H", 1000))
        assert stream.read() == b""  # then the server closes the connection


def test_websocket_refuses_unmasked_frames(port: int) -> None:
    sock, stream, head = raw_upgrade(port)
    with sock, stream:
        assert head.startswith(b"HTTP/1.1 101 ")
        sock.sendall(client_frame(0x1, b"not masked", masked=False))
        fin, opcode, payload = server_frame(stream)
        assert (fin, opcode, payload[:2]) == (True, 0x8, struct.pack("!H", 1002))
        assert stream.read() == b""


def test_websocket_endpoint_without_an_upgrade(port: int) -> None:
    status, headers, body = request(port, "GET", "/ws/echo")
    assert status == 400 and headers["Content-Type"].startswith("text/plain")
    assert b"WebSocket upgrade" in body
    sock, stream, head = raw_upgrade(port, Sec_WebSocket_Version="8")
    with sock, stream:
        assert head.startswith(b"HTTP/1.1 426 ") and b"Sec-WebSocket-Version: 13\r\n" in head
    sock, stream, head = raw_upgrade(port, Sec_WebSocket_Key="short")
    with sock, stream:
        assert head.startswith(b"HTTP/1.1 400 ")
    assert base64.b64decode(RFC_KEY) == b"the sample nonce"
