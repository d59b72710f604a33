"""What every widget does with what it is given: a ``since`` as text, an error as the
``{field, message}`` the front ends show inline."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from overlay_sdk.errors import ValidationError

__all__ = ["error_of", "since_text"]


def since_text(value: Any) -> str:
    """``since`` as the text a widget keeps and shows: a phrase ("a day ago") as it is, a
    datetime as ISO 8601, None as "" (no limit); ValidationError naming ``since``
    otherwise."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValidationError.at("since", "give a tz-aware datetime (dt.replace(tzinfo="
                                     "UTC)) or a phrase such as 'a day ago'")
        return value.isoformat()
    if isinstance(value, str):
        return value
    raise ValidationError.at("since", f"give a phrase such as 'a day ago' or a datetime, got "
                             f"{type(value).__name__}")


def error_of(err: BaseException) -> dict[str, str]:
    """The error a widget shows inline: the first field at fault and what to do (any other
    exception: its type and text; it never reaches the notebook from a button)."""
    if isinstance(err, ValidationError):
        first = err.errors[0]
        rest = "; ".join(str(e) for e in err.errors[1:])
        return {"field": first.path, "message": first.message + (f"; {rest}" if rest else "")}
    from overlay_sdk.errors import OverlayError

    if isinstance(err, OverlayError):
        return {"field": "", "message": str(err)}
    return {"field": "", "message": f"unexpected error: {type(err).__name__}: {err}"}
