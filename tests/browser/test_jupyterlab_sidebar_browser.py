"""The JupyterLab extension in a real JupyterLab and chromium: the "AI Overlays" sidebar lists
the overlays of the embedded control plane (the server extension's default: the home of the
server's ``OVERLAY_HOME``), a rollback chosen there changes the overlay as the SDK sees it,
and the palette command inserts a ``Dashboard`` cell into the open notebook."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import nbformat
from playwright.sync_api import Locator, Page

from overlay_sdk.client import ControlPlane
from tests.browser.conftest import NOTEBOOK_TIMEOUT_MS, BrowserLog, JupyterLab

NAME = "checkout-scoring"


def _open_lab(page: Page, lab: JupyterLab, path: str = "") -> None:
    page.goto(f"{lab.url}/lab{'/tree/' + path if path else ''}?reset&token={lab.token}")
    page.wait_for_function("() => window.jupyterapp !== undefined", timeout=NOTEBOOK_TIMEOUT_MS)
    page.evaluate("async () => { await window.jupyterapp.restored; }")


def _sidebar(page: Page) -> Locator:
    """Open the sidebar by its tab on the left, as a user does."""
    page.locator('.jp-SideBar .lm-TabBar-tab[data-id="overlay-sdk:sidebar"]').click()
    sidebar = page.get_by_test_id("overlay-sdk-sidebar")
    sidebar.wait_for(state="visible")
    return sidebar


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

    _open_lab(page, jupyter_lab)
    sidebar = _sidebar(page)
    row = sidebar.locator(f'[data-overlay="{NAME}"]')
    row.wait_for(state="visible")
    weights = row.get_by_test_id("overlay-sdk-weights").inner_text()
    assert "fraud:1" in weights and "50%" in weights, weights
    models = sidebar.get_by_test_id("overlay-sdk-models")
    models.locator('[data-model="fraud"]').wait_for(state="visible")
    sidebar.get_by_test_id("overlay-sdk-topology").locator("svg").wait_for(state="visible")

    row.click()
    detail = sidebar.get_by_test_id("overlay-sdk-detail")
    detail.locator('[data-testid="overlay-sdk-revision"][data-revision="1"]').wait_for()
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
        _sidebar(page).locator(f'[data-overlay="{NAME}"]').click()
        page.wait_for_function(
            "() => { const w = window.jupyterapp.shell.currentWidget;"
            " return w && w.context && w.context.path === 'dash.ipynb'; }",
            timeout=NOTEBOOK_TIMEOUT_MS)
        page.keyboard.press("Control+Shift+c")
        palette = page.locator("#command-palette input, .lm-CommandPalette-input").first
        palette.fill("Open overlay dashboard")
        page.locator('.lm-CommandPalette-item.lm-mod-active'
                     '[data-command="overlay-sdk:open-dashboard"]').wait_for()
        palette.press("Enter")
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
        assert f'Dashboard(ov.connect().overlays.get("{NAME}"))' in sources[1]
        assert not browser_log.errors, browser_log.text()
    finally:
        jupyter_lab.shutdown_kernels()
