"""The ``overlay`` command: the SDK's capabilities from a terminal.

A thin shell over :mod:`overlay_sdk.client`: every command connects to the control plane
(the overlay home: ``--home``, else ``$OVERLAY_HOME``, else the nearest ``.overlay/``),
calls the SDK and prints a table, YAML or JSON. Errors go to standard error as
``error: <what is wrong and what to do>`` with an exit code that says which kind:

    0 ok   1 other failure   2 bad input or usage   3 not found   4 conflict   5 backend

Installed as the ``overlay`` console script; also ``python -m overlay_sdk.cli``.
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

__all__ = ["EXIT_CODES", "cli", "main"]

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


def _exit_code(err: OverlayError) -> int:
    for kind, code in EXIT_CODES.items():
        if isinstance(err, kind):
            return code
    return 1


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def handles_errors(fn: F) -> F:
    """Turn overlay-sdk errors into ``error: ...`` on stderr and the matching exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except OverlayError as err:
            _fail(str(err), _exit_code(err))

    return wrapper  # type: ignore[return-value]


@contextmanager
def _plane(ctx: click.Context) -> Iterator[ControlPlane]:
    from overlay_sdk.client import connect

    opts = ctx.find_root().obj or {}
    with connect(opts.get("home"), registry_uri=opts.get("registry_uri"),
                 author=opts.get("author")) as cp:
        yield cp


def _table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "(none)"
    text: str = frame.to_string(index=False)
    return text


def _emit(frame: pd.DataFrame, output: str) -> None:
    """A DataFrame as a table or as JSON records."""
    if output == "json":
        click.echo(_json(frame.to_dict(orient="records")))
    else:
        click.echo(_table(frame))


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, default=str, ensure_ascii=False)


TABLE_OR_JSON = click.option(
    "-o", "--output", type=click.Choice(["table", "json"]), default="table",
    show_default=True, help="Output format.",
)

OUTPUT = click.option(
    "-o", "--output", type=click.Choice(["table", "yaml", "json"]), default="table",
    show_default=True, help="Output format.",
)


