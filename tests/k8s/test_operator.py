"""The operator loop on an emulated API server (kmock, ``tests/kmock_support.py``).

The operator runs as it does in a cluster (kopf, logged in from a kubeconfig, watching one
namespace) in a background thread; overlays are written through the SDK's Kubernetes store
or, for what a user could write with kubectl, through a plain client. Checked:

- create -> the children (Deployments, Services, DestinationRule, VirtualService) with owner
  references to the CR, server-side applied by ``overlay-operator``; the status conditions
  ``metav1.Condition``-shaped (the CRD's schema accepts them), the ``Routes`` summary; Events;
- a weight change through the store -> the VirtualService changes, ``RoutesApplied`` tracks
  the new generation; a version no longer routed -> its model server is removed; scaling
  that allows more than one replica -> an owned HorizontalPodAutoscaler per model server,
  pruned when scaling is removed (the Deployment then gets its replicas again);
- an invalid object -> ``Degraded`` with the reason (no retry), others keep reconciling, and a
  fixed spec recovers; an unregistered version and an unreachable registry -> ``Degraded``
  with their reasons, retried, recovered;
- ``Ready`` follows the Deployments; deletion keeps the history (the finalizer); the alert
  timer posts an Event per new alert; a restarted operator catches up (resume + prune);
- every API call the operator made is allowed by ``deploy/rbac/operator.yaml`` and each rule
  there was used (the gateway's Role likewise for the store's reads); ``overlay operator run``
  against a kubeconfig, end to end, in a subprocess.

The pure decisions (conditions, readiness, backoff, API errors) are tested directly at the end.

Not emulated here (kmock): schema validation, garbage collection, RBAC itself. kopf needs what
``tests/kmock_support.py`` lacks, added by :class:`KopfServer`: ``generateName`` (its Events),
JSON patches (its finalizers), and a watch that does not lose a change made while it starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import jsonpatch  # type: ignore[import-untyped]
import jsonpointer  # type: ignore[import-untyped]
import kmock
import pytest
import yaml
from kubernetes import client as k8s

import tests.kmock_support as kmock_support
from overlay_sdk.crd_cel import crd_errors
from overlay_sdk.errors import BackendError, NotFoundError, ValidationError
from overlay_sdk.k8s import cluster as kc
from overlay_sdk.k8s import operator as op
from overlay_sdk.k8s import reconcile as rc
from overlay_sdk.k8s.manifests import AUTOSCALER_ANNOTATION, VersionTarget
from overlay_sdk.spec import ModelRef, parse_overlay
from overlay_sdk.store.kubernetes import EXTERNAL_AUTHOR, REVISION_ANNOTATION, KubernetesStore
from tests.kmock_support import AIOVERLAYS, ClusterThread
from tests.process_support import terminate

ROOT = Path(__file__).resolve().parents[2]
NS = "team-a"
RESTART_NS = "team-b"
CLI_NS = "team-c"
GROUP, VERSION = "overlays.aioverlay.dev", "v1alpha1"
OPERATOR_TOKEN = "operator-token"
RESTART_TOKEN = "restarted-operator-token"
GATEWAY_TOKEN = "gateway-token"
CLI_TOKEN = "cli-token"
T = TypeVar("T")


# -- the emulated cluster --------------------------------------------------------------------


def _merge_diff(old: Any, new: Any) -> Any:
    """The JSON merge patch (RFC 7386) turning ``old`` into ``new``."""
    if not isinstance(old, Mapping) or not isinstance(new, Mapping):
        return new
    out: dict[str, Any] = {k: None for k in old if k not in new}
    for key, value in new.items():
        if key not in old or old[key] != value:
            out[key] = _merge_diff(old.get(key), value)
    return out


class _WatchFromSubscription(kmock.KubernetesEmulator):
    """kmock 0.8's watch takes its snapshot of the objects, sends it, and only then listens
    to changes: a change made in between is lost (kopf then waits forever for the object it
    just patched). Here the watch listens first, then sends the snapshot; a change may come
    twice, as after a real watch's reconnect."""

    __slots__ = ()

    async def _serve_watch(self, request: kmock.Request) -> Any:
        yield b""
        assert request.resource is not None
        bus = self._buses[request.resource]
        marker = await bus.mark()

        def wanted(resource: Any, namespace: str | None) -> bool:
            return bool(resource == request.resource and (
                request.namespace is None or namespace == request.namespace))

        try:
            async with self._lock:
                snapshot = [{"type": "ADDED", "object": obj.raw}
                            for (resource, namespace, _), obj in self.objects.items()
                            if wanted(resource, namespace) and not obj.deleted]
            for event in snapshot:
                yield event
            async for event in bus.stream(since=marker):
                meta = (event.get("object") or {}).get("metadata") or {}
                if wanted(request.resource, meta.get("namespace")):
                    yield event
        finally:
            with contextlib.suppress(Exception):
                await bus.unmark(marker)


class KopfServer(kmock_support.ApiServer, _WatchFromSubscription):
    """kmock_support's emulator plus what kopf sends that it lacks: ``generateName`` (kopf's
    Events) and JSON patches (kopf's finalizers, with a ``test`` of the resourceVersion); and
    a watch that misses nothing (:class:`_WatchFromSubscription`)."""

    def _prepare_create(self, request: kmock.Request, body: Any) -> kmock.Request:
        meta = dict((body or {}).get("metadata") or {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:5]}"
            body = {**body, "metadata": meta}
        return super()._prepare_create(request, body)

    def _prepare(self, request: kmock.Request) -> kmock.Request:
        content_type = request.headers.get("Content-Type", "")
        if request.action != kmock.action.UPDATE or "json-patch" not in content_type:
            return super()._prepare(request)
        assert request.resource is not None
        found = self._stored((request.resource, request.namespace, request.name or ""))
        if found is None:
            raise kmock.KubernetesError(404, "NotFound", f"{request.name} not found")
        old = found.last.raw
        try:
            new = jsonpatch.apply_patch(old, request.data)
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as err:
            raise kmock.KubernetesError(422, "Invalid", f"the JSON patch failed: {err}") from None
        diff = _merge_diff(old, new)
        if request.subresource != "status":
            diff.pop("status", None)
        kmock_support._replace(request, data=diff)
        return super()._prepare(request)


@contextlib.contextmanager
def emulated_cluster(namespaces: tuple[str, ...],
                     server: type[KopfServer] = KopfServer) -> Iterator[ClusterThread]:
    """A ClusterThread whose server is ``server`` (also used by benchmarks/bench_operator.py)."""
    original = kmock_support.ApiServer
    kmock_support.ApiServer = server  # type: ignore[misc]
    try:
        cluster = ClusterThread(namespaces=namespaces)
        cluster.__enter__()
    finally:
        kmock_support.ApiServer = original  # type: ignore[misc]
    try:
        yield cluster
    finally:
        cluster.__exit__(None, None, None)


def write_kubeconfig(path: Path, url: str, token: str, namespace: str) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "kmock",
        "clusters": [{"name": "kmock", "cluster": {"server": url}}],
        "users": [{"name": "tester", "user": {"token": token}}],
        "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "tester",
                                                     "namespace": namespace}}],
    }), encoding="utf-8")
    return path


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 10.0) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (KeyError, IndexError, StopIteration, k8s.ApiException):
            last = None
        if last:
            return last
        time.sleep(0.03)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


# -- the model registry, as the operator sees it -----------------------------------------------


class FakeRegistry:
    """A resolver: copilot:3 and copilot:5 are MLflow models, copilot:4 a provider,
    scorer:1 an image; ``copilot@champion`` points at 3. ``down`` makes it unreachable."""

    def __init__(self) -> None:
        self.targets = {
            "copilot:3": VersionTarget("copilot:3", "mlflow"),
            "copilot:4": VersionTarget("copilot:4", "provider"),
            "copilot:5": VersionTarget("copilot:5", "mlflow"),
            "scorer:1": VersionTarget("scorer:1", "image", image="ghcr.io/acme/scorer:1.4",
                                      port=9000, health_path="/healthz"),
        }
        self.aliases = {("copilot", "champion"): "3"}
        self.down = False
        self.calls = 0

    def __call__(self, ref: ModelRef) -> VersionTarget:
        self.calls += 1
        if self.down:
            raise BackendError("cannot reach the model registry at http://mlflow.mlflow:5000 "
                               "(connection refused)")
        version = ref.version or self.aliases.get((ref.model, str(ref.alias)))
        if version is None:
            raise NotFoundError(f"model {ref.model!r} has no alias {ref.alias!r}")
        key = f"{ref.model}:{version}"
        if key not in self.targets:
            raise NotFoundError(f"model {ref.model!r} has no version {version}")
        return self.targets[key]


# -- running the operator ----------------------------------------------------------------------


class OperatorThread:
    """An :class:`op.Operator` served in a thread with its own event loop, until stopped."""

    def __init__(self, operator: op.Operator, cluster: ClusterThread, namespace: str) -> None:
        self.operator = operator
        self.cluster = cluster
        self.namespace = namespace
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="operator", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self.operator.serve(stop_flag=self.stop, ready_flag=self.ready))
        except BaseException as err:
            self.failure = err
            self.ready.set()

    def __enter__(self) -> OperatorThread:
        seen = len(self.cluster.requests())
        self.thread.start()
        assert self.ready.wait(20), "the operator did not start"
        assert self.failure is None, f"the operator failed: {self.failure!r}"
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{self.namespace}/aioverlays"

        def watching() -> bool:
            return any(r.url.path == path and r.params.get("watch") in ("true", "1")
                       for r in self.cluster.requests()[seen:])

        wait_for("the operator's watch of AIOverlays", watching)
        time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(20)
        self.operator.close()
        assert not self.thread.is_alive(), "the operator did not stop"
        assert self.failure is None, f"the operator failed: {self.failure!r}"


def make_operator(kubeconfig: Path, namespace: str, registry: FakeRegistry, *,
                  telemetry_url: str | None = None, **overrides: Any) -> op.Operator:
    config = op.OperatorConfig(
        namespaces=(namespace,), kubeconfig=str(kubeconfig), context="kmock",
        telemetry_url=telemetry_url, readiness_interval=0.2, alert_interval=0.5,
        request_timeout=10.0, **overrides)
    return op.Operator(config, resolver=registry, model_registry=object())


