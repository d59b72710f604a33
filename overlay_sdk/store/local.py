"""The embedded spec store: overlays and their revisions in one SQLite file.

The default :class:`~overlay_sdk.store.base.Store`: the control-plane client writes
through it (``LocalStore(home / "overlays.db")``) and the gateway's reconcile loop
follows it with :meth:`LocalStore.watch`, from any number of threads and processes.

How it keeps the rules of :mod:`overlay_sdk.store.base`:

- WAL journal, ``synchronous=NORMAL`` (a process crash loses nothing committed), a 30 s
  busy timeout; one connection per thread, in autocommit mode, so every write is an
  explicit ``BEGIN IMMEDIATE`` transaction that reads the current revision, checks
  ``expected_revision``, inserts the revision row and moves the ``overlays`` pointer
  atomically across processes (a SIGKILL at any point leaves all of it or none of it);
- revision rows are only ever inserted (triggers refuse UPDATE and DELETE);
- ``revisions.seq`` (AUTOINCREMENT) numbers commits globally, because writers are
  serialised by the write lock; a watcher polls ``PRAGMA data_version`` (a few
  microseconds) every ``poll_interval`` and reads the rows past the last ``seq`` it saw.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from overlay_sdk import home as overlay_home
from overlay_sdk.diff import describe_change
from overlay_sdk.errors import (
    BackendError,
    ConflictError,
    NotFoundError,
    OverlayError,
    ValidationError,
)
from overlay_sdk.home import AUTHOR_ENV, default_author
from overlay_sdk.spec import AIOverlay, parse_overlay
from overlay_sdk.store import migrations
from overlay_sdk.store.base import (
    Action,
    Revision,
    WatchEvent,
    check_write_args,
    import_check,
    to_import,
)

__all__ = ["AUTHOR_ENV", "DB_FILENAME", "LocalStore", "default_author"]

DB_FILENAME = "overlays.db"

BUSY_TIMEOUT_S = 30.0
_MAX_INT = 2**63  # SQLite integers are signed 64-bit
WATCH_BATCH = 500

_COLUMNS = "seq, name, revision, action, document, author, created_at, message, changes"
_Row = tuple[int, str, int, str, str | None, str, str, str, str]


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise ValidationError.at(
            "name", f"an overlay name is a non-empty string such as 'sales-copilot', got {name!r}"
        )
    return name


_INHERITED: list[_Connection] = []


class _Connection:
    """Owns one sqlite3 connection of one thread; closes it when the thread's locals go.

    A forked child never uses or closes a connection inherited from its parent (SQLite
    handles must not cross ``fork``): it parks it in ``_INHERITED`` and opens its own.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.pid = os.getpid()

    def close(self) -> None:
        if self.pid == os.getpid():
            with contextlib.suppress(sqlite3.Error):
                self.conn.close()

    def __del__(self) -> None:
        self.close()


