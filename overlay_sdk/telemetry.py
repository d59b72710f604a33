"""Telemetry of model calls: one record per call, written off the hot path, read as DataFrames.

The gateway calls :meth:`TelemetryWriter.submit` for every model call (primary or
shadow); ``submit`` never blocks: it samples, redacts and puts the record on a bounded
queue, counting what it drops when the queue is full. A background thread writes the
queue in batches through SQLAlchemy Core, so a ``sqlite:///<home>/telemetry.db`` URL
works on one machine and a PostgreSQL URL (``postgresql://user:password@host/db``, read
with the psycopg 3 driver installed with the SDK) on a shared database.
:func:`read_calls` returns the records as a DataFrame, with sampled inputs as one column
per named feature (``input.<feature>``); :func:`purge` applies the retention.

Both stores keep and give back the same thing for the same calls: times are stored in
UTC (a naive time is taken as UTC) and read back as UTC, and a value a column cannot hold
as it is (text longer than the column, a NUL character, an integer past 32 bits) is fitted
before it is queued, so PostgreSQL never refuses a batch that SQLite would accept.
"""

from __future__ import annotations

import collections
import json
import logging
import random
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pandas as pd
import sqlalchemy as sa

from overlay_sdk.errors import BackendError, ValidationError
from overlay_sdk.registry_redact import redact

__all__ = [
    "REDACTED",
    "TIMING_COLUMNS",
    "CallRecord",
    "TelemetryWriter",
    "calls_table",
    "iter_calls",
    "open_store",
    "purge",
    "read_calls",
]

REDACTED = "***"
_log = logging.getLogger("overlay_sdk.telemetry")
Role = Literal["primary", "shadow"]
Status = Literal["ok", "error", "timeout", "rejected", "invalid", "aborted"]
Source = Literal["invoke", "host"]

