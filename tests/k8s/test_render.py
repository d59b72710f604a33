"""The renderer: an AIOverlay -> Deployments, Services, HorizontalPodAutoscalers and Istio
routes, field by field; every manifest valid for Kubernetes 1.31 and for Istio's CRDs; the
VirtualService agrees with the RoutePlan for any valid spec; invalid inputs name the field at
fault."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from overlay_sdk import routing
from overlay_sdk.errors import ValidationError
from overlay_sdk.k8s.manifests import AUTOSCALER_ANNOTATION
from overlay_sdk.k8s.render import (
    VERSION_HEADER,
    RenderSettings,
    VersionTarget,
    render,
    render_yaml,
)
from overlay_sdk.registry_resources import check_resources
from overlay_sdk.spec import MAX_ROUTES, AIOverlay, parse_overlay
from tests.k8s import schemas

UID = "6b2d9f1e-3c4a-4e8b-9d2f-0a1b2c3d4e5f"
PREFIX = "overlays.aioverlay.dev"


def overlay_doc(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "host": {"url": "http://crm.internal:8080"},
        "routes": [{"model": "copilot", "version": "3", "weight": 80},
                   {"model": "copilot", "version": "4", "weight": 20}],
    }
    base.update(spec)
    return {"apiVersion": "overlays.aioverlay.dev/v1alpha1", "kind": "AIOverlay",
            "metadata": {"name": "sales-copilot", "uid": UID, "resourceVersion": "42",
                         "generation": 3, "creationTimestamp": "2025-01-01T00:00:00Z"},
            "spec": base, "status": {"observedGeneration": 2}}


SCORER = VersionTarget("scorer:5", "image", image="ghcr.io/acme/scorer:1.4", port=9000,
                       health_path="/healthz",
                       resources=check_resources({"cpu": 2, "memory": "4Gi",
                                                  "gpu": "A100-80GB"}))
FULL_VERSIONS = {"copilot:4": VersionTarget("copilot:4", "provider"), "scorer:5": SCORER}


def full() -> list[dict[str, Any]]:
    """MLflow copilot:3 (80 %), provider copilot:4 (20 %), image scorer:5 shadowed 12.5 %."""
    doc = overlay_doc(shadow={"model": "scorer", "version": "5", "percent": 12.5},
                      slo={"timeoutMs": 800}, scaling={"minReplicas": 2, "maxReplicas": 4})
    return render(doc, FULL_VERSIONS)


def typed(doc: dict[str, Any]) -> AIOverlay:
    """The AIOverlay of a stored document (without what the API server adds)."""
    meta = {k: v for k, v in doc["metadata"].items() if k in ("name", "namespace")}
    return parse_overlay({"metadata": meta, "spec": doc["spec"]})


def by(manifests: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(only)


def env(c: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in c.get("env", [])}


def virtual_service(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    (vs,) = [m for m in manifests if m["kind"] == "VirtualService"]
    return vs


# Sample overlays: every one must give valid manifests

CASES: dict[str, tuple[dict[str, Any], dict[str, VersionTarget] | None, RenderSettings | None]]
CASES = {
    "full": (overlay_doc(shadow={"model": "scorer", "version": "5", "percent": 12.5},
                         slo={"timeoutMs": 800}, scaling={"minReplicas": 2, "maxReplicas": 4}),
             FULL_VERSIONS, None),
    "one mlflow route, no uid": (
        {"metadata": {"name": "fraud"},
         "spec": {"host": {"url": "https://legacy.example"},
                  "routes": [{"model": "fraud", "version": "1", "weight": 100}]}}, None, None),
    "providers only, provider shadow": (
        overlay_doc(shadow={"model": "copilot", "version": "5", "percent": 100}),
        {k: VersionTarget(k, "provider") for k in ("copilot:3", "copilot:4", "copilot:5")},
        None),
    "image without health path, GPU share, own namespace and settings": (
        {"metadata": {"name": "9-lives", "namespace": "ml-prod", "uid": UID},
         "spec": {"host": {"url": "http://h:1"}, "mode": "shadow",
                  "match": {"method": "POST", "path": "/api/score"},
                  "routes": [{"model": "Fraud_Detector.v2", "version": "12", "weight": 0},
                             {"model": "fraud", "version": "1", "weight": 100}],
                  "placement": {"gpu": {"memoryGiB": 6, "fraction": 0.25}},
                  "slo": {"timeoutMs": 1, "p99Ms": 1}}},
        {"fraud:1": VersionTarget("fraud:1", "image", image="registry.local:5000/fraud@sha256:"
                                  + "a" * 64,
                                  resources=check_resources({"gpu": 2, "memory": "512Mi"}))},
        RenderSettings(namespace="ignored", gateway_image="registry.local:5000/gw:2",
                       model_server_image="registry.local:5000/mlflow:3",
                       tracking_uri="postgresql://mlflow@db/mlflow",
                       registry_uri="http://registry:5000", label_prefix="ai.example.com",
                       gateway_port=9700, gateway_models_port=9701, model_server_port=9080,
                       gateway_replicas=3, gateway_service_account=None, gateway_secret=None,
                       model_server_secret=None, image_pull_policy="Always")),
    "autoscaled from zero, predictive, own prefix and CPU target": (
        overlay_doc(shadow={"model": "scorer", "version": "5", "percent": 50},
                    scaling={"minReplicas": 0, "maxReplicas": 3, "predictive": True}),
        FULL_VERSIONS, RenderSettings(label_prefix="ai.example.com",
                                      model_server_cpu_utilization=150)),
    "longest names": (
        {"metadata": {"name": "a" * 63, "uid": UID},
         "spec": {"host": {"url": "http://h"},
                  "routes": [{"model": "m" * 128, "version": "999999999", "weight": 50},
                             {"model": "M" * 128, "version": "999999999", "weight": 50}],
                  "shadow": {"model": "x" * 128, "version": "1", "percent": 0.0001}}},
        None, None),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    doc, versions, settings_ = CASES[request.param]
    return render(doc, versions, settings=settings_)


def test_core_manifests_pass_kubernetes_schemas(rendered: list[dict[str, Any]]) -> None:
    core = [m for m in rendered if not schemas.is_istio(m)]
    assert {m["kind"] for m in core} <= {"Deployment", "Service", "HorizontalPodAutoscaler"}
    assert [p for m in core for p in schemas.core_problems(m)] == []


def test_istio_manifests_pass_istio_schemas(rendered: list[dict[str, Any]]) -> None:
    schemas.require_istio()
    istio = [m for m in rendered if schemas.is_istio(m)]
    assert sorted(m["kind"] for m in istio) == ["DestinationRule", "VirtualService"]
    assert [p for m in istio for p in schemas.istio_problems(m)] == []


def test_names_labels_security_probes_and_wiring(rendered: list[dict[str, Any]]) -> None:
    assert [p for m in rendered for p in schemas.semantic_problems(m)] == []
    assert schemas.wiring_problems(rendered) == []


def test_the_closed_istio_schema_rejects_what_the_api_server_would() -> None:
    """The validator is not a rubber stamp: an unknown field, a wrong type and a CEL rule
    each fail."""
    schemas.require_istio()
    vs = copy.deepcopy(virtual_service(full()))
    vs["spec"]["http"][0]["bogus"] = 1
    vs["spec"]["http"][-1]["route"][0]["weight"] = "80"
    vs["spec"]["http"][-1]["mirrorPercentage"]["valu"] = 1
    vs["spec"]["http"][0]["timeout"] = "0s"
    text = "\n".join(schemas.istio_problems(vs))
    assert "'bogus' was unexpected" in text
    assert "weight: '80' is not of type 'integer'" in text
    assert "'valu' was unexpected" in text
    assert "must be a valid duration greater than 1ms" in text
    assert schemas.istio_problems({**vs, "kind": "VirtualServices"})[0].endswith(
        "Istio serves no VirtualServices in networking.istio.io/v1")


def test_core_validation_rejects_unknown_fields() -> None:
    deployment = copy.deepcopy(full()[0])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    (problem,) = schemas.core_problems(deployment)
    assert "'readinesProbe' was unexpected" in problem
    autoscaler = copy.deepcopy(by(full(), "HorizontalPodAutoscaler", "sales-copilot-copilot-v3"))
    autoscaler["spec"]["targetCPUUtilizationPercentage"] = 70  # autoscaling/v1's field
    (problem,) = schemas.core_problems(autoscaler)
    assert "'targetCPUUtilizationPercentage' was unexpected" in problem


def test_the_wiring_check_catches_an_autoscaler_that_fights_or_misses() -> None:
    """An autoscaler must scale a rendered Deployment that leaves it the replicas, names it,
    and requests CPU for a CPU target; min <= max."""
    m = copy.deepcopy(full())
    assert schemas.wiring_problems(m) == []
    copilot = by(m, "Deployment", "sales-copilot-copilot-v3")
    copilot["spec"]["replicas"] = 2
    copilot["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"].pop("cpu")
    del copilot["metadata"]["annotations"][AUTOSCALER_ANNOTATION]
    scorer = by(m, "HorizontalPodAutoscaler", "sales-copilot-scorer-v5")
    scorer["spec"]["scaleTargetRef"]["name"] = "sales-copilot-scorer-v4"
    scorer["spec"]["minReplicas"] = 9
    problems = schemas.wiring_problems(m)
    hpa = "HorizontalPodAutoscaler sales-copilot-"
    assert sorted(problems) == sorted([
        f"{hpa}copilot-v3: its Deployment sets replicas (they are the autoscaler's)",
        f"{hpa}copilot-v3: a CPU target, but container model-server requests no CPU",
        f"{hpa}copilot-v3: its Deployment does not name it in {AUTOSCALER_ANNOTATION}",
        f"{hpa}scorer-v5: scales Deployment sales-copilot-scorer-v4, which is not rendered",
        f"{hpa}scorer-v5: minReplicas 9 above maxReplicas 4",
        "Deployment sales-copilot-scorer-v5 names autoscaler sales-copilot-scorer-v5, which "
        "does not scale it",
    ])


def test_the_wiring_check_catches_a_mirror_that_records_nothing() -> None:
    """A mirror straight to the shadow's model server would lose its output."""
    m = copy.deepcopy(full())
    weighted = virtual_service(m)["spec"]["http"][-1]
    weighted["mirror"] = {"host": "sales-copilot-models.default.svc.cluster.local",
                          "subset": "scorer-v5", "port": {"number": 8080}}
    (problem,) = schemas.wiring_problems(m)
    assert problem.startswith("route weighted: mirrors to sales-copilot-models.") and (
        "not the gateway's models port" in problem), problem


