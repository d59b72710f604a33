"""Watching overlays: drift over their calls and the periodic alert evaluation.

:func:`overlay_drift` is what ``o.drift()`` runs. :func:`evaluate` is what the gateway
runs every ``alert_interval`` seconds for each overlay it serves (embedded backend; the
Kubernetes operator will run the same): a budget alert when today's spend passed
``spec.budget.usdPerDay``, a drift alert when a feature drifted for
``spec.drift.consecutive`` windows in a row.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from overlay_sdk.alerts import Alert, extend_alert, raise_alerts, read_alerts
from overlay_sdk.analytics.alerting import budget_alert, drift_alerts
from overlay_sdk.analytics.drift_sketch import EXACT_ROWS
from overlay_sdk.analytics.timeline import (
    DriftTimeline,
    call_features,
    drift_timeline,
    window_of,
)
from overlay_sdk.errors import ValidationError
from overlay_sdk.spec import AIOverlaySpec
from overlay_sdk.telemetry import iter_calls, read_calls
from overlay_sdk.when import parse_when

__all__ = ["evaluate", "overlay_drift"]


def overlay_drift(url: str, name: str, reference: Any, *, registry: Any = None,
                  window: str = "1h", since: Any = None, alpha: float = 0.05,
                  correction: str = "fdr_bh", first_revision: int = 1,
                  exact_rows: int = EXACT_ROWS, now: datetime | None = None,
                  progress: Callable[[int, int], None] | None = None) -> DriftTimeline:
    """Drift of overlay ``name``'s sampled calls per window and version (see
    :func:`overlay_sdk.analytics.timeline.drift_timeline`) against ``reference``:
    ``"registered"`` (each version's reference data in ``registry``), a DataFrame, or a
    time range ``(start, end)`` of the same version's own calls. The calls are read in
    chunks: a window of more than ``exact_rows`` records is tested from sketches."""
    clock = now or datetime.now(UTC)
    window_of(window)  # a bad window fails before anything is read
    start = parse_when(since, clock, field="since") if since is not None else None
    chunks = iter_calls(url, overlay=name, since=start)
    if first_revision > 1:
        chunks = (c[c["revision"] >= first_revision] for c in chunks)
    return drift_timeline(chunks, _reference(url, name, reference, registry, clock),
                          window=window, alpha=alpha, correction=correction,
                          exact_rows=exact_rows, progress=progress)


def _reference(url: str, name: str, reference: Any, registry: Any, clock: datetime
               ) -> Callable[[str], pd.DataFrame | None]:
    if isinstance(reference, pd.DataFrame):
        return lambda key: reference
    if reference in (None, "registered"):
        if registry is None:
            raise ValidationError.at("reference", "a registered reference needs the registry")

        def registered(key: str) -> pd.DataFrame | None:
            return _registered_reference(registry, key)
        return registered
    if isinstance(reference, tuple) and len(reference) == 2:
        low, high = (parse_when(t, clock, field="reference") for t in reference)
        if not low < high:
            raise ValidationError.at("reference", "give (start, end) with start before end")
        calls = read_calls(url, overlay=name, since=low)
        calls = calls[calls["time"] < pd.Timestamp(high)]

        def ranged(key: str) -> pd.DataFrame | None:
            model, _, version = key.partition(":")
            own = calls[(calls["model"] == model) & (calls["version"] == version)]
            own = own[own.filter(like="input.").notna().any(axis=1)]
            return None if own.empty else call_features(own)
        return ranged
    raise ValidationError.at("reference", 'give "registered", a DataFrame, or a time range '
                             '(start, end) such as ("2 days ago", "yesterday")')


_REFERENCES: collections.OrderedDict[tuple[str, str], pd.DataFrame | None] = (
    collections.OrderedDict())
_REFERENCES_KEPT = 16


def _registered_reference(registry: Any, key: str) -> pd.DataFrame | None:
    """Version ``key``'s registered reference data, read from the registry once (a
    version never changes; the gateway evaluates alerts every minute)."""
    # keyed by where the registry is (an id() can be reused by a later registry)
    cache_key = (str(getattr(registry, "registry_uri", id(registry))), key)
    if cache_key in _REFERENCES:
        _REFERENCES.move_to_end(cache_key)
        return _REFERENCES[cache_key]
    model, _, version = key.partition(":")
    frame = registry.reference(model, version)
    kept = frame if frame is not None and len(frame) else None
    _REFERENCES[cache_key] = kept
    while len(_REFERENCES) > _REFERENCES_KEPT:
        _REFERENCES.popitem(last=False)
    return kept


def evaluate(url: str, name: str, spec: AIOverlaySpec, *, registry: Any,
             first_revision: int = 1, now: datetime | None = None) -> list[Alert]:
    """Evaluate overlay ``name``'s alerts now; returns the alerts raised for the first
    time (each is stored once). Calls of revisions before ``first_revision`` (an earlier
    overlay of the same name, deleted) do not count."""
    clock = now or datetime.now(UTC)
    found: list[Alert] = []
    if spec.budget is not None:
        midnight = clock.replace(hour=0, minute=0, second=0, microsecond=0)
        calls = read_calls(url, overlay=name, since=midnight, payloads=False)
        calls = calls[calls["revision"] >= first_revision]
        spent = int(calls["cost_nusd"].fillna(0).sum()) if len(calls) else 0
        alert = budget_alert(name, midnight.date(), spent, spec.budget.usd_per_day)
        if alert is not None:
            found.append(alert)
    if spec.drift is not None:
        watch = spec.drift
        length = window_of(watch.window)
        timeline = _recent_drift(url, name, registry, watch.window, length,
                                 watch.consecutive, watch.alpha, pd.Timestamp(clock),
                                 first_revision)
        runs = drift_alerts(name, timeline.streaks(watch.consecutive), watch.window)
        found.extend(_new_runs(url, name, runs, length))
    return raise_alerts(url, found)


_CLOSED: collections.OrderedDict[tuple[str, str, str, float, int],
                                 dict[pd.Timestamp, pd.DataFrame]] = collections.OrderedDict()
_CLOSED_KEPT = 64  # overlays whose closed windows are remembered
CLOSED_GRACE = pd.Timedelta(minutes=1)  # calls of a window are all written by then


def _recent_drift(url: str, name: str, registry: Any, window: str, length: pd.Timedelta,
                  consecutive: int, alpha: float, clock: pd.Timestamp,
                  first_revision: int = 1) -> DriftTimeline:
    """Drift of the last ``consecutive`` whole windows and the one in progress. Windows
    that closed (a minute ago) are tested once and remembered: the evaluation every minute
    reads and tests only the calls of the window in progress (and of closed windows it
    has not seen yet)."""
    windows = [clock.floor(length) - length * i for i in range(consecutive, -1, -1)]
    closed = [w for w in windows if w + length + CLOSED_GRACE <= clock]
    cache = _CLOSED.setdefault((url, name, window, alpha, first_revision), {})
    _CLOSED.move_to_end((url, name, window, alpha, first_revision))
    while len(_CLOSED) > _CLOSED_KEPT:
        _CLOSED.popitem(last=False)
    unseen = [w for w in closed if w not in cache]
    read_from = unseen[0] if unseen else windows[len(closed)]
    fresh = overlay_drift(url, name, "registered", registry=registry, window=window,
                          since=read_from.to_pydatetime(), alpha=alpha,
                          first_revision=first_revision, now=clock.to_pydatetime()).frame
    for start in closed:
        if start >= read_from:
            cache[start] = fresh[fresh["window"] == start]
    for start in [w for w in cache if w < windows[0]]:
        del cache[start]
    kept = [cache[w] for w in closed if w < read_from and len(cache[w])]
    frame = pd.concat([*kept, fresh], ignore_index=True) if kept else fresh
    return DriftTimeline.of(frame, window, alpha, {})


def _new_runs(url: str, name: str, runs: list[Alert], length: pd.Timedelta) -> list[Alert]:
    """The drift runs not already alerted. A run that goes on is seen from a later first
    window each time (evaluation looks back a few windows): when a stored alert of the
    same version and feature reached the window before this run's first, it is the same
    run; the stored alert is extended instead of raising another."""
    if not runs:
        return []
    stored = read_alerts(url, overlay=name, kind="drift")
    fresh = []
    for run in runs:
        first = pd.Timestamp(run.details["first_window"])
        same = [a for a in stored.itertuples(index=False)
                if a.version == run.version and a.subject == run.subject
                and pd.Timestamp(a.details.get("last_window")) >= first - length]
        if not same:
            fresh.append(run)
            continue
        latest = max(same, key=lambda a: pd.Timestamp(a.details.get("last_window")))
        if pd.Timestamp(run.details["last_window"]) > pd.Timestamp(
                latest.details["last_window"]):
            extend_alert(url, latest.key, {**latest.details,
                                           "last_window": run.details["last_window"]})
    return fresh
