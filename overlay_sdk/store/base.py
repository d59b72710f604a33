"""The ``Store`` protocol: where overlay specs and their revisions live.

Two backends implement it: :class:`overlay_sdk.store.local.LocalStore` (SQLite in the
overlay home, the embedded default) and, later, a Kubernetes store over ``AIOverlay``
custom resources. The client (:mod:`overlay_sdk.client`) validates input and then
calls a store; a store only persists, numbers and publishes revisions.

Rules every store keeps:

- every apply or delete makes an immutable revision numbered 1, 2, 3... per overlay,
  without gaps; history is never rewritten; a delete is a revision too (a tombstone),
  and re-creating a deleted overlay continues its numbering;
- ``expected_revision`` gives optimistic concurrency: ``None`` = no check, ``0`` = the
  overlay must not exist (create), ``n`` = its current revision must be ``n``;
  otherwise :class:`~overlay_sdk.errors.ConflictError` and nothing is written;
- ``watch`` delivers every revision, in commit order, to any process.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

from overlay_sdk.errors import ConflictError, ValidationError
from overlay_sdk.spec import AIOverlay

__all__ = [
    "Action",
    "Revision",
    "Store",
    "WatchEvent",
    "check_write_args",
    "created_revision",
    "import_check",
    "to_import",
]

Action = Literal["apply", "delete"]

_MAX_INT = 2**63  # revision numbers fit a signed 64-bit integer (SQLite, etcd)


@dataclass(frozen=True)
class Revision:
    """One immutable, numbered revision of one overlay.

    ``overlay`` is None for a deletion (tombstone). ``message`` is what the caller said
    about the change ("canary copilot:4 at 1%"); ``changes`` is the field-by-field
    difference from the previous revision, computed by the store.
    """

    name: str
    revision: int
    action: Action
    overlay: AIOverlay | None
    author: str
    created_at: datetime
    message: str
    changes: str

    @property
    def summary(self) -> str:
        """``message`` and ``changes`` in one line."""
        parts = [p for p in (self.message, self.changes) if p]
        return "; ".join(parts)


@dataclass(frozen=True)
class WatchEvent:
    """A revision as seen by a watcher; ``seq`` increases by commit order across overlays."""

    seq: int
    revision: Revision


@runtime_checkable
class Store(Protocol):
    """Persistence of overlays and their revisions. See the module docstring for the rules."""

    def get(self, name: str) -> Revision:
        """The current revision of a live overlay; NotFoundError if absent or deleted."""
        ...

    def list(self) -> list[Revision]:
        """Current revisions of all live overlays, sorted by name."""
        ...

    def apply(
        self,
        overlay: AIOverlay,
        *,
        expected_revision: int | None = None,
        author: str | None = None,
        message: str = "",
    ) -> Revision:
        """Write ``overlay`` as the next revision of ``overlay.name`` and return it."""
        ...

    def delete(
        self,
        name: str,
        *,
        expected_revision: int | None = None,
        author: str | None = None,
        message: str = "",
    ) -> Revision:
        """Record a deletion (tombstone revision); NotFoundError if absent or already deleted."""
        ...

    def names(self) -> builtins.list[str]:
        """Every overlay with a history, deleted ones included, sorted."""
        ...

    def history(self, name: str) -> builtins.list[Revision]:
        """Every revision of ``name``, oldest first, tombstones included; NotFoundError if none."""
        ...

    def revision(self, name: str, number: int) -> Revision:
        """One revision by number; NotFoundError if it does not exist."""
        ...

    def watch(
        self, *, since: int | None = None, timeout: float | None = None
    ) -> Iterator[WatchEvent]:
        """Yield revisions committed after sequence ``since`` (None: from now), in order.

        Stops after ``timeout`` seconds without a new event (None: never stops).
        """
        ...

    def import_revision(self, revision: Revision) -> bool:
        """Write ``revision`` as it is (number, author, time, message) after the last one of
        its overlay, for copying histories between stores; False when this exact revision
        is there already (a repeated copy). See :func:`import_check`."""
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...


def created_revision(history: Iterable[Revision]) -> int:
    """The first revision after the overlay's last deletion (``history`` oldest first): an
    overlay deleted and made again under its name starts afresh from there (its metrics,
    spend and drift do not include its predecessor's calls)."""
    created = 1
    before: Revision | None = None
    for revision in history:
        if before is not None and before.action == "delete" and revision.action == "apply":
            created = revision.revision
        before = revision
    return created


def to_import(value: object) -> Revision:
    """``value`` if it is a :class:`Revision` to copy, else a ValidationError saying so."""
    if not isinstance(value, Revision):
        raise ValidationError.at(
            "revision", f"expected a Revision read from a store, got {type(value).__name__}"
        )
    return value


def import_check(
    revision: Revision, *, latest: int, live: bool, existing: Revision | None
) -> bool:
    """Whether a store writes ``revision`` copied from another store (True), or already holds
    it (False); pure. ``latest`` is the last revision number the store holds for that
    overlay (0: none), ``live`` whether that revision is an apply, ``existing`` the store's
    revision numbered ``revision.revision``, if any.

    The copy must continue the store's history without a gap and keep its rules (a delete
    follows a live revision); a different revision under the same number is a conflict:
    the store's history is never rewritten.
    """
    to_import(revision)
    name, number = revision.name, revision.revision
    if (revision.overlay is None) != (revision.action == "delete"):
        raise ValidationError.at(
            "revision.overlay", f"revision {number} of {name!r} is an {revision.action} "
            f"{'without' if revision.overlay is None else 'with'} an overlay; copy revisions "
            "as a store returned them"
        )
    if revision.overlay is not None and revision.overlay.name != name:
        raise ValidationError.at(
            "revision.overlay.metadata.name", f"{revision.overlay.name!r} differs from the "
            f"revision's overlay {name!r}"
        )
    if revision.created_at.tzinfo is None:
        raise ValidationError.at("revision.created_at", "give a timezone-aware time (UTC)")
    if existing is not None:
        if existing == revision:
            return False
        raise ConflictError(
            f"overlay {name!r} already has a different revision {number} (by "
            f"{existing.author} at {existing.created_at:%Y-%m-%d %H:%M:%S}, "
            f"{existing.action}) than the one copied (by {revision.author} at "
            f"{revision.created_at:%Y-%m-%d %H:%M:%S}, {revision.action}); its history is never "
            "rewritten: copy the overlay under another name, or delete it from the target "
            "first if the copy should replace it",
            expected=number - 1, current=latest or None,
        )
    if number != latest + 1:
        raise ConflictError(
            f"overlay {name!r} cannot take revision {number}: its last revision is "
            f"{latest or 'none'}; copy its revisions in order, oldest first",
            expected=number - 1, current=latest or None,
        )
    if revision.action == "delete" and not live:
        raise ConflictError(
            f"overlay {name!r} cannot take the deletion at revision {number}: it is not live "
            "in this store; copy its revisions in order, oldest first",
            expected=number - 1, current=None,
        )
    return True


def check_write_args(expected: object, author: object, message: object) -> None:
    """ValidationError naming ``expected_revision``, ``author`` or ``message`` when a write's
    arguments are of the wrong kind (every store checks them before writing anything)."""
    if expected is not None and (isinstance(expected, bool) or not isinstance(expected, int)
                                 or not 0 <= expected < _MAX_INT):
        raise ValidationError.at(
            "expected_revision", f"give None, 0 (must not exist) or a revision number, "
            f"got {expected!r}"
        )
    if author is not None and not isinstance(author, str):
        raise ValidationError.at("author", f"an author is a string, got {author!r}")
    if not isinstance(message, str):
        raise ValidationError.at("message", f"a message is a string, got {message!r}")
