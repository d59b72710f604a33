"""The periodic alert evaluation over time: a drift run that goes on is one alert (issue 6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from overlay_sdk.alerts import read_alerts
from overlay_sdk.spec import AIOverlaySpec
from overlay_sdk.telemetry import CallRecord, TelemetryWriter
from overlay_sdk.watch import evaluate

START = datetime(2026, 11, 25, tzinfo=UTC)
REFERENCE = pd.DataFrame({"amount": np.random.default_rng(1).normal(size=3000)})


class _Registry:
    def __init__(self) -> None:
        self.asked = 0

    def reference(self, model: str, version: str) -> pd.DataFrame:
        self.asked += 1
        return REFERENCE


def test_a_drift_that_goes_on_for_hours_is_one_alert(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'telemetry.db'}"
    writer = TelemetryWriter(url)
    rng = np.random.default_rng(2)
    for hour in range(12):  # drifted from hour 0 on, all day
        for i, amount in enumerate(rng.normal(1.0, 1.0, 200)):
            writer.submit(CallRecord("o", 1, "fraud", "1", "primary", 1.0,
                                     inputs={"amount": float(amount)}, output=[0],
                                     time=START + timedelta(hours=hour, seconds=i * 10)))
    writer.flush()
    writer.close()
    spec = AIOverlaySpec.model_validate({
        "host": {"url": "http://127.0.0.1:1"}, "routes": [{"model": "fraud", "version": "1",
                                                           "weight": 100}],
        "drift": {"window": "1h", "consecutive": 2, "alpha": 0.01}})
    raised = []
    registry = _Registry()
    for hour in range(2, 13):
        raised += evaluate(url, "o", spec, registry=registry,
                           now=START + timedelta(hours=hour, minutes=5))
    assert registry.asked == 1  # the reference is read once, not per window and evaluation
    assert [a.subject for a in raised] == ["amount"]  # one run, one alert
    stored = read_alerts(url, overlay="o")
    assert len(stored) == 1
    assert pd.Timestamp(stored["details"][0]["last_window"]) == pd.Timestamp(
        START + timedelta(hours=11))  # extended as the run went on
