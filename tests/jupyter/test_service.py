"""What the REST calls do with a control plane, without a server: ``GET status`` names the
registry without its credentials."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

import overlay_sdk
from overlay_sdk.jupyter import service


def plane(tracking_uri: str, *, url: str | None = None) -> Any:
    store = SimpleNamespace(list=lambda: [], url=url)
    models = SimpleNamespace(tracking_uri=tracking_uri,
                             list=lambda: pd.DataFrame({"name": ["fraud", "chat"]}))
    return SimpleNamespace(store=store, models=models, home=Path("/srv/home"))


@pytest.mark.parametrize(("uri", "shown"), [
    ("http://ana:s3cret@mlflow.mlops:5000", "http://ana:***@mlflow.mlops:5000"),
    ("https://mlflow:5000/?token=abc", "https://mlflow:5000/?token=***"),
    ("sqlite:////srv/home/mlflow.db", "sqlite:////srv/home/mlflow.db"),
])
def test_status_names_the_registry_without_credentials(uri: str, shown: str) -> None:
    status = service.status(plane(uri, url="k8s://prod/overlays"))
    assert status == {"version": overlay_sdk.__version__, "controlPlane": "k8s://prod/overlays",
                      "registryUri": shown, "overlays": 0, "models": 2}
    assert "s3cret" not in str(status) and "abc" not in str(status)
    assert service.status(plane(uri))["controlPlane"] == "/srv/home"
