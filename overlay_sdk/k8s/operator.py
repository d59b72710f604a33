"""The Kubernetes operator: kopf handlers keeping each ``AIOverlay``'s children in the cluster
equal to what :func:`overlay_sdk.k8s.render.render` makes of it.

Run by ``overlay operator run`` (:func:`run`), or in a running event loop by
:meth:`Operator.serve` (the tests, on an emulated API server). The handlers are thin; what
they decide is in :mod:`overlay_sdk.k8s.reconcile`:

- **reconcile** (on create, update and operator start): validate the CR, resolve its versions
  (:class:`RegistryResolver`: the MLflow registry says whether a version is an MLflow model,
  a container image or a provider; ``name@alias`` routes get their version), render, and
  *server-side apply* every child (field manager ``overlay-operator``, ``force``; a create when
  the apply answers 404, as an API server without apply-creates would), then delete the
  children no longer rendered (the model servers of versions no longer routed: kopf indices
  of the Deployments and Services it manages say which exist, without a list call). Then the
  status: ``RoutesApplied`` (its message is the ``Routes`` column: ``copilot:3=80
  copilot:4=20``), ``Degraded``, ``Ready``, each with ``observedGeneration``, and
  ``revision``, ``appliedAt``, ``endpoints``; and an Event (``Applied``, with what changed).
  Before it starts, :meth:`Operator.check_cluster` says so when the CRD is not installed.
- **failures** never crash-loop and never stop the other overlays: a spec that cannot be
  served (``InvalidSpec``) sets ``Degraded=True`` with the reason, posts a Warning Event and
  waits for the next generation (``kopf.PermanentError``); a registry that cannot be reached
  (``RegistryUnavailable``), a version not registered (``VersionNotFound``) or an API call
  refused or failed (``Forbidden``, ``ResourceMissing``, ``ApiUnavailable``...) does the same and
  is retried with exponential backoff (``kopf.TemporaryError(delay=...)``, 1 s doubling to 5 min).
- **readiness**: from the index of the Deployments, a timer per overlay sets ``Ready=True``
  once all of the overlay's Deployments are available (a status patch carrying the
  ``resourceVersion`` it read: it never overwrites a newer reconcile).
- **deletion**: a finalizer (``overlays.aioverlay.dev/history``) holds a deleted CR until its
  history is released (:meth:`KubernetesStore.settle`), so that the garbage collector, which
  removes every child through its ``ownerReferences``, keeps the ControllerRevisions.
- **alerts**: with a telemetry URL, a timer runs :func:`overlay_sdk.watch.evaluate` for each
  overlay with a ``budget`` or ``drift`` watch and posts a Warning Event per new alert.

API calls the operator makes, all in the watched namespaces (``deploy/rbac/operator.yaml``
grants exactly these): aioverlays get/list/watch/patch and aioverlays/status patch; events
create; deployments and services create/patch/list/watch/delete;
destinationrules and virtualservices create/patch; controllerrevisions get/list/create/patch
(the history, on deletion and for alerts).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

import kopf
import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config import incluster_config, kube_config

from overlay_sdk.diff import describe_change
from overlay_sdk.errors import BackendError, NotFoundError, OverlayError, ValidationError
from overlay_sdk.k8s import reconcile as rc
from overlay_sdk.k8s.manifests import MANAGED_BY, RenderSettings, VersionTarget
from overlay_sdk.k8s.render import render
from overlay_sdk.spec import API_GROUP, API_VERSION, KIND, AIOverlay, ModelRef, parse_overlay

if TYPE_CHECKING:
    from overlay_sdk.alerts import Alert
    from overlay_sdk.registry import ModelRegistry
    from overlay_sdk.spec import AIOverlaySpec
    from overlay_sdk.store.kubernetes import KubernetesStore

__all__ = [
    "ANNOTATIONS_PREFIX",
    "FIELD_MANAGER",
    "FINALIZER",
    "KINDS",
    "PLURAL",
    "Cluster",
    "Evaluate",
    "Operator",
    "OperatorConfig",
    "RegistryResolver",
    "connection_info",
    "load_configuration",
    "run",
]

PLURAL = "aioverlays"
FIELD_MANAGER = "overlay-operator"
FINALIZER = f"{API_GROUP}/history"
ANNOTATIONS_PREFIX = f"operator.{API_GROUP}"
"""Where kopf keeps its progress and the last handled spec (annotations on the CR)."""

KINDS: dict[tuple[str, str], tuple[str, str]] = {
    ("apps/v1", "Deployment"): ("/apis/apps/v1", "deployments"),
    ("v1", "Service"): ("/api/v1", "services"),
    ("networking.istio.io/v1", "DestinationRule"): ("/apis/networking.istio.io/v1",
                                                    "destinationrules"),
    ("networking.istio.io/v1", "VirtualService"): ("/apis/networking.istio.io/v1",
                                                   "virtualservices"),
}
"""What the renderer makes: (apiVersion, kind) -> (API path prefix, plural)."""

PRUNED = (("apps/v1", "Deployment"), ("v1", "Service"))
"""Kinds whose names depend on the versions routed: a new generation may leave some behind."""

ALERT_REASONS = {"budget": "BudgetExceeded", "drift": "DriftDetected"}

_log = logging.getLogger("overlay_sdk.k8s.operator")
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DEPLOYMENTS, _SERVICES = "overlay_deployments", "overlay_services"
"""The ids of kopf's indices of the children (and of the handler arguments holding them)."""
_APPLY = "application/apply-patch+yaml"
_MERGE = "application/merge-patch+json"


