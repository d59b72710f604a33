"""Acme CRM: the sample "legacy" web application that overlays augment.

It knows nothing of AI: server-rendered HTML pages, a JSON API, and a rule-based
decision endpoint (``POST /api/score``) whose decisions a shadow-mode overlay can
compare with a model's. It also streams (chunked ``/api/stream``, server-sent events
``/api/events``) so the gateway's pass-through of streamed bodies can be tested, and
echoes WebSocket messages (``GET /ws/echo``, RFC 6455) so upgraded connections can be too.
Standard library only, like the old applications it stands for.

Endpoints: ``GET /`` and ``/crm/customers/<id>`` (HTML), ``GET /api/customers`` (JSON),
``POST /api/score`` (the decision rule), ``GET /api/stream`` (chunked), ``GET /api/events``
(server-sent events), ``GET /ws/echo`` (WebSocket echo), ``GET /healthz``.

    python examples/legacy_app/app.py --port 8001
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import html
import json
import socket
import struct
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

CUSTOMERS = [
    {"id": 1, "name": "Ada Lovelace", "segment": "enterprise", "open_deals": 3},
    {"id": 2, "name": "Grace Hopper", "segment": "mid-market", "open_deals": 1},
    {"id": 3, "name": "Alan Turing", "segment": "startup", "open_deals": 0},
]
FEATURES = ("amount", "age_days", "velocity", "risk_score")

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, section 1.3
WS_MAX_MESSAGE = 1 << 20  # 1 MiB: longer messages end the session with close code 1009
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
OPCODES = frozenset({OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG})


def decide(payload: dict[str, Any]) -> dict[str, Any]:
    """The legacy rule: large, new, fast-moving or risky transactions go to review."""
    missing = [f for f in FEATURES if not isinstance(payload.get(f), int | float)]
    if missing:
        raise ValueError(f"numbers required for: {', '.join(missing)}")
    if payload["risk_score"] > 1.0 or (payload["amount"] > 1.5 and payload["age_days"] < 0):
        return {"decision": "review", "rule": "R7 high risk or large amount on a new account"}
    if payload["velocity"] > 2.0:
        return {"decision": "review", "rule": "R3 unusual velocity"}
    return {"decision": "approve", "rule": "R0 default"}


def page(title: str, body: str) -> bytes:
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)} - Acme CRM</title></head>"
        f"<body><header><h1>Acme CRM</h1></header><main>{body}</main></body></html>"
    ).encode()


def websocket_accept(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value answering a ``Sec-WebSocket-Key`` (RFC 6455, 4.2.2)."""
    digest = hashlib.sha1((key + WS_GUID).encode("ascii"), usedforsecurity=False).digest()
    return base64.b64encode(digest).decode("ascii")


def valid_websocket_key(key: str) -> bool:
    """Whether ``key`` is the base64 of 16 bytes, as a client's handshake key must be."""
    try:
        return len(base64.b64decode(key, validate=True)) == 16
    except ValueError:  # binascii.Error, or non-ASCII text
        return False


def encode_frame(opcode: int, payload: bytes = b"") -> bytes:
    """One final, unmasked frame, as a server sends it (7-, 16- or 64-bit length)."""
    first, size = 0x80 | opcode, len(payload)
    if size < 126:
        head = struct.pack("!BB", first, size)
    elif size < 1 << 16:
        head = struct.pack("!BBH", first, 126, size)
    else:
        head = struct.pack("!BBQ", first, 127, size)
    return head + payload


