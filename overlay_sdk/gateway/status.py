"""The gateway's status book: what each gateway applied, when, and its model backends.

The gateway writes; any process reads (``o.status()`` in a notebook, the CLI, later the
Jupyter server extension). In the embedded default the book is a SQLite file beside the
store, ``<home>/gateway.db``; rows are small and written off the event loop.

- ``gateways``: one row per gateway start (pid, url, started and stopped times);
- ``applied``: one row per overlay revision a gateway saw: ``warming`` while its versions
  load, then ``serving`` (with ``applied_at`` and the propagation time from the revision's
  commit), ``failed`` (a version would not load; the previous revision keeps serving) or
  ``superseded`` (a newer revision arrived before this one served);
- ``backends``: the state of each model version the gateway holds;
- ``plans``: route plans by overlay and revision. A plan is a function of the overlay's
  stored history, so any gateway may reuse one instead of replaying the history up to it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from overlay_sdk.routing import RoutePlan

__all__ = ["StatusBook", "pid_alive"]

FILENAME = "gateway.db"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS gateways (
    id INTEGER PRIMARY KEY AUTOINCREMENT, pid INTEGER NOT NULL, url TEXT NOT NULL,
    started_at TEXT NOT NULL, stopped_at TEXT);
CREATE TABLE IF NOT EXISTS applied (
    gateway INTEGER NOT NULL, overlay TEXT NOT NULL, revision INTEGER NOT NULL,
    state TEXT NOT NULL, committed_at TEXT NOT NULL, applied_at TEXT,
    propagation_ms REAL, message TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (gateway, overlay, revision));
CREATE TABLE IF NOT EXISTS plans (
    overlay TEXT NOT NULL, revision INTEGER NOT NULL, versions TEXT NOT NULL,
    assignment BLOB NOT NULL, shadow TEXT, shadow_percent REAL NOT NULL,
    PRIMARY KEY (overlay, revision));
CREATE TABLE IF NOT EXISTS backends (
    gateway INTEGER NOT NULL, version TEXT NOT NULL, state TEXT NOT NULL,
    error TEXT, updated_at TEXT NOT NULL, PRIMARY KEY (gateway, version));
"""


