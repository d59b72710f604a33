"""The JupyterLab extension in a real JupyterLab and chromium: the "AI Overlays" sidebar lists
the overlays of the embedded control plane (the server extension's default: the home of the
server's ``OVERLAY_HOME``), a rollback chosen there changes the overlay as the SDK sees it
(and is refused when the overlay changed meanwhile), a refresh keeps the selection and the
scroll position, a missing server extension is said so, "Roll back model..." moves
``fraud@serving``, and the palette command inserts a ``Dashboard`` cell into the open
notebook."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import nbformat
from playwright.sync_api import Locator, Page, Route, expect

from overlay_sdk.client import ControlPlane
from tests.browser.conftest import NOTEBOOK_TIMEOUT_MS, BrowserLog, JupyterLab

NAME = "checkout-scoring"
SIDEBAR_WIDTH = 420  # px: overlay names and badges fit on one line
CONFLICT = "changed meanwhile: refreshed, check and try again"


def _open_lab(page: Page, lab: JupyterLab, path: str = "") -> None:
    page.goto(f"{lab.url}/lab{'/tree/' + path if path else ''}?reset&token={lab.token}")
    page.wait_for_function("() => window.jupyterapp !== undefined", timeout=NOTEBOOK_TIMEOUT_MS)
    page.evaluate("async () => { await window.jupyterapp.restored; }")


def _sidebar(page: Page, width: int = SIDEBAR_WIDTH) -> Locator:
    """Open the sidebar by its tab on the left, as a user does, and drag the left panel's
    edge until it is ``width`` px wide."""
    page.locator('.jp-SideBar .lm-TabBar-tab[data-id="overlay-sdk:sidebar"]').click()
    sidebar = page.get_by_test_id("overlay-sdk-sidebar")
    sidebar.wait_for(state="visible")
    box = sidebar.bounding_box()
    assert box is not None
    handle = page.locator("#jp-main-split-panel > .lm-SplitPanel-handle").first
    grip = handle.bounding_box()
    if grip is not None and abs(box["width"] - width) > 2:
        x, y = grip["x"] + grip["width"] / 2, grip["y"] + grip["height"] / 2
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x + width - box["width"], y, steps=5)
        page.mouse.up()
    return sidebar


def _row(sidebar: Locator, name: str = NAME) -> Locator:
    """The row of overlay ``name`` in the sidebar's list."""
    return sidebar.locator(f'[data-testid="overlay-sdk-overlay"][data-overlay="{name}"]')


def _ensure_overlay(plane: ControlPlane) -> int:
    """``NAME`` exists with at least two revisions (one to roll back to); its revision."""
    if NAME not in plane.overlays:
        plane.overlays.apply({
            "metadata": {"name": NAME},
            "spec": {"host": {"url": "http://127.0.0.1:8001"},
                     "routes": [{"model": "fraud", "version": "1", "weight": 90},
                                {"model": "fraud", "version": "2", "weight": 10}]}})
    o = plane.overlays.get(NAME)
    if o.revision < 2:
        o = o.set_traffic({"fraud:1": 50, "fraud:2": 50})
    return o.revision


def _palette(page: Page, command: str, text: str) -> None:
    """Run ``command`` from the command palette, typing ``text`` as a user does."""
    page.keyboard.press("Control+Shift+c")
    palette = page.locator("#command-palette input, .lm-CommandPalette-input").first
    palette.fill(text)
    page.locator(f'.lm-CommandPalette-item.lm-mod-active[data-command="{command}"]').wait_for()
    palette.press("Enter")


def _dialog(page: Page) -> Locator:
    dialog = page.locator(".jp-Dialog").last
    dialog.wait_for(state="visible")
    return dialog


