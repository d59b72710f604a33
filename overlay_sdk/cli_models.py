"""``overlay models ...``: registered models, versions, aliases and rollback from a terminal.

Thin commands over ``cp.models`` (:class:`overlay_sdk.registry.ModelRegistry`); added to
the root group by :mod:`overlay_sdk.cli`.
"""

from __future__ import annotations

import json
from typing import Any

import click

from overlay_sdk.cli_support import TABLE_OR_JSON, emit, fail, handles_errors, plane, to_json
from overlay_sdk.errors import NotFoundError, ValidationError

__all__ = ["models"]


@click.group()
def models() -> None:
    """Registered models and their versions (MLflow model registry)."""


@models.command("list")
@TABLE_OR_JSON
@click.pass_context
@handles_errors
def models_list(ctx: click.Context, output: str) -> None:
    """One line per registered model."""
    with plane(ctx) as cp:
        emit(cp.models.list(), output)


@models.command("versions")
@click.argument("name")
@TABLE_OR_JSON
@click.pass_context
@handles_errors
def models_versions(ctx: click.Context, name: str, output: str) -> None:
    """Versions of model NAME: label, SHA-256, created, source, aliases."""
    with plane(ctx) as cp:
        frame = cp.models.versions(name)
        if output == "table":
            frame = frame.assign(sha256=frame["sha256"].str[:12])
            if "ui" in frame and frame["ui"].isna().all():
                frame = frame.drop(columns=["ui"])  # no MLflow UI address configured
        emit(frame, output)


def _pairs(option: str, items: tuple[str, ...], *, numbers: frozenset[str] | None = None
           ) -> dict[str, Any]:
    """``KEY=VALUE`` pairs -> dict.

    With ``numbers`` None every value that reads as JSON is parsed (``temperature=0.2`` ->
    0.2, ``stream=true`` -> True); otherwise values stay text except the keys in
    ``numbers``, read as int or float when they look like one (``fraction=.5``).
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValidationError.at(option, f"{item!r} is not KEY=VALUE, e.g. cpu=2")
        if key in out:
            raise ValidationError.at(option, f"{key} is given twice; give each key once")
        value: Any = raw
        if numbers is None:
            try:
                value = json.loads(raw)
            except ValueError:
                value = raw
        elif key in numbers:
            try:
                value = int(raw)
            except ValueError:
                try:
                    value = float(raw)
                except ValueError:
                    value = raw
        out[key] = value
    return out


_RESOURCE_NUMBERS = frozenset({"cpu", "fraction", "gpu"})
_OPTIONS_OF_KIND = {
    "--uri": set(),
    "--provider": {"--param", "--api-key-env"},
    "--image": {"--port", "--health-path"},
}


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
    given = {opt for opt, value in (("--param", params), ("--api-key-env", api_key_env),
                                    ("--port", port), ("--health-path", health_path))
             if value}
    stray = sorted(given - _OPTIONS_OF_KIND[kinds[0]])
    if stray:
        raise ValidationError.at(
            stray[0], f"{', '.join(stray)} {'does' if len(stray) == 1 else 'do'} not apply "
            f"with {kinds[0]}; remove {'it' if len(stray) == 1 else 'them'}"
        )
    kwargs: dict[str, Any] = {"label": label}
    if description is not None:
        kwargs["description"] = description
    if resources:
        kwargs["resources"] = _pairs("--resource", resources, numbers=_RESOURCE_NUMBERS)
    if provider:
        kwargs.update(provider=provider, params=_pairs("--param", params),
                      api_key_env=api_key_env)
    elif image:
        kwargs.update(image=image, port=port, health_path=health_path)
    else:
        kwargs["model"] = uri
    with plane(ctx) as cp:
        v = cp.models.register(name, **kwargs)
        if output == "json":
            click.echo(to_json({"name": v.name, "version": v.version, "sha256": v.sha256,
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
    with plane(ctx) as cp:
        try:
            before: str | None = cp.models.get_version_by_alias(name, alias).version
        except NotFoundError:  # a deleted alias can be restored by a rollback
            before = None
        v = cp.models.rollback(name, to=to, alias=alias, reason=reason, author=cp.author)
        click.echo(f"{name}@{alias}: {before or '(none)'} -> {v.version}"
                   if before != v.version
                   else f"{name}@{alias} already at {v.version}: nothing to do")


@models.group("alias")
def alias_group() -> None:
    """Aliases: named pointers to versions that overlays can route to (NAME@ALIAS)."""


@alias_group.command("set")
@click.argument("name")
@click.argument("alias")
@click.argument("version")
@click.option("-m", "--message", "reason", default=None, help="Why: recorded with the move.")
@click.pass_context
@handles_errors
def alias_set(ctx: click.Context, name: str, alias: str, version: str,
              reason: str | None) -> None:
    """Point ALIAS of model NAME at VERSION; overlays naming NAME@ALIAS follow."""
    with plane(ctx) as cp:
        v = cp.models.set_alias(name, alias, version, reason=reason, author=cp.author)
        click.echo(f"{name}@{alias} -> {v.version}")


@alias_group.command("delete")
@click.argument("name")
@click.argument("alias")
@click.option("-m", "--message", "reason", default=None, help="Why: recorded with the move.")
@click.pass_context
@handles_errors
def alias_delete(ctx: click.Context, name: str, alias: str, reason: str | None) -> None:
    """Remove ALIAS from model NAME (recorded; a rollback can restore it)."""
    with plane(ctx) as cp:
        cp.models.delete_alias(name, alias, reason=reason, author=cp.author)
        click.echo(f"{name}@{alias} deleted")


@alias_group.command("history")
@click.argument("name")
@click.option("--alias", default=None, help="Only this alias (default: all).")
@TABLE_OR_JSON
@click.pass_context
@handles_errors
def alias_history(ctx: click.Context, name: str, alias: str | None, output: str) -> None:
    """Every recorded alias move of model NAME: time, alias, version, previous, who, why."""
    with plane(ctx) as cp:
        emit(cp.models.alias_history(name, alias=alias), output)


@models.command("serving-at")
@click.argument("name")
@click.argument("when")
@click.option("--alias", default="serving", show_default=True, help="The alias to look up.")
@click.pass_context
@handles_errors
def serving_at(ctx: click.Context, name: str, when: str, alias: str) -> None:
    """Which version of NAME the alias pointed at WHEN (a time or a phrase: 'yesterday')."""
    with plane(ctx) as cp:
        v = cp.models.serving_at(name, when, alias=alias)
        if v is None:
            fail(f"{name}@{alias} pointed at no version at {when}", 3)
        else:
            click.echo(f"{name}@{alias} at {when}: {v.version} ({v.label or 'no label'})")


@models.command("verify")
@click.argument("name")
@click.argument("version")
@click.pass_context
@handles_errors
def models_verify(ctx: click.Context, name: str, version: str) -> None:
    """Recompute the SHA-256 of NAME:VERSION from its stored artifacts; exit 1 on mismatch."""
    with plane(ctx) as cp:
        result = cp.models.verify(name, version)
        if result.ok:
            click.echo(str(result))
        else:
            fail(str(result), 1)
