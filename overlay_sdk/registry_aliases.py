"""Model aliases with a recorded history, and rollback in time: ``cp.models.rollback(...)``.

:class:`AliasesMixin` is a base class of :class:`overlay_sdk.registry.ModelRegistry`; it uses
the registry's ``_mlflow`` backend, ``lock_dir``, :meth:`get` and :meth:`resolve`. Aliases
are MLflow registered-model aliases (``set_alias`` is an idempotent upsert, as in MLflow).
MLflow keeps no alias history, so every move made here is also recorded
in the registry itself, in a registered-model tag (works with any tracking URI, visible in the
MLflow UI)::

    overlay.alias.<alias>.<epoch ms, 13 digits> = {"version": "2", "previous": "1",
                                                   "author": "ana", "reason": "..."}

``version`` is null when the alias was deleted. Recorded times come from :attr:`clock`
(injectable) and strictly increase per alias (a clock behind the last record records 1 ms
after it). A move is recorded before MLflow's alias is changed, and the record is removed
again if that change fails. Moves made outside overlay-sdk (the MLflow UI) are not recorded;
the next move here records the alias's real prior version as ``previous``.

**The listener contract.** The registry must not import the overlay store (the client sits
above it), yet every overlay routing to ``model@alias`` must get a new revision when the alias
moves. So after each recorded move (never for a no-op), outside the registry lock, each
callable in :attr:`AliasesMixin.alias_listeners` is called in order with the
:class:`AliasMove`. The client registers one listener that re-resolves every overlay naming
``move.name@move.alias`` and writes a revision (``move.to_version`` is None when the alias was
deleted). All listeners run even when one raises; the move stays recorded (it happened), and
then a :class:`~overlay_sdk.errors.BackendError` names each failed listener and its error (the
first error is its ``__cause__``), so the caller knows overlays may still serve the old
version.

**The check contract.** Listeners learn of a move after it happened; a move that would break
an overlay must be refused before. So each callable in :attr:`AliasesMixin.alias_checks` is
called in order with the *prospective* :class:`AliasMove` (``at`` is the time it would be
recorded, ``to_version`` None for a delete) by :meth:`~AliasesMixin.set_alias`,
:meth:`~AliasesMixin.rollback` and :meth:`~AliasesMixin.delete_alias`, after the arguments
are validated and before anything is recorded or moved, inside the registry's alias lock
(so a check must not move aliases itself). No-op moves run no checks. The first check that
raises stops the move, with nothing recorded or moved and no listener called: an
:class:`~overlay_sdk.errors.OverlayError` (a ValidationError, ConflictError...) propagates
unchanged; any other exception becomes a :class:`~overlay_sdk.errors.BackendError` naming
the check (the exception is its ``__cause__``). The client registers a check refusing a
move when an overlay naming ``move.name@move.alias`` could not take ``move.to_version``.

Messages quoting an exception (a listener's or a check's, MLflow's) mask credentials
(:func:`~overlay_sdk.registry_redact.redact`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from overlay_sdk.errors import BackendError, NotFoundError, OverlayError, ValidationError
from overlay_sdk.home import default_author
from overlay_sdk.registry_backend import file_lock
from overlay_sdk.registry_identity import TAG_LABEL
from overlay_sdk.registry_redact import redact
from overlay_sdk.spec import ALIAS, MODEL_NAME, VERSION, ModelRef
from overlay_sdk.when import ACCEPTED_FORMS, parse_when, to_utc

if TYPE_CHECKING:
    import pandas as pd

    from overlay_sdk.registry import ModelVersion
    from overlay_sdk.registry_backend import MlflowBackend

__all__ = [
    "HISTORY_COLUMNS",
    "TAG_PREFIX",
    "AliasCheck",
    "AliasListener",
    "AliasMove",
    "AliasRecord",
    "AliasesMixin",
]

TAG_PREFIX = "overlay.alias."
"""Registered-model tags ``overlay.alias.<alias>.<epoch ms>`` record alias moves."""
HISTORY_COLUMNS = ("time", "alias", "version", "previous", "author", "reason")
DEFAULT_ALIAS = "serving"
_MAX_NAME, _MAX_ALIAS, _MAX_AUTHOR, _MAX_REASON = 128, 64, 250, 1000  # a tag value < 5000
_LOCK_TIMEOUT_S = 60.0
_TAG = re.compile(r"^overlay\.alias\.(?P<alias>[A-Za-z0-9_-]+)\.(?P<ms>[0-9]{1,15})$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_TO_FORMS = ("'previous'", "a version such as 3 or '3'", "the label of one version",
             *ACCEPTED_FORMS)
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AliasMove:
    """One recorded move of ``name@alias`` from ``from_version`` to ``to_version`` (None:
    the alias did not exist / was deleted), at ``at`` (UTC), by ``author``, because
    ``reason``. What :attr:`AliasesMixin.alias_listeners` receive after the move, and
    :attr:`AliasesMixin.alias_checks` before it."""

    name: str
    alias: str
    from_version: str | None
    to_version: str | None
    at: datetime
    author: str
    reason: str | None = None

    def __str__(self) -> str:
        return (f"{self.name}@{self.alias}: {self.from_version or '(none)'} -> "
                f"{self.to_version or '(deleted)'} at {self.at.isoformat()} by {self.author}")


AliasListener = Callable[[AliasMove], None]
"""Called with each :class:`AliasMove` after it is recorded (see the module docstring)."""
AliasCheck = Callable[[AliasMove], None]
"""Called with each prospective :class:`AliasMove` before anything is recorded; raising
refuses the move (see the module docstring)."""


@dataclass(frozen=True)
class AliasRecord:
    """One stored history entry of an alias (an :class:`AliasMove` as read back)."""

    alias: str
    at_ms: int
    version: str | None
    previous: str | None
    author: str
    reason: str | None

    @property
    def at(self) -> datetime:
        return _EPOCH + self.at_ms * _MS

    def move(self, name: str) -> AliasMove:
        return AliasMove(name, self.alias, self.previous, self.version, self.at, self.author,
                         self.reason)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _to_ms(moment: datetime) -> int:
    return (to_utc(moment, field="clock") - _EPOCH) // _MS


def _check_name(name: Any) -> str:
    """As ``ModelRegistry`` checks names."""
    if not isinstance(name, str) or not re.match(MODEL_NAME, name) or len(name) > _MAX_NAME:
        raise ValidationError.at(
            "name", f"{name!r} is not a model name: use up to {_MAX_NAME} letters, digits, "
            "'.', '_' and '-', starting with a letter or digit, e.g. 'fraud-detector'"
        )
    return name


def _check_now(now: Any) -> None:
    """``now`` of a rollback: None or a tz-aware datetime; ValidationError at ``now``."""
    if now is not None and not isinstance(now, datetime):
        raise ValidationError.at("now", f"give a tz-aware datetime such as "
                                 f"datetime.now(UTC), or None for the registry's clock; got "
                                 f"{type(now).__name__} {now!r:.60}")
    if now is not None:
        to_utc(now, field="now")


def _check_alias(alias: Any, field: str = "alias") -> str:
    if (not isinstance(alias, str) or not re.match(ALIAS, alias) or len(alias) > _MAX_ALIAS
            or alias.lower() == "latest" or re.match(r"^[vV][0-9]+$", alias)):
        raise ValidationError.at(
            field, f"{alias!r} is not an alias: use up to {_MAX_ALIAS} letters, digits, '_' and "
            "'-', starting with a letter or '_', e.g. 'serving' or 'champion' ('latest' and "
            "'v<number>' are reserved by MLflow)"
        )
    return alias


def _check_text(value: Any, field: str, limit: int) -> str | None:
    if value is not None and (not isinstance(value, str) or not value.strip()
                              or len(value) > limit):
        raise ValidationError.at(field, f"give a non-empty string of at most {limit} characters,"
                                 f" or None; got {value!r:.60}")
    return value


def _records(tags: Mapping[str, str], alias: str | None = None) -> list[AliasRecord]:
    """The recorded moves in ``tags`` (of ``alias``, or of all aliases), oldest first.
    Tags that do not parse (edited by hand) are skipped with a warning."""
    found = []
    for key, value in tags.items():
        m = _TAG.match(key)
        if not m or (alias is not None and m["alias"] != alias):
            continue
        try:
            data = json.loads(value)
            version, previous = data["version"], data.get("previous")
            if not all(v is None or isinstance(v, str) for v in (version, previous)):
                raise TypeError("versions must be strings or null")
            found.append(AliasRecord(m["alias"], int(m["ms"]), version, previous,
                                     str(data.get("author") or "unknown"), data.get("reason")))
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            _log.warning("skipping the malformed alias record tag %s=%r (%s)", key, value, err)
    return sorted(found, key=lambda r: (r.at_ms, r.alias))


def _record_value(version: str | None, previous: str | None, author: str,
                  reason: str | None) -> str:
    return json.dumps({"version": version, "previous": previous, "author": author,
                       "reason": reason}, sort_keys=True)


class AliasesMixin:
    """Aliases, their recorded history and rollback; a base of ``ModelRegistry``.

    ``clock`` (a callable returning a tz-aware datetime, default ``datetime.now(UTC)``) gives
    the time recorded for each move and the ``now`` that relative phrases count back from;
    assign another callable to an instance to fix time in tests. ``alias_checks`` are
    called before each move and may refuse it; ``alias_listeners`` are called after each
    move (see the module docstring).
    """

    if TYPE_CHECKING:
        _mlflow: MlflowBackend
        lock_dir: Path

        def get(self, name: str, version: str | int) -> ModelVersion: ...
        def resolve(self, ref: ModelRef | str) -> ModelVersion: ...
        def versions(self, name: str) -> pd.DataFrame: ...

    clock: Callable[[], datetime] = staticmethod(_utc_now)

    @property
    def alias_listeners(self) -> list[AliasListener]:
        """Callables run with each :class:`AliasMove` after it is recorded (this instance's
        list; append to it)."""
        listeners: list[AliasListener] | None = self.__dict__.get("_alias_listeners")
        if listeners is None:
            listeners = self.__dict__["_alias_listeners"] = []
        return listeners

    @property
    def alias_checks(self) -> list[AliasCheck]:
        """Callables run with each prospective :class:`AliasMove` before anything is
        recorded or moved; one that raises refuses the move (this instance's list; append
        to it; see the module docstring)."""
        checks: list[AliasCheck] | None = self.__dict__.get("_alias_checks")
        if checks is None:
            checks = self.__dict__["_alias_checks"] = []
        return checks

    # -- aliases ---------------------------------------------------------------------------

    def set_alias(self, name: str, alias: str, version: str | int, *,
                  author: str | None = None, reason: str | None = None) -> ModelVersion:
        """Point ``name@alias`` at ``version`` (which must exist) and record the move with
        ``author`` (default ``$OVERLAY_AUTHOR`` or the login name) and ``reason``.

        An idempotent upsert: when the alias already points at ``version`` (in MLflow and in
        the recorded history) nothing is recorded and no listener is called. Returns the
        version the alias now points at.
        """
        _check_alias(alias)
        target = self.get(name, version)  # validates name and version; NotFoundError
        self._move(name, alias, target.version, author, reason)
        return self.get(name, target.version)  # with its aliases as they are now

    def get_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        """The version ``name@alias`` points at; NotFoundError lists the model's aliases."""
        _check_alias(alias)
        return self.resolve(ModelRef(_check_name(name), alias=alias))

    def delete_alias(self, name: str, alias: str, *, author: str | None = None,
                     reason: str | None = None) -> None:
        """Remove ``name@alias`` and record it (the history keeps the alias's past, so
        :meth:`rollback` can restore it). NotFoundError, listing the aliases, when it does
        not exist."""
        _check_alias(alias)
        self.get_version_by_alias(name, alias)  # NotFoundError naming what exists
        self._move(name, alias, None, author, reason)

    # -- history ---------------------------------------------------------------------------

    def alias_history(self, name: str, alias: str | None = None) -> pd.DataFrame:
        """Every recorded move of ``name``'s aliases (or of ``alias``), oldest first, as
        :data:`HISTORY_COLUMNS`: ``time`` (tz-aware UTC), ``alias``, ``version`` (None:
        deleted), ``previous`` (None: did not exist), ``author``, ``reason``."""
        import pandas as pd

        if alias is not None:
            _check_alias(alias)
        rows = [{"time": r.at, "alias": r.alias, "version": r.version, "previous": r.previous,
                 "author": r.author, "reason": r.reason}
                for r in self._history(name, alias)]
        # object columns: a missing version stays None (pandas 3 would make str columns NaN)
        frame = pd.DataFrame(rows, columns=list(HISTORY_COLUMNS), dtype=object)
        frame["time"] = pd.to_datetime(frame["time"], utc=True)
        return frame

    def serving_at(self, name: str, when: datetime | str, alias: str = DEFAULT_ALIAS
                   ) -> ModelVersion | None:
        """The version ``name@alias`` pointed at, at ``when`` (a tz-aware datetime or a
        phrase such as "yesterday": see :mod:`overlay_sdk.when`); a move at time T counts
        from T on. None when ``when`` is before the alias was first set, or while it was
        deleted. NotFoundError when the alias has no recorded history (or the version it
        pointed at was deleted since); ValidationError when ``when`` is in the future."""
        _check_alias(alias)
        records = self._history_or_raise(name, alias)
        at = self._point_in_time(when, None, "when")
        found = _position(records, at)
        return None if found is None or found.version is None else self.get(name, found.version)

    # -- rollback --------------------------------------------------------------------------

    def rollback_target(self, name: str, to: Any = "previous", *, alias: str = DEFAULT_ALIAS,
                        now: datetime | None = None) -> ModelVersion:
        """The version :meth:`rollback` with the same arguments would move ``alias`` to,
        without moving it (a dry run)."""
        _check_alias(alias)
        _check_now(now)
        records = self._history_or_raise(name, alias)
        if isinstance(to, str) and to.strip().lower() == "previous":
            return self.get(name, self._previous(name, alias, records))
        if isinstance(to, int) and not isinstance(to, bool):
            if to < 1:
                raise ValidationError.at("to", f"{to} is not a version: versions start at 1")
            return self.get(name, to)
        if isinstance(to, str) and re.match(VERSION, to.strip()):
            return self.get(name, to.strip())
        if isinstance(to, str) and re.fullmatch(r"[0-9]+", to.strip()) and int(to) == 0:
            raise ValidationError.at("to", f"{to!r} is not a version: versions start at 1")
        if isinstance(to, str):
            labelled = self._by_label(name, to)
            if labelled is not None:
                return labelled
        at = self._point_in_time(to, now, "to", expected=_TO_FORMS)
        found = _position(records, at)
        if found is None:
            first = records[0]
            raise NotFoundError(
                f"{name}@{alias} was first set at {first.at.isoformat()} (to version "
                f"{first.version}); nothing was serving at {at.isoformat()}: give a later time,"
                " or a version")
        if found.version is None:
            raise NotFoundError(
                f"{name}@{alias} was deleted at {found.at.isoformat()} and not set again before"
                f" {at.isoformat()}; give another time, or a version")
        return self.get(name, found.version)

    def rollback(self, name: str, to: Any = "previous", *, alias: str = DEFAULT_ALIAS,
                 now: datetime | None = None, author: str | None = None,
                 reason: str | None = None) -> ModelVersion:
        """Move ``name@alias`` back and record it; returns the version it now points at.

        ``to`` is one of, tried in this order:

        - ``"previous"``: the version the alias pointed at before its current one (so a
          second rollback returns to where the first started, like ``kubectl rollout
          undo``); when the alias was moved outside overlay-sdk, the last version recorded;
        - a version: ``3`` or ``"3"``;
        - a label (:attr:`ModelVersion.label`) of exactly one version;
        - a time (tz-aware datetime, ISO 8601 text with an offset, ``"yesterday"``,
          ``"2 hours ago"``...; see :mod:`overlay_sdk.when`): the version serving at that
          time (:meth:`serving_at`). ``now`` (default: :attr:`clock`) is what phrases count
          back from; ValidationError at ``now`` unless it is a tz-aware datetime or None.

        NotFoundError when the alias was never set here, when "previous" has no earlier
        position, or when the time is before the alias was first set (the message says
        when); ValidationError for anything else, listing the accepted forms. Rolling back
        to the current version records nothing. The move runs :attr:`alias_checks` before
        and :attr:`alias_listeners` after.
        """
        target = self.rollback_target(name, to, alias=alias, now=now)
        if reason is None:
            reason = f"rollback to {to.isoformat() if isinstance(to, datetime) else to}"[:200]
        self._move(name, alias, target.version, author, reason)
        return self.get(name, target.version)

    # -- internals -------------------------------------------------------------------------

    def _history(self, name: str, alias: str | None) -> list[AliasRecord]:
        rm = self._mlflow.registered_model(_check_name(name))
        return _records(dict(rm.tags or {}), alias)

    def _history_or_raise(self, name: str, alias: str) -> list[AliasRecord]:
        rm = self._mlflow.registered_model(_check_name(name))
        records = _records(dict(rm.tags or {}), alias)
        if records:
            return records
        aliases = dict(rm.aliases)
        recorded = sorted({r.alias for r in _records(dict(rm.tags or {}))})
        if alias in aliases:
            raise NotFoundError(
                f"{name}@{alias} points at version {aliases[alias]} but its moves were never "
                "recorded (it was set outside overlay-sdk); set it with "
                f"set_alias({name!r}, {alias!r}, version) to start its history")
        raise NotFoundError(
            f"{name}@{alias} was never set; "
            + (f"aliases with a history: {', '.join(recorded)}; " if recorded else "")
            + f"set it with set_alias({name!r}, {alias!r}, version)")

    def _previous(self, name: str, alias: str, records: list[AliasRecord]) -> str:
        last = records[-1]
        current = dict(self._mlflow.registered_model(name).aliases).get(alias)
        current = None if current is None else str(current)
        previous = last.previous if current == last.version else last.version
        if previous is None:
            raise NotFoundError(
                f"{name}@{alias} has no earlier position: it was first set at "
                f"{last.at.isoformat()} (to version {last.version}); name a version instead")
        return previous

    def _by_label(self, name: str, label: str) -> ModelVersion | None:
        # from the tags, not versions(): that needs the UI address, which may be malformed
        matches = [str(mv.version) for mv in self._mlflow.search_versions(name)
                   if (mv.tags or {}).get(TAG_LABEL) == label]
        if len(matches) > 1:
            raise ValidationError.at(
                "to", f"label {label!r} names versions {', '.join(matches)} of {name!r}; "
                "give the version number instead")
        return self.get(name, matches[0]) if matches else None

    def _point_in_time(self, value: Any, now: datetime | None, field: str,
                       expected: tuple[str, ...] = ACCEPTED_FORMS) -> datetime:
        now = to_utc(now if now is not None else self.clock(), field="now")
        at = parse_when(value, now, field=field, expected=expected)
        if at > now:
            raise ValidationError.at(field, f"{at.isoformat()} is in the future (now is "
                                     f"{now.isoformat()}); give a past time")
        return at

    def _move(self, name: str, alias: str, version: str | None, author: str | None,
              reason: str | None) -> AliasMove | None:
        """Run the checks, record and make one move (None: delete), then run the
        listeners; None when the alias already is where it should be."""
        who = _check_text(author, "author", _MAX_AUTHOR) or default_author()
        why = _check_text(reason, "reason", _MAX_REASON)
        client = self._mlflow.client
        with file_lock(self.lock_dir / "aliases.lock", _LOCK_TIMEOUT_S):
            rm = self._mlflow.registered_model(name)
            current = dict(rm.aliases).get(alias)
            current = None if current is None else str(current)
            records = _records(dict(rm.tags or {}), alias)
            last = records[-1] if records else None
            if current == version and (last.version if last else None) == version:
                return None
            previous = current if current != version else (last.version if last else None)
            at_ms = max(_to_ms(self.clock()), last.at_ms + 1 if last else 0)
            move = AliasMove(name, alias, previous, version, _EPOCH + at_ms * _MS, who, why)
            self._check_move(move)  # raises: nothing recorded or moved
            key = f"{TAG_PREFIX}{alias}.{at_ms:013d}"
            with self._mlflow.failures(f"recording the move of {name}@{alias}"):
                client.set_registered_model_tag(
                    name, key, _record_value(version, previous, who, why))
            try:
                with self._mlflow.failures(f"moving {name}@{alias} to {version}"):
                    if version is None:
                        client.delete_registered_model_alias(name, alias)
                    else:
                        client.set_registered_model_alias(name, alias, version)
            except BackendError:
                with contextlib.suppress(Exception):
                    client.delete_registered_model_tag(name, key)
                raise
        _log.info("moved %s", move)
        self._notify(move)
        return move

    def _check_move(self, move: AliasMove) -> None:
        for check in list(self.alias_checks):
            try:
                check(move)
            except OverlayError:
                raise
            except Exception as err:
                raise BackendError(redact(
                    f"alias check {getattr(check, '__qualname__', repr(check))} failed on "
                    f"{move} ({type(err).__name__}: {err}); nothing was recorded or moved: fix "
                    "the check, or remove it from alias_checks")) from err

    def _notify(self, move: AliasMove) -> None:
        failures: list[tuple[Any, Exception]] = []
        for listener in list(self.alias_listeners):
            try:
                listener(move)
            except Exception as err:
                failures.append((listener, err))
        if failures:
            detail = "; ".join(f"{getattr(fn, '__qualname__', repr(fn))}: "
                               f"{type(err).__name__}: {err}" for fn, err in failures)
            raise BackendError(redact(
                f"{move} was recorded, but {len(failures)} of {len(self.alias_listeners)} alias "
                f"listener(s) failed: {detail}; overlays naming {move.name}@{move.alias} may "
                "still serve the old version: re-apply them")) from failures[0][1]


def _position(records: list[AliasRecord], at: datetime) -> AliasRecord | None:
    """The last record at or before ``at``; None when ``at`` is before the first."""
    at_ms = _to_ms(at)
    found = None
    for record in records:
        if record.at_ms > at_ms:
            break
        found = record
    return found
