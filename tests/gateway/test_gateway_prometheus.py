"""Prometheus metrics (issue 5, part): the exposition parses with prometheus_client's own
parser, and its counters match the requests sent."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from gateway_support import invoke_body
from prometheus_client.parser import text_string_to_metric_families

from overlay_sdk.client import ControlPlane


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_metrics_parse_and_count_what_was_sent(plane: ControlPlane, legacy_url: str) -> None:
    o = plane.overlays.create("counted-prom", host=legacy_url, routes={"fraud:1": 100},
                              shadow="fraud:2")
    broken = plane.overlays.create("broken-prom", host=legacy_url, routes={"broken:1": 100})
    with plane.start_gateway(port=0, token="prom-token-1") as gw:
        gw.wait(o)
        gw.wait(broken)

        async def traffic() -> tuple[int, str, Any]:
            auth = {"Authorization": "Bearer prom-token-1"}
            async with aiohttp.ClientSession() as s:
                for _ in range(7):
                    async with s.post(f"{gw.url}/_overlay/counted-prom/invoke",
                                      data=invoke_body(), headers=auth) as r:
                        assert r.status == 200
                for _ in range(2):
                    async with s.post(f"{gw.url}/_overlay/broken-prom/invoke",
                                      data=invoke_body(), headers=auth) as r:
                        assert r.status == 502
                async with s.post(f"{gw.url}/_overlay/counted-prom/invoke", data=b"{oops",
                                  headers=auth) as r:
                    assert r.status == 400
                async with s.post(f"{gw.url}/_overlay/counted-prom/invoke",
                                  data=invoke_body()) as r:  # no token
                    assert r.status == 401
                for path in ("/api/customers", "/api/customers", "/no/such/page"):
                    async with s.get(gw.url + path,
                                     headers={"Host": "counted-prom.localhost"}) as r:
                        await r.read()
                async with s.get(f"{gw.url}/_overlay/metrics") as r:
                    refused = r.status
                await asyncio.sleep(0.3)  # the shadow copies are answered
                async with s.get(f"{gw.url}/_overlay/metrics", headers=auth) as r:
                    return refused, r.headers["Content-Type"], await r.text()

        refused, content_type, text = asyncio.run(traffic())
    assert refused == 401  # guarded like the other admin endpoints
    assert content_type.startswith("text/plain; version=0.0.4")
    got = samples(text)

    def value(name: str, **labels: str) -> float:
        return got[(name, tuple(sorted(labels.items())))]

    assert value("overlay_model_calls_total", overlay="counted-prom", version="fraud:1",
                 role="primary", status="ok") == 7
    assert value("overlay_model_calls_total", overlay="counted-prom", version="fraud:2",
                 role="shadow", status="ok") == 7
    assert value("overlay_model_calls_total", overlay="broken-prom", version="broken:1",
                 role="primary", status="error") == 2
    assert value("overlay_model_call_duration_seconds_count", overlay="counted-prom",
                 version="fraud:1", role="primary") == 7
    assert value("overlay_invoke_requests_total", overlay="counted-prom", code="200") == 7
    assert value("overlay_invoke_requests_total", overlay="counted-prom", code="400") == 1
    assert value("overlay_invoke_requests_total", overlay="broken-prom", code="502") == 2
    assert value("overlay_host_requests_total", host=legacy_url, code="2xx") == 2
    assert value("overlay_host_requests_total", host=legacy_url, code="4xx") == 1
    # refused callers are counted, under one label whatever name they tried
    assert value("overlay_invoke_requests_total", overlay="(unknown)", code="401") == 1
    # host latency: a histogram per host, cumulative buckets ending at the count
    assert value("overlay_host_request_duration_seconds_count", host=legacy_url) == 3
    buckets = sorted((float(dict(labels)["le"]), v) for (name, labels), v in got.items()
                     if name == "overlay_host_request_duration_seconds_bucket")
    assert buckets[-1] == (float("inf"), 3)
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)
    assert 0 < value("overlay_host_request_duration_seconds_sum", host=legacy_url) < 3
    assert value("overlay_traffic_weight_percent", overlay="counted-prom", version="fraud:1") == 100
    assert value("overlay_shadow_percent", overlay="counted-prom", version="fraud:2") == 100
    assert value("overlay_applied_revision", overlay="counted-prom") == o.revision
    assert value("overlay_telemetry_dropped_total") == 0
