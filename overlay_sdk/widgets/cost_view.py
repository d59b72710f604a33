"""``CostView(overlay_or_cp)``: what model calls cost, over time and per inference.

Spend over time stacked by version (``o.cost(by="hour")``, or every overlay's with a
control plane), cost per inference by version, and the overlay's daily budget as a line
(``spec.budget.usdPerDay``); totals and a table per version beside. Loading runs in the
background; ``view.wait()`` waits for it.
"""

from __future__ import annotations

import threading
from typing import Any

import anywidget
import pandas as pd
import plotly.graph_objects as go
import traitlets
from ipywidgets import widget_serialization

from overlay_sdk.analytics.cost_frame import CostFrame
from overlay_sdk.client import ControlPlane
from overlay_sdk.errors import ValidationError
from overlay_sdk.overlays import Overlay
from overlay_sdk.widgets.assets import asset, esm
from overlay_sdk.widgets.charts import blank, chart, show
from overlay_sdk.widgets.inputs import error_of, since_text

__all__ = ["CostView"]

BY = ("hour", "day")


def _rows(frame: CostFrame) -> list[dict[str, Any]]:
    """Spend per version (or overlay) for the table, most expensive first."""
    series = "overlay" if "overlay" in frame.columns else None
    label = frame[series].astype(str) if series else (
        frame["model"].astype(str) + ":" + frame["version"].astype(str))
    grouped = frame.assign(label=label).groupby("label", sort=False).agg(
        calls=("calls", "sum"), priced=("priced_calls", "sum"), nusd=("cost_nusd", "sum"))
    rows = [{"label": str(name), "calls": int(row.calls), "cost_usd": int(row.nusd) / 1e9,
             "usd_per_call": (int(row.nusd) / 1e9 / int(row.priced)) if row.priced else None}
            for name, row in grouped.iterrows()]
    return sorted(rows, key=lambda r: -r["cost_usd"])


def _today(frame: CostFrame) -> float:
    """Today's spend (UTC), what the daily budget is checked against."""
    if frame.empty or "time" not in frame.columns:
        return 0.0
    midnight = pd.Timestamp.now(tz="UTC").normalize()
    return int(frame.loc[frame["time"] >= midnight, "cost_nusd"].sum()) / 1e9


class CostView(anywidget.AnyWidget):
    """Spend of one overlay (an :class:`Overlay`) or of all (a :class:`ControlPlane`);
    ``by``: "hour" or "day"; ``since``: how far back ("a week ago")."""

    _esm = esm("cost_view.js")
    _css = asset("cost_view.css")

    title = traitlets.Unicode().tag(sync=True)
    by = traitlets.Unicode("hour").tag(sync=True)
    since = traitlets.Unicode("").tag(sync=True)
    total_usd = traitlets.Float(0.0).tag(sync=True)
    today_usd = traitlets.Float(0.0).tag(sync=True)
    calls = traitlets.Int(0).tag(sync=True)
    budget_usd_per_day = traitlets.Float(None, allow_none=True).tag(sync=True)
    rows = traitlets.List(traitlets.Dict()).tag(sync=True)
    loading = traitlets.Bool(False).tag(sync=True)
    error = traitlets.Dict().tag(sync=True)
    spend = traitlets.Instance(go.FigureWidget).tag(sync=True, **widget_serialization)

    def __init__(self, target: Overlay | ControlPlane, *, by: str = "hour", since: Any = None,
                 background: bool = True, **kwargs: Any) -> None:
        if not isinstance(target, Overlay | ControlPlane):
            raise ValidationError.at("target", "give an overlay handle (cp.overlays.get("
                                     "'name')) or the control plane (cp), got "
                                     f"{type(target).__name__}")
        title = (f"Cost of {target.name}" if isinstance(target, Overlay)
                 else "Cost of every overlay")
        super().__init__(title=title, by=by, since=since_text(since), spend=chart(380),
                         **kwargs)
        self._target = target
        self._frame: CostFrame | None = None
        self._loader: threading.Thread | None = None
        self.on_msg(self._on_message)
        self.refresh(background=background)

    @property
    def frame(self) -> CostFrame | None:
        """The spend shown (None until loaded)."""
        return self._frame

    def _on_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict) and content.get("type") in ("refresh", "settings"):
            if content.get("type") == "settings":
                self.by = str(content.get("by") or self.by)
                self.since = str(content.get("since") or "")
            self.refresh()

    def refresh(self, *, background: bool = True) -> CostView:
        """Read the spend again (in the background unless told not to)."""
        self.wait()
        self.loading, self.error = True, {}
        if not background:
            self._load()
            return self
        self._loader = threading.Thread(target=self._load, name="overlay-cost-view",
                                        daemon=True)
        self._loader.start()
        return self

    def wait(self, timeout: float | None = None) -> CostView:
        """Wait for the load in progress."""
        if self._loader is not None:
            self._loader.join(timeout)
        return self

    def _load(self) -> None:
        try:
            if self.by not in BY:
                raise ValidationError.at("by", f"give one of {', '.join(BY)}, got {self.by!r}")
            frame = self._target.cost(by=self.by, since=self.since or None)
        except Exception as err:  # shown inline: a background load never raises
            self.error = error_of(err)
            self.loading = False
            return
        self._frame = frame
        with self.hold_sync():
            self.total_usd = frame.total_usd
            self.today_usd = _today(frame)
            self.calls = int(frame["calls"].sum()) if len(frame) else 0
            self.budget_usd_per_day = frame.budget_usd_per_day
            self.rows = _rows(frame) if len(frame) else []
            self.loading = False
        show(self.spend, frame.plot() if len(frame) else blank("no calls in this range yet"))

    def close(self) -> None:
        if hasattr(self, "_target"):  # (not there when __init__ refused its input)
            self.wait(5)
            self.spend.close()
        super().close()
