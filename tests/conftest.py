"""Shared fixtures: a model registry with a few versions (made once), fresh overlay stores,
telemetry stores on SQLite and on a throwaway PostgreSQL server."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from overlay_sdk.client import ControlPlane, connect
from overlay_sdk.registry import ModelRegistry
from overlay_sdk.store import LocalStore
from tests.postgres_support import PostgresServer, start_postgres, unavailable


def _fit(c: float) -> Any:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    return LogisticRegression(C=c).fit(x, y)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An empty current directory for the module: MLflow must write nothing into it."""
    path = tmp_path_factory.mktemp("cwd")
    old = Path.cwd()
    os.chdir(path)
    yield path
    os.chdir(old)


@pytest.fixture(scope="session")
def registry_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An overlay home whose registry holds model ``fraud`` versions 1, 2, 3."""
    home = tmp_path_factory.mktemp("registry-home")
    with connect(home) as cp:
        for c in (1.0, 0.1, 10.0):
            cp.models.register("fraud", model=_fit(c), label=f"C={c}")
    return home


@pytest.fixture
def cp(registry_home: Path, tmp_path: Path) -> Iterator[ControlPlane]:
    """A control plane with a fresh, empty overlay store and the shared registry."""
    with connect(registry_home) as shared:
        registry: ModelRegistry = shared.models
    plane = ControlPlane(tmp_path, LocalStore(tmp_path / "overlays.db"), registry, author="tester")
    yield plane
    plane.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The real-browser tests run last: JupyterLab and chromium then run only at the end,
    and no other test shares the process with Playwright."""
    browser = [i for i in items if "tests/browser/" in i.nodeid.replace("\\", "/")]
    if browser:
        items[:] = [i for i in items if i not in browser] + browser


def dump_sqlite(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to compare stored state before and after an operation."""
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {
            t: sorted(conn.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr) for t in tables
        }
    finally:
        conn.close()


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the session (started on first use, stopped at the end).
    Missing binaries skip the PostgreSQL tests, except on CI (``CI=true``) where they fail:
    CI must run them."""
    reason = unavailable()
    if reason is not None:
        if _ci():
            pytest.fail(f"CI=true and {reason}")
        pytest.skip(reason)
    server = start_postgres()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database for one test."""
    name = postgres.create_database()
    yield postgres.url(name)
    postgres.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def telemetry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty telemetry store: every test using it runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'telemetry.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def run(tmp_path: Path, registry_home: Path):  # type: ignore[no-untyped-def]
    """Invoke the CLI on a fresh overlay store, with the shared registry (fraud 1..3)."""
    from click.testing import CliRunner, Result

    from overlay_sdk.cli import cli

    runner = CliRunner()
    base = ["--home", str(tmp_path / "home"),
            "--registry-uri", f"sqlite:///{registry_home / 'mlflow.db'}", "--author", "ops"]

    def invoke(*args: str, stdin: str | None = None) -> Result:
        return runner.invoke(cli, [*base, *args], input=stdin, catch_exceptions=False)

    return invoke
