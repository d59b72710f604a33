"""The overlay gateway (the data plane of the embedded backend).

``cp.start_gateway()`` runs one in a background thread of the notebook kernel and
returns a :class:`GatewayHandle`; ``overlay gateway --port PORT`` runs one in the
foreground (:func:`serve`). See :mod:`overlay_sdk.gateway.server` for what it does, and
:mod:`overlay_sdk.gateway.mesh` for the gateway a cluster's operator deploys (one overlay,
from the Kubernetes store, behind Istio).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import logging
import re
import signal
import threading
from collections.abc import Callable, Coroutine
from html import escape
from pathlib import Path
from typing import Any, TypeVar

from overlay_sdk.alerts import Alert
from overlay_sdk.errors import BackendError, ValidationError
from overlay_sdk.gateway.server import Gateway, GatewayConfig
from overlay_sdk.registry import ModelRegistry
from overlay_sdk.spec import DNS_LABEL
from overlay_sdk.store import Store

__all__ = ["Gateway", "GatewayConfig", "GatewayHandle", "check_config", "new_loop", "serve",
           "start_gateway"]

T = TypeVar("T")
_log = logging.getLogger("overlay_sdk.gateway")


def new_loop() -> asyncio.AbstractEventLoop:
    """A new event loop: uvloop's where installed (faster sockets), else asyncio's."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def check_config(config: GatewayConfig) -> None:
    """ValidationError naming the setting that cannot work."""
    port = config.port
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValidationError.at("port", f"give a TCP port 1-65535 (0: any free port), got "
                                 f"{port!r}")
    if config.token is not None and (not isinstance(config.token, str) or len(config.token) < 8):
        raise ValidationError.at("token", "give a bearer token of at least 8 characters, or "
                                 "None for an open gateway")
    for name in ("shadow_queue", "shadow_workers", "threads_per_version", "max_in_flight",
                 "max_in_flight_remote", "breaker_threshold"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValidationError.at(name, f"give a whole number >= 1, got {value!r}")
    for name in ("breaker_cooldown", "shadow_timeout", "load_timeout", "alert_interval"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise ValidationError.at(name, f"give a number of seconds > 0, got {value!r}")
    for key, url in config.endpoints.items():
        if ":" not in key or not str(url).startswith(("http://", "https://")):
            raise ValidationError.at(f"endpoints[{key!r}]", "map model:version to an http(s) "
                                     "URL, e.g. {'scorer:1': 'http://127.0.0.1:9000'}")
    _check_cluster(config)


def _check_cluster(config: GatewayConfig) -> None:
    """The settings of a cluster's gateway (overlay, shadow, models_url, models_port)."""
    name = config.overlay
    if name is not None and (not isinstance(name, str) or len(name) > 63
                             or not re.match(DNS_LABEL, name)):
        raise ValidationError.at("overlay", f"give the name of the overlay to serve (a DNS "
                                 f"label such as 'sales-copilot'), or None for all; got {name!r}")
    if config.shadow not in ("gateway", "mesh"):
        raise ValidationError.at("shadow", f"give 'gateway' (the gateway forks shadow copies) "
                                 f"or 'mesh' (Istio mirrors them), got {config.shadow!r}")
    url = config.models_url
    if url is not None and (not isinstance(url, str)
                            or not url.startswith(("http://", "https://"))
                            or len(url.split("://", 1)[1].strip("/")) == 0):
        raise ValidationError.at("models_url", f"give the overlay's models Service as an "
                                 f"http(s) URL, e.g. http://sales-copilot-models.team-a.svc."
                                 f"cluster.local:8080; got {url!r}")
    if config.mesh and url is None:
        raise ValidationError.at("models_url", "shadow='mesh' calls self-hosted versions "
                                 "through the mesh: give the overlay's models Service URL "
                                 "(CLI: --models-url URL, or $OVERLAY_MODELS_URL)")
    if not config.mesh and url is not None:
        raise ValidationError.at("models_url", "is used only with shadow='mesh' (self-hosted "
                                 "versions behind Istio); leave it out, or set shadow='mesh' "
                                 "(CLI: --shadow mesh, or OVERLAY_SHADOW=mesh)")
    port = config.models_port
    if port is not None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValidationError.at("models_port", f"give a TCP port 1-65535 (0: any free "
                                     f"port), or None for no models listener; got {port!r}")
        if port != 0 and port == config.port:
            raise ValidationError.at("models_port", f"is the gateway's own port ({port}); "
                                     "give the models listener a port of its own")


def _bind_error(err: OSError, config: GatewayConfig) -> BackendError:
    return BackendError(f"the gateway cannot listen on {config.host}:{config.port} "
                        f"({err.strerror or err}); choose another port (port=0 picks a free "
                        "one) or stop what uses it")


class GatewayHandle:
    """A gateway running in a background thread: ``url``, ``status()``, ``wait()``, ``stop()``.

    Use it as a context manager to stop it at the end of a block.
    """

    def __init__(self, gateway: Gateway, loop: asyncio.AbstractEventLoop,
                 thread: threading.Thread) -> None:
        self.gateway = gateway
        self._loop = loop
        self._thread = thread

    @property
    def url(self) -> str:
        """Where the gateway listens, e.g. ``http://127.0.0.1:8700``."""
        return self.gateway.url

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        if not self.running:
            coro.close()
            raise BackendError("the gateway is stopped; start a new one with cp.start_gateway()")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def status(self) -> dict[str, Any]:
        """What the gateway serves now: per overlay the applied revision, weights and
        propagation time; per model version its state; shadow and telemetry counters."""
        async def snap() -> dict[str, Any]:
            return self.gateway.snapshot()
        return self._run(snap(), timeout=10)

    def wait(self, overlay: Any, revision: int | None = None, timeout: float = 60.0) -> None:
        """Block until ``overlay`` (a name or an Overlay handle) serves ``revision`` (default:
        its current revision in the store), e.g. after ``o.set_traffic(...)``."""
        name = getattr(overlay, "name", overlay)
        if revision is None:
            revision = self.gateway.store.get(name).revision if not hasattr(
                overlay, "revision") else int(overlay.revision)
        try:
            self._run(self.gateway.wait_applied(name, revision, timeout), timeout=timeout + 5)
        except TimeoutError as err:
            raise BackendError(str(err)) from None

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every model call so far is in the telemetry store (``o.metrics()``)."""
        telemetry = self.gateway.telemetry
        if telemetry is not None:
            telemetry.flush(timeout)

    def evaluate_alerts(self, timeout: float = 120.0) -> list[Alert]:
        """Evaluate drift and budget alerts now (the gateway does every
        ``alert_interval`` seconds); returns the alerts raised for the first time."""
        self.flush()
        return self._run(self.gateway.evaluate_alerts(), timeout=timeout)

    def refresh_prices(self, timeout: float = 30.0) -> bool:
        """Price the next calls of loaded versions from the catalog, if it changed (the
        gateway looks every ``alert_interval`` seconds); True when it had."""
        return self._run(self.gateway.refresh_prices(), timeout=timeout)

    def stop(self) -> None:
        """Stop the gateway (telemetry still queued is written first). Safe to call twice."""
        if self.running:
            try:
                asyncio.run_coroutine_threadsafe(self.gateway.stop(), self._loop).result(30)
            except (RuntimeError, TimeoutError, concurrent.futures.TimeoutError) as err:
                _log.warning("the gateway did not stop cleanly within 30 s (%s); stopping "
                             "its loop anyway", err or type(err).__name__)
            finally:
                with contextlib.suppress(RuntimeError):  # the loop may be closed already
                    self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(timeout=10)

    def __enter__(self) -> GatewayHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        count = len(self.gateway.directory.overlays)
        return f"<GatewayHandle {self.url} {state}, {count} overlays>"

    def _repr_html_(self) -> str:
        state = "running" if self.running else "stopped"
        rows = "".join(
            f"<tr><td>{escape(n)}</td><td>{a.revision}</td><td>{escape(a.spec.mode)}</td>"
            f"<td>{escape(', '.join(f'{v} {w}%' for v, w in a.plan.weights().items()))}</td></tr>"
            for n, a in self.gateway.directory.overlays.items())
        return (f"<b>overlay gateway</b> <a href='{escape(self.url)}' target='_blank'>"
                f"{escape(self.url)}</a> ({state})<table><tr><th>overlay</th><th>revision</th>"
                f"<th>mode</th><th>weights</th></tr>{rows}</table>")


def start_gateway(store: Store, registry: ModelRegistry, home: str | Path,
                  config: GatewayConfig | None = None) -> GatewayHandle:
    """Start a gateway in a background thread (its own event loop) and return once it
    listens and has begun loading the store's overlays."""
    config = config or GatewayConfig()
    check_config(config)
    gateway = Gateway(store, registry, home, config)
    loop = new_loop()
    started: list[BaseException | None] = []
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(gateway.start())
            started.append(None)
        except BaseException as err:
            started.append(err)
        finally:
            ready.set()
        if started[0] is None:
            loop.run_forever()
        loop.close()

    thread = threading.Thread(target=run, name="overlay-gateway", daemon=True)
    thread.start()
    ready.wait(60)
    error = started[0] if started else BackendError("the gateway did not start within 60 s")
    if error is not None:
        with contextlib.suppress(Exception):
            store.close()
        if isinstance(error, OSError):
            raise _bind_error(error, config) from None
        raise error
    return GatewayHandle(gateway, loop, thread)


def serve(store: Store, registry: ModelRegistry, home: str | Path, config: GatewayConfig,
          *, on_start: Callable[[Gateway], None] | None = None) -> None:
    """Run a gateway in the foreground until SIGINT or SIGTERM. The gateway owns the
    process, so it keeps garbage collection short (``freeze_gc``)."""
    config = dataclasses.replace(config, freeze_gc=True)
    check_config(config)
    gateway = Gateway(store, registry, home, config)
    loop = new_loop()
    asyncio.set_event_loop(loop)
    stop = asyncio.Event()

    async def main() -> None:
        try:
            await gateway.start()
        except OSError as err:
            raise _bind_error(err, config) from None
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        if on_start is not None:
            on_start(gateway)
        await stop.wait()
        await gateway.stop()

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
