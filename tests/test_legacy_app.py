"""The sample legacy app (examples/legacy_app): pages, JSON, the decision rule, streaming."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

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
