"""The topology graph (issue 7): its health rules as pure functions, then ``topology(cp)``
(``cp.topology()``) against a real control plane, telemetry and alert store."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

import pytest

from overlay_sdk.alerts import Alert, raise_alerts
from overlay_sdk.client import ControlPlane
from overlay_sdk.errors import NotFoundError, ValidationError
from overlay_sdk.gateway.status import StatusBook
from overlay_sdk.spec import AIOverlaySpec
from overlay_sdk.telemetry import CallRecord, TelemetryWriter
from overlay_sdk.topology import EDGE_COLUMNS, NODE_COLUMNS, Topology, topology
from overlay_sdk.topology_graph import (
    AlertInput,
    CallStats,
    OverlayInput,
    build_graph,
    edge_width,
    open_alerts,
    rate_health,
    window_text,
    worst,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SINCE = NOW - timedelta(minutes=15)
HOST = "http://127.0.0.1:9"


def _spec(routes: dict[str, int], shadow: tuple[str, float] | None = None,
          host: str = "http://crm:8080") -> AIOverlaySpec:
    doc: dict[str, object] = {
        "host": {"url": host},
        "routes": [{"model": k.split(":")[0], "version": k.split(":")[1], "weight": w}
                   for k, w in routes.items()]}
    if shadow is not None:
        doc["shadow"] = {"model": shadow[0].split(":")[0], "version": shadow[0].split(":")[1],
                         "percent": shadow[1]}
    spec: AIOverlaySpec = AIOverlaySpec.model_validate(doc)
    return spec


def _scoring(**kwargs: object) -> OverlayInput:
    return OverlayInput("scoring", 3, _spec({"fraud:1": 90, "fraud:2": 10}, ("fraud:3", 25)),
                        **kwargs)  # type: ignore[arg-type]


# -- pure: the graph and its health ---------------------------------------------------------

def test_the_graph_has_hosts_overlays_and_versions_in_three_columns() -> None:
    graph = build_graph([_scoring(state="serving")], {})
    assert [(n.id, n.kind, n.column, n.row) for n in graph.nodes] == [
        ("host:http://crm:8080", "host", 0, 0),
        ("overlay:scoring", "overlay", 1, 0),
        ("version:fraud:1", "version", 2, 0),
        ("version:fraud:2", "version", 2, 1),
        ("version:fraud:3", "version", 2, 2),
    ]
    assert [(e.source, e.target, e.kind, e.share) for e in graph.edges] == [
        ("host:http://crm:8080", "overlay:scoring", "host", 100.0),
        ("overlay:scoring", "version:fraud:1", "route", 90.0),
        ("overlay:scoring", "version:fraud:2", "route", 10.0),
        ("overlay:scoring", "version:fraud:3", "shadow", 25.0),
    ]
    assert all(n.health == "ok" and n.reason == "" for n in graph.nodes)
    assert all(e.calls == 0 and e.observed_share is None and e.error_rate is None
               for e in graph.edges)
    overlay = graph.node("overlay:scoring")
    assert (overlay.label, overlay.revision, overlay.mode, overlay.state) == (
        "scoring", 3, "passthrough", "serving")
    assert graph.node("host:http://crm:8080").label == "crm:8080"
    data = graph.to_dict()
    assert data["columns"] == ["hosts", "overlays", "versions"]
    assert data["edges"][1]["id"] == "overlay:scoring->version:fraud:1"
    assert data["edges"][1]["width"] == pytest.approx(13.6)
    assert json.loads(json.dumps(data)) == data


def test_edge_width_follows_the_share() -> None:
    assert [edge_width(s) for s in (0, 10, 50, 100)] == [1.0, 2.4, 8.0, 15.0]
    assert edge_width(-3) == 1.0 and edge_width(300) == 15.0


def test_error_rate_thresholds() -> None:
    assert rate_health(CallStats(0, 0)) == ("ok", "")
    assert rate_health(CallStats(100, 0)) == ("ok", "")
    health, reason = rate_health(CallStats(100, 4), "in the last 15 minutes")
    assert health == "warn" and reason == (
        "error rate 4.0% (4 of 100 calls failed in the last 15 minutes)")
    assert rate_health(CallStats(100, 5))[0] == "error"  # 5 % and up
    assert rate_health(CallStats(2, 2))[0] == "error"
    assert worst([]) == "ok" and worst(["ok", "warn"]) == "warn"
    assert worst(["warn", "error", "ok"]) == "error"


def test_calls_give_observed_shares_and_errors_colour_edges_and_nodes() -> None:
    stats = {("scoring", "fraud:1", "primary"): CallStats(180, 1),
             ("scoring", "fraud:2", "primary"): CallStats(20, 2),
             ("scoring", "fraud:3", "shadow"): CallStats(50, 0)}
    graph = build_graph([_scoring()], stats, window="in the last 15 minutes")
    one = graph.edge("overlay:scoring", "version:fraud:1")
    two = graph.edge("overlay:scoring", "version:fraud:2")
    shadow = graph.edge("overlay:scoring", "version:fraud:3")
    assert (one.calls, one.errors, one.observed_share) == (180, 1, 90.0)
    assert one.health == "warn" and "1 of 180 calls failed" in one.reason
    assert (two.calls, two.errors, two.error_rate, two.health) == (20, 2, 0.1, "error")
    assert shadow.observed_share == 25.0 and shadow.health == "ok"  # 50 copies of 200 calls
    overlay = graph.node("overlay:scoring")
    assert overlay.health == "error" and "fraud:2: error rate 10.0%" in overlay.reason
    assert (overlay.calls, overlay.errors) == (200, 3)  # its primary calls
    assert graph.node("version:fraud:2").health == "error"
    assert graph.node("version:fraud:1").health == "warn"
    assert graph.node("host:http://crm:8080").health == "ok"  # fail-open: hosts keep working
    host_edge = graph.edge("host:http://crm:8080", "overlay:scoring")
    assert host_edge.health == "error" and host_edge.calls == 200


def test_a_failing_shadow_only_warns_for_its_overlay() -> None:
    stats = {("scoring", "fraud:3", "shadow"): CallStats(10, 10)}
    graph = build_graph([_scoring()], stats)
    assert graph.edge("overlay:scoring", "version:fraud:3").health == "error"
    assert graph.node("version:fraud:3").health == "error"
    assert graph.node("overlay:scoring").health == "warn"


def test_drift_and_budget_alerts_warn_and_name_what() -> None:
    drift = AlertInput("scoring", "drift", "amount of fraud:2 drifted from its reference",
                       time=NOW, version="fraud:2", subject="amount")
    budget = AlertInput("scoring", "budget", "scoring spent 60.00 USD, over 50", time=NOW,
                        subject="usdPerDay", day="2026-11-25")
    graph = build_graph([_scoring()], {}, [drift, budget])
    edge = graph.edge("overlay:scoring", "version:fraud:2")
    assert edge.health == "warn" and edge.reason == "drift of amount (scoring)"
    assert edge.alerts == ("amount of fraud:2 drifted from its reference",)
    version = graph.node("version:fraud:2")
    assert version.health == "warn" and "amount" in version.reason and version.alerts
    overlay = graph.node("overlay:scoring")
    assert overlay.health == "warn"
    assert "over 50" in overlay.reason and len(overlay.alerts) == 2
    assert graph.node("version:fraud:1").health == "ok"


def test_a_version_the_gateway_failed_to_load_and_a_revision_it_could_not_apply() -> None:
    graph = build_graph([_scoring(state="failed", message="fraud:2 did not load")], {},
                        version_states={"fraud:2": ("failed", "no artifact"),
                                        "fraud:1": ("ready", None)})
    version = graph.node("version:fraud:2")
    assert version.health == "error" and version.state == "failed"
    assert version.reason == "the gateway failed to load fraud:2: no artifact"
    assert graph.node("version:fraud:1").state == "ready"
    overlay = graph.node("overlay:scoring")
    assert overlay.health == "error"
    assert overlay.reason == "revision 3 could not be applied: fraud:2 did not load"


def test_shared_hosts_and_versions_are_one_node_and_versions_sit_near_their_overlays() -> None:
    a = OverlayInput("a", 1, _spec({"fraud:1": 100}))
    b = OverlayInput("b", 1, _spec({"fraud:1": 50, "fraud:2": 50}))
    c = OverlayInput("c", 1, _spec({"chat:7": 100}, host="http://app:80"))
    graph = build_graph([c, b, a], {})
    hosts = [n for n in graph.nodes if n.kind == "host"]
    assert [(n.id, n.row) for n in hosts] == [("host:http://app:80", 0),
                                              ("host:http://crm:8080", 1)]
    assert [n.label for n in graph.nodes if n.kind == "overlay"] == ["c", "a", "b"]
    assert [n.label for n in graph.nodes if n.kind == "version"] == [
        "chat:7", "fraud:1", "fraud:2"]
    assert len([e for e in graph.edges if e.target == "version:fraud:1"]) == 2
    # without calls, a host's overlays split its edge evenly; with calls, by calls
    assert graph.edge("host:http://crm:8080", "overlay:a").share == 50.0
    graph = build_graph([a, b, c], {("a", "fraud:1", "primary"): CallStats(30, 0),
                                    ("b", "fraud:2", "primary"): CallStats(10, 0)})
    assert graph.edge("host:http://crm:8080", "overlay:a").share == 75.0
    assert graph.edge("host:http://crm:8080", "overlay:b").share == 25.0
    assert graph.edge("host:http://app:80", "overlay:c").share == 100.0
    assert graph.node("version:fraud:1").calls == 30


def test_open_alerts_are_those_that_reach_into_the_window() -> None:
    def drift(time: datetime, last_seen: datetime | None, overlay: str = "scoring"
              ) -> AlertInput:
        return AlertInput(overlay, "drift", "m", time=time, version="fraud:1",
                          subject="amount", last_seen=last_seen)

    going_on = drift(NOW - timedelta(hours=5), NOW - timedelta(minutes=5))
    over = drift(NOW - timedelta(hours=5), NOW - timedelta(hours=1))
    fresh = drift(NOW - timedelta(minutes=1), None)
    other = drift(NOW, None, overlay="gone")
    today = AlertInput("scoring", "budget", "b", time=NOW - timedelta(hours=3),
                       day="2026-11-25")
    yesterday = AlertInput("scoring", "budget", "b", time=NOW - timedelta(hours=13),
                           day="2026-11-24")
    alerts = [going_on, over, fresh, other, today, yesterday]
    assert open_alerts(alerts, since=SINCE, now=NOW) == [going_on, fresh, other, today]
    born = {"scoring": NOW - timedelta(hours=4)}  # re-created after the run started
    assert open_alerts(alerts, since=SINCE, now=NOW, created_at=born) == [fresh, today]


def test_the_window_is_said_in_words() -> None:
    assert window_text(SINCE, NOW) == "in the last 15 minutes"
    assert window_text(NOW - timedelta(hours=1), NOW) == "in the last hour"
    assert window_text(NOW - timedelta(days=2), NOW) == "in the last 2 days"
    assert window_text(NOW - timedelta(days=30), NOW) == "since 2026-10-26 12:00 UTC"


# -- against a real control plane -----------------------------------------------------------

def _calls(cp: ControlPlane, *records: CallRecord) -> None:
    writer = TelemetryWriter(cp.telemetry_url)
    for record in records:
        writer.submit(record)
    writer.flush()
    writer.close()


def _record(version: str, role: str = "primary", status: str = "ok", revision: int = 1,
            overlay: str = "scoring", time: datetime | None = None) -> CallRecord:
    return CallRecord(overlay, revision, "fraud", version, role, 3.0,  # type: ignore[arg-type]
                      status=status, time=time or datetime.now(UTC))  # type: ignore[arg-type]


def test_an_empty_control_plane_has_an_empty_topology(cp: ControlPlane) -> None:
    topo = topology(cp)
    assert topo.nodes == () and topo.edges == () and topo.gateway is None
    assert list(topo.nodes_frame().columns) == list(NODE_COLUMNS)
    assert topo.edges_frame().empty
    assert topo.to_dict()["window"] == "in the last 15 minutes"


def test_topology_reads_specs_calls_and_errors(cp: ControlPlane) -> None:
    cp.overlays.create("scoring", host=HOST, routes={"fraud:1": 90, "fraud:2": 10},
                       shadow={"model": "fraud", "version": "3", "percent": 25})
    old = datetime.now(UTC) - timedelta(hours=2)
    _calls(cp, *[_record("1") for _ in range(18)], _record("2"), _record("2", status="error"),
           *[_record("3", role="shadow") for _ in range(5)],
           _record("2", status="aborted"),  # a stream the caller left: not a failure
           _record("1", status="error", time=old))  # before the window
    topo = topology(cp)
    assert isinstance(topo, Topology)
    assert [n.id for n in topo.nodes] == [f"host:{HOST}", "overlay:scoring", "version:fraud:1",
                                          "version:fraud:2", "version:fraud:3"]
    one, two = topo.edge("scoring", "fraud:1"), topo.edge("scoring", "fraud:2")
    shadow = topo.edge("scoring", "fraud:3")
    assert (one.share, one.calls, one.errors, one.health) == (90.0, 18, 0, "ok")
    assert one.observed_share == pytest.approx(18 * 100 / 21)
    assert (two.share, two.calls, two.errors, two.health) == (10.0, 3, 1, "error")
    assert (shadow.kind, shadow.share, shadow.calls) == ("shadow", 25.0, 5)
    overlay = topo.node("scoring")
    assert overlay.health == "error" and overlay.state == "no gateway"
    assert "fraud:2: error rate 33.3% (1 of 3 calls failed in the last 15 minutes)" in (
        overlay.reason)
    edges = topo.edges_frame()
    assert list(edges.columns) == list(EDGE_COLUMNS)
    assert edges.set_index("target").loc["version:fraud:1", "width"] == pytest.approx(13.6)
    assert topo.nodes_frame().set_index("id").loc["version:fraud:2", "health"] == "error"
    data = topo.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert {e["target"]: e["share"] for e in data["edges"]} == {
        "overlay:scoring": 100.0, "version:fraud:1": 90.0, "version:fraud:2": 10.0,
        "version:fraud:3": 25.0}
    # a longer window sees the old failed call
    assert topology(cp, since="3 hours ago").edge("scoring", "fraud:1").errors == 1
    fig = topo.plot()
    assert len(fig.data) == 4 + 2  # an edge each, nodes by health (ok, error)
    assert "scoring" in topo._repr_html_() and "error" in repr(topo)
    with pytest.raises(NotFoundError, match="fraud:9"):
        topo.node("fraud:9")


def test_a_traffic_change_shows_in_the_next_topology(cp: ControlPlane) -> None:
    o = cp.overlays.create("scoring", host=HOST, routes={"fraud:1": 90, "fraud:2": 10})
    o.set_traffic({"fraud:1": 40, "fraud:2": 60})
    topo = topology(cp)
    assert topo.edge("scoring", "fraud:1").share == 40.0
    assert topo.edge("scoring", "fraud:2").share == 60.0
    assert topo.node("scoring").revision == 2
    o.shadow("fraud:3", percent=10)
    assert topology(cp).edge("scoring", "fraud:3").share == 10.0


def test_a_recreated_overlay_starts_afresh(cp: ControlPlane) -> None:
    cp.overlays.create("scoring", host=HOST, routes={"fraud:1": 100})
    raise_alerts(cp.telemetry_url, [Alert(
        "scoring", "drift", "drift:scoring:fraud:1:amount:x", "amount drifted", "fraud:1",
        "amount", time=datetime.now(UTC) - timedelta(minutes=1))])
    _calls(cp, _record("1", status="error"))
    cp.overlays.delete("scoring")
    cp.overlays.create("scoring", host=HOST, routes={"fraud:1": 100})  # revision 3
    _calls(cp, _record("1", revision=3))
    topo = topology(cp)
    edge = topo.edge("scoring", "fraud:1")
    assert (edge.calls, edge.errors, edge.health, edge.alerts) == (1, 0, "ok", ())
    assert topo.node("scoring").revision == 3


def test_drift_alerts_name_the_version_and_feature(cp: ControlPlane) -> None:
    cp.overlays.create("scoring", host=HOST, routes={"fraud:1": 50, "fraud:2": 50})
    now = datetime.now(UTC)
    raise_alerts(cp.telemetry_url, [
        Alert("scoring", "drift", "drift:scoring:fraud:2:amount:1", "amount of fraud:2 drifted",
              "fraud:2", "amount", details={"last_window": now.isoformat(), "window": "1h"},
              time=now),
        Alert("other", "drift", "drift:other:fraud:1:amount:1", "not this overlay's",
              "fraud:1", "amount", time=now),
    ])
    topo = topology(cp)
    edge = topo.edge("scoring", "fraud:2")
    assert edge.health == "warn" and edge.reason == "drift of amount (scoring)"
    assert edge.alerts == ("amount of fraud:2 drifted",)
    assert topo.node("fraud:2").health == "warn"
    assert topo.edge("scoring", "fraud:1").health == "ok"
    # an hour and a half later, the run's last window (+ its hour) is before the window
    later = topology(cp, now=now + timedelta(hours=2, minutes=30))
    assert later.edge("scoring", "fraud:2").health == "ok"


def test_the_running_gateways_status_says_which_versions_failed(cp: ControlPlane) -> None:
    o = cp.overlays.create("scoring", host=HOST, routes={"fraud:1": 90, "fraud:2": 10})
    book = StatusBook(cp.home)
    gateway = book.started("http://127.0.0.1:8700")  # this (living) process
    try:
        book.revision(gateway, "scoring", 1, "serving", committed_at=datetime.now(UTC))
        book.backend(gateway, "fraud:1", "ready")
        book.backend(gateway, "fraud:2", "failed", "no such artifact")
        topo = topology(cp)
        assert topo.gateway == "http://127.0.0.1:8700"
        assert topo.node("scoring").state == "serving"
        version = topo.node("fraud:2")
        assert version.health == "error" and version.state == "failed"
        assert version.reason == "the gateway failed to load fraud:2: no such artifact"
        assert topo.node("scoring").health == "ok"  # its routes served no failed call
        o.set_traffic({"fraud:1": 100})
        assert topology(cp).node("scoring").state == "behind"  # revision 2 not seen yet
    finally:
        book.stopped(gateway)
    assert os.getpid() > 0 and topology(cp).gateway is None


def test_since_is_checked(cp: ControlPlane) -> None:
    with pytest.raises(ValidationError, match="since"):
        topology(cp, since="the other day")
