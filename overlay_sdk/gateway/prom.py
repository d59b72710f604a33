"""Prometheus metrics of a gateway: ``GET /_overlay/metrics`` in the text exposition format.

Model calls update a counter and a histogram as they happen
(``overlay_model_calls_total``, ``overlay_model_call_duration_seconds``). Invoke answers
(``overlay_invoke_requests_total{overlay,code}``, refusals before a model call included)
and host requests,
the hot path, only bump a plain integer per host and status class and a plain bucket
count, read at scrape time as ``overlay_host_requests_total`` and
``overlay_host_request_duration_seconds`` (measured: prometheus_client's labelled counter and
histogram cost ~10 % of the gateway's pass-through throughput). The state of the gateway
is read when Prometheus scrapes (``overlay_traffic_weight_percent``, ``overlay_shadow_percent``,
``overlay_applied_revision``, ``overlay_shadow_dropped_total``,
``overlay_telemetry_dropped_total``). Each gateway has its own registry, so two gateways
in one process (a notebook and a test) never mix their counts.

Served at ``/_overlay/metrics`` rather than ``/metrics``: a host application may have its
own ``/metrics``, and the gateway passes everything outside ``/_overlay/`` to the host.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "GatewayMetrics", "State"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            10.0, 30.0)


@dataclass
class State:
    """What the gateway holds at scrape time."""

    weights: dict[str, dict[str, int]] = field(default_factory=dict)  # overlay -> version -> %
    shadows: dict[str, tuple[str, float]] = field(default_factory=dict)  # overlay -> (v, %)
    revisions: dict[str, int] = field(default_factory=dict)  # overlay -> applied revision
    shadow_dropped: dict[str, int] = field(default_factory=dict)  # version -> count
    telemetry_dropped: int = 0


class _Latencies:
    """A histogram per label that costs a bisect and two additions per observation (what
    prometheus_client's labelled histogram costs several times over), read at scrape."""

    def __init__(self) -> None:
        self.counts: dict[str, list[int]] = {}  # label -> count per bucket (+Inf last)
        self.sums: dict[str, float] = {}

    def observe(self, label: str, seconds: float) -> None:
        counts = self.counts.get(label)
        if counts is None:
            counts = self.counts[label] = [0] * (len(_BUCKETS) + 1)
            self.sums[label] = 0.0
        counts[bisect.bisect_left(_BUCKETS, seconds)] += 1
        self.sums[label] += seconds

    def family(self, name: str, documentation: str, label: str) -> HistogramMetricFamily:
        family = HistogramMetricFamily(name, documentation, labels=[label])
        for value, counts in list(self.counts.items()):
            running, buckets = 0, []
            for bound, count in zip((*map(str, _BUCKETS), "+Inf"), counts, strict=True):
                running += count
                buckets.append((bound, running))
            family.add_metric([value], buckets, self.sums[value])
        return family


class _StateCollector(Collector):
    def __init__(self, state: Callable[[], State], hosts: dict[tuple[str, int], int],
                 invokes: dict[tuple[str, int], int], host_seconds: _Latencies) -> None:
        self._state = state
        self._hosts = hosts
        self._invokes = invokes
        self._host_seconds = host_seconds

    def collect(self) -> Iterable[Metric]:
        state = self._state()
        hosts = CounterMetricFamily("overlay_host_requests",
                                    "Host requests passed through, by status class",
                                    labels=["host", "code"])
        for (host, klass), count in list(self._hosts.items()):
            hosts.add_metric([host, f"{klass}xx"], count)
        invokes = CounterMetricFamily("overlay_invoke_requests",
                                      "Answers of the invoke endpoint, by HTTP status",
                                      labels=["overlay", "code"])
        for (overlay, code), count in list(self._invokes.items()):
            invokes.add_metric([overlay, str(code)], count)
        weight = GaugeMetricFamily("overlay_traffic_weight_percent",
                                   "Share of an overlay's traffic routed to a version (%)",
                                   labels=["overlay", "version"])
        for overlay, weights in state.weights.items():
            for version, percent in weights.items():
                weight.add_metric([overlay, version], percent)
        shadow = GaugeMetricFamily("overlay_shadow_percent",
                                   "Share of an overlay's requests mirrored to its shadow (%)",
                                   labels=["overlay", "version"])
        for overlay, (mirrored, share) in state.shadows.items():
            shadow.add_metric([overlay, mirrored], share)
        revision = GaugeMetricFamily("overlay_applied_revision",
                                     "Revision of the overlay the gateway serves",
                                     labels=["overlay"])
        for overlay, number in state.revisions.items():
            revision.add_metric([overlay], number)
        dropped = CounterMetricFamily("overlay_shadow_dropped",
                                      "Shadow calls dropped because the version's queue was full",
                                      labels=["version"])
        for version, count in state.shadow_dropped.items():
            dropped.add_metric([version], count)
        lost = CounterMetricFamily("overlay_telemetry_dropped",
                                   "Call records lost (queue full or store refused)")
        lost.add_metric([], state.telemetry_dropped)
        seconds = self._host_seconds.family(
            "overlay_host_request_duration_seconds",
            "Host requests passed through: time to the end of the answer", "host")
        return iter([hosts, seconds, invokes, weight, shadow, revision, dropped, lost])


class GatewayMetrics:
    """The metrics of one gateway; ``state`` is read at each scrape."""

    def __init__(self, state: Callable[[], State]) -> None:
        self.registry = CollectorRegistry()
        self.calls = Counter("overlay_model_calls", "Model calls by outcome",
                             ["overlay", "version", "role", "status"], registry=self.registry)
        self.call_seconds = Histogram("overlay_model_call_duration_seconds",
                                      "Model call latency", ["overlay", "version", "role"],
                                      buckets=_BUCKETS, registry=self.registry)
        self._children: dict[tuple[str, str, str, str], tuple[Any, Any]] = {}
        self.host_counts: dict[tuple[str, int], int] = {}  # (host, status // 100) -> count
        self.invoke_counts: dict[tuple[str, int], int] = {}  # (overlay, status) -> count
        self.host_seconds = _Latencies()
        self.registry.register(_StateCollector(state, self.host_counts, self.invoke_counts,
                                               self.host_seconds))

    def model_call(self, overlay: str, version: str, role: str, status: str,
                   seconds: float) -> None:
        key = (overlay, version, role, status)
        children = self._children.get(key)
        if children is None:  # labels() looks up under a lock: once per label set
            children = self._children[key] = (
                self.calls.labels(overlay, version, role, status),
                self.call_seconds.labels(overlay, version, role))
        children[0].inc()
        children[1].observe(seconds)

    def invoke_request(self, overlay: str, status: int) -> None:
        """An answer of the invoke endpoint, refusals before any model call included."""
        key = (overlay, status)
        self.invoke_counts[key] = self.invoke_counts.get(key, 0) + 1

    def host_request(self, host: str, status: int, seconds: float) -> None:
        key = (host, status // 100)
        self.host_counts[key] = self.host_counts.get(key, 0) + 1
        self.host_seconds.observe(host, seconds)

    def render(self) -> bytes:
        """The exposition text."""
        return generate_latest(self.registry)