@pytest.fixture(scope="module")
def cluster() -> Iterator[ClusterThread]:
    with emulated_cluster(("default", NS, RESTART_NS, CLI_NS)) as running:
        yield running


@pytest.fixture(scope="module")
def registry() -> FakeRegistry:
    return FakeRegistry()


@pytest.fixture(scope="module")
def telemetry_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('telemetry') / 'telemetry.db'}"


@pytest.fixture(scope="module")
def kubeconfig(cluster: ClusterThread, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_kubeconfig(tmp_path_factory.mktemp("kube") / "config", cluster.url,
                            OPERATOR_TOKEN, NS)


@pytest.fixture(scope="module")
def running(cluster: ClusterThread, kubeconfig: Path, registry: FakeRegistry,
            telemetry_url: str) -> Iterator[OperatorThread]:
    operator = make_operator(kubeconfig, NS, registry, telemetry_url=telemetry_url)
    with OperatorThread(operator, cluster, NS) as thread:
        yield thread


@pytest.fixture(scope="module")
def store(cluster: ClusterThread) -> Iterator[KubernetesStore]:
    with KubernetesStore(NS, cluster.api_client(), poll_interval=0.05) as s:
        yield s


@pytest.fixture(scope="module")
def kubectl(cluster: ClusterThread) -> k8s.CustomObjectsApi:
    """A user's client (no token: its calls are not the operator's)."""
    return k8s.CustomObjectsApi(cluster.api_client())


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries after 0.2 s instead of seconds to minutes."""
    monkeypatch.setattr(op.rc, "backoff", lambda retry, **_: 0.2)


# -- helpers -----------------------------------------------------------------------------------


def overlay_doc(name: str, routes: Mapping[str, int] | None = None, **spec: Any) -> dict[str, Any]:
    pairs = routes or {"copilot:3": 80, "copilot:4": 20}
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "AIOverlay", "metadata": {"name": name},
        "spec": {"host": {"url": "http://crm.internal:8080"},
                 "routes": [{"model": k.split(":")[0], "version": k.split(":")[1], "weight": w}
                            for k, w in pairs.items()], **spec},
    }


def get_cr(kubectl: k8s.CustomObjectsApi, name: str, ns: str = NS) -> dict[str, Any]:
    found: dict[str, Any] = kubectl.get_namespaced_custom_object(GROUP, VERSION, ns,
                                                                 "aioverlays", name)
    return found


def conditions(cr: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in (cr.get("status") or {}).get("conditions") or []}


def applied(kubectl: k8s.CustomObjectsApi, name: str, generation: int,
            ns: str = NS) -> dict[str, Any] | None:
    """The CR once RoutesApplied=True for ``generation``."""
    cr = get_cr(kubectl, name, ns)
    c = conditions(cr).get(rc.ROUTES_APPLIED)
    if c and c["status"] == "True" and c.get("observedGeneration") == generation:
        return cr
    return None


def degraded(kubectl: k8s.CustomObjectsApi, name: str, reason: str,
             ns: str = NS) -> dict[str, Any] | None:
    cr = get_cr(kubectl, name, ns)
    c = conditions(cr).get(rc.DEGRADED)
    return cr if c and c["status"] == "True" and c["reason"] == reason else None


def stored(cluster: ClusterThread, resource: str, ns: str, name: str) -> dict[str, Any] | None:
    objects = cluster.server.objects
    key = (kmock.resource(resource), ns, name)
    if key not in objects or objects[key].deleted:
        return None
    return dict(objects[key].raw)


def children(cluster: ClusterThread, overlay: str, ns: str = NS) -> dict[str, dict[str, Any]]:
    """Every live object labelled as a child of ``overlay``, keyed ``Kind/name``."""
    out = {}
    for (_, namespace, name), obj in list(cluster.server.objects.items()):
        if obj.deleted:
            continue
        raw = obj.raw
        labels = (raw.get("metadata") or {}).get("labels") or {}
        if namespace == ns and labels.get(f"{GROUP}/overlay") == overlay \
                and raw.get("kind") != "ControllerRevision":
            out[f"{raw['kind']}/{name}"] = dict(raw)
    return out


def events(cluster: ClusterThread, ns: str, name: str) -> list[dict[str, Any]]:
    found = []
    for (resource, namespace, _), obj in list(cluster.server.objects.items()):
        if obj.deleted:
            continue
        raw = obj.raw
        if resource == kmock.resource("v1/events") and namespace == ns \
                and (raw.get("involvedObject") or {}).get("name") == name:
            found.append(dict(raw))
    return found


def event_with(cluster: ClusterThread, ns: str, name: str, reason: str,
               text: str = "") -> dict[str, Any] | None:
    return next((e for e in events(cluster, ns, name)
                 if e.get("reason") == reason and text in (e.get("message") or "")), None)


def operator_requests(cluster: ClusterThread, token: str) -> list[kmock.Request]:
    return [r for r in cluster.requests()
            if r.headers.get("Authorization") == f"Bearer {token}"]


# -- create ----------------------------------------------------------------------------------


def test_create_makes_owned_children_and_a_status(running: OperatorThread, store: KubernetesStore,
                                                  kubectl: k8s.CustomObjectsApi,
                                                  cluster: ClusterThread) -> None:
    store.apply(parse_overlay(overlay_doc("sales-copilot")), message="first")
    cr = wait_for("RoutesApplied", lambda: applied(kubectl, "sales-copilot", 1))
    uid = cr["metadata"]["uid"]
    kids = children(cluster, "sales-copilot")
    assert sorted(kids) == [
        "Deployment/sales-copilot-copilot-v3", "Deployment/sales-copilot-gateway",
        "DestinationRule/sales-copilot-models",
        "Service/sales-copilot-copilot-v3", "Service/sales-copilot-gateway",
        "Service/sales-copilot-models", "VirtualService/sales-copilot-models",
    ]  # copilot:4 is a provider: it runs nowhere
    for key, obj in kids.items():
        assert obj["metadata"]["ownerReferences"] == [{
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "AIOverlay", "name": "sales-copilot",
            "uid": uid, "controller": True, "blockOwnerDeletion": True}], key
    routes = kids["VirtualService/sales-copilot-models"]["spec"]["http"][-1]["route"]
    assert [r["weight"] for r in routes] == [80, 20]
    status = cr["status"]
    assert status["observedGeneration"] == 1
    assert status["revision"] == int(cr["metadata"]["annotations"][REVISION_ANNOTATION]) == 1
    c = conditions(cr)
    assert list(c) == [rc.READY, rc.ROUTES_APPLIED, rc.DEGRADED]
    assert c[rc.ROUTES_APPLIED]["message"] == "copilot:3=80 copilot:4=20"
    assert (c[rc.ROUTES_APPLIED]["reason"], c[rc.DEGRADED]["status"]) == ("Applied", "False")
    assert c[rc.READY]["status"] == "False" and c[rc.READY]["reason"] == "Progressing"
    assert all(x["observedGeneration"] == 1 for x in c.values())
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", c[rc.READY]["lastTransitionTime"])
    assert status["endpoints"]["invoke"] == (
        "http://sales-copilot-gateway.team-a.svc.cluster.local:8700/_overlay/sales-copilot/invoke")
    # what the API server would accept: the CRD's schema and rules, status included
    doc = {k: cr[k] for k in ("apiVersion", "kind", "spec", "status")}
    assert crd_errors({**doc, "metadata": {"name": "sales-copilot"}}) == []
    assert cr["metadata"]["finalizers"] == [op.FINALIZER]
    # kopf keeps its state in annotations (the CRD's status has no room for it): the spec
    # last handled, without the labels and annotations (the store's record among them)
    handled = json.loads(cr["metadata"]["annotations"][
        f"{op.ANNOTATIONS_PREFIX}/last-handled-configuration"])
    assert handled["spec"] == cr["spec"] and "annotations" not in handled.get("metadata", {})
    assert set(cr["status"]) == {"observedGeneration", "conditions", "revision", "appliedAt",
                                 "endpoints"}
    assert event_with(cluster, NS, "sales-copilot", "Applied",
                      "generation 1 (revision 1): copilot:3=80 copilot:4=20")
    # every child was server-side applied by the operator's field manager, with force
    applies = [r for r in operator_requests(cluster, OPERATOR_TOKEN)
               if r.method.value == "PATCH" and "sales-copilot-" in r.url.path]
    assert len(applies) == len(kids)
    for r in applies:
        assert r.headers["Content-Type"] == "application/apply-patch+yaml"
        assert (r.params["fieldManager"], r.params["force"]) == ("overlay-operator", "true")


# -- changes ---------------------------------------------------------------------------------


def test_a_weight_change_through_the_store_moves_the_routes(
        running: OperatorThread, store: KubernetesStore, kubectl: k8s.CustomObjectsApi,
        cluster: ClusterThread) -> None:
    first = store.apply(parse_overlay(overlay_doc("weights")))
    wait_for("generation 1", lambda: applied(kubectl, "weights", 1))
    store.apply(parse_overlay(overlay_doc("weights", {"copilot:3": 95, "copilot:4": 5})),
                expected_revision=first.revision, message="less of copilot:4")
    cr = wait_for("generation 2", lambda: applied(kubectl, "weights", 2))
    c = conditions(cr)
    assert c[rc.ROUTES_APPLIED]["message"] == "copilot:3=95 copilot:4=5"
    assert c[rc.ROUTES_APPLIED]["observedGeneration"] == cr["status"]["observedGeneration"] == 2
    assert cr["status"]["revision"] == 2
    vs = stored(cluster, "networking.istio.io/v1/virtualservices", NS, "weights-models")
    assert vs is not None
    assert [r["weight"] for r in vs["spec"]["http"][-1]["route"]] == [95, 5]
    assert event_with(cluster, NS, "weights", "Applied",
                      "generation 2 (revision 2): copilot:3=95 copilot:4=5; changed: routes "
                      "copilot:3 80->95, copilot:4 20->5")


def test_a_spec_edited_with_kubectl_is_applied_and_recorded_in_the_history(
        running: OperatorThread, store: KubernetesStore, kubectl: k8s.CustomObjectsApi,
        cluster: ClusterThread) -> None:
    store.apply(parse_overlay(overlay_doc("edited")), author="ana")
    wait_for("generation 1", lambda: applied(kubectl, "edited", 1))
    spec = overlay_doc("edited", {"copilot:3": 60, "copilot:4": 40})["spec"]
    kubectl.patch_namespaced_custom_object(GROUP, VERSION, NS, "aioverlays", "edited",
                                           {"spec": spec})
    cr = wait_for("revision 2 in the status",
                  lambda: (c := applied(kubectl, "edited", 2)) and
                  c["status"].get("revision") == 2 and c)
    assert conditions(cr)[rc.ROUTES_APPLIED]["message"] == "copilot:3=60 copilot:4=40"
    # recorded by the operator, not by a later write
    assert stored(cluster, "apps/v1/controllerrevisions", NS, "edited.r2") is not None
    last = store.history("edited")[-1]
    assert (last.revision, last.author) == (2, EXTERNAL_AUTHOR)


def test_a_version_no_longer_routed_loses_its_model_server(
        running: OperatorThread, store: KubernetesStore, kubectl: k8s.CustomObjectsApi,
        cluster: ClusterThread) -> None:
    store.apply(parse_overlay(overlay_doc("swap", {"copilot:3": 50, "copilot:5": 50})))
    wait_for("generation 1", lambda: applied(kubectl, "swap", 1))
    assert {"Deployment/swap-copilot-v3", "Deployment/swap-copilot-v5"} <= set(
        children(cluster, "swap"))
    store.apply(parse_overlay(overlay_doc("swap", {"copilot:5": 100})))
    wait_for("generation 2", lambda: applied(kubectl, "swap", 2))
    kids = children(cluster, "swap")
    assert "Deployment/swap-copilot-v3" not in kids and "Service/swap-copilot-v3" not in kids
    assert "Deployment/swap-copilot-v5" in kids
    assert event_with(cluster, NS, "swap", "Applied",
                      "removed Deployment swap-copilot-v3, Service swap-copilot-v3")


def test_a_model_server_name_another_overlay_owns_is_not_taken(
        running: OperatorThread, kubectl: k8s.CustomObjectsApi, cluster: ClusterThread,
        registry: FakeRegistry) -> None:
    """Overlay 'dup' routing model 'b-copilot:3' and overlay 'dup-b' routing 'copilot:3' both
    name their model server dup-b-copilot-v3: the second is Degraded, the first keeps it."""
    registry.targets["b-copilot:3"] = VersionTarget("b-copilot:3", "mlflow")
    kubectl.create_namespaced_custom_object(GROUP, VERSION, NS, "aioverlays",
                                            overlay_doc("dup", {"b-copilot:3": 100}))
    first = wait_for("dup applied", lambda: applied(kubectl, "dup", 1))
    kubectl.create_namespaced_custom_object(GROUP, VERSION, NS, "aioverlays",
                                            overlay_doc("dup-b", {"copilot:3": 100}))
    cr = wait_for("dup-b degraded", lambda: degraded(kubectl, "dup-b", "NameConflict"))
    message = conditions(cr)[rc.DEGRADED]["message"]
    assert "Deployment dup-b-copilot-v3 belongs to another AIOverlay" in message
    assert "rename one of the overlays" in message
    server = stored(cluster, "apps/v1/deployments", NS, "dup-b-copilot-v3")
    assert server is not None
    assert [o["uid"] for o in server["metadata"]["ownerReferences"]] == [
        first["metadata"]["uid"]]
    assert server["metadata"]["labels"][f"{GROUP}/overlay"] == "dup"


def test_an_autoscaler_no_deployment_names_is_still_pruned(
        running: OperatorThread, store: KubernetesStore, kubectl: k8s.CustomObjectsApi,
        cluster: ClusterThread) -> None:
    """An autoscaler left behind (its delete failed after its Deployment was re-applied
    without naming it) is found through the operator's index and removed."""
    first = store.apply(parse_overlay(overlay_doc("stray", {"copilot:3": 100})))
    cr = wait_for("generation 1", lambda: applied(kubectl, "stray", 1))
    hpa = copy.deepcopy(children(cluster, "stray")["Deployment/stray-copilot-v3"])
    body = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "stray-copilot-v9", "namespace": NS,
                         "uid": str(uuid.uuid4()),
                         "labels": hpa["metadata"]["labels"],
                         "ownerReferences": hpa["metadata"]["ownerReferences"]},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                        "name": "stray-copilot-v9"},
                     "minReplicas": 1, "maxReplicas": 2}}
    k8s.AutoscalingV2Api(cluster.api_client()).create_namespaced_horizontal_pod_autoscaler(
        NS, body)
    assert cr["metadata"]["uid"] == body["metadata"]["ownerReferences"][0]["uid"]
    store.apply(parse_overlay(overlay_doc("stray", {"copilot:3": 100}, scaling={
        "maxReplicas": 1})), expected_revision=first.revision)
    wait_for("generation 2", lambda: applied(kubectl, "stray", 2))
    wait_for("the stray autoscaler removed", lambda: "HorizontalPodAutoscaler/stray-copilot-v9"
             not in children(cluster, "stray"))


