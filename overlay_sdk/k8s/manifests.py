"""The inputs of a render and the building blocks of its manifests, as plain dicts.

- :class:`VersionTarget`: what runs one resolved model version (an MLflow model served by
  the model server, a registered container image, or a hosted provider that runs nowhere);
- :class:`RenderSettings`: the namespace, images, ports, registry and label prefix;
- names, labels, owner references, security contexts, probes, resource requirements and
  the CPU target of a model server's ``HorizontalPodAutoscaler``.

Used by :mod:`overlay_sdk.k8s.render`, which assembles them into Deployments, Services,
HorizontalPodAutoscalers and Istio routes (and re-exports the two value objects). Pure and
deterministic: the same arguments give equal dicts, with keys in the same order, so the
rendered YAML is byte-for-byte stable; every call returns fresh dicts.

Names are DNS labels (at most 63 characters, lowercase letters, digits and '-', starting
with a letter so that they are valid Service names too). A name that is already one is
kept as written; any other (too long, upper case, '.', '_', a leading digit) becomes a
sanitised prefix plus 8 hex digits of the SHA-256 of the text, so two different inputs
never map to the same name.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from overlay_sdk.errors import FieldError, ValidationError
from overlay_sdk.registry_resources import Resources
from overlay_sdk.spec import API_GROUP, API_VERSION, KIND, MODEL_NAME, VERSION

__all__ = [
    "AUTOSCALER_ANNOTATION",
    "DNS_1035",
    "GATEWAY_RESOURCES",
    "GPU_RESOURCE",
    "MANAGED_BY",
    "MODEL_SERVER_RESOURCES",
    "RenderSettings",
    "TargetKind",
    "VersionTarget",
    "container_security",
    "cpu_autoscaler_spec",
    "cpu_quantity",
    "dns_label",
    "gpu_annotations",
    "gpu_count",
    "http_probe",
    "owner_reference",
    "pod_security",
    "requirements",
    "sorted_map",
    "standard_labels",
    "tcp_probe",
]

MANAGED_BY = "overlay-operator"
GPU_RESOURCE = "nvidia.com/gpu"
AUTOSCALER_ANNOTATION = f"{API_GROUP}/autoscaler"
"""On a model server's Deployment: the name of the ``HorizontalPodAutoscaler`` rendered for
it (absent: none). The operator reads it back from the Deployments it watches to prune that
autoscaler once it is no longer rendered, so its key is the operator's own (under the API
group, as the owner references), whatever ``RenderSettings.label_prefix`` says."""
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
"""A DNS-1035 label: what Service names must be (and what every rendered name is)."""
_NOT_LABEL = re.compile(r"[^a-z0-9-]+")
_DASHES = re.compile(r"-{2,}")
_HASH_CHARS = 8


# The inputs

GATEWAY_RESOURCES = Resources(cpu=0.1, memory="256Mi")
"""Default requests of one gateway replica (the memory request is also its limit)."""
MODEL_SERVER_RESOURCES = Resources(cpu=0.5, memory="1Gi")
"""Requests of a model server whose version declares none (or declares only some)."""
TargetKind = Literal["mlflow", "image", "provider"]
_KINDS = ("image", "mlflow", "provider")
# an image reference as registered (the registry checked its grammar); here: its form only
_IMAGE = re.compile(r"^[a-z0-9][A-Za-z0-9._:/@\[\]-]{0,511}$")
_KEY = re.compile(MODEL_NAME[:-1] + ":" + VERSION[1:])
_PATH = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _problems_of_target(t: VersionTarget) -> list[FieldError]:
    out: list[FieldError] = []

    def bad(field: str, message: str) -> None:
        out.append(FieldError(field, message))

    if not isinstance(t.key, str) or not _KEY.match(t.key):
        bad("key", f"{t.key!r:.80} is not a model version key; write name:version, e.g. "
            "copilot:3")
    if t.kind not in _KINDS:
        bad("kind", f"{t.kind!r:.40} is not a kind; use mlflow (an MLflow model served by "
            "the model server), image (a registered container image) or provider")
    if t.kind == "provider":
        for name in ("model_uri", "image", "port", "health_path", "resources"):
            if getattr(t, name) is not None:
                bad(name, "must be None for a provider version: it runs nowhere, the gateway "
                    "calls the provider")
        return out
    if t.kind == "image" and (not isinstance(t.image, str) or len(t.image) > 512
                              or not _IMAGE.match(t.image)):
        bad("image", f"{t.image!r:.80} is not an image reference; an image version needs "
            "its registered image, e.g. 'ghcr.io/acme/scorer:1.4'")
    if t.kind == "mlflow" and t.image is not None:
        bad("image", "is for image versions; an mlflow version runs the model-server image")
    if t.kind == "image" and t.model_uri is not None:
        bad("model_uri", "is for mlflow versions; an image version is its image")
    if t.kind == "mlflow":
        for name in ("port", "health_path"):
            if getattr(t, name) is not None:
                bad(name, "is for image versions; the MLflow model server listens on "
                    "RenderSettings.model_server_port and answers /ping")
    if t.model_uri is not None and (not isinstance(t.model_uri, str) or not t.model_uri
                                    or len(t.model_uri) > 1024
                                    or any(c.isspace() for c in t.model_uri)):
        bad("model_uri", f"{t.model_uri!r:.80} is not a model URI such as models:/fraud/3")
    if t.port is not None and (isinstance(t.port, bool) or not isinstance(t.port, int)
                               or not 1 <= t.port <= 65535):
        bad("port", f"must be the container's HTTP port, an integer from 1 to 65535, got "
            f"{t.port!r:.40}")
    if t.health_path is not None and (not isinstance(t.health_path, str)
                                      or len(t.health_path) > 512
                                      or not _PATH.match(t.health_path)):
        bad("health_path", f"{t.health_path!r:.80} is not a URL path such as /healthz")
    if t.resources is not None and not isinstance(t.resources, Resources):
        bad("resources", "must be an overlay_sdk.registry_resources.Resources (build one "
            "with check_resources({'cpu': 2, 'memory': '4Gi'}))")
    return out


@dataclass(frozen=True)
class VersionTarget:
    """What runs one resolved model version (``key`` = ``name:version``).

    ``kind``: ``mlflow`` (the model server loads ``model_uri``, default
    ``models:/NAME/VERSION``), ``image`` (the registered ``image``, its HTTP ``port``
    (default 8080) and ``health_path`` (None: a TCP check)) or ``provider`` (a hosted LLM:
    nothing runs in the cluster). ``resources`` is what one replica needs, as declared at
    registration (``ModelVersion.resources``). Raises ValidationError naming the field.
    """

    key: str
    kind: TargetKind = "mlflow"
    model_uri: str | None = None
    image: str | None = None
    port: int | None = None
    health_path: str | None = None
    resources: Resources | None = None

    def __post_init__(self) -> None:
        problems = _problems_of_target(self)
        if problems:
            raise ValidationError(problems, subject=f"version target {self.key!r:.80}")

    @property
    def self_hosted(self) -> bool:
        """Whether a Deployment serves this version (False for a provider)."""
        return self.kind != "provider"


@dataclass(frozen=True)
class RenderSettings:
    """Where and with what the manifests run. ``namespace`` applies when the overlay's
    metadata names none; ``tracking_uri`` (and ``registry_uri`` when the registry lives
    elsewhere) is where the model servers and the gateway find the MLflow registry;
    ``store_uri`` where the gateway reads the overlay (default ``k8s:///<namespace>``, the
    in-cluster Kubernetes store). The optional secrets (absent: ignored) give environment
    variables: provider API keys and ``OVERLAY_TELEMETRY_URL`` to the gateway, artifact
    store credentials to the model servers. ``model_server_cpu_utilization`` is the target
    of a model server's ``HorizontalPodAutoscaler`` (rendered when the overlay's
    ``spec.scaling`` allows more than one replica): the average CPU use of its pods, in percent
    of their CPU request (above 100 is possible: model servers have no CPU limit)."""

    namespace: str = "default"
    gateway_image: str = "ghcr.io/overlay-sdk/overlay-gateway:0.1.0"
    model_server_image: str = "ghcr.io/overlay-sdk/mlflow-model-server:0.1.0"
    tracking_uri: str = "http://mlflow.mlflow.svc.cluster.local:5000"
    registry_uri: str | None = None
    store_uri: str | None = None
    label_prefix: str = API_GROUP
    gateway_port: int = 8700
    gateway_models_port: int = 8701
    model_server_port: int = 8080
    gateway_replicas: int = 2
    gateway_resources: Resources = GATEWAY_RESOURCES
    model_server_resources: Resources = MODEL_SERVER_RESOURCES
    model_server_cpu_utilization: int = 70
    gateway_service_account: str | None = "overlay-gateway"
    gateway_secret: str | None = "overlay-gateway"
    model_server_secret: str | None = "overlay-model-server"
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    cluster_domain: str = "cluster.local"

    def __post_init__(self) -> None:
        out: list[FieldError] = []
        label = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
        for name in ("namespace", "gateway_service_account", "gateway_secret",
                     "model_server_secret"):
            value = getattr(self, name)
            if value is None and name != "namespace":
                continue
            if not isinstance(value, str) or len(value) > 63 or not label.match(value):
                out.append(FieldError(f"settings.{name}", f"{value!r:.80} is not a DNS-1123 "
                                      "label (lowercase letters, digits, '-')"))
        for name in ("gateway_image", "model_server_image"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _IMAGE.match(value):
                out.append(FieldError(f"settings.{name}", f"{value!r:.80} is not an image "
                                      "reference such as ghcr.io/acme/gateway:1.0"))
        for name in ("tracking_uri", "registry_uri", "store_uri"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value
                                      or any(c.isspace() for c in value)):
                out.append(FieldError(f"settings.{name}", f"{value!r:.80} is not a URI"))
        for name in ("label_prefix", "cluster_domain"):
            value = getattr(self, name)
            if not isinstance(value, str) or len(value) > 253 or not _SUBDOMAIN.match(value):
                out.append(FieldError(f"settings.{name}", f"{value!r:.80} is not a DNS "
                                      "subdomain such as overlays.aioverlay.dev"))
        for name in ("gateway_port", "gateway_models_port", "model_server_port"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
                out.append(FieldError(f"settings.{name}", f"must be a port from 1 to 65535, "
                                      f"got {value!r:.40}"))
        if self.gateway_port == self.gateway_models_port:
            out.append(FieldError("settings.gateway_models_port", "must differ from "
                                  "gateway_port: host traffic and model calls are apart"))
        if (isinstance(self.gateway_replicas, bool) or not isinstance(self.gateway_replicas, int)
                or not 1 <= self.gateway_replicas <= 1000):
            out.append(FieldError("settings.gateway_replicas", "must be an integer from 1 to "
                                  f"1000, got {self.gateway_replicas!r:.40}"))
        utilization = self.model_server_cpu_utilization
        if (isinstance(utilization, bool) or not isinstance(utilization, int)
                or not 1 <= utilization <= 1000):
            out.append(FieldError("settings.model_server_cpu_utilization", "must be the "
                                  "autoscaling target in percent of the CPU request, an "
                                  f"integer from 1 to 1000, got {utilization!r:.40}"))
        for name in ("gateway_resources", "model_server_resources"):
            if not isinstance(getattr(self, name), Resources):
                out.append(FieldError(f"settings.{name}", "must be a Resources"))
        if self.image_pull_policy not in (None, "Always", "IfNotPresent", "Never"):
            out.append(FieldError("settings.image_pull_policy", "must be Always, IfNotPresent, "
                                  "Never or None"))
        if out:
            raise ValidationError(out, subject="render settings")


# Names, labels, metadata


def dns_label(text: str, *, limit: int = 63) -> str:
    """``text`` when it is a DNS-1035 label of at most ``limit`` characters, else a sanitised
    prefix plus ``-`` and 8 hex digits of its SHA-256 (``Fraud_v2`` -> ``fraud-v2-1c7e...``)."""
    if len(text) <= limit and DNS_1035.match(text):
        return text
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:_HASH_CHARS]
    stem = _DASHES.sub("-", _NOT_LABEL.sub("-", text.lower())).strip("-")
    if not stem or not stem[0].isalpha():
        stem = ("x-" + stem).rstrip("-")
    stem = stem[: limit - _HASH_CHARS - 1].rstrip("-")
    return f"{stem}-{digest}"


def standard_labels(*, overlay: str, instance: str, name: str, component: str,
                    prefix: str) -> dict[str, str]:
    """The recommended ``app.kubernetes.io/*`` labels plus the overlay's own label."""
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": overlay,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        f"{prefix}/overlay": overlay,
    }


def owner_reference(overlay: str, uid: str) -> dict[str, Any]:
    """The reference that makes a child belong to its ``AIOverlay`` (garbage-collected with
    it; the operator is its controller)."""
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": KIND,
        "name": overlay,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def pod_security() -> dict[str, Any]:
    """Pod security context: non-root without a fixed UID (OpenShift assigns one), and the
    runtime's default seccomp profile."""
    return {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}


def container_security(*, read_only_root: bool) -> dict[str, Any]:
    """Container security context of the ``restricted`` Pod Security Standard."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
        "readOnlyRootFilesystem": read_only_root,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def http_probe(path: str, port: str, *, period: int, failures: int,
               timeout: int = 2) -> dict[str, Any]:
    """An HTTP GET probe on the named container port."""
    return {
        "httpGet": {"path": path, "port": port, "scheme": "HTTP"},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def tcp_probe(port: str, *, period: int, failures: int, timeout: int = 2) -> dict[str, Any]:
    """A TCP connect probe on the named container port (an image without a health path)."""
    return {
        "tcpSocket": {"port": port},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def cpu_quantity(cores: float) -> str:
    """Cores as a Kubernetes quantity: ``2`` -> ``"2"``, ``0.25`` -> ``"250m"``."""
    if float(cores).is_integer():
        return str(int(cores))
    return f"{max(1, round(cores * 1000))}m"


def gpu_count(resources: Resources) -> int:
    """Whole GPUs to request (0 for none or for a fraction of one, which the device plugin
    cannot grant: those are left to the scheduler through annotations)."""
    if resources.gpu is None:
        return 0
    if resources.fraction is not None and resources.fraction < 1:
        return 0
    return resources.gpu if isinstance(resources.gpu, int) else 1


def requirements(resources: Resources, fallback: Resources) -> dict[str, Any]:
    """``resources`` of a container: CPU and memory requests (``fallback`` for what is not
    declared), a memory limit equal to the request, and whole GPUs as ``nvidia.com/gpu``
    limits. No CPU limit: throttling a model server adds latency and saves nothing."""
    cpu = resources.cpu if resources.cpu is not None else fallback.cpu
    memory = resources.memory if resources.memory is not None else fallback.memory
    requests: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    if cpu is not None:
        requests["cpu"] = cpu_quantity(cpu)
    if memory is not None:
        requests["memory"] = memory
        limits["memory"] = memory
    gpus = gpu_count(resources)
    if gpus:
        limits[GPU_RESOURCE] = str(gpus)
    out: dict[str, Any] = {}
    if limits:
        out["limits"] = limits
    if requests:
        out["requests"] = requests
    return out


def cpu_autoscaler_spec(deployment: str, *, min_replicas: int, max_replicas: int,
                        utilization: int) -> dict[str, Any]:
    """``spec`` of an ``autoscaling/v2`` HorizontalPodAutoscaler keeping the average CPU use
    of ``deployment``'s pods at ``utilization`` percent of their request, between
    ``min_replicas`` (at least 1) and ``max_replicas`` replicas."""
    return {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
        "minReplicas": min_replicas,
        "maxReplicas": max_replicas,
        "metrics": [{"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization",
                                      "averageUtilization": utilization}}}],
    }


def gpu_annotations(resources: Resources, prefix: str) -> dict[str, str]:
    """What a GPU scheduler needs beyond the device plugin: the GPU model and the share of
    one GPU (only when declared)."""
    notes: dict[str, str] = {}
    if isinstance(resources.gpu, str):
        notes[f"{prefix}/gpu-model"] = resources.gpu
    if resources.gpu is not None and resources.fraction is not None:
        notes[f"{prefix}/gpu-fraction"] = f"{resources.fraction:g}"
    return notes


def sorted_map(values: Mapping[str, str]) -> dict[str, str]:
    """A copy with keys in sorted order (labels and annotations: stable output)."""
    return {k: values[k] for k in sorted(values)}
