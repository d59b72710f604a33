"""What the ModelRegistry widget shows and what it may do, as pure functions.

Rows for the front end are built from the records of the SDK's DataFrames
(``cp.models.list()`` and ``cp.models.versions(name)``, passed as ``frame.to_dict("records")``:
this module imports no pandas, registry or store). Messages from the front end are data from a
browser: they are checked here before the SDK validates them as any other input.

A rollback takes two steps (:class:`RollbackFlow`): a preview (the SDK's dry run,
``rollback_target``) becomes the pending rollback, shown as ``fraud@champion: version 3 -> 2
(label C=0.1)``; only confirming that pending rollback moves the alias, cancelling it changes
nothing, and a confirmation without a preview (or for another preview than the pending one)
is refused.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from overlay_sdk.errors import ValidationError

__all__ = [
    "SHORT_SHA",
    "PendingRollback",
    "RegisterRequest",
    "RollbackFlow",
    "RollbackRequest",
    "alias_choices",
    "model_rows",
    "parse_register",
    "parse_rollback",
    "short_sha",
    "to_iso",
    "version_rows",
]

SHORT_SHA = 12  # hex characters of a SHA-256 shown in tables (the full one in a tooltip)
_MAX_TEXT = 2000  # longest name, URI, label or alias a message may carry


def _missing(value: Any) -> bool:
    """None, NaN, pandas' NA or NaT (a missing cell of a DataFrame)."""
    return (value is None or (isinstance(value, float) and math.isnan(value))
            or type(value).__name__ in ("NAType", "NaTType"))


def _text(value: Any) -> str | None:
    return None if _missing(value) else str(value)


def short_sha(sha256: Any, length: int = SHORT_SHA) -> str:
    """The first ``length`` hex characters of ``sha256`` ("" when there is none)."""
    text = _text(sha256) or ""
    return text[:length]


def to_iso(moment: Any) -> str | None:
    """A datetime (pandas Timestamps included) as ISO 8601 UTC to the second,
    ``2025-03-01T12:04:05Z``; None when missing. A naive datetime is taken as UTC."""
    if _missing(moment) or not isinstance(moment, datetime):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return str(moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))


def model_rows(records: Iterable[Mapping[str, Any]], serving_alias: str) -> list[dict[str, Any]]:
    """One row per model from the records of ``cp.models.list()``: ``name``, ``versions``
    (how many), ``latest`` (version or None), ``aliases`` (alias -> version), ``serving``
    (the version ``serving_alias`` points at, or None) and ``updated_at`` (ISO UTC)."""
    rows = []
    for record in records:
        aliases = record.get("aliases")
        aliases = {str(a): str(v) for a, v in aliases.items()} if isinstance(
            aliases, Mapping) else {}
        count: Any = record.get("versions")
        rows.append({
            "name": str(record["name"]),
            "versions": 0 if _missing(count) else int(count),
            "latest": _text(record.get("latest_version")),
            "aliases": dict(sorted(aliases.items())),
            "serving": aliases.get(serving_alias),
            "updated_at": to_iso(record.get("updated_at")),
        })
    return rows


def version_rows(records: Iterable[Mapping[str, Any]], serving_alias: str
                 ) -> list[dict[str, Any]]:
    """One row per version from the records of ``cp.models.versions(name)``, in their order:
    ``version``, ``label`` (or None), ``sha256`` and its ``short_sha``, ``created_at`` (ISO
    UTC), ``source``, ``flavor``, ``aliases`` (sorted), ``serving`` (whether
    ``serving_alias`` points here) and ``ui`` (a link to the MLflow UI, or None)."""
    rows = []
    for record in records:
        raw = record.get("aliases")
        aliases = sorted(str(a) for a in raw) if isinstance(raw, Iterable) and not isinstance(
            raw, str) else []
        sha = _text(record.get("sha256")) or ""
        rows.append({
            "version": str(record["version"]),
            "label": _text(record.get("label")),
            "sha256": sha,
            "short_sha": short_sha(sha),
            "created_at": to_iso(record.get("created_at")),
            "source": _text(record.get("source")) or "",
            "flavor": _text(record.get("flavor")) or "",
            "aliases": aliases,
            "serving": serving_alias in aliases,
            "ui": _text(record.get("ui")),
        })
    return rows


def alias_choices(current: Iterable[str], recorded: Iterable[str], default: str) -> list[str]:
    """The aliases a rollback of a model may move: ``default`` first (preselected), then the
    model's current aliases and those with a recorded history, sorted, each once."""
    others = sorted({str(a) for a in (*current, *recorded)} - {default})
    return [default, *others]


# -- messages from the front end -----------------------------------------------------------


@dataclass(frozen=True)
class RegisterRequest:
    """Register the MLflow model at ``uri`` as a version of ``name``, labelled ``label``."""

    name: str
    uri: str
    label: str | None = None


@dataclass(frozen=True)
class RollbackRequest:
    """Move ``name@alias`` back ``to`` ("previous", a version, a label or a time phrase)."""

    name: str
    alias: str
    to: str


def _required(content: Mapping[str, Any], key: str, field: str, hint: str) -> str:
    value = content.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValidationError.at(field, hint)
    if len(value) > _MAX_TEXT:
        raise ValidationError.at(field, f"at most {_MAX_TEXT} characters, got {len(value)}")
    return value.strip()


