"""TrafficSplitter against a real control plane: what it shows, applies and refuses (issue 7)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from overlay_sdk.client import ControlPlane
from overlay_sdk.errors import ValidationError
from overlay_sdk.widgets import TrafficSplitter

HOST = "http://127.0.0.1:9"


def _send(widget: TrafficSplitter, content: dict[str, Any]) -> None:
    """What the front end's ``model.send(...)`` does."""
    widget._on_message(widget, content, [])


@pytest.fixture
def splitter(cp: ControlPlane) -> Iterator[TrafficSplitter]:
    o = cp.overlays.create("scoring", host=HOST, routes={"fraud:1": 90, "fraud:2": 10})
    widget = TrafficSplitter(o)
    yield widget
    widget.close()  # its status watcher reads the store: stopped before the store closes


def test_it_shows_the_routes_the_shadow_choices_and_the_status(
        splitter: TrafficSplitter) -> None:
    assert splitter.routes == [{"key": "fraud:1", "weight": 90}, {"key": "fraud:2", "weight": 10}]
    assert splitter.weights == {"fraud:1": 90, "fraud:2": 10}
    assert splitter.shadow == "" and splitter.shadow_choices == ["fraud:3"]
    assert splitter.revision == 1 and splitter.overlay == "scoring"
    assert "no gateway" in splitter.status_text
    assert "// TrafficSplitter" in splitter._esm and "function h(" in splitter._esm  # + dom.js
    assert ".ov-split" in splitter._css


def test_apply_writes_one_revision_with_weights_and_shadow(splitter: TrafficSplitter,
                                                           cp: ControlPlane) -> None:
    _send(splitter, {"type": "apply", "weights": {"fraud:1": 75, "fraud:2": 25},
                     "shadow": "fraud:3", "shadowPercent": 10})
    o = cp.overlays.get("scoring")
    assert o.revision == 2
    assert {f"{r.model}:{r.version}": r.weight for r in o.spec.routes} == {
        "fraud:1": 75, "fraud:2": 25}
    assert o.spec.shadow is not None and o.spec.shadow.percent == 10
    assert splitter.error == {} and splitter.revision == 2
    assert splitter.shadow == "fraud:3" and splitter.shadow_percent == 10
    assert o.history()["message"].iloc[-1] == "traffic splitter"
    assert splitter.apply(shadow=None)  # in code: the shadow removed, weights kept
    assert cp.overlays.get("scoring").spec.shadow is None and splitter.revision == 3


@pytest.mark.parametrize(("content", "field"), [
    ({"weights": {"fraud:1": 80, "fraud:2": 10}}, "spec.routes"),  # sums to 90
    ({"weights": {"fraud:1": 90, "fraud:2": 10}, "shadow": "fraud:3", "shadowPercent": 150},
     "percent"),
    ({"weights": {"fraud:1": 90, "fraud:2": 10}, "shadow": "fraud:2"}, "shadow"),  # a route
    ({"weights": {"fraud:1": 90, "fraud:9": 10}}, "fraud"),  # no such version
    ({"weights": {"fraud:1": "x"}}, "weights"),
])
def test_an_invalid_change_is_shown_and_changes_nothing(
        splitter: TrafficSplitter, cp: ControlPlane, content: dict[str, Any],
        field: str) -> None:
    before = cp.overlays.get("scoring").to_yaml()
    _send(splitter, {"type": "apply", **content})
    assert field in splitter.error["field"] + splitter.error["message"], splitter.error
    assert splitter.error["message"]
    assert cp.overlays.get("scoring").to_yaml() == before
    assert splitter.revision == 1 and splitter.weights == {"fraud:1": 90, "fraud:2": 10}
    assert not splitter.busy
    _send(splitter, {"type": "apply", "weights": {"fraud:1": 50, "fraud:2": 50}})
    assert splitter.error == {}  # the next good change clears it


def test_a_change_made_elsewhere_meanwhile_is_a_conflict_shown_with_the_current_weights(
        splitter: TrafficSplitter, cp: ControlPlane) -> None:
    cp.overlays.get("scoring").set_traffic({"fraud:1": 60, "fraud:2": 40})
    assert not splitter.apply({"fraud:1": 99, "fraud:2": 1})
    assert "changed since" in splitter.error["message"]
    assert splitter.weights == {"fraud:1": 60, "fraud:2": 40} and splitter.revision == 2
    assert splitter.apply({"fraud:1": 99, "fraud:2": 1})  # now on the current revision
    assert cp.overlays.get("scoring").revision == 3


def test_it_takes_an_overlay_handle(cp: ControlPlane) -> None:
    with pytest.raises(ValidationError, match="overlay"):
        TrafficSplitter("scoring")  # type: ignore[arg-type]
