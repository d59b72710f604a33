"""PostgreSQL telemetry: the same traffic gives the same DataFrames as on SQLite.

The tests in ``test_telemetry.py`` run on both stores; these compare the two directly
(``metrics()`` for every ``by``, ``read_calls`` with and without payloads), and check what
only a server database does: URLs without a driver name, dropped connections, and
passwords kept out of error messages.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from overlay_sdk.errors import BackendError
from overlay_sdk.observe import overlay_metrics
from overlay_sdk.telemetry import CallRecord, TelemetryWriter, read_calls
from tests.postgres_support import PostgresServer

START = datetime(2026, 3, 1, 22, 50, tzinfo=UTC)
NOW = START + timedelta(days=3)
STATUSES = ("ok", "ok", "ok", "ok", "error", "timeout", "rejected", "invalid")


def traffic(n: int = 600, seed: int = 11) -> list[CallRecord]:
    """Calls of two overlays over three days (so every bucket size has several buckets):
    three versions of two models, primary and shadow, every status, latencies with many
    digits, tokens and host answers on some, times given in several zones."""
    rng = random.Random(seed)
    zones = (UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30)))
    calls = []
    for _ in range(n):
        status = rng.choice(STATUSES)
        host = rng.random() < 0.2
        moment = START + timedelta(seconds=rng.uniform(0, 3 * 86_400))
        calls.append(CallRecord(
            overlay=rng.choice(("scoring", "scoring", "copilot")),
            revision=rng.choice((1, 2, 3)),
            model=rng.choice(("fraud", "chat")), version=rng.choice(("1", "2", "10")),
            role="shadow" if rng.random() < 0.3 else "primary",
            latency_ms=rng.lognormvariate(2, 1), status=status,  # type: ignore[arg-type]
            error=None if status == "ok" else f"{status}: upstream said {rng.random()}",
            trace_id=f"{rng.getrandbits(128):032x}",
            tokens_in=rng.randint(1, 5000) if rng.random() < 0.5 else None,
            tokens_out=rng.randint(1, 500) if rng.random() < 0.5 else None,
            inputs={"amount": round(rng.uniform(0, 1e4), 2), "country": rng.choice("ABC")}
            if rng.random() < 0.7 else None,
            output={"score": rng.random()} if rng.random() < 0.7 else None,
            source="host" if host else "invoke", host_status=200 if host else None,
            host_output={"decision": rng.choice(("approve", "deny"))} if host else None,
            time=moment.astimezone(rng.choice(zones)),
        ))
    return calls


def write(url: str, calls: list[CallRecord]) -> None:
    writer = TelemetryWriter(url, sample_rate=0.8, seed=3, batch_size=97)
    for call in calls:
        assert writer.submit(call)
    writer.flush()
    writer.close()
    assert writer.written == len(calls) and writer.dropped == 0


@dataclass(frozen=True)
class Stores:
    sqlite: str
    postgresql: str


@pytest.fixture(scope="module")
def stores(postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Stores]:
    """One SQLite and one PostgreSQL store holding the same :func:`traffic`."""
    calls = traffic()
    name = postgres.create_database()
    both = Stores(f"sqlite:///{tmp_path_factory.mktemp('same') / 'telemetry.db'}",
                  postgres.url(name))
    write(both.sqlite, calls)
    write(both.postgresql, calls)
    yield both
    postgres.drop_database(name)


@pytest.mark.parametrize("by", ["version", "minute", "hour", "day", None])
@pytest.mark.parametrize(("overlay", "since", "first_revision"), [
    ("scoring", None, 1), ("copilot", "a day ago", 1), ("scoring", "2 days ago", 2)])
def test_metrics_are_identical_on_sqlite_and_postgresql(
        stores: Stores, by: str | None, overlay: str, since: str | None,
        first_revision: int) -> None:
    frames = [overlay_metrics(url, overlay, by=by, since=since, now=NOW,
                              first_revision=first_revision)
              for url in (stores.sqlite, stores.postgresql)]
    assert len(frames[0]) > 1
    pd.testing.assert_frame_equal(frames[0], frames[1], check_dtype=True, check_exact=True)


@pytest.mark.parametrize("payloads", [True, False])
def test_read_calls_is_identical_on_sqlite_and_postgresql(stores: Stores, payloads: bool
                                                          ) -> None:
    sqlite, postgresql = (read_calls(url, payloads=payloads)
                          for url in (stores.sqlite, stores.postgresql))
    assert len(sqlite) == 600 and str(sqlite["time"].dt.tz) == "UTC"
    pd.testing.assert_frame_equal(sqlite, postgresql, check_dtype=True, check_exact=True)
    since = START + timedelta(days=1)
    pd.testing.assert_frame_equal(
        read_calls(stores.sqlite, overlay="copilot", since=since, payloads=payloads),
        read_calls(stores.postgresql, overlay="copilot", since=since, payloads=payloads),
        check_dtype=True, check_exact=True)


def test_empty_stores_read_alike(postgres_url: str, tmp_path: Path) -> None:
    sqlite = f"sqlite:///{tmp_path / 'telemetry.db'}"
    for payloads in (True, False):
        pd.testing.assert_frame_equal(read_calls(sqlite, payloads=payloads),
                                      read_calls(postgres_url, payloads=payloads))
    for by in ("version", "hour", None):
        pd.testing.assert_frame_equal(overlay_metrics(sqlite, "none", by=by),
                                      overlay_metrics(postgres_url, "none", by=by))


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_a_postgresql_url_needs_no_driver_name(postgres_url: str, scheme: str) -> None:
    plain = postgres_url.replace("postgresql+psycopg://", f"{scheme}://")
    write(plain, traffic(5))
    assert len(read_calls(plain)) == len(read_calls(postgres_url)) == 5


def test_a_dropped_connection_costs_no_records(postgres: PostgresServer,
                                               postgres_url: str) -> None:
    """The server ends the writer's pooled connection (a restart, a failover): the next
    batch gets a fresh one instead of being lost."""
    writer = TelemetryWriter(postgres_url)
    calls = traffic(20)
    for call in calls[:10]:
        writer.submit(call)
    writer.flush()
    database = sa.make_url(postgres_url).database
    admin = sa.create_engine(postgres.url())
    with admin.connect() as conn:
        ended = conn.execute(sa.text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = :db AND pid <> pg_backend_pid()"), {"db": database}).scalar()
    admin.dispose()
    assert ended == 1
    for call in calls[10:]:
        writer.submit(call)
    writer.flush()
    writer.close()
    assert writer.dropped == 0 and len(read_calls(postgres_url)) == 20


@pytest.mark.parametrize("url", [
    "postgresql://ana:s3cret-pw@127.0.0.1:1/telemetry",
    "postgresql+psycopg://ana:s3cret-pw@127.0.0.1:1/telemetry?connect_timeout=2",
    "postgresql+nosuchdriver://ana:s3cret-pw@127.0.0.1:1/telemetry",
    "postgresql+psycopg2://ana:s3cret-pw@127.0.0.1:1/telemetry",
])
def test_a_password_in_the_url_never_reaches_the_error(url: str) -> None:
    for attempt in (lambda: TelemetryWriter(url), lambda: read_calls(url)):
        with pytest.raises(BackendError) as caught:
            attempt()
        message = str(caught.value)
        assert "s3cret-pw" not in message and "ana:***@127.0.0.1" in message
        assert "check the URL" in message or "install the driver" in message
