"""Stored alerts (drift, budget), kept beside the call records in the telemetry store.

An alert has a ``key`` saying what it is about (``drift:fraud-scoring:fraud:1:amount:
2026-11-25T03:00``, ``budget:sales-copilot:2026-11-25``); the store keeps one alert per
key, so an evaluation that runs every minute raises each alert once. What raises them is
decided in :mod:`overlay_sdk.analytics.alerting`; the gateway runs it periodically.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from overlay_sdk.errors import ValidationError
from overlay_sdk.telemetry import open_store

__all__ = ["ALERT_COLUMNS", "Alert", "alerts_table", "extend_alert", "raise_alerts",
           "read_alerts"]

_METADATA = sa.MetaData()
alerts_table = sa.Table(
    "alerts",
    _METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("time", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("overlay", sa.String(63), nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("key", sa.String(255), nullable=False, unique=True),
    sa.Column("version", sa.String(160)),
    sa.Column("subject", sa.String(255)),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("details", sa.Text),
)
ALERT_COLUMNS = ("time", "overlay", "kind", "version", "subject", "message", "details", "key")


@dataclass(frozen=True)
class Alert:
    """One alert: ``kind`` drift or budget; ``subject`` the feature or the limit."""

    overlay: str
    kind: str
    key: str
    message: str
    version: str | None = None
    subject: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    time: datetime = field(default_factory=lambda: datetime.now(UTC))


def _engine(url: str) -> sa.Engine:
    engine = open_store(url)
    try:
        with engine.connect() as conn:
            _METADATA.create_all(conn)
            conn.commit()
    except sa.exc.DatabaseError:  # made by another process at the same moment
        if not sa.inspect(engine).has_table(alerts_table.name):
            engine.dispose()
            raise
    return engine


def raise_alerts(url: str, alerts: list[Alert]) -> list[Alert]:
    """Store ``alerts`` not stored yet (by key); returns those that were new."""
    if not alerts:
        return []
    engine = _engine(url)
    new = []
    try:
        with engine.begin() as conn:
            known = set(conn.execute(sa.select(alerts_table.c.key).where(
                alerts_table.c.key.in_([a.key for a in alerts]))).scalars())
        for alert in alerts:
            if alert.key in known:
                continue
            try:
                with engine.begin() as conn:
                    conn.execute(alerts_table.insert().values(
                        time=alert.time.astimezone(UTC), overlay=alert.overlay,
                        kind=alert.kind, key=alert.key[:255], version=alert.version,
                        subject=alert.subject, message=alert.message,
                        details=json.dumps(alert.details, default=str)))
            except sa.exc.IntegrityError:  # raised by another gateway a moment ago
                continue
            known.add(alert.key)
            new.append(alert)
    finally:
        engine.dispose()
    return new


def extend_alert(url: str, key: str, details: dict[str, Any]) -> None:
    """Replace the details of stored alert ``key`` (a drift run that goes on)."""
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(alerts_table.update().where(alerts_table.c.key == key).values(
                details=json.dumps(details, default=str)))
    finally:
        engine.dispose()


def read_alerts(url: str, *, overlay: str | None = None, kind: str | None = None,
                since: datetime | None = None, limit: int | None = None) -> pd.DataFrame:
    """Stored alerts, newest first, as a DataFrame (:data:`ALERT_COLUMNS`): of ``overlay``
    and ``kind`` (None: any), from ``since`` on, at most ``limit`` (the newest; None: all)."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                              or limit < 1):
        raise ValidationError.at("limit", f"give a whole number of at least 1, or None for "
                                 f"every alert; got {limit!r:.60}")
    engine = _engine(url)
    query = sa.select(*[alerts_table.c[c] for c in ALERT_COLUMNS]).order_by(
        alerts_table.c.time.desc(), alerts_table.c.id.desc())
    if overlay is not None:
        query = query.where(alerts_table.c.overlay == overlay)
    if kind is not None:
        query = query.where(alerts_table.c.kind == kind)
    if since is not None:
        query = query.where(alerts_table.c.time >= since.astimezone(UTC))
    if limit is not None:
        query = query.limit(limit)
    try:
        with engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(query).mappings().all(), columns=list(ALERT_COLUMNS))
    finally:
        engine.dispose()
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    frame["details"] = [json.loads(d) if isinstance(d, str) else {} for d in frame["details"]]
    return frame
