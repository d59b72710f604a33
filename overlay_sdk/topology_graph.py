"""The topology graph (host apps -> overlays -> model versions) and its health, as pure
functions of plain inputs: each overlay's spec, call counts per overlay, version and role
over a window, stored alerts and, when a gateway runs, the state of each version it loads.

:mod:`overlay_sdk.topology` reads those inputs (store, telemetry, alerts, the gateway's
status book) and :func:`build_graph` decides here; ``cp.topology()`` and the
``TopologyMap`` widget show the result. No clock, no I/O.

Health, worst first (``error`` > ``warn`` > ``ok``), each with a reason:

- an edge overlay -> version: its calls' error rate (failed calls: error, timeout,
  rejected, invalid) >= :data:`ERROR_RATE_ERROR` is ``error``, above 0 is ``warn``; an
  open drift alert of that version in that overlay is ``warn`` naming the feature;
- a version: the worst of its edges, and ``error`` when the gateway failed to load it;
- an overlay: the worst of its route edges (a shadow's trouble is at most ``warn``: a
  shadow never answers), ``error`` when the gateway could not apply its revision,
  ``warn`` on an open budget alert;
- a host: ``ok`` (the overlay fails open: the host's own answers are not affected); its
  edge to an overlay has the overlay's health.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

from overlay_sdk.spec import AIOverlaySpec

__all__ = [
    "ERROR_RATE_ERROR",
    "HEALTH_ORDER",
    "AlertInput",
    "CallStats",
    "Edge",
    "Graph",
    "Health",
    "Node",
    "OverlayInput",
    "build_graph",
    "edge_width",
    "open_alerts",
    "rate_health",
    "window_text",
    "worst",
]

Health = Literal["ok", "warn", "error"]
NodeKind = Literal["host", "overlay", "version"]
EdgeKind = Literal["host", "route", "shadow"]

ERROR_RATE_ERROR = 0.05
"""An error rate from this (5 %) up is ``error``; any failed call below it is ``warn``."""
HEALTH_ORDER: dict[str, int] = {"ok": 0, "warn": 1, "error": 2}
COLUMNS = ("hosts", "overlays", "versions")
MIN_WIDTH_PX = 1.0
MAX_WIDTH_PX = 15.0


@dataclass(frozen=True)
class CallStats:
    """Calls of one overlay to one version in one role over the window, and how many
    failed (status error, timeout, rejected or invalid; an aborted stream is not a
    failure)."""

    calls: int = 0
    errors: int = 0

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.calls if self.calls else None

    def __add__(self, other: CallStats) -> CallStats:
        return CallStats(self.calls + other.calls, self.errors + other.errors)


@dataclass(frozen=True)
class OverlayInput:
    """One live overlay: its name, current revision and spec; ``created_at`` is when it
    was (re)created (alerts from before are its predecessor's); ``state`` and ``message``
    are the gateway's view of the revision (``serving``, ``warming``, ``failed``,
    ``behind``, ``no gateway``; empty when unknown)."""

    name: str
    revision: int
    spec: AIOverlaySpec
    created_at: datetime | None = None
    state: str = ""
    message: str = ""


@dataclass(frozen=True)
class AlertInput:
    """A stored alert: ``kind`` drift or budget, ``version`` ``model:version`` (drift),
    ``subject`` the feature (drift) or the limit (budget). ``last_seen``: until when it
    held (a drift run: the end of its last drifted window); ``day``: the UTC day a budget
    alert is about (ISO date)."""

    overlay: str
    kind: str
    message: str
    time: datetime
    version: str | None = None
    subject: str | None = None
    last_seen: datetime | None = None
    day: str | None = None


@dataclass(frozen=True)
class Node:
    """A box of the graph: a host app, an overlay or a model version.

    ``column`` (0 hosts, 1 overlays, 2 versions) and ``row`` place it; ``calls`` and
    ``errors`` sum its edges over the window; ``alerts`` are the open alerts' messages;
    ``revision``, ``mode`` and ``state`` describe an overlay (``state`` of a version: its
    backend's state in the gateway, ``ready``, ``warming``, ``failed``)."""

    id: str
    kind: NodeKind
    label: str
    health: Health = "ok"
    reason: str = ""
    column: int = 0
    row: int = 0
    calls: int = 0
    errors: int = 0
    error_rate: float | None = None
    alerts: tuple[str, ...] = ()
    revision: int | None = None
    mode: str | None = None
    state: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["alerts"] = list(self.alerts)
        return out


@dataclass(frozen=True)
class Edge:
    """A link of the graph. ``kind`` ``host`` (host -> overlay), ``route`` or ``shadow``
    (overlay -> version). ``share``: the configured percent (the route's weight, the
    shadow's percent; for a host edge the overlay's part of the host's model calls over
    the window, evenly split when none); ``observed_share``: the percent of the overlay's
    primary calls this edge carried over the window (None without calls)."""

    source: str
    target: str
    kind: EdgeKind
    overlay: str
    share: float
    observed_share: float | None = None
    calls: int = 0
    errors: int = 0
    error_rate: float | None = None
    health: Health = "ok"
    reason: str = ""
    alerts: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return f"{self.source}->{self.target}"

    @property
    def width(self) -> float:
        """The stroke width (px) the widget draws it with."""
        return edge_width(self.share)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["alerts"] = list(self.alerts)
        out["id"] = self.id
        out["width"] = self.width
        return out


@dataclass(frozen=True)
class Graph:
    """Nodes (in column, row order) and edges (host edges, then each overlay's routes in
    spec order and its shadow)."""

    nodes: tuple[Node, ...] = ()
    edges: tuple[Edge, ...] = ()

    def node(self, node_id: str) -> Node:
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)

    def edge(self, source: str, target: str) -> Edge:
        for edge in self.edges:
            if edge.source == source and edge.target == target:
                return edge
        raise KeyError(f"{source}->{target}")

    def to_dict(self) -> dict[str, Any]:
        return {"columns": list(COLUMNS), "nodes": [n.to_dict() for n in self.nodes],
                "edges": [e.to_dict() for e in self.edges]}


