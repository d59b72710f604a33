"""Model backends: what the gateway calls for one model version.

- :class:`PyfuncBackend`: an MLflow pyfunc version (sklearn, pyfunc, onnx...) loaded from
  the registry into this process; ``predict`` runs on a worker thread, never on the event
  loop.
- :class:`HttpBackend`: a container-image version reached over HTTP at an endpoint the
  gateway was given (``endpoints={"scorer:1": "http://127.0.0.1:9000"}``), spoken to with
  MLflow's scoring protocol (``POST /invocations`` with ``dataframe_split``, answer
  ``{"predictions": ...}``), which MLflow model servers and most model containers speak.

- :class:`ChatBackend`: a provider version (OpenAI, Anthropic...) behind its API.

In mesh mode (``overlay gateway --shadow mesh``, a cluster), self-hosted versions (MLflow
models and container images) are not loaded here: an :class:`HttpBackend` calls them at
the overlay's models Service (``mesh_url``) with ``x-overlay-version: MODEL:VERSION``,
which Istio routes to the version's subset (see :mod:`overlay_sdk.k8s.render`). An
endpoint given explicitly (``--endpoint``) still wins. Provider versions are called
directly in either mode.

A backend is loaded and health-checked before any traffic reaches it: the pyfunc check
predicts the first row of the version's registered reference data when it has one; the
HTTP check calls the image's health path (or opens a TCP connection).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import pandas as pd
from yarl import URL

from overlay_sdk.adapters.chat import (
    ANTHROPIC_LEGACY,
    DIALECTS,
    ChatResult,
    Dialect,
    anthropic_version,
    messages_of,
    refused_sampling,
)
from overlay_sdk.adapters.chat_stream import STREAMERS, Piece, SSEDecoder, Streamer, stream_body
from overlay_sdk.errors import BackendError, PayloadError
from overlay_sdk.gateway.payload import Column, frame_of, jsonable, sample_of
from overlay_sdk.gateway.tracing import trace_headers
from overlay_sdk.k8s.render import VERSION_HEADER
from overlay_sdk.registry import ModelRegistry
from overlay_sdk.registry_images import ImageConfig
from overlay_sdk.registry_providers import ProviderConfig, looks_like_secret
from overlay_sdk.registry_redact import MASK

CALL_TIMEOUT = aiohttp.ClientTimeout(total=120, sock_connect=5)  # a bound for abandoned calls
# a stream may last (a long answer): bounded by the wait between reads, not in total
STREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=120)

__all__ = ["MLFLOW_HEALTH_PATH", "VERSION_HEADER", "Backend", "CallerError", "ChatBackend",
           "ConfigError", "HttpBackend", "Prediction", "PyfuncBackend", "UnsupportedBackend",
           "backend_for", "describe"]

MLFLOW_HEALTH_PATH = "/ping"  # what ``mlflow models serve`` answers health checks on


class Backend(Protocol):
    """One model version the gateway can call."""

    key: str
    columns: list[Column] | None

    def load(self) -> None:
        """Load and health-check (blocking; runs on the loader thread)."""
        ...

    def prepare(self, inputs: Any) -> Any:
        """The model input for an invoke body's ``inputs``; PayloadError naming the field."""
        ...

    def sample(self, prepared: Any) -> dict[str, Any]:
        """What telemetry keeps of the input: feature (or field) -> value."""
        ...

    async def predict(self, prepared: Any) -> Any:
        """The model's output (JSON-ready values), or a :class:`Prediction` with usage."""
        ...

    def close(self) -> None:
        """Release what :meth:`load` took."""
        ...


def describe(backend: Any) -> tuple[str, bool, dict[str, Any]]:
    """How a backend's calls appear in traces: (operation, over the network?, attributes)."""
    return (getattr(backend, "operation", "predict"), getattr(backend, "remote", False),
            dict(getattr(backend, "trace_attributes", {})))


class ConfigError(BackendError):
    """A version that cannot load as registered or configured (a refused parameter, an API
    key missing where the gateway runs): retrying cannot help."""


class CallerError(BackendError):
    """The model's API refused the call for what the caller sent (HTTP 400/413/422): the
    caller gets 422 and the version's circuit breaker is not charged."""


@dataclass(frozen=True)
class Prediction:
    """A model's output with the tokens it used (for models that count them)."""

    output: Any
    tokens_in: int | None = None
    tokens_out: int | None = None


class _Tabular:
    """Input handling of models that take a table (pyfunc and HTTP scoring models)."""

    columns: list[Column] | None

    def prepare(self, inputs: Any) -> pd.DataFrame:
        return frame_of(inputs, self.columns)

    def sample(self, prepared: Any) -> dict[str, Any]:
        return sample_of(prepared)


