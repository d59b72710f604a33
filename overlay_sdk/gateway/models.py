"""The gateway's model side: backends per version, loading and warming, fail-open calls.

:class:`ModelPool` holds one backend per ``model:version`` the active overlays name,
loads new ones on a loader thread and health-checks them before any traffic reaches
them (state ``warming``, then ``ready`` or ``failed``). :meth:`ModelPool.call` is the only
way to call a model, and it never raises: it gives an :class:`Outcome` within the
overlay's timeout. A circuit breaker per version turns a failing or hanging version
away at once, and a cap on calls in flight per version (each version has its own
threads, so one hanging version cannot starve another) bounds every wait.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
import pandas as pd

from overlay_sdk.adapters.chat_stream import Piece, Transcript
from overlay_sdk.analytics.cost import PriceCatalog, Rate, rate_for
from overlay_sdk.errors import OverlayError
from overlay_sdk.gateway.backends import (
    Backend,
    CallerError,
    ConfigError,
    Prediction,
    UnsupportedBackend,
    backend_for,
    describe,
)
from overlay_sdk.gateway.breaker import Breaker
from overlay_sdk.gateway.payload import sample_of
from overlay_sdk.gateway.threads import DaemonExecutor
from overlay_sdk.registry import ModelRegistry

__all__ = ["ModelPool", "Outcome", "StreamCall", "VersionState"]

VersionState = Literal["warming", "ready", "failed"]


@dataclass(frozen=True)
class Outcome:
    """What one model call gave: ``status`` ok, error, timeout, rejected (breaker open or
    too many calls in flight), invalid (the model's API refused what the caller sent) or
    aborted (the caller left a streamed answer), the output, and the latency in ms."""

    status: Literal["ok", "error", "timeout", "rejected", "invalid", "aborted"]
    latency_ms: float
    output: Any = None
    error: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class _Entry:
    key: str
    state: VersionState = "warming"
    backend: Backend | None = None
    error: str | None = None
    loading: asyncio.Future[None] | None = None
    breaker: Breaker = field(default_factory=Breaker)
    in_flight: int = 0
    executor: DaemonExecutor | None = None
    permanent: bool = False  # failed for a reason that retrying cannot fix
    rate: Rate = field(default_factory=lambda: Rate("none", why="not loaded"))


class ModelPool:
    """Backends for the versions active overlays use (see the module docstring)."""

    def __init__(
        self, registry: ModelRegistry, session: aiohttp.ClientSession, *,
        endpoints: dict[str, str] | None = None, threads_per_version: int = 4,
        max_in_flight: int = 8, max_in_flight_remote: int = 256, breaker_threshold: int = 5,
        breaker_cooldown: float = 5.0,
        load_timeout: float = 300.0, freeze_gc: bool = False,
        on_state: Callable[[str, str, str | None], None] | None = None,
        prices: Callable[[], PriceCatalog] | None = None, mesh_url: str | None = None,
    ) -> None:
        self.registry = registry
        self.mesh_url = mesh_url  # mesh mode: self-hosted versions are called there
        self.session = session
        self.endpoints = dict(endpoints or {})
        self.threads_per_version = threads_per_version
        self.max_in_flight = max_in_flight
        self.max_in_flight_remote = max_in_flight_remote
        self.breaker_threshold = breaker_threshold
        self.breaker_cooldown = breaker_cooldown
        self.load_timeout = load_timeout
        self.freeze_gc = freeze_gc
        self._on_state = on_state
        self._prices = prices
        self._entries: dict[str, _Entry] = {}
        self._running: set[asyncio.Future[Any]] = set()  # calls, abandoned ones included

    def state(self, key: str) -> tuple[VersionState, str | None] | None:
        """(state, error) of version ``key``, None when the pool does not hold it."""
        entry = self._entries.get(key)
        return (entry.state, entry.error) if entry is not None else None

    def states(self) -> dict[str, dict[str, Any]]:
        """Every held version: state, error, breaker state, calls in flight."""
        now = time.monotonic()
        return {k: {"state": e.state, "error": e.error, "breaker": e.breaker.state(now),
                    "inFlight": e.in_flight} for k, e in sorted(self._entries.items())}

    def ready(self, keys: Iterable[str]) -> bool:
        """Whether every version in ``keys`` is loaded and healthy."""
        return all((e := self._entries.get(k)) is not None and e.state == "ready" for k in keys)

    def prepare(self, key: str, inputs: Any) -> Any:
        """The input of version ``key`` for an invoke body's ``inputs`` (a DataFrame checked
        against its signature, or chat messages); PayloadError naming the field."""
        entry = self._entries.get(key)
        if entry is not None and entry.backend is not None:
            return entry.backend.prepare(inputs)
        return inputs  # not loaded (or failed to): the call says why

    def via_mesh(self, key: str) -> bool:
        """Whether calls to version ``key`` pass through the service mesh (mesh mode, a
        self-hosted version), where Istio mirrors them to the shadow version."""
        entry = self._entries.get(key)
        return entry is not None and bool(getattr(entry.backend, "mesh", False))

    def describe(self, key: str) -> tuple[str, bool, dict[str, Any]]:
        """How calls to version ``key`` appear in traces (see :func:`.backends.describe`)."""
        entry = self._entries.get(key)
        return describe(entry.backend if entry is not None else None)

    def sample(self, key: str, prepared: Any) -> dict[str, Any]:
        """What telemetry keeps of a prepared input."""
        entry = self._entries.get(key)
        if entry is not None and entry.backend is not None:
            return entry.backend.sample(prepared)
        return sample_of(prepared) if isinstance(prepared, pd.DataFrame) else {}

    def _set(self, entry: _Entry, state: VersionState, error: str | None = None) -> None:
        entry.state, entry.error = state, error
        if self._on_state is not None:
            self._on_state(entry.key, state, error)

    def permanent(self, key: str) -> bool:
        """Whether version ``key`` failed for a reason retrying cannot fix (an unsupported
        kind, or an image without an endpoint)."""
        entry = self._entries.get(key)
        return entry is not None and entry.permanent

    def _load_blocking(self, entry: _Entry, loop: asyncio.AbstractEventLoop) -> Backend:
        executor = DaemonExecutor(self.threads_per_version, f"overlay-model-{entry.key}")
        backend = backend_for(entry.key, self.registry, endpoints=self.endpoints,
                              executor=executor, session=self.session, loop=loop,
                              mesh_url=self.mesh_url)
        entry.permanent = isinstance(backend, UnsupportedBackend)
        try:
            backend.load()
        except BaseException:
            executor.shutdown(wait=False)
            raise
        entry.executor = executor
        entry.rate = self._rate(entry.key)
        return backend

    def _rate(self, key: str) -> Rate:
        """How version ``key``'s calls are priced, from the catalog as it is now (a
        catalog that cannot be read prices nothing, and says why: calls still go)."""
        if self._prices is None:
            return Rate("none", why="no price catalog")
        try:
            catalog = self._prices()
            name, version = key.split(":", 1)
            mv = self.registry.get(name, version)
            if mv.flavor == "provider":
                config = self.registry.config(name, version)
                provider = getattr(config, "provider", None)
                model = getattr(config, "params", {}).get("model")
                return rate_for(catalog, provider=provider, model=model)
            held = mv.resources
            return rate_for(catalog, gpu=held.gpu if held else None,
                            fraction=held.fraction if held else None,
                            cpu=held.cpu if held else None)
        except OverlayError as err:
            return Rate("none", why=f"prices: {err}")

    def reprice(self) -> None:
        """Price the loaded versions' calls from the catalog as it is now (the gateway
        does when the catalog file changes). Blocking: the registry is read."""
        for entry in list(self._entries.values()):
            if entry.backend is not None:
                entry.rate = self._rate(entry.key)

    def rate(self, key: str) -> Rate:
        """The price rate of version ``key`` (``none`` when it is not loaded)."""
        entry = self._entries.get(key)
        return entry.rate if entry is not None else Rate("none", why="not loaded")

    async def _load(self, entry: _Entry) -> None:
        loop = asyncio.get_running_loop()
        self._set(entry, "warming")
        # each load on a thread of its own: a load that hangs holds only itself up
        loader = DaemonExecutor(1, f"overlay-load-{entry.key}")
        try:
            backend = await asyncio.wait_for(
                loop.run_in_executor(loader, self._load_blocking, entry, loop),
                self.load_timeout)
        except TimeoutError:
            entry.permanent = True  # a retry would only leave another thread hanging
            self._set(entry, "failed", f"{entry.key} did not load and pass its health check "
                      f"within {self.load_timeout:g} s (load_timeout); check that its "
                      "prediction on the first row of its reference data returns, then "
                      "apply the overlay again")
            return
        except OverlayError as err:
            entry.permanent = entry.permanent or isinstance(err, ConfigError)
            self._set(entry, "failed", str(err))
            return
        except Exception as err:  # a model's own import or load error: report, keep serving
            self._set(entry, "failed", f"{entry.key} failed to load: "
                                       f"{type(err).__name__}: {err}")
            return
        finally:
            loader.shutdown(wait=False)
        entry.backend = backend
        entry.breaker = Breaker(self.breaker_threshold, self.breaker_cooldown)
        if self.freeze_gc:
            # A model brings its libraries' ~10^5 long-lived objects; each full collection
            # would walk them all (~0.2 s, measured). Frozen, they are left out of it.
            gc.freeze()
        self._set(entry, "ready")

    async def ensure(self, keys: Iterable[str]) -> dict[str, str]:
        """Load (or retry) every version in ``keys`` not ready yet; wait for all of them.
        Returns version -> error for those that failed."""
        keys = list(keys)
        waits = []
        for key in dict.fromkeys(keys):
            entry = self._entries.setdefault(key, _Entry(key))
            if entry.state == "ready":
                continue
            if entry.loading is None or entry.loading.done():
                entry.loading = asyncio.ensure_future(self._load(entry))
            waits.append(entry.loading)
        if waits:
            await asyncio.gather(*waits)
        failed = {}
        for key in keys:
            held = self._entries.get(key)
            if held is None:
                failed[key] = f"{key} was released while loading; it will load again"
            elif held.state == "failed":
                failed[key] = held.error or f"{key} failed to load"
        return failed

    def release(self, keep: Iterable[str]) -> None:
        """Drop the versions not in ``keep`` (no overlay uses them any more)."""
        wanted = set(keep)
        dropped = [k for k in self._entries if k not in wanted]
        unloaded = False
        for key in dropped:
            entry = self._entries[key]
            if entry.loading is not None and not entry.loading.done():
                continue  # still loading for a revision in flight
            del self._entries[key]
            if entry.backend is not None:
                entry.backend.close()
                unloaded = True
            if entry.executor is not None:
                entry.executor.shutdown(wait=False)
        if unloaded and self.freeze_gc:
            # what the unloaded versions leave behind is frozen too: let one full collection
            # (~0.1-0.2 s, once per unload) free it, then freeze what remains again
            gc.unfreeze()
            gc.collect()
            gc.freeze()

    def _admit(self, key: str) -> _Entry | str:
        """The entry of version ``key`` when it may take a call now, else why not."""
        entry = self._entries.get(key)
        if entry is None or entry.state != "ready" or entry.backend is None:
            state = entry.state if entry is not None else "not loaded"
            detail = f": {entry.error}" if entry is not None and entry.error else ""
            return f"{key} is {state}{detail}"
        now = time.monotonic()
        # a call on this process's threads holds a thread; a call over the network holds a
        # connection, and a provider's answers take seconds: remote versions get more
        remote = getattr(entry.backend, "remote", False)
        limit, setting = ((self.max_in_flight_remote, "max_in_flight_remote") if remote
                          else (self.max_in_flight, "max_in_flight"))
        if entry.in_flight >= limit:
            return (f"{key} has {entry.in_flight} calls in flight, the most allowed "
                    f"({setting}); it is too slow for the traffic it gets: give it less "
                    f"weight, or start the gateway with a higher {setting}")
        if not entry.breaker.allow(now):
            return (f"{key} circuit open after {entry.breaker.failures} failures in a row "
                    f"(last: {entry.breaker.last_error}); next try in "
                    f"{entry.breaker.retry_in(now):.1f} s")
        return entry

    def streams(self, key: str) -> bool | None:
        """Whether version ``key`` can stream its answer (chat models); None when it is
        not loaded (a call to it is refused anyway, saying why)."""
        entry = self._entries.get(key)
        if entry is None or entry.backend is None:
            return None
        return bool(getattr(entry.backend, "streams", False))

    def stream(self, key: str, prepared: Any, timeout: float,
               timeout_name: str = "spec.slo.timeoutMs") -> StreamCall:
        """A streamed call of version ``key`` (see :class:`StreamCall`); each piece must
        come within ``timeout`` seconds of the previous one (the first: of the call)."""
        entry = self._admit(key)
        if isinstance(entry, str):
            return StreamCall.refused(entry)
        return StreamCall(entry, prepared, timeout, timeout_name)

    async def call(self, key: str, frame: Any, timeout: float,
                   timeout_name: str = "spec.slo.timeoutMs") -> Outcome:
        """Call version ``key`` on ``frame`` within ``timeout`` seconds (the setting named
        ``timeout_name``); never raises."""
        start = time.perf_counter()

        def done(status: Any, output: Any = None, error: str | None = None) -> Outcome:
            return Outcome(status, (time.perf_counter() - start) * 1000, output, error)

        entry = self._admit(key)
        if isinstance(entry, str):
            return done("rejected", error=entry)
        assert entry.backend is not None
        entry.in_flight += 1
        backend = entry.backend
        # a call over the network is awaited here and cancelled at the timeout (no
        # retries, no bill, after the caller got its answer); a call on a thread cannot be
        # cancelled, so it runs as a task of its own, left to finish when it times out
        task: asyncio.Future[Any] | None = None
        if not getattr(backend, "cancellable", False):
            task = asyncio.ensure_future(backend.predict(frame))
            self._running.add(task)

            def finished(_: object) -> None:
                entry.in_flight -= 1
                self._running.discard(task)

            task.add_done_callback(finished)
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation of the
        # caller that lands as the call completes (a shadow worker then never stops)
        scope = asyncio.timeout(timeout)
        try:
            async with scope:
                if task is None:
                    try:
                        output = await backend.predict(frame)
                    finally:
                        entry.in_flight -= 1
                else:
                    output = await asyncio.shield(task)
        except TimeoutError as err:
            if not scope.expired():  # the backend's own timeout (a client limit): its failure
                message = f"{key} failed: {type(err).__name__}: {err}"[:1000]
                entry.breaker.failure(time.monotonic(), message)
                return done("error", error=message)
            message = (f"{key} did not answer within {timeout * 1000:.0f} ms "
                       f"({timeout_name}); raise the timeout or make the model faster")
            entry.breaker.failure(time.monotonic(), message)
            if task is not None:
                task.add_done_callback(_consume)
            return done("timeout", error=message)
        except CallerError as err:  # the request was at fault, not the model: no breaker
            return done("invalid", error=f"{key} refused the call: {err}"[:1000])
        except Exception as err:
            message = f"{key} failed: {type(err).__name__}: {err}"[:1000]
            entry.breaker.failure(time.monotonic(), message)
            return done("error", error=message)
        entry.breaker.success()
        if isinstance(output, Prediction):
            return Outcome("ok", (time.perf_counter() - start) * 1000, output.output, None,
                           output.tokens_in, output.tokens_out)
        return done("ok", output=output)

    def close(self) -> None:
        """Drop every backend and abandon calls still running (loads in progress end with
        their daemon threads)."""
        for task in list(self._running):
            task.cancel()
        self.freeze_gc = False  # stopping: no collection pause for what is left
        self.release(())


class StreamCall:
    """One streamed model call. ``await next_text()`` gives each piece of text as it
    comes, then None; :attr:`outcome` then says how it ended (like :meth:`ModelPool.call`'s,
    with the whole answer as output). :meth:`close` ends it early (the caller left).
    Like a call, it never raises, and it charges the version's breaker only for the
    model's failures."""

    def __init__(self, entry: _Entry | None, prepared: Any, timeout: float,
                 timeout_name: str) -> None:
        self._entry = entry
        self._timeout, self._timeout_name = timeout, timeout_name
        self._start = time.perf_counter()
        self._transcript = Transcript()
        self.outcome: Outcome | None = None
        self._pieces: AsyncIterator[Piece] | None = None
        if entry is not None:
            entry.in_flight += 1
            self._pieces = entry.backend.stream(prepared)  # type: ignore[union-attr]

    @classmethod
    def refused(cls, reason: str) -> StreamCall:
        call = cls(None, None, 0.0, "")
        call.outcome = Outcome("rejected", 0.0, error=reason)
        return call

    @property
    def text(self) -> str:
        """The text so far."""
        return "".join(self._transcript.parts)

    def _finish(self, status: Any, error: str | None = None) -> None:
        entry = self._entry
        if entry is not None:
            entry.in_flight -= 1
            if status in ("error", "timeout"):
                entry.breaker.failure(time.monotonic(), error or status)
            elif status == "ok":
                entry.breaker.success()
        result = self._transcript.result()
        self.outcome = Outcome(status, (time.perf_counter() - self._start) * 1000,
                               result.output() if status == "ok" or result.content else None,
                               error, result.tokens_in, result.tokens_out)
        self._entry = None

    async def next_text(self) -> str | None:
        """The next piece of text, or None when the answer is over (see :attr:`outcome`)."""
        if self._pieces is None or self.outcome is not None:
            return None
        key = self._entry.key if self._entry is not None else "?"
        while True:
            scope = asyncio.timeout(self._timeout)
            try:
                async with scope:
                    piece = await anext(self._pieces)
            except StopAsyncIteration:
                if not self._transcript.done:
                    self._finish("error", f"{key}'s stream ended before its last event (the "
                                 "provider or a proxy cut it)")
                    return None
                self._finish("ok")
                return None
            except TimeoutError as err:
                if not scope.expired():
                    self._finish("error", f"{key} failed: {type(err).__name__}: {err}"[:1000])
                    return None
                said = "did not start its answer" if not self._transcript.parts else (
                    "stalled in its answer")
                self._finish("timeout", f"{key} {said} within {self._timeout * 1000:.0f} ms "
                             f"({self._timeout_name}); raise the timeout or make the model "
                             "faster")
                return None
            except CallerError as err:
                self._finish("invalid", f"{key} refused the call: {err}"[:1000])
                return None
            except Exception as err:
                self._finish("error", f"{key} failed: {type(err).__name__}: {err}"[:1000])
                return None
            self._transcript.add(piece)
            if piece.text:
                return piece.text

    async def close(self) -> None:
        """End the call; one not finished yet is ``aborted`` (not the model's failure)."""
        if self.outcome is None:
            entry, self._entry = self._entry, None
            if entry is not None:
                entry.in_flight -= 1
            self._finish("aborted", "the caller went away before the answer was complete")
        pieces = self._pieces
        if pieces is not None and hasattr(pieces, "aclose"):
            await pieces.aclose()


def _consume(task: asyncio.Future[Any]) -> None:
    """Retrieve an abandoned call's result so asyncio does not log it as never retrieved."""
    if not task.cancelled():
        task.exception()
