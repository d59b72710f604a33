"""What the TrafficSplitter shows and what it may apply, as pure functions.

The front end (``widgets/traffic_splitter.js``) keeps the weights integers summing to 100
while the user drags; what it sends is still checked here (a message is data from a
browser) before the SDK validates the change as any other.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from overlay_sdk.errors import ValidationError
from overlay_sdk.spec import AIOverlaySpec

__all__ = ["ApplyRequest", "parse_apply", "shadow_choices", "splitter_state", "status_text"]


@dataclass(frozen=True)
class ApplyRequest:
    """A change the splitter asks for: route weights, and the shadow (None: no shadow)."""

    weights: dict[str, int]
    shadow: str | None
    shadow_percent: float


def splitter_state(spec: AIOverlaySpec) -> dict[str, Any]:
    """The routes (``key`` as the spec names it, ``weight``) and the shadow of ``spec``."""
    return {
        "routes": [{"key": str(r.ref), "weight": int(r.weight)} for r in spec.routes],
        "shadow": str(spec.shadow.ref) if spec.shadow is not None else "",
        "shadow_percent": float(spec.shadow.percent) if spec.shadow is not None else 100.0,
    }


def shadow_choices(spec: AIOverlaySpec, versions: Mapping[str, Iterable[str]]) -> list[str]:
    """Versions that can shadow: every registered version (``versions``: model -> version
    numbers) of the models ``spec`` routes to or shadows, except the routes themselves
    (a shadow is never also a route); the current shadow stays a choice."""
    routed = {(r.model, r.version) for r in spec.routes}
    out = [f"{model}:{v}" for model, numbers in versions.items() for v in numbers
           if (model, str(v)) not in routed]
    current = splitter_state(spec)["shadow"]
    if current and current not in out:
        out.append(current)
    return out


def parse_apply(content: Any) -> ApplyRequest:
    """An ``apply`` message from the front end -> :class:`ApplyRequest`; ValidationError
    naming the part at fault otherwise."""
    if not isinstance(content, Mapping):
        raise ValidationError.at("message", "expected an object")
    weights = content.get("weights")
    if not isinstance(weights, Mapping) or not weights:
        raise ValidationError.at("weights", "give each route version's weight")
    clean: dict[str, int] = {}
    for key, weight in weights.items():
        if isinstance(weight, bool) or not isinstance(weight, numbers.Real) or not (
                float(weight).is_integer()):
            raise ValidationError.at(f"weights[{key!r}]", f"give a whole number, got {weight!r}")
        clean[str(key)] = int(float(weight))
    shadow = content.get("shadow") or None
    if shadow is not None and not isinstance(shadow, str):
        raise ValidationError.at("shadow", f"give a model version such as 'fraud:3', got "
                                 f"{shadow!r}")
    percent = content.get("shadowPercent", 100)
    if isinstance(percent, bool) or not isinstance(percent, numbers.Real) or math.isnan(
            float(percent)):
        raise ValidationError.at("shadow.percent", f"give a number from 0 to 100, got "
                                 f"{percent!r}")
    return ApplyRequest(clean, shadow, float(percent))


def status_text(revision: int, state: str, serving_revision: int | None,
                propagation_ms: float | None, message: str = "") -> str:
    """One line on where the stored revision stands in the gateway."""
    if state == "no gateway":
        return f"revision {revision} stored; no gateway is running to apply it"
    if state == "failed":
        return f"revision {revision} could not be applied: {message}"
    if serving_revision == revision:
        took = f" in {propagation_ms:.0f} ms" if propagation_ms is not None else ""
        return f"revision {revision} applied by the gateway{took}"
    if state == "warming":
        return (f"revision {revision}: loading its model versions; revision "
                f"{serving_revision} serves meanwhile")
    return f"revision {revision} stored; waiting for the gateway"