def test_the_sidebar_lists_the_overlays_and_a_rollback_there_changes_the_overlay(
    jupyter_lab: JupyterLab, plane: ControlPlane, page: Page, browser_log: BrowserLog,
    screenshot: Callable[[Locator, str], Path],
) -> None:
    o = plane.overlays.apply({
        "metadata": {"name": NAME},
        "spec": {"host": {"url": "http://127.0.0.1:8001"},
                 "routes": [{"model": "fraud", "version": "1", "weight": 90},
                            {"model": "fraud", "version": "2", "weight": 10}]}},
        message="fraud:2 as a 10% canary")
    o = o.set_traffic({"fraud:1": 50, "fraud:2": 50}, message="half and half")
    assert o.revision == 2
    plane.models.set_alias("fraud", "serving", 2, reason="browser test: the sidebar's badge")

    _open_lab(page, jupyter_lab)
    sidebar = _sidebar(page)
    row = _row(sidebar)
    row.wait_for(state="visible")
    weights = row.get_by_test_id("overlay-sdk-weights").inner_text()
    assert "fraud:1" in weights and "50%" in weights, weights
    models = sidebar.get_by_test_id("overlay-sdk-models")
    models.locator('[data-model="fraud"]').wait_for(state="visible")
    expect(models.locator('[data-model="fraud"] [data-alias="serving"]')).to_have_text(
        "serving → 2")
    sidebar.get_by_test_id("overlay-sdk-topology").locator("svg").wait_for(state="visible")

    row.click()
    detail = sidebar.get_by_test_id("overlay-sdk-detail")
    detail.locator('[data-testid="overlay-sdk-revision"][data-revision="1"]').wait_for()
    name = row.locator(".jp-OverlaySdk-name")
    assert name.evaluate("e => e.scrollWidth <= e.clientWidth"), "the overlay name is cut"
    page.wait_for_timeout(300)  # the split panel's resize settles
    screenshot(sidebar, "jupyterlab_sidebar")

    detail.locator('[data-testid="overlay-sdk-rollback"][data-revision="1"]').click()
    page.locator(".jp-Dialog").get_by_role("button", name="Roll back").click()
    deadline = time.monotonic() + 20
    while plane.overlays.get(NAME).revision != 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    after = plane.overlays.get(NAME)
    assert after.revision == 3, "the rollback chosen in the sidebar was not applied"
    assert {f"{r.model}:{r.version}": r.weight for r in after.overlay.spec.routes} == {
        "fraud:1": 90, "fraud:2": 10}
    result = sidebar.get_by_test_id("overlay-sdk-result")
    result.wait_for(state="visible")
    assert "3" in result.inner_text()
    # the list follows: the row shows the new weights and revision
    page.wait_for_function(
        """(name) => {
          const row = document.querySelector(`[data-overlay="${name}"]`);
          return row && row.innerText.includes('90%');
        }""", arg=NAME, timeout=20_000)
    assert not browser_log.errors, browser_log.text()


def test_open_overlay_dashboard_inserts_a_dashboard_cell(
    jupyter_lab: JupyterLab, plane: ControlPlane, page: Page, browser_log: BrowserLog,
) -> None:
    if NAME not in plane.overlays:
        plane.overlays.apply({
            "metadata": {"name": NAME},
            "spec": {"host": {"url": "http://127.0.0.1:8001"},
                     "routes": [{"model": "fraud", "version": "1", "weight": 100}]}})
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")], metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)",
                       "language": "python"}})
    nbformat.write(notebook, jupyter_lab.root / "dash.ipynb")
    try:
        _open_lab(page, jupyter_lab, "dash.ipynb")
        _row(_sidebar(page)).click()
        page.wait_for_function(
            "() => { const w = window.jupyterapp.shell.currentWidget;"
            " return w && w.context && w.context.path === 'dash.ipynb'; }",
            timeout=NOTEBOOK_TIMEOUT_MS)
        # the notebook takes the focus once its kernel is up, which would close the palette
        page.wait_for_function(
            "() => { const s = window.jupyterapp.shell.currentWidget.sessionContext;"
            " return s.session && s.session.kernel && s.session.kernel.status === 'idle'; }",
            timeout=NOTEBOOK_TIMEOUT_MS)
        _palette(page, "overlay-sdk:open-dashboard", "Open overlay dashboard")
        sources = page.wait_for_function(
            """() => {
              const w = window.jupyterapp.shell.currentWidget;
              const cells = w.content.model.cells;
              const texts = [];
              for (let i = 0; i < cells.length; i++) texts.push(cells.get(i).sharedModel.source);
              return texts.length > 1 ? texts : null;
            }""", timeout=20_000).json_value()
        assert sources[0] == "1 + 1"
        assert "from overlay_sdk.widgets import Dashboard" in sources[1]
        # the setting is empty: the address the server reports (the kernel may not find
        # the server's control plane by itself), as a Python string
        home = json.dumps(str(plane.home))
        assert f'Dashboard(ov.connect({home}).overlays.get("{NAME}"))' in sources[1], sources
        assert not browser_log.errors, browser_log.text()
    finally:
        jupyter_lab.shutdown_kernels()


