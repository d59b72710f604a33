"""``TopologyMap(cp)``: the live graph host apps -> overlays -> model versions.

Edge width is the traffic share (a route's weight, a shadow's percent), colour the health
(error rate of the window, drift alerts, versions the gateway failed to load); a tooltip
gives calls, error rate and alerts. The data is ``cp.topology()``
(:func:`overlay_sdk.topology.topology`), re-read every ``interval`` seconds by a
background thread (so the map follows traffic changes made anywhere, even while a cell
runs) and on the Refresh button; ``close()`` stops the thread.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anywidget
import traitlets

from overlay_sdk.errors import OverlayError, ValidationError
from overlay_sdk.topology import DEFAULT_SINCE, Topology, topology
from overlay_sdk.when import parse_when
from overlay_sdk.widgets.assets import asset, esm

if TYPE_CHECKING:
    from overlay_sdk.client import ControlPlane

__all__ = ["TopologyMap"]

JOIN_S = 5.0  # how long close() waits for a refresh in progress


class TopologyMap(anywidget.AnyWidget):
    """The topology of control plane ``cp`` over the last ``since`` (default 15 minutes),
    re-read every ``interval`` seconds (None or 0: only on :meth:`refresh` and the Refresh
    button; setting ``interval`` later restarts the timer). :attr:`topology` is the last
    :class:`~overlay_sdk.topology.Topology` read; ``graph`` its ``to_dict()`` (what the
    front end draws); ``error`` why the last refresh failed (empty when it worked)."""

    _esm = esm("topology_map.js")
    _css = asset("topology_map.css")

    graph = traitlets.Dict().tag(sync=True)
    interval = traitlets.Float(5.0).tag(sync=True)
    since = traitlets.Unicode(DEFAULT_SINCE).tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    refreshes = traitlets.Int(0).tag(sync=True)

    def __init__(self, cp: ControlPlane, *, interval: float | None = 5.0,
                 since: str = DEFAULT_SINCE, **kwargs: Any) -> None:
        if not hasattr(cp, "store") or not hasattr(cp, "telemetry_url"):
            raise ValidationError.at("cp", "give a control plane (ov.connect()), got "
                                     f"{type(cp).__name__}")
        parse_when(since, datetime.now(UTC), field="since")
        self._cp = cp
        self._ready = False
        self._closed = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None
        self._topology: Topology | None = None
        super().__init__(interval=_seconds(interval), since=since, **kwargs)
        self.on_msg(self._on_message)
        self.refresh()
        self._ready = True
        self._restart_timer()

    @property
    def topology(self) -> Topology | None:
        """The topology last read (None until a refresh worked)."""
        return self._topology

    def refresh(self) -> TopologyMap:
        """Re-read the topology now; on failure ``error`` says why and the map stays."""
        with self._lock:
            try:
                topo = topology(self._cp, since=self.since)
            except OverlayError as err:
                self.error = str(err)
                return self
            self._topology = topo
            data = topo.to_dict()
            with self.hold_sync():
                if _content(data) != _content(self.graph):
                    self.graph = data
                self.error = ""
                self.refreshes += 1
        return self

    @traitlets.validate("interval")
    def _valid_interval(self, proposal: dict[str, Any]) -> float:
        return _seconds(proposal["value"])

    @traitlets.observe("interval")
    def _interval_changed(self, _change: dict[str, Any]) -> None:
        if getattr(self, "_ready", False):
            self._restart_timer()

    @traitlets.observe("since")
    def _since_changed(self, _change: dict[str, Any]) -> None:
        if getattr(self, "_ready", False):
            self.refresh()

    def _restart_timer(self) -> None:
        """Stop the refreshing thread, and start one when ``interval`` > 0."""
        self._stop.set()
        timer = self._timer
        if timer is not None and timer is not threading.current_thread():
            timer.join(JOIN_S)
        self._timer = None
        if self._closed or self.interval <= 0:
            return
        self._stop = stop = threading.Event()
        self._timer = threading.Thread(target=self._run, args=(stop, self.interval),
                                       name="overlay-topology-map", daemon=True)
        self._timer.start()

    def _run(self, stop: threading.Event, interval: float) -> None:
        while not stop.wait(interval):
            if getattr(self._cp, "closed", False):
                self.error = "the control plane was closed: the map stopped refreshing"
                return
            try:
                self.refresh()
            except Exception as err:  # keep the map going: the next tick may work
                self.error = f"refresh failed: {type(err).__name__}: {err}"

    def _on_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "refresh":
            self.refresh()

    def close(self) -> None:
        """Stop refreshing and close the widget."""
        if getattr(self, "_lock", None) is not None:  # (not when __init__ refused its input)
            self._closed = True
            self._restart_timer()
        super().close()


def _seconds(interval: Any) -> float:
    """``interval`` as seconds between refreshes (0: none); ValidationError otherwise."""
    if interval is None:
        return 0.0
    if isinstance(interval, bool) or not isinstance(interval, int | float) or not (
            0 <= interval < float("inf")):
        raise ValidationError.at("interval", "give the seconds between refreshes (0 or None: "
                                 f"no automatic refresh), got {interval!r}")
    return float(interval)

def _content(data: dict[str, Any]) -> dict[str, Any]:
    """What the map shows, without the window's moving ends (no redraw when only the
    clock moved)."""
    return {k: v for k, v in data.items() if k not in ("since", "until")}
