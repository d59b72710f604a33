"""When drift and spend raise alerts. Pure: the gateway's periodic evaluation
(:mod:`overlay_sdk.watch`) reads the calls, these functions decide, the alert store keeps
each alert once (by its key)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd

from overlay_sdk.alerts import Alert
from overlay_sdk.analytics.cost import NANO

__all__ = ["budget_alert", "drift_alerts"]


def budget_alert(overlay: str, day: date, spent_nusd: int, limit_usd: float) -> Alert | None:
    """An alert when ``spent_nusd`` on ``day`` (UTC) passed ``limit_usd`` (once per day)."""
    spent = spent_nusd / NANO
    if spent <= limit_usd:
        return None
    return Alert(overlay=overlay, kind="budget", key=f"budget:{overlay}:{day.isoformat()}",
                 subject="usdPerDay",
                 message=f"{overlay} spent {spent:.2f} USD on {day.isoformat()} (UTC), over its "
                         f"budget of {limit_usd:g} USD a day (spec.budget.usdPerDay)",
                 details={"day": day.isoformat(), "spent_usd": spent, "limit_usd": limit_usd})


def drift_alerts(overlay: str, streaks: pd.DataFrame, window: str) -> list[Alert]:
    """One alert per run of drifted windows (``DriftTimeline.streaks``), keyed by where the
    run started: a run that goes on is the same alert."""
    alerts = []
    for run in streaks.itertuples(index=False):
        version = f"{run.model}:{run.version}"
        first: Any = run.first_window
        last: Any = run.last_window
        alerts.append(Alert(
            overlay=overlay, kind="drift", version=version, subject=str(run.feature),
            key=f"drift:{overlay}:{version}:{run.feature}:{pd.Timestamp(first).isoformat()}",
            message=f"{run.feature} of {version} drifted from its reference in {run.windows} "
                    f"windows of {window} in a row, since {pd.Timestamp(first):%Y-%m-%d %H:%M} "
                    "UTC",
            details={"first_window": pd.Timestamp(first).isoformat(),
                     "last_window": pd.Timestamp(last).isoformat(),
                     "windows": int(run.windows), "window": window}))
    return alerts
