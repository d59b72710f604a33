"""The overlay gateway: one asyncio process serving every overlay of a store.

Built on aiohttp's low-level server and one pooled aiohttp ``ClientSession`` for all
outbound calls (measured: the outbound client dominates proxy cost, and aiohttp's pooled
client was ~10x faster than httpx here; see BENCHMARKS.md). What it does per request:

- ``/_overlay/{name}/invoke`` (POST, JSON ``{"inputs": ...}``): routed by the overlay's
  plan to one version, answered with ``x-overlay-model-version``; the shadow version (if
  the plan mirrors this key) gets the same input through the bounded shadow queue;
- ``/_overlay/status``, ``/_overlay/healthz``, ``/healthz`` (liveness), ``/readyz``
  (readiness: 503 with the reason until what it serves is loaded, see
  :meth:`~overlay_sdk.gateway.reload.Reloader.readiness`): the gateway's own;
- anything else is host traffic, passed through (see :mod:`.proxy`); in shadow mode,
  requests matching ``spec.match`` are also forked to the routed model.

In a cluster (``shadow="mesh"``, see :mod:`.mesh`) self-hosted versions are called through
the service mesh, Istio mirrors their shadow copies, and a second listener
(``models_port``) answers what the mesh sends to provider versions and every mirrored
copy (a self-hosted shadow's through the mesh), recording it as ``shadow``.

The store is followed by a :class:`~overlay_sdk.gateway.reload.Reloader`: each new
revision's versions are loaded and health-checked first, then a new
:class:`~overlay_sdk.gateway.dispatch.Directory` snapshot is swapped in, and the status
book records when and how fast.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import hmac
import json
import logging
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp
from aiohttp import web
from opentelemetry import trace as otel_trace

from overlay_sdk.alerts import Alert
from overlay_sdk.analytics.cost import call_cost
from overlay_sdk.gateway.dispatch import Active, Directory, HostTarget
from overlay_sdk.gateway.lanes import Lanes
from overlay_sdk.gateway.mesh import chat_inputs, mirror_host, overlay_label, scoring_inputs
from overlay_sdk.gateway.models import ModelPool, Outcome
from overlay_sdk.gateway.payload import PayloadError
from overlay_sdk.gateway.prom import CONTENT_TYPE as PROM_CONTENT_TYPE
from overlay_sdk.gateway.prom import GatewayMetrics, State
from overlay_sdk.gateway.proxy import Captured, proxy_http, proxy_websocket, wants_websocket
from overlay_sdk.gateway.reload import Reloader
from overlay_sdk.gateway.status import StatusBook
from overlay_sdk.gateway.tracing import TRACE_HEADERS, Tracing, tracing_from
from overlay_sdk.k8s.render import VERSION_HEADER
from overlay_sdk.prices import PRICES_FILE, load_catalog
from overlay_sdk.registry import ModelRegistry
from overlay_sdk.spec import AIOverlaySpec
from overlay_sdk.store import Store, created_revision
from overlay_sdk.telemetry import CallRecord, TelemetryWriter, purge
from overlay_sdk.watch import evaluate

__all__ = ["Gateway", "GatewayConfig"]

_log = logging.getLogger("overlay_sdk.gateway")
ADMIN = "/_overlay/"
FORK_BODY_LIMIT = 1024 * 1024
CAPTURE_LIMIT = 64 * 1024
PURGE_EVERY_S = 3600.0
MAX_PER_HOST = 512  # outbound connections to one host (or one HTTP model)
SHUTDOWN_S = 2.0  # open streams get this long to finish when the gateway stops
INVOKE_ROUTE = "/_overlay/{overlay}/invoke"
PROBES = frozenset({"/healthz", "/readyz"})  # the gateway's own, beside /_overlay/...


@dataclass
class GatewayConfig:
    """How a gateway runs.

    ``token``: bearer token required on invoke and admin endpoints (None: open).
    ``telemetry_url``: SQLAlchemy URL of the call records (None: the home's
    ``telemetry.db``). ``endpoints``: where container-image versions listen
    (``{"scorer:1": "http://127.0.0.1:9000"}``). ``shadow_timeout``: seconds a shadow or
    forked call may take (nobody waits for it, so it is longer than
    ``spec.slo.timeoutMs``). ``shadow_queue``/``shadow_workers``: per model version.
    ``freeze_gc``: move what is loaded into the garbage collector's permanent generation
    after each model load (``gc.freeze``), so full collections stay short; process-wide, so
    only a gateway that owns its process (``overlay gateway``) does it.
    ``alert_interval``: seconds between evaluations of drift and budget alerts
    (:func:`overlay_sdk.watch.evaluate`). ``tracer_provider``: an OpenTelemetry
    ``TracerProvider`` for the gateway's spans (None: configured by the ``OTEL_*``
    variables, else the process's own; see :mod:`.tracing`).

    A cluster's gateway (see :mod:`.mesh`): ``overlay`` serves that overlay alone (None:
    every overlay of the store). ``shadow``: ``"gateway"`` (the gateway forks shadow
    copies and loads every version itself) or ``"mesh"`` (Istio mirrors; self-hosted
    versions are called at ``models_url``, the overlay's models Service, with
    ``x-overlay-version``). ``models_port``: where the mesh's calls to provider versions
    and its mirrored copies are answered (None: no such listener; 0: any free port).
    """

    host: str = "127.0.0.1"
    port: int = 8700
    token: str | None = None
    telemetry_url: str | None = None
    endpoints: dict[str, str] = field(default_factory=dict)
    shadow_queue: int = 1000  # per model version
    shadow_workers: int = 4  # per model version
    shadow_timeout: float = 30.0
    threads_per_version: int = 4
    max_in_flight: int = 8  # per version on this process's threads (pyfunc)
    max_in_flight_remote: int = 256  # per version over the network (providers, images)
    breaker_threshold: int = 5
    breaker_cooldown: float = 5.0
    load_timeout: float = 300.0
    freeze_gc: bool = False
    tracer_provider: Any = None
    alert_interval: float = 60.0
    overlay: str | None = None
    shadow: Literal["gateway", "mesh"] = "gateway"
    models_url: str | None = None
    models_port: int | None = None

    @property
    def mesh(self) -> bool:
        """Whether Istio mirrors shadow copies and serves self-hosted versions."""
        return self.shadow == "mesh"


def _json_response(status: int, body: Any, headers: dict[str, str] | None = None
                   ) -> web.Response:
    return web.Response(status=status, text=json.dumps(body, default=str),
                        content_type="application/json", headers=headers)


def _problem(status: int, code: str, message: str, **extra: Any) -> web.Response:
    return _json_response(status, {"error": {"code": code, "message": message, **extra}})


_DEGRADED = {"timeout": 504, "error": 502, "rejected": 503, "invalid": 422}


def _answer(outcome: Outcome, active: Active, version: str, headers: dict[str, str]
            ) -> web.Response:
    """The invoke answer for a model call's outcome: the outputs, or a degraded answer."""
    if outcome.ok:
        return _json_response(200, {"outputs": outcome.output, "version": version,
                                    "revision": active.revision}, headers)
    return _json_response(_DEGRADED[outcome.status], {
        "error": {"code": f"model_{outcome.status}", "message": outcome.error},
        "degraded": outcome.status != "invalid", "version": version,
        "revision": active.revision}, headers)