@click.group(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home", type=click.Path(file_okay=False, path_type=Path), envvar="OVERLAY_HOME",
    help="Overlay home folder (default: $OVERLAY_HOME, else the nearest .overlay/ at or above "
    "the current directory, else ./.overlay/).",
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
def cli(ctx: click.Context, home: Path | None, registry_uri: str | None,
        author: str | None) -> None:
    """Add AI to legacy web applications as overlays: register models, route traffic.

    The same control plane as `import overlay_sdk as ov; ov.connect()` in a notebook.
    """
    ctx.obj = {"home": home, "registry_uri": registry_uri, "author": author}


@cli.command()
@click.pass_context
@handles_errors
def init(ctx: click.Context) -> None:
    """Create (or open) the overlay home and say what is in it."""
    with _plane(ctx) as cp:
        click.echo(f"overlay home: {cp.home}")
        click.echo(f"  overlay store: {cp.home / 'overlays.db'} ({len(cp.overlays)} overlays)")
        click.echo(f"  model registry: {cp.models.tracking_uri} "
                   f"({len(cp.models.list())} models)")


def _documents(path: str) -> list[Any]:
    from overlay_sdk.spec import load_yaml

    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else "not UTF-8 text"
        raise ValidationError.at("-f", f"cannot read {path}: {reason}") from None
    docs: list[Any] = load_yaml(text, many=True, where=f"-f {path}")
    if not docs:
        raise ValidationError.at("-f", f"{path} holds no document; give an AIOverlay in YAML")
    return docs


@cli.command()
@click.option("-f", "--filename", "path", required=True,
              help="YAML file with one or more AIOverlay documents ('-' for standard input).")
@click.option("-m", "--message", default="", help="Why: recorded with the revision.")
@click.pass_context
@handles_errors
def apply(ctx: click.Context, path: str, message: str) -> None:
    """Create or update overlays from AIOverlay YAML (like kubectl apply).

    Every document is validated before any is written.
    """
    from overlay_sdk.spec import parse_overlay

    overlays = []
    for i, doc in enumerate(_documents(path)):
        try:
            overlays.append(parse_overlay(doc))
        except ValidationError as err:
            where = f"document {i + 1} of {path}" if path != "-" else f"document {i + 1}"
            raise ValidationError(err.errors, subject=where) from None
    with _plane(ctx) as cp:
        for overlay in overlays:
            o = cp.overlays.apply(overlay, message=message)
            click.echo(f"aioverlay/{o.name} applied (revision {o.revision}): {o.info.changes}")


@cli.command()
@click.argument("name", required=False)
@OUTPUT
@click.pass_context
@handles_errors
def get(ctx: click.Context, name: str | None, output: str) -> None:
    """List overlays, or show one (NAME) as a table, YAML or JSON."""
    with _plane(ctx) as cp:
        if name is None:
            if output == "table":
                click.echo(_table(cp.overlays.list()))
                return
            docs = [o.overlay.to_dict() for o in cp.overlays]
            if output == "json":
                click.echo(_json({"apiVersion": "v1", "kind": "List", "items": docs}))
            else:
                import yaml

                click.echo(yaml.safe_dump_all(docs, sort_keys=False), nl=False)
            return
        o = cp.overlays.get(name)
        if output == "yaml":
            click.echo(o.to_yaml(), nl=False)
        elif output == "json":
            click.echo(_json(o.overlay.to_dict()))
        else:
            frame = cp.overlays.list()
            click.echo(_table(frame[frame["name"] == name]))


@cli.command()
@click.argument("name")
@TABLE_OR_JSON
@click.pass_context
@handles_errors
def history(ctx: click.Context, name: str, output: str) -> None:
    """Every revision of overlay NAME, oldest first: who, when, what changed."""
    with _plane(ctx) as cp:
        _emit(_history_frame(cp, name).reset_index(), output)


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
    with _plane(ctx) as cp:
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
    with _plane(ctx) as cp:
        existed = name in cp.overlays
        cp.overlays.delete(name, missing_ok=missing_ok, message=message)
        click.echo(f"aioverlay/{name} deleted" if existed else f"aioverlay/{name} not found")


@cli.group()
def models() -> None:
    """Registered models and their versions (MLflow model registry)."""


@models.command("list")
@TABLE_OR_JSON
@click.pass_context
@handles_errors
def models_list(ctx: click.Context, output: str) -> None:
    """One line per registered model."""
    with _plane(ctx) as cp:
        _emit(cp.models.list(), output)


@models.command("versions")
@click.argument("name")
@TABLE_OR_JSON
@click.pass_context
@handles_errors
def models_versions(ctx: click.Context, name: str, output: str) -> None:
    """Versions of model NAME: label, SHA-256, created, source, aliases."""
    with _plane(ctx) as cp:
        frame = cp.models.versions(name)
        if output == "table":
            frame = frame.assign(sha256=frame["sha256"].str[:12])
            if "ui" in frame and frame["ui"].isna().all():
                frame = frame.drop(columns=["ui"])  # no MLflow UI address configured
        _emit(frame, output)


def _pairs(option: str, items: tuple[str, ...]) -> dict[str, Any]:
    """``("model=gpt-4o-mini", "temperature=0.2")`` -> dict; JSON values parsed as JSON."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValidationError.at(option, f"{item!r} is not KEY=VALUE, e.g. model=gpt-4o-mini")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


@models.command("register")
@click.argument("name")
@click.option("--uri", default=None,
              help="An MLflow model to import: runs:/RUN_ID/PATH, models:/NAME/VERSION or "
              "models:/NAME@ALIAS.")
@click.option("--provider", type=click.Choice(["openai", "anthropic", "cohere", "ollama"]),
              default=None, help="A hosted model called over HTTP.")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="Provider parameter, repeatable (e.g. --param model=gpt-4o-mini).")
@click.option("--api-key-env", default=None, metavar="VARIABLE",
              help="NAME of the environment variable holding the provider's API key "
              "(never the key itself).")
@click.option("--image", default=None,
              help="A container image serving the model, e.g. ghcr.io/acme/scorer:1.4.")
@click.option("--port", type=int, default=None, help="Port the image listens on (8080).")
@click.option("--health-path", default=None, help="HTTP health check path, e.g. /healthz.")
@click.option("--resource", "resources", multiple=True, metavar="KEY=VALUE",
              help="Declared resources, repeatable: gpu=A100-80GB, fraction=0.25, cpu=2, "
              "memory=4Gi.")
@click.option("--label", default=None, help="A label for the version, e.g. v1.0.4-alpha.")
@click.option("--description", default=None, help="A description for the version.")
@TABLE_OR_JSON
@click.pass_context
@handles_errors
def models_register(ctx: click.Context, name: str, uri: str | None, provider: str | None,
                    params: tuple[str, ...], api_key_env: str | None, image: str | None,
                    port: int | None, health_path: str | None, resources: tuple[str, ...],
                    label: str | None, description: str | None, output: str) -> None:
    """Register a version of NAME: an MLflow model (--uri), a provider model (--provider)
    or a container image (--image).

    Identical content returns the existing version (identity is the SHA-256 of the content).

    \b
    Examples:
      overlay models register fraud --uri runs:/4f2a.../model --label v1.0.4-alpha
      overlay models register copilot --provider openai --param model=gpt-4o-mini \\
          --api-key-env OPENAI_API_KEY
      overlay models register scorer --image ghcr.io/acme/scorer:1.4 --port 8080 \\
          --health-path /healthz --resource cpu=2 --resource memory=4Gi
    """
    kinds = [k for k, v in (("--uri", uri), ("--provider", provider), ("--image", image)) if v]
    if len(kinds) != 1:
        raise ValidationError.at(
            "--uri", "give exactly one of --uri, --provider or --image"
            + (f" (got {', '.join(kinds)})" if kinds else "")
        )
    kwargs: dict[str, Any] = {"label": label}
    if description is not None:
        kwargs["description"] = description
    if resources:
        kwargs["resources"] = _pairs("--resource", resources)
    if provider:
        kwargs.update(provider=provider, params=_pairs("--param", params),
                      api_key_env=api_key_env)
    elif image:
        kwargs.update(image=image, port=port, health_path=health_path)
    else:
        kwargs["model"] = uri
    with _plane(ctx) as cp:
        v = cp.models.register(name, **kwargs)
        if output == "json":
            click.echo(_json({"name": v.name, "version": v.version, "sha256": v.sha256,
                              "label": v.label, "source": v.source, "flavor": v.flavor}))
        else:
            click.echo(f"{v.name}:{v.version} sha256 {v.sha256} ({v.flavor}, from {v.source})")


@models.command("rollback")
@click.argument("name")
@click.option("--to", "to", default="previous", show_default=True,
              help="previous, a version (3), a label (v1.0.4), an ISO time with offset "
              "(2026-11-25T09:00Z), yesterday, last week, or 'N minutes|hours|days|weeks ago'.")
@click.option("--alias", default="serving", show_default=True, help="The alias to move.")
@click.option("-m", "--message", "reason", default=None, help="Why: recorded with the move.")
@click.pass_context
@handles_errors
def models_rollback(ctx: click.Context, name: str, to: str, alias: str,
                    reason: str | None) -> None:
    """Move alias (serving) of model NAME back; overlays naming NAME@ALIAS follow.

    A time means "the version that was serving then". Every move is recorded.
    """
    with _plane(ctx) as cp:
        before = cp.models.get_version_by_alias(name, alias).version
        v = cp.models.rollback(name, to=to, alias=alias, reason=reason)
        click.echo(f"{name}@{alias}: {before} -> {v.version}" if before != v.version
                   else f"{name}@{alias} already at {v.version}: nothing to do")


@models.command("verify")
@click.argument("name")
@click.argument("version")
@click.pass_context
@handles_errors
def models_verify(ctx: click.Context, name: str, version: str) -> None:
    """Recompute the SHA-256 of NAME:VERSION from its stored artifacts; exit 1 on mismatch."""
    with _plane(ctx) as cp:
        result = cp.models.verify(name, version)
        if result.ok:
            click.echo(str(result))
        else:
            _fail(str(result), 1)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (for tests and ``python -m``)."""
    try:
        cli.main(args=argv, prog_name="overlay", standalone_mode=True)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
