"""``overlay render``, ``overlay diff`` and ``overlay migrate``: GitOps and the way from the
embedded default to a cluster (see :mod:`overlay_sdk.cli`)."""

from __future__ import annotations

import dataclasses
import difflib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click
import yaml

from overlay_sdk.cli_support import (
    FILENAME,
    TABLE_OR_JSON,
    emit,
    handles_errors,
    plane,
    read_overlays,
)
from overlay_sdk.errors import BackendError, FieldError, NotFoundError, ValidationError

if TYPE_CHECKING:
    from overlay_sdk.k8s.render import RenderSettings
    from overlay_sdk.registry import ModelRegistry
    from overlay_sdk.spec import AIOverlay

__all__ = ["diff", "migrate", "render"]

NAMESPACE = click.option("-n", "--namespace", default="default", show_default=True,
                         help="Namespace of overlays whose metadata names none.")
RESOLVE = click.option(
    "--resolve", is_flag=True,
    help="Read each version from the model registry (--registry-uri): provider versions get "
    "no model server, images run their image, aliases are resolved. Without it every version "
    "is served by the MLflow model server.")
TRACKING_URI = click.option(
    "--tracking-uri", default=None,
    help="MLflow tracking server the model servers and the gateway read (default: the "
    "in-cluster address in overlay_sdk.k8s.manifests.RenderSettings).")


def _settings(namespace: str, tracking_uri: str | None) -> RenderSettings:
    from overlay_sdk.k8s.render import RenderSettings

    settings = RenderSettings(namespace=namespace)
    if tracking_uri:
        settings = dataclasses.replace(settings, tracking_uri=tracking_uri)
    return settings


def _manifests(overlay: AIOverlay, registry: ModelRegistry | None, where: str,
               settings: RenderSettings) -> str:
    """The manifests of ``overlay`` as YAML (versions read from ``registry`` if given)."""
    from overlay_sdk.k8s.operator import RegistryResolver
    from overlay_sdk.k8s.reconcile import Failure, resolve_versions
    from overlay_sdk.k8s.render import render_yaml

    versions = None
    if registry is not None:
        try:
            overlay, versions = resolve_versions(overlay, RegistryResolver(registry))
        except Failure as failure:
            if failure.reason == "RegistryUnavailable":
                raise BackendError(f"{where}: {failure.message}") from None
            raise ValidationError.at("-f", f"{where}: {failure.message}") from None
    try:
        return render_yaml(overlay, versions, settings=settings)
    except ValidationError as err:
        hint = "" if registry is not None else (
            "; give --resolve to read aliases and versions from the model registry")
        errors = [*err.errors[:-1], FieldError(err.errors[-1].path,
                                               err.errors[-1].message + hint)]
        raise ValidationError(errors, subject=where) from None


@contextmanager
def _registry(ctx: click.Context, resolve: bool) -> Iterator[ModelRegistry | None]:
    if not resolve:
        yield None
        return
    with plane(ctx) as cp:
        yield cp.models


@click.command()
@FILENAME
@NAMESPACE
@RESOLVE
@TRACKING_URI
@click.pass_context
@handles_errors
def render(ctx: click.Context, path: str, namespace: str, resolve: bool,
           tracking_uri: str | None) -> None:
    """Print the Kubernetes manifests of AIOverlay YAML (GitOps: commit or pipe them to
    `kubectl apply -f -`), as the operator would apply them: a Deployment and Service per
    self-hosted version, a DestinationRule and a VirtualService carrying the route plan,
    and the gateway. Nothing is written.
    """
    overlays = read_overlays(path)
    settings = _settings(namespace, tracking_uri)
    with _registry(ctx, resolve) as registry:
        texts = [_manifests(o, registry, where, settings) for where, o in overlays]
    click.echo("".join(texts), nl=False)


def _comparable(overlay: AIOverlay | None) -> dict[str, Any] | None:
    """The document as compared: without a namespace (the store's own decides it)."""
    if overlay is None:
        return None
    doc = overlay.to_dict()
    doc["metadata"].pop("namespace", None)
    return doc


def _unified(old: str, new: str, old_label: str, new_label: str) -> list[str]:
    lines = difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                 old_label, new_label)
    return [line.rstrip("\n") for line in lines]


def _styled(line: str) -> str:
    if line.startswith(("+++", "---")):
        return click.style(line, bold=True)
    if line.startswith("+"):
        return click.style(line, fg="green")
    if line.startswith("-"):
        return click.style(line, fg="red")
    if line.startswith("@@"):
        return click.style(line, fg="cyan")
    return line


