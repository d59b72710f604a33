"""Validation of rendered manifests, shared by the Kubernetes tests.

- core kinds (Deployment, Service, HorizontalPodAutoscaler...): Kubernetes' own OpenAPI
  schemas, offline, through
  ``kubernetes_validate.validate(obj, K8S_VERSION, strict=True)``;
- Istio kinds: the ``openAPIV3Schema`` of the matching kind and version in Istio's generated
  CRDs (``../shared/schemas/istio/crd-all.gen.yaml``, data from the Istio project, read in
  place and never copied here), closed with ``additionalProperties: false`` wherever the
  schema does not say ``x-kubernetes-preserve-unknown-fields`` (the API server rejects
  unknown fields under ``fieldValidation=Strict``), plus its CEL rules evaluated with
  cel-python;
- what no schema checks: DNS names, label syntax, selectors that select, non-root security,
  probes and requests on every container (:func:`semantic_problems`), and that Services,
  subsets, routes and autoscalers point at what was rendered (:func:`wiring_problems`).

Each function returns a list of problems (empty: valid), each naming the object and path.
"""

from __future__ import annotations

import copy
import functools
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from overlay_sdk.k8s.manifests import AUTOSCALER_ANNOTATION
from overlay_sdk.spec import LABEL_KEY, LABEL_VALUE

K8S_VERSION = "1.31.0"
_ISTIO_FILE = Path("schemas") / "istio" / "crd-all.gen.yaml"


def _istio_crds() -> Path:
    """Where Istio's CRDs are: ``$OVERLAY_SHARED_DIR``, else the ``shared`` folder beside
    the repository, else these machines' ``/work/shared`` (a clone elsewhere, e.g. a CI
    checkout in /tmp); the first candidate when none has them."""
    candidates = [Path(__file__).resolve().parents[2].parent / "shared", Path("/work/shared")]
    if os.environ.get("OVERLAY_SHARED_DIR"):
        candidates.insert(0, Path(os.environ["OVERLAY_SHARED_DIR"]))
    found = [c / _ISTIO_FILE for c in candidates if (c / _ISTIO_FILE).is_file()]
    return found[0] if found else candidates[0] / _ISTIO_FILE


ISTIO_CRDS = _istio_crds()
ISTIO_GROUP = "networking.istio.io"
_DNS_1123 = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_DNS_1035 = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"


def ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def istio_unavailable() -> str | None:
    """Why the Istio schemas cannot be read here (None when they can)."""
    if not ISTIO_CRDS.is_file():
        return (f"Istio's CRD schemas are not at {ISTIO_CRDS} (the shared folder beside the "
                "repository, or $OVERLAY_SHARED_DIR); the Istio manifests are checked where "
                "it exists")
    return None


def require_istio() -> None:
    """Skip the calling test when the Istio schemas are absent; fail instead on CI."""
    reason = istio_unavailable()
    if reason is not None:
        if ci():
            pytest.fail(f"CI=true and {reason}")
        pytest.skip(reason)