def test_a_refresh_keeps_the_selection_and_the_scroll_and_a_stale_rollback_is_refused(
    jupyter_lab: JupyterLab, plane: ControlPlane, page: Page, browser_log: BrowserLog,
) -> None:
    _ensure_overlay(plane)
    page.set_viewport_size({"width": 1280, "height": 480})  # the sidebar scrolls
    _open_lab(page, jupyter_lab)
    sidebar = _sidebar(page)
    row = _row(sidebar)
    row.click()
    detail = sidebar.get_by_test_id("overlay-sdk-detail")
    detail.locator('[data-testid="overlay-sdk-revision"][data-revision="1"]').wait_for()
    sidebar.get_by_test_id("overlay-sdk-topology").locator("svg").wait_for()
    room = sidebar.evaluate("e => e.scrollHeight - e.clientHeight")
    assert room > 150, f"the sidebar does not scroll ({room} px)"
    scrolled = sidebar.evaluate("e => { e.scrollTop = 120; return e.scrollTop; }")
    assert scrolled == 120

    # the overlay changes behind the sidebar's back; a refresh redraws its row
    o = plane.overlays.get(NAME).set_traffic({"fraud:1": 70, "fraud:2": 30},
                                             message="browser test: refresh")
    page.evaluate("() => window.jupyterapp.commands.execute('overlay-sdk:refresh')")
    expect(row).to_have_attribute("data-revision", str(o.revision))
    expect(row.get_by_test_id("overlay-sdk-weights")).to_contain_text("70%")
    expect(detail.locator(f'[data-revision="{o.revision}"].jp-mod-current')).to_be_visible()
    assert sidebar.evaluate("e => e.scrollTop") == 120, "the refresh lost the scroll position"
    expect(row).to_have_attribute("aria-selected", "true")
    expect(detail).to_have_attribute("data-overlay", NAME)

    # a rollback confirmed after someone else changed the overlay is refused (409), shown,
    # and the sidebar shows the overlay as it is now
    detail.locator('[data-testid="overlay-sdk-rollback"][data-revision="1"]').click()
    confirm = _dialog(page)
    moved = plane.overlays.get(NAME).set_traffic({"fraud:1": 60, "fraud:2": 40},
                                                 message="browser test: meanwhile")
    confirm.get_by_role("button", name="Roll back").click()
    result = sidebar.get_by_test_id("overlay-sdk-result")
    expect(result).to_have_attribute("data-state", "error")
    expect(result).to_contain_text(CONFLICT)
    expect(result).to_contain_text(f"is at revision {moved.revision}")
    expect(row).to_have_attribute("data-revision", str(moved.revision))
    assert plane.overlays.get(NAME).revision == moved.revision, "the stale rollback was applied"
    assert not browser_log.errors, browser_log.text()