# Field by field

def test_manifests_in_apply_order() -> None:
    assert [(m["kind"], m["metadata"]["name"]) for m in full()] == [
        ("Deployment", "sales-copilot-copilot-v3"), ("Service", "sales-copilot-copilot-v3"),
        ("HorizontalPodAutoscaler", "sales-copilot-copilot-v3"),
        ("Deployment", "sales-copilot-scorer-v5"), ("Service", "sales-copilot-scorer-v5"),
        ("HorizontalPodAutoscaler", "sales-copilot-scorer-v5"),
        ("Service", "sales-copilot-models"), ("DestinationRule", "sales-copilot-models"),
        ("VirtualService", "sales-copilot-models"),
        ("Deployment", "sales-copilot-gateway"), ("Service", "sales-copilot-gateway"),
    ]


def test_every_manifest_is_labelled_namespaced_and_owned() -> None:
    for m in full():
        meta = m["metadata"]
        assert meta["namespace"] == "default"
        labels = meta["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "overlay-operator"
        assert labels["app.kubernetes.io/part-of"] == "sales-copilot"
        assert labels[f"{PREFIX}/overlay"] == "sales-copilot"
        assert labels["app.kubernetes.io/instance"] == meta["name"]
        assert labels["app.kubernetes.io/name"] in ("overlay-model-server", "overlay-models",
                                                    "overlay-gateway")
        assert labels["app.kubernetes.io/component"] in ("model-server", "routing", "gateway")
        assert meta["ownerReferences"] == [{
            "apiVersion": "overlays.aioverlay.dev/v1alpha1", "kind": "AIOverlay",
            "name": "sales-copilot", "uid": UID, "controller": True,
            "blockOwnerDeletion": True}]


def test_owner_references_need_a_uid() -> None:
    doc = overlay_doc()
    del doc["metadata"]["uid"]
    assert all("ownerReferences" not in m["metadata"] for m in render(doc))
    given_uid = render(doc, uid="u-1")
    assert {m["metadata"]["ownerReferences"][0]["uid"] for m in given_uid} == {"u-1"}
    assert {m["metadata"]["ownerReferences"][0]["uid"]
            for m in render(overlay_doc(), uid="u-2")} == {"u-2"}
    assert all("ownerReferences" not in m["metadata"] for m in render(typed(doc)))


def test_mlflow_version_runs_the_model_server() -> None:
    m = full()
    d = by(m, "Deployment", "sales-copilot-copilot-v3")
    assert "replicas" not in d["spec"]  # its autoscaler's (scaling: 2 to 4)
    assert d["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/instance": "sales-copilot-copilot-v3",
        f"{PREFIX}/overlay": "sales-copilot"}
    pod_meta = d["spec"]["template"]["metadata"]
    assert pod_meta["labels"][f"{PREFIX}/version"] == "copilot-v3"
    assert pod_meta["annotations"] == {f"{PREFIX}/model-uri": "models:/copilot/3",
                                       f"{PREFIX}/model-version": "copilot:3"}
    c = container(d)
    assert c["image"] == "ghcr.io/overlay-sdk/mlflow-model-server:0.1.0"
    assert [*c["command"], *c["args"]] == [
        "mlflow", "models", "serve", "-m", "models:/copilot/3", "--host", "0.0.0.0",
        "--port", "8080", "--env-manager", "local"]
    assert env(c) == {"MLFLOW_TRACKING_URI": "http://mlflow.mlflow.svc.cluster.local:5000",
                      "HOME": "/tmp"}
    assert c["envFrom"] == [{"secretRef": {"name": "overlay-model-server", "optional": True}}]
    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": "/ping", "port": "http", "scheme": "HTTP"}
    assert c["startupProbe"]["failureThreshold"] * c["startupProbe"]["periodSeconds"] == 600
    assert c["resources"] == {"limits": {"memory": "1Gi"},
                              "requests": {"cpu": "500m", "memory": "1Gi"}}
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
        "privileged": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"}}
    assert c["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    pod = d["spec"]["template"]["spec"]
    assert pod["securityContext"] == {"runAsNonRoot": True,
                                      "seccompProfile": {"type": "RuntimeDefault"}}
    assert pod["automountServiceAccountToken"] is False
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {}}]
    assert "tolerations" not in pod
    s = by(m, "Service", "sales-copilot-copilot-v3")
    assert s["spec"] == {"type": "ClusterIP", "selector": d["spec"]["selector"]["matchLabels"],
                         "ports": [{"name": "http", "port": 8080, "targetPort": "http",
                                    "protocol": "TCP", "appProtocol": "http"}]}