class LocalStore:
    """Overlays and their revisions in the SQLite file ``path`` (created if missing).

    Safe to share between threads (each thread gets its own connection) and to open
    from many processes at once. Call :meth:`close` when done; it also ends watchers.
    """

    def __init__(self, path: str | os.PathLike[str], *, poll_interval: float = 0.005) -> None:
        self.path = Path(path)
        self.poll_interval = poll_interval
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._closed = False
        try:
            conn = self._conn()
            with self._errors("open"):
                migrations.enable_wal(conn, where=self._where, timeout=BUSY_TIMEOUT_S)
                migrations.migrate(conn, where=self._where)
        except BaseException:
            self.close()
            raise

    @classmethod
    def in_home(cls, home: str | os.PathLike[str] | None = None) -> LocalStore:
        """The store in ``overlays.db`` of an overlay home (default: ``resolve_home()``)."""
        return cls(overlay_home.resolve_home(home) / DB_FILENAME)

    @property
    def _where(self) -> str:
        return f"overlay store {str(self.path)!r}"

    def __repr__(self) -> str:
        return f"LocalStore({str(self.path)!r})"

    def __enter__(self) -> LocalStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- connections ---------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._closed:
            raise BackendError(f"{self._where} is closed; open a new LocalStore")
        with self._errors("open"):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path,
                timeout=BUSY_TIMEOUT_S,
                isolation_level=None,
                check_same_thread=False,
            )
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
                conn.execute("PRAGMA synchronous = NORMAL")
            except BaseException:
                conn.close()
                raise
        return conn

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        holder = cast(_Connection | None, getattr(self._local, "holder", None))
        if holder is not None and holder.pid != os.getpid():
            _INHERITED.append(holder)  # forked: keep the parent's handle alive, untouched
            holder = None
        if holder is None:
            holder = _Connection(self._connect())
            with self._lock:
                if self._closed:
                    holder.close()
                    raise BackendError(f"{self._where} is closed; open a new LocalStore")
                self._open.add(holder)
            self._local.holder = holder
        elif self._closed:
            raise BackendError(f"{self._where} is closed; open a new LocalStore")
        return holder.conn

    def close(self) -> None:
        """Close every connection this store opened; running watchers stop at their next poll.

        Calls still running in other threads at that moment fail with BackendError.
        """
        with self._lock:
            self._closed = True
            holders = builtins.list(self._open)
            self._open.clear()
        for holder in holders:
            holder.close()

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Turn sqlite3 failures into BackendError naming the file and what to check."""
        try:
            yield
        except OverlayError:
            raise
        except sqlite3.Error as err:
            if isinstance(err, sqlite3.IntegrityError):
                hint = "the file breaks the store's rules: was it edited by another program?"
            elif "locked" in str(err) or "busy" in str(err):
                hint = "another process held the write lock too long; retry"
            else:
                hint = "check that the file exists, is a SQLite database and the disk is writable"
            raise BackendError(f"{self._where}: {doing} failed: {err}; {hint}") from err
        except OSError as err:
            raise BackendError(
                f"{self._where}: {doing} failed: {err}; check the folder exists and is writable"
            ) from err

    @contextlib.contextmanager
    def _write(self, doing: str) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back otherwise."""
        conn = self._conn()
        with self._errors(doing):
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    # -- rows ----------------------------------------------------------------------------

    def _revision(self, row: _Row) -> Revision:
        seq, name, number, action, document, author, created_at, message, changes = row
        overlay: AIOverlay | None = None
        if document is not None:
            try:
                overlay = parse_overlay(json.loads(document))
            except (ValueError, ValidationError) as err:
                raise BackendError(
                    f"{self._where}: revision {number} of overlay {name!r} (seq {seq}) does not "
                    f"read as an AIOverlay: {err}; was it written by another overlay-sdk version?"
                ) from err
        return Revision(
            name=name,
            revision=number,
            action=cast(Action, action),
            overlay=overlay,
            author=author,
            created_at=datetime.fromisoformat(created_at),
            message=message,
            changes=changes,
        )

    def _rows(self, sql: str, params: tuple[Any, ...]) -> builtins.list[_Row]:
        with self._errors("read"):
            return cast(builtins.list[_Row], self._conn().execute(sql, params).fetchall())

    def _select(self, where: str, params: tuple[Any, ...]) -> builtins.list[_Row]:
        return self._rows(f"SELECT {_COLUMNS} FROM revisions {where}", params)

    def _current(self, name: str | None) -> builtins.list[_Row]:
        """Current revisions of live overlays (all, or the one called ``name``)."""
        cols = ", ".join(f"r.{c}" for c in _COLUMNS.split(", "))
        only = "" if name is None else "AND o.name = ?"
        return self._rows(
            f"SELECT {cols} FROM overlays o JOIN revisions r ON r.seq = o.seq "
            f"WHERE o.deleted = 0 {only} ORDER BY o.name",
            () if name is None else (name,),
        )

    # -- reads ---------------------------------------------------------------------------

    def get(self, name: str) -> Revision:
        """The current revision of a live overlay; NotFoundError if absent or deleted."""
        rows = self._current(_check_name(name))
        if not rows:
            raise NotFoundError(
                f"overlay {name!r} does not exist{self._deleted_note(name)}; "
                "list the overlays that exist, or create it"
            )
        return self._revision(rows[0])

    def list(self) -> builtins.list[Revision]:
        """Current revisions of all live overlays, sorted by name."""
        return [self._revision(row) for row in self._current(None)]

    def names(self) -> builtins.list[str]:
        """Every overlay with a history, deleted ones included, sorted."""
        return [str(row[0]) for row in self._rows("SELECT name FROM overlays ORDER BY name", ())]

    def history(self, name: str) -> builtins.list[Revision]:
        """Every revision of ``name``, oldest first, tombstones included."""
        rows = self._select("WHERE name = ? ORDER BY revision", (_check_name(name),))
        if not rows:
            raise NotFoundError(f"overlay {name!r} has no history: it was never created")
        return [self._revision(row) for row in rows]

    def revision(self, name: str, number: int) -> Revision:
        """Revision ``number`` of ``name``; NotFoundError if it does not exist."""
        if isinstance(number, bool) or not isinstance(number, int) or not 0 < number < _MAX_INT:
            raise ValidationError.at(
                "number", f"a revision number is a positive int such as 3, got {number!r}"
            )
        rows = self._select("WHERE name = ? AND revision = ?", (_check_name(name), number))
        if not rows:
            latest = self._pointer(self._conn(), name)
            known = f"its revisions are 1..{latest[0]}" if latest else "it was never created"
            raise NotFoundError(
                f"overlay {name!r} has no revision {number}: {known}; see its history"
            )
        return self._revision(rows[0])

    def _deleted_note(self, name: str) -> str:
        pointer = self._pointer(self._conn(), name)
        return f" (deleted at revision {pointer[0]})" if pointer else ""

    def _pointer(self, conn: sqlite3.Connection, name: str) -> tuple[int, int, bool] | None:
        """(latest revision number, its seq, deleted) of ``name``, or None if never written."""
        with self._errors("read"):
            row = conn.execute(
                "SELECT revision, seq, deleted FROM overlays WHERE name = ?", (name,)
            ).fetchone()
        return None if row is None else (int(row[0]), int(row[1]), bool(row[2]))

    # -- writes --------------------------------------------------------------------------

    def apply(
        self,
        overlay: AIOverlay,
        *,
        expected_revision: int | None = None,
        author: str | None = None,
        message: str = "",
    ) -> Revision:
        """Write ``overlay`` as the next revision of ``overlay.name`` and return it.

        ConflictError (nothing written) when ``expected_revision`` is not None and differs
        from the current live revision (0 meaning "does not exist or was deleted").
        """
        if not isinstance(overlay, AIOverlay):
            raise ValidationError.at(
                "overlay", f"expected an AIOverlay, got {type(overlay).__name__}; "
                "build one with overlay_sdk.spec.parse_overlay"
            )
        if overlay.metadata.namespace is not None:
            raise ValidationError.at(
                "metadata.namespace", "the embedded store has no namespaces; remove "
                "metadata.namespace (it is used by the Kubernetes backend)"
            )
        return self._commit(overlay.name, overlay, expected_revision, author, message)

    def delete(
        self,
        name: str,
        *,
        expected_revision: int | None = None,
        author: str | None = None,
        message: str = "",
    ) -> Revision:
        """Write a tombstone revision; NotFoundError if absent or already deleted."""
        return self._commit(_check_name(name), None, expected_revision, author, message)

    def _commit(
        self,
        name: str,
        overlay: AIOverlay | None,
        expected: int | None,
        author: str | None,
        message: str,
    ) -> Revision:
        check_write_args(expected, author, message)
        doc = None if overlay is None else overlay.to_dict()
        action: Action = "apply" if doc is not None else "delete"
        who = author or default_author()
        with self._write(f"{action} of overlay {name!r}") as conn:
            pointer = self._pointer(conn, name)
            latest = pointer[0] if pointer else 0
            live = pointer is not None and not pointer[2]
            current = latest if live else 0
            if doc is None and not live:
                note = f" (deleted at revision {latest})" if pointer else ""
                raise NotFoundError(f"overlay {name!r} does not exist{note}; nothing to delete")
            if expected is not None and expected != current:
                raise self._conflict(name, expected, current, latest)
            previous: dict[str, Any] | None = None
            if live and pointer is not None:
                row = conn.execute(
                    "SELECT document FROM revisions WHERE seq = ?", (pointer[1],)
                ).fetchone()
                previous = json.loads(row[0])
            number = latest + 1
            created_at = datetime.now(UTC)
            changes = describe_change(previous, doc)
            record = Revision(name, number, action, overlay, who, created_at, message, changes)
            self._insert(conn, record)
        return record

    @staticmethod
    def _insert(conn: sqlite3.Connection, rev: Revision) -> None:
        """Insert ``rev`` and move its overlay's pointer to it (inside a write)."""
        doc = None if rev.overlay is None else rev.overlay.to_dict()
        text = None if doc is None else json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
        cursor = conn.execute(
            "INSERT INTO revisions (name, revision, action, document, author, created_at, "
            "message, changes) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (rev.name, rev.revision, rev.action, text, rev.author,
             rev.created_at.astimezone(UTC).isoformat(), rev.message, rev.changes),
        )
        conn.execute(
            "INSERT INTO overlays (name, revision, seq, deleted) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET revision = excluded.revision, "
            "seq = excluded.seq, deleted = excluded.deleted",
            (rev.name, rev.revision, cursor.lastrowid, int(doc is None)),
        )

    def import_revision(self, revision: Revision) -> bool:
        """Write ``revision`` as it is (number, author, time, message, changes) after the last
        revision of its overlay; False when the store holds this exact revision already.
        ConflictError for a gap or a different revision under that number (nothing written);
        see :func:`~overlay_sdk.store.base.import_check`."""
        revision = to_import(revision)
        if revision.overlay is not None and revision.overlay.metadata.namespace is not None:
            raise ValidationError.at(
                "revision.overlay.metadata.namespace", "the embedded store has no namespaces; "
                "copy the overlay without metadata.namespace"
            )
        name = _check_name(revision.name)
        with self._write(f"import of revision {revision.revision} of overlay {name!r}") as conn:
            pointer = self._pointer(conn, name)
            rows = conn.execute(f"SELECT {_COLUMNS} FROM revisions WHERE name = ? AND "
                                "revision = ?", (name, revision.revision)).fetchall()
            existing = self._revision(rows[0]) if rows else None
            if not import_check(revision, latest=pointer[0] if pointer else 0,
                                live=pointer is not None and not pointer[2],
                                existing=existing):
                return False
            self._insert(conn, revision)
        return True

    @staticmethod
    def _conflict(name: str, expected: int, current: int, latest: int) -> ConflictError:
        if expected == 0:
            head = (
                f"overlay {name!r} already exists: expected revision 0 (must not exist), "
                f"current revision {current}"
            )
        elif current == 0:
            gone = f"was deleted at revision {latest}" if latest else "does not exist"
            head = f"overlay {name!r} {gone}: expected revision {expected}, current revision none"
        else:
            head = (
                f"overlay {name!r} changed since it was read: expected revision {expected}, "
                f"current revision {current}"
            )
        return ConflictError(
            f"{head}; re-read it and retry the change",
            expected=expected,
            current=current or None,
        )

    # -- watch ---------------------------------------------------------------------------

    def watch(
        self, *, since: int | None = None, timeout: float | None = None
    ) -> Iterator[WatchEvent]:
        """Yield every revision committed after sequence ``since``, in commit order.

        ``since=None`` starts from the moment of this call (not of the first ``next``);
        ``since=0`` replays all history. Stops after ``timeout`` seconds without a new event
        (None: never), or within ``poll_interval`` of :meth:`close`. The iterator opens its
        own connection on the first ``next`` and closes it when it ends or is closed.
        """
        if since is not None and (isinstance(since, bool) or not isinstance(since, int)
                                  or not 0 <= since < _MAX_INT):
            raise ValidationError.at(
                "since", f"give a sequence number >= 0 (0 replays everything) or None, "
                f"got {since!r}"
            )
        if timeout is not None and (isinstance(timeout, bool)
                                    or not isinstance(timeout, int | float) or timeout < 0):
            raise ValidationError.at(
                "timeout", f"give seconds >= 0, or None to wait for ever, got {timeout!r}"
            )
        if since is None:
            conn = self._conn()
            with self._errors("watch"):
                row = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM revisions").fetchone()
            since = int(row[0])
        return self._follow(since, timeout)

    def _follow(self, last: int, timeout: float | None) -> Iterator[WatchEvent]:
        conn = self._connect()
        try:
            seen_version: int | None = None
            deadline = None if timeout is None else time.monotonic() + timeout
            while not self._closed:
                with self._errors("watch"):
                    version = int(conn.execute("PRAGMA data_version").fetchone()[0])
                    rows: builtins.list[_Row] = []
                    if version != seen_version:
                        seen_version = version
                        rows = conn.execute(
                            f"SELECT {_COLUMNS} FROM revisions WHERE seq > ? ORDER BY seq LIMIT ?",
                            (last, WATCH_BATCH),
                        ).fetchall()
                        if len(rows) == WATCH_BATCH:
                            seen_version = None  # more to read: look again without sleeping
                for row in rows:
                    last = row[0]
                    yield WatchEvent(seq=last, revision=self._revision(row))
                if rows:
                    deadline = None if timeout is None else time.monotonic() + timeout
                    continue
                if deadline is not None and time.monotonic() >= deadline:
                    return
                time.sleep(self.poll_interval)
        finally:
            conn.close()
