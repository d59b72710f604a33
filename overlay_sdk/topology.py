"""``cp.topology()``: the live graph host apps -> overlays -> model versions, as data.

Reads each live overlay's current revision from the store, the calls of the window from
the telemetry store (each overlay's since it was (re)created), the stored alerts, and,
when a gateway runs for this home, which revision it applied and the state of each model
version it loads (its status book). :func:`overlay_sdk.topology_graph.build_graph`
decides the graph and its health; :class:`Topology` shows it (``nodes_frame()``,
``edges_frame()``, ``plot()``, ``to_dict()``: what the ``TopologyMap`` widget draws).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import TYPE_CHECKING, Any

import pandas as pd

from overlay_sdk.alerts import read_alerts
from overlay_sdk.analytics.timeline import window_of
from overlay_sdk.errors import NotFoundError, OverlayError
from overlay_sdk.gateway.status import StatusBook
from overlay_sdk.observe import metrics_frame
from overlay_sdk.store import created_revision
from overlay_sdk.telemetry import read_calls
from overlay_sdk.topology_graph import (
    AlertInput,
    CallStats,
    Edge,
    Graph,
    Node,
    OverlayInput,
    build_graph,
    open_alerts,
    window_text,
)
from overlay_sdk.when import parse_when

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from overlay_sdk.client import ControlPlane

__all__ = ["DEFAULT_SINCE", "EDGE_COLUMNS", "NODE_COLUMNS", "Topology", "topology"]

DEFAULT_SINCE = "15 minutes ago"
NODE_COLUMNS = ("id", "kind", "label", "health", "reason", "column", "row", "calls", "errors",
                "error_rate", "alerts", "revision", "mode", "state")
EDGE_COLUMNS = ("source", "target", "kind", "overlay", "share", "observed_share", "calls",
                "errors", "error_rate", "health", "reason", "alerts", "width")
COLOURS = {"ok": "#388e3c", "warn": "#f57c00", "error": "#d32f2f"}


@dataclass(frozen=True)
class Topology:
    """The graph of a control plane over a window (``since`` to ``until``, UTC).

    ``nodes``: host apps, overlays and model versions (kind, label, health ok/warn/error
    with its reason, calls and errors over the window, open alerts); ``edges``: host ->
    overlay and overlay -> version (kind ``route`` or ``shadow``), with ``share`` (the
    configured weight or shadow percent), ``observed_share`` (percent of the overlay's
    calls), calls, errors, error rate and health. ``gateway``: the URL of the running
    gateway whose status was read (None: none runs)."""

    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    since: datetime
    until: datetime
    gateway: str | None = None

    @property
    def graph(self) -> Graph:
        return Graph(self.nodes, self.edges)

    def node(self, node_id: str) -> Node:
        """A node by id (``overlay:scoring``) or, when that is unique, by label (``scoring``,
        ``fraud:2``)."""
        for node in self.nodes:
            if node.id == node_id:
                return node
        found = [n for n in self.nodes if n.label == node_id]
        if len(found) == 1:
            return found[0]
        raise NotFoundError(f"no node {node_id!r} in the topology; nodes: "
                            f"{', '.join(n.id for n in self.nodes) or '(none)'}")

    def edge(self, source: str, target: str) -> Edge:
        """The edge from ``source`` to ``target`` (ids or labels, as :meth:`node` takes)."""
        a, b = self.node(source).id, self.node(target).id
        for edge in self.edges:
            if edge.source == a and edge.target == b:
                return edge
        raise NotFoundError(f"no edge from {a!r} to {b!r} in the topology")

    def nodes_frame(self) -> pd.DataFrame:
        """One row per node (:data:`NODE_COLUMNS`)."""
        return pd.DataFrame([n.to_dict() for n in self.nodes], columns=list(NODE_COLUMNS))

    def edges_frame(self) -> pd.DataFrame:
        """One row per edge (:data:`EDGE_COLUMNS`; ``width``: the stroke width in px)."""
        return pd.DataFrame([e.to_dict() for e in self.edges], columns=list(EDGE_COLUMNS))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``nodes``, ``edges``, ``columns``, ``since``, ``until``, ``window``,
        ``gateway`` (what the ``TopologyMap`` widget syncs)."""
        return {**self.graph.to_dict(), "since": self.since.isoformat(),
                "until": self.until.isoformat(), "window": window_text(self.since, self.until),
                "gateway": self.gateway}

    def plot(self) -> go.Figure:
        """A plotly figure: three columns (hosts, overlays, versions), edge width = share,
        colour = health, shadow edges dashed; hover for calls, error rate and reasons."""
        import plotly.graph_objects as go

        rows: dict[int, int] = {}
        for node in self.nodes:
            rows[node.column] = max(rows.get(node.column, 0), node.row + 1)
        where = {n.id: (float(n.column), 1.0 - (n.row + 0.5) / rows[n.column])
                 for n in self.nodes}
        fig = go.Figure()
        for edge in self.edges:
            (x0, y0), (x1, y1) = where[edge.source], where[edge.target]
            fig.add_trace(go.Scatter(
                x=[x0, (x0 + x1) / 2, x1], y=[y0, (y0 + y1) / 2, y1], mode="lines",
                line={"width": edge.width, "color": COLOURS[edge.health],
                      "dash": "dash" if edge.kind == "shadow" else "solid"},
                opacity=0.75, hoverinfo="text", text=[_edge_text(edge)] * 3, showlegend=False))
        for health, colour in COLOURS.items():
            members = [n for n in self.nodes if n.health == health]
            if not members:
                continue
            fig.add_trace(go.Scatter(
                x=[where[n.id][0] for n in members], y=[where[n.id][1] for n in members],
                mode="markers+text", name=health, text=[n.label for n in members],
                textposition="top center", hovertext=[_node_text(n) for n in members],
                hoverinfo="text", marker={"size": 18, "color": colour, "symbol": "square"}))
        fig.update_layout(
            title=f"Topology {window_text(self.since, self.until)}", template="plotly_white",
            height=max(300, 90 * max(rows.values(), default=1)),
            xaxis={"tickvals": [0, 1, 2], "ticktext": ["hosts", "overlays", "versions"],
                   "range": [-0.3, 2.3], "showgrid": False, "zeroline": False},
            yaxis={"visible": False, "range": [-0.05, 1.05]},
            margin={"l": 20, "r": 20, "t": 50, "b": 30})
        return fig

    def __repr__(self) -> str:
        counts = {k: sum(n.kind == k for n in self.nodes) for k in ("host", "overlay", "version")}
        trouble = [f"{n.id} {n.health}" for n in self.nodes if n.health != "ok"]
        return (f"<Topology {counts['host']} hosts, {counts['overlay']} overlays, "
                f"{counts['version']} versions {window_text(self.since, self.until)}"
                + (f"; {', '.join(trouble)}" if trouble else "") + ">")

    def _repr_html_(self) -> str:
        def dot(health: str) -> str:
            return f"<span style='color:{COLOURS[health]}'>&#9679;</span> {health}"

        rows = "".join(
            f"<tr><td>{escape(e.source)}</td><td>{escape(e.target)}</td><td>{e.kind}</td>"
            f"<td>{e.share:g}%</td><td>{_pct(e.observed_share)}</td><td>{e.calls}</td>"
            f"<td>{_pct(None if e.error_rate is None else e.error_rate * 100)}</td>"
            f"<td>{dot(e.health)}</td><td>{escape(e.reason)}</td></tr>" for e in self.edges)
        return (f"<div><b>Topology</b> {escape(window_text(self.since, self.until))}"
                "<table><tr><th>from</th><th>to</th><th>kind</th><th>share</th>"
                "<th>observed</th><th>calls</th><th>error rate</th><th>health</th>"
                f"<th>reason</th></tr>{rows}</table></div>")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def _edge_text(edge: Edge) -> str:
    parts = [f"{edge.source} -> {edge.target}", f"{edge.kind} {edge.share:g}%",
             f"observed {_pct(edge.observed_share)}", f"{edge.calls} calls",
             f"error rate {_pct(None if edge.error_rate is None else edge.error_rate * 100)}"]
    if edge.reason:
        parts.append(edge.reason)
    return "<br>".join(escape(p) for p in parts)


