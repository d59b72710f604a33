"""The routing brain: exact bucket counts, stable keys, minimal movement, independent shadow."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from overlay_sdk.errors import ValidationError
from overlay_sdk.routing import (
    BUCKETS,
    bucket_of,
    moved_share,
    plan,
    replay,
    shadow_point,
    weight_moved,
)
from overlay_sdk.spec import AIOverlaySpec, parse_spec


def spec(weights: dict[str, int], shadow: tuple[str, float] | None = None) -> AIOverlaySpec:
    doc: dict[str, Any] = {
        "host": {"url": "http://h"},
        "routes": [{"model": k.split(":")[0], "version": k.split(":")[1], "weight": w}
                   for k, w in weights.items()],
    }
    if shadow is not None:
        model, version = shadow[0].split(":")
        doc["shadow"] = {"model": model, "version": version, "percent": shadow[1]}
    return parse_spec(doc)


KEYS = [f"user-{random.Random(42).random()}-{i}" for i in range(10_000)]

weight_lists = st.integers(1, 8).flatmap(
    lambda n: st.lists(st.integers(0, 100), min_size=n - 1, max_size=n - 1).map(
        lambda cuts: [b - a for a, b in zip([0, *sorted(cuts)], [*sorted(cuts), 100],
                                            strict=True)]))


def as_weights(values: list[int], offset: int = 0) -> dict[str, int]:
    return {f"m:{i + 1 + offset}": w for i, w in enumerate(values)}


@given(weight_lists)
def test_bucket_counts_are_weight_times_100_exactly(values: list[int]) -> None:
    p = plan(spec(as_weights(values)))
    counts = {v: p.assignment.count(i) for i, v in enumerate(p.versions)}
    assert counts == {v: w * 100 for v, w in as_weights(values).items()}
    assert p.counts() == counts and p.weights() == as_weights(values)
    assert len(p.assignment) == BUCKETS


def test_seeded_keys_split_within_one_and_a_half_points() -> None:
    weights = {"m:1": 70, "m:2": 25, "m:3": 5}
    p = plan(spec(weights))
    seen = {v: 0 for v in weights}
    for key in KEYS:
        seen[p.version_for(key)] += 1
    for version, weight in weights.items():
        assert abs(seen[version] / len(KEYS) * 100 - weight) <= 1.5, seen


def test_the_same_key_gets_the_same_version_under_an_unchanged_plan() -> None:
    first = plan(spec({"m:1": 50, "m:2": 50}), revision=1)
    again = plan(spec({"m:1": 50, "m:2": 50}), revision=2, previous=first)
    assert again.assignment == first.assignment
    assert all(first.version_for(k) == first.version_for(k) == again.version_for(k)
               for k in KEYS[:2000])


@settings(max_examples=60, deadline=None)
@given(st.lists(weight_lists, min_size=2, max_size=6), st.integers(0, 3))
def test_a_change_moves_exactly_the_weight_that_moved(
    sequence: list[list[int]], shift: int
) -> None:
    previous = None
    before: dict[str, int] = {}
    for step, values in enumerate(sequence):
        weights = as_weights(values, offset=shift if step % 2 else 0)  # versions come and go
        current = plan(spec(weights), revision=step + 1, previous=previous)
        if previous is not None:
            assert moved_share(previous, current) == weight_moved(before, weights)
            keys_moved = sum(previous.version_for(k) != current.version_for(k) for k in KEYS)
            assert abs(keys_moved / len(KEYS) * 100 - weight_moved(before, weights)) <= 1.5
        previous, before = current, weights


def test_moving_five_percent_reroutes_five_percent_of_keys() -> None:
    a = plan(spec({"m:1": 90, "m:2": 10}))
    b = plan(spec({"m:1": 85, "m:2": 15}), previous=a)
    assert moved_share(a, b) == 5.0
    moved = [k for k in KEYS if a.version_for(k) != b.version_for(k)]
    assert all(a.version_for(k) == "m:1" and b.version_for(k) == "m:2" for k in moved)


def test_shadow_sampling_is_exact_in_aggregate_and_independent_of_routing() -> None:
    p = plan(spec({"m:1": 50, "m:2": 50}, shadow=("m:3", 20)))
    assert (p.shadow, p.shadow_percent) == ("m:3", 20.0)
    mirrored = [k for k in KEYS if p.shadows(k)]
    assert abs(len(mirrored) / len(KEYS) * 100 - 20) <= 1.5
    by_version = {v: sum(p.version_for(k) == v for k in mirrored) / len(mirrored)
                  for v in ("m:1", "m:2")}
    assert all(abs(share - 0.5) < 0.05 for share in by_version.values())  # independent hash
    assert not plan(spec({"m:1": 100})).shadows(KEYS[0])
    assert all(0 <= shadow_point(k) < 100 for k in KEYS[:100])
    assert all(0 <= bucket_of(k) < BUCKETS for k in KEYS[:100])


def test_plans_need_resolved_versions() -> None:
    unresolved = parse_spec({"host": {"url": "http://h"},
                             "routes": [{"model": "m", "alias": "serving", "weight": 100}]})
    with pytest.raises(ValidationError) as info:
        plan(unresolved)
    assert info.value.paths == ["spec.routes[0]"]


@settings(max_examples=40, deadline=None)
@given(st.lists(weight_lists, min_size=1, max_size=6), st.integers(0, 3))
def test_replaying_the_history_gives_the_plan_of_a_gateway_that_followed_it(
        sequence: list[list[int]], offset: int) -> None:
    specs = [spec(as_weights(values, offset * i % 3)) for i, values in enumerate(sequence)]
    followed = None
    for number, current in enumerate(specs, start=1):
        followed = plan(current, overlay="o", revision=number, previous=followed)
    replayed = replay(list(enumerate(specs, start=1)), overlay="o")
    assert replayed is not None and followed is not None
    assert replayed.assignment == followed.assignment
    assert replayed.versions == followed.versions and replayed.revision == len(specs)


def test_a_fresh_plan_differs_from_the_followed_one_so_replay_is_needed() -> None:
    history = [(1, spec({"m:1": 80, "m:2": 20})), (2, spec({"m:1": 70, "m:2": 20, "m:3": 10}))]
    replayed = replay(history)
    fresh = plan(history[-1][1])
    assert replayed is not None and moved_share(fresh, replayed) > 1  # why gateways replay


def test_a_deletion_starts_the_chain_afresh() -> None:
    first, second = spec({"m:1": 60, "m:2": 40}), spec({"m:1": 50, "m:2": 50})
    after_delete = replay([(1, first), (2, None), (3, second)])
    assert after_delete is not None
    assert after_delete.assignment == plan(second, revision=3).assignment
    assert replay([(1, first), (2, None)]) is None