# -- configuration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class OperatorConfig:
    """How the operator runs. ``namespaces`` empty: every namespace (a ClusterRole is then
    needed instead of the shipped Role). ``kubeconfig``/``context`` None: ``$KUBECONFIG`` or
    ``~/.kube/config`` and its current context, or the pod's service account in a cluster.
    ``registry_uri``: the MLflow registry the versions are resolved in (None: the model
    servers' ``render.tracking_uri``). ``telemetry_url``: where call records are (None: no
    alert evaluation). ``liveness``: kopf's health endpoint, e.g.
    ``http://0.0.0.0:8080/healthz``."""

    namespaces: tuple[str, ...] = ()
    kubeconfig: str | None = None
    context: str | None = None
    registry_uri: str | None = None
    telemetry_url: str | None = None
    render: RenderSettings = field(default_factory=RenderSettings)
    liveness: str | None = None
    alert_interval: float = 60.0
    readiness_interval: float = 10.0
    request_timeout: float = 30.0
    workers: int = 16

    def __post_init__(self) -> None:
        problems = []
        for ns in self.namespaces:
            if not isinstance(ns, str) or len(ns) > 63 or not _NAMESPACE.fullmatch(ns):
                problems.append(f"{ns!r} is not a namespace name (lowercase letters, digits, "
                                "'-')")
        for name in ("alert_interval", "readiness_interval", "request_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                problems.append(f"{name} must be seconds > 0, got {value!r}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) \
                or not 1 <= self.workers <= 256:
            problems.append(f"workers must be 1..256, got {self.workers!r}")
        if problems:
            raise ValidationError.at("operator", "; ".join(problems))

    @property
    def registry(self) -> str:
        """The registry URI the versions are resolved in."""
        return self.registry_uri or self.render.registry_uri or self.render.tracking_uri


# -- connecting --------------------------------------------------------------------------------


def _in_pod() -> bool:
    return bool(os.environ.get(incluster_config.SERVICE_HOST_ENV_NAME)) and Path(
        incluster_config.SERVICE_TOKEN_FILENAME).is_file()


def load_configuration(kubeconfig: str | None = None,
                       context: str | None = None) -> k8s.Configuration:
    """A client configuration from ``kubeconfig`` (None: ``$KUBECONFIG`` or
    ``~/.kube/config``) and ``context`` (None: its current context), or the pod's service
    account when neither is given and there is no kubeconfig. ValidationError says why not."""
    configuration = k8s.Configuration()
    default = Path(os.environ.get("KUBECONFIG", "~/.kube/config").split(os.pathsep)[0])
    if kubeconfig is None and context is None and _in_pod() \
            and not default.expanduser().is_file():
        try:
            incluster_config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration)
        except k8s_config.ConfigException as err:
            raise ValidationError.at("--kubeconfig", f"in a pod, but its service account "
                                     f"cannot be used: {err}") from None
        return configuration
    if kubeconfig is not None and not Path(kubeconfig).expanduser().is_file():
        raise ValidationError.at("--kubeconfig", f"{kubeconfig} is not a file; give the path of "
                                 "a kubeconfig (as kubectl's --kubeconfig)")
    try:
        kube_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, context=context, client_configuration=configuration,
            persist_config=False)
    except (k8s_config.ConfigException, OSError, ValueError, TypeError) as err:
        where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        field_name = "--context" if context is not None and "context" in str(err) \
            else "--kubeconfig"
        raise ValidationError.at(field_name, f"cannot use the kubeconfig {where}"
                                 f"{f' (context {context!r})' if context else ''}: {err}; "
                                 "check it with `kubectl config get-contexts`") from None
    return configuration


