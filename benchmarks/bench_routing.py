"""What a routing decision costs in the gateway's hot path, and what a new plan costs.

- baseline: hashing the request key alone (``hashlib.blake2b``, 8-byte digest);
- ``RoutePlan.version_for``: hash -> bucket -> version (one bytes index);
- ``RoutePlan.shadows``: the independent shadow hash;
- ``plan(..., previous=...)``: deriving a new plan after a weight change (per config change,
  not per request).
Reported as medians and ratios to the baseline.
"""

from __future__ import annotations

import hashlib
import statistics
import time
from collections.abc import Callable


def _per_call_us(fn: Callable[[str], object], keys: list[str], rounds: int = 5) -> float:
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for key in keys:
            fn(key)
        samples.append((time.perf_counter() - t0) / len(keys))
    return statistics.median(samples) * 1e6


def main() -> list[str]:
    from overlay_sdk.routing import plan
    from overlay_sdk.spec import parse_spec

    def spec(w1: int) -> object:
        return parse_spec({"host": {"url": "http://h"},
                           "routes": [{"model": "m", "version": "1", "weight": w1},
                                      {"model": "m", "version": "2", "weight": 100 - w1}],
                           "shadow": {"model": "m", "version": "3", "percent": 10}})

    keys = [f"user-{i}" for i in range(100_000)]
    current = plan(spec(90))  # type: ignore[arg-type]
    base = _per_call_us(
        lambda k: hashlib.blake2b(k.encode(), digest_size=8).digest(), keys)
    route = _per_call_us(current.version_for, keys)
    shadow = _per_call_us(current.shadows, keys)
    t0 = time.perf_counter()
    for w in range(1, 100):
        current = plan(spec(w), previous=current)  # type: ignore[arg-type]
    derive_ms = (time.perf_counter() - t0) / 99 * 1000
    return [
        f"blake2b of the key (baseline)   {base:6.3f} us/request",
        f"RoutePlan.version_for           {route:6.3f} us/request = {route / base:4.1f} x base",
        f"RoutePlan.shadows               {shadow:6.3f} us/request = {shadow / base:4.1f} x base",
        f"plan(previous=...) per change   {derive_ms:6.2f} ms",
    ]