def test_scaling_gets_an_autoscaler_until_it_is_removed(
        running: OperatorThread, store: KubernetesStore, kubectl: k8s.CustomObjectsApi,
        cluster: ClusterThread) -> None:
    store.apply(parse_overlay(overlay_doc("scaled", {"copilot:3": 100},
                                          scaling={"minReplicas": 2, "maxReplicas": 3})))
    cr = wait_for("generation 1", lambda: applied(kubectl, "scaled", 1))
    kids = children(cluster, "scaled")
    assert sorted(k for k in kids if k.startswith("HorizontalPodAutoscaler/")) == [
        "HorizontalPodAutoscaler/scaled-copilot-v3"]  # the gateway is not scaled
    hpa = kids["HorizontalPodAutoscaler/scaled-copilot-v3"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["metadata"]["ownerReferences"] == [{
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "AIOverlay", "name": "scaled",
        "uid": cr["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": "scaled-copilot-v3"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 3)
    model_server = kids["Deployment/scaled-copilot-v3"]
    assert "replicas" not in model_server["spec"]  # the autoscaler's
    assert model_server["metadata"]["annotations"][AUTOSCALER_ANNOTATION] == "scaled-copilot-v3"
    assert kids["Deployment/scaled-gateway"]["spec"]["replicas"] == 2

    # scaling removed: the autoscaler is deleted, the Deployment gets its replicas again
    store.apply(parse_overlay(overlay_doc("scaled", {"copilot:3": 100})))
    wait_for("generation 2", lambda: applied(kubectl, "scaled", 2))
    kids = children(cluster, "scaled")
    assert "HorizontalPodAutoscaler/scaled-copilot-v3" not in kids
    model_server = kids["Deployment/scaled-copilot-v3"]
    assert model_server["spec"]["replicas"] == 1
    assert AUTOSCALER_ANNOTATION not in model_server["metadata"]["annotations"]
    assert event_with(cluster, NS, "scaled", "Applied",
                      "removed HorizontalPodAutoscaler scaled-copilot-v3")
    path = f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers/scaled-copilot-v3"
    deletes = [r for r in operator_requests(cluster, OPERATOR_TOKEN)
               if r.method.value == "DELETE" and r.url.path == path]
    assert len(deletes) == 1

    # and back, from 0: the Deployment leaves the replicas to the autoscaler again (the
    # emulator drops a field its applier stops applying, as an API server does)
    store.apply(parse_overlay(overlay_doc("scaled", {"copilot:3": 100},
                                          scaling={"maxReplicas": 3, "predictive": True})))
    wait_for("generation 3", lambda: applied(kubectl, "scaled", 3))
    kids = children(cluster, "scaled")
    hpa = kids["HorizontalPodAutoscaler/scaled-copilot-v3"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 3)
    model_server = kids["Deployment/scaled-copilot-v3"]
    assert "replicas" not in model_server["spec"]
    notes = model_server["metadata"]["annotations"]
    assert notes[f"{GROUP}/scale-to-zero"].startswith("not supported")
    assert notes[f"{GROUP}/predictive"].startswith("not acted on")


def test_an_alias_written_with_kubectl_is_resolved(running: OperatorThread,
                                                   kubectl: k8s.CustomObjectsApi,
                                                   cluster: ClusterThread) -> None:
    doc = overlay_doc("aliased")
    doc["spec"]["routes"] = [{"model": "copilot", "alias": "champion", "weight": 100}]
    kubectl.create_namespaced_custom_object(GROUP, VERSION, NS, "aioverlays", doc)
    cr = wait_for("RoutesApplied", lambda: applied(kubectl, "aliased", 1))
    assert conditions(cr)[rc.ROUTES_APPLIED]["message"] == "copilot:3=100"
    assert "revision" not in cr["status"]  # not written by the store: no revision
    assert "Deployment/aliased-copilot-v3" in children(cluster, "aliased")


# -- failures --------------------------------------------------------------------------------


def test_an_invalid_object_is_degraded_and_the_others_go_on(
        running: OperatorThread, kubectl: k8s.CustomObjectsApi, registry: FakeRegistry,
        store: KubernetesStore, cluster: ClusterThread) -> None:
    bad = overlay_doc("broken", {"copilot:3": 80, "copilot:4": 10})
    # an API server with this CRD refuses it (a CEL rule); kmock, or an older CRD, admits it
    assert any("sum" in e.message for e in crd_errors(bad))
    kubectl.create_namespaced_custom_object(GROUP, VERSION, NS, "aioverlays", bad)
    store.apply(parse_overlay(overlay_doc("healthy")))
    cr = wait_for("Degraded", lambda: degraded(kubectl, "broken", "InvalidSpec"))
    c = conditions(cr)
    assert "spec.routes: weights sum to 90, must sum to 100" in c[rc.DEGRADED]["message"]
    assert (c[rc.ROUTES_APPLIED]["status"], c[rc.READY]["status"]) == ("False", "False")
    assert c[rc.ROUTES_APPLIED]["reason"] == c[rc.READY]["reason"] == "InvalidSpec"
    assert c[rc.DEGRADED]["observedGeneration"] == cr["status"]["observedGeneration"] == 1
    assert doc_ok(cr)
    assert event_with(cluster, NS, "broken", "InvalidSpec", "weights sum to 90")
    assert children(cluster, "broken") == {}
    wait_for("the healthy overlay", lambda: applied(kubectl, "healthy", 1))
    # a permanent failure is not retried: the same generation is attempted once
    time.sleep(0.5)
    assert len([e for e in events(cluster, NS, "broken") if e["reason"] == "InvalidSpec"]) == 1
    # a fixed spec (a new generation) recovers
    kubectl.patch_namespaced_custom_object(GROUP, VERSION, NS, "aioverlays", "broken",
                                           {"spec": overlay_doc("x")["spec"]})
    cr = wait_for("the fixed overlay", lambda: applied(kubectl, "broken", 2))
    assert conditions(cr)[rc.DEGRADED]["status"] == "False"
    assert conditions(cr)[rc.DEGRADED]["reason"] == "Reconciled"


def doc_ok(cr: Mapping[str, Any]) -> bool:
    """Whether the status is one the CRD accepts (the spec aside: kmock admitted it)."""
    good = overlay_doc(cr["metadata"]["name"])
    return crd_errors({**good, "status": cr["status"]}) == []


def test_an_unregistered_version_is_degraded_then_recovers(
        running: OperatorThread, store: KubernetesStore, kubectl: k8s.CustomObjectsApi,
        registry: FakeRegistry, cluster: ClusterThread, fast_retries: None) -> None:
    store.apply(parse_overlay(overlay_doc("early", {"copilot:9": 100})))
    cr = wait_for("VersionNotFound", lambda: degraded(kubectl, "early", "VersionNotFound"))
    assert "spec.routes[0]: model 'copilot' has no version 9" in \
        conditions(cr)[rc.DEGRADED]["message"]
    assert conditions(cr)[rc.ROUTES_APPLIED]["message"].startswith("spec.routes[0]")
    assert doc_ok(cr)
    registry.targets["copilot:9"] = VersionTarget("copilot:9", "provider")  # registered now
    cr = wait_for("the retry", lambda: applied(kubectl, "early", 1))
    assert conditions(cr)[rc.DEGRADED]["status"] == "False"


def test_an_unreachable_registry_is_degraded_then_recovers(
        running: OperatorThread, store: KubernetesStore, kubectl: k8s.CustomObjectsApi,
        registry: FakeRegistry, cluster: ClusterThread, fast_retries: None) -> None:
    registry.down = True
    try:
        store.apply(parse_overlay(overlay_doc("offline")))
        cr = wait_for("RegistryUnavailable",
                      lambda: degraded(kubectl, "offline", "RegistryUnavailable"))
        message = conditions(cr)[rc.DEGRADED]["message"]
        assert "cannot read copilot:3 from" in message and "connection refused" in message
        assert "--registry-uri" in message
        calls = registry.calls
        wait_for("a retry", lambda: registry.calls > calls + 1)
    finally:
        registry.down = False
    wait_for("the recovery", lambda: applied(kubectl, "offline", 1))
    assert event_with(cluster, NS, "offline", "Applied")


# -- revisions that leave the spec as it was ----------------------------------------------------


def test_a_revision_that_leaves_the_spec_still_moves_status_revision(
        running: OperatorThread, store: KubernetesStore, kubectl: k8s.CustomObjectsApi,
        cluster: ClusterThread) -> None:
    """An annotation-only revision, and then a rival revision with the same spec, bump no
    generation (no reconcile runs): the status follows the store's revision anyway."""
    store.apply(parse_overlay(overlay_doc("relabelled")))
    cr = wait_for("generation 1", lambda: applied(kubectl, "relabelled", 1))
    assert cr["status"]["revision"] == 1
    first_applied = cr["status"]["appliedAt"]

    def at_revision(number: int) -> dict[str, Any] | None:
        found = get_cr(kubectl, "relabelled")
        return found if (found.get("status") or {}).get("revision") == number else None

    doc = overlay_doc("relabelled")
    doc["metadata"]["annotations"] = {"example.com/owner": "ada"}
    second = store.apply(parse_overlay(doc), expected_revision=1, message="owner")
    assert second.revision == 2
    cr = wait_for("status.revision 2", lambda: at_revision(2))
    assert cr["metadata"]["generation"] == 1  # nothing for the API server to count
    assert cr["metadata"]["annotations"][REVISION_ANNOTATION] == "2"
    assert conditions(cr)[rc.ROUTES_APPLIED]["observedGeneration"] == 1
    assert cr["status"]["appliedAt"] > first_applied
    third = store.apply(parse_overlay(doc), message="the same again")  # a rival, same spec
    assert third.revision == 3
    cr = wait_for("status.revision 3", lambda: at_revision(3))
    assert cr["metadata"]["generation"] == 1 and doc_ok(cr)
    # the routes did not change: nothing new to tell
    assert len([e for e in events(cluster, NS, "relabelled") if e["reason"] == "Applied"]) == 1


def test_a_revision_waits_for_its_generation(running: OperatorThread,
                                             kubectl: k8s.CustomObjectsApi,
                                             registry: FakeRegistry, store: KubernetesStore,
                                             fast_retries: None) -> None:
    """A revision whose spec could not be applied is not recorded as applied: the status
    keeps the revision it serves (the revision handler waits for RoutesApplied)."""
    store.apply(parse_overlay(overlay_doc("held")))
    wait_for("generation 1", lambda: applied(kubectl, "held", 1))
    store.apply(parse_overlay(overlay_doc("held", {"copilot:3": 50, "copilot:8": 50})))
    cr = wait_for("VersionNotFound", lambda: degraded(kubectl, "held", "VersionNotFound"))
    time.sleep(0.3)
    cr = get_cr(kubectl, "held")
    assert cr["metadata"]["generation"] == 2
    assert cr["metadata"]["annotations"][REVISION_ANNOTATION] == "2"
    assert cr["status"]["revision"] == 1  # still serving revision 1
    registry.targets["copilot:8"] = VersionTarget("copilot:8", "provider")
    cr = wait_for("the retry", lambda: applied(kubectl, "held", 2))
    assert cr["status"]["revision"] == 2


# -- children that fail ------------------------------------------------------------------------


def deployment_status(available: int, *conditions_: dict[str, Any]) -> dict[str, Any]:
    """What the Deployment controller reports of generation 1."""
    return {"status": {"observedGeneration": 1, "replicas": max(available, 1),
                       "updatedReplicas": available, "readyReplicas": available,
                       "availableReplicas": available, "conditions": list(conditions_)}}


QUOTA = ('pods "failing-copilot-v3-7d9f" is forbidden: exceeded quota: compute, requested: '
         'cpu=2, used: cpu=8, limited: cpu=8')
STALLED = 'ReplicaSet "failing-gateway-5c8b" has timed out progressing.'


def test_a_failing_deployment_degrades_the_overlay_until_it_recovers(
        running: OperatorThread, store: KubernetesStore, kubectl: k8s.CustomObjectsApi,
        cluster: ClusterThread) -> None:
    store.apply(parse_overlay(overlay_doc("failing")))
    wait_for("generation 1", lambda: applied(kubectl, "failing", 1))
    apps = k8s.AppsV1Api(cluster.api_client())
    apps.patch_namespaced_deployment_status("failing-copilot-v3", NS, deployment_status(
        0, {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
            "message": QUOTA}))
    cr = wait_for("Degraded", lambda: degraded(kubectl, "failing", "FailedCreate"))
    c = conditions(cr)
    assert c[rc.DEGRADED]["message"] == f"Deployment failing-copilot-v3: {QUOTA}"
    assert (c[rc.READY]["status"], c[rc.READY]["reason"]) == ("False", "FailedCreate")
    assert c[rc.READY]["message"] == c[rc.DEGRADED]["message"]
    assert (c[rc.ROUTES_APPLIED]["status"], c[rc.ROUTES_APPLIED]["observedGeneration"]) == \
        ("True", 1)  # the routes are applied: the failure is the children's
    assert doc_ok(cr)
    warning = wait_for("a Warning Event", lambda: event_with(cluster, NS, "failing",
                                                             "FailedCreate"))
    assert warning["type"] == "Warning" and "failing-copilot-v3" in warning["message"]
    # a second one, stalled past its progress deadline
    apps.patch_namespaced_deployment_status("failing-gateway", NS, deployment_status(
        0, {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
            "message": STALLED}))
    cr = wait_for("both named", lambda: (lambda x: x if "failing-gateway" in conditions(x)[
        rc.DEGRADED]["message"] else None)(get_cr(kubectl, "failing")))
    assert conditions(cr)[rc.DEGRADED]["message"] == (
        f"Deployment failing-copilot-v3: {QUOTA}; Deployment failing-gateway "
        f"(ProgressDeadlineExceeded): {STALLED}")
    # both recover: Degraded cleared, Ready from availability again
    progressing = {"type": "Progressing", "status": "True", "reason":
                   "NewReplicaSetAvailable", "message": "rolled out"}
    apps.patch_namespaced_deployment_status("failing-copilot-v3", NS, deployment_status(
        1, {"type": "ReplicaFailure", "status": "False", "reason": "FailedCreate",
            "message": "quota raised"}, progressing))
    apps.patch_namespaced_deployment_status("failing-gateway", NS, {"status": {
        **deployment_status(2, progressing)["status"], "replicas": 2}})

    def recovered() -> dict[str, Any] | None:
        found = get_cr(kubectl, "failing")
        return found if conditions(found)[rc.READY]["status"] == "True" else None

    cr = wait_for("the recovery", recovered)
    c = conditions(cr)
    assert (c[rc.DEGRADED]["status"], c[rc.DEGRADED]["reason"]) == ("False", "Reconciled")
    assert c[rc.READY]["message"] == "2 Deployments available"
    assert wait_for("a Recovered Event", lambda: event_with(cluster, NS, "failing",
                                                            "Recovered"))["type"] == "Normal"


def test_a_reconcile_keeps_a_childs_failure(running: OperatorThread, store: KubernetesStore,
                                            kubectl: k8s.CustomObjectsApi,
                                            cluster: ClusterThread) -> None:
    """A new generation applied while a Deployment it keeps is failing stays Degraded (no
    Degraded=False in between), and a reconcile failure still wins over it."""
    store.apply(parse_overlay(overlay_doc("stuck")))
    wait_for("generation 1", lambda: applied(kubectl, "stuck", 1))
    apps = k8s.AppsV1Api(cluster.api_client())
    apps.patch_namespaced_deployment_status("stuck-copilot-v3", NS, deployment_status(
        0, {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
            "message": "timed out"}))
    wait_for("Degraded", lambda: degraded(kubectl, "stuck", "ProgressDeadlineExceeded"))
    store.apply(parse_overlay(overlay_doc("stuck", {"copilot:3": 60, "copilot:4": 40})))
    cr = wait_for("generation 2", lambda: applied(kubectl, "stuck", 2))
    c = conditions(cr)
    assert (c[rc.DEGRADED]["status"], c[rc.DEGRADED]["reason"]) == (
        "True", "ProgressDeadlineExceeded")
    assert c[rc.DEGRADED]["observedGeneration"] == 2
    assert c[rc.DEGRADED]["message"] == "Deployment stuck-copilot-v3: timed out"


# -- o.status() in a cluster ------------------------------------------------------------------


def test_status_in_a_cluster_is_what_the_operator_reported(
        running: OperatorThread, cluster: ClusterThread, registry: FakeRegistry,
        registry_home: Path, tmp_path: Path) -> None:
    """The notebook's ``o.status()`` on a Kubernetes store reads the AIOverlay's status: the
    revision whose routes the operator applied, warming until the Deployments are available,
    serving then, failed with the reason when one fails; behind until it reports."""
    from overlay_sdk.client import ControlPlane, connect

    for key in ("fraud:1", "fraud:2"):
        registry.targets[key] = VersionTarget(key, "mlflow")
    with connect(registry_home) as shared:
        models = shared.models
    store = KubernetesStore(NS, cluster.api_client(), poll_interval=0.05)
    cp = ControlPlane(tmp_path, store, models, author="ada")
    kubectl = k8s.CustomObjectsApi(cluster.api_client())
    try:
        o = cp.overlays.create("seen", host="http://crm.internal:8080",
                               routes={"fraud:1": 90, "fraud:2": 10})
        first = wait_for("revision 1 applied", lambda: (
            lambda st: st if st.serving_revision == 1 else None)(o.status()))
        assert (first.name, first.revision, first.state) == ("seen", 1, "warming")
        assert first.message.startswith("waiting for ") and "seen-fraud-v1" in first.message
        assert first.gateway_url == "http://seen-gateway.team-a.svc.cluster.local:8700"
        assert first.up_to_date and first.versions == {"fraud:1": "applied",
                                                       "fraud:2": "applied"}
        cr = get_cr(kubectl, "seen")
        assert first.applied_at is not None
        assert first.applied_at.isoformat(timespec="milliseconds").replace(
            "+00:00", "Z") == cr["status"]["appliedAt"]
        assert first.propagation_ms is not None and 0 <= first.propagation_ms < 10_000
        assert list(first.history["revision"]) == [1]
        assert "stored revision 1, revision 1 serving since" in str(first)

        o.set_traffic({"fraud:1": 50, "fraud:2": 50})
        assert o.revision == 2
        moved = wait_for("revision 2 applied", lambda: (
            lambda st: st if st.serving_revision == 2 else None)(o.status()))
        assert (moved.revision, moved.state) == (2, "warming")
        # the operator's report is the status: what it says, o.status() says
        apps = k8s.AppsV1Api(cluster.api_client())
        for name, replicas in (("seen-fraud-v1", 1), ("seen-fraud-v2", 1),
                               ("seen-gateway", 2)):
            apps.patch_namespaced_deployment_status(name, NS, {"status": {
                **deployment_status(replicas)["status"], "replicas": replicas}})
        serving = wait_for("serving", lambda: (
            lambda st: st if st.state == "serving" else None)(o.status()))
        assert (serving.revision, serving.serving_revision) == (2, 2)
        assert serving.message == "3 Deployments available"
        apps.patch_namespaced_deployment_status("seen-fraud-v2", NS, deployment_status(
            0, {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                "message": "exceeded quota"}))
        failed = wait_for("failed", lambda: (
            lambda st: st if st.state == "failed" else None)(o.status()))
        assert failed.message == "FailedCreate: Deployment seen-fraud-v2: exceeded quota"
        assert failed.serving_revision == 2
    finally:
        cp.close()
    # a revision the operator has not reported on yet: behind (read without an operator)
    with KubernetesStore(RESTART_NS, cluster.api_client()) as other:
        other.apply(parse_overlay(overlay_doc("unseen")))
        offline = ControlPlane(tmp_path, other, models, author="ada")
        status = offline.overlays.get("unseen").status()
        assert (status.state, status.revision, status.serving_revision) == ("behind", 1, None)
        assert status.message == "the operator has not reported on it yet"
        assert status.history.empty and status.versions == {"copilot:3": "not applied",
                                                            "copilot:4": "not applied"}
        other.delete("unseen")


# -- readiness, deletion, alerts ---------------------------------------------------------------


def test_ready_follows_the_deployments(running: OperatorThread, store: KubernetesStore,
                                       kubectl: k8s.CustomObjectsApi,
                                       cluster: ClusterThread) -> None:
    store.apply(parse_overlay(overlay_doc("ready")))
    cr = wait_for("RoutesApplied", lambda: applied(kubectl, "ready", 1))
    assert conditions(cr)[rc.READY]["status"] == "False"
    apps = k8s.AppsV1Api(cluster.api_client())
    names = [k.split("/")[1] for k in children(cluster, "ready") if k.startswith("Deployment/")]
    assert names == ["ready-copilot-v3", "ready-gateway"]
    for i, name in enumerate(names):  # what the Deployment controller would report
        replicas = 2 if name.endswith("gateway") else 1
        apps.patch_namespaced_deployment_status(name, NS, {"status": {
            "observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas,
            "readyReplicas": replicas, "availableReplicas": replicas}})
        if i == 0:
            time.sleep(0.5)  # one of two available: still not ready
            ready = conditions(get_cr(kubectl, "ready"))[rc.READY]
            assert (ready["status"], ready["reason"]) == ("False", "Progressing")
            assert "ready-gateway (0/2 available)" in ready["message"] or \
                "ready-gateway (rollout not observed yet)" in ready["message"]

    def ready_now() -> dict[str, Any] | None:
        cond = conditions(get_cr(kubectl, "ready"))[rc.READY]
        return cond if cond["status"] == "True" else None

    cond = wait_for("Ready=True", ready_now)
    assert (cond["reason"], cond["message"]) == ("Available", "2 Deployments available")
    assert cond["observedGeneration"] == 1


def test_deleting_keeps_the_history(running: OperatorThread, store: KubernetesStore,
                                    kubectl: k8s.CustomObjectsApi,
                                    cluster: ClusterThread) -> None:
    for name in ("gone", "kubectl-gone"):
        store.apply(parse_overlay(overlay_doc(name)))
        store.apply(parse_overlay(overlay_doc(name, {"copilot:3": 60, "copilot:4": 40})))
        wait_for(f"{name} generation 2", lambda n=name: applied(kubectl, n, 2))
    store.delete("gone", message="not needed")
    kubectl.delete_namespaced_custom_object(GROUP, VERSION, NS, "aioverlays", "kubectl-gone")
    for name in ("gone", "kubectl-gone"):
        wait_for(f"{name} gone", lambda n=name: stored(cluster, AIOVERLAYS, NS, n) is None)
        history = store.history(name)
        assert [(r.revision, r.action) for r in history] == [
            (1, "apply"), (2, "apply"), (3, "delete")]
        for number in (1, 2, 3):  # no owner: the garbage collector keeps them
            crev = stored(cluster, "apps/v1/controllerrevisions", NS, f"{name}.r{number}")
            assert crev is not None and not crev["metadata"].get("ownerReferences")
        assert event_with(cluster, NS, name, "HistoryKept", f"3 revisions of {name} kept")
    assert store.history("kubectl-gone")[-1].author == "kubernetes"


def test_the_alert_timer_posts_new_alerts(running: OperatorThread, store: KubernetesStore,
                                          kubectl: k8s.CustomObjectsApi, cluster: ClusterThread,
                                          telemetry_url: str) -> None:
    from overlay_sdk.telemetry import CallRecord, TelemetryWriter

    writer = TelemetryWriter(telemetry_url)
    writer.submit(CallRecord("spender", 1, "copilot", "4", "primary", 12.0,
                             cost_nusd=3 * 10**9))
    writer.flush()
    writer.close()
    store.apply(parse_overlay(overlay_doc("spender", budget={"usdPerDay": 1})))
    alert = wait_for("a budget alert", lambda: event_with(cluster, NS, "spender",
                                                          "BudgetExceeded"))
    assert alert["type"] == "Warning"
    assert "spent 3.00 USD" in alert["message"] and "budget of 1 USD" in alert["message"]
    time.sleep(1.2)  # two more evaluations: the alert is raised once
    assert len([e for e in events(cluster, NS, "spender")
                if e["reason"] == "BudgetExceeded"]) == 1


# -- a restart -------------------------------------------------------------------------------


def test_a_restarted_operator_catches_up(cluster: ClusterThread, registry: FakeRegistry,
                                         tmp_path: Path) -> None:
    """Changes made while the operator was down are applied when it starts (kopf's resume):
    the new routes, and the model server of a version no longer routed removed."""
    config = write_kubeconfig(tmp_path / "config", cluster.url, RESTART_TOKEN, RESTART_NS)
    users = k8s.CustomObjectsApi(cluster.api_client())
    with KubernetesStore(RESTART_NS, cluster.api_client()) as store:
        with OperatorThread(make_operator(config, RESTART_NS, registry), cluster, RESTART_NS):
            store.apply(parse_overlay(overlay_doc("moved", {"copilot:3": 50, "copilot:5": 50})))
            store.apply(parse_overlay(overlay_doc("steady")))
            for name in ("moved", "steady"):
                wait_for(name, lambda n=name: applied(users, n, 1, RESTART_NS))
        store.apply(parse_overlay(overlay_doc("moved", {"copilot:5": 100})))
        with OperatorThread(make_operator(config, RESTART_NS, registry), cluster, RESTART_NS):
            cr = wait_for("generation 2", lambda: applied(users, "moved", 2, RESTART_NS))
            assert conditions(cr)[rc.ROUTES_APPLIED]["message"] == "copilot:5=100"
            assert "Deployment/moved-copilot-v3" not in children(cluster, "moved", RESTART_NS)
            time.sleep(0.3)
    # nothing changed for `steady`: a restart is not news
    applied_events = [e for e in events(cluster, RESTART_NS, "steady") if e["reason"] == "Applied"]
    assert len(applied_events) == 1


# -- overlay operator run ----------------------------------------------------------------------


def test_overlay_operator_run_against_a_kubeconfig(cluster: ClusterThread,
                                                   tmp_path: Path) -> None:
    """The command, end to end in its own process: logged in from a kubeconfig, it watches
    its namespace; the registry it is given does not answer, which the overlay's status says;
    SIGTERM stops it cleanly."""
    config = write_kubeconfig(tmp_path / "config", cluster.url, CLI_TOKEN, CLI_NS)
    env = {**os.environ, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
           "MLFLOW_HTTP_REQUEST_TIMEOUT": "5", "KUBECONFIG": str(tmp_path / "absent")}
    seen = len(cluster.requests())
    process = subprocess.Popen(
        [sys.executable, "-c", "from overlay_sdk.cli_operator import operator; operator()",
         "run", "--kubeconfig", str(config), "--context", "kmock", "-n", CLI_NS,
         "--registry-uri", "http://127.0.0.1:9", "--log-level", "warning"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{CLI_NS}/aioverlays"
        wait_for("the command's watch", lambda: any(
            r.url.path == path and r.params.get("watch") in ("true", "1")
            for r in cluster.requests()[seen:]), timeout=30)
        time.sleep(0.3)
        users = k8s.CustomObjectsApi(cluster.api_client())
        users.create_namespaced_custom_object(GROUP, VERSION, CLI_NS, "aioverlays",
                                              overlay_doc("remote"))
        cr = wait_for("RegistryUnavailable", lambda: degraded(users, "remote",
                                                              "RegistryUnavailable", CLI_NS),
                      timeout=30)
        message = conditions(cr)[rc.DEGRADED]["message"]
        assert "cannot read copilot:3 from http://127.0.0.1:9 (the operator's --registry-uri)" \
            in message, message
        assert "Connection refused" in message, message
        assert conditions(cr)[rc.ROUTES_APPLIED]["message"] == \
            "the model registry http://127.0.0.1:9 cannot be read"
    finally:
        err = terminate(process)
    assert process.returncode == 0, err[-3000:]
    assert f"overlay operator watching AIOverlays in {CLI_NS} on {cluster.url}" in err


def test_overlay_operator_run_needs_a_namespace_choice(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from overlay_sdk.cli_operator import operator

    runner = CliRunner()
    for args in ([], ["-n", "a", "--all-namespaces"]):
        result = runner.invoke(operator, ["run", *args])
        assert result.exit_code == 2
        assert "give --namespace NS (repeat it for several) or --all-namespaces" in \
            result.output
    result = runner.invoke(operator, ["run", "-n", "a", "--kubeconfig",
                                      str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "nowhere is not a file" in result.output
    config = write_kubeconfig(tmp_path / "config", "http://127.0.0.1:9", "t", "a")
    result = runner.invoke(operator, ["run", "-n", "a", "--kubeconfig", str(config),
                                      "--context", "elsewhere"])
    assert result.exit_code == 2 and "elsewhere" in result.output
    assert "kubectl config get-contexts" in result.output
    bad = runner.invoke(operator, ["run", "-n", "team-a", "-n", "Team_B"])
    assert bad.exit_code == 2
    assert "--namespace: 'Team_B' is not a namespace name" in bad.output, bad.output
    text = runner.invoke(operator, ["run", "--help"]).output
    for part in ("--namespace", "--all-namespaces", "--kubeconfig", "--context",
                 "--registry-uri", "--telemetry-url", "--liveness", "kubectl apply -k deploy/",
                 "Degraded"):
        assert part in text


def test_the_pods_get_the_registry_as_they_reach_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """From a laptop the operator reads the registry through a port-forward; the pods it
    renders are given the in-cluster address (--tracking-uri), not 127.0.0.1."""
    from click.testing import CliRunner

    from overlay_sdk.cli_operator import operator

    seen: list[op.OperatorConfig] = []
    monkeypatch.setattr(op, "run", lambda config, on_start=None: seen.append(config))
    result = CliRunner().invoke(operator, [
        "run", "-n", "a", "--registry-uri", "http://127.0.0.1:5000",
        "--tracking-uri", "http://mlflow.mlflow.svc:5000"])
    assert result.exit_code == 0, result.output
    assert seen[0].registry_uri == "http://127.0.0.1:5000"
    assert seen[0].render.tracking_uri == "http://mlflow.mlflow.svc:5000"
    CliRunner().invoke(operator, ["run", "-n", "a", "--registry-uri", "http://m:5000"])
    assert seen[1].render.tracking_uri == "http://m:5000"  # the same address by default


# -- least privilege ---------------------------------------------------------------------------


def role_rules(path: Path, name: str) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    role = next(d for d in docs if d["kind"] == "Role" and d["metadata"]["name"] == name)
    rules: list[dict[str, Any]] = role["rules"]
    return rules


DISCOVERY = re.compile(r"^/(api|apis|api/v1|apis/[^/]+|apis/[^/]+/[^/]+|version)$")


def attributes(method: str, path: str, params: Mapping[str, str]
               ) -> tuple[str, str, str, str | None] | None:
    """What RBAC authorises for one request: (verb, apiGroup, resource[/subresource],
    namespace), or None for a discovery path (allowed to every user by system:discovery)."""
    if DISCOVERY.match(path):
        return None
    parts = path.strip("/").split("/")
    if parts[0] == "api":
        group, rest = "", parts[2:]
    elif parts[0] == "apis":
        group, rest = parts[1], parts[3:]
    else:
        raise AssertionError(f"not an API path: {path}")
    namespace = None
    if len(rest) >= 2 and rest[0] == "namespaces" and len(rest) != 2:
        namespace, rest = rest[1], rest[2:]
    resource, name, sub = rest[0], rest[1] if len(rest) > 1 else None, rest[2:3]
    verb = {
        "GET": "get" if name else ("watch" if params.get("watch") in ("true", "1") else "list"),
        "POST": "create", "PATCH": "patch", "PUT": "update",
        "DELETE": "delete" if name else "deletecollection",
    }[method]
    return verb, group, "/".join([resource, *sub]), namespace


def allowed(rules: list[dict[str, Any]], verb: str, group: str, resource: str) -> bool:
    return any(group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"]
               for r in rules)


def check_role(requests: list[kmock.Request], rules: list[dict[str, Any]],
               namespace: str) -> set[tuple[str, str, str]]:
    """Assert every request is allowed in ``namespace``; return the permissions used."""
    used = set()
    for r in requests:
        attrs = attributes(r.method.value, r.url.path, r.params)
        if attrs is None:
            continue
        verb, group, resource, ns = attrs
        assert ns == namespace, f"{r.method.value} {r.url} is outside {namespace}"
        assert allowed(rules, verb, group, resource), \
            f"{r.method.value} {r.url}: {verb} {group or 'core'}/{resource} is not in the Role"
        used.add((verb, group, resource))
    return used


def test_every_call_of_the_operator_is_allowed_by_its_role(
        running: OperatorThread, store: KubernetesStore, kubectl: k8s.CustomObjectsApi,
        cluster: ClusterThread) -> None:
    """The shipped Role allows every API call the operator made in these tests (its own
    identity: the kubeconfig's token), and each of its permissions was used."""
    # a compact life, so that this test stands alone too: create (scaled), a version and the
    # scaling dropped, deleted
    store.apply(parse_overlay(overlay_doc("audited", {"copilot:3": 50, "copilot:5": 50},
                                          scaling={"maxReplicas": 3})))
    wait_for("generation 1", lambda: applied(kubectl, "audited", 1))
    store.apply(parse_overlay(overlay_doc("audited", {"copilot:5": 100})))
    wait_for("generation 2", lambda: applied(kubectl, "audited", 2))
    assert event_with(cluster, NS, "audited", "Applied", "removed Deployment audited-copilot-v3, "
                      "HorizontalPodAutoscaler audited-copilot-v3, HorizontalPodAutoscaler "
                      "audited-copilot-v5, Service audited-copilot-v3")
    kubectl.delete_namespaced_custom_object(GROUP, VERSION, NS, "aioverlays", "audited")
    wait_for("deleted", lambda: stored(cluster, AIOVERLAYS, NS, "audited") is None)
    time.sleep(0.3)
    rules = role_rules(ROOT / "deploy" / "rbac" / "operator.yaml", "overlay-operator")
    calls = operator_requests(cluster, OPERATOR_TOKEN)
    assert len(calls) > 20
    used = check_role(calls, rules, NS)
    # the operator of test_a_restarted_operator_catches_up, in its own namespace
    used |= check_role(operator_requests(cluster, RESTART_TOKEN), rules, RESTART_NS)
    # and the process of test_overlay_operator_run_against_a_kubeconfig
    used |= check_role(operator_requests(cluster, CLI_TOKEN), rules, CLI_NS)
    discovery = {r.url.path for r in calls if DISCOVERY.match(r.url.path)}
    # kopf's discovery of the kinds it serves (allowed to everyone: system:discovery)
    assert discovery <= {"/api", "/api/v1", "/apis", "/apis/apps/v1",
                         "/apis/apiextensions.k8s.io/v1", f"/apis/{GROUP}/{VERSION}",
                         "/apis/networking.istio.io/v1", "/apis/autoscaling/v2"}, discovery
    granted = {(v, g, res) for r in rules for g in r["apiGroups"] for res in r["resources"]
               for v in r["verbs"]}
    # a server-side apply that creates is authorised as create too; the emulator creates on
    # apply, so the operator's own create (on a 404) runs in test_apply_creates_on_404
    applied_kinds = {(g, p) for (g, p) in (
        ("apps", "deployments"), ("", "services"), ("networking.istio.io", "virtualservices"),
        ("networking.istio.io", "destinationrules"), ("autoscaling", "horizontalpodautoscalers"))}
    creates = {("create", g, p) for g, p in applied_kinds}
    # asked by OwnerReferencesPermissionEnforcement (OpenShift) of whoever sets
    # blockOwnerDeletion (the children) or changes ownerReferences (the history's release);
    # no call of the operator uses them as such
    admission = {("update", GROUP, "aioverlays/finalizers"),
                 ("delete", "apps", "controllerrevisions")}
    assert granted - used - creates - admission == set(), "granted but never used"


def test_the_gateway_role_allows_what_the_store_reads(
        running: OperatorThread, store: KubernetesStore, cluster: ClusterThread,
        tmp_path: Path) -> None:
    """The gateway pods read their overlay through the Kubernetes store: get, list, history,
    a revision, and watch, all allowed by deploy/rbac/gateway.yaml (and nothing else used)."""
    store.apply(parse_overlay(overlay_doc("read-me")))
    config = write_kubeconfig(tmp_path / "config", cluster.url, GATEWAY_TOKEN, NS)
    api = k8s.ApiClient(kc.load_configuration(str(config), "kmock"))
    try:
        with KubernetesStore(NS, api, poll_interval=0.05) as reader:
            assert reader.get("read-me").revision == 1
            assert [r.name for r in reader.list()]
            assert reader.history("read-me")[0].revision == 1
            assert reader.revision("read-me", 1).revision == 1
            list(reader.watch(since=0, timeout=0.3))
    finally:
        api.close()
    rules = role_rules(ROOT / "deploy" / "rbac" / "gateway.yaml", "overlay-gateway")
    used = check_role(operator_requests(cluster, GATEWAY_TOKEN), rules, NS)
    granted = {(v, g, res) for r in rules for g in r["apiGroups"] for res in r["resources"]
               for v in r["verbs"]}
    assert used <= granted and {v for v, _, _ in used} <= {"get", "list", "watch"}


# -- server-side apply on plain kmock: create on 404 -------------------------------------------


class PlainKmock:
    """kmock 0.8's own KubernetesEmulator (no additions) in a thread: ``url``, and the
    requests it served once stopped (``requests``)."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.requests: list[kmock.Request] = []
        self.url = ""
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        async with kmock.KubernetesEmulator() as server, kmock.Server(server):
            for key in ("apps/v1/deployments", "v1/services",
                        "autoscaling/v2/horizontalpodautoscalers",
                        "networking.istio.io/v1/virtualservices",
                        "networking.istio.io/v1/destinationrules"):
                server.resources[key] = kmock_support.RESOURCES[key]
            self.url = str(server.url).rstrip("/")
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            self.ready.set()
            await self._stop.wait()
            self.requests = list(server)

    def __enter__(self) -> PlainKmock:
        self._thread.start()
        assert self.ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def test_apply_creates_on_404(tmp_path: Path) -> None:
    """kmock answers a server-side apply of a missing object with 404 (an API server creates
    it): the operator then creates it, and applies over it the next time. Both calls are in
    its Role. (And without the CRD, the operator does not start: it says to install it.)"""
    from overlay_sdk.k8s.render import render

    manifests = render(overlay_doc("fresh", {"copilot:3": 100}, scaling={"maxReplicas": 2}) | {
        "metadata": {"name": "fresh", "namespace": NS, "uid": "u-1"}})
    assert "HorizontalPodAutoscaler" in {m["kind"] for m in manifests}
    with PlainKmock() as plain:
        config = write_kubeconfig(tmp_path / "config", plain.url, OPERATOR_TOKEN, NS)
        # no AIOverlay CRD there: the operator says so and does not start
        operator = op.Operator(op.OperatorConfig(namespaces=(NS,), kubeconfig=str(config)),
                               resolver=FakeRegistry())
        with pytest.raises(BackendError, match="install the CRD first"):
            asyncio.run(operator.serve())
        operator.close()
        api = k8s.ApiClient(kc.load_configuration(str(config), "kmock"))
        cluster = kc.Cluster(api)
        try:
            for manifest in manifests:
                assert cluster.apply(manifest)["metadata"]["name"] == \
                    manifest["metadata"]["name"]
            changed = {**manifests[-1], "spec": {**manifests[-1]["spec"], "replicas": 3}}
            assert cluster.apply(changed)["spec"]["replicas"] == 3
        finally:
            api.close()
    calls = plain.requests
    methods = [r.method.value for r in calls]
    assert methods[:2] == ["GET", "GET"]  # the operator's check of what the cluster serves
    calls, methods = calls[2:], methods[2:]
    assert methods == ["PATCH", "POST"] * len(manifests) + ["PATCH"]
    rules = role_rules(ROOT / "deploy" / "rbac" / "operator.yaml", "overlay-operator")
    used = check_role(calls, rules, NS)
    assert {("create", "networking.istio.io", "virtualservices"), ("create", "apps",
            "deployments"), ("create", "", "services"),
            ("create", "networking.istio.io", "destinationrules"),
            ("create", "autoscaling", "horizontalpodautoscalers")} <= used


# -- resolving versions ------------------------------------------------------------------------


class StubModelRegistry:
    """What RegistryResolver reads from a ModelRegistry."""

    def __init__(self) -> None:
        self.reads: list[str] = []

    def resolve(self, ref: ModelRef) -> Any:
        from overlay_sdk.registry import ModelVersion
        from overlay_sdk.registry_resources import check_resources

        self.reads.append(str(ref))
        version = ref.version or "2"
        flavor = {"gpt": "provider", "scorer": "image"}.get(ref.model, "sklearn")
        return ModelVersion(ref.model, version, "0" * 64, None, datetime.now(UTC), "x",
                            flavor=flavor, uri=f"models:/{ref.model}/{version}",
                            resources=check_resources({"cpu": 2}) if flavor != "provider"
                            else None)

    def config(self, name: str, version: str) -> Any:
        from overlay_sdk.registry_images import ImageConfig

        return ImageConfig("ghcr.io/acme/scorer:1.4", 9000, "/healthz")


def test_the_registry_resolver_maps_flavors_to_targets() -> None:
    models = StubModelRegistry()
    resolver = op.RegistryResolver(models)  # type: ignore[arg-type]
    fraud = resolver(ModelRef("fraud", version="3"))
    assert (fraud.key, fraud.kind, fraud.model_uri) == ("fraud:3", "mlflow", "models:/fraud/3")
    assert fraud.resources is not None and fraud.resources.cpu == 2
    assert resolver(ModelRef("gpt", version="1")) == VersionTarget("gpt:1", "provider")
    scorer = resolver(ModelRef("scorer", version="1"))
    assert (scorer.kind, scorer.image, scorer.port, scorer.health_path) == (
        "image", "ghcr.io/acme/scorer:1.4", 9000, "/healthz")
    resolver(ModelRef("fraud", version="3"))  # a version is read once
    assert models.reads.count("fraud:3") == 1
    assert resolver(ModelRef("fraud", alias="champion")).key == "fraud:2"
    resolver(ModelRef("fraud", alias="champion"))  # an alias every time
    assert models.reads.count("fraud@champion") == 2


def test_resolving_fills_aliases_and_names_what_is_missing() -> None:
    overlay = parse_overlay(overlay_doc("o") | {"spec": {
        "host": {"url": "http://h:1"},
        "routes": [{"model": "copilot", "alias": "champion", "weight": 70},
                   {"model": "copilot", "version": "4", "weight": 30}],
        "shadow": {"model": "copilot", "version": "5", "percent": 10}}})
    resolved, targets = rc.resolve_versions(overlay, FakeRegistry())
    assert [(r.version, r.alias) for r in resolved.spec.routes] == [("3", "champion"),
                                                                     ("4", None)]
    assert sorted(targets) == ["copilot:3", "copilot:4", "copilot:5"]
    assert rc.route_summary(resolved.spec) == "copilot:3=70 copilot:4=30 mirror copilot:5=10%"
    missing = parse_overlay(overlay_doc("o", {"copilot:3": 50, "other:1": 50}))
    with pytest.raises(rc.Failure) as caught:
        rc.resolve_versions(missing, FakeRegistry())
    assert (caught.value.reason, caught.value.retry) == ("VersionNotFound", True)
    assert caught.value.message.startswith("spec.routes[1]: model 'other' has no version 1")


def test_an_unreachable_mlflow_registry_is_a_clear_failure(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from overlay_sdk.registry import ModelRegistry

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    resolver = op.RegistryResolver(ModelRegistry("http://127.0.0.1:9"))
    with pytest.raises(rc.Failure) as caught:
        rc.resolve_versions(parse_overlay(overlay_doc("o")), resolver,
                            registry="http://127.0.0.1:9")
    failure = caught.value
    assert (failure.reason, failure.retry) == ("RegistryUnavailable", True)
    assert failure.short == "the model registry http://127.0.0.1:9 cannot be read"
    assert "Connection refused" in failure.message


# -- connecting --------------------------------------------------------------------------------


def test_the_kubeconfig_gives_kopf_the_same_identity(tmp_path: Path) -> None:
    config = write_kubeconfig(tmp_path / "config", "https://k8s.example:6443", "s3cret", "a")
    info = kc.connection_info(kc.load_configuration(str(config), "kmock"))
    assert (info.server, info.scheme, info.token) == ("https://k8s.example:6443", "Bearer",
                                                      "s3cret")
    with pytest.raises(ValidationError) as caught:
        kc.load_configuration(str(config), "other")
    assert "--context" in str(caught.value) and "other" in str(caught.value)
    with pytest.raises(ValidationError, match="is not a file"):
        kc.load_configuration(str(tmp_path / "absent"), None)
    with pytest.raises(ValidationError, match="namespace name"):
        op.OperatorConfig(namespaces=("Team_A",))


def test_the_operator_is_handlers_over_the_cluster_module() -> None:
    """The API plumbing lives in overlay_sdk.k8s.cluster: the operator module imports no
    HTTP or client-configuration code, and still offers the names it always had
    (benchmarks/bench_operator.py uses op.Cluster and op.KINDS)."""
    import ast
    import inspect

    assert all(hasattr(kc, name) for name in kc.__all__)
    for name in ("Cluster", "KINDS", "FIELD_MANAGER", "PLURAL", "connection_info",
                 "load_configuration"):
        assert name in op.__all__ and getattr(op, name) is getattr(kc, name)
    tree = ast.parse(inspect.getsource(op))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not imported & {"urllib3", "json", "os", "kubernetes.client.exceptions",
                           "kubernetes.config"}, imported


# -- the decisions -----------------------------------------------------------------------------


NOW = datetime(2025, 1, 31, 12, 0, tzinfo=UTC)


def test_a_condition_keeps_its_transition_time_while_its_status_holds() -> None:
    spec = parse_overlay(overlay_doc("o")).spec
    ready = rc.Readiness("False", "Progressing", "waiting")
    first = rc.applied_status(None, generation=1, revision=1, summary=rc.route_summary(spec),
                              endpoints={}, ready=ready, now=NOW)
    later = NOW + timedelta(minutes=5)
    second = rc.applied_status(first, generation=2, revision=2, summary="copilot:3=100",
                               endpoints={}, ready=ready, now=later)
    c = {x["type"]: x for x in second["conditions"]}
    assert c[rc.ROUTES_APPLIED]["lastTransitionTime"] == "2025-01-31T12:00:00Z"
    assert c[rc.ROUTES_APPLIED]["observedGeneration"] == 2
    assert c[rc.ROUTES_APPLIED]["message"] == "copilot:3=100"
    failure = rc.Failure("InvalidSpec", "spec.routes: weights sum to 90; fix it", retry=False)
    third = rc.failed_status(second, failure, generation=3, now=later + timedelta(minutes=1))
    c = {x["type"]: x for x in third["conditions"]}
    assert c[rc.ROUTES_APPLIED]["message"] == (
        "spec.routes: weights sum to 90 (still serving generation 2: copilot:3=100)")
    assert c[rc.ROUTES_APPLIED]["lastTransitionTime"] == "2025-01-31T12:06:00Z"
    assert c[rc.DEGRADED]["message"] == "spec.routes: weights sum to 90; fix it"
    assert "revision" not in third and third["observedGeneration"] == 3
    # others' conditions are kept, after ours
    mixed = rc.set_condition([{"type": "Istio", "status": "True"}], c[rc.READY])
    assert [x["type"] for x in mixed] == [rc.READY, "Istio"]


def test_ready_is_the_timers_only_for_an_applied_healthy_generation() -> None:
    ok = rc.Readiness("True", "Available", "2 Deployments available")
    status = rc.applied_status(None, generation=4, revision=None, summary="a:1=100",
                               endpoints={}, ready=rc.Readiness("False", "Progressing", "w"),
                               now=NOW)
    new = rc.ready_status(status, ok, generation=4, now=NOW)
    assert new is not None
    assert {c["type"]: c["status"] for c in new["conditions"]}[rc.READY] == "True"
    assert rc.ready_status({"conditions": new["conditions"]}, ok, generation=4,
                           now=NOW) is None  # no change
    assert rc.ready_status(status, ok, generation=5, now=NOW) is None  # not applied yet
    failed = rc.failed_status(status, rc.Failure("Forbidden", "no"), generation=4, now=NOW)
    assert rc.ready_status(failed, ok, generation=4, now=NOW) is None


def test_readiness_of_deployments() -> None:
    owner = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "AIOverlay", "controller": True}

    def deployment(name: str, available: int, *, uid: str = "u", wanted: int = 1,
                   seen: int | None = 1) -> dict[str, Any]:
        status = {"availableReplicas": available, "updatedReplicas": available}
        if seen is not None:
            status["observedGeneration"] = seen
        return {"kind": "Deployment", "metadata": {
            "name": name, "uid": f"d-{name}", "generation": 1,
            "ownerReferences": [{**owner, "uid": uid}]},
            "spec": {"replicas": wanted}, "status": status}

    states = [rc.child_state(deployment("g", 2, wanted=2)),
              rc.child_state(deployment("m", 0)),
              rc.child_state(deployment("old", 1, uid="previous")),
              rc.Child("Service", "s", "s-1", "u")]
    assert states[0] == rc.Child("Deployment", "g", "d-g", "u", True, "2/2 available")
    assert rc.readiness(states[:1], uid="u", expected=["g"]) == rc.Readiness(
        "True", "Available", "1 Deployment available")
    waiting = rc.readiness(states, uid="u", expected=["g", "m", "new"])
    assert (waiting.status, waiting.reason) == ("False", "Progressing")
    assert waiting.message == "waiting for new (not observed yet), m (0/1 available)"
    assert not rc.child_state(deployment("x", 1, seen=None)).available
    assert not rc.child_state(deployment("x", 1, wanted=2)).available


def test_what_a_new_generation_leaves_behind() -> None:
    children = [rc.Child("Deployment", "o-copilot-v3", "d3", "u"),
                rc.Child("Service", "o-copilot-v3", "s3", "u"),
                rc.Child("Deployment", "o-copilot-v5", "d5", "u"),
                rc.Child("Deployment", "o-copilot-v1", "d1", "a-previous-overlay")]
    stale = rc.stale_children(children, uid="u", keep=[("Deployment", "o-copilot-v5"),
                                                       ("Service", "o-copilot-v5")])
    assert [(c.kind, c.name, c.uid) for c in stale] == [
        ("Deployment", "o-copilot-v3", "d3"), ("Service", "o-copilot-v3", "s3")]


def test_an_autoscaler_is_known_from_its_deployment() -> None:
    """The index holds no autoscalers: a Deployment names its own (the renderer's
    annotation), and it is stale when its Deployment is, or when it is no longer rendered
    beside a Deployment that stays (scaling removed)."""
    owner = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "AIOverlay", "controller": True,
             "uid": "u"}

    def deployment(name: str, autoscaler: str | None, uid: str = "u") -> dict[str, Any]:
        notes = {AUTOSCALER_ANNOTATION: autoscaler} if autoscaler else {}
        return {"kind": "Deployment", "metadata": {
            "name": name, "uid": f"d-{name}", "annotations": notes,
            "ownerReferences": [{**owner, "uid": uid}]}, "spec": {}, "status": {}}

    scaled = rc.child_state(deployment("o-copilot-v3", "o-copilot-v3"))
    assert scaled.autoscaler == "o-copilot-v3"
    assert rc.child_state(deployment("o-copilot-v5", None)).autoscaler is None
    children = [scaled, rc.child_state(deployment("o-copilot-v5", "o-copilot-v5")),
                rc.child_state(deployment("o-copilot-v1", "o-copilot-v1", uid="previous")),
                rc.Child("Service", "o-copilot-v5", "s5", "u")]
    hpa = rc.AUTOSCALER_KIND
    # v3 no longer routed: its Deployment and autoscaler; v5 stays, its autoscaler too
    stale = rc.stale_children(children, uid="u", keep=[
        ("Deployment", "o-copilot-v5"), ("Service", "o-copilot-v5"), (hpa, "o-copilot-v5")])
    assert [(c.kind, c.name, c.uid, c.owner_uid) for c in stale] == [
        ("Deployment", "o-copilot-v3", "d-o-copilot-v3", "u"),
        (hpa, "o-copilot-v3", "", "u")]  # deleted by name: its uid is not known here
    # scaling removed: the Deployment stays, its autoscaler goes
    stale = rc.stale_children(children, uid="u", keep=[
        ("Deployment", "o-copilot-v3"), ("Deployment", "o-copilot-v5"),
        ("Service", "o-copilot-v5")])
    assert [(c.kind, c.name) for c in stale] == [(hpa, "o-copilot-v3"), (hpa, "o-copilot-v5")]
    assert kc.PRUNED[-1] == ("autoscaling/v2", hpa)
    assert kc.KINDS["autoscaling/v2", hpa] == ("/apis/autoscaling/v2", "horizontalpodautoscalers")


def test_failures_say_what_to_do_and_back_off() -> None:
    assert [rc.backoff(n) for n in range(10)] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]
    assert rc.backoff(0, min_delay=60) == 60 and rc.backoff(99) == 300
    forbidden = rc.api_failure(403, 'deployments.apps "x" is forbidden', doing="apply of x")
    assert (forbidden.reason, forbidden.retry, forbidden.min_delay) == ("Forbidden", True, 30)
    assert "kubectl apply -k deploy/" in forbidden.message
    assert forbidden.short == "apply of x failed (HTTP 403)"
    missing = rc.api_failure(404, "the server could not find the requested resource",
                             doing="create of VirtualService a/b")
    assert missing.reason == "ResourceMissing" and "install Istio" in missing.message
    assert rc.api_failure(None, "timed out", doing="x").reason == "ApiUnavailable"
    assert rc.api_failure(422, "bad", doing="x").reason == "ApplyRejected"
    assert rc.api_failure(503, "", doing="x").message == "x (HTTP 503); retrying"
    for failure in (forbidden, missing):
        assert re.fullmatch(r"[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?", failure.reason)
    assert rc.revision_of({rc.REVISION_ANNOTATION: "7"}) == 7
    assert rc.revision_of({rc.REVISION_ANNOTATION: "x"}) is None
    assert rc.REVISION_ANNOTATION == REVISION_ANNOTATION  # the store's
