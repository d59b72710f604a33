"""Acme CRM: the sample "legacy" web application that overlays augment.

It knows nothing of AI: server-rendered HTML pages, a JSON API, and a rule-based
decision endpoint (``POST /api/score``) whose decisions a shadow-mode overlay can
compare with a model's. It also streams (chunked ``/api/stream``, server-sent events
``/api/events``) so the gateway's pass-through of streamed bodies can be tested. Standard
library only, like the old applications it stands for.

    python examples/legacy_app/app.py --port 8001
"""

from __future__ import annotations

import argparse
import html
import json
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


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "AcmeCRM/1998"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Legacy-App", "acme-crm")
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
