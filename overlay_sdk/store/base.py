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

from overlay_sdk.spec import AIOverlay

__all__ = ["Action", "Revision", "Store", "WatchEvent", "created_revision"]

Action = Literal["apply", "delete"]


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
