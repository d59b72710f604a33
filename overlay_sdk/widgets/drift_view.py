"""``DriftView(overlay)``: where and when an overlay's inputs and outputs drift.

A heatmap of adjusted p-values, feature x window, for one model version (``o.drift()``);
clicking a cell draws that feature's reference and current distributions (ECDF, or shares
of categories) for that window; the overlay's drift alerts are listed beside. Loading runs
in the background with a progress line; ``view.wait()`` waits for it.
"""

from __future__ import annotations

import threading
from typing import Any

import anywidget
import pandas as pd
import plotly.graph_objects as go
import traitlets
from ipywidgets import widget_serialization

from overlay_sdk.analytics.timeline import DriftTimeline
from overlay_sdk.errors import ValidationError
from overlay_sdk.overlays import Overlay
from overlay_sdk.widgets.assets import asset, esm
from overlay_sdk.widgets.charts import blank, chart, show
from overlay_sdk.widgets.inputs import error_of, since_text

__all__ = ["DriftView"]


def _alert_rows(alerts: pd.DataFrame) -> list[dict[str, Any]]:
    """The alerts as the front end lists them (newest first)."""
    rows = []
    for alert in alerts.itertuples(index=False):
        details = alert.details if isinstance(alert.details, dict) else {}
        rows.append({"time": pd.Timestamp(alert.time).isoformat(), "version": alert.version,
                     "subject": alert.subject, "message": alert.message,
                     "first_window": details.get("first_window"),
                     "last_window": details.get("last_window")})
    return rows


class DriftView(anywidget.AnyWidget):
    """Drift of ``overlay`` per feature and window (module docstring). ``window``:
    "15min", "1h", "1D"; ``since``: how far back ("a day ago"); ``reference``: as
    ``o.drift(reference=...)``; ``version``: which version's heatmap (default: the one
    with the most windows)."""

    _esm = esm("drift_view.js")
    _css = asset("drift_view.css")

    overlay = traitlets.Unicode().tag(sync=True)
    window = traitlets.Unicode("1h").tag(sync=True)
    since = traitlets.Unicode("").tag(sync=True)
    versions = traitlets.List(traitlets.Unicode()).tag(sync=True)
    version = traitlets.Unicode("").tag(sync=True)
    alerts = traitlets.List(traitlets.Dict()).tag(sync=True)
    summary = traitlets.Unicode("").tag(sync=True)
    selected = traitlets.Dict().tag(sync=True)
    loading = traitlets.Bool(False).tag(sync=True)
    progress = traitlets.Unicode("").tag(sync=True)
    error = traitlets.Dict().tag(sync=True)
    heatmap = traitlets.Instance(go.FigureWidget).tag(sync=True, **widget_serialization)
    detail = traitlets.Instance(go.FigureWidget).tag(sync=True, **widget_serialization)

    def __init__(self, overlay: Overlay, *, window: str = "1h", since: Any = None,
                 reference: Any = "registered", version: str | None = None,
                 background: bool = True, **kwargs: Any) -> None:
        if not isinstance(overlay, Overlay):
            raise ValidationError.at("overlay", f"give an overlay handle (cp.overlays.get("
                                     f"'name')), got {type(overlay).__name__}")
        super().__init__(overlay=overlay.name, window=window, since=since_text(since),
                         version=version or "", heatmap=chart(300), detail=chart(340),
                         **kwargs)
        self._overlay = overlay
        self._reference = reference
        self._timeline: DriftTimeline | None = None
        self._loader: threading.Thread | None = None
        show(self.detail, blank("click a cell of the heatmap to compare distributions"))
        self.on_msg(self._on_message)
        self.refresh(background=background)

    @property
    def timeline(self) -> DriftTimeline | None:
        """The drift timeline shown (None until loaded)."""
        return self._timeline

    def _on_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        if content.get("type") == "refresh":
            self.refresh()
        elif content.get("type") == "settings":
            self.window = str(content.get("window") or self.window)
            self.since = str(content.get("since") or "")
            self.refresh()
        elif content.get("type") == "version":
            self.show_version(str(content.get("version") or ""))
        elif content.get("type") == "select":
            self.select(str(content.get("feature")), str(content.get("window")))

    def refresh(self, *, background: bool = True) -> DriftView:
        """Read the calls and test them again (in the background unless told not to)."""
        self.wait()
        self.loading, self.error, self.progress = True, {}, "reading calls..."
        if not background:
            self._load()
            return self
        self._loader = threading.Thread(target=self._load, name="overlay-drift-view",
                                        daemon=True)
        self._loader.start()
        return self

    def wait(self, timeout: float | None = None) -> DriftView:
        """Wait for the load in progress."""
        loader = self._loader
        if loader is not None:
            loader.join(timeout)
        return self

    def _load(self) -> None:
        try:
            def progress(windows: int, calls: int) -> None:
                self.progress = f"{calls:,} calls read, {windows} windows tested"

            timeline = self._overlay.drift(reference=self._reference, window=self.window,
                                           since=self.since or None, progress=progress)
            alerts = self._overlay.alerts(kind="drift")
        except Exception as err:  # shown inline: a background load never raises
            self.error = error_of(err)
            return
        finally:
            self.loading, self.progress = False, ""
        self._timeline = timeline
        frame = timeline.frame
        keys = sorted(set(frame["model"] + ":" + frame["version"])) if len(frame) else []
        with self.hold_sync():
            self.versions = keys
            self.alerts = _alert_rows(alerts)
            self.summary = timeline.summary()
        self.show_version(self.version if self.version in keys else "")

    def show_version(self, version: str = "") -> None:
        """Draw the heatmap of ``version`` (default: the one with the most windows)."""
        timeline = self._timeline
        if timeline is None or timeline.frame.empty:
            show(self.heatmap, blank("no sampled calls in this range yet"))
            return
        frame = timeline.frame
        keys = frame["model"] + ":" + frame["version"]
        chosen = version or str(keys.value_counts().index[0])
        try:
            figure = timeline.plot(chosen)
        except ValidationError as err:
            self.error = error_of(err)
            return
        self.version = chosen
        show(self.heatmap, figure)
        self.heatmap.data[0].on_click(self._clicked)

    def _clicked(self, trace: Any, points: Any, _state: Any) -> None:
        if not points.point_inds:
            return
        row, column = points.point_inds[0]
        self.select(str(trace.y[row]), str(trace.x[column]))

    def select(self, feature: str, window: str) -> bool:
        """Draw ``feature``'s distributions in ``window`` (a heatmap column: its start);
        False, with :attr:`error` set, when that cell was not tested."""
        timeline = self._timeline
        if timeline is None:
            return False
        start = pd.Timestamp(window)
        report = timeline.reports.get((start, self.version))
        if report is None or feature not in report.shapes:
            reason = ("no test of this version in that window" if report is None else
                      "this feature was not tested in that window (see its message)")
            self.error = {"field": "selected", "message": f"{feature} at {window}: {reason}"}
            return False
        self.error = {}
        self.selected = {"feature": feature, "window": start.isoformat(),
                         "version": self.version}
        show(self.detail, report.plot([feature])[1])
        return True

    def close(self) -> None:
        if hasattr(self, "_overlay"):  # (not there when __init__ refused its input)
            self.wait(5)
            self.heatmap.close()
            self.detail.close()
        super().close()
