"""Model backends: what the gateway calls for one model version.

- :class:`PyfuncBackend`: an MLflow pyfunc version (sklearn, pyfunc, onnx...) loaded from
  the registry into this process; ``predict`` runs on a worker thread, never on the event
  loop.
- :class:`HttpBackend`: a container-image version reached over HTTP at an endpoint the
  gateway was given (``endpoints={"scorer:1": "http://127.0.0.1:9000"}``), spoken to with
  MLflow's scoring protocol (``POST /invocations`` with ``dataframe_split``, answer
  ``{"predictions": ...}``), which MLflow model servers and most model containers speak.

Provider versions (OpenAI, Anthropic...) get their backends with the provider
integrations; until then a route to one is reported ``unsupported`` and its calls get a
degraded answer.

A backend is loaded and health-checked before any traffic reaches it: the pyfunc check
predicts the first row of the version's registered reference data when it has one; the
HTTP check calls the image's health path (or opens a TCP connection).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any, Protocol

import aiohttp
import pandas as pd
from yarl import URL

from overlay_sdk.errors import BackendError
from overlay_sdk.gateway.payload import Column, jsonable
from overlay_sdk.registry import ModelRegistry
from overlay_sdk.registry_images import ImageConfig

CALL_TIMEOUT = aiohttp.ClientTimeout(total=120, sock_connect=5)  # a bound for abandoned calls

__all__ = ["Backend", "HttpBackend", "PyfuncBackend", "UnsupportedBackend", "backend_for"]


class Backend(Protocol):
    """One model version the gateway can call."""

    key: str
    columns: list[Column] | None

    def load(self) -> None:
        """Load and health-check (blocking; runs on the loader thread)."""
        ...

    async def predict(self, frame: pd.DataFrame) -> Any:
        """The model's output for ``frame``, as JSON-ready values."""
        ...

    def close(self) -> None:
        """Release what :meth:`load` took."""
        ...


def _columns(model: Any) -> list[Column] | None:
    schema = model.metadata.get_input_schema()
    if schema is None or schema.is_tensor_spec() or not schema.has_input_names():
        return None
    return [Column(c.name, getattr(c.type, "name", str(c.type)), bool(c.required))
            for c in schema.inputs]


class PyfuncBackend:
    """An MLflow pyfunc model version held in this process."""

    def __init__(self, key: str, registry: ModelRegistry,
                 executor: concurrent.futures.Executor) -> None:
        self.key = key
        self.columns: list[Column] | None = None
        self._registry = registry
        self._executor = executor
        self._model: Any = None

    def load(self) -> None:
        name, version = self.key.split(":", 1)
        model = self._registry.load(name, version)
        columns = _columns(model)
        reference = self._registry.reference(name, version)
        if reference is not None and len(reference):
            sample = reference.head(1)
            if columns:
                sample = sample[[c.name for c in columns if c.name in sample.columns]]
            try:
                model.predict(sample)
            except Exception as err:
                raise BackendError(f"{self.key} failed its health check (predicting the "
                                   f"first row of its reference data): {err}") from None
        self._model, self.columns = model, columns

    def _predict(self, frame: pd.DataFrame) -> Any:
        model = self._model
        if model is None:
            raise BackendError(f"{self.key} was unloaded (no overlay routes to it any more)")
        return jsonable(model.predict(frame))

    async def predict(self, frame: pd.DataFrame) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._predict, frame)

    def close(self) -> None:
        self._model = None


class HttpBackend:
    """A model served over HTTP with MLflow's scoring protocol."""

    def __init__(self, key: str, endpoint: str, config: ImageConfig,
                 session: aiohttp.ClientSession, loop: asyncio.AbstractEventLoop) -> None:
        self.key = key
        self.columns: list[Column] | None = None
        self.endpoint = endpoint.rstrip("/")
        self._config = config
        self._session = session
        self._loop = loop

    async def _health(self) -> None:
        path = self._config.health_path
        if path is None:
            url = URL(self.endpoint)
            _, writer = await asyncio.open_connection(url.host, url.port)
            writer.close()
            return
        async with self._session.get(self.endpoint + path,
                                     timeout=aiohttp.ClientTimeout(total=5)) as resp:
            if resp.status >= 400:
                raise BackendError(f"{self.key} health check {self.endpoint}{path} answered "
                                   f"{resp.status}")

    def load(self) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self._health(), self._loop).result(timeout=10)
        except (OSError, aiohttp.ClientError, TimeoutError, concurrent.futures.TimeoutError) as err:
            raise BackendError(f"{self.key} at {self.endpoint} is not reachable: "
                               f"{err or type(err).__name__}; start its server or fix the "
                               "endpoint given to the gateway") from None

    async def predict(self, frame: pd.DataFrame) -> Any:
        body = {"dataframe_split": {"columns": [str(c) for c in frame.columns],
                                    "data": jsonable(frame.to_numpy().tolist())}}
        async with self._session.post(self.endpoint + "/invocations", json=body,
                                      timeout=CALL_TIMEOUT) as resp:
            if resp.status >= 400:
                text = (await resp.text())[:300]
                raise BackendError(f"{self.key} answered {resp.status}: {text}")
            answer = await resp.json(content_type=None)
        return answer.get("predictions", answer) if isinstance(answer, dict) else answer

    def close(self) -> None:
        pass


class UnsupportedBackend:
    """A version this gateway cannot serve; loading it fails with the reason."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.columns: list[Column] | None = None
        self.reason = reason

    def load(self) -> None:
        raise BackendError(self.reason)

    async def predict(self, frame: pd.DataFrame) -> Any:
        raise BackendError(self.reason)

    def close(self) -> None:
        pass


def backend_for(
    key: str, registry: ModelRegistry, *, endpoints: dict[str, str],
    executor: concurrent.futures.Executor, session: aiohttp.ClientSession,
    loop: asyncio.AbstractEventLoop,
) -> Backend:
    """The backend for version ``key`` (``model:version``), not yet loaded (blocking: reads
    the registry, so call it on the loader thread)."""
    name, version = key.split(":", 1)
    mv = registry.get(name, version)
    if mv.flavor == "provider":
        return UnsupportedBackend(key, f"{key} is a provider model ({mv.source}); this "
                                  "gateway does not call provider models yet")
    if mv.flavor == "image":
        endpoint = endpoints.get(key)
        if endpoint is None:
            return UnsupportedBackend(
                key, f"{key} is a container image ({mv.source}) and the gateway has no "
                f"endpoint for it; run the container and start the gateway with "
                f"endpoints={{{key!r}: 'http://HOST:PORT'}} (CLI: --endpoint {key}=URL)")
        config = registry.config(name, version)
        assert isinstance(config, ImageConfig)
        return HttpBackend(key, endpoint, config, session, loop)
    return PyfuncBackend(key, registry, executor)
