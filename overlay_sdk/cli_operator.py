"""``overlay operator run``: the Kubernetes operator from a terminal or a pod (see
:mod:`overlay_sdk.k8s.operator`; the root command is :mod:`overlay_sdk.cli`)."""

from __future__ import annotations

import logging
import os

import click

from overlay_sdk.cli_support import fail, handles_errors
from overlay_sdk.errors import FieldError, ValidationError

__all__ = ["operator"]

_RUN_EPILOG = """\b
Examples:
  overlay operator run --namespace team-a        # kubeconfig's current context
  overlay operator run -n team-a -n team-b --context kind-overlays \\
      --registry-uri http://127.0.0.1:5000 \\
      --tracking-uri http://mlflow.mlflow.svc.cluster.local:5000   # from a laptop
  overlay operator run --all-namespaces          # needs a ClusterRole, not deploy/rbac's Role

\b
In a cluster: `kubectl apply -k deploy/` runs it as the Deployment overlay-operator, with
`--namespace=$(POD_NAMESPACE)` and its ServiceAccount (RBAC: deploy/rbac/operator.yaml).
Ctrl-C or SIGTERM stops it after the handlers running finish.
"""


_OPTIONS = {"namespaces": "--namespace", "alert_interval": "--alert-interval"}


@click.group()
def operator() -> None:
    """The Kubernetes operator: AIOverlay resources -> Deployments, Services, Istio routes."""


@operator.command(epilog=_RUN_EPILOG)
@click.option("-n", "--namespace", "namespaces", multiple=True, metavar="NS",
              help="Watch the AIOverlays of NS (repeat for several).")
@click.option("-A", "--all-namespaces", is_flag=True,
              help="Watch every namespace (needs cluster-wide RBAC).")
@click.option("--kubeconfig", type=click.Path(dir_okay=False),
              help="Kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else the "
              "pod's service account).")
@click.option("--context", help="Kubeconfig context (default: its current context).")
@click.option("--registry-uri", envvar="OVERLAY_REGISTRY_URI",
              help="MLflow registry that says what runs each version (MLflow model, image, "
              "provider), as the operator reaches it (default: $OVERLAY_REGISTRY_URI, else "
              "the root --registry-uri, else http://mlflow.mlflow.svc.cluster.local:5000).")
@click.option("--tracking-uri", envvar="OVERLAY_TRACKING_URI",
              help="The same registry as the pods reach it: what the model servers and "
              "gateways are given (default: --registry-uri). Give it when the operator runs "
              "outside the cluster, e.g. --registry-uri http://127.0.0.1:5000 (a port-forward) "
              "--tracking-uri http://mlflow.mlflow.svc.cluster.local:5000.")
@click.option("--telemetry-url", envvar="OVERLAY_TELEMETRY_URL",
              help="SQLAlchemy URL of the call records: evaluates budget and drift alerts "
              "every --alert-interval and posts them as Events (default: "
              "$OVERLAY_TELEMETRY_URL; none: no alerts).")
@click.option("--alert-interval", type=click.FloatRange(min=1), default=60.0,
              show_default=True, help="Seconds between alert evaluations of an overlay.")
@click.option("--gateway-image", envvar="OVERLAY_GATEWAY_IMAGE",
              help="Image of the rendered gateways (default: the release's).")
@click.option("--model-server-image", envvar="OVERLAY_MODEL_SERVER_IMAGE",
              help="Image of the rendered MLflow model servers (default: the release's).")
@click.option("--liveness", metavar="URL",
              help="Serve health checks, e.g. http://0.0.0.0:8080/healthz (the Deployment's "
              "probes).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default="info", show_default=True)
@click.pass_context
@handles_errors
def run(ctx: click.Context, namespaces: tuple[str, ...], all_namespaces: bool,
        kubeconfig: str | None, context: str | None, registry_uri: str | None,
        tracking_uri: str | None, telemetry_url: str | None, alert_interval: float,
        gateway_image: str | None, model_server_image: str | None, liveness: str | None,
        log_level: str) -> None:
    """Run the operator in the foreground against any kubeconfig.

    For each AIOverlay of the watched namespaces it renders the manifests (what
    `overlay_sdk.k8s.render.render` returns), server-side applies them (field manager
    overlay-operator), removes those of versions no longer routed, and reports in the
    status (`kubectl get aio`: Routes, Ready) and as Events (`kubectl describe aio NAME`):
    Ready, RoutesApplied and Degraded conditions, with the reason when an overlay cannot be
    served or one of its Deployments fails, and the revision applied (`o.status()` in a
    notebook shows the same). One bad overlay never stops the others; failures are retried
    with backoff.
    """
    if bool(namespaces) == all_namespaces:
        fail("give --namespace NS (repeat it for several) or --all-namespaces", 2)
    try:
        from overlay_sdk.k8s import operator as op
        from overlay_sdk.k8s.manifests import RenderSettings
    except ImportError as err:
        fail(f"the operator needs the k8s extra ({err.name} is missing): "
             "pip install 'overlay-sdk[k8s]'", 2)
    root = ctx.find_root().obj
    registry = registry_uri or (root.get("registry_uri") if isinstance(root, dict) else None)
    defaults = RenderSettings()
    render_settings = RenderSettings(
        gateway_image=gateway_image or defaults.gateway_image,
        model_server_image=model_server_image or defaults.model_server_image,
        tracking_uri=tracking_uri or registry or defaults.tracking_uri,
    )
    try:
        config = op.OperatorConfig(
            namespaces=tuple(namespaces), kubeconfig=kubeconfig, context=context,
            registry_uri=registry, telemetry_url=telemetry_url, render=render_settings,
            liveness=liveness, alert_interval=alert_interval)
    except ValidationError as err:  # name the options, not the configuration's fields
        raise ValidationError([FieldError(_OPTIONS.get(e.path.split("[")[0], e.path), e.message)
                               for e in err.errors]) from None
    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # a registry that does not answer is a Degraded reason, not minutes of retries
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")

    def started(running: op.Operator) -> None:
        where = ", ".join(namespaces) if namespaces else "every namespace"
        click.echo(f"overlay operator watching AIOverlays in {where} on "
                   f"{running.configuration.host}; versions from {config.registry}"
                   f"{'; alerts from ' + telemetry_url if telemetry_url else ''}", err=True)

    op.run(config, on_start=started)