def pid_alive(pid: int) -> bool:
    """Whether a process with ``pid`` runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _iso(when: datetime | None) -> str | None:
    return when.astimezone(UTC).isoformat() if when is not None else None


class StatusBook:
    """Reads and writes ``<home>/gateway.db``. Thread-safe; one connection per call."""

    def __init__(self, home: str | os.PathLike[str]) -> None:
        self.path = Path(home) / FILENAME
        self._lock = threading.Lock()
        self._ready = False

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout = 10000")
            if not self._ready:
                with self._lock:
                    conn.execute("PRAGMA journal_mode = WAL")
                    conn.executescript(_SCHEMA)
                    self._ready = True
            yield conn
        finally:
            conn.close()

    # -- writer side (the gateway) ---------------------------------------------------------

    def started(self, url: str) -> int:
        """Record a gateway start; returns its id."""
        with self._db() as conn:
            cur = conn.execute("INSERT INTO gateways (pid, url, started_at) VALUES (?, ?, ?)",
                               (os.getpid(), url, _iso(datetime.now(UTC))))
            return int(cur.lastrowid or 0)

    def stopped(self, gateway: int) -> None:
        """Record a clean stop."""
        with self._db() as conn:
            conn.execute("UPDATE gateways SET stopped_at = ? WHERE id = ?",
                         (_iso(datetime.now(UTC)), gateway))

    def revision(self, gateway: int, overlay: str, revision: int, state: str, *,
                 committed_at: datetime, applied_at: datetime | None = None,
                 propagation_ms: float | None = None, message: str = "") -> None:
        """Record where ``overlay`` revision ``revision`` stands in this gateway."""
        with self._db() as conn:
            conn.execute(
                "INSERT INTO applied (gateway, overlay, revision, state, committed_at, "
                "applied_at, propagation_ms, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (gateway, overlay, revision) DO UPDATE SET state = excluded.state, "
                "applied_at = COALESCE(excluded.applied_at, applied_at), "
                "propagation_ms = COALESCE(excluded.propagation_ms, propagation_ms), "
                "message = excluded.message",
                (gateway, overlay, revision, state, _iso(committed_at), _iso(applied_at),
                 propagation_ms, message))

    def backend(self, gateway: int, version: str, state: str, error: str | None = None) -> None:
        """Record the state of one model version's backend."""
        with self._db() as conn:
            conn.execute(
                "INSERT INTO backends (gateway, version, state, error, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (gateway, version) DO UPDATE SET "
                "state = excluded.state, error = excluded.error, "
                "updated_at = excluded.updated_at",
                (gateway, version, state, error, _iso(datetime.now(UTC))))

    def save_plan(self, plan: RoutePlan) -> None:
        """Keep ``plan`` (of ``plan.overlay`` at ``plan.revision``) for later starts."""
        with self._db() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO plans (overlay, revision, versions, assignment, shadow, "
                "shadow_percent) VALUES (?, ?, ?, ?, ?, ?)",
                (plan.overlay, plan.revision, json.dumps(list(plan.versions)), plan.assignment,
                 plan.shadow, plan.shadow_percent))

    def latest_plan(self, overlay: str, first: int, last: int) -> RoutePlan | None:
        """The kept plan of ``overlay`` with the highest revision in ``first..last``."""
        if not self.path.exists():
            return None
        with self._db() as conn:
            row = conn.execute(
                "SELECT revision, versions, assignment, shadow, shadow_percent FROM plans "
                "WHERE overlay = ? AND revision BETWEEN ? AND ? ORDER BY revision DESC LIMIT 1",
                (overlay, first, last)).fetchone()
        if row is None:
            return None
        return RoutePlan(overlay=overlay, revision=int(row[0]),
                         versions=tuple(json.loads(row[1])), assignment=bytes(row[2]),
                         shadow=row[3], shadow_percent=float(row[4]))

    # -- reader side -------------------------------------------------------------------------

    def _frame(self, sql: str, params: tuple[Any, ...]) -> pd.DataFrame:
        if not self.path.exists():
            return pd.DataFrame()
        with self._db() as conn:
            cur = conn.execute(sql, params)
            names = [d[0] for d in cur.description]
            return pd.DataFrame(cur.fetchall(), columns=names)

    def live_gateway(self) -> dict[str, Any] | None:
        """The most recently started gateway still running (id, pid, url, started_at)."""
        frame = self._frame("SELECT id, pid, url, started_at FROM gateways "
                            "WHERE stopped_at IS NULL ORDER BY id DESC", ())
        for row in frame.to_dict(orient="records"):
            if pid_alive(int(row["pid"])):
                return {str(k): v for k, v in row.items()}
        return None

    def applied(self, overlay: str, gateway: int | None = None) -> pd.DataFrame:
        """Revisions of ``overlay`` seen by a gateway (the live one by default), newest first;
        times as UTC timestamps."""
        if gateway is None:
            live = self.live_gateway()
            if live is None:
                return pd.DataFrame(columns=["revision", "state", "committed_at", "applied_at",
                                             "propagation_ms", "message"])
            gateway = int(live["id"])
        frame = self._frame(
            "SELECT revision, state, committed_at, applied_at, propagation_ms, message "
            "FROM applied WHERE gateway = ? AND overlay = ? ORDER BY revision DESC",
            (gateway, overlay))
        for column in ("committed_at", "applied_at"):
            frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
        return frame

    def backends(self, gateway: int) -> dict[str, tuple[str, str | None]]:
        """version -> (state, error) for one gateway."""
        frame = self._frame("SELECT version, state, error FROM backends WHERE gateway = ?",
                            (gateway,))
        return {r["version"]: (r["state"], r["error"]) for r in frame.to_dict(orient="records")}