def _columns(model: Any) -> list[Column] | None:
    schema = model.metadata.get_input_schema()
    if schema is None or schema.is_tensor_spec() or not schema.has_input_names():
        return None
    return [Column(c.name, getattr(c.type, "name", str(c.type)), bool(c.required))
            for c in schema.inputs]


class PyfuncBackend(_Tabular):
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


class HttpBackend(_Tabular):
    """A model served over HTTP with MLflow's scoring protocol.

    ``health_path``: what answers its health check (None: a TCP connection). ``mesh``: it
    is reached through the service mesh at the overlay's models Service, every request
    carrying ``x-overlay-version: <key>`` (Istio routes on it); a 400, 413 or 422 answer
    (an MLflow server refusing the input against its signature, which the gateway cannot
    check without loading the model) is then the caller's fault, not the model's.
    """

    cancellable = True
    remote = True

    def __init__(self, key: str, endpoint: str, health_path: str | None,
                 session: aiohttp.ClientSession, loop: asyncio.AbstractEventLoop, *,
                 mesh: bool = False) -> None:
        self.key = key
        self.columns: list[Column] | None = None
        self.endpoint = endpoint.rstrip("/")
        self.mesh = mesh
        url = URL(self.endpoint)
        self.trace_attributes = {"server.address": url.host or "", "server.port": url.port or 0}
        self.health_path = health_path
        self._headers: dict[str, str] = {VERSION_HEADER: key} if mesh else {}
        self._session = session
        self._loop = loop

    @property
    def where(self) -> str:
        return (f"{self.endpoint} ({VERSION_HEADER}: {self.key})" if self.mesh
                else self.endpoint)

    async def _health(self) -> None:
        path = self.health_path
        if path is None:
            url = URL(self.endpoint)
            _, writer = await asyncio.open_connection(url.host, url.port)
            writer.close()
            return
        async with self._session.get(self.endpoint + path, headers=self._headers,
                                     timeout=aiohttp.ClientTimeout(total=5)) as resp:
            if resp.status >= 400:
                raise BackendError(f"{self.key} health check {self.endpoint}{path} answered "
                                   f"{resp.status}")

    def load(self) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self._health(), self._loop).result(timeout=10)
        except (OSError, aiohttp.ClientError, TimeoutError, concurrent.futures.TimeoutError) as err:
            fix = ("check that its model server is ready and that the overlay's models "
                   "Service and VirtualService exist (--models-url, OVERLAY_MODELS_URL)"
                   if self.mesh else "start its server or fix the endpoint given to the "
                   "gateway")
            raise BackendError(f"{self.key} at {self.where} is not reachable: "
                               f"{err or type(err).__name__}; {fix}") from None

    async def predict(self, frame: pd.DataFrame) -> Any:
        body = {"dataframe_split": {"columns": [str(c) for c in frame.columns],
                                    "data": jsonable(frame.to_numpy().tolist())}}
        async with self._session.post(self.endpoint + "/invocations", json=body,
                                      headers=trace_headers(self._headers),
                                      timeout=CALL_TIMEOUT) as resp:
            if resp.status >= 400:
                text = (await resp.text())[:300]
                error = CallerError if self.mesh and resp.status in CALLER_STATUS else (
                    BackendError)
                raise error(f"{self.key} answered {resp.status}: {text}")
            answer = await resp.json(content_type=None)
        return answer.get("predictions", answer) if isinstance(answer, dict) else answer

    def close(self) -> None:
        pass


class UnsupportedBackend(_Tabular):
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


_TOKEN = re.compile(r"[^\s\"',;]{8,}")
RETRY_STATUS = frozenset({408, 409, 429})  # and every 5xx (529: Anthropic overloaded)
CALLER_STATUS = frozenset({400, 413, 422})
RETRY_AFTER_MAX_S = 5.0
RETRIES = 2