def connection_info(configuration: k8s.Configuration) -> kopf.ConnectionInfo:
    """kopf's credentials for the same API server and identity as ``configuration`` (what
    ``kopf.login_via_client`` does for the default configuration)."""
    header = (configuration.get_api_key_with_prefix("BearerToken")
              or configuration.get_api_key_with_prefix("authorization"))
    parts = str(header).split(" ", 1) if header else []
    scheme, token = ((None, None) if not parts else (None, parts[0]) if len(parts) == 1
                     else (parts[0], parts[1]))
    return kopf.ConnectionInfo(
        server=str(configuration.host),
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        username=configuration.username or None,
        password=configuration.password or None,
        scheme=scheme,
        token=token,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
    )


# -- the API calls -----------------------------------------------------------------------------


def _message(err: ApiException) -> str:
    try:
        body = json.loads(err.body or "")
    except (TypeError, ValueError):
        return str(err.reason or "").strip()
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or err.reason or "").strip()


class Cluster:
    """The operator's own API calls, through the official client (synchronous: kopf runs the
    handlers in threads). Every failure is raised as :class:`~overlay_sdk.k8s.reconcile.Failure`
    naming what was being done."""

    def __init__(self, api_client: k8s.ApiClient, *, timeout: float = 30.0) -> None:
        self.api = api_client
        self.timeout = timeout

    def request(self, method: str, path: str, *, body: Any = None,
                query: Iterable[tuple[str, str]] = (), content_type: str = "application/json",
                doing: str) -> Any:
        """One call; the decoded JSON answer. ApiException for an HTTP error (callers that
        expect one catch it), Failure for no answer at all."""
        params = self.api.param_serialize(
            method=method, resource_path=path, query_params=list(query),
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body, auth_settings=["BearerToken"])
        try:
            response = self.api.call_api(*params, _request_timeout=(10.0, self.timeout))
            response.read()  # type: ignore[no-untyped-call]
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise rc.api_failure(None, str(err), doing=doing) from None
        return self.api.response_deserialize(
            response, {"200": "object", "201": "object", "202": "object"}).data

    def _call(self, method: str, path: str, *, doing: str, expect: tuple[int, ...] = (),
              **kwargs: Any) -> Any:
        try:
            return self.request(method, path, doing=doing, **kwargs)
        except ApiException as err:
            if err.status in expect:
                raise
            raise rc.api_failure(err.status, _message(err), doing=doing) from None

    @staticmethod
    def _collection(api_version: str, kind: str, namespace: str) -> str:
        try:
            prefix, plural = KINDS[api_version, kind]
        except KeyError:
            raise rc.Failure("ReconcileError", f"the operator cannot apply {api_version} "
                             f"{kind}: not a kind the renderer makes", retry=False) from None
        return f"{prefix}/namespaces/{namespace}/{plural}"

    def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply ``obj`` (field manager ``overlay-operator``, forcing conflicts);
        when the server answers 404 (an API server whose apply does not create, or a kind
        it does not serve), create it."""
        meta = obj["metadata"]
        collection = self._collection(obj["apiVersion"], obj["kind"], meta["namespace"])
        what = f"{obj['kind']} {meta['namespace']}/{meta['name']}"
        try:
            result = self._call("PATCH", f"{collection}/{meta['name']}", body=obj,
                                query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
                                content_type=_APPLY, doing=f"apply of {what}", expect=(404,))
        except ApiException:
            try:
                result = self._call("POST", collection, body=obj,
                                    query=[("fieldManager", FIELD_MANAGER)],
                                    doing=f"create of {what}", expect=(409,))
            except ApiException:  # created meanwhile: apply over it
                result = self._call("PATCH", f"{collection}/{meta['name']}", body=obj,
                                    query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
                                    content_type=_APPLY, doing=f"apply of {what}")
        return dict(result) if isinstance(result, Mapping) else {}

    def delete(self, api_version: str, kind: str, namespace: str, name: str,
               uid: str | None) -> None:
        """Delete one object (if it is still the one with ``uid``); gone already is fine."""
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions",
                                "propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        with contextlib.suppress(ApiException):  # 404 gone, 409 another object by now
            self._call("DELETE", f"{self._collection(api_version, kind, namespace)}/{name}",
                       body=body, doing=f"delete of {kind} {namespace}/{name}",
                       expect=(404, 409))

    def patch_status(self, namespace: str, name: str, status: Mapping[str, Any],
                     resource_version: str | None) -> bool:
        """Merge ``status`` into the overlay's status, only if the CR is still at
        ``resource_version``; False when it changed meanwhile (409) or is gone (404)."""
        body: dict[str, Any] = {"status": dict(status)}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        path = (f"/apis/{API_GROUP}/{API_VERSION}/namespaces/{namespace}/{PLURAL}/{name}"
                "/status")
        try:
            self._call("PATCH", path, body=body, content_type=_MERGE, expect=(404, 409),
                       doing=f"status update of AIOverlay {namespace}/{name}")
        except ApiException:
            return False
        return True


# -- resolving versions -----------------------------------------------------------------------


class RegistryResolver:
    """A :class:`~overlay_sdk.k8s.reconcile.Resolver` over the MLflow registry: a
    ``provider`` version runs nowhere, an ``image`` version runs its registered image (port,
    health path), any other flavor is an MLflow model for the model server; the resources
    each version declared go with it.
    Versions are immutable, so each is read once; aliases are read every time."""

    def __init__(self, registry: ModelRegistry, *, kept: int = 4096) -> None:
        self.registry = registry
        self._kept = kept
        self._cache: dict[str, VersionTarget] = {}
        self._lock = threading.Lock()

    def __call__(self, ref: ModelRef) -> VersionTarget:
        if ref.version is not None:
            key = f"{ref.model}:{ref.version}"
            with self._lock:
                found = self._cache.get(key)
            if found is not None:
                return found
        mv = self.registry.resolve(ref)
        key = f"{mv.name}:{mv.version}"
        if mv.flavor == "provider":
            target = VersionTarget(key, "provider")
        elif mv.flavor == "image":
            config = self.registry.config(mv.name, mv.version)
            target = VersionTarget(key, "image", image=getattr(config, "image", None),
                                   port=getattr(config, "port", None),
                                   health_path=getattr(config, "health_path", None),
                                   resources=mv.resources)
        else:
            target = VersionTarget(key, "mlflow", model_uri=mv.uri or None,
                                   resources=mv.resources)
        with self._lock:
            if len(self._cache) >= self._kept:
                self._cache.clear()
            self._cache[key] = target
        return target


# -- the operator ------------------------------------------------------------------------------


class Evaluate(Protocol):
    """:func:`overlay_sdk.watch.evaluate`'s signature."""

    def __call__(self, url: str, name: str, spec: AIOverlaySpec, *, registry: Any,
                 first_revision: int = 1) -> list[Alert]: ...


