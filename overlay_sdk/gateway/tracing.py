"""OpenTelemetry tracing of the gateway: one span per request, host call and model call.

What a traced request gives (names and attributes follow OpenTelemetry's HTTP and GenAI
semantic conventions):

- a ``SERVER`` span for the request (``POST /_overlay/{overlay}/invoke``, or the method
  for host traffic), child of the caller's W3C ``traceparent`` when it sends one;
- a ``CLIENT`` span for the call to the host application, whose own ``traceparent`` is
  sent to the host (replacing the caller's, so the host's spans hang under the gateway's);
- a span per model call, primary or shadow (``overlay.role``): ``predict fraud:2`` for
  a model in this process (``INTERNAL``), ``chat copilot:1`` for a provider model and
  ``predict scorer:1`` for a container (``CLIENT``, ``traceparent`` sent to it). A
  shadow call is a child of the request span it was forked from, even though it runs
  after the answer went out.

Tracing is off unless configured, and then costs nothing on the request path. It is on
when the gateway is given a ``tracer_provider``, when the standard ``OTEL_*`` variables
name an exporter (``OTEL_TRACES_EXPORTER=otlp|console``, or an
``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT``), or when the process already has an SDK
tracer provider (``opentelemetry-instrument``, or one set in a notebook). The SDK reads
the rest of its settings (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``,
``OTEL_TRACES_SAMPLER``, ``OTEL_BSP_*``, ``OTEL_EXPORTER_OTLP_*``) itself.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from overlay_sdk.errors import ValidationError

__all__ = ["TRACE_HEADERS", "Tracing", "exporter_names", "otlp_protocol", "trace_headers",
           "tracing_from"]

TRACE_HEADERS = frozenset({"traceparent", "tracestate"})
SCOPE = "overlay_sdk.gateway"
_EXPORTERS = ("otlp", "console", "none")
_PROTOCOLS = ("http/protobuf", "grpc")
_TRUE = ("true", "1", "yes")


def exporter_names(environ: Mapping[str, str]) -> list[str]:
    """The span exporters the ``OTEL_*`` variables ask for (pure).

    ``OTEL_TRACES_EXPORTER`` (comma-separated) when set; else ``otlp`` when an OTLP
    endpoint is set; else none: a gateway nobody configured exports nothing (rather than
    OpenTelemetry's default, OTLP to localhost, which would fail on every machine without
    a collector). ``OTEL_SDK_DISABLED=true`` turns everything off."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() in _TRUE:
        return []
    given = environ.get("OTEL_TRACES_EXPORTER", "").strip()
    if not given:
        endpoint = (environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                    or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
        return ["otlp"] if endpoint else []
    names = [n.strip().lower() for n in given.split(",") if n.strip()]
    for name in names:
        if name not in _EXPORTERS:
            raise ValidationError.at("OTEL_TRACES_EXPORTER", f"{name!r} is not a span exporter "
                                     f"the gateway knows; use {', '.join(_EXPORTERS)}")
    return [] if "none" in names else list(dict.fromkeys(names))


def otlp_protocol(environ: Mapping[str, str]) -> str:
    """The OTLP protocol asked for: ``http/protobuf`` (the default) or ``grpc`` (pure)."""
    for variable in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        value = environ.get(variable, "").strip().lower()
        if value:
            if value not in _PROTOCOLS:
                raise ValidationError.at(variable, f"{value!r} is not supported; use "
                                         f"{' or '.join(_PROTOCOLS)}")
            return value
    return "http/protobuf"


def _exporter(name: str, environ: Mapping[str, str]) -> Any:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter
        return ConsoleSpanExporter()
    if otlp_protocol(environ) == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found]
                OTLPSpanExporter as GrpcExporter,
            )
        except ImportError:
            raise ValidationError.at("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc needs the package "
                                     "opentelemetry-exporter-otlp-proto-grpc: pip install it, "
                                     "or use http/protobuf (port 4318)") from None
        return GrpcExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    return OTLPSpanExporter()


def _provider_from_env(environ: Mapping[str, str]) -> Any:
    """An SDK tracer provider exporting where the ``OTEL_*`` variables say, or None."""
    names = exporter_names(environ)
    if not names:
        return None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    named = environ.get("OTEL_SERVICE_NAME") or "service.name=" in environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", "")
    resource = Resource.create({} if named else {"service.name": "overlay-gateway"})
    provider = TracerProvider(resource=resource)  # sampler from OTEL_TRACES_SAMPLER
    for name in names:
        provider.add_span_processor(BatchSpanProcessor(_exporter(name, environ)))
    return provider


