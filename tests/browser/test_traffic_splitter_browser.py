"""The TrafficSplitter in a real browser: JupyterLab in chromium, the widget driven with the
mouse and the keyboard, its effect checked through the SDK in this process (the notebook's
kernel and this process share the overlay home, and a gateway started here shows how long
each change took to apply)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Locator, Page, expect

from overlay_sdk.client import ControlPlane
from overlay_sdk.gateway import GatewayHandle
from tests.browser.conftest import BrowserLog, RunNotebook

HOST = "http://127.0.0.1:9"  # never called: no host traffic goes through the gateway here
SPLIT = ".ov-split"
THUMB_PX = 16  # about the width of chromium's range thumb: where value v is drawn


def splitter_cell(name: str) -> str:
    return ("from overlay_sdk.widgets import TrafficSplitter\n"
            "import overlay_sdk as ov\n"
            f"TrafficSplitter(ov.connect().overlays.get({name!r}))")


def shown_weights(widget: Locator) -> dict[str, int]:
    """The weights the page shows (the ``.ov-split-value`` labels), by version."""
    labels = widget.locator(".ov-split-value")
    shown: dict[str, int] = {}
    for i in range(labels.count()):
        label = labels.nth(i)
        text = label.inner_text().strip()
        assert text.endswith("%"), text
        shown[str(label.get_attribute("data-key"))] = int(text[:-1])
    return shown


def slider_values(widget: Locator) -> dict[str, int]:
    sliders = widget.locator("input[type=range]")
    return {str(s.get_attribute("data-key")): int(s.input_value()) for s in sliders.all()}


def stored_weights(plane: ControlPlane, name: str) -> dict[str, int]:
    return {str(r.ref): int(r.weight) for r in plane.overlays.get(name).spec.routes}


def drag(page: Page, slider: Locator, start: int, end: int) -> None:
    """Drag ``slider``'s thumb from value ``start`` to value ``end`` with the mouse."""
    box = slider.bounding_box()
    assert box is not None, "the slider is not displayed"

    def x(value: int) -> float:
        return box["x"] + THUMB_PX / 2 + (box["width"] - THUMB_PX) * value / 100

    y = box["y"] + box["height"] / 2
    page.mouse.move(x(start), y)
    page.mouse.down()
    page.mouse.move(x(end), y, steps=12)
    page.mouse.up()


def poll(read: Callable[[], object], expected: object, timeout: float = 10.0) -> object:
    """``read()`` until it returns ``expected`` (or the timeout); the last value read."""
    deadline = time.monotonic() + timeout
    value = read()
    while value != expected and time.monotonic() < deadline:
        time.sleep(0.1)
        value = read()
    return value


def test_dragging_a_slider_and_applying_changes_the_overlay(
        plane: ControlPlane, gateway: GatewayHandle, run_notebook: RunNotebook, page: Page,
        browser_log: BrowserLog, screenshot: Callable[[Locator, str], Path]) -> None:
    name = "split-drag"
    o = plane.overlays.create(name, host=HOST, routes={"fraud:1": 90, "fraud:2": 10})
    gateway.wait(o)
    widget = run_notebook("split_drag.ipynb", [splitter_cell(name)], SPLIT)

    sliders = widget.locator("input[type=range]")
    expect(sliders).to_have_count(2)
    assert [s.get_attribute("aria-label") for s in sliders.all()] == [
        "weight of fraud:1", "weight of fraud:2"]
    assert shown_weights(widget) == slider_values(widget) == {"fraud:1": 90, "fraud:2": 10}
    expect(widget.locator(".ov-split-apply")).to_be_disabled()  # nothing to apply yet

    drag(page, widget.locator('input[type=range][data-key="fraud:1"]'), 90, 40)
    shown = shown_weights(widget)
    assert sum(shown.values()) == 100, shown
    assert shown == slider_values(widget), "the labels and the sliders disagree"
    assert 30 <= shown["fraud:1"] <= 50, f"the drag to 40 % left {shown}"

    apply = widget.locator(".ov-split-apply")
    expect(apply).to_be_enabled()
    apply.click()

    stored = poll(lambda: stored_weights(plane, name), shown)
    assert stored == shown, f"the page shows {shown}, the overlay has {stored}"
    applied = plane.overlays.get(name)
    assert applied.revision == o.revision + 1  # one change, one revision
    expect(widget.locator(".ov-split-title")).to_contain_text(f"revision {applied.revision}")
    assert shown_weights(widget) == shown
    expect(apply).to_be_disabled()  # applied: nothing left to apply
    expect(widget.locator(".ov-split-error")).to_have_count(0)
    expect(widget.locator(".ov-split-status")).to_contain_text(
        f"revision {applied.revision} applied by the gateway in ", timeout=20_000)

    path = screenshot(widget, "traffic_splitter")
    assert path.stat().st_size > 0
    assert browser_log.errors == [], browser_log.errors


def test_an_invalid_shadow_percent_is_shown_inline_and_changes_nothing(
        plane: ControlPlane, run_notebook: RunNotebook, browser_log: BrowserLog) -> None:
    name = "split-invalid"
    o = plane.overlays.create(name, host=HOST, routes={"fraud:1": 90, "fraud:2": 10})
    before_revision, before_spec = o.revision, o.spec
    before_history = len(o.history())
    widget = run_notebook("split_invalid.ipynb", [splitter_cell(name)], SPLIT)

    pick = widget.locator('select[aria-label="shadow version"]')
    percent = widget.locator('input[aria-label="shadow percent"]')
    expect(percent).to_be_disabled()  # no shadow yet
    pick.select_option("fraud:3")  # the one version that is not a route
    expect(percent).to_be_enabled()
    percent.fill("150")
    percent.press("Tab")  # fires change
    expect(percent).to_have_value("150")
    apply = widget.locator(".ov-split-apply")
    expect(apply).to_be_enabled()
    apply.click()

    error = widget.locator(".ov-split-error")
    expect(error).to_be_visible()
    expect(error).to_have_attribute("role", "alert")
    expect(error.locator("code")).to_contain_text("percent")  # the field at fault
    text = error.inner_text()
    assert "percent" in text and "150" in text, text

    after = plane.overlays.get(name)
    assert after.revision == before_revision
    assert after.spec == before_spec
    assert len(after.history()) == before_history
    # the page keeps what the user typed, to correct it
    expect(pick).to_have_value("fraud:3")
    expect(percent).to_have_value("150")
    assert shown_weights(widget) == {"fraud:1": 90, "fraud:2": 10}
    assert browser_log.errors == [], browser_log.errors
