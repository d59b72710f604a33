"""The processes ``bench_gateway.py`` measures, each started as ``python gateway_support.py ROLE``
(pinned to a core with ``taskset`` by the benchmark). Each prints ``READY <url>`` once it
listens, then serves until SIGTERM.

- ``upstream``: the fast fake host application. An asyncio protocol on uvloop that answers
  every request with the same ~340-byte chat-completion JSON (keep-alive; request bodies
  with a Content-Length are read and ignored). ``GET /echo`` answers with the request's
  headers instead, so the benchmark can check what the gateway forwards. Minimal on
  purpose (like the httptools server of ``shared/notes/gateway-speed.md``): the upstream
  shares its core with the load generator and must not be the bottleneck.
- ``bare UPSTREAM_URL``: the baseline proxy. aiohttp's low-level server and one pooled
  aiohttp ``ClientSession`` (the same client settings as the gateway), forwarding method,
  path, headers (minus hop-by-hop and Host) and body, answering with the upstream's
  status, body and Content-Type. No routing, no header hygiene, no telemetry.
- ``gateway HOME [GC_STATS]``: the overlay gateway of the overlay home ``HOME`` (its store,
  registry, telemetry database and status book), through :func:`overlay_sdk.gateway.serve`.
  With ``GC_STATS`` (a file path), the garbage collector's passes are counted and written
  there as JSON every 0.5 s (one callback per pass: negligible cost).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from typing import Any

BODY = json.dumps({
    "id": "chatcmpl-7f3a9c2e", "object": "chat.completion", "created": 1764115200,
    "model": "acme-small-1",
    "choices": [{"index": 0, "finish_reason": "stop", "message": {
        "role": "assistant",
        "content": "Order 4471 shipped Tuesday; tracking 1Z999AA10123456784."}}],
    "usage": {"prompt_tokens": 41, "completion_tokens": 19, "total_tokens": 60},
}, separators=(", ", ": ")).encode()
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(BODY)).encode() + b"\r\nServer: bench-upstream\r\n\r\n" + BODY)


class _Upstream(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        transport = self.transport
        assert transport is not None
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buffer[:end].lower()
            length = 0
            at = head.find(b"\r\ncontent-length:")
            if at >= 0:
                stop = head.find(b"\r\n", at + 2)
                length = int(head[at + 17:stop if stop >= 0 else None].strip())
            if len(buffer) < end + 4 + length:
                break
            if head.startswith(b"get /echo"):
                lines = buffer[:end].decode("latin-1").split("\r\n")[1:]
                headers = [line.split(":", 1) for line in lines if ":" in line]
                body = json.dumps([[k.strip(), v.strip()] for k, v in headers]).encode()
                transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
                                + body)
            else:
                transport.write(RESPONSE)
            buffer = buffer[end + 4 + length:]
            if b"\r\nconnection: close" in head:
                transport.close()
                buffer = b""
                break
        self.buffer = buffer


async def _until_stopped() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def upstream() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Upstream, "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    print(f"READY http://127.0.0.1:{port}", flush=True)
    await _until_stopped()
    server.close()


_HOP = frozenset({"host", "connection", "keep-alive", "proxy-connection", "te", "trailer",
                  "transfer-encoding", "upgrade", "content-length"})


async def bare(base_url: str) -> None:
    import aiohttp
    from aiohttp import web

    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
        auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept"))

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        data = await request.read() if request.body_exists else None
        async with session.request(request.method, base_url + request.raw_path,
                                   headers=headers, data=data,
                                   allow_redirects=False) as answer:
            body = await answer.read()
            return web.Response(status=answer.status, body=body, headers={
                "Content-Type": answer.headers.get("Content-Type", "application/octet-stream")})

    runner = web.ServerRunner(web.Server(handle, access_log=None))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    port = runner.addresses[0][1]
    print(f"READY http://127.0.0.1:{port}", flush=True)
    await _until_stopped()
    await runner.cleanup()
    await session.close()


def _gc_meter(path: str) -> None:
    """Count the garbage collector's passes per generation (number and total time; each
    full collection's pause) and write them to ``path`` as JSON every 0.5 s."""
    import gc
    import threading
    import time

    stats: dict[str, list[Any]] = {"count": [0, 0, 0], "total_ms": [0.0, 0.0, 0.0],
                                   "full_ms": []}
    began = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
            return
        gen, ms = info["generation"], (time.perf_counter() - began[0]) * 1000
        stats["count"][gen] += 1
        stats["total_ms"][gen] += ms
        if gen == 2:
            stats["full_ms"].append(round(ms, 3))

    def write() -> None:
        while True:
            time.sleep(0.5)
            with open(path + ".tmp", "w") as out:
                json.dump(stats, out)
            os.replace(path + ".tmp", path)

    gc.callbacks.append(callback)
    threading.Thread(target=write, name="bench-gc-meter", daemon=True).start()


def gateway(home: str, gc_stats: str | None = None) -> None:
    from overlay_sdk.client import connect
    from overlay_sdk.gateway import Gateway, GatewayConfig, serve
    from overlay_sdk.store import LocalStore

    if gc_stats:
        _gc_meter(gc_stats)
    cp = connect(home)
    assert isinstance(cp.store, LocalStore)
    config = GatewayConfig(host="127.0.0.1", port=0, telemetry_url=cp.telemetry_url)

    def started(gw: Gateway) -> None:
        print(f"READY {gw.url}", flush=True)

    serve(LocalStore(cp.store.path), cp.models, cp.home, config, on_start=started)


def main(argv: list[str]) -> int:
    import uvloop

    role, *args = argv
    if role == "upstream":
        uvloop.run(upstream())
    elif role == "bare":
        uvloop.run(bare(args[0]))
    elif role == "gateway":
        gateway(*args)
    else:
        raise SystemExit(f"unknown role {role!r}: give upstream, bare URL or gateway HOME")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
