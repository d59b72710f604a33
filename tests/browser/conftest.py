"""Real-browser fixtures: one JupyterLab server for the session (its kernels use the same
overlay home as the test process), driven by Debian's chromium through Playwright's sync
API (``playwright install`` is never needed: the system chromium is used).

Without chromium the browser tests are skipped, except on CI (``CI=true``) where they fail:
CI must run them (``make pytest`` installs chromium with apt-get, see the Makefile).
A failing test's report shows the browser console, uncaught page errors and the end of the
JupyterLab server log."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import nbformat
import pytest
from playwright.sync_api import Browser, Locator, Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from overlay_sdk.client import ControlPlane, connect
from overlay_sdk.gateway import GatewayHandle

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"
DEBIAN_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
START_TIMEOUT_S = 60.0
NOTEBOOK_TIMEOUT_MS = 60_000

# JupyterLab user settings: the light theme whatever the system says, no news or update
# checks (no internet here), no toasts over the notebook.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/themes.jupyterlab-settings": {
        "theme": "JupyterLab Light", "adaptive-theme": False},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false", "checkForUpdates": False, "doNotDisturbMode": True},
}

# Runs every cell of the notebook at `path` once JupyterLab opened it and its kernel
# answered (window.jupyterapp: the server runs with LabApp.expose_app_in_browser); returns
# the cells' errors ("Name: value").
RUN_ALL_CELLS_JS = """
async (path) => {
  const app = window.jupyterapp;
  await app.started;
  await app.restored;
  let panel = null;
  for (let i = 0; i < 600 && panel === null; i += 1) {
    const w = app.shell.currentWidget;
    if (w && w.context && w.context.path === path && w.sessionContext) panel = w;
    else await new Promise((resolve) => setTimeout(resolve, 100));
  }
  if (panel === null) throw new Error(`JupyterLab did not open ${path}`);
  await panel.context.ready;
  await panel.sessionContext.ready;
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  if (!kernel) throw new Error(`no kernel was started for ${path}`);
  await kernel.info;
  await app.commands.execute("notebook:run-all-cells");  // resolves once the cells ran
  const errors = [];
  for (const cell of panel.content.model.cells) {
    if (cell.type !== "code") continue;
    for (const out of cell.outputs.toJSON()) {
      if (out.output_type === "error") errors.push(`${out.ename}: ${out.evalue}`);
    }
  }
  return errors;
}
"""


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def find_chromium() -> str | None:
    """The chromium executable: on the PATH, else Debian's."""
    found = shutil.which("chromium")
    if found:
        return found
    return DEBIAN_CHROMIUM if os.access(DEBIAN_CHROMIUM, os.X_OK) else None


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of chromium; skips the browser tests without it (fails them when CI=true)."""
    path = find_chromium()
    if path is None:
        reason = ("chromium is not installed (neither on the PATH nor at /usr/bin/chromium): "
                  "the real-browser tests need it; `make chromium` installs it with apt-get")
        if _ci():
            pytest.fail(f"CI=true and {reason}")
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def browser_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The overlay home of the browser tests and of JupyterLab's kernels (``OVERLAY_HOME``):
    an empty overlay store and a registry of its own holding ``fraud`` 1, 2, 3 (as the
    shared test registry; not a copy of it: other tests add aliases and models there, which
    would show in the screenshots)."""
    from tests.conftest import _fit

    home = tmp_path_factory.mktemp("browser-home")
    with connect(home) as cp:
        for c in (1.0, 0.1, 10.0):
            cp.models.register("fraud", model=_fit(c), label=f"C={c}")
    return home


@pytest.fixture(scope="session")
def plane(browser_home: Path) -> Iterator[ControlPlane]:
    """The control plane of the browser home (the kernels' ``ov.connect()`` opens it too)."""
    cp = connect(browser_home, author="browser-test")
    yield cp
    cp.close()


@pytest.fixture(scope="session")
def gateway(plane: ControlPlane) -> Iterator[GatewayHandle]:
    """A gateway of the browser home: the widgets' status lines report it."""
    gw = plane.start_gateway(port=0)
    yield gw
    gw.stop()


