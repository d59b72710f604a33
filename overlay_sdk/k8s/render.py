"""An ``AIOverlay`` and its resolved model versions -> Kubernetes and Istio manifests. Pure.

``render(overlay, versions, settings=...)`` returns plain dicts, in apply order:

- per self-hosted version (routed or shadow), a ``Deployment`` and a ``Service`` (an MLflow
  model server, ``mlflow models serve -m models:/NAME/VERSION``, or the registered image),
  and a ``HorizontalPodAutoscaler`` when ``spec.scaling`` allows more than one replica (see
  below); provider versions (hosted LLMs) run nowhere: the gateway calls the provider itself;
- ``<overlay>-models``: a ``Service`` over every model server of the overlay, the host the
  mesh routes on, with a ``DestinationRule`` holding one subset per self-hosted version
  (selected by the ``<prefix>/version`` pod label);
- a ``VirtualService`` on that host carrying the overlay's :class:`~overlay_sdk.routing.RoutePlan`
  (from :func:`overlay_sdk.routing.plan`, as the gateway derives it): first one route per
  version matching the ``x-overlay-version`` header (traffic the gateway has already
  assigned), then the weighted default route (``route[].weight`` = the plan's weights); every
  route of a primary version mirrors ``mirrorPercentage`` = the plan's shadow percent to
  the gateway's models port, which calls the shadow version and records its output (see
  below); the shadow's own header route carries no mirror;
- the overlay gateway (``Deployment`` + ``Service``), in front of the host application.

Scaling (``spec.scaling``) applies to every model server (the gateway runs
``RenderSettings.gateway_replicas``). When it allows more than one replica (``maxReplicas``
above ``max(1, minReplicas)``), each model server's Deployment gets an ``autoscaling/v2``
``HorizontalPodAutoscaler`` of the same name (after its Service): ``minReplicas`` =
``max(1, minReplicas)``, ``maxReplicas``, and an average CPU use of
``RenderSettings.model_server_cpu_utilization`` percent of the CPU request (70 by default; every
model server requests CPU). That Deployment then has no ``replicas``, so that the operator's
server-side apply leaves them to the autoscaler, and names it in the annotation
:data:`~overlay_sdk.k8s.manifests.AUTOSCALER_ANNOTATION` (how the operator knows to prune it);
server-side apply drops a field its manager stops applying, so a Deployment that ran more than
one replica before it had an autoscaler runs 1 until the autoscaler raises it to its minimum
(a later render without the autoscaler sets ``replicas`` again). Without ``scaling``, or with
``maxReplicas <= max(1, minReplicas)``: no autoscaler, and ``replicas`` = ``max(1,
minReplicas)`` (1 without ``scaling``).

Two parts of ``scaling`` are not acted on in a cluster, and the Deployment's annotations say so
(on the Deployment only, never on its pods: a change of ``scaling`` rolls no pod):

- ``minReplicas: 0``: a HorizontalPodAutoscaler cannot scale to zero (only behind the alpha
  ``HPAScaleToZero`` feature gate; KEDA or Knative can), so at least 1 replica runs and
  ``<prefix>/scale-to-zero`` says so (0 is the default: whenever ``scaling`` is given with a
  ``minReplicas`` of 0);
- ``predictive: true``: nothing here forecasts traffic; ``<prefix>/predictive`` says so.

A provider version in the mesh routes is answered by the gateway's models port (the
``x-overlay-version`` header set on the way). Every mirror goes there too, whatever the
shadow version: a mirrored copy carries Istio's ``-shadow`` host suffix; the gateway calls
the shadow version (a provider directly; a self-hosted one through the mesh with
``x-overlay-version: <shadow>``, which the shadow's header route, carrying no mirror, sends
to its subset: no loop) and records the call as ``shadow``. A model server records
nothing, so a mirror straight to it would lose the shadow's output.

The gateway's readiness probe is ``/readyz``, which passes once its overlay is loaded and
applied (liveness: ``/healthz``). Everything that runs is non-root without a fixed UID,
drops every capability, has readiness and liveness probes and resource requests; children
carry the standard labels and, when the overlay's ``metadata.uid``
is known, an owner reference to it. The same input gives the same output, byte for
byte (:func:`render_yaml`).

Called by the operator's handlers, by ``overlay render`` and by the tests.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from overlay_sdk import routing
from overlay_sdk.errors import FieldError, ValidationError
from overlay_sdk.k8s import manifests as mf
from overlay_sdk.k8s.manifests import (
    GATEWAY_RESOURCES,
    MODEL_SERVER_RESOURCES,
    RenderSettings,
    VersionTarget,
)
from overlay_sdk.registry_resources import Resources
from overlay_sdk.spec import AIOverlay, AIOverlaySpec, parse_overlay

__all__ = [
    "GATEWAY_RESOURCES",
    "MODEL_SERVER_RESOURCES",
    "VERSION_HEADER",
    "RenderSettings",
    "VersionTarget",
    "render",
    "render_yaml",
]

VERSION_HEADER = "x-overlay-version"
# metadata the API server sets: dropped when a stored object is rendered (uid is kept)
_SERVER_METADATA = frozenset({
    "uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
    "deletionGracePeriodSeconds", "managedFields", "finalizers", "ownerReferences",
    "selfLink", "generateName",
})

# The overlay and its plan

def _overlay_of(overlay: AIOverlay | Mapping[str, Any]) -> tuple[AIOverlay, str | None]:
    """The validated overlay and the uid its stored form carries (None: not stored)."""
    if isinstance(overlay, AIOverlay):
        return overlay, None
    if not isinstance(overlay, Mapping):
        raise ValidationError.at("overlay", f"expected an AIOverlay or its dict form, got "
                                 f"{type(overlay).__name__}")
    doc = {k: v for k, v in overlay.items() if k != "status"}
    meta = doc.get("metadata")
    uid = None
    if isinstance(meta, Mapping):
        raw_uid = meta.get("uid")
        if raw_uid is not None and (not isinstance(raw_uid, str) or not raw_uid):
            raise ValidationError.at("metadata.uid", f"{raw_uid!r:.60} is not a uid")
        uid = raw_uid
        doc["metadata"] = {k: v for k, v in meta.items() if k not in _SERVER_METADATA}
    return parse_overlay(doc), uid


_PLANS: dict[tuple[Any, ...], routing.RoutePlan] = {}
_PLANS_LOCK = threading.Lock()
_PLANS_KEPT = 512


def _plan_of(spec: AIOverlaySpec) -> routing.RoutePlan:
    """:func:`routing.plan` of ``spec``, memoised on what a plan made without a previous
    one depends on (the routes and the shadow): a plan assigns 10,000 buckets (~0.7 ms),
    ten times what the rest of a render costs. Only its weights and shadow are used, and
    those do not depend on the history."""
    shadow = spec.shadow
    if shadow is not None and shadow.version is None:
        raise ValidationError.at("spec.shadow", f"{shadow} has no resolved version; render "
                                 "stored revisions, whose aliases are resolved")
    key = (tuple((r.model, r.version, r.weight) for r in spec.routes),
           None if shadow is None else (shadow.model, shadow.version, shadow.percent))
    with _PLANS_LOCK:
        found = _PLANS.get(key)
    if found is None:
        found = routing.plan(spec)
        with _PLANS_LOCK:
            if len(_PLANS) >= _PLANS_KEPT:
                _PLANS.clear()
            _PLANS[key] = found
    return found


def _check_plan(plan: routing.RoutePlan, spec: AIOverlaySpec) -> None:
    shadow = spec.shadow
    same = (
        plan.versions == tuple(f"{r.model}:{r.version}" for r in spec.routes)
        and plan.weights() == {f"{r.model}:{r.version}": r.weight for r in spec.routes}
        and plan.shadow == (None if shadow is None else f"{shadow.model}:{shadow.version}")
        and (shadow is None or plan.shadow_percent == float(shadow.percent))
    )
    if not same:
        raise ValidationError.at("plan", f"is the plan of other routes ({plan.weights()}, "
                                 f"shadow {plan.shadow}); pass the plan of this revision, or "
                                 "none to derive it")


@dataclass(frozen=True)
class _Unit:
    """One version to place: its target and its names."""

    target: VersionTarget
    model: str
    version: str
    subset: str
    workload: str


@dataclass(frozen=True)
class _Scale:
    """How many replicas each model server runs: ``replicas`` (None: an autoscaler between
    ``min_replicas`` and ``max_replicas`` sets them) and the notes on its Deployment."""

    replicas: int | None
    min_replicas: int
    max_replicas: int
    notes: Mapping[str, str]

    @property
    def autoscaled(self) -> bool:
        return self.replicas is None


def _scale_of(spec: AIOverlaySpec, prefix: str) -> _Scale:
    scaling = spec.scaling
    if scaling is None:
        return _Scale(1, 1, 1, {})
    low = max(1, scaling.min_replicas)
    notes: dict[str, str] = {}
    if scaling.min_replicas == 0:
        notes[f"{prefix}/scale-to-zero"] = (
            "not supported: a HorizontalPodAutoscaler cannot scale to 0 (KEDA or Knative "
            "can); at least 1 replica runs")
    if scaling.predictive:
        notes[f"{prefix}/predictive"] = ("not acted on in a cluster: replicas are not scaled "
                                         "ahead of forecast traffic")
    if scaling.max_replicas > low:
        return _Scale(None, low, scaling.max_replicas, notes)
    return _Scale(low, low, low, notes)


# Rendering

class _Renderer:
    """The state of one render call: the overlay, the settings, the names."""

    def __init__(self, overlay: AIOverlay, settings: RenderSettings, uid: str | None) -> None:
        self.name = overlay.name
        self.spec = overlay.spec
        self.s = settings
        self.ns = overlay.metadata.namespace or settings.namespace
        self.uid = uid
        self.prefix = settings.label_prefix
        self.models = mf.dns_label(f"{self.name}-models")
        self.gateway = mf.dns_label(f"{self.name}-gateway")
        self.models_host = self.fqdn(self.models)
        self.gateway_host = self.fqdn(self.gateway)

    def fqdn(self, service: str) -> str:
        return f"{service}.{self.ns}.svc.{self.s.cluster_domain}"

    def labels(self, instance: str, name: str, component: str) -> dict[str, str]:
        return mf.standard_labels(overlay=self.name, instance=instance, name=name,
                                  component=component, prefix=self.prefix)

    def meta(self, name: str, labels: Mapping[str, str],
             annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"name": name, "namespace": self.ns, "labels": dict(labels)}
        if annotations:
            out["annotations"] = mf.sorted_map(annotations)
        if self.uid is not None:
            out["ownerReferences"] = [mf.owner_reference(self.name, self.uid)]
        return out

    def selector(self, instance: str) -> dict[str, str]:
        return {"app.kubernetes.io/instance": instance, f"{self.prefix}/overlay": self.name}

    def pull(self) -> dict[str, Any]:
        return {} if self.s.image_pull_policy is None else {
            "imagePullPolicy": self.s.image_pull_policy}

    def service(self, name: str, labels: Mapping[str, str], selector: Mapping[str, str],
                ports: list[tuple[str, int]], annotations: Mapping[str, str] | None = None
                ) -> dict[str, Any]:
        return {
            "apiVersion": "v1", "kind": "Service",
            "metadata": self.meta(name, labels, annotations),
            "spec": {
                "type": "ClusterIP",
                "selector": dict(selector),
                "ports": [{"name": port_name, "port": number, "targetPort": port_name,
                           "protocol": "TCP", "appProtocol": "http"}
                          for port_name, number in ports],
            },
        }

    def deployment(self, name: str, labels: Mapping[str, str], replicas: int | None,
                   container: dict[str, Any], *, annotations: Mapping[str, str] | None = None,
                   notes: Mapping[str, str] | None = None,
                   pod_extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """A Deployment; ``annotations`` on it and its pods, ``notes`` on it only (no pod
        rolls when they change); ``replicas`` None: left out (an autoscaler sets them)."""
        selector = self.selector(name)
        pod: dict[str, Any] = {
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": mf.pod_security(),
            "containers": [container],
            "volumes": [{"name": "tmp", "emptyDir": {}}],
        }
        pod.update(pod_extra or {})
        template_meta: dict[str, Any] = {"labels": dict(labels)}
        if annotations:
            template_meta["annotations"] = mf.sorted_map(annotations)
        spec: dict[str, Any] = {} if replicas is None else {"replicas": replicas}
        return {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": self.meta(name, labels, {**(annotations or {}), **(notes or {})}),
            "spec": {
                **spec,
                "revisionHistoryLimit": 3,
                "selector": {"matchLabels": selector},
                "strategy": {"type": "RollingUpdate",
                             "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                "template": {"metadata": template_meta, "spec": pod},
            },
        }

    # model servers

    def unit(self, key: str, target: VersionTarget) -> _Unit:
        model, version = key.split(":", 1)
        return _Unit(target, model, version, mf.dns_label(f"{model}-v{version}"),
                     mf.dns_label(f"{self.name}-{model}-v{version}"))

    def resources_of(self, target: VersionTarget) -> Resources:
        declared = target.resources or Resources()
        share = self.spec.placement.gpu if self.spec.placement is not None else None
        if declared.gpu is None and share is not None:
            fraction = share.fraction if share.fraction < 1 else None
            return Resources(declared.cpu, declared.memory, 1, fraction)
        return declared

    def model_container(self, u: _Unit, resources: Resources) -> dict[str, Any]:
        t = u.target
        port = self.s.model_server_port if t.kind == "mlflow" else (t.port or 8080)
        container: dict[str, Any] = {"name": "model-server"}
        if t.kind == "mlflow":
            uri = t.model_uri or f"models:/{u.model}/{u.version}"
            env = [{"name": "MLFLOW_TRACKING_URI", "value": self.s.tracking_uri}]
            if self.s.registry_uri is not None:
                env.append({"name": "MLFLOW_REGISTRY_URI", "value": self.s.registry_uri})
            env.append({"name": "HOME", "value": "/tmp"})
            container.update({
                "image": self.s.model_server_image, **self.pull(),
                "command": ["mlflow"],
                "args": ["models", "serve", "-m", uri, "--host", "0.0.0.0",
                         "--port", str(port), "--env-manager", "local"],
                "env": env,
            })
            health: str | None = "/ping"
        else:
            container.update({"image": t.image, **self.pull()})
            health = t.health_path
        if self.s.model_server_secret is not None:
            container["envFrom"] = [{"secretRef": {"name": self.s.model_server_secret,
                                                   "optional": True}}]
        container["ports"] = [{"name": "http", "containerPort": port, "protocol": "TCP"}]

        def probe(period: int, failures: int, timeout: int = 2) -> dict[str, Any]:
            if health is None:
                return mf.tcp_probe("http", period=period, failures=failures, timeout=timeout)
            return mf.http_probe(health, "http", period=period, failures=failures,
                                 timeout=timeout)

        container.update({
            # the startup probe gives a model ten minutes to download and load
            "startupProbe": probe(5, 120),
            "readinessProbe": probe(5, 3),
            "livenessProbe": probe(10, 6, timeout=5),
            "resources": mf.requirements(resources, self.s.model_server_resources),
            "securityContext": mf.container_security(read_only_root=t.kind == "mlflow"),
            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        })
        return container

    def model_manifests(self, u: _Unit, scale: _Scale) -> list[dict[str, Any]]:
        t = u.target
        labels = {**self.labels(u.workload, "overlay-model-server", "model-server"),
                  f"{self.prefix}/version": u.subset}
        resources = self.resources_of(t)
        notes = {f"{self.prefix}/model-version": t.key,
                 **mf.gpu_annotations(resources, self.prefix)}
        share = self.spec.placement.gpu if self.spec.placement is not None else None
        if share is not None and (t.resources is None or t.resources.gpu is None):
            notes[f"{self.prefix}/gpu-memory"] = f"{share.memory_gi_b:g}Gi"
        if t.kind == "mlflow":
            notes[f"{self.prefix}/model-uri"] = t.model_uri or f"models:/{u.model}/{u.version}"
        else:
            notes[f"{self.prefix}/image"] = str(t.image)
        extra: dict[str, Any] = {}
        if mf.gpu_count(resources):
            extra["tolerations"] = [{"key": mf.GPU_RESOURCE, "operator": "Exists",
                                     "effect": "NoSchedule"}]
        own = dict(scale.notes)
        if scale.autoscaled:
            own[mf.AUTOSCALER_ANNOTATION] = u.workload
        deployment = self.deployment(u.workload, labels, scale.replicas,
                                     self.model_container(u, resources),
                                     annotations=notes, notes=own, pod_extra=extra)
        service = self.service(u.workload, labels, self.selector(u.workload),
                               [("http", self.s.model_server_port)],
                               {f"{self.prefix}/model-version": t.key})
        if not scale.autoscaled:
            return [deployment, service]
        autoscaler = {
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": self.meta(u.workload, labels, {f"{self.prefix}/model-version": t.key}),
            "spec": mf.cpu_autoscaler_spec(u.workload, min_replicas=scale.min_replicas,
                                           max_replicas=scale.max_replicas,
                                           utilization=self.s.model_server_cpu_utilization),
        }
        return [deployment, service, autoscaler]

    # routing

    def destination(self, u: _Unit) -> dict[str, Any]:
        if u.target.self_hosted:
            return {"host": self.models_host, "subset": u.subset,
                    "port": {"number": self.s.model_server_port}}
        return self.gateway_models()

    def gateway_models(self) -> dict[str, Any]:
        """The gateway's models port: provider versions, and every mirrored copy (the
        gateway records the shadow's output; a self-hosted shadow's it gets through the
        mesh, by the shadow's header route, which is not mirrored)."""
        return {"host": self.gateway_host, "port": {"number": self.s.gateway_models_port}}

    def mesh(self, units: list[_Unit], plan: routing.RoutePlan,
             shadow: _Unit | None) -> list[dict[str, Any]]:
        """The models Service, its DestinationRule and the VirtualService of the plan."""
        everyone = [*units, *([shadow] if shadow is not None else [])]
        hosted = [u for u in everyone if u.target.self_hosted]
        labels = self.labels(self.models, "overlay-models", "routing")
        models_service = self.service(
            self.models, labels, {f"{self.prefix}/overlay": self.name,
                                  "app.kubernetes.io/component": "model-server"},
            [("http", self.s.model_server_port)])
        rule_spec: dict[str, Any] = {"host": self.models_host, "exportTo": ["."]}
        if hosted:
            rule_spec["subsets"] = [{"name": u.subset,
                                     "labels": {f"{self.prefix}/version": u.subset}}
                                    for u in hosted]
        destination_rule = {
            "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": self.meta(self.models, labels), "spec": rule_spec,
        }
        extra: dict[str, Any] = {}
        if self.spec.slo is not None:
            ms = self.spec.slo.timeout_ms
            extra["timeout"] = f"{ms // 1000}.{ms % 1000:03d}s"

        def mirror() -> dict[str, Any]:  # a fresh dict per route: no shared objects
            if shadow is None:
                return {}
            return {"mirror": self.gateway_models(),
                    "mirrorPercentage": {"value": plan.shadow_percent}}

        by_key = {u.target.key: u for u in units}
        http: list[dict[str, Any]] = []
        for u in everyone:
            http.append({
                "name": f"sticky-{u.subset}",
                "match": [{"headers": {VERSION_HEADER: {"exact": u.target.key}}}],
                "route": [{"destination": self.destination(u)}],
                **extra, **(mirror() if u is not shadow else {}),
            })
        weighted = []
        for key, weight in plan.weights().items():
            u = by_key[key]
            entry: dict[str, Any] = {"destination": self.destination(u), "weight": weight}
            if not u.target.self_hosted:
                entry["headers"] = {"request": {"set": {VERSION_HEADER: key}}}
            weighted.append(entry)
        http.append({"name": "weighted", "route": weighted, **extra, **mirror()})
        virtual_service = {
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": self.meta(self.models, labels),
            "spec": {"hosts": [self.models_host], "exportTo": ["."], "http": http},
        }
        return [models_service, destination_rule, virtual_service]

    # the gateway

    def gateway_manifests(self) -> list[dict[str, Any]]:
        s = self.s
        labels = self.labels(self.gateway, "overlay-gateway", "gateway")
        env = [
            {"name": "OVERLAY_NAME", "value": self.name},
            {"name": "OVERLAY_NAMESPACE", "value": self.ns},
            {"name": "OVERLAY_HOST_URL", "value": self.spec.host.url},
            {"name": "OVERLAY_STORE", "value": s.store_uri or f"k8s:///{self.ns}"},
            {"name": "OVERLAY_REGISTRY_URI", "value": s.registry_uri or s.tracking_uri},
            {"name": "OVERLAY_MODELS_URL",
             "value": f"http://{self.models_host}:{s.model_server_port}"},
            {"name": "OVERLAY_MODELS_PORT", "value": str(s.gateway_models_port)},
            {"name": "OVERLAY_SHADOW", "value": "mesh"},
            {"name": "OVERLAY_HOME", "value": "/tmp/overlay"},
            {"name": "HOME", "value": "/tmp"},
        ]
        container: dict[str, Any] = {
            "name": "gateway", "image": s.gateway_image, **self.pull(),
            "args": ["gateway", "--host", "0.0.0.0", "--port", str(s.gateway_port)],
            "env": env,
        }
        if s.gateway_secret is not None:
            container["envFrom"] = [{"secretRef": {"name": s.gateway_secret, "optional": True}}]
        container.update({
            "ports": [{"name": "http", "containerPort": s.gateway_port, "protocol": "TCP"},
                      {"name": "http-models", "containerPort": s.gateway_models_port,
                       "protocol": "TCP"}],
            # ready once its overlay is loaded and applied (503 until then); alive while
            # its loop answers
            "readinessProbe": mf.http_probe("/readyz", "http", period=5, failures=3),
            "livenessProbe": mf.http_probe("/healthz", "http", period=10, failures=6,
                                           timeout=5),
            "resources": mf.requirements(s.gateway_resources, s.gateway_resources),
            "securityContext": mf.container_security(read_only_root=True),
            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        })
        extra: dict[str, Any] = {
            "topologySpreadConstraints": [{
                "maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": self.selector(self.gateway)},
            }],
        }
        if s.gateway_service_account is not None:
            # the gateway reads its overlay from the Kubernetes store: it needs the token
            extra.update({"serviceAccountName": s.gateway_service_account,
                          "automountServiceAccountToken": True})
        deployment = self.deployment(self.gateway, labels, s.gateway_replicas, container,
                                     pod_extra=extra)
        service = self.service(self.gateway, labels, self.selector(self.gateway),
                               [("http", s.gateway_port), ("http-models", s.gateway_models_port)])
        return [deployment, service]


