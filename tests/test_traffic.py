"""Pure traffic changes: integer splits, canary, shadow, promote."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from overlay_sdk.errors import ValidationError
from overlay_sdk.spec import ModelRef, parse_spec
from overlay_sdk.traffic import canary, distribute, promote, set_shadow, set_traffic

SPEC: dict[str, Any] = {
    "host": {"url": "http://h"},
    "routes": [
        {"model": "m", "version": "1", "weight": 90},
        {"model": "m", "version": "2", "weight": 10},
    ],
}


def ref(text: str) -> ModelRef:
    return ModelRef.parse(text)


def weights(spec: dict[str, Any]) -> dict[str, int]:
    return parse_spec(spec).weights()


@given(
    st.integers(0, 100),
    st.lists(st.floats(0, 1000, allow_nan=False), min_size=1, max_size=16),
)
def test_distribute_gives_integers_with_exact_total(total: int, shares: list[float]) -> None:
    out = distribute(total, {str(i): s for i, s in enumerate(shares)})
    assert sum(out.values()) == total
    assert all(isinstance(v, int) and v >= 0 for v in out.values())
    weight_sum = sum(shares)
    for i, share in enumerate(shares):  # each part is within 1 of its exact share
        exact = total * share / weight_sum if weight_sum else total / len(shares)
        assert abs(out[str(i)] - exact) < 1


def test_distribute_examples() -> None:
    assert distribute(99, {"a": 90, "b": 10}) == {"a": 89, "b": 10}
    assert distribute(100, {"a": 1, "b": 1, "c": 1}) == {"a": 34, "b": 33, "c": 33}
    assert distribute(10, {"a": 0, "b": 0}) == {"a": 5, "b": 5}


def test_set_traffic_replaces_routes() -> None:
    new = set_traffic(SPEC, {"m:1": 95, "m:2": 5})
    assert weights(new) == {"m:1": 95, "m:2": 5}
    assert SPEC["routes"][0]["weight"] == 90  # input untouched


def test_set_traffic_rejects_bad_refs_naming_them() -> None:
    with pytest.raises(ValidationError) as info:
        set_traffic(SPEC, {"m-1": 100})
    assert info.value.paths == ["weights['m-1']"]


def test_canary_takes_share_and_keeps_proportions() -> None:
    spec = {**SPEC, "routes": [
        {"model": "m", "version": "1", "weight": 60},
        {"model": "m", "version": "2", "weight": 40},
    ]}
    new = canary(spec, ref("m:3"), 10)
    assert weights(new) == {"m:1": 54, "m:2": 36, "m:3": 10}


def test_canary_of_existing_route_sets_its_weight_in_place() -> None:
    new = canary(SPEC, ref("m:2"), 1)
    assert weights(new) == {"m:1": 99, "m:2": 1}
    assert [r["version"] for r in new["routes"]] == ["1", "2"]


def test_canary_graduates_a_shadow() -> None:
    spec = set_shadow(SPEC, ref("m:3"), 100)
    new = canary(spec, ref("m:3"), 5)
    assert "shadow" not in new
    assert weights(new)["m:3"] == 5


@pytest.mark.parametrize("percent", [0, 100, 150, -1, 1.5, True])
def test_canary_percent_is_1_to_99(percent: Any) -> None:
    with pytest.raises(ValidationError) as info:
        canary(SPEC, ref("m:3"), percent)
    assert info.value.paths == ["percent"]


def test_canary_alone_is_refused_with_advice() -> None:
    spec = {**SPEC, "routes": [{"model": "m", "version": "1", "weight": 100}]}
    with pytest.raises(ValidationError, match="promote"):
        canary(spec, ref("m:1"), 5)


def test_shadow_set_and_removed() -> None:
    new = set_shadow(SPEC, ref("m:3"), 25)
    assert new["shadow"] == {"model": "m", "version": "3", "percent": 25}
    assert "shadow" not in set_shadow(new, None)


def test_promote_sends_all_traffic_and_clears_its_shadow() -> None:
    spec = set_shadow(SPEC, ref("m:3"), 100)
    new = promote(spec, ref("m:3"))
    assert weights(new) == {"m:3": 100}
    assert "shadow" not in new
    kept = promote(set_shadow(SPEC, ref("m:3"), 100), ref("m:2"))
    assert kept["shadow"]["version"] == "3"