def _backoff(headers: Any, attempt: int) -> float:
    """Seconds to wait before a retry: the provider's ``retry-after-ms`` / ``retry-after``
    (seconds) when it gives one, up to 5 s (the caller's timeout cuts it shorter), else
    0.1 s, then 0.2 s (a model call's timeout is usually under a second)."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        try:
            return float(min(RETRY_AFTER_MAX_S, max(0.0, float(value) * scale)))
        except (TypeError, ValueError):
            continue
    return 0.1 * 2.0**attempt


def _retryable(status: int, headers: Any) -> bool:
    """Whether an answer with ``status`` may pass on a retry: the provider's own
    ``x-should-retry`` (OpenAI, Anthropic) when it says, else 408/409/429 and any 5xx."""
    said = str(headers.get("x-should-retry", "")).lower()
    if said in ("true", "false"):
        return said == "true" and status >= 400
    return status in RETRY_STATUS or status >= 500


class ChatBackend:
    """A chat model behind its provider's API: OpenAI-compatible chat completions (OpenAI,
    Ollama, vLLM), Anthropic Messages or Cohere chat (:data:`~overlay_sdk.adapters.chat.
    DIALECTS`).

    The API key is read from the environment variable the version names, in this
    process, when the version loads; it is sent in the ``Authorization`` header and
    nowhere else (never logged, stored or put in an error). Failed calls the API may
    answer differently next time (429, 5xx, connection errors) are retried twice with a
    short backoff, within the caller's timeout (the gateway cancels what runs past it).
    """

    columns: list[Column] | None = None
    cancellable = True  # network I/O on the loop: a timeout cancels it, retries included
    remote = True
    operation = "chat"
    streams = True

    def __init__(self, key: str, config: ProviderConfig, dialect: Dialect, streamer: Streamer,
                 base_url: str, session: aiohttp.ClientSession) -> None:
        self.key = key
        self.base_url = base_url.rstrip("/")
        self._dialect = dialect
        self._streamer = streamer
        self._anthropic = config.provider == "anthropic"
        self._config = config
        self._session = session
        self._headers: dict[str, str] = {}
        self.trace_attributes = {"gen_ai.operation.name": "chat",
                                 "gen_ai.system": config.provider,
                                 "gen_ai.request.model": str(config.params.get("model", "")),
                                 "server.address": URL(self.base_url).host or ""}

    def load(self) -> None:
        params = self._config.params
        sampling = refused_sampling(params, params) if self._anthropic else None
        if sampling is not None:
            raise ConfigError(
                f"{self.key}: params.{sampling} is refused by Anthropic's Messages API "
                f"version {anthropic_version(params)}; register a new version without it, or "
                f'with params anthropic_version="{ANTHROPIC_LEGACY}" (the earlier version, '
                "which still takes sampling settings)")
        env = self._config.api_key_env
        if env is None:
            return
        secret = os.environ.get(env)
        if not secret:
            raise ConfigError(f"{self.key} needs its API key in the environment variable "
                               f"{env}, which is not set where the gateway runs; set it and "
                               "start the gateway again")
        self._headers = self._dialect.auth(secret, params)

    def prepare(self, inputs: Any) -> tuple[list[dict[str, str]], dict[str, Any]]:
        messages, settings = messages_of(inputs)
        if self._anthropic:
            if all(m["role"] == "system" for m in messages):
                raise PayloadError("inputs.messages", "Anthropic needs a user message beside "
                                   "the system ones")
            sampling = refused_sampling(settings, self._config.params)
            if sampling is not None:
                raise PayloadError(f"inputs.{sampling}", "Anthropic's Messages API version "
                                   f"{anthropic_version(self._config.params)} refuses sampling "
                                   "settings; leave it out")
        return messages, settings

    def sample(self, prepared: Any) -> dict[str, Any]:
        messages, _ = prepared
        last = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        return {"prompt": last, "messages": len(messages)}

    async def _open(self, body: dict[str, Any], timeout: aiohttp.ClientTimeout = CALL_TIMEOUT
                    ) -> aiohttp.ClientResponse:
        """POST ``body``; the answer once it is not an error worth retrying (retried twice
        as the class docstring says); raises for an error answer, with its text scrubbed."""
        url = f"{self.base_url}{self._dialect.path}"
        for attempt in range(RETRIES + 1):
            try:
                resp = await self._session.post(url, json=body,
                                                headers=trace_headers(self._headers),
                                                timeout=timeout)
            except aiohttp.ClientConnectionError:
                if attempt == RETRIES:
                    raise
                await asyncio.sleep(_backoff({}, attempt))
                continue
            if _retryable(resp.status, resp.headers) and attempt < RETRIES:
                resp.release()
                await asyncio.sleep(_backoff(resp.headers, attempt))
                continue
            if resp.status >= 400:
                try:
                    text = self._scrub(await resp.text())[:300]
                finally:
                    resp.release()
                error = CallerError if resp.status in CALLER_STATUS else BackendError
                raise error(f"{self.key} ({self._config.source}) answered "
                            f"{resp.status}: {text}")
            return resp
        raise AssertionError("unreachable")  # pragma: no cover

    def _read(self, answer: Any) -> ChatResult:
        try:
            return self._dialect.result(answer)
        except ValueError as err:
            raise BackendError(f"{self.key} ({self._config.source}): "
                               f"{self._scrub(str(err))}") from None

    async def predict(self, prepared: Any) -> Prediction:
        messages, settings = prepared
        body = self._dialect.request(self._config.params, messages, settings)
        resp = await self._open(body)
        try:
            answer = await resp.json(content_type=None)
        finally:
            resp.release()
        result = self._read(answer)
        return Prediction(result.output(), result.tokens_in, result.tokens_out)

    async def stream(self, prepared: Any) -> AsyncIterator[Piece]:
        """The answer as the provider streams it, piece by piece. An answer that is not an
        event stream (a provider that ignores ``stream``) comes as one piece."""
        messages, settings = prepared
        body = stream_body(self._dialect.request(self._config.params, messages, settings),
                           self._streamer)
        resp = await self._open(body, STREAM_TIMEOUT)
        finished = False  # read to its end: the connection goes back to the pool
        try:
            if "text/event-stream" not in resp.headers.get("Content-Type", ""):
                result = self._read(await resp.json(content_type=None))
                finished = True
                yield Piece(result.content, result.finish_reason, result.tokens_in,
                            result.tokens_out, done=True)
                return
            decoder = SSEDecoder()
            async for chunk in resp.content.iter_any():
                for event, data in decoder.feed(chunk):
                    try:
                        piece = self._streamer.piece(event, data)
                    except ValueError as err:
                        raise BackendError(f"{self.key} ({self._config.source}): "
                                           f"{self._scrub(str(err))}") from None
                    if piece is None:
                        continue
                    if piece.error is not None:
                        raise BackendError(f"{self.key} ({self._config.source}) broke off its "
                                           f"answer: {self._scrub(piece.error)[:300]}")
                    yield piece
            finished = True
        finally:
            if finished:
                resp.release()
            else:  # broken off (error, timeout, the caller left): drop the connection
                resp.close()

    def _scrub(self, text: str) -> str:
        """A provider's error text without the key, whole or partly masked by the provider
        ("Incorrect API key provided: sk-...wxyz"), nor anything else that looks secret: it
        goes to the caller and to telemetry."""
        for value in self._headers.values():
            secret = value.removeprefix("Bearer ")
            if len(secret) >= 4:  # (shorter is no secret worth the name, and would mask words)
                text = text.replace(secret, MASK)
        return _TOKEN.sub(lambda m: MASK if looks_like_secret(m.group(0).strip("\"'.,:;"))
                          else m.group(0), text)

    def close(self) -> None:
        self._headers = {}


def backend_for(
    key: str, registry: ModelRegistry, *, endpoints: Mapping[str, str],
    executor: concurrent.futures.Executor, session: aiohttp.ClientSession,
    loop: asyncio.AbstractEventLoop, mesh_url: str | None = None,
) -> Backend:
    """The backend for version ``key`` (``model:version``), not yet loaded (blocking: reads
    the registry, so call it on the loader thread). ``mesh_url``: mesh mode, where
    self-hosted versions are called at the overlay's models Service (see the module
    docstring)."""
    name, version = key.split(":", 1)
    mv = registry.get(name, version)
    if mv.flavor == "provider":
        provider = registry.config(name, version)
        assert isinstance(provider, ProviderConfig)
        dialect = DIALECTS.get(provider.provider)
        if dialect is None:
            return UnsupportedBackend(key, f"{key} is a {provider.provider} model "
                                      f"({mv.source}); the gateway speaks "
                                      f"{', '.join(DIALECTS)}")
        base = endpoints.get(key) or provider.params.get("base_url") or dialect.base_url
        return ChatBackend(key, provider, dialect, STREAMERS[provider.provider], str(base),
                           session)
    endpoint = endpoints.get(key)
    if mv.flavor == "image":
        config = registry.config(name, version)
        assert isinstance(config, ImageConfig)
        if endpoint is not None:
            return HttpBackend(key, endpoint, config.health_path, session, loop)
        if mesh_url is not None:
            return HttpBackend(key, mesh_url, config.health_path, session, loop, mesh=True)
        return UnsupportedBackend(
            key, f"{key} is a container image ({mv.source}) and the gateway has no "
            f"endpoint for it; run the container and start the gateway with "
            f"endpoints={{{key!r}: 'http://HOST:PORT'}} (CLI: --endpoint {key}=URL)")
    if mesh_url is not None:  # an MLflow model, served by ``mlflow models serve`` in the mesh
        if endpoint is not None:
            return HttpBackend(key, endpoint, MLFLOW_HEALTH_PATH, session, loop)
        return HttpBackend(key, mesh_url, MLFLOW_HEALTH_PATH, session, loop, mesh=True)
    return PyfuncBackend(key, registry, executor)