def name_of(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def is_istio(obj: dict[str, Any]) -> bool:
    return str(obj.get("apiVersion", "")).startswith(ISTIO_GROUP + "/")


# Kubernetes core kinds

def core_problems(obj: dict[str, Any]) -> list[str]:
    """What Kubernetes' own schema (strict: no unknown fields) says of ``obj``."""
    import kubernetes_validate  # type: ignore[import-untyped]

    try:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as err:
        where = "/".join(str(p) for p in err.absolute_path) or "(root)"
        return [f"{name_of(obj)}: {where}: {err.message}"]
    return []


# Istio kinds

def close(schema: Any) -> Any:
    """A copy of an OpenAPI schema with ``additionalProperties: false`` on every object
    schema that neither preserves unknown fields nor says what extra keys may hold."""
    if isinstance(schema, list):
        return [close(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: close(v) if k in ("items", "additionalProperties", "not", "allOf", "anyOf",
                                "oneOf") else v for k, v in schema.items()}
    if "properties" in schema:
        out["properties"] = {k: close(v) for k, v in schema["properties"].items()}
    is_object = schema.get("type") == "object" or "properties" in schema
    if (is_object and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


@functools.cache
def _istio_crds() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> the CRD version's openAPIV3Schema, as Istio ships it."""
    require_istio()
    with ISTIO_CRDS.open(encoding="utf-8") as fh:
        docs = [d for d in yaml.load_all(fh, Loader=getattr(yaml, "CSafeLoader",
                                                               yaml.SafeLoader)) if d]
    out = {}
    for doc in docs:
        if doc.get("kind") != "CustomResourceDefinition":
            continue
        group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
        for version in doc["spec"]["versions"]:
            if version.get("served"):
                out[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return out


@functools.cache
def istio_validator(api_version: str, kind: str) -> Any:
    """A jsonschema validator of the closed schema (``apiVersion``, ``kind`` and
    ``metadata`` admitted at the root, as the API server does)."""
    import jsonschema  # type: ignore[import-untyped]

    raw = _istio_crds().get((api_version, kind))
    if raw is None:
        raise LookupError(f"Istio serves no {kind} in {api_version}")
    schema = close(raw)
    schema["properties"] = {
        "apiVersion": {"type": "string", "enum": [api_version]},
        "kind": {"type": "string", "enum": [kind]},
        "metadata": {"type": "object"},
        **schema["properties"],
    }
    schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind",
                                 "metadata", "spec"})
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


def _cel_rules(schema: Any, value: Any, path: str) -> Iterator[tuple[str, str, str, Any]]:
    """(path, rule, message, value) for every CEL rule that applies to a present value."""
    if not isinstance(schema, dict):
        return
    for rule in schema.get("x-kubernetes-validations", []):
        yield path, rule["rule"], rule.get("message", rule["rule"]), value
    if isinstance(value, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            sub = props.get(key, extra if isinstance(extra, dict) else None)
            yield from _cel_rules(sub, item, f"{path}/{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _cel_rules(schema.get("items"), item, f"{path}/{i}")


@functools.cache
def _cel_program(rule: str) -> Any:
    import celpy

    env = celpy.Environment()
    return env.program(env.compile(rule))


def istio_problems(obj: dict[str, Any]) -> list[str]:
    """What Istio's CRD schema (closed) and its CEL rules say of ``obj``."""
    from celpy import adapter

    try:
        validator = istio_validator(str(obj.get("apiVersion")), str(obj.get("kind")))
    except LookupError as err:
        return [f"{name_of(obj)}: {err}"]
    out = [f"{name_of(obj)}: {'/'.join(str(p) for p in e.absolute_path) or '(root)'}: "
           f"{e.message}" for e in sorted(validator.iter_errors(obj), key=lambda e: e.path)]
    raw = _istio_crds()[(str(obj["apiVersion"]), str(obj["kind"]))]
    for path, rule, message, value in _cel_rules(raw, obj, ""):
        try:
            ok = _cel_program(rule).evaluate({"self": adapter.json_to_cel(value)})
        except Exception as err:  # a rule that cannot be evaluated is a failure too
            out.append(f"{name_of(obj)}: {path}: CEL rule {rule!r} failed to evaluate: {err}")
            continue
        if not ok:
            out.append(f"{name_of(obj)}: {path}: {message} (CEL {rule!r})")
    return out


# What schemas do not check

def _label_problems(where: str, labels: dict[str, Any] | None) -> list[str]:
    out = []
    for key, value in (labels or {}).items():
        if not LABEL_KEY.match(key):
            out.append(f"{where}: label key {key!r} is invalid")
        if not isinstance(value, str) or not LABEL_VALUE.match(value):
            out.append(f"{where}: label {key}={value!r} has an invalid value")
    return out


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return list(obj["spec"]["template"]["spec"].get("containers", []))


def _walk(value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key, item
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


def semantic_problems(obj: dict[str, Any]) -> list[str]:
    """Names, labels and, for workloads, the security and health rules of this project."""
    who = name_of(obj)
    meta = obj.get("metadata", {})
    name = meta.get("name", "")
    pattern = _DNS_1035 if obj.get("kind") == "Service" else _DNS_1123
    out = []
    if not isinstance(name, str) or len(name) > 63 or not re.match(pattern, name):
        out.append(f"{who}: metadata.name is not a DNS label of at most 63 characters")
    out += _label_problems(f"{who} metadata", meta.get("labels"))
    for key in meta.get("annotations") or {}:
        if not LABEL_KEY.match(key):
            out.append(f"{who}: annotation key {key!r} is invalid")
    if obj.get("kind") != "Deployment":
        return out
    spec = obj["spec"]
    pod_meta = spec["template"]["metadata"]
    pod = spec["template"]["spec"]
    out += _label_problems(f"{who} pod", pod_meta.get("labels"))
    selector = spec["selector"]["matchLabels"]
    if not selector or any(pod_meta["labels"].get(k) != v for k, v in selector.items()):
        out.append(f"{who}: spec.selector does not select the pod template's labels")
    for key, value in _walk(obj):
        if key in ("runAsUser", "runAsGroup", "fsGroup"):
            out.append(f"{who}: fixes {key}={value} (OpenShift assigns the UID)")
    if pod.get("securityContext", {}).get("runAsNonRoot") is not True:
        out.append(f"{who}: pod securityContext.runAsNonRoot is not true")
    if pod.get("securityContext", {}).get("seccompProfile") != {"type": "RuntimeDefault"}:
        out.append(f"{who}: pod seccompProfile is not RuntimeDefault")
    volumes = {v["name"] for v in pod.get("volumes", [])}
    for c in _containers(obj):
        where = f"{who} container {c.get('name')}"
        sc = c.get("securityContext", {})
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{where}: allowPrivilegeEscalation is not false")
        if sc.get("capabilities", {}).get("drop") != ["ALL"]:
            out.append(f"{where}: does not drop ALL capabilities")
        if sc.get("runAsNonRoot") is not True:
            out.append(f"{where}: runAsNonRoot is not true")
        ports = {p.get("name") for p in c.get("ports", [])}
        for probe in ("readinessProbe", "livenessProbe"):
            if probe not in c:
                out.append(f"{where}: has no {probe}")
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            action = c.get(probe, {}).get("httpGet") or c.get(probe, {}).get("tcpSocket")
            if probe in c and (not action or action.get("port") not in ports):
                out.append(f"{where}: {probe} is on no declared container port")
        requests = c.get("resources", {}).get("requests", {})
        if not {"cpu", "memory"} <= set(requests):
            out.append(f"{where}: does not request cpu and memory")
        mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
        if set(mounts) - volumes:
            out.append(f"{where}: mounts undeclared volumes {sorted(set(mounts) - volumes)}")
        if sc.get("readOnlyRootFilesystem") and "/tmp" not in mounts.values():
            out.append(f"{where}: a read-only root filesystem needs a writable /tmp")
    return out


def autoscaler_problems(docs: list[dict[str, Any]]) -> list[str]:
    """Every HorizontalPodAutoscaler scales a Deployment rendered in its namespace, which
    leaves it the replicas, names it in its autoscaler annotation (how the operator prunes
    it) and, for a CPU target, requests CPU in every container; minReplicas <= maxReplicas.
    Every Deployment naming an autoscaler is scaled by that one."""
    deployments = {(d["metadata"]["namespace"], d["metadata"]["name"]): d
                   for d in docs if d["kind"] == "Deployment"}
    scalers = {(d["metadata"]["namespace"], d["metadata"]["name"]): d
               for d in docs if d["kind"] == "HorizontalPodAutoscaler"}
    out = []
    for (ns, name), hpa in scalers.items():
        who = f"HorizontalPodAutoscaler {name}"
        spec = hpa["spec"]
        if spec.get("minReplicas", 1) > spec["maxReplicas"]:
            out.append(f"{who}: minReplicas {spec['minReplicas']} above maxReplicas "
                       f"{spec['maxReplicas']}")
        ref = spec["scaleTargetRef"]
        target = deployments.get((ns, ref["name"]))
        if (ref.get("apiVersion"), ref["kind"]) != ("apps/v1", "Deployment") or target is None:
            out.append(f"{who}: scales {ref['kind']} {ref['name']}, which is not rendered")
            continue
        if "replicas" in target["spec"]:
            out.append(f"{who}: its Deployment sets replicas (they are the autoscaler's)")
        if (target["metadata"].get("annotations") or {}).get(AUTOSCALER_ANNOTATION) != name:
            out.append(f"{who}: its Deployment does not name it in {AUTOSCALER_ANNOTATION}")
        cpu = any(m.get("type") == "Resource" and m["resource"]["name"] == "cpu"
                  for m in spec.get("metrics", []))
        for c in _containers(target):
            if cpu and "cpu" not in c.get("resources", {}).get("requests", {}):
                out.append(f"{who}: a CPU target, but container {c.get('name')} requests "
                           "no CPU")
    for (ns, name), d in deployments.items():
        named = (d["metadata"].get("annotations") or {}).get(AUTOSCALER_ANNOTATION)
        if named is None:
            continue
        hpa = scalers.get((ns, named))
        if hpa is None or hpa["spec"]["scaleTargetRef"]["name"] != name:
            out.append(f"Deployment {name} names autoscaler {named}, which does not scale it")
    return out


def wiring_problems(manifests: Iterable[dict[str, Any]]) -> list[str]:
    """Cross-object checks: every model-server Service selects rendered pods on a declared
    port, every DestinationRule subset selects pods behind its host, every route and mirror
    goes to a rendered Service port (and subset), every mirror to the gateway's models port
    (``http-models``, which records the shadow's output: a model server records nothing),
    every autoscaler scales a rendered Deployment that leaves it the replicas
    (:func:`autoscaler_problems`)."""
    docs = list(manifests)
    pods = [(d["metadata"]["namespace"], d["spec"]["template"]["metadata"]["labels"],
             _containers(d)) for d in docs if d["kind"] == "Deployment"]
    services = {}
    for d in docs:
        if d["kind"] == "Service":
            ns = d["metadata"]["namespace"]
            services[f"{d['metadata']['name']}.{ns}.svc.cluster.local"] = d
    out = []

    def selected(ns: str, selector: dict[str, str]) -> list[tuple[dict[str, str], Any]]:
        return [(labels, cs) for pns, labels, cs in pods
                if pns == ns and all(labels.get(k) == v for k, v in selector.items())]

    for host, svc in services.items():
        matches = selected(svc["metadata"]["namespace"], svc["spec"]["selector"])
        is_models = svc["metadata"]["labels"].get("app.kubernetes.io/component") == "routing"
        if not matches and not is_models:
            out.append(f"Service {host} selects no rendered pod")
        for labels, containers in matches:
            names = {p["name"] for c in containers for p in c.get("ports", [])}
            for port in svc["spec"]["ports"]:
                if port["targetPort"] not in names:
                    out.append(f"Service {host} targets port {port['targetPort']} that pod "
                               f"{labels.get('app.kubernetes.io/instance')} does not declare")
    subsets: dict[tuple[str, str], dict[str, str]] = {}
    for d in docs:
        if d["kind"] != "DestinationRule":
            continue
        host = d["spec"]["host"]
        behind_host = services.get(host)
        if behind_host is None:
            out.append(f"DestinationRule {d['metadata']['name']}: host {host} is not rendered")
            continue
        for s in d["spec"].get("subsets", []):
            subsets[(host, s["name"])] = s["labels"]
            behind = selected(behind_host["metadata"]["namespace"],
                              {**behind_host["spec"]["selector"], **s["labels"]})
            if not behind:
                out.append(f"subset {s['name']} of {host} selects no pod")
    for d in docs:
        if d["kind"] != "VirtualService":
            continue
        for route in d["spec"]["http"]:
            targets = [r["destination"] for r in route["route"]]
            if "mirror" in route:
                targets.append(route["mirror"])
                mirror = route["mirror"]
                to = services.get(mirror["host"])
                named = {p["port"]: p["name"] for p in to["spec"]["ports"]} if to else {}
                if to is not None and (named.get(mirror["port"]["number"]) != "http-models"
                                       or "subset" in mirror):
                    out.append(f"route {route.get('name')}: mirrors to {mirror['host']} port "
                               f"{mirror['port']['number']}, not the gateway's models port "
                               "(the shadow's output would not be recorded)")
            for dest in targets:
                to = services.get(dest["host"])
                if to is None:
                    out.append(f"route {route.get('name')}: host {dest['host']} not rendered")
                    continue
                if dest["port"]["number"] not in {p["port"] for p in to["spec"]["ports"]}:
                    out.append(f"route {route.get('name')}: {dest['host']} has no port "
                               f"{dest['port']['number']}")
                if "subset" in dest and (dest["host"], dest["subset"]) not in subsets:
                    out.append(f"route {route.get('name')}: subset {dest['subset']} of "
                               f"{dest['host']} is not defined")
    return out + autoscaler_problems(docs)


def all_problems(manifests: Iterable[dict[str, Any]], *, istio: bool = True) -> list[str]:
    """Every check above, on every manifest (Istio kinds only when ``istio``)."""
    docs = [copy.deepcopy(d) for d in manifests]
    out: list[str] = []
    for d in docs:
        out += semantic_problems(d)
        if is_istio(d):
            if istio:
                out += istio_problems(d)
        else:
            out += core_problems(d)
    return out + wiring_problems(docs)