def _targets(spec: AIOverlaySpec, versions: Mapping[str, VersionTarget] | None
             ) -> dict[str, VersionTarget]:
    keys = [f"{r.model}:{r.version}" for r in spec.routes]
    if spec.shadow is not None:
        keys.append(f"{spec.shadow.model}:{spec.shadow.version}")
    if versions is not None and not isinstance(versions, Mapping):
        raise ValidationError.at("versions", f"expected a mapping of 'name:version' to "
                                 f"VersionTarget, got {type(versions).__name__}")
    out: dict[str, VersionTarget] = {}
    problems: list[FieldError] = []
    for key in keys:
        target = versions.get(key) if versions is not None else None
        if target is None:
            model, version = key.split(":", 1)
            target = VersionTarget(key, "mlflow", model_uri=f"models:/{model}/{version}")
        elif not isinstance(target, VersionTarget):
            problems.append(FieldError(f"versions[{key!r}]", f"expected a VersionTarget, got "
                                       f"{type(target).__name__}"))
            continue
        elif target.key != key:
            problems.append(FieldError(f"versions[{key!r}].key", f"is {target.key!r}; the "
                                       f"entry for {key} must describe {key}"))
            continue
        out[key] = target
    if problems:
        raise ValidationError(problems, subject="versions")
    return out


