"""Time phrases (overlay_sdk.when): exact UTC arithmetic and errors that list the forms."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from overlay_sdk import when
from overlay_sdk.errors import ValidationError
from overlay_sdk.when import ACCEPTED_FORMS, parse_when, to_utc

NOW = datetime(2024, 3, 31, 12, 0, 0, 500_000, tzinfo=UTC)


def test_exports_are_sorted() -> None:
    assert when.__all__ == sorted(when.__all__)


@pytest.mark.parametrize(("text", "back"), [
    ("now", timedelta(0)),
    ("yesterday", timedelta(hours=24)),
    ("last week", timedelta(days=7)),
    ("2 hours ago", timedelta(hours=2)),
    ("30 minutes ago", timedelta(minutes=30)),
    ("3 days ago", timedelta(hours=72)),
    ("1 week ago", timedelta(days=7)),
    ("2 weeks ago", timedelta(days=14)),
    ("an hour ago", timedelta(hours=1)),
    ("a day ago", timedelta(days=1)),
    ("a minute ago", timedelta(minutes=1)),
    ("1 hours ago", timedelta(hours=1)),
    ("1 minute ago", timedelta(minutes=1)),
    ("  2   HOURS  Ago ", timedelta(hours=2)),
    ("Yesterday", timedelta(days=1)),
    ("LAST  WEEK", timedelta(days=7)),
    ("1440 minutes ago", timedelta(days=1)),
])
def test_phrases_count_back_exact_durations_from_now(text: str, back: timedelta) -> None:
    got = parse_when(text, NOW)
    assert got == NOW - back
    assert got.tzinfo is UTC
    assert got.microsecond == NOW.microsecond, "no rounding"


def test_yesterday_is_24_hours_even_across_a_dst_change() -> None:
    # 2024-03-31 is the spring-forward day in Berlin: 24 h before 12:00 CEST is 11:00 CET
    berlin = ZoneInfo("Europe/Berlin")
    now = datetime(2024, 3, 31, 12, 0, tzinfo=berlin)
    got = parse_when("yesterday", now)
    assert now - got == timedelta(hours=24)
    assert got == datetime(2024, 3, 30, 10, 0, tzinfo=UTC)
    assert got.astimezone(berlin).hour == 11


def test_an_aware_datetime_is_the_same_instant_in_utc() -> None:
    tokyo = datetime(2024, 5, 1, 18, 30, tzinfo=timezone(timedelta(hours=9)))
    got = parse_when(tokyo, NOW)
    assert got == tokyo
    assert got.tzinfo is UTC
    assert (got.hour, got.minute) == (9, 30)


@pytest.mark.parametrize(("text", "expected"), [
    ("2024-05-01T09:30:00Z", datetime(2024, 5, 1, 9, 30, tzinfo=UTC)),
    ("2024-05-01 09:30+02:00", datetime(2024, 5, 1, 7, 30, tzinfo=UTC)),
    (" 2024-05-01T09:30:00.250+00:00 ", datetime(2024, 5, 1, 9, 30, 0, 250_000, tzinfo=UTC)),
])
def test_iso_text_with_an_offset(text: str, expected: datetime) -> None:
    got = parse_when(text, NOW)
    assert got == expected
    assert got.tzinfo is UTC


@pytest.mark.parametrize("value", [datetime(2024, 5, 1, 9, 30), "2024-05-01T09:30:00",
                                   "2024-05-01"])
def test_a_time_without_a_zone_is_refused_with_how_to_say_it(value: Any) -> None:
    with pytest.raises(ValidationError) as err:
        parse_when(value, NOW)
    assert err.value.paths == ["to"]
    assert "no time zone" in str(err.value)
    assert "replace(tzinfo=datetime.UTC)" in str(err.value)
    assert "astimezone()" in str(err.value)


def test_a_malformed_iso_time_says_what_to_write() -> None:
    with pytest.raises(ValidationError, match=r"to: '2024-13-01T00:00Z' is not a valid ISO 8601"
                       r" time .*2024-05-01T09:30:00Z"):
        parse_when("2024-13-01T00:00Z", NOW)


@pytest.mark.parametrize("value", [
    "tomorrow", "right now", "", "   ", "2 hours", "in 2 hours", "2 fortnights ago", "-1 days ago",
    "two hours ago", "2 hrs ago", "1.5 hours ago", "2 seconds ago", "last month", "ago",
    "yesterday ago", "3 days  ago!", "1234567890 days ago",
    3, 2.5, None, True, b"yesterday", timedelta(hours=1), ["yesterday"],
])
def test_anything_else_is_refused_at_the_field_listing_every_form(value: Any) -> None:
    with pytest.raises(ValidationError) as err:
        parse_when(value, NOW)
    assert err.value.paths == ["to"]
    message = str(err.value)
    assert "is not a point in time" in message
    for form in ACCEPTED_FORMS:
        assert form in message


def test_zero_units_ago_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"to: '0 hours ago': count back at least 1 hour"):
        parse_when("0 hours ago", NOW)


def test_further_back_than_a_datetime_goes_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"to: '999999999 weeks ago' is further back"):
        parse_when("999999999 weeks ago", NOW)


def test_the_field_and_the_listed_forms_are_the_callers() -> None:
    with pytest.raises(ValidationError) as err:
        parse_when("tomorrow", NOW, field="when", expected=("'previous'", "a time"))
    assert err.value.paths == ["when"]
    assert str(err.value).endswith("give 'previous'; a time")


@pytest.mark.parametrize("now", [datetime(2024, 1, 1), "2024-01-01T00:00Z", None])
def test_now_must_be_an_aware_datetime(now: Any) -> None:
    with pytest.raises(ValidationError) as err:
        parse_when("yesterday", now)
    assert err.value.paths == ["now"]


def test_to_utc_names_its_field() -> None:
    assert to_utc(datetime(2024, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))) == datetime(
        2024, 1, 1, tzinfo=UTC)
    with pytest.raises(ValidationError) as err:
        to_utc(datetime(2024, 1, 1), field="clock")
    assert err.value.paths == ["clock"]
