"""Change summaries between two revisions of an overlay, for history and audit.

Pure: takes two wire-form documents (``AIOverlay.to_dict()``, or None for "absent")
and returns one human-readable line such as
``routes copilot:3 90->95, copilot:4 10->5; shadow none -> copilot:5 100%``.
Stores call :func:`describe_change` when they write a revision.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["describe_change", "flatten"]


def _route_key(route: Mapping[str, Any]) -> str:
    model = route.get("model", "?")
    if route.get("version"):
        return f"{model}:{route['version']}"
    return f"{model}@{route.get('alias', '?')}"


def _weights(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {_route_key(r): r.get("weight") for r in spec.get("routes") or []}


def _shadow(spec: Mapping[str, Any]) -> str:
    shadow = spec.get("shadow")
    if not shadow:
        return "none"
    percent = shadow.get("percent", 100)
    percent_text = f"{percent:g}" if isinstance(percent, int | float) else str(percent)
    return f"{_route_key(shadow)} {percent_text}%"


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists stay whole values."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key in value:
            path = f"{prefix}.{key}" if prefix else str(key)
            out.update(flatten(value[key], path))
        return out
    return {prefix: value}


def _routes_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
    before, after = _weights(old), _weights(new)
    if list(before.items()) == list(after.items()):
        return None
    parts = []
    for key, weight in after.items():
        if key not in before:
            parts.append(f"+{key} {weight}")
        elif before[key] != weight:
            parts.append(f"{key} {before[key]}->{weight}")
    parts.extend(f"-{key}" for key in before if key not in after)
    if not parts:  # same weights, new order
        parts.append("reordered")
    return "routes " + ", ".join(parts)


def describe_change(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> str:
    """One line describing how ``new`` differs from ``old`` (documents in wire form)."""
    if new is None:
        return "deleted" if old is not None else ""
    new_spec = new.get("spec") or {}
    if old is None:
        routes = ", ".join(f"{k} {w}" for k, w in _weights(new_spec).items())
        text = f"created: mode {new_spec.get('mode', 'passthrough')}, routes {routes}"
        if new_spec.get("shadow"):
            text += f", shadow {_shadow(new_spec)}"
        return text
    old_spec = old.get("spec") or {}
    parts: list[str] = []
    routes_text = _routes_change(old_spec, new_spec)
    if routes_text:
        parts.append(routes_text)
    if _shadow(old_spec) != _shadow(new_spec):
        parts.append(f"shadow {_shadow(old_spec)} -> {_shadow(new_spec)}")
    rest_old = flatten({k: v for k, v in old.items() if k != "status"})
    rest_new = flatten({k: v for k, v in new.items() if k != "status"})
    for path in sorted(set(rest_old) | set(rest_new)):
        if path in ("spec.routes",) or path.startswith("spec.shadow"):
            continue
        a, b = rest_old.get(path), rest_new.get(path)
        if a != b:
            shown = path.removeprefix("spec.")
            parts.append(f"{shown} {_show(a)} -> {_show(b)}")
    return "; ".join(parts) if parts else "no change"


def _show(value: Any) -> str:
    if value is None:
        return "unset"
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."