def render(overlay: AIOverlay | Mapping[str, Any],
           versions: Mapping[str, VersionTarget] | None = None, *,
           settings: RenderSettings | None = None, uid: str | None = None,
           plan: routing.RoutePlan | None = None) -> list[dict[str, Any]]:
    """The manifests of ``overlay`` (an :class:`AIOverlay`, or its dict form as stored in the
    cluster, whose ``metadata.uid`` then gives the owner references; ``uid`` overrides it).

    ``versions`` maps ``name:version`` to the :class:`VersionTarget` of each resolved version;
    a version it does not name is an MLflow model served from ``models:/NAME/VERSION``.
    ``plan`` is the overlay's current RoutePlan when the caller has it (the operator replays
    the history as the gateway does); by default it is derived with
    :func:`overlay_sdk.routing.plan`. Raises ValidationError naming the field at fault.
    """
    parsed, stored_uid = _overlay_of(overlay)
    if uid is not None and (not isinstance(uid, str) or not uid):
        raise ValidationError.at("uid", f"{uid!r:.60} is not a uid")
    settings = settings if settings is not None else RenderSettings()
    if not isinstance(settings, RenderSettings):
        raise ValidationError.at("settings", f"expected RenderSettings, got "
                                 f"{type(settings).__name__}")
    spec = parsed.spec
    if plan is None:
        plan = _plan_of(spec)
    else:
        _check_plan(plan, spec)
    targets = _targets(spec, versions)
    r = _Renderer(parsed, settings, uid if uid is not None else stored_uid)
    units = [r.unit(key, targets[key]) for key in plan.versions]
    shadow = r.unit(plan.shadow, targets[plan.shadow]) if plan.shadow is not None else None
    scale = _scale_of(spec, r.prefix)
    out: list[dict[str, Any]] = []
    for u in [*units, *([shadow] if shadow is not None else [])]:
        if u.target.self_hosted:
            out.extend(r.model_manifests(u, scale))
    out.extend(r.mesh(units, plan, shadow))
    out.extend(r.gateway_manifests())
    return out


def render_yaml(overlay: AIOverlay | Mapping[str, Any],
                versions: Mapping[str, VersionTarget] | None = None, *,
                settings: RenderSettings | None = None, uid: str | None = None,
                plan: routing.RoutePlan | None = None) -> str:
    """:func:`render` as one multi-document YAML text (``kubectl apply -f -``)."""
    docs = render(overlay, versions, settings=settings, uid=uid, plan=plan)
    return yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, explicit_start=True,
                         width=1000)


class _PyDumper(yaml.SafeDumper):
    """SafeDumper that writes repeated values out in full (no ``&id001`` anchors)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """The same with libyaml's emitter when PyYAML has it (4x faster, the same text)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True