def _process_provider() -> Any:
    """The process's own SDK tracer provider, when something set one; else None."""
    provider = trace.get_tracer_provider()
    try:
        from opentelemetry.sdk.trace import TracerProvider
    except ImportError:  # pragma: no cover - the SDK is a dependency
        return None
    return provider if isinstance(provider, TracerProvider) else None


def trace_headers(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` plus the current span's ``traceparent`` (a copy), or ``headers`` itself
    when no span is recording: what a backend sends a model over HTTP."""
    if not trace.get_current_span().get_span_context().is_valid:
        return headers
    out = dict(headers)
    propagate.inject(out)
    return out


class Tracing:
    """The gateway's spans through one tracer provider (see the module docstring)."""

    def __init__(self, provider: Any, *, owned: bool = False) -> None:
        from overlay_sdk import __version__

        self.provider = provider
        self.tracer = provider.get_tracer(SCOPE, __version__)
        self._owned = owned  # built here from the environment: shut down with the gateway

    @contextlib.contextmanager
    def request(self, headers: Mapping[str, str], method: str, path: str, host: str | None,
                route: str | None = None) -> Iterator[Span]:
        """The request's ``SERVER`` span, current while the request is handled, child of the
        caller's ``traceparent`` when there is one."""
        parent = propagate.extract(headers)
        attributes: dict[str, Any] = {"http.request.method": method, "url.path": path}
        if host:
            name, _, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
            if name and port.isdigit():
                attributes["server.address"], attributes["server.port"] = name, int(port)
            else:
                attributes["server.address"] = host
        if route is not None:
            attributes["http.route"] = route
        name = f"{method} {route}" if route is not None else method
        with self.tracer.start_as_current_span(
                name, context=parent, kind=SpanKind.SERVER, attributes=attributes,
                record_exception=False, set_status_on_exception=False) as span:
            yield span

    @contextlib.contextmanager
    def host_call(self, method: str, url: str) -> Iterator[tuple[Span, list[tuple[str, str]]]]:
        """The ``CLIENT`` span of a call to the host, with the trace headers to send it
        (``url``: without the query, which may carry what is not the trace's to keep)."""
        with self.tracer.start_as_current_span(
                method, kind=SpanKind.CLIENT,
                attributes={"http.request.method": method, "url.full": url},
                record_exception=False, set_status_on_exception=False) as span:
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            yield span, list(carrier.items())

    @contextlib.contextmanager
    def model_call(self, key: str, role: str, overlay: str, operation: str, remote: bool,
                   attributes: Mapping[str, Any], parent: Any = None) -> Iterator[Span]:
        """A model call's span (``parent``: the request's context, for shadow calls)."""
        kind = SpanKind.CLIENT if remote else SpanKind.INTERNAL
        with self.tracer.start_as_current_span(
                f"{operation} {key}", context=parent, kind=kind,
                attributes={"overlay.name": overlay, "overlay.model.version": key,
                            "overlay.role": role, **attributes},
                record_exception=False, set_status_on_exception=False) as span:
            yield span

    @staticmethod
    def current() -> Any:
        """The current context, to make later spans (shadow calls) children of this one."""
        return otel_context.get_current()

    @staticmethod
    def trace_id(span: Span) -> str:
        return format(span.get_span_context().trace_id, "032x")

    @staticmethod
    def status(span: Span, http_status: int, server: bool) -> None:
        """Record an HTTP status: an error is 5xx for a server span, 4xx too for a client."""
        span.set_attribute("http.response.status_code", http_status)
        if http_status >= 500 or (not server and http_status >= 400):
            span.set_status(Status(StatusCode.ERROR))
            span.set_attribute("error.type", str(http_status))

    @staticmethod
    def failed(span: Span, error_type: str, message: str | None) -> None:
        span.set_status(Status(StatusCode.ERROR, message))
        span.set_attribute("error.type", error_type)

    def shutdown(self) -> None:
        """Export what is buffered (only for a provider this module made)."""
        if self._owned:
            self.provider.shutdown()


def tracing_from(provider: Any = None, environ: Mapping[str, str] | None = None
                 ) -> Tracing | None:
    """The gateway's tracing: ``provider`` when given, else one from the ``OTEL_*``
    variables, else the process's SDK provider, else None (off)."""
    if provider is not None:
        return Tracing(provider)
    environ = os.environ if environ is None else environ
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() in _TRUE:
        return None
    built = _provider_from_env(environ)
    if built is not None:
        return Tracing(built, owned=True)
    existing = _process_provider()
    return Tracing(existing) if existing is not None else None
