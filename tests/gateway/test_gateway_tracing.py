"""OpenTelemetry tracing through the gateway (issue 5): one trace per request, with the
request, host call, model calls and shadow calls in it, the caller's ``traceparent``
honoured and the gateway's own passed on to the host and to models over HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from gateway_support import ROW
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from providers_support import KEY, FakeProviders, LoopbackApp

from overlay_sdk.client import ControlPlane, Overlay
from overlay_sdk.errors import ValidationError
from overlay_sdk.gateway import GatewayHandle
from overlay_sdk.gateway.tracing import exporter_names, otlp_protocol
from overlay_sdk.telemetry import read_calls

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE}-{PARENT}-01"


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture(scope="module")
def traced(plane: ControlPlane, spans: InMemorySpanExporter, fake: FakeProviders,
           echo_url: str) -> Iterator[tuple[GatewayHandle, dict[str, Overlay]]]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    os.environ["OVERLAY_TEST_TRACE_KEY"] = KEY
    chat = plane.models.register("traced-chat", provider="openai",
                                 params={"model": "gpt-4o-mini"},
                                 api_key_env="OVERLAY_TEST_TRACE_KEY")
    made = {
        "scored": plane.overlays.create("scored", host=echo_url, routes={"fraud:1": 100},
                                        shadow="fraud:2"),
        "chatty": plane.overlays.create("chatty", host=echo_url, routes={str(chat): 100}),
        "watched": plane.overlays.create("watched", host=echo_url, mode="shadow",
                                         routes={"fraud:2": 100},
                                         match={"method": "POST", "path": "/echo/score"}),
    }
    with plane.start_gateway(port=0, tracer_provider=provider,
                             endpoints={str(chat): fake.url + "/v1"}) as gw:
        for o in made.values():
            gw.wait(o)
        yield gw, made
    for name in made:
        plane.overlays.delete(name)
    del os.environ["OVERLAY_TEST_TRACE_KEY"]


def _post(url: str, body: Any, headers: dict[str, str] | None = None
          ) -> tuple[int, Any]:
    async def go() -> tuple[int, Any]:
        async with aiohttp.ClientSession() as s, s.post(url, json=body,
                                                         headers=headers or {}) as r:
            return r.status, await r.json()
    return asyncio.run(go())


def _wait_for(spans: InMemorySpanExporter, trace_id: str, count: int, timeout: float = 10
              ) -> list[ReadableSpan]:
    deadline = time.monotonic() + timeout
    while True:
        found = [s for s in spans.get_finished_spans()
                 if format(s.context.trace_id, "032x") == trace_id]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def _by_name(found: list[ReadableSpan]) -> dict[str, ReadableSpan]:
    return {s.name: s for s in found}


def test_an_invoke_is_one_trace_under_the_callers_traceparent(
        traced: tuple[GatewayHandle, dict[str, Overlay]], spans: InMemorySpanExporter,
        plane: ControlPlane) -> None:
    gw, _ = traced
    status, body = _post(f"{gw.url}/_overlay/scored/invoke", {"inputs": ROW},
                         {"traceparent": TRACEPARENT})
    assert status == 200, body
    found = _by_name(_wait_for(spans, TRACE, 3))
    request = found["POST /_overlay/{overlay}/invoke"]
    primary, shadow = found["predict fraud:1"], found["predict fraud:2"]
    # the request continues the caller's trace, under the caller's span
    assert request.kind == SpanKind.SERVER
    assert request.parent is not None and request.parent.is_remote
    assert format(request.parent.span_id, "016x") == PARENT
    assert request.attributes is not None
    assert request.attributes["http.response.status_code"] == 200
    assert request.attributes["http.route"] == "/_overlay/{overlay}/invoke"
    # the primary and the shadow call are children of the request
    for child, role in ((primary, "primary"), (shadow, "shadow")):
        assert child.parent is not None and child.parent.span_id == request.context.span_id
        assert child.kind == SpanKind.INTERNAL  # in this process
        assert child.attributes is not None
        assert child.attributes["overlay.role"] == role
        assert child.attributes["overlay.name"] == "scored"
        assert child.attributes["overlay.outcome"] == "ok"
    # telemetry keeps the trace id beside each call
    gw.flush()
    calls = read_calls(plane.telemetry_url, overlay="scored")
    assert set(calls["trace_id"]) == {TRACE}


def test_a_request_without_traceparent_starts_a_trace(
        traced: tuple[GatewayHandle, dict[str, Overlay]], spans: InMemorySpanExporter) -> None:
    gw, _ = traced
    spans.clear()
    status, _ = _post(f"{gw.url}/_overlay/scored/invoke", {"inputs": ROW})
    assert status == 200
    deadline = time.monotonic() + 10
    while len(spans.get_finished_spans()) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    request = _by_name(list(spans.get_finished_spans()))["POST /_overlay/{overlay}/invoke"]
    assert request.parent is None  # a root span


def test_host_traffic_gets_a_client_span_and_the_host_its_traceparent(
        traced: tuple[GatewayHandle, dict[str, Overlay]], spans: InMemorySpanExporter) -> None:
    gw, _ = traced
    trace = "4" * 32
    status, seen = _post(f"{gw.url}/echo/x", {"a": 1}, {
        "traceparent": f"00-{trace}-{PARENT}-01", "tracestate": "vendor=1"})
    assert status == 200
    found = _wait_for(spans, trace, 2)
    server = [s for s in found if s.kind == SpanKind.SERVER and s.name == "POST"]
    client = [s for s in found if s.kind == SpanKind.CLIENT and s.name == "POST"]
    assert server and client
    request, host = server[-1], client[-1]
    assert host.parent is not None and host.parent.span_id == request.context.span_id
    assert host.attributes is not None and host.attributes["http.response.status_code"] == 200
    # the host sees one traceparent: the gateway's host-call span, in the caller's trace
    sent = [v for k, v in seen["headers"] if k.lower() == "traceparent"]
    assert sent == [f"00-{trace}-{format(host.context.span_id, '016x')}-01"]
    assert [v for k, v in seen["headers"] if k.lower() == "tracestate"] == ["vendor=1"]


def test_a_host_error_marks_the_spans(
        traced: tuple[GatewayHandle, dict[str, Overlay]], spans: InMemorySpanExporter) -> None:
    gw, _ = traced
    trace = "5" * 32
    status, _ = _post(f"{gw.url}/echo?status=503", {}, {"traceparent": f"00-{trace}-{PARENT}-01"})
    assert status == 503
    found = _wait_for(spans, trace, 2)
    assert {s.kind for s in found} == {SpanKind.SERVER, SpanKind.CLIENT}
    assert all(s.status.status_code == StatusCode.ERROR for s in found)


def test_forked_host_requests_trace_the_model_call_under_the_request(
        traced: tuple[GatewayHandle, dict[str, Overlay]], spans: InMemorySpanExporter) -> None:
    gw, _ = traced
    trace = "6" * 32
    status, _ = _post(f"{gw.url}/echo/score", ROW, {"traceparent": f"00-{trace}-{PARENT}-01"})
    assert status == 200
    found = _wait_for(spans, trace, 3)
    request = next(s for s in found if s.kind == SpanKind.SERVER)
    model = next(s for s in found if s.name == "predict fraud:2")
    assert model.parent is not None and model.parent.span_id == request.context.span_id
    assert model.attributes is not None and model.attributes["overlay.name"] == "watched"


def test_a_provider_call_is_a_genai_client_span_and_the_provider_gets_traceparent(
        traced: tuple[GatewayHandle, dict[str, Overlay]], spans: InMemorySpanExporter,
        fake: FakeProviders) -> None:
    gw, _ = traced
    trace = "7" * 32
    status, body = _post(f"{gw.url}/_overlay/chatty/invoke", {"inputs": "hello"},
                         {"traceparent": f"00-{trace}-{PARENT}-01"})
    assert status == 200, body
    found = _wait_for(spans, trace, 2)
    chat = next(s for s in found if s.name.startswith("chat traced-chat:"))
    assert chat.kind == SpanKind.CLIENT
    assert chat.attributes is not None
    assert chat.attributes["gen_ai.system"] == "openai"
    assert chat.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert chat.attributes["gen_ai.usage.input_tokens"] == 11
    assert chat.attributes["gen_ai.usage.output_tokens"] == 3
    _, _, headers = fake.requests[-1]
    assert headers["traceparent"] == f"00-{trace}-{format(chat.context.span_id, '016x')}-01"
    assert KEY not in json.dumps([dict(s.attributes or {}) for s in found])


def test_a_failed_model_call_is_an_error_span(
        traced: tuple[GatewayHandle, dict[str, Overlay]], spans: InMemorySpanExporter) -> None:
    gw, _ = traced
    trace = "8" * 32
    status, _ = _post(f"{gw.url}/_overlay/chatty/invoke", {"inputs": "fail"},
                      {"traceparent": f"00-{trace}-{PARENT}-01"})
    assert status == 502
    found = _wait_for(spans, trace, 2)
    chat = next(s for s in found if s.name.startswith("chat "))
    request = next(s for s in found if s.kind == SpanKind.SERVER)
    assert chat.status.status_code == StatusCode.ERROR
    assert chat.attributes is not None and chat.attributes["error.type"] == "error"
    assert request.status.status_code == StatusCode.ERROR  # a 502


def test_failed_provider_calls_leave_no_key_in_spans(
        traced: tuple[GatewayHandle, dict[str, Overlay]], spans: InMemorySpanExporter) -> None:
    gw, _ = traced
    trace = "a" * 32
    for body in ({"inputs": "deny"}, {"inputs": "deny", "stream": True},
                 {"inputs": "break", "stream": True}):
        asyncio.run(_raw_post(f"{gw.url}/_overlay/chatty/invoke", body,
                              {"traceparent": f"00-{trace}-{PARENT}-01"}))
    found = _wait_for(spans, trace, 6)
    failed = [s for s in found if s.name.startswith("chat ")]
    assert len(failed) == 3 and all(s.status.status_code == StatusCode.ERROR for s in failed)
    said = json.dumps([[dict(s.attributes or {}), s.status.description] for s in found])
    assert "401" in said  # the provider's refusal is there...
    assert KEY not in said and KEY[-4:] not in said  # ...without the key, whole or shown


async def _raw_post(url: str, body: Any, headers: dict[str, str]) -> bytes:
    async with aiohttp.ClientSession() as s, s.post(url, json=body, headers=headers) as r:
        return await r.read()


# -- configuration by the OTEL_* variables ---------------------------------------------------


@pytest.mark.parametrize(("environ", "names"), [
    ({}, []),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ["otlp"]),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, ["otlp"]),
    ({"OTEL_TRACES_EXPORTER": "console,otlp"}, ["console", "otlp"]),
    ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, []),
    ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, []),
])
def test_exporters_come_from_the_standard_variables(environ: dict[str, str],
                                                    names: list[str]) -> None:
    assert exporter_names(environ) == names


def test_bad_otel_settings_name_the_variable() -> None:
    with pytest.raises(ValidationError, match=r"OTEL_TRACES_EXPORTER.*zipkin.*otlp"):
        exporter_names({"OTEL_TRACES_EXPORTER": "zipkin"})
    with pytest.raises(ValidationError, match=r"OTEL_EXPORTER_OTLP_PROTOCOL.*http/json"):
        otlp_protocol({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})
    assert otlp_protocol({"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
                          "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}) == "grpc"


class _Collector:
    """An OTLP/HTTP trace receiver on loopback, decoding what it gets with OpenTelemetry's
    own protobuf messages."""

    def __init__(self) -> None:
        self.received: list[ExportTraceServiceRequest] = []
        self.url = ""
        self._server: LoopbackApp | None = None

    async def _traces(self, request: web.Request) -> web.Response:
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        self.received.append(message)
        return web.Response(body=b"", content_type="application/x-protobuf")

    def __enter__(self) -> _Collector:
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        self._server = LoopbackApp(app)
        self.url = self._server.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self._server is not None:
            self._server.stop()


def test_otel_variables_export_spans_over_otlp(
        plane: ControlPlane, traced: tuple[GatewayHandle, dict[str, Overlay]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    with _Collector() as collector:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
        monkeypatch.setenv("OTEL_SERVICE_NAME", "crm-gateway")
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
        trace = "9" * 32
        with plane.start_gateway(port=0) as gw:
            gw.wait("scored")
            status, _ = _post(f"{gw.url}/_overlay/scored/invoke", {"inputs": ROW},
                              {"traceparent": f"00-{trace}-{PARENT}-01"})
            assert status == 200
        # stopping the gateway exports what its span processor still holds
        spans = [(resource.resource, span) for message in collector.received
                 for resource in message.resource_spans
                 for scope in resource.scope_spans for span in scope.spans]
        ours = [(r, s) for r, s in spans if s.trace_id.hex() == trace]
        assert {s.name for _, s in ours} >= {"POST /_overlay/{overlay}/invoke",
                                             "predict fraud:1"}
        resource = ours[0][0]
        service = {a.key: a.value.string_value for a in resource.attributes}["service.name"]
        assert service == "crm-gateway"


def test_bad_otel_variables_stop_the_gateway_from_starting(
        plane: ControlPlane, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "jaeger")
    with pytest.raises(ValidationError, match="OTEL_TRACES_EXPORTER"):
        plane.start_gateway(port=0)


def test_without_tracing_the_callers_traceparent_passes_untouched(
        gateway: GatewayHandle, plane: ControlPlane, echo_url: str) -> None:
    o = plane.overlays.create("untraced", host=echo_url, routes={"fraud:1": 100})
    try:
        gateway.wait(o)
        status, seen = _post(f"{gateway.url}/echo", {}, {"traceparent": TRACEPARENT})
        assert status == 200
        assert [v for k, v in seen["headers"] if k.lower() == "traceparent"] == [TRACEPARENT]
    finally:
        plane.overlays.delete("untraced")
