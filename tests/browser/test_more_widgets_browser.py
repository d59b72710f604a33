"""TopologyMap, ModelRegistry and Dashboard in a real browser (issue 7): the map follows a
traffic change made through the SDK in this process, a rollback is previewed, cancelled,
previewed again and confirmed from the page, and the dashboard's tabs draw their plots.
Each test has its own overlay (the browser home is shared by the whole session)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import Locator, Page, expect

from overlay_sdk.client import ControlPlane
from overlay_sdk.telemetry import CallRecord, TelemetryWriter
from tests.browser.conftest import BrowserLog, RunNotebook

HOST = "http://127.0.0.1:9"  # never called
UPDATE_MS = 15_000  # the map re-reads the topology every second; this is the bound


def edge(widget: Locator, overlay: str, version: str) -> Locator:
    """The drawn edge overlay -> version (``fraud:1``)."""
    return widget.locator(f'path.ov-topo-edge[data-source="overlay:{overlay}"]'
                          f'[data-target="version:{version}"]')


def drawn(path: Locator) -> tuple[float, float]:
    """An edge's (share, stroke width) as the page draws it."""
    share, width = path.get_attribute("data-share"), path.get_attribute("stroke-width")
    assert share is not None and width is not None
    return float(share), float(width)


def test_the_topology_map_follows_a_traffic_change(
        plane: ControlPlane, run_notebook: RunNotebook, browser_log: BrowserLog,
        screenshot: Callable[[Locator, str], Path]) -> None:
    name = "topo-live"
    o = plane.overlays.create(name, host=HOST, routes={"fraud:1": 90, "fraud:2": 10})
    # calls in the map's window (the last 15 minutes): half of fraud:2's 10 calls fail
    now = datetime.now(UTC)
    writer = TelemetryWriter(plane.telemetry_url)
    for i in range(40):
        version = "2" if i % 4 == 0 else "1"
        failed = i % 8 == 0
        writer.submit(CallRecord(name, o.revision, "fraud", version, "primary", 3.0,
                                 status="error" if failed else "ok",
                                 error="boom" if failed else None,
                                 time=now - timedelta(seconds=120 - i)))
    writer.flush()
    writer.close()

    cell = ("from overlay_sdk.widgets import TopologyMap\nimport overlay_sdk as ov\n"
            "TopologyMap(ov.connect(), interval=1)")
    widget = run_notebook("topology_map.ipynb", [cell], ".ov-topo")
    one, two = edge(widget, name, "fraud:1"), edge(widget, name, "fraud:2")
    expect(one).to_have_count(1)
    expect(two).to_have_count(1)
    expect(widget.locator(f'[data-source="host:{HOST}"][data-target="overlay:{name}"]')
           ).to_have_count(1)
    share1, width1 = drawn(one)
    share2, width2 = drawn(two)
    assert (share1, share2) == (90, 10)
    assert (width1, width2) == pytest.approx((1 + 0.9 * 14, 1 + 0.1 * 14))  # 1 + share * 14 px
    # health: fraud:2's failures colour its edge, fraud:1's edge is fine
    expect(one).to_have_attribute("data-health", "ok")
    expect(two).to_have_attribute("data-health", "error")
    expect(two).to_have_class(re.compile(r"\bov-topo-error\b"))
    expect(two).to_have_attribute("data-calls", "10")
    expect(widget.locator(f'g.ov-topo-node[data-id="overlay:{name}"]')
           ).to_have_attribute("data-health", "error")
    expect(widget.locator(".ov-topo-message")).to_be_hidden()

    changed_at = time.monotonic()
    plane.overlays.get(name).set_traffic({"fraud:1": 30, "fraud:2": 70})
    expect(two).to_have_attribute("data-share", "70", timeout=UPDATE_MS)
    seconds = time.monotonic() - changed_at
    expect(one).to_have_attribute("data-share", "30")
    share1, width1 = drawn(one)
    share2, width2 = drawn(two)
    assert width2 > width1, (width1, width2)
    assert (width1, width2) == pytest.approx((1 + 0.3 * 14, 1 + 0.7 * 14))
    assert seconds < UPDATE_MS / 1000
    expect(widget.locator(f'g.ov-topo-node[data-id="overlay:{name}"] .ov-topo-sub')
           ).to_contain_text("rev 2")
    expect(widget.locator(f'text.ov-topo-share[data-source="overlay:{name}"]'
                          '[data-target="version:fraud:2"]')).to_have_text("70%")

    screenshot(widget, "topology_map")
    assert browser_log.errors == [], browser_log.errors