def _node_text(node: Node) -> str:
    parts = [f"{node.kind} {node.label}: {node.health}", f"{node.calls} calls"]
    if node.reason:
        parts.append(node.reason)
    parts.extend(node.alerts)
    return "<br>".join(escape(p) for p in parts)


def _stats(calls: pd.DataFrame, overlay: str) -> dict[tuple[str, str, str], CallStats]:
    out: dict[tuple[str, str, str], CallStats] = {}
    if calls.empty:
        return out
    for row in metrics_frame(calls, "version").itertuples(index=False):
        n = int(row.calls)
        out[(overlay, f"{row.model}:{row.version}", str(row.role))] = CallStats(
            n, round(float(row.error_rate) * n))
    return out


def _alert(row: Any) -> AlertInput:
    details = row.details if isinstance(row.details, dict) else {}
    last_seen: datetime | None = None
    if row.kind == "drift" and details.get("last_window"):
        try:
            last_seen = (pd.Timestamp(details["last_window"])
                         + window_of(str(details.get("window", "1h")))).to_pydatetime()
        except (ValueError, TypeError, OverlayError):
            last_seen = None
    return AlertInput(
        overlay=str(row.overlay), kind=str(row.kind), message=str(row.message),
        time=pd.Timestamp(row.time).to_pydatetime(),
        version=None if pd.isna(row.version) else str(row.version),
        subject=None if pd.isna(row.subject) else str(row.subject),
        last_seen=last_seen, day=str(details["day"]) if details.get("day") else None)