def test_model_uri_and_registry_uri_are_passed_on() -> None:
    m = render(overlay_doc(), {"copilot:3": VersionTarget("copilot:3", model_uri="runs:/abc/m")},
               settings=RenderSettings(registry_uri="http://reg:5000"))
    c = container(by(m, "Deployment", "sales-copilot-copilot-v3"))
    assert c["args"][3] == "runs:/abc/m"
    assert env(c)["MLFLOW_REGISTRY_URI"] == "http://reg:5000"
    # a version the mapping does not name is an MLflow model of the registry
    assert container(by(m, "Deployment", "sales-copilot-copilot-v4"))["args"][3] == \
        "models:/copilot/4"


def test_image_version_runs_its_image_with_its_port_and_gpu() -> None:
    d = by(full(), "Deployment", "sales-copilot-scorer-v5")
    c = container(d)
    assert c["image"] == "ghcr.io/acme/scorer:1.4"
    assert "command" not in c and "args" not in c
    assert c["ports"] == [{"name": "http", "containerPort": 9000, "protocol": "TCP"}]
    assert c["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["resources"] == {"limits": {"memory": "4Gi", "nvidia.com/gpu": "1"},
                              "requests": {"cpu": "2", "memory": "4Gi"}}
    assert c["securityContext"]["readOnlyRootFilesystem"] is False  # an unknown image
    pod = d["spec"]["template"]["spec"]
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists",
                                   "effect": "NoSchedule"}]
    assert d["metadata"]["annotations"][f"{PREFIX}/gpu-model"] == "A100-80GB"


def test_image_without_health_path_gets_tcp_probes_and_gpu_shares_annotations() -> None:
    doc, versions, settings_ = CASES["image without health path, GPU share, own namespace "
                                     "and settings"]
    m = render(doc, versions, settings=settings_)
    image = next(d for d in m if d["kind"] == "Deployment"
             and container(d)["image"].startswith("registry.local:5000/fraud"))
    c = container(image)
    assert c["readinessProbe"]["tcpSocket"] == {"port": "http"}
    assert c["ports"][0]["containerPort"] == 8080
    assert c["resources"]["limits"] == {"memory": "512Mi", "nvidia.com/gpu": "2"}
    assert c["resources"]["requests"] == {"cpu": "500m", "memory": "512Mi"}
    assert c["imagePullPolicy"] == "Always"
    # the other version declares nothing: the overlay's placement.gpu, a quarter of one GPU
    mlflow = next(d for d in m if d["kind"] == "Deployment" and d is not image
              and container(d)["name"] == "model-server")
    notes = mlflow["metadata"]["annotations"]
    assert notes["ai.example.com/gpu-fraction"] == "0.25"
    assert notes["ai.example.com/gpu-memory"] == "6Gi"
    assert "nvidia.com/gpu" not in container(mlflow)["resources"].get("limits", {})
    assert container(mlflow)["args"][7] == "9080"
    assert all(m_["metadata"]["namespace"] == "ml-prod" for m_ in m)


