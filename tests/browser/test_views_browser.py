"""DriftView and CostView in a real browser: plots drawn from the telemetry of the browser
home, a heatmap cell clicked to draw its distributions (issue 7)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import Locator, Page, expect

from overlay_sdk.client import ControlPlane
from overlay_sdk.overlays import Overlay
from overlay_sdk.telemetry import CallRecord, TelemetryWriter
from tests.browser.conftest import BrowserLog, RunNotebook

NAME = "views"


@pytest.fixture(scope="module")
def watched(plane: ControlPlane) -> Overlay:
    """An overlay with three hours of sampled, priced calls; ``amount`` moves by one sigma
    in the last hour."""
    o = plane.overlays.create(NAME, host="http://127.0.0.1:9",
                              routes={"fraud:1": 80, "fraud:2": 20}, budget={"usdPerDay": 5})
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    rng = np.random.default_rng(4)
    writer = TelemetryWriter(plane.telemetry_url)
    for hour in range(3):
        start = now - timedelta(hours=2 - hour)
        for i, amount in enumerate(rng.normal(1.0 if hour == 2 else 0.0, 1.0, 300)):
            writer.submit(CallRecord(
                NAME, o.revision, "fraud", "2" if i % 5 == 0 else "1", "primary", 3.0,
                inputs={"amount": float(amount), "age": float(rng.normal())}, output=[0.5],
                cost_nusd=2_000_000 if i % 5 == 0 else 1_000_000,
                time=start + timedelta(seconds=i * 5)))
    writer.flush()
    writer.close()
    return o


REFERENCE = ("import numpy as np, pandas as pd\n"
             "rng = np.random.default_rng(1)\n"
             "reference = pd.DataFrame({'amount': rng.normal(size=3000), "
             "'age': rng.normal(size=3000)})\n")


def test_the_drift_heatmap_draws_and_a_click_shows_a_cells_distributions(
        watched: Overlay, run_notebook: RunNotebook, page: Page, browser_log: BrowserLog,
        screenshot: Callable[[Locator, str], Path]) -> None:
    cell = (REFERENCE + "from overlay_sdk.widgets import DriftView\nimport overlay_sdk as ov\n"
            f"DriftView(ov.connect().overlays.get({NAME!r}), reference=reference)")
    widget = run_notebook("drift_view.ipynb", [cell], ".ov-drift")
    heatmap = widget.locator(".ov-drift-heatmap .js-plotly-plot")
    expect(heatmap.locator("g.hm")).to_have_count(1, timeout=30_000)  # the heatmap trace
    expect(widget.locator(".ov-drift-summary")).to_contain_text("3 windows")
    expect(widget.locator('select[aria-label="model version"]')).to_have_value("fraud:1")
    # the last window's top row; plotly puts the first feature at the bottom
    area = heatmap.locator(".nsewdrag").first.bounding_box()
    assert area is not None
    page.mouse.click(area["x"] + area["width"] * 5 / 6, area["y"] + area["height"] * 3 / 4)
    detail = widget.locator(".ov-drift-detail .js-plotly-plot")
    expect(detail.locator(".scatterlayer .trace")).to_have_count(2, timeout=20_000)
    expect(detail.locator(".gtitle")).to_contain_text("age")  # features: age, amount, output
    screenshot(widget, "drift_view")
    assert browser_log.errors == [], browser_log.errors


def test_the_cost_view_draws_spend_per_version_and_the_budget(
        watched: Overlay, run_notebook: RunNotebook, browser_log: BrowserLog,
        screenshot: Callable[[Locator, str], Path]) -> None:
    cell = ("from overlay_sdk.widgets import CostView\nimport overlay_sdk as ov\n"
            f"CostView(ov.connect().overlays.get({NAME!r}))")
    widget = run_notebook("cost_view.ipynb", [cell], ".ov-cost")
    chart = widget.locator(".ov-cost-chart .js-plotly-plot")
    expect(chart.locator(".barlayer .trace")).to_have_count(3, timeout=30_000)  # 2 + per call
    expect(widget.locator(".ov-cost-totals")).to_contain_text("$1.08 spent on 900 calls")
    expect(widget.locator(".ov-cost-budget")).to_contain_text("of $5.00 a day")
    expect(widget.locator(".ov-cost-table tr")).to_have_count(3)
    screenshot(widget, "cost_view")
    assert browser_log.errors == [], browser_log.errors
