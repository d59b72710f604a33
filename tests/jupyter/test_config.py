"""The extension's entry points, its ``OverlaySdk`` configuration and the control planes it
opens: lazily, once per address (also under concurrent first requests), closed together."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from traitlets.config import Config

import overlay_sdk.jupyter as extension
from overlay_sdk.client import ControlPlane
from overlay_sdk.errors import ValidationError
from overlay_sdk.jupyter.config import OverlaySdk, Planes

ROOT = Path(__file__).resolve().parents[2]


def test_extension_points_and_enabling_config() -> None:
    assert extension._jupyter_server_extension_points() == [{"module": "overlay_sdk.jupyter"}]
    enabled = json.loads((ROOT / "jupyter-config/server-config/overlay_sdk.json").read_text())
    assert enabled == {"ServerApp": {"jpserver_extensions": {"overlay_sdk.jupyter": True}}}


def test_settings_come_from_the_server_config() -> None:
    settings = OverlaySdk(config=Config({"OverlaySdk": {"home": "/srv/overlays",
                                                        "registry_uri": "http://mlflow:5000"}}))
    assert (settings.home, settings.registry_uri) == ("/srv/overlays", "http://mlflow:5000")
    assert (OverlaySdk().home, OverlaySdk().registry_uri) == ("", "")


class FakePlane:
    def __init__(self, home: str | None, registry_uri: str | None) -> None:
        self.home, self.registry_uri, self.closed = home, registry_uri, False

    def close(self) -> None:
        self.closed = True


def opener(calls: list[tuple[str | None, str | None]]) -> Any:
    def open_plane(home: str | None, *, registry_uri: str | None = None) -> Any:
        time.sleep(0.02)  # let concurrent first requests overlap
        calls.append((home, registry_uri))
        return FakePlane(home, registry_uri)

    return open_plane


def test_planes_open_lazily_once_per_address(tmp_path: Path) -> None:
    calls: list[tuple[str | None, str | None]] = []
    planes = Planes(OverlaySdk(config=Config({"OverlaySdk": {"registry_uri": "sqlite:///r"}})),
                    opener=opener(calls))
    assert calls == []
    seen: list[ControlPlane] = []
    threads = [threading.Thread(target=lambda: seen.append(planes.get())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [(None, "sqlite:///r")]  # the default: what connect() finds
    assert len({id(p) for p in seen}) == 1
    other = planes.get(str(tmp_path / "x" / ".." / "other"))
    assert planes.get(str(tmp_path / "other")) is other  # one plane per folder
    assert calls[1] == (str(tmp_path / "other"), "sqlite:///r")  # the configured registry
    assert planes.get("k8s://ctx/ns") is planes.get("k8s://ctx/ns")
    assert planes.addresses() == sorted(["", str(tmp_path / "other"), "k8s://ctx/ns"])
    planes.close()
    assert all(p.closed for p in [*seen, other])
    with pytest.raises(RuntimeError):
        planes.get()


def test_a_bad_address_names_where_it_came_from(tmp_path: Path) -> None:
    planes = Planes(OverlaySdk(config=Config({"OverlaySdk": {"home": "ftp://nowhere"}})))
    with pytest.raises(ValidationError) as caught:
        planes.get()
    assert caught.value.paths == ["OverlaySdk.home"]
    with pytest.raises(ValidationError) as caught:
        planes.get("ftp://elsewhere")
    assert caught.value.paths == ["plane"]
    cluster = Planes(OverlaySdk())
    with pytest.raises(ValidationError) as caught:
        cluster.get("k8s://ctx/ns")  # a cluster needs a registry the cluster can reach
    assert caught.value.paths == ["OverlaySdk.registry_uri"]
    assert planes.addresses() == [] and cluster.addresses() == []


def test_a_closed_plane_is_reopened(tmp_path: Path) -> None:
    calls: list[tuple[str | None, str | None]] = []
    planes = Planes(OverlaySdk(), opener=opener(calls))
    first = planes.get(str(tmp_path))
    first.close()
    assert planes.get(str(tmp_path)) is not first
    assert len(calls) == 2
