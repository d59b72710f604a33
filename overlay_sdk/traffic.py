"""Traffic changes as pure functions: weights, canary, shadow, promote.

Each function takes the current ``spec`` (wire-form dict, camelCase, as in
``AIOverlay.to_dict()["spec"]``) and returns a new spec dict; nothing is validated
or stored here. The client (:mod:`overlay_sdk.client`) validates the result with
:func:`overlay_sdk.spec.parse_overlay`, resolves model references in the registry
and writes a revision. Keeping the decisions here makes them easy to test and
lets the widgets reuse the same arithmetic.
"""

from __future__ import annotations

import copy
import numbers
from collections.abc import Mapping
from typing import Any

from overlay_sdk.errors import ValidationError
from overlay_sdk.spec import ModelRef

__all__ = [
    "as_int",
    "canary",
    "distribute",
    "matches",
    "promote",
    "route_entry",
    "set_shadow",
    "set_traffic",
]

Spec = dict[str, Any]


def as_int(value: Any) -> Any:
    """numpy/pandas integers -> int (notebooks compute weights with them); else unchanged."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    return value


def distribute(total: int, shares: Mapping[str, float]) -> dict[str, int]:
    """Split ``total`` into integers proportional to ``shares`` (largest-remainder method).

    The result sums to exactly ``total``; ties go to the earlier key. All-zero shares
    split evenly. ``distribute(99, {"a": 90, "b": 10}) == {"a": 89, "b": 10}``.
    """
    if total < 0:
        raise ValueError(f"total must be >= 0, got {total}")
    if not shares:
        if total:
            raise ValueError("nothing to distribute to")
        return {}
    if any(s < 0 for s in shares.values()):
        raise ValueError(f"shares must be >= 0, got {dict(shares)}")
    weight_sum = float(sum(shares.values()))
    keys = list(shares)
    exact = (
        {k: total * shares[k] / weight_sum for k in keys}
        if weight_sum > 0
        else {k: total / len(keys) for k in keys}
    )
    out = {k: int(exact[k]) for k in keys}
    left = total - sum(out.values())
    order = sorted(keys, key=lambda k: (-(exact[k] - out[k]), keys.index(k)))
    for k in order[:left]:
        out[k] += 1
    return out


def matches(entry: Mapping[str, Any], ref: ModelRef) -> bool:
    """Does a route/shadow entry name the same version as ``ref``?"""
    if entry.get("model") != ref.model:
        return False
    if ref.version is not None:
        return str(entry.get("version")) == ref.version
    return entry.get("alias") == ref.alias


def route_entry(ref: ModelRef, **extra: Any) -> dict[str, Any]:
    """A wire-form route or shadow entry for ``ref``."""
    entry: dict[str, Any] = {"model": ref.model}
    if ref.version is not None:
        entry["version"] = ref.version
    if ref.alias is not None:
        entry["alias"] = ref.alias
    entry.update(extra)
    return entry


def _renamed(entry: Mapping[str, Any], ref: ModelRef, **extra: Any) -> dict[str, Any]:
    """``entry`` updated with ``extra``; named by alias, its version is left to re-resolve."""
    out = {**entry, **extra}
    if ref.alias is not None:
        out.pop("version", None)
    return out


def _routes(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [dict(r) for r in spec.get("routes") or []]


def _find(routes: list[dict[str, Any]], ref: ModelRef) -> int | None:
    for i, route in enumerate(routes):
        if matches(route, ref):
            return i
    return None


def _shadow_is(spec: Mapping[str, Any], ref: ModelRef) -> bool:
    shadow = spec.get("shadow")
    return isinstance(shadow, Mapping) and matches(shadow, ref)


def set_traffic(spec: Mapping[str, Any], weights: Mapping[str, int]) -> Spec:
    """Replace the routes with ``weights`` (``{"copilot:3": 95, "copilot:4": 5}``)."""
    if not isinstance(weights, Mapping) or not weights:
        raise ValidationError.at(
            "weights", "give a mapping of model reference to integer weight, "
            "e.g. {'copilot:3': 95, 'copilot:4': 5}"
        )
    new = copy.deepcopy(dict(spec))
    routes = []
    old = _routes(spec)
    for key, weight in weights.items():
        ref = ModelRef.parse(key, field=f"weights[{key!r}]")
        entry = route_entry(ref, weight=as_int(weight))
        i = _find(old, ref)
        if i is not None and ref.alias is None and old[i].get("alias"):
            entry["alias"] = old[i]["alias"]  # keep naming the alias the route was made with
        routes.append(entry)
    new["routes"] = routes
    return new


def canary(spec: Mapping[str, Any], ref: ModelRef, percent: int) -> Spec:
    """Send ``percent`` of traffic to ``ref``; the other routes keep their proportions.

    A shadowed version graduating to canary leaves the shadow slot.
    """
    percent = as_int(percent)
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 < percent < 100:
        raise ValidationError.at(
            "percent", f"a canary takes an integer percent between 1 and 99, got {percent!r}"
        )
    new = copy.deepcopy(dict(spec))
    routes = _routes(spec)
    i = _find(routes, ref)
    others = [r for j, r in enumerate(routes) if j != i]
    if not others:
        raise ValidationError.at(
            "ref", f"{ref} is the only route: a canary needs another version to split with; "
            "use promote() to send it all traffic"
        )
    split = distribute(100 - percent, {str(j): float(r["weight"]) for j, r in enumerate(others)})
    for j, r in enumerate(others):
        r["weight"] = split[str(j)]
    if i is None:
        routes.append(route_entry(ref, weight=percent))
    else:
        routes[i] = _renamed(routes[i], ref, weight=percent)
    new["routes"] = routes  # ``others`` are the same dicts, updated in place above
    if _shadow_is(spec, ref):
        new.pop("shadow", None)
    return new


def set_shadow(spec: Mapping[str, Any], ref: ModelRef | None, percent: float = 100) -> Spec:
    """Mirror ``percent`` of traffic to ``ref`` (None removes the shadow)."""
    new = copy.deepcopy(dict(spec))
    if ref is None:
        new.pop("shadow", None)
        return new
    try:
        if isinstance(percent, bool) or not isinstance(percent, numbers.Real):
            raise TypeError
        value = float(percent)
    except (TypeError, OverflowError):
        raise ValidationError.at(
            "percent", f"a shadow percent is a number from 0 to 100, got {percent!r}"
        ) from None
    new["shadow"] = route_entry(ref, percent=value)
    return new


def promote(spec: Mapping[str, Any], ref: ModelRef) -> Spec:
    """Send all traffic to ``ref``; other routes are removed, and so is a shadow of ``ref``."""
    new = copy.deepcopy(dict(spec))
    routes = _routes(spec)
    i = _find(routes, ref)
    target = _renamed(routes[i], ref, weight=100) if i is not None else route_entry(ref, weight=100)
    new["routes"] = [target]
    if _shadow_is(spec, ref):
        new.pop("shadow", None)
    return new