def test_provider_versions_run_nowhere_and_route_to_the_gateway() -> None:
    m = full()
    assert not [x for x in m if "copilot-v4" in x["metadata"]["name"]]
    dr = by(m, "DestinationRule", "sales-copilot-models")
    assert dr["spec"] == {
        "host": "sales-copilot-models.default.svc.cluster.local", "exportTo": ["."],
        "subsets": [{"name": "copilot-v3", "labels": {f"{PREFIX}/version": "copilot-v3"}},
                    {"name": "scorer-v5", "labels": {f"{PREFIX}/version": "scorer-v5"}}]}
    weighted = virtual_service(m)["spec"]["http"][-1]["route"]
    assert weighted[1] == {
        "destination": {"host": "sales-copilot-gateway.default.svc.cluster.local",
                        "port": {"number": 8701}},
        "weight": 20, "headers": {"request": {"set": {VERSION_HEADER: "copilot:4"}}}}


def test_virtual_service_carries_the_plan() -> None:
    vs = virtual_service(full())
    models = "sales-copilot-models.default.svc.cluster.local"
    # the self-hosted shadow is mirrored to the gateway's models port, which records it
    mirror = {"mirror": {"host": "sales-copilot-gateway.default.svc.cluster.local",
                         "port": {"number": 8701}},
              "mirrorPercentage": {"value": 12.5}}
    assert vs["spec"]["hosts"] == [models]
    assert vs["spec"]["exportTo"] == ["."]
    http = vs["spec"]["http"]
    assert [r["name"] for r in http] == ["sticky-copilot-v3", "sticky-copilot-v4",
                                         "sticky-scorer-v5", "weighted"]
    assert http[0] == {
        "name": "sticky-copilot-v3",
        "match": [{"headers": {VERSION_HEADER: {"exact": "copilot:3"}}}],
        "route": [{"destination": {"host": models, "subset": "copilot-v3",
                                   "port": {"number": 8080}}}],
        "timeout": "0.800s", **mirror}
    # the shadow's own sticky route goes to its subset and is not mirrored: the gateway's
    # call to it through the mesh (x-overlay-version: scorer:5) comes back to nobody
    assert http[2] == {
        "name": "sticky-scorer-v5",
        "match": [{"headers": {VERSION_HEADER: {"exact": "scorer:5"}}}],
        "route": [{"destination": {"host": models, "subset": "scorer-v5",
                                   "port": {"number": 8080}}}],
        "timeout": "0.800s"}
    assert http[3] == {
        "name": "weighted",
        "route": [{"destination": {"host": models, "subset": "copilot-v3",
                                   "port": {"number": 8080}}, "weight": 80},
                  {"destination": {"host": "sales-copilot-gateway.default.svc.cluster.local",
                                   "port": {"number": 8701}}, "weight": 20,
                   "headers": {"request": {"set": {VERSION_HEADER: "copilot:4"}}}}],
        "timeout": "0.800s", **mirror}


@pytest.mark.parametrize("kind", ["mlflow", "image", "provider"])
def test_every_shadow_is_mirrored_to_the_gateways_models_port(kind: str) -> None:
    """Self-hosted or provider, the mirror goes to the gateway Service's models port (a
    model server records nothing); the header routes and the weighted default are as for
    any version, and the shadow's header route carries no mirror (no loop)."""
    shadow = {"mlflow": VersionTarget("copilot:5", "mlflow"),
              "image": VersionTarget("copilot:5", "image", image="ghcr.io/acme/c:5", port=9000),
              "provider": VersionTarget("copilot:5", "provider")}[kind]
    manifests = render(overlay_doc(shadow={"model": "copilot", "version": "5", "percent": 30}),
                       {"copilot:4": VersionTarget("copilot:4", "provider"),
                        "copilot:5": shadow}, settings=RenderSettings(gateway_models_port=9701))
    gateway = by(manifests, "Service", "sales-copilot-gateway")
    assert {"name": "http-models", "port": 9701} in [
        {k: p[k] for k in ("name", "port")} for p in gateway["spec"]["ports"]]
    to_gateway = {"host": "sales-copilot-gateway.default.svc.cluster.local",
                  "port": {"number": 9701}}
    models = "sales-copilot-models.default.svc.cluster.local"
    http = virtual_service(manifests)["spec"]["http"]
    assert [r["name"] for r in http] == ["sticky-copilot-v3", "sticky-copilot-v4",
                                         "sticky-copilot-v5", "weighted"]
    for r in (http[0], http[1], http[3]):
        assert r["mirror"] == to_gateway and r["mirrorPercentage"] == {"value": 30.0}
    shadow_route = http[2]
    assert "mirror" not in shadow_route and "mirrorPercentage" not in shadow_route
    assert shadow_route["match"] == [{"headers": {VERSION_HEADER: {"exact": "copilot:5"}}}]
    assert shadow_route["route"] == [{"destination": to_gateway if kind == "provider" else {
        "host": models, "subset": "copilot-v5", "port": {"number": 8080}}}]
    # the routes of the primaries are unchanged by the shadow's kind
    assert http[0]["route"] == [{"destination": {"host": models, "subset": "copilot-v3",
                                                 "port": {"number": 8080}}}]
    assert [(d["destination"], d["weight"]) for d in http[3]["route"]] == [
        ({"host": models, "subset": "copilot-v3", "port": {"number": 8080}}, 80),
        (to_gateway, 20)]
    assert schemas.wiring_problems(manifests) == []


def test_no_shadow_no_mirror_and_no_slo_no_timeout() -> None:
    http = virtual_service(render(overlay_doc()))["spec"]["http"]
    assert all("mirror" not in r and "mirrorPercentage" not in r and "timeout" not in r
               for r in http)
    assert [d["weight"] for d in http[-1]["route"]] == [80, 20]