def test_a_rollback_is_previewed_cancelled_and_confirmed_in_the_model_registry(
        plane: ControlPlane, run_notebook: RunNotebook, browser_log: BrowserLog,
        screenshot: Callable[[Locator, str], Path]) -> None:
    models = plane.models
    # a recorded history of fraud@serving: 2, then 3; "previous" is 2
    models.set_alias("fraud", "serving", 2, reason="browser test: first")
    models.set_alias("fraud", "serving", 3, reason="browser test: second")
    assert models.get_version_by_alias("fraud", "serving").version == "3"
    history = len(models.alias_history("fraud", "serving"))
    versions = models.versions("fraud")
    shas = {str(r.version): str(r.sha256) for r in versions.itertuples()}
    assert sorted(shas) == ["1", "2", "3"]

    cell = ("from overlay_sdk.widgets import ModelRegistry\nimport overlay_sdk as ov\n"
            "ModelRegistry(ov.connect())")
    widget = run_notebook("model_registry.ipynb", [cell], ".ov-reg")
    row = widget.locator('.ov-reg-models tr[data-model="fraud"]')
    expect(row).to_have_attribute("aria-selected", "true")
    rows = widget.locator(".ov-reg-versions tbody tr")
    expect(rows).to_have_count(3)
    assert [r.get_attribute("data-version") for r in rows.all()] == ["3", "2", "1"]
    for version, sha in shas.items():
        cell_sha = widget.locator(f'.ov-reg-versions tr[data-version="{version}"] .ov-reg-sha')
        expect(cell_sha).to_have_text(sha[:12])
        expect(cell_sha).to_have_attribute("title", sha)
    serving = widget.locator('.ov-reg-versions tr[data-version="3"] .ov-reg-badge-serving')
    expect(serving).to_have_text("serving")

    widget.locator(".ov-reg-rollback").click()
    expect(widget.locator('select[aria-label="alias to roll back"]')).to_have_value("serving")
    expect(widget.locator('select[aria-label="roll back to"]')).to_have_value("previous")
    preview = widget.locator(".ov-reg-preview")
    confirm_box = widget.locator(".ov-reg-confirmbox")
    text = "fraud@serving: version 3 -> 2 (label C=0.1)."

    preview.click()
    expect(confirm_box).to_be_visible()
    expect(confirm_box.locator(".ov-reg-pending")).to_have_text(text)
    expect(preview).to_be_disabled()  # confirm or cancel first
    assert models.get_version_by_alias("fraud", "serving").version == "3"  # a dry run
    confirm_box.locator(".ov-reg-cancel").click()
    expect(confirm_box).to_have_count(0)
    expect(widget.locator(".ov-reg-notice")).to_have_text(f"cancelled: {text[:-1]}")
    assert models.get_version_by_alias("fraud", "serving").version == "3"
    assert len(models.alias_history("fraud", "serving")) == history

    preview.click()
    expect(confirm_box.locator(".ov-reg-pending")).to_have_text(text)
    expect(widget.locator(".ov-reg-error")).to_have_count(0)
    screenshot(widget, "model_registry")
    confirm_box.locator(".ov-reg-confirm").click()
    expect(confirm_box).to_have_count(0)
    expect(widget.locator(".ov-reg-notice")).to_have_text(
        "rolled back fraud@serving: version 3 -> 2")
    assert models.get_version_by_alias("fraud", "serving").version == "2"
    moves = models.alias_history("fraud", "serving")
    assert len(moves) == history + 1
    last = moves.iloc[-1]
    assert (last["version"], last["previous"], last["author"]) == ("2", "3", "browser-test")
    expect(widget.locator('.ov-reg-versions tr[data-version="2"] .ov-reg-badge-serving')
           ).to_have_text("serving")
    expect(serving).to_have_count(0)
    expect(row.locator("td").nth(3)).to_have_text("2")  # the @serving column
    assert browser_log.errors == [], browser_log.errors