def parse_register(content: Any) -> RegisterRequest:
    """A ``register`` message (``name``, ``uri``, optional ``label``) -> RegisterRequest;
    ValidationError naming the SDK's field at fault (``name``, ``model`` for the URI,
    ``label``) otherwise."""
    if not isinstance(content, Mapping):
        raise ValidationError.at("message", "expected an object")
    name = _required(content, "name", "name", "give the model's name, e.g. 'fraud'")
    uri = _required(content, "uri", "model", "give the URI of a model logged in an MLflow run, "
                    "e.g. runs:/<run_id>/model")
    label = content.get("label")
    if label is not None and not isinstance(label, str):
        raise ValidationError.at("label", f"give text such as 'v1.0.4', got {label!r:.60}")
    return RegisterRequest(name, uri, (label or "").strip() or None)


def parse_rollback(content: Any, default_alias: str) -> RollbackRequest:
    """A ``preview`` message (``name``, ``alias``, ``to``) -> RollbackRequest; the alias
    defaults to ``default_alias`` and ``to`` to "previous"."""
    if not isinstance(content, Mapping):
        raise ValidationError.at("message", "expected an object")
    name = _required(content, "name", "name", "choose a model")
    alias = content.get("alias") or default_alias
    if not isinstance(alias, str):
        raise ValidationError.at("alias", f"give an alias such as {default_alias!r}, got "
                                 f"{alias!r:.60}")
    to = content.get("to")
    if to is None or to == "":
        to = "previous"
    if isinstance(to, numbers.Integral) and not isinstance(to, bool):
        to = str(to)
    if not isinstance(to, str) or len(to) > _MAX_TEXT:
        raise ValidationError.at("to", f"give 'previous' or a version such as '2', got "
                                 f"{to!r:.60}")
    return RollbackRequest(name, alias.strip(), to.strip())


# -- the confirmation step ---------------------------------------------------------------------


@dataclass(frozen=True)
class PendingRollback:
    """A previewed rollback awaiting confirmation: ``name@alias`` would move from
    ``from_version`` (None: not set now) to ``to_version`` (labelled ``to_label``); ``to`` is
    what the user asked for."""

    name: str
    alias: str
    to: str
    from_version: str | None
    to_version: str
    to_label: str | None = None

    @property
    def move(self) -> str:
        """``fraud@champion: version 3 -> 2``."""
        start = f"version {self.from_version}" if self.from_version else "(not set)"
        return f"{self.name}@{self.alias}: {start} -> {self.to_version}"

    @property
    def text(self) -> str:
        """``fraud@champion: version 3 -> 2 (label C=0.1)``."""
        return self.move + (f" (label {self.to_label})" if self.to_label else "")

    def as_dict(self) -> dict[str, Any]:
        """The pending rollback as the front end gets it (with its ``text``)."""
        return {"name": self.name, "alias": self.alias, "to": self.to,
                "from_version": self.from_version, "to_version": self.to_version,
                "to_label": self.to_label, "text": self.text}

    def matches(self, seen: Mapping[str, Any]) -> bool:
        """Whether ``seen`` (what a confirm message says the user saw) is this rollback."""
        return all(seen.get(k) == v for k, v in (
            ("name", self.name), ("alias", self.alias), ("from_version", self.from_version),
            ("to_version", self.to_version)))


class RollbackFlow:
    """The confirmation state machine: nothing pending -> :meth:`preview` -> pending ->
    :meth:`confirm` (the pending rollback to perform) or :meth:`cancel` -> nothing pending.
    A new preview replaces the pending one."""

    def __init__(self) -> None:
        self._pending: PendingRollback | None = None

    @property
    def pending(self) -> PendingRollback | None:
        return self._pending

    def preview(self, request: RollbackRequest, current: str | None, target: str,
                target_label: str | None = None) -> PendingRollback:
        """Make the dry run's answer (``name@alias`` is at ``current`` now, the rollback
        would move it to ``target``) the pending rollback; ValidationError at ``to`` when the
        alias already is at ``target`` (nothing to confirm)."""
        if current is not None and str(current) == str(target):
            self._pending = None
            raise ValidationError.at("to", f"{request.name}@{request.alias} already points at "
                                     f"version {target}: nothing to roll back; choose another "
                                     "version")
        self._pending = PendingRollback(request.name, request.alias, request.to,
                                        None if current is None else str(current), str(target),
                                        target_label)
        return self._pending

    def confirm(self, seen: Mapping[str, Any] | None = None) -> PendingRollback:
        """The pending rollback, to perform now (it stays pending until :meth:`done`).
        ValidationError at ``confirm`` when nothing is pending, or when ``seen`` (the
        rollback the user confirmed) is not the pending one."""
        if self._pending is None:
            raise ValidationError.at("confirm", "no rollback to confirm: preview one first "
                                     "(Roll back…)")
        if seen is not None and not self._pending.matches(seen):
            raise ValidationError.at("confirm", f"the rollback confirmed is not the one "
                                     f"previewed ({self._pending.text}); confirm again")
        return self._pending

    def done(self) -> None:
        """The confirmed rollback was performed (or failed): nothing is pending."""
        self._pending = None

    def cancel(self) -> PendingRollback | None:
        """Drop the pending rollback (None: there was none); nothing is changed."""
        pending, self._pending = self._pending, None
        return pending
