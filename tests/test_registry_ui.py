"""MLflow UI links in ModelRegistry.versions(): where the address comes from, the route format
(a registry's ``versions()`` with links is tested in tests/test_registry.py, which has one).

MLflow's UI is a hash-routed single-page app; its model version page is
``#/models/<encodeURIComponent(name)>/versions/<version>`` (``getModelVersionPageRoute`` in
mlflow/server/js/src/model-registry/routes, the same ``{host}/#/...`` form MLflow's Python
side prints for experiments).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from overlay_sdk.errors import ValidationError
from overlay_sdk.registry import (
    UI_ENV,
    VERSION_COLUMNS,
    ModelRegistry,
    ModelVersion,
    ui_link,
    versions_frame,
)


@pytest.fixture(autouse=True)
def no_ui_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(UI_ENV, raising=False)


def test_ui_link_is_mlflows_model_version_route() -> None:
    assert ui_link("http://127.0.0.1:5000", "fraud", "3") == (
        "http://127.0.0.1:5000/#/models/fraud/versions/3")
    assert ui_link("https://mlflow.internal/tools/mlflow/", "fraud-v2.1_x", "12") == (
        "https://mlflow.internal/tools/mlflow/#/models/fraud-v2.1_x/versions/12")
    assert ui_link("http://h", "a b/c", "1") == "http://h/#/models/a%20b%2Fc/versions/1"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("http://127.0.0.1:5000/", "http://127.0.0.1:5000"),
        ("http://127.0.0.1:5000/#/models", "http://127.0.0.1:5000"),  # pasted from a browser
        (" https://mlflow.example.com/prefix/ ", "https://mlflow.example.com/prefix"),
        ("http://me:pw@[::1]:5000", "http://[::1]:5000"),
        ("", None),
    ],
)
def test_ui_url_is_normalised(tmp_path: Path, given: str, expected: str | None) -> None:
    assert ModelRegistry(f"sqlite:///{tmp_path}/m.db", ui_url=given).ui_url == expected


def test_where_the_ui_address_comes_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sqlite = f"sqlite:///{tmp_path}/m.db"
    assert ModelRegistry(sqlite).ui_url is None, "a database has no UI of its own"
    server = ModelRegistry("https://me:s3cret@mlflow.example.com:8443/mlflow/")
    assert server.ui_url == "https://mlflow.example.com:8443/mlflow", "the server serves its UI"
    monkeypatch.setenv(UI_ENV, "http://127.0.0.1:5001/")
    assert ModelRegistry(sqlite).ui_url == "http://127.0.0.1:5001"
    assert ModelRegistry("http://mlflow:5000").ui_url == "http://127.0.0.1:5001"
    assert ModelRegistry(sqlite, ui_url="http://ui:80").ui_url == "http://ui:80", "argument wins"
    assert ModelRegistry("http://mlflow:5000", ui_url="").ui_url is None, "'' turns links off"


@pytest.mark.parametrize("bad", ["127.0.0.1:5000", "ftp://host", "http://", "http://h/?x=1",
                                 "http://[::1"])
def test_a_malformed_ui_address_names_its_origin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad: str,
) -> None:
    with pytest.raises(ValidationError, match="is not an MLflow UI address") as info:
        ModelRegistry(f"sqlite:///{tmp_path}/m.db", ui_url=bad)
    assert info.value.paths == ["ui_url"]
    monkeypatch.setenv(UI_ENV, bad)
    reg = ModelRegistry(f"sqlite:///{tmp_path}/m.db")  # not fatal: only links need it
    for needs_links in (lambda: reg.ui_url, lambda: reg.versions("fraud")):
        with pytest.raises(ValidationError, match="is not an MLflow UI address") as info:
            needs_links()
        assert info.value.paths == [UI_ENV]


def test_the_ui_variable_is_read_when_the_registry_is_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(UI_ENV, "http://ui:5000")
    reg = ModelRegistry(f"sqlite:///{tmp_path}/m.db")
    monkeypatch.setenv(UI_ENV, "not a url")
    assert reg.ui_url == "http://ui:5000"


def test_ui_address_errors_mask_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    bad = "http://me:s3cr3tpass@ui:5000/?token=t0ps3cret&x=1"
    with pytest.raises(ValidationError) as info:
        ModelRegistry(f"sqlite:///{tmp_path}/m.db", ui_url=bad)
    monkeypatch.setenv(UI_ENV, bad)
    with pytest.raises(ValidationError) as env_info:
        _ = ModelRegistry(f"sqlite:///{tmp_path}/m.db").ui_url
    for err in (info.value, env_info.value):
        assert "s3cr3tpass" not in str(err) and "t0ps3cret" not in str(err)
        assert "http://me:***@ui:5000/?token=***&x=1" in str(err)


def test_a_tracking_uri_with_a_query_gives_a_link_without_it(tmp_path: Path) -> None:
    reg = ModelRegistry("https://me:pw@mlflow.example.com/m/?token=abc", lock_dir=tmp_path)
    assert reg.ui_url == "https://mlflow.example.com/m"


def test_versions_frame_has_a_ui_column_empty_without_an_address() -> None:
    made = pd.Timestamp("2024-01-01", tz="UTC").to_pydatetime()
    rows = [ModelVersion("fraud", v, "0" * 64, None, made, "pyfunc:f") for v in ("2", "1")]
    assert versions_frame(rows, ui_url="http://ui:5000")["ui"].tolist() == [
        "http://ui:5000/#/models/fraud/versions/1", "http://ui:5000/#/models/fraud/versions/2"]
    plain = versions_frame(rows)
    assert tuple(plain.columns) == VERSION_COLUMNS and plain["ui"].isna().all()
