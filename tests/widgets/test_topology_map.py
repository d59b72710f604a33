"""TopologyMap against a real control plane: what it shows and how it follows changes
(issue 7)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from overlay_sdk.client import ControlPlane
from overlay_sdk.errors import BackendError, ValidationError
from overlay_sdk.overlays import Overlay
from overlay_sdk.topology import topology
from overlay_sdk.widgets import topology_map
from overlay_sdk.widgets.topology_map import TopologyMap

HOST = "http://127.0.0.1:9"


def _shares(widget: TopologyMap) -> dict[str, float]:
    """What the front end draws: each overlay -> version edge's share (width follows it)."""
    return {e["target"]: e["share"] for e in widget.graph["edges"] if e["kind"] != "host"}


def _wait(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


@pytest.fixture
def scoring(cp: ControlPlane) -> Overlay:
    return cp.overlays.create("scoring", host=HOST, routes={"fraud:1": 90, "fraud:2": 10})


@pytest.fixture
def widgets() -> Iterator[list[TopologyMap]]:
    """Widgets made by a test, closed after it (their timers stopped)."""
    made: list[TopologyMap] = []
    yield made
    for widget in made:
        widget.close()


def test_it_shows_the_topology_as_data(cp: ControlPlane, scoring: Overlay,
                                       widgets: list[TopologyMap]) -> None:
    widgets.append(widget := TopologyMap(cp, interval=None))
    expected = topology(cp).to_dict()
    assert {k: v for k, v in widget.graph.items() if k not in ("since", "until")} == {
        k: v for k, v in expected.items() if k not in ("since", "until")}
    assert _shares(widget) == {"version:fraud:1": 90.0, "version:fraud:2": 10.0}
    edge = next(e for e in widget.graph["edges"] if e["target"] == "version:fraud:1")
    assert edge["width"] == pytest.approx(13.6) and edge["health"] == "ok"
    assert widget.topology is not None and widget.topology.node("scoring").revision == 1
    assert widget.error == "" and widget.refreshes == 1 and widget.interval == 0
    assert widget._timer is None
    assert str(widget._esm).count("// TopologyMap") == 1 and ".ov-topo" in str(widget._css)


def test_refresh_shows_a_traffic_change(cp: ControlPlane, scoring: Overlay,
                                        widgets: list[TopologyMap]) -> None:
    widgets.append(widget := TopologyMap(cp, interval=None))
    scoring.set_traffic({"fraud:1": 25, "fraud:2": 75})
    assert _shares(widget) == {"version:fraud:1": 90.0, "version:fraud:2": 10.0}
    widget.refresh()
    assert _shares(widget) == {"version:fraud:1": 25.0, "version:fraud:2": 75.0}
    scoring.shadow("fraud:3", percent=5)
    widget._on_message(widget, {"type": "refresh"}, [])  # the front end's Refresh button
    assert _shares(widget)["version:fraud:3"] == 5.0
    assert widget.refreshes == 3


def test_it_follows_changes_by_itself_until_closed(cp: ControlPlane, scoring: Overlay,
                                                   widgets: list[TopologyMap]) -> None:
    widgets.append(widget := TopologyMap(cp, interval=0.05))
    timer = widget._timer
    assert timer is not None and timer.is_alive()
    scoring.set_traffic({"fraud:1": 50, "fraud:2": 50})
    assert _wait(lambda: _shares(widget) == {"version:fraud:1": 50.0,
                                             "version:fraud:2": 50.0}), _shares(widget)
    other = cp.overlays.create("other", host=HOST, routes={"fraud:3": 100})
    assert _wait(lambda: "overlay:other" in {n["id"] for n in widget.graph["nodes"]})
    widget.close()
    assert not timer.is_alive() and widget._timer is None
    count = widget.refreshes
    other.set_traffic({"fraud:3": 100, "fraud:1": 0})
    time.sleep(0.2)
    assert widget.refreshes == count  # closed: no more refreshes


def test_the_interval_can_change(cp: ControlPlane, scoring: Overlay,
                                 widgets: list[TopologyMap]) -> None:
    widgets.append(widget := TopologyMap(cp, interval=None))
    assert widget._timer is None
    widget.interval = 0.05
    assert widget._timer is not None and widget._timer.is_alive()
    assert _wait(lambda: widget.refreshes >= 3)
    first = widget._timer
    widget.interval = 0
    assert widget._timer is None and not first.is_alive()
    with pytest.raises(ValidationError, match="interval"):
        widget.interval = -1
    assert widget.interval == 0


def test_a_failed_refresh_is_shown_and_the_map_stays(
        cp: ControlPlane, scoring: Overlay, widgets: list[TopologyMap],
        monkeypatch: pytest.MonkeyPatch) -> None:
    widgets.append(widget := TopologyMap(cp, interval=None))
    before = dict(widget.graph)

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise BackendError("telemetry store unreachable")

    monkeypatch.setattr(topology_map, "topology", broken)
    widget.refresh()
    assert widget.error == "telemetry store unreachable" and widget.graph == before
    monkeypatch.undo()
    widget.refresh()
    assert widget.error == ""


def test_the_window_can_change(cp: ControlPlane, scoring: Overlay,
                               widgets: list[TopologyMap]) -> None:
    widgets.append(widget := TopologyMap(cp, interval=None, since="2 hours ago"))
    assert widget.graph["window"] == "in the last 2 hours"
    widget.since = "a day ago"
    assert widget.graph["window"] == "in the last day"
    widget.since = "whenever"
    assert "since" in widget.error and widget.graph["window"] == "in the last day"


@pytest.mark.parametrize(("args", "kwargs", "field"), [
    (("not a control plane",), {}, "cp"),
    ((None,), {"interval": -1}, "interval"),
    ((None,), {"interval": "5"}, "interval"),
    ((None,), {"interval": float("nan")}, "interval"),
    ((None,), {"since": "the other day"}, "since"),
])
def test_it_checks_its_input(cp: ControlPlane, args: tuple[Any, ...], kwargs: dict[str, Any],
                             field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        TopologyMap(*[cp if a is None else a for a in args], **kwargs)
