"""Telemetry of model calls: batched, bounded, sampled, redacted, read back as DataFrames."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from overlay_sdk.errors import ValidationError
from overlay_sdk.telemetry import REDACTED, CallRecord, TelemetryWriter, purge, read_calls


def record(i: int, **kw: object) -> CallRecord:
    args: dict[str, object] = {
        "overlay": "scoring", "revision": 3, "model": "fraud", "version": "2",
        "role": "primary", "latency_ms": 1.5 + i, "inputs": {"amount": i, "ssn": f"123-{i}"},
        "output": {"score": i / 10}, "trace_id": f"{i:032x}",
    }
    args.update(kw)
    return CallRecord(**args)  # type: ignore[arg-type]


def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'telemetry.db'}"


def test_records_round_trip_with_features_as_columns_and_redaction(tmp_path: Path) -> None:
    writer = TelemetryWriter(url(tmp_path), redact=["SSN"])
    for i in range(250):
        assert writer.submit(record(i, role="shadow" if i % 5 == 0 else "primary"))
    writer.flush()
    writer.close()
    frame = read_calls(url(tmp_path), overlay="scoring")
    assert len(frame) == 250 and writer.written == 250 and writer.dropped == 0
    assert list(frame["input.amount"][:3]) == [0, 1, 2]
    assert set(frame["input.ssn"]) == {REDACTED}
    assert frame["output"][4] == {"score": 0.4}
    assert (frame["role"] == "shadow").sum() == 50
    assert str(frame["time"].dt.tz) == "UTC"
    assert read_calls(url(tmp_path), overlay="other").empty


def test_sampling_keeps_timing_of_every_call_but_payloads_of_a_share(tmp_path: Path) -> None:
    writer = TelemetryWriter(url(tmp_path), sample_rate=0.2, seed=7)
    for i in range(2000):
        writer.submit(record(i))
    writer.flush()
    writer.close()
    frame = read_calls(url(tmp_path))
    assert len(frame) == 2000
    kept = frame["input.amount"].notna().mean()
    assert 0.17 < kept < 0.23


def test_a_full_queue_drops_and_counts_without_blocking(tmp_path: Path) -> None:
    writer = TelemetryWriter(url(tmp_path), queue_size=10, flush_interval=5.0, batch_size=1)
    started = time.perf_counter()
    accepted = sum(writer.submit(record(i)) for i in range(5000))
    assert time.perf_counter() - started < 1.0  # never waits for the database
    assert writer.dropped == 5000 - accepted and writer.dropped > 4000
    writer.close()
    assert len(read_calls(url(tmp_path))) == accepted


def test_retention_purges_old_calls(tmp_path: Path) -> None:
    now = datetime(2026, 1, 10, tzinfo=UTC)
    writer = TelemetryWriter(url(tmp_path))
    for days in (1, 5, 40):
        writer.submit(record(days, time=now - timedelta(days=days)))
    writer.flush()
    writer.close()
    assert purge(url(tmp_path), older_than_days=30, now=now) == 1
    assert len(read_calls(url(tmp_path), since=now - timedelta(days=2))) == 1
    with pytest.raises(ValidationError):
        purge(url(tmp_path), older_than_days=0)


@pytest.mark.parametrize("kwargs", [{"sample_rate": 2}, {"sample_rate": True}, {"batch_size": 0}])
def test_bad_settings_are_refused(tmp_path: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        TelemetryWriter(url(tmp_path), **kwargs)  # type: ignore[arg-type]


def test_redaction_reaches_outputs_and_the_host_answer_at_any_depth(tmp_path: Path) -> None:
    writer = TelemetryWriter(url(tmp_path))
    writer.submit(record(1, output=[{"label": 1, "Email": "ada@example.com"}],
                         source="host", host_status=200,
                         host_output={"customer": {"email": "ada@example.com", "id": 7}}),
                  redact=frozenset({"email", "ssn"}))
    writer.flush()
    writer.close()
    row = read_calls(url(tmp_path)).iloc[0]
    assert row["output"] == [{"label": 1, "Email": REDACTED}]
    assert row["host_output"] == {"customer": {"email": REDACTED, "id": 7}}
    assert row["input.ssn"] == REDACTED and row["input.amount"] == 1
    assert row["source"] == "host" and row["host_status"] == 200


def test_flush_waits_for_records_submitted_just_before(tmp_path: Path) -> None:
    writer = TelemetryWriter(url(tmp_path), flush_interval=0.01)
    for i in range(200):
        writer.submit(record(i))
        if i % 20 == 0:
            writer.flush(timeout=5)
            assert len(read_calls(url(tmp_path))) == i + 1
    writer.close()
