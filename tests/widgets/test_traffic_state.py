"""The TrafficSplitter's decisions: what it shows, what an apply message may ask (issue 7)."""

from __future__ import annotations

from typing import Any

import pytest

from overlay_sdk.errors import ValidationError
from overlay_sdk.spec import AIOverlaySpec
from overlay_sdk.widgets.traffic_state import (
    ApplyRequest,
    parse_apply,
    shadow_choices,
    splitter_state,
    status_text,
)

SPEC = AIOverlaySpec.model_validate({
    "host": {"url": "http://127.0.0.1:8001"},
    "routes": [{"model": "fraud", "version": "1", "weight": 90},
               {"model": "fraud", "alias": "champion", "version": "2", "weight": 10}],
    "shadow": {"model": "fraud", "version": "3", "percent": 25},
})


def test_the_state_names_routes_as_the_spec_does() -> None:
    assert splitter_state(SPEC) == {
        "routes": [{"key": "fraud:1", "weight": 90}, {"key": "fraud@champion", "weight": 10}],
        "shadow": "fraud:3", "shadow_percent": 25.0}


def test_shadow_choices_leave_out_the_routes() -> None:
    choices = shadow_choices(SPEC, {"fraud": ["1", "2", "3", "4"]})
    assert choices == ["fraud:3", "fraud:4"]
    no_shadow = SPEC.model_copy(update={"shadow": None})
    assert shadow_choices(no_shadow, {"fraud": ["1", "2"]}) == []


def test_an_apply_message_becomes_a_request() -> None:
    request = parse_apply({"type": "apply", "weights": {"fraud:1": 95, "fraud:2": 5.0},
                           "shadow": "", "shadowPercent": 100})
    assert request == ApplyRequest({"fraud:1": 95, "fraud:2": 5}, None, 100.0)
    assert parse_apply({"weights": {"a:1": 100}, "shadow": "a:2", "shadowPercent": 10}
                       ).shadow == "a:2"


@pytest.mark.parametrize(("content", "field"), [
    ([], "message"),
    ({"weights": {}}, "weights"),
    ({"weights": {"fraud:1": 99.5}}, "weights['fraud:1']"),
    ({"weights": {"fraud:1": True}}, "weights['fraud:1']"),
    ({"weights": {"fraud:1": 100}, "shadow": 3}, "shadow"),
    ({"weights": {"fraud:1": 100}, "shadowPercent": "ten"}, "shadow.percent"),
    ({"weights": {"fraud:1": 100}, "shadowPercent": float("nan")}, "shadow.percent"),
])
def test_a_malformed_message_names_its_part(content: Any, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_apply(content)
    assert err.value.paths == [field]


def test_status_lines() -> None:
    assert status_text(7, "serving", 7, 41.6) == "revision 7 applied by the gateway in 42 ms"
    assert "no gateway" in status_text(7, "no gateway", None, None)
    assert "revision 6 serves" in status_text(7, "warming", 6, None)
    assert status_text(7, "failed", 6, None, "fraud:9 not found").endswith("fraud:9 not found")
    assert "waiting" in status_text(7, "behind", 6, None)