def unmask(payload: bytes, key: bytes) -> bytes:
    """``payload`` XOR the repeated 4-byte masking ``key`` (fast enough for 1 MiB)."""
    size = len(payload)
    if not size:
        return payload
    pad = (key * (size // 4 + 1))[:size]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(pad, "big")).to_bytes(size, "big")


def valid_close_code(code: int) -> bool:
    """Whether a peer may send ``code`` in a close frame (RFC 6455, section 7.4)."""
    return (1000 <= code <= 1014 and code not in (1004, 1005, 1006)) or 3000 <= code <= 4999


class WebSocketClose(Exception):
    """Ends an echo session: the server sends a close frame with ``code`` and ``reason``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code} {reason}")
        self.code = code
        self.reason = reason


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "AcmeCRM/1998"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, body: bytes, content_type: str,
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Legacy-App", "acme-crm")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, value: Any) -> None:
        self._send(status, json.dumps(value).encode(), "application/json")

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path in ("/", "/crm", "/crm/"):
            rows = "".join(
                f"<li><a href='/crm/customers/{c['id']}'>{html.escape(str(c['name']))}</a></li>"
                for c in CUSTOMERS)
            self._send(200, page("Customers", f"<ul id='customers'>{rows}</ul>"),
                       "text/html; charset=utf-8")
        elif path.startswith("/crm/customers/"):
            found = [c for c in CUSTOMERS if f"/crm/customers/{c['id']}" == path]
            if not found:
                self._send(404, page("Not found", "<p>No such customer</p>"),
                           "text/html; charset=utf-8")
                return
            c = found[0]
            body = (f"<h2>{html.escape(str(c['name']))}</h2><p>Segment: {c['segment']}</p>"
                    f"<p>Open deals: {c['open_deals']}</p>")
            self._send(200, page(str(c["name"]), body), "text/html; charset=utf-8")
        elif path == "/api/customers":
            self._json(200, CUSTOMERS)
        elif path == "/api/stream":
            self._stream(chunks=5, gap=0.2)
        elif path == "/api/events":
            self._events(count=5, gap=0.2)
        elif path == "/ws/echo":
            self._websocket()
        elif path == "/healthz":
            self._json(200, {"ok": True})
        else:
            self._json(404, {"error": f"no route {path}"})

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if path != "/api/score":
            self._json(404, {"error": f"no route {path}"})
            return
        try:
            payload = json.loads(raw or b"{}")
            if not isinstance(payload, dict):
                raise ValueError("send a JSON object")
            self._json(200, decide(payload))
        except ValueError as err:
            self._json(400, {"error": str(err)})

    def _stream(self, chunks: int, gap: float) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i in range(chunks):
            data = f"chunk {i}\n".encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
            time.sleep(gap)
        self.wfile.write(b"0\r\n\r\n")

    def _events(self, count: int, gap: float) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        for i in range(count):
            self.wfile.write(f"id: {i}\nevent: tick\ndata: {{\"n\": {i}}}\n\n".encode())
            self.wfile.flush()
            time.sleep(gap)
        self.close_connection = True

    def _tokens(self, name: str) -> list[str]:
        """The comma-separated tokens of every ``name`` header, stripped, in order."""
        values = ",".join(self.headers.get_all(name) or [])
        return [t.strip() for t in values.split(",") if t.strip()]

    def _websocket(self) -> None:
        """``GET /ws/echo``: the RFC 6455 opening handshake, then an echo session."""
        text = "text/plain; charset=utf-8"
        upgrade = ("websocket" in (t.lower() for t in self._tokens("Upgrade"))
                   and "upgrade" in (t.lower() for t in self._tokens("Connection")))
        key = (self.headers.get("Sec-WebSocket-Key") or "").strip()
        if not upgrade:
            self._send(400, b"/ws/echo needs a WebSocket upgrade (RFC 6455): send "
                       b"Connection: Upgrade, Upgrade: websocket, Sec-WebSocket-Version: 13 "
                       b"and a Sec-WebSocket-Key.\n", text)
            return
        if (self.headers.get("Sec-WebSocket-Version") or "").strip() != "13":
            self._send(426, b"Only WebSocket version 13 is supported.\n", text,
                       {"Sec-WebSocket-Version": "13"})
            return
        if not valid_websocket_key(key):
            self._send(400, b"Sec-WebSocket-Key must be the base64 of 16 bytes.\n", text)
            return
        offered = self._tokens("Sec-WebSocket-Protocol")
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", websocket_accept(key))
        if offered:
            self.send_header("Sec-WebSocket-Protocol", offered[0])
        self.send_header("X-Legacy-App", "acme-crm")
        self.end_headers()
        try:
            self._echo_session()
        finally:
            self.close_connection = True

    def _echo_session(self) -> None:
        """Echo messages until the client closes, the stream ends or the client errs."""
        try:
            self._echo_messages()
        except WebSocketClose as close:
            reason = close.reason.encode()
            try:
                self.wfile.write(encode_frame(OP_CLOSE, struct.pack("!H", close.code) + reason))
            except OSError:
                return
            self._linger()
        except (EOFError, OSError):  # the client went away mid-frame or reset
            return

    def _echo_messages(self) -> None:
        """Read frames, reassemble fragmented messages, echo each message in one frame."""
        parts: list[bytes] = []
        kind, size = 0, 0  # the opcode and length so far of the message being assembled
        while True:
            fin, opcode, payload = self._read_frame(room=WS_MAX_MESSAGE - size)
            if opcode >= OP_CLOSE:
                if not self._control(opcode, payload):
                    return
                continue
            if (opcode == OP_CONT) != bool(kind):
                raise WebSocketClose(1002, "unexpected continuation" if kind == 0
                                     else "expected a continuation frame")
            kind = kind or opcode
            parts.append(payload)
            size += len(payload)
            if fin:
                message = b"".join(parts)
                if kind == OP_TEXT:
                    try:
                        message.decode("utf-8")
                    except UnicodeDecodeError:
                        raise WebSocketClose(1007, "text message is not UTF-8") from None
                self.wfile.write(encode_frame(kind, message))
                parts, kind, size = [], 0, 0

    def _read_exactly(self, count: int) -> bytes:
        """``count`` bytes from the client; EOFError if the stream ends first."""
        data = self.rfile.read(count) if count else b""
        if len(data) != count:
            raise EOFError("connection closed mid-frame")
        return data

    def _read_frame(self, room: int) -> tuple[bool, int, bytes]:
        """The next client frame as (fin, opcode, unmasked payload).

        ``room`` is how many more bytes the message being assembled may take; a data frame
        past it is refused (1009) before its payload is read.
        """
        first, second = self._read_exactly(2)
        fin, opcode, size = bool(first & 0x80), first & 0x0F, second & 0x7F
        if first & 0x70:
            raise WebSocketClose(1002, "no extension was negotiated")
        if opcode not in OPCODES:
            raise WebSocketClose(1002, f"unknown opcode {opcode}")
        if not second & 0x80:
            raise WebSocketClose(1002, "client frames must be masked")
        if size == 126:
            (size,) = struct.unpack("!H", self._read_exactly(2))
        elif size == 127:
            (size,) = struct.unpack("!Q", self._read_exactly(8))
            if size >> 63:
                raise WebSocketClose(1002, "64-bit length with the top bit set")
        if opcode >= OP_CLOSE and (not fin or size > 125):
            raise WebSocketClose(1002, "control frames must be final and at most 125 bytes")
        if opcode < OP_CLOSE and size > room:
            raise WebSocketClose(1009, f"messages are limited to {WS_MAX_MESSAGE} bytes")
        key = self._read_exactly(4)
        return fin, opcode, unmask(self._read_exactly(size), key)

    def _control(self, opcode: int, payload: bytes) -> bool:
        """Answer a ping, ignore a pong, echo a close; False once the session is over."""
        if opcode == OP_PING:
            self.wfile.write(encode_frame(OP_PONG, payload))
            return True
        if opcode == OP_PONG:
            return True
        if len(payload) == 1:
            raise WebSocketClose(1002, "a close payload has no room for one byte")
        if payload:
            (code,) = struct.unpack("!H", payload[:2])
            if not valid_close_code(code):
                raise WebSocketClose(1002, f"invalid close code {code}")
        self.wfile.write(encode_frame(OP_CLOSE, payload[:2]))
        return False

    def _linger(self, seconds: float = 1.0) -> None:
        """After the server's own close frame: drain the client's last bytes for a while.

        Closing a socket with unread data resets the connection, which can destroy the close
        frame before the client reads it; so end our side and read until EOF or ``seconds``.
        """
        deadline = time.monotonic() + seconds
        try:
            self.connection.shutdown(socket.SHUT_WR)
            while (left := deadline - time.monotonic()) > 0:
                self.connection.settimeout(left)
                if not self.rfile.read1(65536):
                    return
        except OSError:  # includes the timeout
            return


def serve(port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """A server bound to ``host:port`` (port 0: any free port), not yet serving."""
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Acme CRM, the sample legacy application.")
    parser.add_argument("--port", type=int, default=8001, help="port (default 8001)")
    parser.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    args = parser.parse_args(argv)
    server = serve(args.port, args.host)
    print(f"Acme CRM on http://{args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