def edge_width(share: float) -> float:
    """Stroke width in px for a share in percent: 1 px at 0 %, 15 px at 100 % (clamped)."""
    clamped = min(max(float(share), 0.0), 100.0)
    return MIN_WIDTH_PX + clamped * (MAX_WIDTH_PX - MIN_WIDTH_PX) / 100.0


def worst(healths: Iterable[str]) -> Health:
    """The worst of ``healths`` (``ok`` when there are none)."""
    top: Health = "ok"
    for h in healths:
        if HEALTH_ORDER[h] > HEALTH_ORDER[top]:
            top = "error" if h == "error" else "warn"
    return top


def rate_health(stats: CallStats, window: str = "") -> tuple[Health, str]:
    """Health of calls by their error rate, with the reason."""
    rate = stats.error_rate
    if rate is None or stats.errors == 0:
        return "ok", ""
    tail = f" {window}" if window else ""
    reason = f"error rate {rate:.1%} ({stats.errors} of {stats.calls} calls failed{tail})"
    return ("error" if rate >= ERROR_RATE_ERROR else "warn"), reason


def open_alerts(alerts: Iterable[AlertInput], *, since: datetime, now: datetime,
                created_at: Mapping[str, datetime | None] | None = None) -> list[AlertInput]:
    """The alerts that still hold in the window from ``since`` to ``now``: a drift alert
    whose run of drifted windows reaches into it (``last_seen``; else when it was raised),
    a budget alert about today (UTC) or raised in the window, any other raised in it.
    With ``created_at`` (overlay -> when it was (re)created), alerts of an overlay not in
    it, or raised before it was (re)created, are left out."""
    out = []
    for alert in alerts:
        if created_at is not None:
            if alert.overlay not in created_at:
                continue
            born = created_at[alert.overlay]
            if born is not None and alert.time < born:
                continue
        if alert.kind == "drift":
            held = alert.last_seen if alert.last_seen is not None else alert.time
            keep = max(held, alert.time) >= since
        elif alert.kind == "budget":
            keep = alert.day == now.date().isoformat() or alert.time >= since
        else:
            keep = alert.time >= since
        if keep:
            out.append(alert)
    return out