def test_without_the_server_extension_the_sidebar_says_so(
    jupyter_lab: JupyterLab, page: Page, browser_log: BrowserLog,
) -> None:
    def missing(route: Route) -> None:  # what Jupyter answers for a route it does not have
        route.fulfill(status=404, content_type="text/html",
                      body="<html><title>404: Not Found</title><body>404: Not Found</body>")

    page.route("**/overlay-sdk/api/**", missing)
    _open_lab(page, jupyter_lab)
    sidebar = _sidebar(page)
    message = sidebar.get_by_test_id("overlay-sdk-missing")
    expect(message).to_be_visible()
    expect(message).to_contain_text("jupyter server extension enable overlay_sdk.jupyter")
    expect(sidebar.get_by_test_id("overlay-sdk-status")).to_have_text(
        "Server extension not found")
    expect(sidebar.get_by_test_id("overlay-sdk-overlays")).to_be_hidden()
    # the browser logs the 404 (expected); nothing else went wrong
    assert any("404" in line for line in browser_log.lines), browser_log.text()
    assert not browser_log.errors, browser_log.text()


def test_roll_back_model_from_the_palette_moves_the_serving_alias(
    jupyter_lab: JupyterLab, plane: ControlPlane, page: Page, browser_log: BrowserLog,
) -> None:
    models = plane.models
    # a recorded history of fraud@serving: 3, then 2; "previous" is 3
    models.set_alias("fraud", "serving", 3, reason="browser test: first")
    models.set_alias("fraud", "serving", 2, reason="browser test: second")
    assert models.get_version_by_alias("fraud", "serving").version == "2"

    _open_lab(page, jupyter_lab)
    sidebar = _sidebar(page)
    badge = sidebar.locator('[data-model="fraud"] [data-testid="overlay-sdk-model-alias"]'
                            '[data-alias="serving"]')
    expect(badge).to_have_text("serving → 2")

    _palette(page, "overlay-sdk:rollback", "Roll back model")
    which = _dialog(page)
    which.locator("select").select_option("fraud")
    which.get_by_role("button", name="Next").click()
    where = _dialog(page)
    expect(where).to_contain_text("fraud@serving points at version 2")
    where.locator("select").select_option(label="previous (version 3)")
    where.get_by_role("button", name="Next").click()
    confirm = _dialog(page)
    expect(confirm).to_contain_text("Move fraud@serving from version 2 to version 3 (previous)?")
    confirm.get_by_role("button", name="Roll back").click()

    deadline = time.monotonic() + 20
    while (models.get_version_by_alias("fraud", "serving").version != "3"
           and time.monotonic() < deadline):
        time.sleep(0.2)
    assert models.get_version_by_alias("fraud", "serving").version == "3", (
        "the rollback chosen from the palette did not move fraud@serving")
    history = models.alias_history("fraud", "serving")
    assert (history.iloc[-1]["previous"], history.iloc[-1]["version"]) == ("2", "3")
    expect(badge).to_have_text("serving → 3")  # the sidebar refreshed

    # "Roll back overlay..." sends the revision its dialog showed: refused when the overlay
    # moved on while the dialog was open
    _ensure_overlay(plane)
    page.evaluate("""(name) => { void window.jupyterapp.commands.execute(
        'overlay-sdk:rollback-overlay', {overlay: name}); }""", NAME)
    choose = _dialog(page)
    expect(choose).to_contain_text(f"{NAME} is at revision")
    moved = plane.overlays.get(NAME).set_traffic({"fraud:1": 40, "fraud:2": 60},
                                                 message="browser test: meanwhile")
    choose.get_by_role("button", name="Roll back").click()
    refused = page.locator(".jp-Dialog").filter(has_text=CONFLICT)
    expect(refused).to_be_visible()
    refused.get_by_role("button", name="Ok").click()
    assert plane.overlays.get(NAME).revision == moved.revision, "the stale rollback was applied"
    assert not browser_log.errors, browser_log.text()
