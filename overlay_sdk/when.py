"""Points in time as people write them: ``"yesterday"``, ``"2 hours ago"``, a datetime.

Pure (no clock, no I/O): :func:`parse_when` turns what a user passed as ``to=`` or ``when=``
into a tz-aware UTC ``datetime``, counting back from an explicit ``now``. The registry's
alias rollback (:mod:`overlay_sdk.registry_aliases`) calls it with its injectable clock, so
"yesterday" is deterministic in tests.

The grammar is small and exact (case and surrounding/repeated spaces do not matter):

=========================  ============================================================
``datetime``               tz-aware, any zone; converted to UTC. A naive datetime is
                           refused: say the zone (``dt.replace(tzinfo=UTC)``, or
                           ``dt.astimezone()`` for this machine's local time).
ISO 8601 text              with an offset: ``2024-05-01T09:30:00Z``,
                           ``2024-05-01 09:30+02:00`` (text without an offset is refused).
``now``                    ``now`` itself.
``yesterday``              exactly 24 hours before ``now`` (the same clock time one day
                           earlier in UTC; no calendar or DST arithmetic).
``last week``              exactly 7 x 24 hours before ``now``.
``N UNIT ago``             ``N`` a whole number >= 1 (or ``a`` / ``an`` for 1), ``UNIT``
                           one of minute(s), hour(s), day(s), week(s); a day is 24 hours,
                           a week 7 days: ``30 minutes ago``, ``an hour ago``,
                           ``3 days ago``.
=========================  ============================================================

Anything else raises :class:`~overlay_sdk.errors.ValidationError` at the given field
(``to`` by default) listing these forms.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from overlay_sdk.errors import ValidationError

__all__ = ["ACCEPTED_FORMS", "parse_when", "to_utc"]

ACCEPTED_FORMS = (
    "a tz-aware datetime",
    "ISO 8601 text with an offset such as '2024-05-01T09:30:00Z'",
    "'now'",
    "'yesterday' (24 h before now)",
    "'last week' (7 x 24 h before now)",
    "'N minutes|hours|days|weeks ago' such as '30 minutes ago' or 'an hour ago'",
)
"""The forms :func:`parse_when` accepts, as error messages list them."""

_UNITS = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1),
          "day": timedelta(days=1), "week": timedelta(weeks=1)}
_NAMED = {"now": timedelta(0), "yesterday": timedelta(days=1), "last week": timedelta(weeks=1)}
_AGO = re.compile(r"^(?P<n>[0-9]{1,9}|an?) (?P<unit>minute|hour|day|week)s? ago$")
_ISO_START = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}")


def to_utc(value: datetime, *, field: str = "to") -> datetime:
    """``value`` in UTC; ValidationError at ``field`` when it is naive."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError.at(
            field, f"{value.isoformat()} has no time zone; say which one you mean: "
            "value.replace(tzinfo=datetime.UTC) for UTC, or value.astimezone() for this "
            "machine's local time"
        )
    return value.astimezone(UTC)


def parse_when(value: Any, now: datetime, *, field: str = "to",
               expected: Sequence[str] = ACCEPTED_FORMS) -> datetime:
    """The tz-aware UTC moment ``value`` names, counting relative phrases back from ``now``
    (tz-aware). See the module docstring for the grammar; anything else raises
    ValidationError at ``field`` listing ``expected`` (a caller accepting more than times,
    such as a rollback target, passes its whole list)."""
    forms = "; ".join(expected)
    if not isinstance(now, datetime):
        raise ValidationError.at("now", f"give a tz-aware datetime, got {type(now).__name__}")
    now = to_utc(now, field="now")
    if isinstance(value, datetime):
        return to_utc(value, field=field)
    if not isinstance(value, str):
        raise ValidationError.at(
            field, f"{value!r} ({type(value).__name__}) is not a point in time; give {forms}"
        )
    text = " ".join(value.lower().split())
    try:
        if text in _NAMED:
            return now - _NAMED[text]
        m = _AGO.match(text)
        if m:
            n = 1 if m["n"] in ("a", "an") else int(m["n"])
            if n < 1:
                raise ValidationError.at(field, f"{value!r}: count back at least 1 {m['unit']}")
            return now - n * _UNITS[m["unit"]]
    except OverflowError:
        raise ValidationError.at(field, f"{value!r} is further back than a datetime can "
                                 "go; give a smaller number") from None
    if _ISO_START.match(text):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError as err:
            raise ValidationError.at(field, f"{value!r} is not a valid ISO 8601 time ({err}); "
                                     "write e.g. '2024-05-01T09:30:00Z'") from None
        return to_utc(parsed, field=field)
    raise ValidationError.at(field, f"{value!r} is not a point in time; give {forms}")
