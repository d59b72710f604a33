"""``Dashboard(overlay)``: one overlay's widgets together, in tabs.

Traffic (:class:`TrafficSplitter`), Drift (:class:`DriftView`), Cost (:class:`CostView`)
and Topology (:class:`TopologyMap` of the overlay's control plane), under a header with the
overlay's mode, routes and the gateway's status. The drift and cost views load in the
background; the header says what is still loading and how far it got.
"""

from __future__ import annotations

from typing import Any

import anywidget
import traitlets
from ipywidgets import DOMWidget, widget_serialization

from overlay_sdk.errors import OverlayError, ValidationError
from overlay_sdk.overlays import Overlay
from overlay_sdk.widgets.assets import asset, esm
from overlay_sdk.widgets.cost_view import CostView
from overlay_sdk.widgets.drift_view import DriftView
from overlay_sdk.widgets.topology_map import TopologyMap
from overlay_sdk.widgets.traffic_splitter import TrafficSplitter

__all__ = ["Dashboard"]

TABS = ("traffic", "drift", "cost", "topology")
DRIFT_OPTIONS = ("window", "since", "reference", "version")
COST_OPTIONS = ("by", "since")


def loading_text(drift_loading: bool, drift_progress: str, cost_loading: bool) -> str:
    """What is still loading, for the header ('' when nothing is)."""
    parts = []
    if drift_loading:
        parts.append(f"drift ({drift_progress})" if drift_progress else "drift")
    if cost_loading:
        parts.append("cost")
    return f"loading {' and '.join(parts)}..." if parts else ""


class Dashboard(anywidget.AnyWidget):
    """One overlay's widgets in tabs (module docstring). ``tab``: the tab shown first;
    ``drift`` / ``cost`` options go to :class:`DriftView` / :class:`CostView`
    (e.g. ``drift={"window": "15min", "reference": frame}``)."""

    _esm = esm("dashboard.js")
    _css = asset("dashboard.css")

    overlay = traitlets.Unicode().tag(sync=True)
    header = traitlets.Dict().tag(sync=True)
    loading = traitlets.Unicode("").tag(sync=True)
    tab = traitlets.Unicode("traffic").tag(sync=True)
    traffic = traitlets.Instance(DOMWidget).tag(sync=True, **widget_serialization)
    drift = traitlets.Instance(DOMWidget).tag(sync=True, **widget_serialization)
    cost = traitlets.Instance(DOMWidget).tag(sync=True, **widget_serialization)
    topology = traitlets.Instance(DOMWidget).tag(sync=True, **widget_serialization)

    def __init__(self, overlay: Overlay, *, tab: str = "traffic",
                 drift: dict[str, Any] | None = None, cost: dict[str, Any] | None = None,
                 topology_interval: float | None = 5.0, background: bool = True,
                 **kwargs: Any) -> None:
        if not isinstance(overlay, Overlay):
            raise ValidationError.at("overlay", f"give an overlay handle (cp.overlays.get("
                                     f"'name')), got {type(overlay).__name__}")
        if tab not in TABS:
            raise ValidationError.at("tab", f"give one of {', '.join(TABS)}, got {tab!r}")
        for part, given, known in (("drift", drift, DRIFT_OPTIONS), ("cost", cost, COST_OPTIONS)):
            unknown = sorted(set(given or {}) - set(known))
            if unknown:
                raise ValidationError.at(f"{part}.{unknown[0]}", f"not an option of the {part} "
                                         f"view; give {', '.join(known)}")
        made: list[Any] = []
        try:
            made.append(TrafficSplitter(overlay))
            made.append(DriftView(overlay, background=background, **(drift or {})))
            made.append(CostView(overlay, background=background, **(cost or {})))
            made.append(TopologyMap(overlay.cp, interval=topology_interval))
        except BaseException:
            for widget in made:  # what was made so far does not outlive the failure
                widget.close()
            raise
        splitter, drift_view, cost_view, topology_map = made
        super().__init__(overlay=overlay.name, tab=tab, traffic=splitter, drift=drift_view,
                         cost=cost_view, topology=topology_map, **kwargs)
        self._overlay = overlay
        for name in ("loading", "progress"):
            drift_view.observe(self._loading, names=name)
        cost_view.observe(self._loading, names="loading")
        # (on the kernel's thread: the splitter's status line changes on its own thread)
        splitter.observe(self._header, names="revision")
        self._loading()
        self._header()

    @property
    def splitter(self) -> TrafficSplitter:
        return self.traffic  # type: ignore[no-any-return]

    def _loading(self, _change: Any = None) -> None:
        self.loading = loading_text(self.drift.loading, self.drift.progress, self.cost.loading)

    def _header(self, _change: Any = None) -> None:
        try:
            o = self._overlay.cp.overlays.get(self.overlay)  # a handle of its own
        except OverlayError as err:
            self.header = {"error": str(err)}
            return
        spec = o.spec
        routes = ", ".join(f"{r.ref} {r.weight}%" for r in spec.routes)
        shadow = f"{spec.shadow.ref} at {spec.shadow.percent:g}%" if spec.shadow else ""
        self.header = {"name": o.name, "mode": spec.mode, "revision": o.revision,
                       "host": spec.host.url, "routes": routes, "shadow": shadow}

    def wait(self, timeout: float | None = None) -> Dashboard:
        """Wait for the drift and cost views to load."""
        self.drift.wait(timeout)
        self.cost.wait(timeout)
        return self

    def close(self) -> None:
        if hasattr(self, "_overlay"):  # (not there when __init__ refused its input)
            for child in (self.traffic, self.drift, self.cost, self.topology):
                child.close()
        super().close()