def test_the_dashboard_shows_its_header_and_draws_each_tab(
        plane: ControlPlane, run_notebook: RunNotebook, page: Page, browser_log: BrowserLog,
        screenshot: Callable[[Locator, str], Path]) -> None:
    name = "dash-tabs"
    o = plane.overlays.create(name, host=HOST, routes={"fraud:1": 80, "fraud:2": 20},
                              budget={"usdPerDay": 5})
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    rng = np.random.default_rng(7)
    writer = TelemetryWriter(plane.telemetry_url)
    for hour in range(2):
        for i, amount in enumerate(rng.normal(hour * 1.0, 1.0, 200)):
            writer.submit(CallRecord(
                name, o.revision, "fraud", "2" if i % 5 == 0 else "1", "primary", 3.0,
                inputs={"amount": float(amount), "age": float(rng.normal())}, output=[0.5],
                cost_nusd=1_000_000, time=start + timedelta(hours=hour, seconds=i * 10)))
    writer.flush()
    writer.close()

    cell = ("import numpy as np, pandas as pd\n"
            "rng = np.random.default_rng(1)\n"
            "reference = pd.DataFrame({'amount': rng.normal(size=2000), "
            "'age': rng.normal(size=2000)})\n"
            "from overlay_sdk.widgets import Dashboard\nimport overlay_sdk as ov\n"
            f"Dashboard(ov.connect().overlays.get({name!r}), drift={{'reference': reference}})")
    widget = run_notebook("dashboard.ipynb", [cell], ".ov-dash")
    expect(widget.locator(".ov-dash-title")).to_have_text(f"{name} in front of {HOST}")
    expect(widget.locator(".ov-dash-line")).to_have_text(
        "passthrough · revision 1 · fraud:1 80%, fraud:2 20%")
    tabs = widget.locator(".ov-dash-tab")
    expect(tabs).to_have_text(["Traffic", "Drift", "Cost", "Topology"])
    expect(tabs.first).to_have_attribute("aria-selected", "true")
    traffic = widget.locator('[data-pane="traffic"]')
    expect(traffic.locator(".ov-split input[type=range]")).to_have_count(2)
    expect(widget.locator(".ov-dash-loading")).to_be_hidden(timeout=30_000)

    widget.locator('[data-tab="drift"]').click()
    drift = widget.locator('[data-pane="drift"]')
    expect(drift).to_be_visible()
    expect(traffic).to_be_hidden()
    heatmap = drift.locator(".ov-drift-heatmap .js-plotly-plot")
    expect(heatmap).to_be_visible()
    expect(heatmap.locator("g.hm")).to_have_count(1, timeout=30_000)
    expect(drift.locator(".ov-drift-summary")).to_contain_text("2 windows")

    widget.locator('[data-tab="cost"]').click()
    cost = widget.locator('[data-pane="cost"]')
    chart = cost.locator(".ov-cost-chart .js-plotly-plot")
    expect(chart).to_be_visible()
    expect(chart.locator(".barlayer .trace")).to_have_count(3, timeout=30_000)
    expect(cost.locator(".ov-cost-totals")).to_contain_text("$0.40 spent on 400 calls")
    expect(drift).to_be_hidden()

    widget.locator('[data-tab="topology"]').click()
    topo = widget.locator('[data-pane="topology"]')
    expect(edge(topo, name, "fraud:1")).to_have_attribute("data-share", "80")

    widget.locator('[data-tab="traffic"]').click()
    expect(traffic).to_be_visible()
    expect(tabs.first).to_have_attribute("aria-selected", "true")
    screenshot(widget, "dashboard")
    assert browser_log.errors == [], browser_log.errors
