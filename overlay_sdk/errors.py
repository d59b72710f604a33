"""The one error tree of overlay-sdk.

Every error the SDK raises on purpose is an ``OverlayError``; callers catch the
subclass that says what went wrong::

    OverlayError
    +-- ValidationError   bad input: a spec field, a model reference, an argument.
    |                     ``.errors`` lists (field path, rule) pairs; nothing was stored.
    +-- NotFoundError     the named overlay, model, version or revision does not exist.
    +-- ConflictError     the object changed since it was read (optimistic concurrency),
    |                     or it already exists. Re-read and retry.
    +-- BackendError      a store, registry or service below us failed. The message
                          names the backend and what to check.

Messages name the field or object at fault and say what to do next.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "BackendError",
    "ConflictError",
    "FieldError",
    "NotFoundError",
    "OverlayError",
    "PayloadError",
    "ValidationError",
]


class OverlayError(Exception):
    """Base class of every error raised by overlay-sdk."""


@dataclass(frozen=True)
class FieldError:
    """One broken rule: ``path`` is a field path such as ``spec.routes[1].weight``."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ValidationError(OverlayError, ValueError):
    """Input broke one or more rules; nothing was stored.

    ``errors`` holds every broken rule as a :class:`FieldError`; ``str(err)`` lists them,
    one per line, each starting with the field path.
    """

    def __init__(self, errors: Iterable[FieldError] | str, *, subject: str | None = None) -> None:
        if isinstance(errors, str):
            errors = [FieldError("", errors)]
        self.errors: tuple[FieldError, ...] = tuple(errors)
        if not self.errors:
            raise ValueError("ValidationError needs at least one FieldError")
        self.subject = subject
        super().__init__(self._render())

    @classmethod
    def at(cls, path: str, message: str, *, subject: str | None = None) -> ValidationError:
        """A validation error about one field."""
        return cls([FieldError(path, message)], subject=subject)

    @property
    def paths(self) -> Sequence[str]:
        """The field paths at fault, in the order found."""
        return [e.path for e in self.errors]

    def _render(self) -> str:
        lines = [str(e) for e in self.errors]
        head = f"invalid {self.subject}: " if self.subject else ""
        if len(lines) == 1:
            return head + lines[0]
        return head + f"{len(lines)} problems\n" + "\n".join(f"  - {line}" for line in lines)


class PayloadError(ValidationError):
    """A model call's inputs are not what the model takes (the gateway answers 422);
    ``field`` names the part at fault (``inputs.amount``), ``message`` says what to send."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__([FieldError(field, message)])
        self.field = field
        self.message = message


class NotFoundError(OverlayError, LookupError):
    """The named object does not exist."""


class ConflictError(OverlayError):
    """The object changed since it was read, or already exists.

    ``current`` is the revision now stored (None when the object does not exist);
    ``expected`` is the revision the caller based the change on.
    """

    def __init__(self, message: str, *, expected: int | None = None, current: int | None = None):
        super().__init__(message)
        self.expected = expected
        self.current = current


class BackendError(OverlayError):
    """A storage, registry or service backend failed."""