def _version_key(model: str, version: str | None, fallback: str) -> str:
    return f"{model}:{version}" if version else fallback


def _host_label(url: str) -> str:
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    return f"{parts.netloc}{path}" or url


def _percent(part: int, whole: int) -> float | None:
    return part * 100.0 / whole if whole else None


def _join(reasons: Iterable[str]) -> str:
    return "; ".join(dict.fromkeys(r for r in reasons if r))


@dataclass
class _Acc:
    healths: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    stats: CallStats = field(default_factory=CallStats)

    def add(self, health: str, reason: str) -> None:
        self.healths.append(health)
        if health != "ok" and reason:
            self.reasons.append(reason)

    def result(self) -> tuple[Health, str]:
        health = worst(self.healths)
        if health == "ok":
            return health, ""
        return health, _join(self.reasons)


def build_graph(overlays: Sequence[OverlayInput],
                stats: Mapping[tuple[str, str, str], CallStats],
                alerts: Iterable[AlertInput] = (),
                version_states: Mapping[str, tuple[str, str | None]] | None = None,
                *, window: str = "") -> Graph:
    """The graph of ``overlays``: ``stats`` maps ``(overlay, "model:version", role)`` (role
    ``primary`` or ``shadow``) to the calls over the window; ``alerts`` are the open ones
    (:func:`open_alerts`); ``version_states`` maps ``"model:version"`` to its backend's
    ``(state, error)`` in the running gateway; ``window`` ends reasons ("in the last 15
    minutes")."""
    states = version_states or {}
    drift: dict[tuple[str, str], list[AlertInput]] = {}
    budget: dict[str, list[AlertInput]] = {}
    for alert in alerts:
        if alert.kind == "drift" and alert.version:
            drift.setdefault((alert.overlay, alert.version), []).append(alert)
        elif alert.kind != "drift":
            budget.setdefault(alert.overlay, []).append(alert)

    ordered = sorted(overlays, key=lambda o: (_host_label(o.spec.host.url), o.spec.host.url,
                                              o.name))
    hosts: dict[str, list[OverlayInput]] = {}
    for o in ordered:
        hosts.setdefault(o.spec.host.url, []).append(o)

    version_edges: list[Edge] = []
    overlay_acc: dict[str, _Acc] = {}
    overlay_primary: dict[str, CallStats] = {}
    version_acc: dict[str, _Acc] = {}
    for o in ordered:
        acc = overlay_acc[o.name] = _Acc()
        primary = CallStats()
        for (name, _, role), seen in stats.items():
            if name == o.name and role == "primary":
                primary = primary + seen
        overlay_primary[o.name] = primary
        primary_total = primary.calls
        entries: list[tuple[EdgeKind, str, float]] = [
            ("route", _version_key(r.model, r.version, str(r.ref)), float(r.weight))
            for r in o.spec.routes]
        if o.spec.shadow is not None:
            s = o.spec.shadow
            entries.append(("shadow", _version_key(s.model, s.version, str(s.ref)),
                            float(s.percent)))
        for kind, key, share in entries:
            role = "primary" if kind == "route" else "shadow"
            got = stats.get((o.name, key, role), CallStats())
            edge_health, reason = rate_health(got, window)
            healths, reasons = [edge_health], [reason]
            notes = []
            for alert in drift.get((o.name, key), []):
                healths.append("warn")
                feature = f" of {alert.subject}" if alert.subject else ""
                reasons.append(f"drift{feature} ({o.name})")
                notes.append(alert.message)
            health = worst(healths)
            edge = Edge(
                source=f"overlay:{o.name}", target=f"version:{key}", kind=kind,
                overlay=o.name, share=share,
                observed_share=_percent(got.calls, primary_total),
                calls=got.calls, errors=got.errors, error_rate=got.error_rate,
                health=health, reason=_join(reasons) if health != "ok" else "",
                alerts=tuple(notes))
            version_edges.append(edge)
            # a shadow never answers: its trouble is at most a warning for the overlay
            acc.add("warn" if kind == "shadow" and health == "error" else health,
                    f"{key}: {edge.reason}" if edge.reason else "")
            acc.alerts.extend(notes)
            vacc = version_acc.setdefault(key, _Acc())
            vacc.add(health, edge.reason)
            vacc.alerts.extend(notes)
            vacc.stats = vacc.stats + got
        if o.state == "failed":
            acc.add("error", f"revision {o.revision} could not be applied"
                    + (f": {o.message}" if o.message else ""))
        for alert in budget.get(o.name, []):
            acc.add("warn", alert.message)
            acc.alerts.append(alert.message)
    for key, vacc in version_acc.items():
        state, error = states.get(key, ("", None))
        if state == "failed":
            vacc.add("error", f"the gateway failed to load {key}"
                     + (f": {error}" if error else ""))

    # layout: hosts, overlays grouped under their host, versions near their overlays
    overlay_row = {o.name: i for i, o in enumerate(ordered)}
    centre: dict[str, list[int]] = {}
    first_seen: dict[str, int] = {}
    for edge in version_edges:
        key = edge.target.removeprefix("version:")
        centre.setdefault(key, []).append(overlay_row[edge.overlay])
        first_seen.setdefault(key, len(first_seen))
    version_order = sorted(centre, key=lambda k: (sum(centre[k]) / len(centre[k]),
                                                  first_seen[k]))

    nodes: list[Node] = []
    host_edges: list[Edge] = []
    for row, (url, members) in enumerate(hosts.items()):
        host_id = f"host:{url}"
        total = sum(overlay_primary[o.name].calls for o in members)
        failed = sum(overlay_primary[o.name].errors for o in members)
        nodes.append(Node(id=host_id, kind="host", label=_host_label(url), column=0, row=row,
                          calls=total, errors=failed,
                          error_rate=CallStats(total, failed).error_rate))
        for o in members:
            got = overlay_primary[o.name]
            health, reason = overlay_acc[o.name].result()
            share = got.calls * 100.0 / total if total else 100.0 / len(members)
            host_edges.append(Edge(
                source=host_id, target=f"overlay:{o.name}", kind="host", overlay=o.name,
                share=share, observed_share=_percent(got.calls, total),
                calls=got.calls, errors=got.errors, error_rate=got.error_rate,
                health=health, reason=reason))
    for o in ordered:
        acc = overlay_acc[o.name]
        health, reason = acc.result()
        got = overlay_primary[o.name]
        nodes.append(Node(id=f"overlay:{o.name}", kind="overlay", label=o.name, health=health,
                          reason=reason, column=1, row=overlay_row[o.name], calls=got.calls,
                          errors=got.errors, error_rate=got.error_rate,
                          alerts=tuple(dict.fromkeys(acc.alerts)), revision=o.revision,
                          mode=o.spec.mode, state=o.state or None))
    for row, key in enumerate(version_order):
        vacc = version_acc[key]
        health, reason = vacc.result()
        nodes.append(Node(id=f"version:{key}", kind="version", label=key,
                          health=health, reason=reason, column=2, row=row,
                          calls=vacc.stats.calls, errors=vacc.stats.errors,
                          error_rate=vacc.stats.error_rate,
                          alerts=tuple(dict.fromkeys(vacc.alerts)),
                          state=states.get(key, (None, None))[0]))
    return Graph(nodes=tuple(nodes), edges=(*host_edges, *version_edges))


def window_text(since: datetime, now: datetime) -> str:
    """How reasons name the window: "in the last 15 minutes", "since 2026-11-25 03:00 UTC"."""
    span = now - since
    if timedelta(0) < span <= timedelta(days=7) and span.total_seconds() % 60 == 0:
        minutes = int(span.total_seconds() // 60)
        if minutes % (24 * 60) == 0:
            n, unit = minutes // (24 * 60), "day"
        elif minutes % 60 == 0:
            n, unit = minutes // 60, "hour"
        else:
            n, unit = minutes, "minute"
        return f"in the last {unit}" if n == 1 else f"in the last {n} {unit}s"
    return f"since {since:%Y-%m-%d %H:%M} UTC"
