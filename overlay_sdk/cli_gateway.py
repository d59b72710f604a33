"""``overlay gateway``, ``overlay status`` and ``overlay metrics``: the data plane from a
terminal (see :mod:`overlay_sdk.cli`)."""

from __future__ import annotations

import logging

import click

from overlay_sdk.cli_support import TABLE_OR_JSON, emit, handles_errors, plane, to_json
from overlay_sdk.errors import ValidationError

__all__ = ["gateway", "metrics", "status"]


def _endpoints(values: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        key, sep, url = value.partition("=")
        if not sep or ":" not in key or not url:
            raise ValidationError.at("--endpoint", f"{value!r}: write MODEL:VERSION=URL, e.g. "
                                     "scorer:1=http://127.0.0.1:9000")
        out[key] = url
    return out


@click.command()
@click.option("--port", type=int, default=8700, show_default=True,
              help="TCP port to listen on (0: any free port).")
@click.option("--host", "bind", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every interface).")
@click.option("--token", envvar="OVERLAY_GATEWAY_TOKEN",
              help="Bearer token required on invoke and admin endpoints "
              "(default: $OVERLAY_GATEWAY_TOKEN; none: open).")
@click.option("--endpoint", "endpoints", multiple=True, metavar="MODEL:VERSION=URL",
              help="Where a container-image version listens; repeat for several.")
@click.option("--telemetry-url", envvar="OVERLAY_TELEMETRY_URL",
              help="SQLAlchemy URL for call records (default: sqlite in the overlay home).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default="info", show_default=True)
@click.pass_context
@handles_errors
def gateway(ctx: click.Context, port: int, bind: str, token: str | None,
            endpoints: tuple[str, ...], telemetry_url: str | None, log_level: str) -> None:
    """Run the overlay gateway in the foreground until Ctrl-C.

    It proxies host traffic for every overlay in the store, answers model calls at
    POST /_overlay/OVERLAY/invoke with JSON {"inputs": ...}, and applies every change made
    from a notebook or this CLI within milliseconds. GET /_overlay/status shows what it
    serves; /healthz answers liveness probes.
    """
    from overlay_sdk.gateway import Gateway, GatewayConfig, serve
    from overlay_sdk.store import LocalStore

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(message)s")
    with plane(ctx) as cp:
        config = GatewayConfig(host=bind, port=port, token=token,
                               telemetry_url=telemetry_url or cp.telemetry_url,
                               endpoints=_endpoints(endpoints))

        def started(gw: Gateway) -> None:
            click.echo(f"overlay gateway listening on {gw.url} for the overlays of {cp.home}"
                       f"{' (bearer token required)' if token else ''}; Ctrl-C stops it",
                       err=True)

        assert isinstance(cp.store, LocalStore)
        serve(LocalStore(cp.store.path), cp.models, cp.home, config, on_start=started)


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