_METADATA = sa.MetaData()
calls_table = sa.Table(
    "model_calls",
    _METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("time", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("overlay", sa.String(63), nullable=False, index=True),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("version", sa.String(16), nullable=False),
    sa.Column("role", sa.String(8), nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("trace_id", sa.String(32)),
    sa.Column("tokens_in", sa.Integer),
    sa.Column("tokens_out", sa.Integer),
    sa.Column("cost_nusd", sa.BigInteger),  # whole nano-dollars (analytics.cost)
    sa.Column("inputs", sa.Text),
    sa.Column("output", sa.Text),
    sa.Column("source", sa.String(8), nullable=False, server_default="invoke"),
    sa.Column("host_status", sa.Integer),
    sa.Column("host_output", sa.Text),
)
_LIMITS: dict[str, int | None] = {
    name: getattr(calls_table.c[name].type, "length", None)
    for name in ("overlay", "model", "version", "role", "status", "error", "trace_id", "source")
}
"""The free-text columns of a record, and how many characters each holds (None: any)."""


@dataclass(frozen=True)
class CallRecord:
    """One model call as the gateway saw it. ``inputs`` maps feature name -> value.

    ``source`` is ``invoke`` for a call on the invoke endpoint and ``host`` for a host
    request forked to the model in shadow mode, where ``host_status`` and ``host_output``
    keep the host's own answer beside the model's ``output``.
    """

    overlay: str
    revision: int
    model: str
    version: str
    role: Role
    latency_ms: float
    status: Status = "ok"
    error: str | None = None
    trace_id: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_nusd: int | None = None
    inputs: Mapping[str, Any] | None = None
    output: Any = None
    source: Source = "invoke"
    host_status: int | None = None
    host_output: Any = None
    time: datetime = field(default_factory=lambda: datetime.now(UTC))


def _redacted(value: Any, fields: frozenset[str]) -> Any:
    """``value`` with every mapping entry whose key is in ``fields`` (lower case) replaced by
    ``***``, at any depth (inputs, model outputs and the host's answer alike)."""
    if not fields or value is None:
        return value
    if isinstance(value, Mapping):
        return {k: (REDACTED if str(k).lower() in fields else _redacted(v, fields))
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(v, fields) for v in value]
    return value


def _json(value: Any, keep: bool) -> str | None:
    return json.dumps(value, default=str) if keep and value is not None else None


def _utc(moment: datetime) -> datetime:
    """``moment`` in UTC (a naive one is taken as UTC). SQLite stores the wall time and
    drops the offset, PostgreSQL stores the instant: only UTC means the same in both."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


_INT32 = 2**31 - 1


def _text(value: str | None, limit: int | None = None) -> str | None:
    """``value`` as both stores can hold it: NUL (refused by PostgreSQL) and lone
    surrogates (refused by every UTF-8 driver) written as escapes, cut to the column's
    ``limit`` (PostgreSQL refuses longer text; SQLite would keep it)."""
    if value is None:
        return None
    if type(value) is str and value.isascii() and "\x00" not in value and (
            limit is None or len(value) <= limit):
        return value  # the common case, as it is
    text = str(value).replace("\x00", "\\x00")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text[:limit] if limit is not None else text


def _int32(value: int | None) -> int | None:
    """A count both stores hold (an INTEGER column is 32 bits on PostgreSQL); None past it."""
    return value if value is None or -_INT32 - 1 <= value <= _INT32 else None


def _int64(value: int | None) -> int | None:
    return value if value is None or -(2**63) <= value < 2**63 else None


def _row(record: CallRecord, fields: frozenset[str], keep_payload: bool) -> dict[str, Any]:
    inputs = _redacted(record.inputs, fields) if keep_payload else None
    output = _redacted(record.output, fields) if keep_payload else None
    host_output = _redacted(record.host_output, fields) if keep_payload else None
    texts = {name: _text(getattr(record, name), _LIMITS[name]) for name in _LIMITS}
    return {
        **texts, "time": _utc(record.time), "revision": record.revision,
        "latency_ms": float(record.latency_ms),
        "tokens_in": _int32(record.tokens_in), "tokens_out": _int32(record.tokens_out),
        "cost_nusd": _int64(record.cost_nusd),
        "inputs": _json(inputs, True),
        "output": _json(output, keep_payload),
        "host_status": _int32(record.host_status),
        "host_output": _json(host_output, keep_payload),
    }


def _wal(dbapi_connection: Any, _: Any) -> None:
    """SQLite in WAL mode: notebooks read call records while the gateway writes them."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA busy_timeout=10000")  # first: it covers the switch to WAL
        for attempt in range(50):
            try:
                cursor.execute("PRAGMA journal_mode=WAL")
                break
            except Exception as err:  # (sqlite3.OperationalError) a new file being switched
                # to WAL by another opener at the same moment answers "locked" at once,
                # without waiting for the busy timeout: wait and try again
                if "locked" not in str(err) or attempt == 49:
                    raise
                time.sleep(0.02 * (attempt + 1))
    finally:
        cursor.close()


_DRIVERS = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg"}
"""URL schemes that name no driver, and the driver installed with the SDK for them."""
_CONNECT_TIMEOUT_S = 10


def _store_url(url: str) -> sa.URL:
    """``url`` with a driver: ``postgresql://`` (and Heroku-style ``postgres://``) read as
    ``postgresql+psycopg://``, so users need not know the driver's name (SQLAlchemy before
    2.1 would look for psycopg2, which the SDK does not install; ``postgres://`` it refuses)."""
    parsed = sa.make_url(url)
    driver = _DRIVERS.get(parsed.drivername)
    return parsed.set(drivername=driver) if driver else parsed


def _options(url: sa.URL) -> dict[str, Any]:
    """Server databases: a connection the server dropped (a restart, a failover) is
    replaced before a batch uses it, rather than costing the batch; an unreachable
    PostgreSQL fails in seconds, not after the system's TCP timeout (minutes of a stalled
    gateway start). A ``connect_timeout`` in the URL wins."""
    backend = url.get_backend_name()
    if backend == "sqlite":
        return {}
    if backend != "postgresql" or "connect_timeout" in url.query:
        return {"pool_pre_ping": True}
    return {"pool_pre_ping": True, "connect_args": {"connect_timeout": _CONNECT_TIMEOUT_S}}


def _create_schema(engine: sa.Engine) -> None:
    """Create the table when missing. Two processes opening a new store at once (a gateway
    and a notebook) both find it missing and both create it: the one that loses finds it
    made, and goes on."""
    with engine.connect() as conn:  # an unreachable store fails here, once
        try:
            _METADATA.create_all(conn)
            conn.commit()
        except sa.exc.DatabaseError:
            conn.rollback()
            if not sa.inspect(conn).has_table(calls_table.name):
                raise
        _add_columns(conn)


def _add_columns(conn: sa.Connection) -> None:
    """Columns added since a store was made (``cost_nusd``) are added to it, empty: a
    store written by an earlier version keeps its records and gains the column."""
    have = {c["name"] for c in sa.inspect(conn).get_columns(calls_table.name)}
    for column in calls_table.columns:
        if column.name in have:
            continue
        kind = column.type.compile(dialect=conn.dialect)
        try:
            conn.execute(sa.text(f'ALTER TABLE {calls_table.name} ADD COLUMN '
                                 f'"{column.name}" {kind}'))
            conn.commit()
        except sa.exc.DatabaseError:  # another process added it first
            conn.rollback()


def _failed(url: str, err: Exception) -> BackendError:
    """The error for a store that cannot be opened; passwords in the URL or in the
    driver's text are masked."""
    return BackendError(redact(f"telemetry store at {url} failed: {err}; check the URL and "
                               "that the database is reachable"))


def _engine(url: str) -> sa.Engine:
    """An engine on the store at ``url`` (a SQLAlchemy URL; ``postgresql://`` means psycopg
    3), with the table created when missing."""
    try:
        parsed = _store_url(url)
        engine = sa.create_engine(parsed, **_options(parsed))
    except sa.exc.SQLAlchemyError as err:
        raise _failed(url, err) from None
    except ImportError as err:
        raise BackendError(redact(
            f"telemetry store at {url}: its database driver is not installed ({err}); "
            "write postgresql://... for PostgreSQL (psycopg 3 comes with the SDK) or "
            "install the driver the URL names")) from None
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _wal)
    try:
        _create_schema(engine)
    except sa.exc.SQLAlchemyError as err:
        engine.dispose()
        raise _failed(url, err) from None
    return engine