@dataclass
class _Applied:
    overlay: AIOverlay
    manifests: list[dict[str, Any]]
    pruned: list[str]

    @property
    def deployments(self) -> list[str]:
        return [m["metadata"]["name"] for m in self.manifests if m["kind"] == "Deployment"]


class Operator:
    """The handlers of one operator, registered in their own ``kopf.OperatorRegistry``.

    ``resolver`` (default: :class:`RegistryResolver` over ``config.registry``), ``evaluate``
    (default: :func:`overlay_sdk.watch.evaluate`), ``model_registry`` (what ``evaluate`` reads
    reference data from; default: the registry at ``config.registry``) and ``configuration``
    (default: :func:`load_configuration` of ``config``) can be given, for tests.
    """

    def __init__(self, config: OperatorConfig, *, resolver: rc.Resolver | None = None,
                 evaluate: Evaluate | None = None, model_registry: Any = None,
                 configuration: k8s.Configuration | None = None) -> None:
        self.config = config
        self.configuration = configuration or load_configuration(config.kubeconfig,
                                                                 config.context)
        # a connection for each handler thread, the timers' and the store's
        self.configuration.connection_pool_maxsize = max(
            self.configuration.connection_pool_maxsize or 0, config.workers + 4)
        self.api_client = k8s.ApiClient(self.configuration)
        self.cluster = Cluster(self.api_client, timeout=config.request_timeout)
        self._resolver = resolver
        self._evaluate = evaluate
        self._model_registry = model_registry
        self._stores: dict[str, KubernetesStore] = {}
        self._expected: dict[tuple[str, str], tuple[str, list[str]]] = {}
        self._lock = threading.Lock()
        self.registry = kopf.OperatorRegistry()
        self.settings = self._settings()
        self._register()

    # -- lazily made collaborators ---------------------------------------------------------

    def model_registry(self) -> Any:
        """The MLflow registry (made on first use: importing MLflow takes a second)."""
        with self._lock:
            if self._model_registry is None:
                from overlay_sdk.registry import ModelRegistry

                self._model_registry = ModelRegistry(self.config.registry)
            return self._model_registry

    def resolver(self) -> rc.Resolver:
        if self._resolver is None:
            registry = self.model_registry()
            with self._lock:
                if self._resolver is None:
                    self._resolver = RegistryResolver(registry)
        return self._resolver

    def store(self, namespace: str) -> KubernetesStore:
        """The Kubernetes store of ``namespace`` on the operator's own client."""
        from overlay_sdk.store.kubernetes import KubernetesStore

        with self._lock:
            if namespace not in self._stores:
                self._stores[namespace] = KubernetesStore(namespace, self.api_client)
            return self._stores[namespace]

    def close(self) -> None:
        """Close the stores and the API client."""
        for store in self._stores.values():
            store.close()
        self.api_client.close()  # type: ignore[no-untyped-call]

    # -- running -----------------------------------------------------------------------------

    def _settings(self) -> kopf.OperatorSettings:
        settings = kopf.OperatorSettings()
        # namespaces are named, CRDs installed: nothing to discover, no cluster-wide reads
        settings.scanning.disabled = True
        # Events: only those the handlers post (kopf.event), not kopf's own log lines
        settings.posting.level = logging.CRITICAL
        settings.persistence.finalizer = FINALIZER
        # annotations only: the CRD's status schema has no room for kopf's progress
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
            prefix=ANNOTATIONS_PREFIX)
        # what a change is: the spec (labels and annotations, the store's record among them,
        # render nothing)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=ANNOTATIONS_PREFIX, key="last-handled-configuration",
            ignored_fields=["metadata.labels", "metadata.annotations"])
        settings.execution.max_workers = self.config.workers
        settings.networking.request_timeout = self.config.request_timeout
        # watches are re-established every few minutes: a silently dead one heals
        settings.watching.server_timeout = 270
        settings.watching.client_timeout = 300
        settings.watching.connect_timeout = 10
        return settings

    def check_cluster(self) -> None:
        """Fail with BackendError saying what to do when the API server cannot be reached or
        does not serve AIOverlays (the CRD is not installed); log a warning when it does not
        serve Istio's routes (every overlay would be Degraded: ResourceMissing)."""
        where = f"the API server at {self.configuration.host}"
        found: dict[str, Any] = {}
        for group_version in (f"{API_GROUP}/{API_VERSION}", "networking.istio.io/v1"):
            try:
                found[group_version] = self.cluster.request(
                    "GET", f"/apis/{group_version}", doing=f"discovery of {group_version}")
            except ApiException as err:
                if err.status != 404:
                    raise BackendError(f"{where} refused the discovery of {group_version} "
                                       f"(HTTP {err.status}: {_message(err)}); check the "
                                       "credentials of --kubeconfig/--context") from None
                found[group_version] = {}
            except rc.Failure as failure:
                raise BackendError(f"cannot reach {where}: {failure.message}; check "
                                   "--kubeconfig/--context") from None
        served = {r.get("name") for r in found[f"{API_GROUP}/{API_VERSION}"].get("resources")
                  or []}
        if PLURAL not in served:
            raise BackendError(f"{where} does not serve {PLURAL}.{API_GROUP}/{API_VERSION}: "
                               "install the CRD first (kubectl apply --server-side -f "
                               "deploy/crds/aioverlay.yaml, or kubectl apply -k deploy/)")
        if not found["networking.istio.io/v1"]:
            _log.warning("%s does not serve Istio's networking.istio.io/v1: every overlay will "
                         "be Degraded (ResourceMissing) until Istio is installed", where)

    async def serve(self, *, stop_flag: Any = None, ready_flag: Any = None,
                    check: bool = True) -> None:
        """Check the cluster (:meth:`check_cluster`, unless ``check`` is False), then run
        until ``stop_flag`` (a threading or asyncio Event, or a Future) is set."""
        if check:
            await asyncio.to_thread(self.check_cluster)
        namespaces = list(self.config.namespaces)
        await kopf.operator(
            registry=self.registry, settings=self.settings, standalone=True,
            clusterwide=not namespaces, namespaces=namespaces,
            liveness_endpoint=self.config.liveness, stop_flag=stop_flag,
            ready_flag=ready_flag)

    # -- handlers ----------------------------------------------------------------------------

    def _register(self) -> None:
        reg = self.registry
        resource = (API_GROUP, API_VERSION, PLURAL)
        prefix = self.config.render.label_prefix
        managed = {"app.kubernetes.io/managed-by": MANAGED_BY}

        @kopf.on.login(registry=reg)
        def login(**_: Any) -> kopf.ConnectionInfo:
            configuration = self.configuration
            if self.config.kubeconfig or self.config.context or not _in_pod():
                # read again: exec plugins and OIDC hand out short-lived tokens
                with contextlib.suppress(ValidationError):
                    configuration = load_configuration(self.config.kubeconfig,
                                                       self.config.context)
            return connection_info(configuration)

        def child(namespace: str | None, labels: Mapping[str, str], body: kopf.Body,
                  **_: Any) -> dict[Any, Any] | None:
            overlay = labels.get(f"{prefix}/overlay")
            if not overlay:
                return None
            return {(namespace, overlay): rc.child_state(body)}

        # the children, as watched: readiness and what a new generation leaves behind,
        # without a list call per reconcile
        kopf.index("apps", "v1", "deployments", labels=managed, registry=reg,
                   id=_DEPLOYMENTS)(child)
        kopf.index("", "v1", "services", labels=managed, registry=reg, id=_SERVICES)(child)

        @kopf.on.resume(*resource, registry=reg, id="reconcile", backoff=5.0)
        @kopf.on.create(*resource, registry=reg, id="reconcile", backoff=5.0)
        @kopf.on.update(*resource, registry=reg, id="reconcile", backoff=5.0)
        def reconcile(**kwargs: Any) -> None:
            self.on_change(**kwargs)

        @kopf.on.delete(*resource, registry=reg, id="keep-history", retries=10, backoff=5.0)
        def keep_history(**kwargs: Any) -> None:
            self.on_delete(**kwargs)

        @kopf.timer(*resource, registry=reg, id="readiness",
                    interval=self.config.readiness_interval,
                    initial_delay=self.config.readiness_interval)
        async def readiness(**kwargs: Any) -> None:
            await self.on_readiness(**kwargs)

        if self.config.telemetry_url:
            def watched(spec: kopf.Spec, **_: Any) -> bool:
                return bool(spec.get("budget") or spec.get("drift"))

            @kopf.timer(*resource, registry=reg, id="alerts", interval=self.config.alert_interval,
                        initial_delay=min(self.config.alert_interval, 30.0), when=watched)
            def alerts(**kwargs: Any) -> None:
                self.on_alerts(**kwargs)

    # reconcile

    def parse(self, body: Mapping[str, Any]) -> AIOverlay:
        """The CR as an AIOverlay; Failure ``InvalidSpec`` naming the field at fault."""
        meta = body.get("metadata") or {}
        doc = {"apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": KIND,
               "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace")},
               "spec": body.get("spec")}
        try:
            return parse_overlay(doc)
        except ValidationError as err:
            raise rc.Failure("InvalidSpec", f"{err}; fix the AIOverlay (the API server "
                             "checks the same rules when the CRD is up to date)",
                             retry=False) from None

    def apply(self, body: Mapping[str, Any], *,
              children: Iterable[rc.Child] = ()) -> _Applied:
        """Validate, resolve, render and apply ``body``'s children, then delete those of
        ``children`` (what the indices know of the overlay's) no longer rendered. Failure
        says what went wrong."""
        meta = body.get("metadata") or {}
        name, namespace, uid = meta.get("name"), meta.get("namespace"), meta.get("uid")
        if not isinstance(namespace, str) or not isinstance(uid, str) or not uid:
            raise rc.Failure("ReconcileError", "the AIOverlay has no namespace or uid: an API "
                             "server always sets them", retry=False)
        overlay = self.parse(body)
        resolved, targets = rc.resolve_versions(overlay, self.resolver(),
                                             registry=self.config.registry)
        try:
            manifests = render(resolved, targets, settings=self.config.render, uid=uid)
        except ValidationError as err:
            raise rc.Failure("InvalidSpec", f"cannot be rendered: {err}", retry=False) from None
        for manifest in manifests:
            self.cluster.apply(manifest)
        keep = [(m["kind"], m["metadata"]["name"]) for m in manifests]
        pruned: list[str] = []
        for stale in rc.stale_children(children, uid=uid, keep=keep):
            api_version = next(v for (v, k) in PRUNED if k == stale.kind)
            self.cluster.delete(api_version, stale.kind, namespace, stale.name, stale.uid)
            pruned.append(f"{stale.kind} {stale.name}")
        applied = _Applied(resolved, manifests, pruned)
        with self._lock:
            self._expected[namespace, str(name)] = (uid, applied.deployments)
        return applied

    @staticmethod
    def _children(kwargs: Mapping[str, Any], meta: Mapping[str, Any]) -> list[rc.Child]:
        """The overlay's children in the indices passed to a handler."""
        key = (meta.get("namespace"), meta.get("name"))
        found: list[rc.Child] = []
        for index in (kwargs.get(_DEPLOYMENTS), kwargs.get(_SERVICES)):
            if index is not None:
                found.extend(index.get(key, []))
        return found

    def on_change(self, *, body: kopf.Body, meta: kopf.Meta, status: kopf.Status,
                  reason: str, retry: int, patch: kopf.Patch, old: Any = None,
                  new: Any = None, logger: Any = None, **kwargs: Any) -> None:
        """The create/update/resume handler."""
        generation = meta.get("generation")
        now = datetime.now(UTC)
        try:
            applied = self.apply(body, children=self._children(kwargs, meta))
        except rc.Failure as failure:
            self._failed(body, status, patch, failure, generation, retry, now)
        except Exception as err:  # a bug: still no crash loop, and visible on the object
            _log.exception("reconcile of %s/%s failed", meta.get("namespace"), meta.get("name"))
            self._failed(body, status, patch, rc.Failure(
                "ReconcileError", f"{type(err).__name__}: {err}; retrying (see the operator's "
                "log)", min_delay=10.0), generation, retry, now)
        spec = applied.overlay.spec
        summary = rc.route_summary(spec)
        ready = self._readiness(self._children(kwargs, meta), meta, applied.deployments)
        settings = self.config.render
        gateway, models = _service_names(applied.manifests)
        revision = rc.revision_of(meta.get("annotations"))
        status_now = rc.applied_status(
            status, generation=generation, revision=revision, summary=summary,
            endpoints=rc.endpoints(str(meta.get("name")), str(meta.get("namespace")),
                                   gateway_service=gateway, gateway_port=settings.gateway_port,
                                   models_service=models,
                                   models_port=settings.model_server_port,
                                   cluster_domain=settings.cluster_domain),
            ready=ready, now=now)
        patch.status.update(status_now)
        before = next((c for c in (status.get("conditions") or [])
                       if c.get("type") == rc.ROUTES_APPLIED), None)
        already = (before is not None and before.get("status") == "True"
                   and before.get("observedGeneration") == generation
                   and before.get("message") == summary)
        if already and not applied.pruned:
            return  # a restart, or a change of labels: the same routes, nothing to tell
        message = f"generation {generation}"
        if revision is not None:
            message += f" (revision {revision})"
        message += f": {summary}"
        if reason == kopf.Reason.UPDATE and isinstance(old, Mapping) and isinstance(new, Mapping):
            change = describe_change(_wire(old), _wire(new))
            if change:
                message += f"; changed: {change}"
        if applied.pruned:
            message += f"; removed {', '.join(applied.pruned)}"
        _event(body, "Normal", "Applied", message)

    def _failed(self, body: kopf.Body, status: Mapping[str, Any], patch: kopf.Patch,
                failure: rc.Failure, generation: int | None, retry: int,
                now: datetime) -> NoReturn:
        patch.status.update(rc.failed_status(status, failure, generation=generation, now=now))
        _event(body, "Warning", failure.reason, failure.message)
        if failure.retry:
            raise kopf.TemporaryError(str(failure), delay=rc.backoff(
                retry, min_delay=failure.min_delay))
        raise kopf.PermanentError(str(failure))

    @staticmethod
    def _readiness(children: Iterable[rc.Child], meta: Mapping[str, Any],
                   expected: Iterable[str]) -> rc.Readiness:
        return rc.readiness(children, uid=meta.get("uid"), expected=expected)

    # readiness

    async def on_readiness(self, *, meta: kopf.Meta, status: kopf.Status,
                           **kwargs: Any) -> None:
        """The readiness timer: ``Ready`` follows the overlay's Deployments."""
        namespace, name, uid = meta.get("namespace"), meta.get("name"), meta.get("uid")
        with self._lock:
            known = self._expected.get((str(namespace), str(name)))
        if known is None or known[0] != uid:
            return  # not reconciled by this operator yet
        ready = self._readiness(self._children(kwargs, meta), meta, known[1])
        new = rc.ready_status(status, ready, generation=meta.get("generation"),
                              now=datetime.now(UTC))
        if new is None:
            return
        # a precondition on the resourceVersion read: never overwrite a newer reconcile
        await asyncio.to_thread(self.cluster.patch_status, str(namespace), str(name), new,
                                meta.get("resourceVersion"))

    # deletion

    def on_delete(self, *, body: kopf.Body, meta: kopf.Meta, retry: int,
                  **_: Any) -> None:
        """Keep the overlay's history: release its ControllerRevisions from the CR (and record
        a deletion made with kubectl) before the finalizer lets it go."""
        namespace, name = str(meta.get("namespace")), str(meta.get("name"))
        try:
            store = self.store(namespace)
            store.settle(name)
            kept = len(store.history(name))
        except NotFoundError:
            kept = 0
        except OverlayError as err:
            raise kopf.TemporaryError(f"history of {namespace}/{name} not released yet: {err}",
                                      delay=rc.backoff(retry)) from None
        with self._lock:
            self._expected.pop((namespace, name), None)
        _event(body, "Normal", "HistoryKept",
               f"{kept} revision{'s' if kept != 1 else ''} of {name} kept; the garbage "
               "collector removes its Deployments, Services and routes")

    # alerts

    def evaluate(self) -> Evaluate:
        if self._evaluate is None:
            from overlay_sdk.watch import evaluate

            self._evaluate = evaluate
        return self._evaluate

    def on_alerts(self, *, body: kopf.Body, meta: kopf.Meta, **_: Any) -> None:
        """The alert timer: evaluate the overlay's budget and drift watches."""
        from overlay_sdk.store.base import created_revision

        url = self.config.telemetry_url
        if not url:
            return
        namespace, name = str(meta.get("namespace")), str(meta.get("name"))
        try:
            overlay = self.parse(body)
        except rc.Failure:
            return  # Degraded already says why
        try:
            first = created_revision(self.store(namespace).history(name))
        except NotFoundError:
            first = 1  # not written by the store: no history
        try:
            raised = self.evaluate()(url, name, overlay.spec, registry=self.model_registry(),
                                     first_revision=first)
        except OverlayError as err:
            _log.warning("alert evaluation of %s/%s failed: %s", namespace, name, err)
            return
        for alert in raised:
            _event(body, "Warning", ALERT_REASONS.get(alert.kind, "Alert"), alert.message)


