"""Fixtures of the server extension's tests: pytest-jupyter's Jupyter server fixtures
(imported here, so they apply to this folder only), a fresh overlay home whose registry is
the session's (model ``fraud`` versions 1, 2, 3), and a server configured to serve it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403  (fixtures and async test hooks)
from traitlets.config import Config

from overlay_sdk.client import ControlPlane, connect
from overlay_sdk.jupyter.handlers import PLANES_SETTING
from overlay_sdk.overlays import Overlay


@pytest.fixture
def registry_uri(registry_home: Path) -> str:
    return f"sqlite:///{registry_home}/mlflow.db"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def sdk(home: Path, registry_uri: str) -> Iterator[ControlPlane]:
    """The test's own view of the control plane the server serves."""
    with connect(home, registry_uri=registry_uri, author="ana") as cp:
        yield cp


@pytest.fixture
def scoring(sdk: ControlPlane) -> Overlay:
    """Overlay ``scoring``: revision 1 all to fraud:1, revision 2 fraud:1 90 / fraud:2 10
    with fraud:3 shadowing 10 %."""
    overlay = sdk.overlays.create("scoring", host="http://127.0.0.1:9",
                                  routes={"fraud:1": 100}, message="first")
    return overlay.set_traffic({"fraud:1": 90, "fraud:2": 10}, shadow="fraud:3",
                               shadow_percent=10, message="canary")


@pytest.fixture
def allow_unauthenticated() -> bool:
    """``ServerApp.allow_unauthenticated_access``: with True the server no longer refuses
    unauthenticated calls itself, so only the handlers' ``@authenticated`` does (a test
    parametrizes it)."""
    return False


@pytest.fixture
def jp_server_config(home: Path, registry_uri: str, allow_unauthenticated: bool) -> Config:
    return Config({
        "ServerApp": {"jpserver_extensions": {"overlay_sdk.jupyter": True},
                      "allow_unauthenticated_access": allow_unauthenticated},
        "OverlaySdk": {"home": str(home), "registry_uri": registry_uri},
    })


@pytest.fixture
def jp_serverapp(jp_server_config: Config, jp_argv: list[str],
                 jp_configurable_serverapp: Any) -> Iterator[Any]:
    """pytest-jupyter's server app; afterwards, the control planes it opened are closed
    (jupyter_server stops no module extension)."""
    app = jp_configurable_serverapp(config=jp_server_config, argv=jp_argv)
    yield app
    planes = app.web_app.settings.get(PLANES_SETTING)
    if planes is not None:
        planes.close()
