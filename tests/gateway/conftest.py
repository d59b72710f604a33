"""Gateway test fixtures: a registry with well-behaved and misbehaving models, the sample
legacy app and an echoing host in background threads, and a running gateway."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from collections.abc import Iterator

import pytest
from aiohttp import web
from gateway_support import (
    RELEASE,
    ROOT,
    broken_model,
    hanging_model,
    slow_model,
    stall_model,
    training,
)
from providers_support import FakeProviders

from overlay_sdk.client import ControlPlane, connect
from overlay_sdk.gateway import GatewayHandle
from overlay_sdk.registry import ModelRegistry
from overlay_sdk.store import LocalStore


@pytest.fixture(scope="session")
def gateway_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelRegistry]:
    """fraud:1, fraud:2 (sklearn, named features, reference data), slow:1, broken:1,
    hang:1, stall:1 (pyfunc callables), scorer:1 (a container image)."""
    from sklearn.linear_model import LogisticRegression

    home = tmp_path_factory.mktemp("gateway-registry")
    x, y = training()
    with connect(home) as cp:
        cp.models.register("fraud", model=LogisticRegression().fit(x, y), reference=x)
        cp.models.register("fraud", model=LogisticRegression(C=0.01).fit(x, y), reference=x)
        cp.models.register("slow", model=slow_model, flavor="pyfunc", reference=x.head(1))
        cp.models.register("broken", model=broken_model, flavor="pyfunc")
        cp.models.register("hang", model=hanging_model, flavor="pyfunc")
        cp.models.register("stall", model=stall_model, flavor="pyfunc", reference=x.head(5))
        cp.models.register("scorer", image="ghcr.io/acme/scorer:1.4", port=9000,
                           health_path="/health")
        registry = cp.models
    yield registry
    RELEASE.set()


@pytest.fixture(scope="session")
def legacy_url() -> Iterator[str]:
    """The sample legacy app (examples/legacy_app) on a free port."""
    sys.path.insert(0, str(ROOT / "examples" / "legacy_app"))
    try:
        import app as legacy
    finally:
        sys.path.pop(0)
    server = legacy.serve(0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def _echo(request: web.Request) -> web.StreamResponse:
    """Answers with what it received; ``?status=N`` sets the status, and it sends headers a
    proxy must pass (two Set-Cookie) or drop (hop-by-hop, named in Connection)."""
    body = await request.read()
    status = int(request.query.get("status", "200"))
    seen = {"method": request.method, "path": request.raw_path,
            "headers": [[k, v] for k, v in request.headers.items()],
            "body": body.decode("latin-1"), "length": len(body)}
    response = web.Response(status=status, text=json.dumps(seen),
                            content_type="application/json")
    response.headers.add("Set-Cookie", "a=1; Path=/")
    response.headers.add("Set-Cookie", "b=2; Path=/")
    response.headers["X-Host-Header"] = "kept"
    response.headers["Connection"] = "keep-alive, X-Hop"
    response.headers["X-Hop"] = "must go"
    response.headers["Keep-Alive"] = "timeout=5"
    return response


async def _broken_stream(request: web.Request) -> web.StreamResponse:
    """Starts a chunked answer, then the host dies."""
    response = web.StreamResponse()
    await response.prepare(request)
    await response.write(b"first part;")
    await asyncio.sleep(0.1)
    assert request.transport is not None
    request.transport.close()
    return response


async def _ws_auth(request: web.Request) -> web.Response:
    """Refuses WebSocket upgrades without credentials, the way hosts do."""
    return web.Response(status=401, text="log in first",
                        headers={"WWW-Authenticate": 'Bearer realm="crm"'})


async def _big(request: web.Request) -> web.Response:
    size = int(request.query.get("size", "1000000"))
    return web.Response(body=bytes(range(256)) * (size // 256), content_type="application/x-bin")


@pytest.fixture(scope="session")
def echo_url() -> Iterator[str]:
    """An aiohttp host that echoes requests (``/echo``) and serves big bodies (``/big``)."""
    loop = asyncio.new_event_loop()
    app = web.Application(client_max_size=8 * 1024 * 1024)
    app.router.add_route("*", "/echo", _echo)
    app.router.add_route("*", "/echo/{tail:.*}", _echo)
    app.router.add_get("/big", _big)
    app.router.add_get("/broken-stream", _broken_stream)
    app.router.add_get("/ws-auth", _ws_auth)
    runner = web.AppRunner(app, access_log=None)
    ready = threading.Event()
    port: list[int] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        port.append(runner.addresses[0][1])
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(10)
    yield f"http://127.0.0.1:{port[0]}"
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


@pytest.fixture(scope="module")
def plane(gateway_registry: ModelRegistry, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[ControlPlane]:
    """A control plane with its own home and empty store, sharing the gateway registry."""
    home = tmp_path_factory.mktemp("gateway-home")
    cp = ControlPlane(home, LocalStore(home / "overlays.db"), gateway_registry, author="tester")
    yield cp
    cp.close()


@pytest.fixture(scope="module")
def gateway(plane: ControlPlane) -> Iterator[GatewayHandle]:
    """A gateway on a free port serving ``plane``'s overlays."""
    gw = plane.start_gateway(port=0, breaker_cooldown=1.0)
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviders]:
    """Fake OpenAI, Anthropic, Cohere and Ollama APIs on loopback (providers_support)."""
    server = FakeProviders()
    server.start()
    yield server
    server.stop()
