"""Shared parts of the ``overlay`` command: exit codes, error handling, output formats.

Used by :mod:`overlay_sdk.cli` (the root group and the overlay commands) and
:mod:`overlay_sdk.cli_models` (the ``models`` commands).
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from overlay_sdk.errors import (
    BackendError,
    ConflictError,
    NotFoundError,
    OverlayError,
    ValidationError,
)

if TYPE_CHECKING:
    import pandas as pd

    from overlay_sdk.client import ControlPlane
    from overlay_sdk.spec import AIOverlay

__all__ = [
    "EPILOG",
    "EXIT_CODES",
    "OUTPUT",
    "TABLE_OR_JSON",
    "emit",
    "exit_code",
    "fail",
    "handles_errors",
    "plane",
    "read_overlays",
    "table",
    "to_json",
]

EXIT_CODES: dict[type[OverlayError], int] = {
    ValidationError: 2,
    NotFoundError: 3,
    ConflictError: 4,
    BackendError: 5,
}

EPILOG = (
    "Exit codes: 0 ok, 1 failure (e.g. verification failed), 2 bad input or usage, 3 not found, "
    "4 conflict "
    "(someone changed it first: re-read and retry), 5 backend failure (store or registry)."
)

F = TypeVar("F", bound=Callable[..., Any])


def exit_code(err: OverlayError) -> int:
    """The exit code for an error: the most specific match in EXIT_CODES, else 1."""
    for kind, code in EXIT_CODES.items():
        if isinstance(err, kind):
            return code
    return 1


def fail(message: str, code: int) -> None:
    """Print ``error: message`` on standard error and exit with ``code``."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def handles_errors(fn: F) -> F:
    """Turn overlay-sdk errors into ``error: ...`` on stderr and the matching exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except OverlayError as err:
            fail(str(err), exit_code(err))

    return wrapper  # type: ignore[return-value]


@contextmanager
def plane(ctx: click.Context) -> Iterator[ControlPlane]:
    """The control plane chosen by the root options (--home, --registry-uri, --author)."""
    from overlay_sdk.client import connect

    opts = ctx.find_root().obj or {}
    with connect(opts.get("home"), registry_uri=opts.get("registry_uri"),
                 author=opts.get("author")) as cp:
        yield cp


def table(frame: pd.DataFrame) -> str:
    """A DataFrame as a plain-text table, or ``(none)`` when it is empty."""
    if frame.empty:
        return "(none)"
    text: str = frame.to_string(index=False)
    return text


def emit(frame: pd.DataFrame, output: str) -> None:
    """A DataFrame as a table or as JSON records."""
    if output == "json":
        click.echo(to_json(frame.to_dict(orient="records")))
    else:
        click.echo(table(frame))


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, default=str, ensure_ascii=False)


TABLE_OR_JSON = click.option(
    "-o", "--output", type=click.Choice(["table", "json"]), default="table",
    show_default=True, help="Output format.",
)

OUTPUT = click.option(
    "-o", "--output", type=click.Choice(["table", "yaml", "json"]), default="table",
    show_default=True, help="Output format.",
)


FILENAME = click.option(
    "-f", "--filename", "path", required=True,
    help="YAML file with one or more AIOverlay documents ('-' for standard input).",
)


def read_overlays(path: str) -> list[tuple[str, AIOverlay]]:
    """The AIOverlay documents of file ``path`` ('-': standard input), each validated, with
    where it came from ("document 2 of overlays.yaml"); a ValidationError names the first
    document and field at fault, before anything is done with the others."""
    from overlay_sdk.spec import load_yaml, parse_overlay

    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else "not UTF-8 text"
        raise ValidationError.at("-f", f"cannot read {path}: {reason}") from None
    docs: list[Any] = load_yaml(text, many=True, where=f"-f {path}")
    if not docs:
        raise ValidationError.at("-f", f"{path} holds no document; give an AIOverlay in YAML")
    out = []
    for i, doc in enumerate(docs):
        where = f"document {i + 1} of {path}" if path != "-" else f"document {i + 1}"
        try:
            out.append((where, parse_overlay(doc)))
        except ValidationError as err:
            raise ValidationError(err.errors, subject=where) from None
    return out
