"""``overlay gateway``, ``overlay status`` and ``overlay metrics``: the data plane from a
terminal (see :mod:`overlay_sdk.cli`).

``overlay gateway`` runs the embedded gateway over the overlay home by default. In a
cluster the operator runs it with the environment of its Deployment
(:mod:`overlay_sdk.k8s.render`): ``OVERLAY_STORE=k8s:///NS`` (the AIOverlay resources),
``OVERLAY_REGISTRY_URI`` (the MLflow tracking server, the root ``--registry-uri``),
``OVERLAY_NAME`` (the one overlay it serves), ``OVERLAY_SHADOW=mesh``,
``OVERLAY_MODELS_URL`` and ``OVERLAY_MODELS_PORT`` (see :mod:`overlay_sdk.gateway.mesh`).
``OVERLAY_HOST_URL`` and ``OVERLAY_NAMESPACE`` are informative: the overlay's spec in the
store names its host, and the store address its namespace.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from overlay_sdk.cli_support import TABLE_OR_JSON, emit, handles_errors, plane, to_json
from overlay_sdk.errors import BackendError, FieldError, ValidationError

if TYPE_CHECKING:
    from overlay_sdk.store import Store

__all__ = ["gateway", "metrics", "status"]

STORE_OPTION = "--store (OVERLAY_STORE)"
# GatewayConfig fields -> the option (and variable) that sets them, for error messages
_OPTIONS = {
    "port": "--port", "token": "--token (OVERLAY_GATEWAY_TOKEN)",
    "overlay": "--overlay (OVERLAY_NAME)", "shadow": "--shadow (OVERLAY_SHADOW)",
    "models_url": "--models-url (OVERLAY_MODELS_URL)",
    "models_port": "--models-port (OVERLAY_MODELS_PORT)",
}


def _endpoints(values: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        key, sep, url = value.partition("=")
        if not sep or ":" not in key or not url:
            raise ValidationError.at("--endpoint", f"{value!r}: write MODEL:VERSION=URL, e.g. "
                                     "scorer:1=http://127.0.0.1:9000")
        out[key] = url
    return out


def _as_options(err: ValidationError) -> ValidationError:
    """``err`` with GatewayConfig field names replaced by the options that set them."""
    return ValidationError([FieldError(_OPTIONS.get(e.path.split("[")[0], e.path), e.message)
                            for e in err.errors])


def _cluster_store(url: str) -> Store:
    """The Kubernetes store at ``url`` (``--store``); errors name the option."""
    if not url.strip().lower().startswith("k8s://"):
        raise ValidationError.at(STORE_OPTION, f"{url!r:.120} is not a cluster store address: "
                                 "give k8s://CONTEXT/NAMESPACE (k8s:///NAMESPACE: the current "
                                 "context, or the pod's service account), or leave it unset to "
                                 "serve the overlay home's store")
    try:
        from overlay_sdk.store.kubernetes import KubernetesStore
    except ImportError as err:
        raise BackendError(f"{STORE_OPTION}: {url} needs the cluster backend ({err.name} is "
                           "not installed): pip install 'overlay-sdk[k8s]'") from None
    try:
        return KubernetesStore.from_url(url)
    except ValidationError as err:
        raise ValidationError([FieldError(STORE_OPTION, str(e)) for e in err.errors]) from None


def _open_cluster(ctx: click.Context, url: str) -> tuple[Store, Any, Path]:
    """(store, registry, home) of a cluster's gateway."""
    from overlay_sdk.home import resolve_home
    from overlay_sdk.registry import ModelRegistry

    opts = ctx.find_root().obj or {}
    store = _cluster_store(url)
    try:
        registry_uri = opts.get("registry_uri")
        if not registry_uri:
            raise ValidationError.at(
                "--registry-uri (OVERLAY_REGISTRY_URI)", f"{STORE_OPTION} serves a cluster's "
                "overlays, whose versions are in an MLflow tracking server: give `overlay "
                "--registry-uri URI gateway ...` or set OVERLAY_REGISTRY_URI")
        home_option = opts.get("home")
        try:
            home = resolve_home(home_option)
        except OSError as err:
            raise ValidationError.at(
                "--home (OVERLAY_HOME)", f"cannot use {home_option or err.filename!s} as the "
                f"overlay home ({err.strerror}); give a folder the gateway can write (its "
                "status book and telemetry stay there)") from None
        registry = ModelRegistry(registry_uri, lock_dir=home)
    except BaseException:
        store.close()
        raise
    return store, registry, home


@click.command()
@click.option("--port", type=int, default=8700, show_default=True,
              help="TCP port to listen on (0: any free port).")
@click.option("--host", "bind", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every interface).")
@click.option("--token", envvar="OVERLAY_GATEWAY_TOKEN",
              help="Bearer token required on invoke and admin endpoints "
              "(default: $OVERLAY_GATEWAY_TOKEN; none: open).")
@click.option("--endpoint", "endpoints", multiple=True, metavar="MODEL:VERSION=URL",
              help="Where a container-image version listens (with --shadow mesh, any "
              "self-hosted version, instead of --models-url); repeat for several.")
@click.option("--telemetry-url", envvar="OVERLAY_TELEMETRY_URL",
              help="SQLAlchemy URL for call records (default: sqlite in the overlay home).")
@click.option("--store", "store_url", envvar="OVERLAY_STORE", metavar="k8s://CONTEXT/NS",
              help="Serve the AIOverlay resources of a Kubernetes namespace "
              "(k8s:///NAMESPACE: the current context, or the pod's service account; needs "
              "the k8s extra and the root --registry-uri) instead of the overlay home's "
              "store (default: $OVERLAY_STORE, else the overlay home).")