def open_store(url: str) -> sa.Engine:
    """An engine on the telemetry store at ``url`` (the call table made when missing), for
    what is kept beside the calls (alerts); the caller disposes of it."""
    return _engine(url)


_POLL_S = 0.02  # how often the writer looks for records when it has none
_INSERT_COLUMNS = tuple(c.name for c in calls_table.columns if c.name != "id")
_SQLITE_INSERT = (f"INSERT INTO {calls_table.name} ({', '.join(_INSERT_COLUMNS)}) "
                  f"VALUES ({', '.join('?' for _ in _INSERT_COLUMNS)})")
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's SQLite DATETIME text (UTC wall time)


class TelemetryWriter:
    """Batched, bounded, non-blocking writer of :class:`CallRecord` s.

    ``url`` is a SQLAlchemy URL: ``sqlite:///path/telemetry.db``, or
    ``postgresql://user:password@host:5432/db`` (psycopg 3, installed with the SDK; writing
    ``postgresql+psycopg://`` is the same). The table is created when missing.
    ``sample_rate`` (0-1) is the share of calls whose inputs and output are kept (every
    call's timing and status are always kept); ``redact`` names input fields stored as
    ``***``; ``queue_size`` bounds memory: past it records are dropped and counted in
    :attr:`dropped`, never waited for.
    """

    def __init__(
        self, url: str, *, sample_rate: float = 1.0, redact: Iterable[str] = (),
        batch_size: int = 500, flush_interval: float = 0.2, queue_size: int = 10_000,
        seed: int | None = None,
    ) -> None:
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | float) or not (
                0 <= sample_rate <= 1):
            raise ValidationError.at("sample_rate", f"give a share 0-1, got {sample_rate!r}")
        if batch_size < 1 or queue_size < 1 or flush_interval <= 0:
            raise ValidationError.at("batch_size", "batch_size, queue_size and flush_interval "
                                     "must be positive")
        self.engine = _engine(url)
        self.sample_rate = float(sample_rate)
        self.redact = frozenset(f.lower() for f in redact)
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self._dropped_full = 0  # counted by submitters
        self._dropped_failed = 0  # counted by the writer thread
        self.written = 0
        self._queued = 0  # records put on the queue (submitters only)
        self.queue_size = queue_size
        # (record, keep payload, redacted fields): appending to a deque takes no lock, and
        # the row is built on the writer thread, off the gateway's event loop
        self._queue: collections.deque[tuple[CallRecord, bool, frozenset[str]]] = (
            collections.deque())
        self._random = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="overlay-telemetry", daemon=True)
        self._thread.start()

    def submit(self, record: CallRecord, *, sample_rate: float | None = None,
               redact: frozenset[str] | None = None) -> bool:
        """Queue ``record`` without blocking; False (and counted) when the queue is full.

        ``sample_rate`` and ``redact`` (lower-case names) override the writer's defaults
        for this record (the gateway passes each overlay's ``spec.telemetry``)."""
        rate = self.sample_rate if sample_rate is None else sample_rate
        keep = rate >= 1 or self._random.random() < rate
        if len(self._queue) >= self.queue_size:
            self._dropped_full += 1
            return False
        self._queue.append((record, keep, self.redact if redact is None else redact))
        self._queued += 1
        return True

    @property
    def dropped(self) -> int:
        """Records lost: the queue was full, or the database refused a batch."""
        return self._dropped_full + self._dropped_failed

    def _take_batch(self) -> list[dict[str, Any]]:
        """Up to ``batch_size`` queued records as rows; waits up to ``flush_interval`` for
        the first (in steps, so that a flush or a stop is seen soon)."""
        waited = 0.0
        while not self._queue and waited < self.flush_interval and not self._stop.is_set():
            time.sleep(_POLL_S)
            waited += _POLL_S
        batch: list[dict[str, Any]] = []
        try:
            while len(batch) < self.batch_size:
                record, keep, fields = self._queue.popleft()
                try:
                    batch.append(_row(record, fields, keep))
                except Exception as err:  # a record that cannot be stored: count it
                    self._dropped_failed += 1
                    _log.warning("telemetry: a call record could not be stored: %s", err)
        except IndexError:
            pass
        return batch

    def _run(self) -> None:
        while not (self._stop.is_set() and not self._queue):
            batch = self._take_batch()
            if batch:
                try:
                    self._insert(batch)
                    self.written += len(batch)
                except Exception as err:  # never take the data plane (or this thread) down
                    self._dropped_failed += len(batch)
                    _log.warning("telemetry: %d call records lost, the store refused them: %s",
                                 len(batch), redact(str(err))[:500])

    def _insert(self, batch: list[dict[str, Any]]) -> None:
        """Write one batch. SQLite: straight through the driver's ``executemany`` (~7 us a
        record instead of ~15 us through SQLAlchemy's insert, measured: the writer thread
        competes with the gateway's event loop for the same GIL), with times in the text
        form SQLAlchemy gives them, so both read the same; other stores: SQLAlchemy."""
        if self.engine.dialect.name != "sqlite":
            with self.engine.begin() as conn:
                conn.execute(calls_table.insert(), batch)
            return
        rows = [tuple(row["time"].strftime(_SQLITE_TIME) if name == "time" else row[name]
                      for name in _INSERT_COLUMNS) for row in batch]
        raw = self.engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.executemany(_SQLITE_INSERT, rows)
            raw.commit()
        except BaseException:
            raw.rollback()
            raise
        finally:
            raw.close()

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything submitted so far is written (or ``timeout`` passes)."""
        deadline = time.monotonic() + timeout
        target = self._queued  # records handed to the writer before this call
        while self.written + self._dropped_failed < target:
            if time.monotonic() > deadline:
                raise BackendError(f"telemetry did not drain within {timeout} s "
                                   f"({len(self._queue)} records waiting)")
            time.sleep(_POLL_S)

    def close(self) -> None:
        """Write what is queued, then stop the writer thread."""
        self._stop.set()
        self._thread.join(timeout=30)
        self.engine.dispose()


TIMING_COLUMNS = ("time", "overlay", "revision", "model", "version", "role", "latency_ms",
                  "status", "source", "tokens_in", "tokens_out", "cost_nusd")
"""What ``read_calls(payloads=False)`` reads: timing, outcome and usage, no payloads."""


def read_calls(url: str, *, overlay: str | None = None, since: datetime | None = None,
               payloads: bool = True) -> pd.DataFrame:
    """Stored calls, oldest first; sampled inputs expanded to ``input.<feature>`` columns.
    ``payloads=False`` reads only :data:`TIMING_COLUMNS` (much less to read and parse)."""
    chunks = list(iter_calls(url, overlay=overlay, since=since, payloads=payloads,
                             chunk_rows=None))
    return chunks[0]


def iter_calls(url: str, *, overlay: str | None = None, since: datetime | None = None,
               payloads: bool = True, chunk_rows: int | None = 50_000
               ) -> Iterator[pd.DataFrame]:
    """:func:`read_calls` in frames of at most ``chunk_rows`` calls, oldest first (None: one
    frame), each read when the previous one was consumed: a long history is gone through
    in bounded memory. At least one frame comes, empty when nothing matches."""
    engine = _engine(url)
    columns = list(calls_table.columns) if payloads else [
        calls_table.c[name] for name in TIMING_COLUMNS]
    query = sa.select(*columns, calls_table.c.id.label("_id")).order_by(calls_table.c.id)
    if overlay is not None:
        query = query.where(calls_table.c.overlay == overlay)
    if since is not None:
        query = query.where(calls_table.c.time >= _utc(since))
    names = [c.name for c in columns]
    after: int | None = None
    first = True
    try:
        while True:
            page = query if after is None else query.where(calls_table.c.id > after)
            if chunk_rows is not None:
                page = page.limit(chunk_rows)
            with engine.connect() as conn:
                rows = conn.execute(page).mappings().all()
            if not rows and not first:
                return
            first = False
            frame = pd.DataFrame(rows, columns=[*names, "_id"])
            if len(rows):
                after = int(rows[-1]["_id"])
            yield _calls_frame(frame.drop(columns=["_id"]), payloads)
            if chunk_rows is None or len(rows) < chunk_rows:
                return
    finally:
        engine.dispose()


def _calls_frame(frame: pd.DataFrame, payloads: bool) -> pd.DataFrame:
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    if not payloads:
        return frame
    inputs = [json.loads(v) if isinstance(v, str) else {} for v in frame["inputs"]]
    features = pd.DataFrame(inputs, index=frame.index).add_prefix("input.")
    for column in ("output", "host_output"):
        frame[column] = [json.loads(v) if isinstance(v, str) else None for v in frame[column]]
    return pd.concat([frame.drop(columns=["inputs"]), features], axis=1)


def purge(url: str, *, older_than_days: float, overlay: str | None = None,
          now: datetime | None = None) -> int:
    """Delete calls (of ``overlay``, or of all) older than the retention; returns how many
    were deleted."""
    if isinstance(older_than_days, bool) or not isinstance(older_than_days, int | float) or (
            older_than_days <= 0):
        raise ValidationError.at("older_than_days", f"give a positive number of days, got "
                                 f"{older_than_days!r}")
    cutoff = _utc(now or datetime.now(UTC)) - timedelta(days=older_than_days)
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            query = calls_table.delete().where(calls_table.c.time < cutoff)
            if overlay is not None:
                query = query.where(calls_table.c.overlay == overlay)
            result = conn.execute(query)
            return int(result.rowcount or 0)
    finally:
        engine.dispose()
