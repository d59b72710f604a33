"""CostView on real telemetry: spend chart, totals, budget (issue 7)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from overlay_sdk.client import ControlPlane
from overlay_sdk.errors import ValidationError
from overlay_sdk.telemetry import CallRecord, TelemetryWriter
from overlay_sdk.widgets import CostView

NOW = datetime.now(UTC)


@pytest.fixture
def spent(cp: ControlPlane) -> ControlPlane:
    cp.overlays.create("scoring", host="http://127.0.0.1:9",
                       routes={"fraud:1": 50, "fraud:2": 50}, budget={"usdPerDay": 0.5})
    cp.overlays.create("other", host="http://127.0.0.1:9", routes={"fraud:3": 100})
    writer = TelemetryWriter(cp.telemetry_url)
    for i in range(30):
        for overlay, version in (("scoring", str(1 + i % 2)), ("other", "3")):
            writer.submit(CallRecord(overlay, 1, "fraud", version, "primary", 2.0,
                                     cost_nusd=10_000_000 * (1 + i % 2),  # 0.01 or 0.02 USD
                                     time=NOW - timedelta(minutes=2 * i)))
    writer.flush()
    writer.close()
    return cp


def test_one_overlay_with_its_budget(spent: ControlPlane) -> None:
    view = CostView(spent.overlays.get("scoring"), background=False)
    assert view.title == "Cost of scoring" and view.error == {}
    assert view.calls == 30 and view.total_usd == pytest.approx(0.45)
    assert view.budget_usd_per_day == 0.5 and 0 < view.today_usd <= 0.45
    assert [r["label"] for r in view.rows] == ["fraud:2", "fraud:1"]  # costliest first
    assert view.rows[0]["usd_per_call"] == pytest.approx(0.02)
    bars = [t for t in view.spend.data if t.type == "bar"]
    assert {t.name for t in bars if t.name} == {"fraud:1", "fraud:2"}
    assert any(s.type == "line" for s in view.spend.layout.shapes)  # the budget pace line
    view.close()


def test_every_overlay_and_settings_from_the_front_end(spent: ControlPlane) -> None:
    view = CostView(spent, background=False)
    assert view.title == "Cost of every overlay" and view.calls == 60
    assert view.budget_usd_per_day is None
    view._on_message(view, {"type": "settings", "by": "day", "since": "a day ago"}, [])
    view.wait(30)
    assert view.by == "day" and view.calls == 60 and view.error == {}
    view._on_message(view, {"type": "settings", "by": "week"}, [])
    view.wait(30)
    assert view.error["field"] == "by" and not view.loading
    view.close()


def test_nothing_spent_yet_and_bad_targets(cp: ControlPlane) -> None:
    view = CostView(cp, background=False)
    assert view.calls == 0 and view.rows == [] and "no calls" in (
        view.spend.layout.title.text)
    view.close()
    with pytest.raises(ValidationError, match="target"):
        CostView("scoring")  # type: ignore[arg-type]