def test_gateway_in_front_of_the_host() -> None:
    m = full()
    d = by(m, "Deployment", "sales-copilot-gateway")
    assert d["spec"]["replicas"] == 2
    assert d["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    c = container(d)
    assert c["image"] == "ghcr.io/overlay-sdk/overlay-gateway:0.1.0"
    assert c["args"] == ["gateway", "--host", "0.0.0.0", "--port", "8700"]
    assert env(c) == {
        "OVERLAY_NAME": "sales-copilot", "OVERLAY_NAMESPACE": "default",
        "OVERLAY_HOST_URL": "http://crm.internal:8080", "OVERLAY_STORE": "k8s:///default",
        "OVERLAY_REGISTRY_URI": "http://mlflow.mlflow.svc.cluster.local:5000",
        "OVERLAY_MODELS_URL": "http://sales-copilot-models.default.svc.cluster.local:8080",
        "OVERLAY_MODELS_PORT": "8701", "OVERLAY_SHADOW": "mesh",
        "OVERLAY_HOME": "/tmp/overlay", "HOME": "/tmp"}
    assert c["envFrom"] == [{"secretRef": {"name": "overlay-gateway", "optional": True}}]
    assert [p["name"] for p in c["ports"]] == ["http", "http-models"]
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http", "scheme": "HTTP"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http", "scheme": "HTTP"}
    assert c["resources"] == {"limits": {"memory": "256Mi"},
                              "requests": {"cpu": "100m", "memory": "256Mi"}}
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    pod = d["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "overlay-gateway"
    assert pod["automountServiceAccountToken"] is True
    s = by(m, "Service", "sales-copilot-gateway")
    assert [(p["name"], p["port"], p["targetPort"]) for p in s["spec"]["ports"]] == [
        ("http", 8700, "http"), ("http-models", 8701, "http-models")]


def test_scaling_gives_each_model_server_an_autoscaler() -> None:
    """scaling 2..4: an autoscaling/v2 HPA per model server (the shadow's too; none for the
    provider version nor the gateway), owned and labelled as its Deployment, which leaves it
    the replicas and names it."""
    m = full()
    scalers = [x for x in m if x["kind"] == "HorizontalPodAutoscaler"]
    assert [x["metadata"]["name"] for x in scalers] == ["sales-copilot-copilot-v3",
                                                        "sales-copilot-scorer-v5"]
    for hpa in scalers:
        name = hpa["metadata"]["name"]
        d = by(m, "Deployment", name)
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["metadata"]["namespace"] == "default"
        assert hpa["metadata"]["labels"] == d["metadata"]["labels"]
        assert hpa["metadata"]["ownerReferences"] == d["metadata"]["ownerReferences"]
        assert hpa["metadata"]["annotations"] == {
            f"{PREFIX}/model-version": d["metadata"]["annotations"][f"{PREFIX}/model-version"]}
        assert hpa["spec"] == {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": 2, "maxReplicas": 4,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]}
        assert "replicas" not in d["spec"]
        assert d["metadata"]["annotations"][AUTOSCALER_ANNOTATION] == name
        # on the Deployment only: adding or removing an autoscaler rolls no pod
        assert AUTOSCALER_ANNOTATION not in d["spec"]["template"]["metadata"]["annotations"]
    gateway = by(m, "Deployment", "sales-copilot-gateway")
    assert gateway["spec"]["replicas"] == 2  # RenderSettings.gateway_replicas, never scaled
    assert AUTOSCALER_ANNOTATION not in (gateway["metadata"].get("annotations") or {})


ZERO_NOTE = ("not supported: a HorizontalPodAutoscaler cannot scale to 0 (KEDA or Knative "
             "can); at least 1 replica runs")
PREDICTIVE_NOTE = ("not acted on in a cluster: replicas are not scaled ahead of forecast "
                   "traffic")


@pytest.mark.parametrize(("scaling", "replicas", "bounds", "notes"), [
    (None, 1, None, {}),
    ({"minReplicas": 1, "maxReplicas": 1}, 1, None, {}),
    ({"minReplicas": 0, "maxReplicas": 1}, 1, None, {"scale-to-zero": ZERO_NOTE}),
    ({}, 1, None, {"scale-to-zero": ZERO_NOTE}),  # the defaults: 0 to 1
    ({"minReplicas": 3, "maxReplicas": 3}, 3, None, {}),
    ({"minReplicas": 4, "maxReplicas": 4, "predictive": True}, 4, None,
     {"predictive": PREDICTIVE_NOTE}),
    ({"minReplicas": 0, "maxReplicas": 3}, None, (1, 3), {"scale-to-zero": ZERO_NOTE}),
    ({"maxReplicas": 3}, None, (1, 3), {"scale-to-zero": ZERO_NOTE}),  # minReplicas defaults to 0
    ({"minReplicas": 1, "maxReplicas": 2}, None, (1, 2), {}),
    ({"minReplicas": 3, "maxReplicas": 10, "predictive": True}, None, (3, 10),
     {"predictive": PREDICTIVE_NOTE}),
    ({"minReplicas": 0, "maxReplicas": 1000, "predictive": True}, None, (1, 1000),
     {"scale-to-zero": ZERO_NOTE, "predictive": PREDICTIVE_NOTE}),
], ids=["none", "1-1", "0-1", "defaults", "3-3", "4-4-predictive", "0-3", "max-only", "1-2",
        "3-10-predictive", "0-1000-predictive"])
def test_scaling_field_by_field(scaling: dict[str, Any] | None, replicas: int | None,
                                bounds: tuple[int, int] | None,
                                notes: dict[str, str]) -> None:
    """An autoscaler only when scaling allows more than one replica (max > max(1, min)),
    from max(1, min); else replicas = max(1, min). minReplicas 0 and predictive, which a
    cluster does not act on, are said on the Deployment, not on its pods."""
    doc = overlay_doc(**({"scaling": scaling} if scaling is not None else {}))
    m = render(doc)
    d = by(m, "Deployment", "sales-copilot-copilot-v3")
    scalers = [x for x in m if x["kind"] == "HorizontalPodAutoscaler"]
    if bounds is None:
        assert scalers == []
        assert d["spec"]["replicas"] == replicas
        assert AUTOSCALER_ANNOTATION not in d["metadata"]["annotations"]
    else:  # both versions run in the model server here: one autoscaler each
        assert [x["metadata"]["name"] for x in scalers] == ["sales-copilot-copilot-v3",
                                                            "sales-copilot-copilot-v4"]
        hpa = scalers[0]
        assert hpa["spec"]["scaleTargetRef"]["name"] == "sales-copilot-copilot-v3"
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == bounds
        assert "replicas" not in d["spec"]
        assert d["metadata"]["annotations"][AUTOSCALER_ANNOTATION] == "sales-copilot-copilot-v3"
    said = {k.removeprefix(f"{PREFIX}/"): v for k, v in d["metadata"]["annotations"].items()
            if k.removeprefix(f"{PREFIX}/") in ("scale-to-zero", "predictive")}
    assert said == notes
    assert d["spec"]["template"]["metadata"]["annotations"] == {
        f"{PREFIX}/model-uri": "models:/copilot/3", f"{PREFIX}/model-version": "copilot:3"}
    gateway = by(m, "Deployment", "sales-copilot-gateway")
    assert gateway["spec"]["replicas"] == 2 and "annotations" not in gateway["metadata"]
    assert schemas.wiring_problems(m) == []
    assert [p for x in scalers for p in schemas.core_problems(x)] == []


def test_scaling_settings_prefix_and_a_provider_only_overlay() -> None:
    doc, versions, settings_ = CASES["autoscaled from zero, predictive, own prefix and CPU "
                                     "target"]
    m = render(doc, versions, settings=settings_)
    hpa = by(m, "HorizontalPodAutoscaler", "sales-copilot-scorer-v5")
    assert hpa["spec"]["metrics"][0]["resource"]["target"] == {"type": "Utilization",
                                                               "averageUtilization": 150}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 3)
    notes = by(m, "Deployment", "sales-copilot-scorer-v5")["metadata"]["annotations"]
    # the notes under the renderer's prefix; the autoscaler's name under the operator's own
    assert notes["ai.example.com/scale-to-zero"] == ZERO_NOTE
    assert notes["ai.example.com/predictive"] == PREDICTIVE_NOTE
    assert notes[AUTOSCALER_ANNOTATION] == "sales-copilot-scorer-v5"
    assert AUTOSCALER_ANNOTATION == "overlays.aioverlay.dev/autoscaler"
    # nothing runs for provider versions: nothing to scale
    providers = render(overlay_doc(scaling={"minReplicas": 1, "maxReplicas": 5}),
                       {k: VersionTarget(k, "provider") for k in ("copilot:3", "copilot:4")})
    assert [x["kind"] for x in providers if x["kind"] in ("HorizontalPodAutoscaler",
                                                          "Deployment")] == ["Deployment"]


def test_adding_or_removing_scaling_changes_no_pod_template() -> None:
    """The pods are the same with or without scaling: no rollout when it changes."""
    def templates(m: list[dict[str, Any]]) -> list[Any]:
        return [x["spec"]["template"] for x in m if x["kind"] == "Deployment"]

    plain = render(overlay_doc())
    for scaling in ({"maxReplicas": 3, "predictive": True}, {"minReplicas": 2, "maxReplicas": 2},
                    {"minReplicas": 0, "maxReplicas": 1}):
        assert templates(render(overlay_doc(scaling=scaling))) == templates(plain)


def test_models_service_selects_every_model_server_of_the_overlay() -> None:
    s = by(full(), "Service", "sales-copilot-models")
    assert s["spec"]["selector"] == {f"{PREFIX}/overlay": "sales-copilot",
                                     "app.kubernetes.io/component": "model-server"}


def test_names_are_dns_labels_kept_when_valid_and_hashed_when_not() -> None:
    doc, versions, settings_ = CASES["longest names"]
    m = render(doc, versions, settings=settings_)
    names = [x["metadata"]["name"] for x in m]
    assert all(len(n) <= 63 for n in names)
    assert len({(x["kind"], x["metadata"]["name"]) for x in m}) == len(m)
    # "m"*128 and "M"*128 are different models: different names and subsets
    subsets = [s["name"] for s in by(m, "DestinationRule", names[-3])["spec"]["subsets"]]
    assert len(set(subsets)) == 3 and all(len(s) <= 63 for s in subsets)
    odd = render({"metadata": {"name": "9-lives"}, "spec": {
        "host": {"url": "http://h"},
        "routes": [{"model": "Fraud_Detector.v2", "version": "12", "weight": 100}]}})
    first = odd[0]["metadata"]["name"]
    assert first.startswith("x-9-lives-fraud-detector-v2-v12-") and len(first) == 40
    assert odd[-1]["metadata"]["name"].startswith("x-9-lives-gateway-")
    kept = render(overlay_doc())
    assert kept[0]["metadata"]["name"] == "sales-copilot-copilot-v3"


def test_same_input_same_bytes_and_fresh_objects() -> None:
    doc = overlay_doc(shadow={"model": "scorer", "version": "5", "percent": 12.5})
    first = render_yaml(doc, FULL_VERSIONS)
    assert render_yaml(copy.deepcopy(doc), dict(FULL_VERSIONS)) == first
    assert "&id" not in first and "*id" not in first
    assert list(yaml.safe_load_all(first)) == render(doc, FULL_VERSIONS)
    # the typed overlay renders as its stored form does, given the uid
    assert render(typed(doc), FULL_VERSIONS, uid=UID) == render(doc, FULL_VERSIONS)
    # callers may change what they get: the next render is untouched
    mutated = render(doc, FULL_VERSIONS)
    virtual_service(mutated)["spec"]["http"][0]["mirrorPercentage"]["value"] = 99
    mutated[0]["metadata"]["labels"].clear()
    assert render_yaml(doc, FULL_VERSIONS) == first
    assert json.loads(json.dumps(render(doc, FULL_VERSIONS))) == render(doc, FULL_VERSIONS)


@pytest.mark.parametrize("case", sorted(CASES))
def test_yaml_is_the_same_with_or_without_libyaml(case: str) -> None:
    from overlay_sdk.k8s import render as module

    doc, versions, settings_ = CASES[case]
    pure = yaml.dump_all(render(doc, versions, settings=settings_), Dumper=module._PyDumper,
                         sort_keys=False, explicit_start=True, width=1000)
    assert render_yaml(doc, versions, settings=settings_) == pure


def test_a_given_plan_is_used_and_checked() -> None:
    """The operator may pass the plan it replayed from the history, as the gateway does."""
    before = overlay_doc()
    after = overlay_doc(routes=[{"model": "copilot", "version": "3", "weight": 95},
                                {"model": "copilot", "version": "4", "weight": 5}])
    replayed = routing.replay([(1, typed(before).spec), (2, typed(after).spec)])
    assert replayed is not None
    assert render(after, plan=replayed) == render(after)
    with pytest.raises(ValidationError) as err:
        render(after, plan=routing.plan(typed(before).spec))
    assert err.value.paths == ["plan"]


# Invalid inputs: clear errors naming the field

def _doc_with(path: str, value: Any) -> dict[str, Any]:
    doc = overlay_doc()
    *parents, last = path.split(".")
    node: Any = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[int(last) if isinstance(node, list) else last] = value
    return doc


INVALID: list[tuple[str, Any, str, str]] = [
    ("weights not summing to 100",
     lambda: render(_doc_with("spec.routes.1.weight", 15)), "spec.routes", "sum to 95"),
    ("overlay name not a DNS label",
     lambda: render(_doc_with("metadata.name", "Sales_Copilot")), "metadata.name", "DNS-1123"),
    ("unknown metadata field",
     lambda: render(_doc_with("metadata.nmae", "x")), "metadata.nmae", ""),
    ("empty uid", lambda: render(_doc_with("metadata.uid", "")), "metadata.uid", "uid"),
    ("uid argument", lambda: render(overlay_doc(), uid=""), "uid", "uid"),
    ("unresolved alias route",
     lambda: render(_doc_with("spec.routes.0", {"model": "copilot", "alias": "champion",
                                                "weight": 80})),
     "spec.routes[0]", "no resolved version"),
    ("unresolved alias shadow",
     lambda: render(_doc_with("spec.shadow", {"model": "copilot", "alias": "next"})),
     "spec.shadow", "no resolved version"),
    ("not an overlay", lambda: render(["routes"]), "overlay", "AIOverlay"),  # type: ignore[arg-type]
    ("versions entry for another version",
     lambda: render(overlay_doc(), {"copilot:3": VersionTarget("copilot:4")}),
     "versions['copilot:3'].key", "must describe copilot:3"),
    ("versions entry of the wrong type",
     lambda: render(overlay_doc(), {"copilot:3": {"kind": "image"}}),  # type: ignore[dict-item]
     "versions['copilot:3']", "VersionTarget"),
    ("versions not a mapping",
     lambda: render(overlay_doc(), ["copilot:3"]),  # type: ignore[arg-type]
     "versions", "mapping"),
    ("settings of the wrong type",
     lambda: render(overlay_doc(), settings={"namespace": "x"}),  # type: ignore[arg-type]
     "settings", "RenderSettings"),
    ("target key", lambda: VersionTarget("copilot"), "key", "name:version"),
    ("target kind", lambda: VersionTarget("m:1", "docker"), "kind", "mlflow"),  # type: ignore[arg-type]
    ("image target without image", lambda: VersionTarget("m:1", "image"), "image",
     "image reference"),
    ("image target port", lambda: VersionTarget("m:1", "image", image="a/b", port=0), "port",
     "1 to 65535"),
    ("image target health path",
     lambda: VersionTarget("m:1", "image", image="a/b", health_path="healthz"), "health_path",
     "URL path"),
    ("mlflow target with a port", lambda: VersionTarget("m:1", port=9000), "port",
     "model_server_port"),
    ("provider target with an image",
     lambda: VersionTarget("m:1", "provider", image="a/b"), "image", "runs nowhere"),
    ("target resources as a dict",
     lambda: VersionTarget("m:1", resources={"cpu": 2}),  # type: ignore[arg-type]
     "resources", "check_resources"),
    ("settings namespace", lambda: RenderSettings(namespace="Bad_NS"), "settings.namespace",
     "DNS-1123"),
    ("settings image", lambda: RenderSettings(gateway_image=""), "settings.gateway_image",
     "image reference"),
    ("settings ports", lambda: RenderSettings(gateway_models_port=8700),
     "settings.gateway_models_port", "must differ"),
    ("settings label prefix", lambda: RenderSettings(label_prefix="Overlays/"),
     "settings.label_prefix", "DNS subdomain"),
    ("settings replicas", lambda: RenderSettings(gateway_replicas=0),
     "settings.gateway_replicas", "1 to 1000"),
    ("settings CPU target zero", lambda: RenderSettings(model_server_cpu_utilization=0),
     "settings.model_server_cpu_utilization", "integer from 1 to 1000, got 0"),
    ("settings CPU target too high", lambda: RenderSettings(model_server_cpu_utilization=7000),
     "settings.model_server_cpu_utilization", "in percent of the CPU request"),
    ("settings CPU target a string",
     lambda: RenderSettings(model_server_cpu_utilization="70%"),  # type: ignore[arg-type]
     "settings.model_server_cpu_utilization", "got '70%'"),
    ("settings CPU target a bool",
     lambda: RenderSettings(model_server_cpu_utilization=True),
     "settings.model_server_cpu_utilization", "got True"),
]


@pytest.mark.parametrize(("call", "path", "says"), [case[1:] for case in INVALID],
                         ids=[case[0] for case in INVALID])
def test_invalid_inputs_name_the_field(call: Any, path: str, says: str) -> None:
    with pytest.raises(ValidationError) as err:
        call()
    assert path in err.value.paths, str(err.value)
    assert says in str(err.value)


# Any valid spec: the VirtualService agrees with the RoutePlan

# a few names, plain and odd (upper case, '.', '_', a leading digit, the longest): they
# shrink fast, and the naming rules are tested on their own above
MODEL = st.sampled_from(["copilot", "fraud", "Fraud_Detector.v2", "a.b", "A-b", "9lives",
                         "m" * 128])
KEY = st.tuples(MODEL, st.integers(1, 999_999_999).map(str))
NAME = st.sampled_from(["sales-copilot", "x", "9-lives", "a" * 63])


def weights_of(n: int) -> st.SearchStrategy[list[int]]:
    """``n`` integer weights (zeros allowed) summing to 100."""
    cuts = st.lists(st.integers(0, 100), min_size=n - 1, max_size=n - 1).map(sorted)
    return cuts.map(lambda c: [b - a for a, b in zip([0, *c], [*c, 100], strict=True)])


@st.composite
def overlays(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, VersionTarget]]:
    n = draw(st.integers(1, MAX_ROUTES))
    with_shadow = draw(st.booleans())
    keys = draw(st.lists(KEY, min_size=n + with_shadow, max_size=n + with_shadow,
                         unique_by=lambda k: (k[0], k[1])))
    weights = draw(weights_of(n))
    spec: dict[str, Any] = {
        "host": {"url": "http://legacy.internal:8080"},
        "routes": [{"model": m, "version": v, "weight": w}
                   for (m, v), w in zip(keys[:n], weights, strict=True)],
    }
    if with_shadow:
        model, version = keys[n]
        spec["shadow"] = {"model": model, "version": version,
                          "percent": draw(st.floats(0, 100, allow_nan=False))}
    if draw(st.booleans()):
        spec["slo"] = {"timeoutMs": draw(st.integers(1, 600_000))}
    if draw(st.booleans()):
        low = draw(st.integers(0, 4))
        spec["scaling"] = {"minReplicas": low, "maxReplicas": draw(st.integers(max(1, low), 6)),
                           "predictive": draw(st.booleans())}
    name = draw(NAME)
    versions = {}
    for model, version in keys:
        key = f"{model}:{version}"
        kind = draw(st.sampled_from(["mlflow", "image", "provider", "default"]))
        if kind == "image":
            versions[key] = VersionTarget(key, "image", image="ghcr.io/acme/m:1",
                                          port=draw(st.integers(1, 65535)))
        elif kind == "mlflow":
            versions[key] = VersionTarget(key, "mlflow", model_uri=f"runs:/{version}/model")
        elif kind == "provider":
            versions[key] = VersionTarget(key, "provider")
    return {"metadata": {"name": name, "uid": UID}, "spec": spec}, versions


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(overlays(), st.data())
def test_virtual_service_weights_and_mirror_equal_the_route_plan(
        case: tuple[dict[str, Any], dict[str, VersionTarget]], data: st.DataObject) -> None:
    doc, versions = case
    spec = typed(doc).spec
    # the plan as a gateway holds it after some history: derived from an earlier revision
    earlier = copy.deepcopy(doc)
    earlier["spec"]["routes"] = [dict(r, weight=w) for r, w in zip(
        doc["spec"]["routes"], data.draw(weights_of(len(doc["spec"]["routes"]))), strict=True)]
    plan = routing.plan(spec, previous=routing.plan(typed(earlier).spec))
    manifests = render(doc, versions)
    vs = virtual_service(manifests)
    http = vs["spec"]["http"]
    default = http[-1]
    assert default["name"] == "weighted" and "match" not in default
    assert [d["weight"] for d in default["route"]] == list(plan.weights().values())
    assert [d["weight"] for d in default["route"]] == [r.weight for r in spec.routes]
    assert sum(d["weight"] for d in default["route"]) == 100
    # each weight goes to its own version: a subset of it, or the gateway told which one
    subsets = {s["name"]: s["labels"] for s in
               by(manifests, "DestinationRule", vs["metadata"]["name"])["spec"].get(
                   "subsets", [])}
    header_routes = {r["match"][0]["headers"][VERSION_HEADER]["exact"]: r for r in http[:-1]}
    (gateway,) = [m for m in manifests if m["kind"] == "Service"
                  and m["metadata"]["labels"]["app.kubernetes.io/component"] == "gateway"]
    gateway_host = f"{gateway['metadata']['name']}.{gateway['metadata']['namespace']}" \
        ".svc.cluster.local"
    for key, entry in zip(plan.weights(), default["route"], strict=True):
        assert header_routes[key]["route"][0]["destination"] == entry["destination"]
        if "subset" in entry["destination"]:
            assert entry["destination"]["subset"] in subsets
        else:
            assert entry["headers"]["request"]["set"] == {VERSION_HEADER: key}
    expected = set(plan.versions) | ({plan.shadow} if plan.shadow else set())
    assert set(header_routes) == expected and len(http) == len(expected) + 1
    if plan.shadow is None:
        assert all("mirror" not in r and "mirrorPercentage" not in r for r in http)
    else:
        assert spec.shadow is not None
        primaries = [r for key, r in header_routes.items() if key != plan.shadow] + [default]
        for r in primaries:
            assert r["mirrorPercentage"] == {"value": plan.shadow_percent}
            assert r["mirrorPercentage"]["value"] == spec.shadow.percent
            # every shadow is mirrored to the gateway's models port, which records it
            assert r["mirror"] == {"host": gateway_host,
                                   "port": {"number": RenderSettings().gateway_models_port}}
        # the gateway calls a self-hosted shadow by its header route: never mirrored
        assert "mirror" not in header_routes[plan.shadow]
        assert "mirrorPercentage" not in header_routes[plan.shadow]
    assert schemas.wiring_problems(manifests) == []
    assert [p for m in manifests for p in schemas.semantic_problems(m)] == []
    if schemas.istio_unavailable() is None:
        assert schemas.istio_problems(vs) == []


def test_missing_istio_schemas_skip_here_and_fail_on_ci(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setattr(schemas, "ISTIO_CRDS", tmp_path / "absent" / "crd-all.gen.yaml")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="Istio's CRD schemas are not at"):
        schemas.require_istio()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true and Istio's CRD schemas"):
        schemas.require_istio()
