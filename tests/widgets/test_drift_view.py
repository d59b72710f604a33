"""DriftView on real telemetry: heatmap, a clicked cell's distributions, alerts (issue 7)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from overlay_sdk.alerts import Alert, raise_alerts
from overlay_sdk.client import ControlPlane
from overlay_sdk.errors import ValidationError
from overlay_sdk.overlays import Overlay
from overlay_sdk.telemetry import CallRecord, TelemetryWriter
from overlay_sdk.widgets import DriftView

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
REFERENCE = pd.DataFrame({"amount": np.random.default_rng(1).normal(size=2000),
                          "country": np.random.default_rng(2).choice(["fr", "de"], 2000)})


@pytest.fixture
def overlay(cp: ControlPlane) -> Overlay:
    o = cp.overlays.create("scoring", host="http://127.0.0.1:9", routes={"fraud:1": 100})
    writer = TelemetryWriter(cp.telemetry_url)
    rng = np.random.default_rng(3)
    for hour in range(3):  # amount moves by 1 sigma in the last hour
        start = NOW - timedelta(hours=3 - hour)
        for i, amount in enumerate(rng.normal(1.0 if hour == 2 else 0.0, 1.0, 200)):
            writer.submit(CallRecord("scoring", 1, "fraud", "1", "primary", 1.0,
                                     inputs={"amount": float(amount),
                                             "country": str(rng.choice(["fr", "de"]))},
                                     output=[0.5], time=start + timedelta(seconds=i * 10)))
    writer.flush()
    writer.close()
    return o


def test_the_heatmap_shows_features_by_window_and_a_click_draws_distributions(
        overlay: Overlay) -> None:
    view = DriftView(overlay, reference=REFERENCE, background=False)
    assert view.versions == ["fraud:1"] and view.version == "fraud:1"
    assert not view.loading and view.error == {} and "3 windows" in view.summary
    heat = view.heatmap.data[0]
    assert heat.type == "heatmap" and set(heat.y) >= {"amount", "country"}
    assert len(heat.x) == 3
    # what plotly's on_click hands over for the cell (amount, last window)
    row, column = list(heat.y).index("amount"), 2
    view._clicked(heat, SimpleNamespace(point_inds=[[row, column]]), None)
    assert view.selected["feature"] == "amount"
    assert pd.Timestamp(view.selected["window"]) == pd.Timestamp(heat.x[2])
    assert [t.name for t in view.detail.data] == ["reference", "current"]
    assert "drifted" in view.detail.layout.title.text
    assert view.select("country", heat.x[0]) and view.detail.data[0].type == "bar"
    view.close()


def test_a_cell_without_a_test_says_why(overlay: Overlay) -> None:
    view = DriftView(overlay, reference=REFERENCE, background=False)
    assert not view.select("amount", "2001-01-01T00:00:00+00:00")
    assert view.error["field"] == "selected" and "no test" in view.error["message"]
    view.close()


def test_alerts_are_listed_and_loading_runs_in_the_background(overlay: Overlay,
                                                              cp: ControlPlane) -> None:
    raise_alerts(cp.telemetry_url, [Alert(
        "scoring", "drift", "drift:scoring:fraud:1:amount:x", "amount drifted for 2 windows",
        version="fraud:1", subject="amount",
        details={"first_window": NOW.isoformat(), "last_window": NOW.isoformat()})])
    seen: list[str] = []
    view = DriftView(overlay, reference=REFERENCE)
    view.observe(lambda change: seen.append(change["new"]), names="progress")
    view.wait(30)
    assert not view.loading and view.timeline is not None
    assert [a["subject"] for a in view.alerts] == ["amount"]
    assert view.alerts[0]["version"] == "fraud:1"
    view._on_message(view, {"type": "settings", "window": "1D", "since": ""}, [])
    view.wait(30)
    assert view.window == "1D" and len(view.heatmap.data[0].x) in (1, 2)
    assert any("calls read" in s for s in seen)
    view.close()


def test_bad_settings_are_shown_not_raised(overlay: Overlay) -> None:
    view = DriftView(overlay, reference=REFERENCE, window="soon", background=False)
    assert view.error["field"] == "window" and not view.loading
    with pytest.raises(ValidationError, match="overlay"):
        DriftView("scoring")  # type: ignore[arg-type]
    view.close()


def test_no_calls_yet_draws_a_note(cp: ControlPlane) -> None:
    o = cp.overlays.create("quiet", host="http://127.0.0.1:9", routes={"fraud:1": 100})
    view = DriftView(o, reference=REFERENCE, background=False)
    assert view.versions == [] and "no sampled calls" in view.heatmap.layout.title.text
    view.close()
