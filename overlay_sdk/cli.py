"""The ``overlay`` command: the SDK's capabilities from a terminal.

A thin shell over :mod:`overlay_sdk.client`: every command connects to the control plane
(the overlay home: ``--home``, else ``$OVERLAY_HOME``, else the nearest ``.overlay/``),
calls the SDK and prints a table, YAML or JSON. Errors go to standard error as
``error: <what is wrong and what to do>`` with an exit code that says which kind:

    0 ok   1 other failure   2 bad input or usage   3 not found   4 conflict   5 backend

Installed as the ``overlay`` console script; also ``python -m overlay_sdk.cli``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from overlay_sdk.cli_analytics import alerts, cost, drift, prices
from overlay_sdk.cli_cluster import diff, migrate, render
from overlay_sdk.cli_gateway import gateway, metrics, status
from overlay_sdk.cli_models import models
from overlay_sdk.cli_operator import operator
from overlay_sdk.cli_support import (
    EPILOG,
    EXIT_CODES,
    FILENAME,
    OUTPUT,
    TABLE_OR_JSON,
    emit,
    handles_errors,
    plane,
    read_overlays,
    table,
    to_json,
)
from overlay_sdk.errors import NotFoundError
from overlay_sdk.registry_backend import safe_uri

if TYPE_CHECKING:
    import pandas as pd

    from overlay_sdk.client import ControlPlane

__all__ = ["EXIT_CODES", "cli", "main"]


@click.group(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home", envvar="OVERLAY_HOME", callback=lambda _c, _p, v: _home(v),
    help="Overlay home folder (default: $OVERLAY_HOME, else the nearest .overlay/ at or above "
    "the current directory, else ./.overlay/), or k8s://CONTEXT/NAMESPACE for the overlays "
    "of a cluster namespace (with --registry-uri; k8s:///NAMESPACE: the current context).",
)
@click.option(
    "--registry-uri", envvar="OVERLAY_REGISTRY_URI",
    help="MLflow tracking URI of the model registry (default: sqlite in the overlay home).",
)
@click.option(
    "--author", envvar="OVERLAY_AUTHOR", help="Author recorded on revisions (default: $USER)."
)
@click.version_option(package_name="overlay-sdk", prog_name="overlay")
@click.pass_context
def cli(ctx: click.Context, home: str | Path | None, registry_uri: str | None,
        author: str | None) -> None:
    """Add AI to legacy web applications as overlays: register models, route traffic.

    The same control plane as `import overlay_sdk as ov; ov.connect()` in a notebook.
    """
    ctx.obj = {"home": home, "registry_uri": registry_uri, "author": author}


def _home(value: str | None) -> str | Path | None:
    """--home as connect() takes it: a cluster address as it is, else a folder path."""
    if value is None or "://" in value:
        return value
    return Path(value)


@cli.command()
@click.pass_context
@handles_errors
def init(ctx: click.Context) -> None:
    """Create (or open) the overlay home and say what is in it."""
    with plane(ctx) as cp:
        click.echo(f"overlay home: {cp.home}")
        click.echo(f"  overlay store: {cp.address} ({len(cp.overlays)} overlays)")
        click.echo(f"  model registry: {safe_uri(cp.models.tracking_uri)} "
                   f"({len(cp.models.list())} models)")


@cli.command()
@FILENAME
@click.option("-m", "--message", default="", help="Why: recorded with the revision.")
@click.pass_context
@handles_errors
def apply(ctx: click.Context, path: str, message: str) -> None:
    """Create or update overlays from AIOverlay YAML (like kubectl apply).

    Every document is validated before any is written.
    """
    overlays = read_overlays(path)
    with plane(ctx) as cp:
        for _, overlay in overlays:
            o = cp.overlays.apply(overlay, message=message)
            click.echo(f"aioverlay/{o.name} applied (revision {o.revision}): {o.info.changes}")


@cli.command()
@click.argument("name", required=False)
@OUTPUT
@click.pass_context
@handles_errors
def get(ctx: click.Context, name: str | None, output: str) -> None:
    """List overlays, or show one (NAME) as a table, YAML or JSON."""
    with plane(ctx) as cp:
        if name is None:
            if output == "table":
                click.echo(table(cp.overlays.list()))
                return
            docs = [o.overlay.to_dict() for o in cp.overlays]
            if output == "json":
                click.echo(to_json({"apiVersion": "v1", "kind": "List", "items": docs}))
            else:
                import yaml

                click.echo(yaml.safe_dump_all(docs, sort_keys=False), nl=False)
            return
        o = cp.overlays.get(name)
        if output == "yaml":
            click.echo(o.to_yaml(), nl=False)
        elif output == "json":
            click.echo(to_json(o.overlay.to_dict()))
        else:
            frame = cp.overlays.list()
            click.echo(table(frame[frame["name"] == name]))


@cli.command()
@click.argument("name")
@TABLE_OR_JSON
@click.pass_context
@handles_errors
def history(ctx: click.Context, name: str, output: str) -> None:
    """Every revision of overlay NAME, oldest first: who, when, what changed."""
    with plane(ctx) as cp:
        emit(_history_frame(cp, name).reset_index(), output)


def _history_frame(cp: ControlPlane, name: str) -> pd.DataFrame:
    from overlay_sdk.client import Overlay

    revisions = cp.store.history(name)  # works for deleted overlays too
    live = next((r for r in reversed(revisions) if r.overlay is not None), None)
    if live is None:
        raise NotFoundError(f"overlay {name!r} has no revision with a spec")
    return Overlay(cp, live).history()[["action", "created_at", "author", "message", "changes"]]


@cli.command()
@click.argument("name")
@click.option("--to", "to", type=int, default=None,
              help="Revision number to re-apply (default: the latest earlier revision whose "
              "spec differs from the current one).")
@click.option("-m", "--message", default="", help="Why: recorded with the revision.")
@click.pass_context
@handles_errors
def rollback(ctx: click.Context, name: str, to: int | None, message: str) -> None:
    """Re-apply an earlier revision of overlay NAME as a new revision."""
    with plane(ctx) as cp:
        o = cp.overlays.get(name).rollback(to=to, message=message)
        click.echo(f"aioverlay/{o.name} rolled back: revision {o.revision} ({o.info.message}): "
                   f"{o.info.changes}")


@cli.command()
@click.argument("name")
@click.option("--missing-ok", is_flag=True, help="Succeed when NAME does not exist.")
@click.option("-m", "--message", default="", help="Why: recorded with the deletion.")
@click.pass_context
@handles_errors
def delete(ctx: click.Context, name: str, missing_ok: bool, message: str) -> None:
    """Delete overlay NAME (its history is kept; re-creating it continues the numbering)."""
    with plane(ctx) as cp:
        existed = name in cp.overlays
        cp.overlays.delete(name, missing_ok=missing_ok, message=message)
        click.echo(f"aioverlay/{name} deleted" if existed else f"aioverlay/{name} not found")


cli.add_command(models)
cli.add_command(gateway)
cli.add_command(status)
cli.add_command(metrics)
cli.add_command(operator)
for command in (render, diff, migrate):
    cli.add_command(command)
for command in (drift, cost, alerts, prices):
    cli.add_command(command)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (for tests and ``python -m``)."""
    try:
        cli.main(args=argv, prog_name="overlay", standalone_mode=True)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
