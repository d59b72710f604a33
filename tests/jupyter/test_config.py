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
from overlay_sdk.jupyter.config import MAX_PLANES, OverlaySdk, Planes

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


def overlay_home(path: Path) -> Path:
    """A folder that is an overlay home (it holds overlays.db)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "overlays.db").touch()
    return path


def test_planes_open_lazily_once_per_address(tmp_path: Path) -> None:
    overlay_home(tmp_path / "other")
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
    overlay_home(tmp_path)
    calls: list[tuple[str | None, str | None]] = []
    planes = Planes(OverlaySdk(), opener=opener(calls))
    first = planes.get(str(tmp_path))
    first.close()
    assert planes.get(str(tmp_path)) is not first
    assert len(calls) == 2


@pytest.mark.parametrize("address, says", [
    ("relative/home", "not a control plane address"),
    ("./home", "not a control plane address"),
    ("~/home", "not a control plane address"),
    ("ftp://somewhere/x", "not a control plane address"),
    ("{tmp}/missing", "there is no folder"),
    ("{tmp}/missing/deeper", "there is no folder"),
    ("{tmp}/plain", "holds no overlays.db"),
])
def test_a_request_names_a_cluster_or_an_existing_home_and_creates_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, address: str, says: str) -> None:
    (tmp_path / "plain").mkdir()
    monkeypatch.chdir(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    calls: list[tuple[str | None, str | None]] = []
    planes = Planes(OverlaySdk(), opener=opener(calls))
    with pytest.raises(ValidationError) as caught:
        planes.get(address.format(tmp=tmp_path))
    assert caught.value.paths == ["plane"]
    assert says in str(caught.value)
    assert "k8s://CONTEXT/NAMESPACE" in str(caught.value)  # says what to give
    assert "absolute path of an existing overlay home" in str(caught.value)
    assert calls == [] and planes.addresses() == []
    assert sorted(tmp_path.rglob("*")) == before  # nothing created


def test_a_request_really_creates_no_home(tmp_path: Path) -> None:
    """With the real opener (connect), which would create a missing home."""
    planes = Planes(OverlaySdk())
    with pytest.raises(ValidationError):
        planes.get(str(tmp_path / "new-home"))
    assert not (tmp_path / "new-home").exists()
    planes.close()


def test_cluster_addresses_and_the_configured_home_are_accepted(tmp_path: Path) -> None:
    calls: list[tuple[str | None, str | None]] = []
    configured = tmp_path / "not-yet"  # the configured home may be created, as connect() does
    planes = Planes(OverlaySdk(config=Config({"OverlaySdk": {"home": str(configured)}})),
                    opener=opener(calls))
    assert planes.get(str(configured)) is planes.get()  # named by a request: the same plane
    assert planes.get("k8s://ctx/ns") is planes.get("K8S://ctx/ns".lower())
    assert planes.get("k8s:///ns") is not planes.get("k8s://ctx/ns")
    assert [c[0] for c in calls] == [str(configured), "k8s://ctx/ns", "k8s:///ns"]


def test_the_folder_the_default_plane_found_names_it(tmp_path: Path) -> None:
    found = overlay_home(tmp_path / "found")

    def open_default(home: str | None, *, registry_uri: str | None = None) -> Any:
        return FakePlane(str(found) if home is None else home, registry_uri)

    planes = Planes(OverlaySdk(), opener=open_default)
    default = planes.get()
    assert planes.get(str(found)) is default  # what GET status answers as controlPlane
    assert planes.addresses() == [""]


def test_at_most_limit_planes_stay_open_the_least_recently_used_closed(
        tmp_path: Path) -> None:
    assert MAX_PLANES == 8
    homes = [str(overlay_home(tmp_path / f"h{i}")) for i in range(MAX_PLANES + 2)]
    calls: list[tuple[str | None, str | None]] = []
    planes = Planes(OverlaySdk(), opener=opener(calls))
    opened = [planes.get(h) for h in homes[:MAX_PLANES]]
    assert not any(p.closed for p in opened)
    assert planes.get(homes[0]) is opened[0]  # used again: now the most recent
    planes.get(homes[MAX_PLANES])  # a ninth: h1, the least recently used, is closed
    assert opened[1].closed and not opened[0].closed
    assert homes[1] not in planes.addresses() and len(planes.addresses()) == MAX_PLANES
    again = planes.get(homes[1])  # reopened on demand (closing h2)
    assert again is not opened[1] and not again.closed and opened[2].closed
    assert len(calls) == MAX_PLANES + 2
    planes.close()
    assert all(p.closed for p in [*opened, again])


def test_a_leased_plane_is_closed_only_when_its_lease_ends(tmp_path: Path) -> None:
    homes = [str(overlay_home(tmp_path / f"h{i}")) for i in range(3)]
    planes = Planes(OverlaySdk(), opener=opener([]), limit=2)
    with planes.lease(homes[0]) as busy:
        with planes.lease(homes[0]) as same:
            assert same is busy
        planes.get(homes[1])
        planes.get(homes[2])  # evicts h0, in use: not closed yet
        assert homes[0] not in planes.addresses()
        assert not busy.closed
    assert busy.closed  # the last lease ended
    with pytest.raises(ValidationError), planes.lease("relative"):
        pass
    with planes.lease(homes[1]) as cp:
        pass
    assert not cp.closed  # still cached: a lease does not close a plane it did not evict
    with planes.lease(homes[2]) as kept:
        planes.close()
        assert kept.closed  # closing the server closes everything
    with pytest.raises(RuntimeError):
        planes.get(homes[2])


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Planes(OverlaySdk(), limit=0)
