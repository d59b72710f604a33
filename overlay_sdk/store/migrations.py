"""Schema versions of the embedded SQLite store, and the runner that moves a file forward.

:class:`overlay_sdk.store.local.LocalStore` calls :func:`enable_wal` and :func:`migrate`
every time it opens a database. The schema version lives in ``PRAGMA user_version``;
:data:`MIGRATIONS` is the ordered list of steps, step ``n`` taking a file from version
``n - 1`` to ``n``. Each step runs in its own ``BEGIN IMMEDIATE`` transaction together
with the version bump, so a crash or a failing step leaves the file at the previous
version, and processes opening the same file at once migrate it exactly once. A file
newer than :data:`MIGRATIONS` knows is refused with :class:`~overlay_sdk.errors.BackendError`.

To change the schema, append a step; never edit or reorder a released one.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from overlay_sdk.errors import BackendError

__all__ = [
    "MIGRATIONS",
    "Migration",
    "enable_wal",
    "latest_version",
    "migrate",
    "schema_version",
]


@dataclass(frozen=True)
class Migration:
    """One schema step: ``run(conn)`` takes the file from ``version - 1`` to ``version``.

    ``run`` executes inside an open transaction; it must not commit, roll back or use
    ``executescript`` (which commits).
    """

    version: int
    summary: str
    run: Callable[[sqlite3.Connection], None]


def _statements(*sql: str) -> Callable[[sqlite3.Connection], None]:
    """A migration body that executes ``sql`` statements in order."""

    def run(conn: sqlite3.Connection) -> None:
        for statement in sql:
            conn.execute(statement)

    return run


_INITIAL = _statements(
    # Every revision ever written, never updated or deleted. ``seq`` is the global commit
    # order that watchers follow (AUTOINCREMENT: never reused, even after a rollback).
    """
    CREATE TABLE revisions (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        name       TEXT    NOT NULL,
        revision   INTEGER NOT NULL CHECK (revision >= 1),
        action     TEXT    NOT NULL CHECK (action IN ('apply', 'delete')),
        document   TEXT    CHECK ((action = 'apply') = (document IS NOT NULL)),
        author     TEXT    NOT NULL,
        created_at TEXT    NOT NULL,
        message    TEXT    NOT NULL,
        changes    TEXT    NOT NULL,
        UNIQUE (name, revision)
    )
    """,
    # The current pointer: one row per overlay name ever written, pointing at its latest
    # revision (a tombstone when ``deleted``). Written in the same transaction as the row.
    """
    CREATE TABLE overlays (
        name     TEXT    PRIMARY KEY,
        revision INTEGER NOT NULL,
        seq      INTEGER NOT NULL UNIQUE REFERENCES revisions (seq),
        deleted  INTEGER NOT NULL CHECK (deleted IN (0, 1))
    )
    """,
    # History is never rewritten: the database itself refuses it.
    """
    CREATE TRIGGER revisions_no_update BEFORE UPDATE ON revisions
    BEGIN SELECT RAISE(ABORT, 'revisions are immutable: write a new revision instead'); END
    """,
    """
    CREATE TRIGGER revisions_no_delete BEFORE DELETE ON revisions
    BEGIN SELECT RAISE(ABORT, 'revisions are immutable: write a tombstone revision instead'); END
    """,
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema: revisions, overlays (current pointer)", _INITIAL),
)


def latest_version(steps: Sequence[Migration] = MIGRATIONS) -> int:
    """The version a file has after every step in ``steps``."""
    return steps[-1].version if steps else 0


def schema_version(conn: sqlite3.Connection) -> int:
    """The schema version recorded in the open database (0 for a new file)."""
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def enable_wal(conn: sqlite3.Connection, *, where: str, timeout: float) -> None:
    """Switch the file to write-ahead logging (persistent), waiting out other openers.

    Raises BackendError when the file system cannot do WAL (network shares, memory).
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            mode = str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
            break
        except sqlite3.OperationalError as err:  # another process is switching it right now
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    if mode != "wal":
        raise BackendError(
            f"{where} cannot use write-ahead logging (journal mode is {mode!r}); "
            "keep the overlay home on a local disk, not a network share or in memory"
        )


def _check_steps(steps: Sequence[Migration]) -> None:
    for index, step in enumerate(steps, start=1):
        if step.version != index:
            raise BackendError(
                f"migration step {step.summary!r} has version {step.version}, expected {index}: "
                "migration steps must be numbered 1, 2, 3... in order (a bug in overlay-sdk; "
                "please report it)"
            )


def migrate(
    conn: sqlite3.Connection, *, steps: Sequence[Migration] = MIGRATIONS, where: str = "database"
) -> int:
    """Bring the database on ``conn`` up to the last of ``steps``; return the version reached.

    ``conn`` must be in autocommit mode (``isolation_level=None``) with no open
    transaction. ``where`` names the file in error messages. Raises BackendError when the
    file is newer than ``steps`` (upgrade overlay-sdk) or a step fails (the file stays at
    the version before that step).
    """
    _check_steps(steps)
    target = latest_version(steps)
    current = schema_version(conn)
    while current < target:
        step = steps[current]  # version current + 1
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated while we waited for the write lock.
            current = schema_version(conn)
            if current == step.version - 1:
                step.run(conn)
                conn.execute(f"PRAGMA user_version = {int(step.version)}")
            conn.execute("COMMIT")
        except BaseException as err:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(err, sqlite3.Error):
                raise BackendError(
                    f"{where}: schema migration to version {step.version} ({step.summary}) "
                    f"failed: {err}; the file is unchanged at version {current}. Check that "
                    "the disk is writable and not full, then open it again"
                ) from err
            raise
        current = schema_version(conn)
    if current > target:
        raise BackendError(
            f"{where} has schema version {current}, but this overlay-sdk knows versions up to "
            f"{target}: it was written by a newer overlay-sdk. Upgrade overlay-sdk "
            "(pip install -U overlay-sdk) to open it"
        )
    return current
