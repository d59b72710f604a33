"""The periodic alert evaluation over time: a drift run that goes on is one alert (issue 6)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from overlay_sdk import watch
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


def _drifting_day(url: str) -> None:
    writer = TelemetryWriter(url)
    rng = np.random.default_rng(2)
    for hour in range(12):  # drifted from hour 0 on, all day
        for i, amount in enumerate(rng.normal(1.0, 1.0, 200)):
            writer.submit(CallRecord("o", 1, "fraud", "1", "primary", 1.0,
                                     inputs={"amount": float(amount)}, output=[0],
                                     time=START + timedelta(hours=hour, seconds=i * 10)))
    writer.flush()
    writer.close()


SPEC = AIOverlaySpec.model_validate({
    "host": {"url": "http://127.0.0.1:1"}, "routes": [{"model": "fraud", "version": "1",
                                                       "weight": 100}],
    "drift": {"window": "1h", "consecutive": 2, "alpha": 0.01}})


def test_a_drift_that_goes_on_for_hours_is_one_alert(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'telemetry.db'}"
    _drifting_day(url)
    spec = SPEC
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


def test_closed_windows_are_tested_once(tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'telemetry.db'}"
    _drifting_day(url)
    reads: list[datetime | None] = []
    real = watch.iter_calls

    def counted(*args: object, **kwargs: object) -> Iterator[pd.DataFrame]:
        reads.append(kwargs.get("since"))  # type: ignore[arg-type]
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(watch, "iter_calls", counted)
    registry = _Registry()
    evaluate(url, "o", SPEC, registry=registry, now=START + timedelta(hours=5, minutes=5))
    evaluate(url, "o", SPEC, registry=registry, now=START + timedelta(hours=5, minutes=6))
    # first: the two closed windows and the one in progress; then only the one in progress
    assert [pd.Timestamp(r) for r in reads] == [pd.Timestamp(START + timedelta(hours=3)),
                                                pd.Timestamp(START + timedelta(hours=5))]
    assert len(read_alerts(url, overlay="o")) == 1


def test_calls_of_an_earlier_overlay_of_the_same_name_do_not_count(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'telemetry.db'}"
    _drifting_day(url)  # made by revision 1, since deleted; the overlay now is from revision 3
    writer = TelemetryWriter(url)
    writer.submit(CallRecord("o", 1, "fraud", "1", "primary", 1.0, cost_nusd=2 * 10**9,
                             time=START + timedelta(hours=11)))
    writer.flush()
    writer.close()
    spec = SPEC.model_copy(update={"budget": AIOverlaySpec.model_validate({
        "host": {"url": "http://127.0.0.1:1"}, "routes": [
            {"model": "fraud", "version": "1", "weight": 100}],
        "budget": {"usdPerDay": 1}}).budget})
    now = START + timedelta(hours=11, minutes=30)
    assert evaluate(url, "o", spec, registry=_Registry(), first_revision=3, now=now) == []
    raised = evaluate(url, "o", spec, registry=_Registry(), now=now)  # counted from revision 1
    assert sorted(a.kind for a in raised) == ["budget", "drift"]