@dataclass
class JupyterLab:
    """A running ``jupyter lab`` server."""

    url: str
    token: str
    root: Path
    log: Path

    def request(self, method: str, path: str) -> Any:
        """Call the server's REST API (``/api/...``); the decoded JSON answer."""
        req = urllib.request.Request(f"{self.url}{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def lab_url(self, file: str) -> str:
        """The URL opening ``file`` (relative to the root folder) in a fresh workspace."""
        return f"{self.url}/lab/tree/{quote(file)}?reset&token={self.token}"

    def shutdown_kernels(self) -> None:
        """End every session and its kernel."""
        for session in self.request("GET", "/api/sessions"):
            self.request("DELETE", f"/api/sessions/{session['id']}")

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError as err:
            return f"(no server log: {err})"
        return "\n".join(text.splitlines()[-lines:])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_up(lab: JupyterLab, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        code = process.poll()
        if code is not None:
            pytest.fail(f"jupyter lab exited with code {code} while starting:\n{lab.log_tail()}")
        try:
            lab.request("GET", "/api/status")
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                pytest.fail(f"jupyter lab did not answer within {START_TIMEOUT_S:g} s:\n"
                            f"{lab.log_tail()}")
            time.sleep(0.2)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (the server shuts its kernels down), then SIGKILL after 15 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
    process.wait()


@pytest.fixture(scope="session")
def jupyter_lab(chromium: str, browser_home: Path, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[JupyterLab]:
    """``jupyter lab`` on a free loopback port with a random token, notebooks in a temporary
    root folder, and its own Jupyter/IPython config, data and settings folders (nothing of
    the user's applies). Kernels get ``OVERLAY_HOME`` = :func:`browser_home`."""
    base = tmp_path_factory.mktemp("jupyter")
    root = base / "notebooks"
    root.mkdir()
    settings = base / "lab-settings"
    for name, values in LAB_SETTINGS.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    token = secrets.token_hex(16)
    port = _free_port()
    env = {**os.environ, "OVERLAY_HOME": str(browser_home), "OVERLAY_AUTHOR": "browser-test",
           "JUPYTER_CONFIG_DIR": str(base / "config"), "JUPYTER_DATA_DIR": str(base / "data"),
           "JUPYTER_RUNTIME_DIR": str(base / "runtime"), "IPYTHONDIR": str(base / "ipython")}
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
        "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
        "--LabApp.expose_app_in_browser=True",
        f"--LabApp.user_settings_dir={settings}",
        f"--LabApp.workspaces_dir={base / 'workspaces'}",
    ]
    log = base / "jupyter.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=out,
                                   stderr=subprocess.STDOUT)
    lab = JupyterLab(f"http://127.0.0.1:{port}", token, root, log)
    try:
        _wait_until_up(lab, process)
        yield lab
    finally:
        _stop(process)


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    """Headless chromium (the system's), for one module: Playwright's sync API keeps an
    event loop running on the main thread while it is started, which would break every
    later test that calls ``asyncio.run``."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, headless=True,
                                              args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclass
class BrowserLog:
    """What the page said: console messages and uncaught errors (shown on failure)."""

    lines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def text(self) -> str:
        return "\n".join(self.lines) or "(nothing)"


@pytest.fixture
def browser_log() -> BrowserLog:
    return BrowserLog()


@pytest.fixture
def page(browser: Browser, browser_log: BrowserLog) -> Iterator[Page]:
    """A fresh page (own context) in the light colour scheme; its console goes to
    ``browser_log``."""
    context = browser.new_context(viewport={"width": 1280, "height": 900},
                                  color_scheme="light", device_scale_factor=2)
    try:
        opened = context.new_page()
        opened.set_default_timeout(30_000)
        opened.on("console", lambda m: browser_log.lines.append(
            f"console.{m.type}: {m.text} ({m.location.get('url', '')}"
            f":{m.location.get('lineNumber', '')})"))

        def page_error(error: Exception) -> None:
            browser_log.lines.append(f"pageerror: {error}")
            browser_log.errors.append(str(error))

        opened.on("pageerror", page_error)
        yield opened
    finally:
        context.close()


RunNotebook = Callable[[str, Sequence[str], str], Locator]


@pytest.fixture
def run_notebook(jupyter_lab: JupyterLab, page: Page) -> Iterator[RunNotebook]:
    """``run_notebook(file, cells, selector)``: write a notebook with code ``cells`` into
    the server's root folder, open it in ``page``, run all its cells and wait until
    ``selector`` is visible; returns its locator. Kernels are shut down afterwards."""

    def run(file: str, cells: Sequence[str], selector: str) -> Locator:
        notebook = nbformat.v4.new_notebook(
            cells=[nbformat.v4.new_code_cell(source) for source in cells],
            metadata={"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                     "language": "python"},
                      "language_info": {"name": "python"}})
        nbformat.write(notebook, jupyter_lab.root / file)
        page.goto(jupyter_lab.lab_url(file))
        page.wait_for_function("() => window.jupyterapp !== undefined",
                               timeout=NOTEBOOK_TIMEOUT_MS)
        errors = page.evaluate(RUN_ALL_CELLS_JS, file)
        target = page.locator(selector).first
        if not errors:
            try:
                target.wait_for(state="visible", timeout=NOTEBOOK_TIMEOUT_MS)
                return target
            except PlaywrightTimeoutError:
                pass
        outputs = page.locator(".jp-OutputArea-output").all_inner_texts()
        pytest.fail(f"{selector} did not appear after running {file} (cell errors: "
                    f"{'; '.join(errors) or 'none'}); the cells' outputs:\n"
                    + "\n---\n".join(outputs or ["(none)"]))

    yield run
    jupyter_lab.shutdown_kernels()


@pytest.fixture
def screenshot() -> Callable[[Locator, str], Path]:
    """``screenshot(locator, name)``: save the element to ``docs/screenshots/<name>.png``
    (JupyterLab's light theme, checked)."""

    def save(target: Locator, name: str) -> Path:
        theme = target.page.evaluate("() => document.body.dataset.jpThemeLight")
        assert theme == "true", f"screenshots are taken in the light theme; jpThemeLight={theme!r}"
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        target.page.mouse.move(0, 0)  # no hover state in the picture
        target.screenshot(path=path, animations="disabled")
        return path

    return save


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On failure, add the browser console and the JupyterLab log to the report."""
    report = yield
    if report.failed:
        funcargs = getattr(item, "funcargs", {})
        log = funcargs.get("browser_log")
        if isinstance(log, BrowserLog):
            report.sections.append(("browser console and page errors", log.text()))
        lab = funcargs.get("jupyter_lab")
        if isinstance(lab, JupyterLab):
            report.sections.append(("jupyter lab log (end)", lab.log_tail()))
    return report