@click.command()
@FILENAME
@click.option("--manifests", is_flag=True,
              help="Also compare the Kubernetes manifests the operator renders from the "
              "current revision and from the file (see `overlay render`).")
@NAMESPACE
@RESOLVE
@TRACKING_URI
@click.pass_context
@handles_errors
def diff(ctx: click.Context, path: str, manifests: bool, namespace: str, resolve: bool,
         tracking_uri: str | None) -> None:
    """Show what `overlay apply -f FILE` would change, as a unified diff per overlay
    (like `kubectl diff`): the file's AIOverlay documents against the current revisions
    of the control plane (--home: the overlay home, or k8s://CONTEXT/NAMESPACE). Nothing is
    written.

    Exit status: 0 no differences, 1 differences, 2 and above an error (see below).
    """
    from overlay_sdk.diff import describe_change

    overlays = read_overlays(path)
    settings = _settings(namespace, tracking_uri)
    changed = False
    with plane(ctx) as cp:
        registry = cp.models if resolve else None
        for where, overlay in overlays:
            try:
                live = cp.store.get(overlay.name)
            except NotFoundError:
                live = None
            current = None if live is None else live.overlay
            old, new = _comparable(current), _comparable(overlay)
            label = f"aioverlay/{overlay.name}"
            if live is None:
                click.echo(f"# {label}: would be created ({where})")
            elif old == new:
                click.echo(f"# {label}: unchanged (revision {live.revision})")
            else:
                click.echo(f"# {label}: revision {live.revision} -> {live.revision + 1}: "
                           f"{describe_change(old, new)}")
            before = "" if old is None else yaml.safe_dump(old, sort_keys=False)
            after = yaml.safe_dump(new, sort_keys=False)
            where_live = "(none)" if live is None else f"live/{label} (revision {live.revision})"
            lines = _unified(before, after, where_live, where)
            if manifests:
                old_m = "" if current is None else _manifests(current, registry,
                                                             where_live, settings)
                new_m = _manifests(overlay, registry, where, settings)
                lines += _unified(old_m, new_m, f"{where_live} manifests", f"{where} manifests")
            changed = changed or bool(lines)
            for line in lines:
                click.echo(_styled(line))
    ctx.exit(1 if changed else 0)


@click.command()
@click.option("--to", "to", required=True, metavar="ADDRESS",
              help="Where to copy: k8s://CONTEXT/NAMESPACE (k8s:///NAMESPACE: the current "
              "context), or another overlay home folder.")
@click.option("--target-registry", metavar="URI",
              help="MLflow tracking URI of the registry the target uses: every model version "
              "the live overlays use must be there with the same SHA-256 before anything is "
              "copied. Without it, what to do with the registry is printed.")
@click.option("--overlay", "names", multiple=True, metavar="NAME",
              help="Copy only this overlay (repeat for several; default: all, deleted ones "
              "too).")
@click.option("--no-model-check", is_flag=True,
              help="Copy even though the target registry's versions were not checked.")
@click.option("--dry-run", is_flag=True, help="Write nothing; show what would be copied.")
@TABLE_OR_JSON
@click.pass_context
@handles_errors
def migrate(ctx: click.Context, to: str, target_registry: str | None, names: tuple[str, ...],
            no_model_check: bool, dry_run: bool, output: str) -> None:
    """Copy every overlay with its whole history (numbers, authors, times, messages,
    deletions) from this control plane (--home) to a cluster namespace or another home.

    Run it again at any time: what is copied already is skipped, an interrupted copy
    continues. An overlay whose history differs in the target (written there meanwhile)
    is not copied, never overwritten: exit status 4. Models are not copied: with
    --target-registry they are checked; without, the steps to move the registry are printed.
    """
    bar: Any = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None and sys.stderr.isatty():
            bar = click.progressbar(length=total, label="copying overlays", file=sys.stderr)
        if bar is not None:
            bar.update(done - bar.pos)

    with plane(ctx) as cp:
        try:
            report = cp.migrate(to, target_registry=target_registry, names=names or None,
                                check_models=False if no_model_check else None,
                                dry_run=dry_run, progress=progress)
        finally:
            if bar is not None:
                bar.render_finish()
    emit(report.frame(), output)
    click.echo(str(report), err=output == "json")
    if report.failed:
        ctx.exit(4)
