"""Telemetry of model calls: batched, bounded, sampled, redacted, read back as DataFrames.

Every test takes ``telemetry_url`` and so runs on SQLite and on PostgreSQL (conftest)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from overlay_sdk.errors import BackendError, ValidationError
from overlay_sdk.telemetry import (
    REDACTED,
    CallRecord,
    TelemetryWriter,
    iter_calls,
    purge,
    read_calls,
)


def record(i: int, **kw: object) -> CallRecord:
    args: dict[str, object] = {
        "overlay": "scoring", "revision": 3, "model": "fraud", "version": "2",
        "role": "primary", "latency_ms": 1.5 + i, "inputs": {"amount": i, "ssn": f"123-{i}"},
        "output": {"score": i / 10}, "trace_id": f"{i:032x}",
    }
    args.update(kw)
    return CallRecord(**args)  # type: ignore[arg-type]


def test_records_round_trip_with_features_as_columns_and_redaction(telemetry_url: str) -> None:
    writer = TelemetryWriter(telemetry_url, redact=["SSN"])
    for i in range(250):
        assert writer.submit(record(i, role="shadow" if i % 5 == 0 else "primary"))
    writer.flush()
    writer.close()
    frame = read_calls(telemetry_url, overlay="scoring")
    assert len(frame) == 250 and writer.written == 250 and writer.dropped == 0
    assert list(frame["input.amount"][:3]) == [0, 1, 2]
    assert set(frame["input.ssn"]) == {REDACTED}
    assert frame["output"][4] == {"score": 0.4}
    assert (frame["role"] == "shadow").sum() == 50
    assert str(frame["time"].dt.tz) == "UTC"
    assert read_calls(telemetry_url, overlay="other").empty


def test_calls_read_in_chunks_are_the_calls_read_whole(telemetry_url: str) -> None:
    writer = TelemetryWriter(telemetry_url)
    for i in range(25):
        writer.submit(record(i, overlay="scoring" if i % 5 else "other"))
    writer.flush()
    writer.close()
    chunks = list(iter_calls(telemetry_url, overlay="scoring", chunk_rows=7))
    assert [len(c) for c in chunks] == [7, 7, 6]
    whole = read_calls(telemetry_url, overlay="scoring")
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), whole)
    empty = list(iter_calls(telemetry_url, overlay="nobody", chunk_rows=7))
    assert len(empty) == 1 and empty[0].empty and list(empty[0].columns) == list(
        read_calls(telemetry_url, overlay="nobody").columns)


def test_sampling_keeps_timing_of_every_call_but_payloads_of_a_share(telemetry_url: str) -> None:
    writer = TelemetryWriter(telemetry_url, sample_rate=0.2, seed=7)
    for i in range(2000):
        writer.submit(record(i))
    writer.flush()
    writer.close()
    frame = read_calls(telemetry_url)
    assert len(frame) == 2000
    kept = frame["input.amount"].notna().mean()
    assert 0.17 < kept < 0.23


def test_a_full_queue_drops_and_counts_without_blocking(telemetry_url: str) -> None:
    writer = TelemetryWriter(telemetry_url, queue_size=10, flush_interval=5.0, batch_size=1)
    started = time.perf_counter()
    accepted = sum(writer.submit(record(i)) for i in range(5000))
    assert time.perf_counter() - started < 1.0  # never waits for the database
    assert writer.dropped == 5000 - accepted and writer.dropped > 4000
    writer.close()
    assert len(read_calls(telemetry_url)) == accepted


def test_retention_purges_old_calls(telemetry_url: str) -> None:
    now = datetime(2026, 1, 10, tzinfo=UTC)
    writer = TelemetryWriter(telemetry_url)
    for days in (1, 5, 40):
        writer.submit(record(days, time=now - timedelta(days=days)))
    writer.flush()
    writer.close()
    assert purge(telemetry_url, older_than_days=30, now=now) == 1
    assert len(read_calls(telemetry_url, since=now - timedelta(days=2))) == 1
    with pytest.raises(ValidationError):
        purge(telemetry_url, older_than_days=0)


@pytest.mark.parametrize("kwargs", [{"sample_rate": 2}, {"sample_rate": True}, {"batch_size": 0}])
def test_bad_settings_are_refused(telemetry_url: str, kwargs: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        TelemetryWriter(telemetry_url, **kwargs)  # type: ignore[arg-type]


def test_redaction_reaches_outputs_and_the_host_answer_at_any_depth(telemetry_url: str) -> None:
    writer = TelemetryWriter(telemetry_url)
    writer.submit(record(1, output=[{"label": 1, "Email": "ada@example.com"}],
                         source="host", host_status=200,
                         host_output={"customer": {"email": "ada@example.com", "id": 7}}),
                  redact=frozenset({"email", "ssn"}))
    writer.flush()
    writer.close()
    row = read_calls(telemetry_url).iloc[0]
    assert row["output"] == [{"label": 1, "Email": REDACTED}]
    assert row["host_output"] == {"customer": {"email": REDACTED, "id": 7}}
    assert row["input.ssn"] == REDACTED and row["input.amount"] == 1
    assert row["source"] == "host" and row["host_status"] == 200


def test_flush_waits_for_records_submitted_just_before(telemetry_url: str) -> None:
    writer = TelemetryWriter(telemetry_url, flush_interval=0.01)
    for i in range(200):
        writer.submit(record(i))
        if i % 20 == 0:
            writer.flush(timeout=5)
            assert len(read_calls(telemetry_url)) == i + 1
    writer.close()


def test_times_are_kept_as_instants_whatever_their_zone(telemetry_url: str) -> None:
    """SQLite keeps a wall time without its offset, so times are stored in UTC (a naive
    one taken as UTC); ``since`` and the retention compare instants too."""
    plus2 = timezone(timedelta(hours=2))
    writer = TelemetryWriter(telemetry_url)
    writer.submit(record(1, time=datetime(2026, 1, 10, 12, tzinfo=plus2)))  # 10:00 UTC
    writer.submit(record(2, time=datetime(2026, 1, 10, 11)))  # naive: 11:00 UTC
    writer.flush()
    writer.close()
    assert list(read_calls(telemetry_url)["time"]) == [
        pd.Timestamp("2026-01-10 10:00", tz="UTC"), pd.Timestamp("2026-01-10 11:00", tz="UTC")]
    assert len(read_calls(telemetry_url, since=datetime(2026, 1, 10, 11, 30, tzinfo=plus2))) == 2
    assert len(read_calls(telemetry_url, since=datetime(2026, 1, 10, 12, 30, tzinfo=plus2))) == 1
    assert purge(telemetry_url, older_than_days=1,
                 now=datetime(2026, 1, 11, 12, 30, tzinfo=plus2)) == 1
    assert list(read_calls(telemetry_url, payloads=False)["latency_ms"]) == [3.5]


def test_values_a_column_cannot_hold_are_fitted_not_refused(telemetry_url: str) -> None:
    """What PostgreSQL refuses (and SQLite keeps) would cost the whole batch: NUL
    characters, text past the column's length, integers past 32 bits. A lone surrogate
    (refused by both drivers) used to stop the writer thread."""
    writer = TelemetryWriter(telemetry_url, batch_size=10)
    writer.submit(record(1, error="bad\x00byte \udcff", version="1" * 20, trace_id="f" * 40,
                         tokens_in=3_000_000_000, tokens_out=10**20, host_status=-(2**40)))
    writer.submit(record(2, tokens_in=2**31 - 1, error="kept as it is: é ✓"))
    writer.flush()
    writer.close()
    assert writer.written == 2 and writer.dropped == 0
    frame = read_calls(telemetry_url)
    first, second = frame.iloc[0], frame.iloc[1]
    assert first["error"] == "bad\\x00byte \\udcff"
    assert first["version"] == "1" * 16 and first["trace_id"] == "f" * 32
    assert pd.isna(first["tokens_in"]) and pd.isna(first["tokens_out"])
    assert pd.isna(first["host_status"])
    assert second["tokens_in"] == 2**31 - 1 and second["error"] == "kept as it is: é ✓"


def test_openers_of_a_new_store_at_once_all_succeed(telemetry_url: str) -> None:
    """A gateway and a notebook opening a new store together both try to create the table."""
    barrier = threading.Barrier(6)
    errors: list[BackendError] = []

    def open_store() -> None:
        barrier.wait()
        try:
            read_calls(telemetry_url)
        except BackendError as err:
            errors.append(err)

    threads = [threading.Thread(target=open_store) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_a_store_from_an_earlier_version_gains_the_cost_column(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # the table as the first gateway release made it
        conn.execute(sa.text(
            "CREATE TABLE model_calls (id INTEGER PRIMARY KEY, time DATETIME NOT NULL, "
            "overlay VARCHAR(63) NOT NULL, revision INTEGER NOT NULL, model VARCHAR(128) "
            "NOT NULL, version VARCHAR(16) NOT NULL, role VARCHAR(8) NOT NULL, latency_ms "
            "FLOAT NOT NULL, status VARCHAR(8) NOT NULL, error TEXT, trace_id VARCHAR(32), "
            "tokens_in INTEGER, tokens_out INTEGER, inputs TEXT, output TEXT, source "
            "VARCHAR(8) DEFAULT 'invoke' NOT NULL, host_status INTEGER, host_output TEXT)"))
        conn.execute(sa.text(
            "INSERT INTO model_calls (time, overlay, revision, model, version, role, "
            "latency_ms, status) VALUES ('2026-11-20 10:00:00', 'old', 1, 'm', '1', "
            "'primary', 2.0, 'ok')"))
    engine.dispose()
    writer = TelemetryWriter(url)
    writer.submit(CallRecord("old", 1, "m", "1", "primary", 3.0, cost_nusd=1234))
    writer.flush()
    writer.close()
    calls = read_calls(url, payloads=False)
    assert list(calls["latency_ms"]) == [2.0, 3.0]  # the earlier record is kept
    assert calls["cost_nusd"].isna().iloc[0] and calls["cost_nusd"].iloc[1] == 1234
