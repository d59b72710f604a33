"""The routing brain: an overlay revision -> a :class:`RoutePlan`. Pure.

A request key (the sticky header or cookie; else a fresh random id) hashes into
:data:`BUCKETS` buckets, and the plan assigns every bucket to one route version:
exactly ``weight x 100`` buckets per version, so the split is exact, not statistical.
A new plan is derived from the previous one: a version that must shrink gives up only
the buckets it must, and those go to the versions that must grow, so moving 5 % of
the weight from A to B re-routes exactly 5 % of the keys and no others. Shadow
sampling uses an independent hash, so which keys are mirrored does not depend on
which version they are routed to.

Two consumers execute a plan: the gateway (per request, :meth:`RoutePlan.version_for`)
and the Kubernetes renderer (the weights and the mirror percent, :meth:`RoutePlan.weights`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from overlay_sdk.errors import ValidationError
from overlay_sdk.spec import AIOverlaySpec

__all__ = [
    "BUCKETS",
    "RoutePlan",
    "bucket_of",
    "moved_share",
    "plan",
    "replay",
    "shadow_point",
    "weight_moved",
]

BUCKETS = 10_000
_SHADOW_SCALE = 1_000_000  # shadow sampling resolution: 0.0001 %


def bucket_of(key: str) -> int:
    """The routing bucket of a request key, 0 <= bucket < BUCKETS."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8, person=b"overlay-route").digest()
    return int.from_bytes(digest, "big") % BUCKETS


def shadow_point(key: str) -> float:
    """Where a key falls for shadow sampling, in [0, 100); independent of :func:`bucket_of`."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8, person=b"overlay-shadow").digest()
    return (int.from_bytes(digest, "big") % _SHADOW_SCALE) * 100 / _SHADOW_SCALE


@dataclass(frozen=True)
class RoutePlan:
    """Which version serves each bucket, for one overlay revision.

    ``versions`` are ``model:version`` keys in route order; ``assignment[b]`` is the index
    into ``versions`` of bucket ``b``. ``shadow`` is the shadow version key (or None) and
    ``shadow_percent`` the share of keys mirrored to it.
    """

    overlay: str
    revision: int
    versions: tuple[str, ...]
    assignment: bytes
    shadow: str | None = None
    shadow_percent: float = 0.0
    _counts: tuple[int, ...] = field(default=(), repr=False, compare=False)

    def version_for(self, key: str) -> str:
        """The version serving ``key`` (the same key always gets the same version)."""
        return self.versions[self.assignment[bucket_of(key)]]

    def shadows(self, key: str) -> bool:
        """Whether the request with ``key`` is mirrored to the shadow version."""
        return self.shadow is not None and shadow_point(key) < self.shadow_percent

    def counts(self) -> dict[str, int]:
        """Buckets per version (``weight x 100`` each)."""
        counts = self._counts or _count(self.assignment, len(self.versions))
        return dict(zip(self.versions, counts, strict=True))

    def weights(self) -> dict[str, int]:
        """Integer percent per version, as the spec says (for Istio's ``route[].weight``)."""
        return {v: c * 100 // BUCKETS for v, c in self.counts().items()}


def _count(assignment: bytes, n: int) -> tuple[int, ...]:
    return tuple(assignment.count(i) for i in range(n))


def _targets(spec: AIOverlaySpec) -> dict[str, int]:
    targets: dict[str, int] = {}
    for i, route in enumerate(spec.routes):
        if route.version is None:
            raise ValidationError.at(
                f"spec.routes[{i}]", f"{route} has no resolved version; plans are made from "
                "stored revisions, whose aliases are resolved"
            )
        targets[f"{route.model}:{route.version}"] = route.weight * BUCKETS // 100
    return targets


def plan(
    spec: AIOverlaySpec, *, overlay: str = "", revision: int = 0,
    previous: RoutePlan | None = None,
) -> RoutePlan:
    """The plan for ``spec``, derived from ``previous`` so that only the buckets whose
    version must change are moved (a version that keeps its weight keeps its buckets)."""
    targets = _targets(spec)
    versions = tuple(targets)
    index = {v: i for i, v in enumerate(versions)}
    owner: list[int | None] = [None] * BUCKETS
    have = dict.fromkeys(versions, 0)
    if previous is not None:
        for b, old in enumerate(previous.assignment):
            key = previous.versions[old]
            if key in index:
                owner[b] = index[key]
                have[key] += 1
    # shrink: a version over its target frees its highest buckets first (deterministic)
    for key, target in targets.items():
        extra = have[key] - target
        b = BUCKETS - 1
        while extra > 0:
            if owner[b] == index[key]:
                owner[b] = None
                extra -= 1
            b -= 1
        have[key] = min(have[key], target)
    # grow: free buckets go, lowest first, to versions under their target, in route order
    free = (b for b in range(BUCKETS) if owner[b] is None)
    for key, target in targets.items():
        for _ in range(target - have[key]):
            owner[next(free)] = index[key]
    assignment = bytes(o if o is not None else 0 for o in owner)
    shadow = spec.shadow
    return RoutePlan(
        overlay=overlay,
        revision=revision,
        versions=versions,
        assignment=assignment,
        shadow=f"{shadow.model}:{shadow.version}" if shadow is not None else None,
        shadow_percent=float(shadow.percent) if shadow is not None else 0.0,
        _counts=tuple(targets.values()),
    )


def replay(history: Iterable[tuple[int, AIOverlaySpec | None]], *, overlay: str = ""
           ) -> RoutePlan | None:
    """The plan of the last revision in ``history`` ((revision, spec) pairs, oldest first;
    None for a deletion), derived revision by revision from the last creation. Every
    consumer that replays the same history gets the same plan, so a restarted gateway, or
    a second one, routes every key as a gateway that followed each change did."""
    current: RoutePlan | None = None
    for number, spec in history:
        current = None if spec is None else plan(spec, overlay=overlay, revision=number,
                                                 previous=current)
    return current


def moved_share(before: RoutePlan, after: RoutePlan) -> float:
    """Percent of buckets whose version differs between two plans."""
    moved = sum(
        1 for a, b in zip(before.assignment, after.assignment, strict=True)
        if before.versions[a] != after.versions[b]
    )
    return moved * 100 / BUCKETS


def weight_moved(before: Mapping[str, int], after: Mapping[str, int]) -> int:
    """Percent of weight that changed hands: the sum of the increases."""
    return sum(max(0, w - before.get(v, 0)) for v, w in after.items())