@click.option("--overlay", "only", envvar="OVERLAY_NAME", metavar="NAME",
              help="Serve this overlay only; the store's other overlays are ignored "
              "(default: $OVERLAY_NAME, else every overlay of the store).")
@click.option("--shadow", type=click.Choice(["gateway", "mesh"]), envvar="OVERLAY_SHADOW",
              default="gateway", show_default=True,
              help="Who makes shadow copies. gateway: the gateway forks them and loads "
              "every version itself. mesh (behind Istio): Istio mirrors them, and MLflow "
              "and image versions are called at --models-url with the header "
              "x-overlay-version: MODEL:VERSION; provider versions are still called "
              "directly ($OVERLAY_SHADOW).")
@click.option("--models-url", envvar="OVERLAY_MODELS_URL", metavar="URL",
              help="With --shadow mesh: the overlay's models Service, e.g. "
              "http://NAME-models.NS.svc.cluster.local:8080 ($OVERLAY_MODELS_URL).")
@click.option("--models-port", type=click.IntRange(0, 65535), envvar="OVERLAY_MODELS_PORT",
              metavar="PORT",
              help="Also listen on PORT for the mesh's calls to provider versions: POST "
              "/invocations (MLflow scoring format) with x-overlay-version; a copy Istio "
              "mirrored (Host ending in -shadow) is answered by the shadow version and "
              "recorded as shadow ($OVERLAY_MODELS_PORT; default: no such listener).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default="info", show_default=True)
@click.pass_context
@handles_errors
def gateway(ctx: click.Context, port: int, bind: str, token: str | None,
            endpoints: tuple[str, ...], telemetry_url: str | None, store_url: str | None,
            only: str | None, shadow: str, models_url: str | None, models_port: int | None,
            log_level: str) -> None:
    """Run the overlay gateway in the foreground until SIGINT (Ctrl-C) or SIGTERM.

    It proxies host traffic for every overlay in the store (or --overlay NAME), answers
    model calls at POST /_overlay/OVERLAY/invoke with JSON {"inputs": ...}, and applies
    every change made from a notebook, this CLI or kubectl within milliseconds. GET
    /_overlay/status shows what it serves; /healthz answers liveness probes and /readyz
    readiness probes (503 with the reason until what it serves is loaded).

    In a cluster the operator's Deployment sets OVERLAY_STORE, OVERLAY_REGISTRY_URI,
    OVERLAY_NAME, OVERLAY_SHADOW=mesh, OVERLAY_MODELS_URL and OVERLAY_MODELS_PORT.
    """
    from overlay_sdk.gateway import Gateway, GatewayConfig, check_config, serve
    from overlay_sdk.store import LocalStore

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(message)s")
    config = GatewayConfig(host=bind, port=port, token=token, telemetry_url=telemetry_url,
                           endpoints=_endpoints(endpoints), overlay=only or None,
                           shadow="mesh" if shadow == "mesh" else "gateway",
                           models_url=models_url or None, models_port=models_port)
    try:
        check_config(config)
    except ValidationError as err:
        raise _as_options(err) from None

    def started(where: str) -> Any:
        def report(gw: Gateway) -> None:
            what = f"overlay {only!r}" if only else "the overlays"
            extra = [f"shadow copies by the {'mesh' if config.mesh else 'gateway'}"]
            if gw.models_listen_url:
                extra.append(f"models port {gw.models_listen_url}")
            if token:
                extra.append("bearer token required")
            click.echo(f"overlay gateway listening on {gw.url} for {what} of {where} "
                       f"({'; '.join(extra)}); Ctrl-C stops it", err=True)
        return report

    if store_url:
        store, registry, home = _open_cluster(ctx, store_url)
        config.telemetry_url = telemetry_url or f"sqlite:///{home / 'telemetry.db'}"
        serve(store, registry, home, config, on_start=started(store_url))
        return
    with plane(ctx) as cp:
        config.telemetry_url = telemetry_url or cp.telemetry_url
        if not isinstance(cp.store, LocalStore):
            raise ValidationError.at("--home (OVERLAY_HOME)", "names a cluster; the gateway "
                                     f"serves a cluster's overlays with {STORE_OPTION}=URL")
        serve(LocalStore(cp.store.path), cp.models, cp.home, config,
              on_start=started(str(cp.home)))


@click.command()
@click.argument("name")
@TABLE_OR_JSON
@click.pass_context
@handles_errors
def status(ctx: click.Context, name: str, output: str) -> None:
    """What the running gateway serves for overlay NAME, and since when."""
    with plane(ctx) as cp:
        st = cp.overlays.get(name).status()
        if output == "json":
            click.echo(to_json({
                "name": st.name, "revision": st.revision, "state": st.state,
                "servingRevision": st.serving_revision,
                "appliedAt": st.applied_at.isoformat() if st.applied_at else None,
                "propagationMs": st.propagation_ms, "gateway": st.gateway_url,
                "message": st.message, "versions": st.versions}))
        else:
            click.echo(str(st))
            if len(st.history):
                emit(st.history.head(10), "table")


@click.command()
@click.argument("name")
@click.option("--since", help='Only calls after this ("an hour ago", ISO 8601).')
@click.option("--by", type=click.Choice(["version", "minute", "hour", "day"]),
              default="version", show_default=True)
@TABLE_OR_JSON
@click.pass_context
@handles_errors
def metrics(ctx: click.Context, name: str, since: str | None, by: str, output: str) -> None:
    """Model calls of overlay NAME per version: calls, errors, latency percentiles."""
    with plane(ctx) as cp:
        emit(cp.overlays.get(name).metrics(since=since, by=by), output)