def _event(body: kopf.Body, type_: str, reason: str, message: str) -> None:
    """Post an Event on the overlay (the message cut to 1,000 characters, as events.k8s.io
    wants its notes)."""
    text = message if len(message) <= 1000 else message[:997] + "..."
    kopf.event(body, type=type_, reason=reason, message=text)


def _service_names(manifests: Iterable[Mapping[str, Any]]) -> tuple[str, str]:
    """The gateway's Service and the models Service (the VirtualService's host) rendered."""
    gateway = models = ""
    for m in manifests:
        component = (m["metadata"].get("labels") or {}).get("app.kubernetes.io/component")
        if m["kind"] == "Service" and component == "gateway":
            gateway = m["metadata"]["name"]
        elif m["kind"] == "VirtualService":
            models = m["metadata"]["name"]
    return gateway, models


def _wire(body: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a kopf essence ``describe_change`` reads."""
    return {"metadata": {}, "spec": dict(body.get("spec") or {})}


def run(config: OperatorConfig, *, on_start: Callable[[Operator], None] | None = None) -> None:
    """Run the operator in the foreground until SIGINT or SIGTERM (``overlay operator run``)."""
    operator = Operator(config)
    try:
        operator.check_cluster()
        if on_start is not None:
            on_start(operator)
        asyncio.run(operator.serve(check=False))
    finally:
        operator.close()