def _scoring_error(status: int, code: str, message: str,
                   headers: dict[str, str] | None = None, **extra: Any) -> web.Response:
    """An error answer on the models port, shaped as MLflow's scoring server's."""
    return _json_response(status, {"error_code": code, "message": message, **extra}, headers)


def _sse(event: str, data: Any) -> bytes:
    """One server-sent event."""
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n".encode()


def _trace_id(request: web.BaseRequest) -> str:
    parent = request.headers.get("traceparent", "")
    parts = parent.split("-")
    if len(parts) == 4 and len(parts[1]) == 32:
        return parts[1].lower()
    # a new id that only labels records (no secret): getrandbits, not uuid4's os.urandom
    # read per request (2.5 % of a saturated gateway's time, measured)
    return f"{random.getrandbits(128):032x}"


@dataclass
class _ShadowJob:
    active: Active
    version: str
    inputs: Any
    trace_id: str
    source: str = "invoke"
    capture: Captured | None = None
    context: Any = None  # the request's trace context, when traced


class Gateway:
    """The gateway over ``store`` and ``registry`` (see the module docstring).

    Run it with ``await gw.start()`` / ``await gw.stop()`` inside an event loop, or through
    :func:`overlay_sdk.gateway.start_gateway` (a background thread, for notebooks) and
    ``overlay gateway`` (the foreground, for terminals and services).
    """

    def __init__(self, store: Store, registry: ModelRegistry, home: str | Path,
                 config: GatewayConfig | None = None) -> None:
        self.store = store
        self.registry = registry
        self.home = Path(home)
        self.config = config or GatewayConfig()
        self.reload: Reloader | None = None
        self.metrics = GatewayMetrics(self._prom_state)
        self.book = StatusBook(self.home)
        self.gateway_id = 0
        self.url = ""
        self.models_listen_url = ""  # the models port's address (mesh calls), when open
        self.unforked = 0  # matching host requests not forked (streamed, large or not JSON)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.ServerRunner | None = None
        self._models_runner: web.ServerRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._model_session: aiohttp.ClientSession | None = None
        self._pool: ModelPool | None = None
        self._telemetry: TelemetryWriter | None = None
        self._shadow: Lanes[_ShadowJob] | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._tracing: Tracing | None = None
        self._books = concurrent.futures.ThreadPoolExecutor(1, "overlay-status")
        self._prices_stamp: tuple[int, int] | None = None  # catalog file, last read

    # -- life cycle ------------------------------------------------------------------------

    @property
    def directory(self) -> Directory:
        """What the gateway serves now (an immutable snapshot)."""
        return self.reload.directory if self.reload is not None else Directory()

    @property
    def telemetry(self) -> TelemetryWriter | None:
        """The writer of call records (None before :meth:`start`)."""
        return self._telemetry

    @property
    def telemetry_url(self) -> str:
        return self.config.telemetry_url or f"sqlite:///{self.home / 'telemetry.db'}"

    async def start(self) -> None:
        """Bind the port, load the overlays of the store and follow it."""
        self._loop = asyncio.get_running_loop()
        self._tracing = tracing_from(self.config.tracer_provider)  # bad OTEL_* fail here
        # one pooled session for hosts and one for HTTP models; connections are bounded per
        # host, so a host that hangs holds only its own connections
        self._session, self._model_session = _session(), _session(passthrough=False)
        self._prices_stamp = self._prices_file_stamp()
        self._pool = ModelPool(
            self.registry, self._model_session, endpoints=self.config.endpoints,
            threads_per_version=self.config.threads_per_version,
            max_in_flight=self.config.max_in_flight,
            max_in_flight_remote=self.config.max_in_flight_remote,
            breaker_threshold=self.config.breaker_threshold,
            breaker_cooldown=self.config.breaker_cooldown,
            load_timeout=self.config.load_timeout, freeze_gc=self.config.freeze_gc,
            on_state=self._backend_state, prices=lambda: load_catalog(self.home),
            mesh_url=self.config.models_url if self.config.mesh else None)
        self._telemetry = TelemetryWriter(self.telemetry_url)
        self._shadow = Lanes(self._shadow_call, capacity=self.config.shadow_queue,
                             workers=self.config.shadow_workers)
        # a client that goes away cancels its handler, and with it the call to the host
        # untraced, requests go straight to the router (no extra coroutine per request)
        handler = self._route if self._tracing is None else self._handle
        server = web.Server(handler, access_log=None, handler_cancellation=True)
        self._runner = web.ServerRunner(server, access_log=None, handle_signals=False,
                                        shutdown_timeout=SHUTDOWN_S)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port,
                           reuse_address=True)
        try:
            await site.start()
            sockets = self._runner.addresses
            port = sockets[0][1] if sockets else self.config.port
            host = self.config.host if self.config.host not in ("0.0.0.0", "::") else "127.0.0.1"
            self.url = f"http://{host}:{port}"
            if self.config.models_port is not None:
                self._models_runner = web.ServerRunner(
                    web.Server(self._models_route, access_log=None, handler_cancellation=True),
                    access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_S)
                await self._models_runner.setup()
                await web.TCPSite(self._models_runner, self.config.host,
                                  self.config.models_port, reuse_address=True).start()
                bound = self._models_runner.addresses
                models_port = bound[0][1] if bound else self.config.models_port
                self.models_listen_url = f"http://{host}:{models_port}"
            self.gateway_id = await self._in_books(self.book.started, self.url)
            self._tasks = [asyncio.ensure_future(self._purge_loop()),
                           asyncio.ensure_future(self._alert_loop())]
            self.reload = Reloader(
                self.store, self._pool, record=self._record_revision,
                on_first_serving=self._first_serving, on_release=self._shadow.keep,
                cache=self.book,
                save_plan=lambda plan: self._book_later(self.book.save_plan, plan),
                only=self.config.overlay)
            self.reload.start()
        except BaseException:
            await self.stop()  # nothing half-started stays behind
            raise

    async def stop(self) -> None:
        """Stop serving, write what telemetry is queued, record the stop."""
        if self.reload is not None:
            await self.reload.stop()
        self.store.close()  # ends the watch
        for runner in (self._runner, self._models_runner):
            if runner is not None:
                await runner.cleanup()
        if self._shadow is not None:
            await self._shadow.close()
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._pool is not None:
            self._pool.close()
        for session in (self._session, self._model_session):
            if session is not None:
                await session.close()
        if self._telemetry is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._telemetry.close)
        if self._tracing is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._tracing.shutdown)
        if self.gateway_id:
            await self._in_books(self.book.stopped, self.gateway_id)
        self._books.shutdown(wait=True)
        if self.reload is not None:
            self.reload.join()

    async def _in_books(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._books, lambda: fn(*args, **kwargs))

    def _book_later(self, fn: Any, *args: Any, **kwargs: Any) -> None:
        """Write to the status book off the loop, without waiting (errors are logged)."""
        def run() -> None:
            try:
                fn(*args, **kwargs)
            except Exception as err:  # the status book must never stop the data plane
                _log.warning("status book write failed: %s", err)
        with contextlib.suppress(RuntimeError):  # shut down: nothing more to record
            self._books.submit(run)

    def _record_revision(self, overlay: str, revision: int, state: str, **details: Any
                         ) -> None:
        self._book_later(self.book.revision, self.gateway_id, overlay, revision, state,
                         **details)

    def _first_serving(self, active: Active) -> None:
        """An overlay serves here for the first time: apply its retention now."""
        self._tasks = [t for t in self._tasks if not t.done()]
        self._tasks.append(asyncio.ensure_future(self._purge(active)))

    def _backend_state(self, key: str, state: str, error: str | None) -> None:
        if self.gateway_id:
            self._book_later(self.book.backend, self.gateway_id, key, state, error)

    async def wait_applied(self, name: str, revision: int, timeout: float = 30.0) -> Active:
        """Wait until ``name`` serves ``revision`` (or a later one), status book included."""
        assert self.reload is not None, "start the gateway first"
        active = await self.reload.wait_applied(name, revision, timeout)
        await self._in_books(lambda: None)  # the status book is written up to here
        return active

    # -- requests ----------------------------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """A request, traced (see :mod:`.tracing`)."""
        tracing = self._tracing
        assert tracing is not None
        path = request.path
        invoke = path.startswith(ADMIN) and path.endswith("/invoke")
        if not invoke and (path.startswith(ADMIN) or path in PROBES):
            return await self._route(request)  # the gateway's own endpoints: no spans
        with tracing.request(request.headers, request.method, path, request.host,
                             INVOKE_ROUTE if invoke else None) as span:
            response = await self._route(request)
            tracing.status(span, response.status, server=True)
            return response

    async def _route(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        if path.startswith(ADMIN) or path in PROBES:
            return await self._admin(request, path)
        target = self.directory.host_for(request.host)
        if isinstance(target, str):
            return web.Response(status=421, text=f"overlay gateway: {target}\n")
        start = time.perf_counter()
        response = await self._passthrough(request, target)
        self.metrics.host_request(target.base_url, response.status,
                                  time.perf_counter() - start)
        return response

    async def _passthrough(self, request: web.BaseRequest, target: HostTarget
                           ) -> web.StreamResponse:
        session = self._session
        assert session is not None
        extra: list[tuple[str, str]] = []
        forks: list[tuple[Active, str, bool]] = []
        for active in target.overlays:
            version, mirrored = active.route(request.headers)
            extra.append(("x-overlay-version", version))
            if target.forking and active.forks(request.method, request.path):
                forks.append((active, version, mirrored))
        try:
            tracing = self._tracing
            if tracing is None:  # the hot path: straight to the relay
                if not forks and not wants_websocket(request):
                    return await proxy_http(request, session, target.base_url, extra=extra)
                return await self._relay(request, session, target, extra, forks, None)
            parent = tracing.current()  # the request's: shadow calls are its children
            with tracing.host_call(request.method, target.base_url + request.path) as (
                    span, carrier):
                try:
                    response = await self._relay(request, session, target, extra + carrier,
                                                 forks, parent)
                except aiohttp.ClientError as err:
                    tracing.failed(span, type(err).__name__, str(err))
                    raise
                tracing.status(span, response.status, server=False)
                return response
        except aiohttp.ClientError as err:
            return web.Response(status=502, text=(
                f"overlay gateway: the host application at {target.base_url} did not answer "
                f"({type(err).__name__}: {err}); check that it is running\n"))

    async def _relay(self, request: web.BaseRequest, session: aiohttp.ClientSession,
                     target: HostTarget, extra: list[tuple[str, str]],
                     forks: list[tuple[Active, str, bool]], parent: Any
                     ) -> web.StreamResponse:
        # the gateway's trace headers (when traced) replace the caller's
        replace = TRACE_HEADERS if parent is not None else frozenset()
        if wants_websocket(request):
            return await proxy_websocket(request, session, target.base_url, extra=extra,
                                         replace=replace)
        if not forks:
            return await proxy_http(request, session, target.base_url, extra=extra,
                                    replace=replace)
        return await self._forked(request, session, target, extra, forks, parent, replace)

    async def _forked(self, request: web.BaseRequest, session: aiohttp.ClientSession,
                      target: HostTarget, extra: list[tuple[str, str]],
                      forks: list[tuple[Active, str, bool]], parent: Any,
                      replace: frozenset[str]) -> web.StreamResponse:
        length = request.content_length
        if request.body_exists and (length is None or length > FORK_BODY_LIMIT):
            # a streamed or large body goes to the host as it comes; it is not forked
            self.unforked += 1
            return await proxy_http(request, session, target.base_url, extra=extra,
                                    replace=replace)
        body = await request.read() if request.body_exists else b""
        capture = Captured(CAPTURE_LIMIT)
        try:
            response = await proxy_http(request, session, target.base_url, extra=extra,
                                        body=body, capture=capture, replace=replace)
        finally:
            inputs = _json_or_none(body)
            trace = self._trace_id(request)
            if inputs is None:
                self.unforked += 1
            for active, version, mirrored in forks:
                if inputs is None:
                    continue
                self._offer(_ShadowJob(active, version, inputs, trace, "host", capture,
                                       parent))
                if mirrored and active.plan.shadow is not None and self._forks_shadow(version):
                    self._offer(_ShadowJob(active, active.plan.shadow, inputs, trace, "host",
                                           capture, parent))
        return response

    def _authorized(self, request: web.BaseRequest) -> bool:
        token = self.config.token
        if token is None:
            return True
        given = request.headers.get("Authorization", "")
        scheme, _, value = given.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            value.strip().encode("utf-8", "surrogateescape"), token.encode("utf-8"))

    async def _admin(self, request: web.BaseRequest, path: str) -> web.StreamResponse:
        if path in ("/healthz", "/_overlay/healthz"):
            return _json_response(200, {"status": "ok",
                                        "overlays": len(self.directory.overlays)})
        if path in ("/readyz", "/_overlay/readyz"):
            ready, reason, overlays = self.readiness()
            return _json_response(200 if ready else 503, {
                "status": "ready" if ready else "not ready", "reason": reason,
                "overlays": overlays})
        if not self._authorized(request):
            if path.endswith("/invoke"):
                self.metrics.invoke_request("(unknown)", 401)  # the name is not trusted yet
            return _json_response(401, {"error": {
                "code": "unauthorized", "message": "this gateway needs a bearer token: send "
                "Authorization: Bearer <token> (the token the gateway was started with)"}},
                headers={"WWW-Authenticate": 'Bearer realm="overlay-gateway"'})
        parts = path[len(ADMIN):].split("/")
        if parts == ["status"] and request.method == "GET":
            return _json_response(200, self.snapshot())
        if parts == ["metrics"] and request.method == "GET":
            return web.Response(body=self.metrics.render(),
                                headers={"Content-Type": PROM_CONTENT_TYPE})
        if len(parts) == 2 and parts[1] == "invoke":
            if request.method != "POST":
                response = _problem(405, "method_not_allowed", "invoke takes POST with JSON "
                                    '{"inputs": ...}')
                response.headers["Allow"] = "POST"
                return response
            answer = await self._invoke(request, parts[0])
            # names the gateway does not serve share one label: callers cannot grow the series
            known = parts[0] if parts[0] in self.directory.overlays else "(unknown)"
            self.metrics.invoke_request(known, answer.status)
            return answer
        return _problem(404, "not_found", f"no gateway endpoint {path}; the gateway answers "
                        "/_overlay/{overlay}/invoke (POST), /_overlay/status, "
                        "/_overlay/metrics, /healthz and /readyz")

    async def _invoke(self, request: web.BaseRequest, name: str) -> web.StreamResponse:
        active = self.directory.overlays.get(name)
        if active is None:
            known = ", ".join(self.directory.overlays) or "none yet"
            assert self.reload is not None
            warming = self.reload.warming(name)
            state = ("still warming (its model versions are loading)" if warming
                     else "deleted" if name in self.reload.deleted
                     else "not in this gateway's store")
            return _problem(503 if warming else 404, "no_overlay",
                            f"overlay {name!r} is {state}; overlays served: {known}")
        try:
            document = await request.json(loads=json.loads)
        except ValueError as err:
            return _problem(400, "bad_json", f"the body is not JSON ({err}); send "
                            '{"inputs": {...}} with Content-Type: application/json')
        if not isinstance(document, dict) or "inputs" not in document:
            return _problem(422, "no_inputs", 'send {"inputs": ...}: one record, a list of '
                            "records, or columns", field="inputs")
        stream = document.get("stream", False)
        if not isinstance(stream, bool):
            return _problem(422, "invalid_stream", 'give "stream": true (the answer as '
                            "server-sent events) or false", field="stream")
        version, mirrored = active.route(request.headers)
        pool = self._pool
        assert pool is not None
        if stream and pool.streams(version) is False:
            return _problem(422, "no_stream", f"{version} does not stream its answers (only "
                            'chat models do); send the call without "stream"',
                            field="stream", overlay=name, version=version)
        try:
            frame = pool.prepare(version, document["inputs"])
        except PayloadError as err:
            return _problem(422, "invalid_inputs", f"{err}", field=err.field,
                            overlay=name, version=version)
        trace = self._trace_id(request)
        headers = {"x-overlay-model-version": version,
                   "x-overlay-revision": str(active.revision)}
        try:
            if stream:
                return await self._invoke_streamed(request, active, version, frame, trace,
                                                   headers)
            outcome = await self._model_call(active, version, frame, "primary", active.timeout)
            self._telemetry_record(active, version, "primary", outcome, trace,
                                   inputs=pool.sample(version, frame))
            return _answer(outcome, active, version, headers)
        finally:
            if mirrored and active.plan.shadow is not None and self._forks_shadow(version):
                # queued after the primary call: the shadow's work starts once the answer
                # is out, so it never competes with it
                self._offer(_ShadowJob(active, active.plan.shadow, document["inputs"], trace,
                                       context=self._tracing.current() if self._tracing
                                       else None))

    async def _invoke_streamed(self, request: web.BaseRequest, active: Active, version: str,
                               prepared: Any, trace: str, headers: dict[str, str]
                               ) -> web.StreamResponse:
        """A chat answer as server-sent events: ``delta`` events (``{"content": text}``) as
        the model streams, then ``done`` (why it stopped, tokens) or ``error`` (the model
        failed or stalled mid-answer). A model that fails before its first piece gets the
        usual degraded JSON answer."""
        pool = self._pool
        assert pool is not None
        with self._model_span(active, version, "primary") as span:
            call = pool.stream(version, prepared, active.timeout)
            try:
                piece = await call.next_text()
                outcome = call.outcome
                if piece is None and outcome is not None and not outcome.ok:
                    return _answer(outcome, active, version, headers)
                response = web.StreamResponse(headers={
                    **headers, "Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
                await response.prepare(request)
                while piece is not None:
                    await response.write(_sse("delta", {"content": piece}))
                    piece = await call.next_text()
                outcome = call.outcome
                assert outcome is not None
                if outcome.ok:
                    output = outcome.output or {}
                    await response.write(_sse("done", {
                        "finish_reason": output.get("finish_reason"),
                        "tokens_in": outcome.tokens_in, "tokens_out": outcome.tokens_out,
                        "version": version, "revision": active.revision}))
                else:
                    await response.write(_sse("error", {
                        "error": {"code": f"model_{outcome.status}", "message": outcome.error},
                        "degraded": True, "version": version, "revision": active.revision}))
                await response.write_eof()
                return response
            finally:
                await call.close()
                assert call.outcome is not None
                self._annotate(span, call.outcome)
                self._telemetry_record(active, version, "primary", call.outcome, trace,
                                       inputs=pool.sample(version, prepared))

    # -- the models port (mesh calls to provider versions, mirrored copies; see .mesh) --------

    async def _models_route(self, request: web.BaseRequest) -> web.StreamResponse:
        """A call the mesh sends to a version: ``POST /invocations`` in MLflow's scoring
        format, the version in ``x-overlay-version`` (the overlay's shadow version for a
        copy Istio mirrored), answered ``{"predictions": ...}`` and recorded. A mirrored
        copy for a self-hosted shadow is sent on through the mesh with the shadow's own
        ``x-overlay-version``, whose route carries no mirror (no loop); any other call to
        a self-hosted version is refused (421): its model server answers it."""
        path = request.path
        if request.method in ("GET", "HEAD") and path in ("/ping", "/health", "/healthz"):
            return _json_response(200, {"status": "ok"})
        if path != "/invocations":
            return _scoring_error(404, "ENDPOINT_NOT_FOUND", f"no endpoint {path} on the "
                                  "gateway's models port; it answers POST /invocations (MLflow's "
                                  f"scoring format) with the header {VERSION_HEADER}: "
                                  "MODEL:VERSION")
        if request.method != "POST":
            return _scoring_error(405, "METHOD_NOT_ALLOWED", "POST /invocations with a JSON "
                                  "scoring body", {"Allow": "POST"})
        host = mirror_host(request.host)
        role = "shadow" if host.mirrored else "primary"
        active = self._mesh_overlay(host.name)
        if isinstance(active, web.Response):
            return active
        named = request.headers.get(VERSION_HEADER, "").strip()
        if host.mirrored:
            # a mirrored copy still carries the primary route's header (or none): what Istio
            # mirrors to the gateway is the overlay's shadow version
            version = active.plan.shadow
            if version is None:
                return _scoring_error(404, "RESOURCE_DOES_NOT_EXIST", f"overlay "
                                      f"{active.name!r} revision {active.revision} has no "
                                      "shadow version; this mirrored call has nothing to go to")
        else:
            model, sep, number = named.partition(":")
            if not (model and sep and number):
                return _scoring_error(400, "BAD_REQUEST", f"give the version to call in the "
                                      f"header {VERSION_HEADER}: MODEL:VERSION (got "
                                      f"{named[:80]!r}); the mesh's VirtualService sets it")
            version = named
        versions = set(active.plan.versions) | (
            {active.plan.shadow} if active.plan.shadow is not None else set())
        if version not in versions:
            return _scoring_error(404, "RESOURCE_DOES_NOT_EXIST", f"{VERSION_HEADER} names "
                                  f"{version!r}, which overlay {active.name!r} revision "
                                  f"{active.revision} does not route to; it routes to "
                                  f"{', '.join(sorted(versions))}")
        pool = self._pool
        assert pool is not None
        if pool.via_mesh(version) and not host.mirrored:
            # served by its model server: a call routed here for it is misrouted, and
            # sending it on could loop. A mirrored copy is sent on through the mesh (the
            # shadow's header route carries no mirror), so the shadow's output is recorded.
            return _scoring_error(421, "MISDIRECTED_REQUEST", f"{version} is served by its "
                                  "model server behind the overlay's models Service, not by "
                                  "the gateway; check the VirtualService's route for it")
        try:
            document = await request.json(loads=json.loads)
        except ValueError as err:
            return _scoring_error(400, "BAD_REQUEST", f"the body is not JSON ({err})")
        if isinstance(document, dict) and document.get("stream") not in (None, False):
            return _scoring_error(422, "INVALID_PARAMETER_VALUE", "the models port does not "
                                  "stream answers; call the gateway's invoke endpoint for that")
        try:
            inputs = scoring_inputs(document)
            if pool.streams(version):  # a chat model: the messages of the one record
                inputs = chat_inputs(inputs)
            prepared = pool.prepare(version, inputs)
        except PayloadError as err:
            return _scoring_error(422, "INVALID_PARAMETER_VALUE", str(err), field=err.field)
        trace = self._trace_id(request)
        timeout, timeout_name = ((self.config.shadow_timeout, "the gateway's shadow_timeout")
                                 if host.mirrored else (active.timeout, "spec.slo.timeoutMs"))
        outcome = await self._model_call(active, version, prepared, role, timeout,
                                         timeout_name)
        self._telemetry_record(active, version, role, outcome, trace,
                               inputs=pool.sample(version, prepared))
        headers = {"x-overlay-model-version": version,
                   "x-overlay-revision": str(active.revision)}
        if outcome.ok:
            return _json_response(200, {"predictions": outcome.output}, headers)
        return _scoring_error(_DEGRADED.get(outcome.status, 502),
                              f"MODEL_{outcome.status.upper()}",
                              outcome.error or outcome.status, headers)

    def _mesh_overlay(self, host_name: str) -> Active | web.Response:
        """The overlay a mesh call is for: the gateway's own (``overlay``), else the one
        whose models Service the Host names, else the only one served."""
        overlays = self.directory.overlays
        name = self.config.overlay or overlay_label(host_name)
        if name is None and len(overlays) == 1:
            name = next(iter(overlays))
        active = overlays.get(name) if name is not None else None
        if active is not None:
            return active
        if name is None:
            return _scoring_error(404, "RESOURCE_DOES_NOT_EXIST", f"the Host {host_name!r} "
                                  "names no overlay's models Service (OVERLAY-models.NAMESPACE"
                                  f"...) and this gateway serves {len(overlays)} overlays; "
                                  "start it with --overlay NAME")
        assert self.reload is not None
        warming = self.reload.warming(name)
        return _scoring_error(503 if warming else 404, "RESOURCE_DOES_NOT_EXIST" if not warming
                              else "TEMPORARILY_UNAVAILABLE", f"overlay {name!r} is "
                              f"{'still loading' if warming else 'not served by this gateway'}")

    # -- shadow ------------------------------------------------------------------------------

    def _forks_shadow(self, version: str) -> bool:
        """Whether the gateway forks the shadow copy of a call to ``version`` itself: always,
        except in mesh mode for a call through the mesh, which Istio mirrors."""
        return not (self.config.mesh and self._pool is not None
                    and self._pool.via_mesh(version))

    def _offer(self, job: _ShadowJob) -> None:
        assert self._shadow is not None
        self._shadow.offer(job.version, job)

    async def _shadow_call(self, job: _ShadowJob) -> None:
        assert self._pool is not None
        role = "primary" if job.source == "host" and job.version != job.active.plan.shadow \
            else "shadow"
        host_status = host_output = None
        if job.capture is not None:
            host_status = job.capture.status or None
            host_output = _decoded(job.capture)
            if job.active.redact and not isinstance(host_output, dict | list):
                # redaction works on JSON fields: text (or JSON cut at the capture limit)
                # cannot be redacted, so it is not kept
                host_output = "[not kept: not JSON, and spec.telemetry.redact is set]"
        try:
            frame = self._pool.prepare(job.version, job.inputs)
        except PayloadError as err:
            outcome = Outcome("rejected", 0.0, error=str(err))
            inputs = job.inputs if isinstance(job.inputs, dict) else None
        else:
            outcome = await self._model_call(job.active, job.version, frame, role,
                                             self.config.shadow_timeout,
                                             "the gateway's shadow_timeout", job.context)
            inputs = self._pool.sample(job.version, frame)
        self._telemetry_record(job.active, job.version, role, outcome, job.trace_id,
                               inputs=inputs, source=job.source, host_status=host_status,
                               host_output=host_output)

    async def _model_call(self, active: Active, version: str, prepared: Any, role: str,
                          timeout: float, timeout_name: str = "spec.slo.timeoutMs",
                          parent: Any = None) -> Outcome:
        """:meth:`ModelPool.call`, in a span of its own when traced."""
        pool = self._pool
        assert pool is not None
        if self._tracing is None:
            return await pool.call(version, prepared, timeout, timeout_name)
        with self._model_span(active, version, role, parent) as span:
            outcome = await pool.call(version, prepared, timeout, timeout_name)
            self._annotate(span, outcome)
        return outcome

    @contextlib.contextmanager
    def _model_span(self, active: Active, version: str, role: str, parent: Any = None
                    ) -> Iterator[Any]:
        """A model call's span when traced (else None)."""
        if self._tracing is None or self._pool is None:
            yield None
            return
        operation, remote, attributes = self._pool.describe(version)
        with self._tracing.model_call(version, role, active.name, operation, remote,
                                      attributes, parent) as span:
            yield span

    def _annotate(self, span: Any, outcome: Outcome) -> None:
        if span is None or self._tracing is None:
            return
        span.set_attribute("overlay.outcome", outcome.status)
        if outcome.tokens_in is not None:
            span.set_attribute("gen_ai.usage.input_tokens", outcome.tokens_in)
        if outcome.tokens_out is not None:
            span.set_attribute("gen_ai.usage.output_tokens", outcome.tokens_out)
        if not outcome.ok:
            self._tracing.failed(span, outcome.status, outcome.error)

    def _trace_id(self, request: web.BaseRequest) -> str:
        """The trace a request belongs to: its span's when traced, else the caller's
        ``traceparent``'s, else a new one (telemetry records it)."""
        if self._tracing is not None:
            span = otel_trace.get_current_span()
            if span.get_span_context().is_valid:
                return Tracing.trace_id(span)
        return _trace_id(request)

    def _telemetry_record(self, active: Active, version: str, role: str, outcome: Outcome,
                          trace: str, *, inputs: Any, source: str = "invoke",
                          host_status: int | None = None, host_output: Any = None) -> None:
        assert self._telemetry is not None and self._pool is not None
        model, _, number = version.partition(":")
        # what a call that ran costs (one turned away or refused before running: nothing)
        cost = None if outcome.status in ("rejected", "invalid") else call_cost(
            self._pool.rate(version), tokens_in=outcome.tokens_in,
            tokens_out=outcome.tokens_out, busy_ms=outcome.latency_ms)
        record = CallRecord(
            overlay=active.name, revision=active.revision, model=model, version=number,
            role=role,  # type: ignore[arg-type]
            latency_ms=outcome.latency_ms, status=outcome.status, error=outcome.error,
            trace_id=trace, inputs=inputs, output=outcome.output,
            tokens_in=outcome.tokens_in, tokens_out=outcome.tokens_out, cost_nusd=cost,
            source=source,  # type: ignore[arg-type]
            host_status=host_status, host_output=host_output)
        self._telemetry.submit(record, sample_rate=active.sample_rate, redact=active.redact)
        self.metrics.model_call(active.name, version, role, outcome.status,
                                outcome.latency_ms / 1000)

    async def _purge(self, active: Active) -> None:
        """Apply the overlay's retention (``spec.telemetry.retentionDays``, default 30)."""
        days = active.spec.telemetry.retention_days if active.spec.telemetry else 30
        job = functools.partial(purge, self.telemetry_url, older_than_days=days,
                                overlay=active.name)
        try:
            await asyncio.get_running_loop().run_in_executor(None, job)
        except Exception as err:  # retention must never stop the data plane
            _log.warning("telemetry retention for %s failed: %s", active.name, err)

    async def _purge_loop(self) -> None:
        while True:
            await asyncio.sleep(PURGE_EVERY_S)
            for active in list(self.directory.overlays.values()):
                await self._purge(active)

    async def _alert_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.alert_interval)
            await self.refresh_prices()
            await self.evaluate_alerts()

    async def refresh_prices(self) -> bool:
        """Price the loaded versions' next calls from the catalog when its file changed
        since the last look (every ``alert_interval`` seconds); True when it had."""
        stamp = self._prices_file_stamp()
        if stamp == self._prices_stamp or self._pool is None:
            return False
        self._prices_stamp = stamp
        await asyncio.get_running_loop().run_in_executor(None, self._pool.reprice)
        return True

    def _prices_file_stamp(self) -> tuple[int, int] | None:
        try:  # the file is replaced whole on each edit: a new inode each time
            found = (self.home / PRICES_FILE).stat()
        except OSError:
            return None
        return found.st_ino, found.st_mtime_ns

    async def evaluate_alerts(self) -> list[Alert]:
        """Evaluate the alerts of every overlay served that asks for them (``spec.budget``,
        ``spec.drift``), off the loop; returns those raised for the first time."""
        raised: list[Alert] = []
        loop = asyncio.get_running_loop()
        for active in list(self.directory.overlays.values()):
            if active.spec.budget is None and active.spec.drift is None:
                continue
            job = functools.partial(self._evaluate, active.name, active.spec)
            try:
                raised.extend(await loop.run_in_executor(None, job))
            except Exception as err:  # an evaluation must never stop the data plane
                _log.warning("alert evaluation of %s failed: %s", active.name, err)
        for alert in raised:
            _log.warning("alert: %s", alert.message)
        return raised

    def _evaluate(self, name: str, spec: AIOverlaySpec) -> list[Alert]:
        """Evaluate one overlay's alerts over the calls since it was (re)created."""
        first = created_revision(self.store.history(name))
        return evaluate(self.telemetry_url, name, spec, registry=self.registry,
                        first_revision=first)

    def _prom_state(self) -> State:
        directory = self.directory
        return State(
            weights={n: a.plan.weights() for n, a in directory.overlays.items()},
            shadows={n: (a.plan.shadow, a.plan.shadow_percent)
                     for n, a in directory.overlays.items() if a.plan.shadow is not None},
            revisions={n: a.revision for n, a in directory.overlays.items()},
            shadow_dropped=dict(self._shadow.dropped) if self._shadow is not None else {},
            telemetry_dropped=self._telemetry.dropped if self._telemetry is not None else 0)

    # -- status ------------------------------------------------------------------------------

    def readiness(self) -> tuple[bool, str, dict[str, dict[str, Any]]]:
        """(ready, why, per overlay its state): see ``/readyz``."""
        if self.reload is None:
            return False, "the gateway is starting", {}
        return self.reload.readiness()

    def snapshot(self) -> dict[str, Any]:
        """The gateway's state as JSON-ready data (``GET /_overlay/status``)."""
        assert self._pool is not None and self._shadow is not None and self.reload is not None
        overlays = {}
        for name, active in self.directory.overlays.items():
            overlays[name] = {
                "revision": active.revision, "desiredRevision": self.reload.desired.get(name),
                "ready": self.reload.serving.get(name) == active.revision,
                "mode": active.spec.mode, "host": active.base_url,
                "appliedAt": active.applied_at.isoformat(),
                "propagationMs": round((active.applied_at - active.committed_at)
                                       .total_seconds() * 1000, 3),
                "weights": active.plan.weights(), "shadow": active.plan.shadow,
                "shadowPercent": active.plan.shadow_percent,
            }
        telemetry = self._telemetry
        ready, reason, _ = self.reload.readiness()
        return {
            "url": self.url, "overlays": overlays, "models": self._pool.states(),
            "ready": ready, "readiness": reason, "shadowMode": self.config.shadow,
            "overlay": self.config.overlay, "modelsUrl": self.config.models_url,
            "modelsListener": self.models_listen_url or None,
            "shadow": {"queued": self._shadow.queued, "dropped": self._shadow.total_dropped,
                       "unforked": self.unforked,
                       "droppedByVersion": dict(self._shadow.dropped)},
            "telemetry": {"written": telemetry.written if telemetry else 0,
                          "dropped": telemetry.dropped if telemetry else 0},
        }


def _session(passthrough: bool = True) -> aiohttp.ClientSession:
    """A pooled outbound session. ``passthrough`` (host traffic): bodies and headers pass
    untouched, compressed or not; else (models, whose answers the gateway reads) answers
    are decompressed."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, limit_per_host=MAX_PER_HOST, ttl_dns_cache=300),
        auto_decompress=not passthrough, cookie_jar=aiohttp.DummyCookieJar(),
        # no total: streams may last; a connection (pool wait included) within 30 s
        timeout=aiohttp.ClientTimeout(total=None, connect=30, sock_connect=10),
        skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept") if passthrough else (),
    )


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


def _decoded(capture: Captured) -> Any:
    text = capture.body.decode("utf-8", "replace")
    if "json" in capture.content_type:
        with contextlib.suppress(ValueError):
            return json.loads(text)
    return text