def topology(cp: ControlPlane, *, since: Any = DEFAULT_SINCE,
             now: datetime | None = None) -> Topology:
    """The topology of control plane ``cp`` over the window from ``since`` (a datetime or a
    phrase such as "an hour ago"; default the last 15 minutes) to ``now``."""
    until = now or datetime.now(UTC)
    start = parse_when(since, until, field="since")
    url = cp.telemetry_url

    book = StatusBook(cp.home)
    live = book.live_gateway()
    gateway = int(live["id"]) if live is not None else None
    version_states = ({v: (s, e) for v, (s, e) in book.backends(gateway).items()}
                      if gateway is not None else {})

    overlays: list[OverlayInput] = []
    first_revision: dict[str, int] = {}
    for rev in cp.store.list():
        if rev.overlay is None:
            continue
        try:
            history = cp.store.history(rev.name)
        except NotFoundError:  # deleted a moment ago
            continue
        first = created_revision(history)
        born = next((r.created_at for r in history if r.revision == first), None)
        state, message = "", ""
        if gateway is not None:
            applied = book.applied(rev.name, gateway)
            mine = applied[applied["revision"] == rev.revision]
            state = str(mine["state"].iloc[0]) if len(mine) else "behind"
            message = str(mine["message"].iloc[0] or "") if len(mine) else ""
        else:
            state = "no gateway"
        first_revision[rev.name] = first
        overlays.append(OverlayInput(name=rev.name, revision=rev.revision,
                                     spec=rev.overlay.spec, created_at=born, state=state,
                                     message=message))

    stats: dict[tuple[str, str, str], CallStats] = {}
    calls = read_calls(url, since=start, payloads=False)
    for name, first in first_revision.items():
        mine = calls[(calls["overlay"] == name) & (calls["revision"] >= first)]
        stats.update(_stats(mine.reset_index(drop=True), name))

    alerts: list[AlertInput] = []
    created = {o.name: o.created_at for o in overlays}
    if overlays:
        births = [b for b in created.values() if b is not None]
        frame = read_alerts(url, since=min(births) if len(births) == len(created) else None)
        alerts = open_alerts([_alert(r) for r in frame.itertuples(index=False)],
                             since=start, now=until, created_at=created)

    graph = build_graph(overlays, stats, alerts, version_states,
                        window=window_text(start, until))
    return Topology(nodes=graph.nodes, edges=graph.edges, since=start, until=until,
                    gateway=str(live["url"]) if live is not None else None)
