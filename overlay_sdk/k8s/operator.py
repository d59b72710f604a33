"""The Kubernetes operator: kopf handlers keeping each ``AIOverlay``'s children in the cluster
equal to what :func:`overlay_sdk.k8s.render.render` makes of it.

Run by ``overlay operator run`` (:func:`run`), or in a running event loop by
:meth:`Operator.serve` (the tests, on an emulated API server). The handlers are thin: what
they decide is in :mod:`overlay_sdk.k8s.reconcile`, the API calls they make (connecting,
server-side apply, pruning, status patches, Events, the children as indexed) in
:mod:`overlay_sdk.k8s.cluster`:

- **reconcile** (on create, update and operator start): validate the CR, resolve its versions
  (:class:`RegistryResolver`: the MLflow registry says whether a version is an MLflow model,
  a container image or a provider; ``name@alias`` routes get their version), render, and
  *server-side apply* every child (field manager ``overlay-operator``, ``force``; a create when
  the apply answers 404, as an API server without apply-creates would), then delete the
  children no longer rendered (the model servers of versions no longer routed, and their
  autoscalers: kopf indices of the Deployments, Services and HorizontalPodAutoscalers it
  manages say which exist, without a list call). A spec edited beside the SDK (kubectl,
  GitOps) is recorded as the overlay's next revision (:meth:`KubernetesStore.settle`). Then the
  status: ``RoutesApplied`` (its message is the ``Routes`` column: ``copilot:3=80
  copilot:4=20``), ``Degraded``, ``Ready``, each with ``observedGeneration``, and
  ``revision``, ``appliedAt``, ``endpoints``; and an Event (``Applied``, with what changed).
  Before it starts, :meth:`Operator.check_cluster` says so when the CRD is not installed.
- **revisions that leave the spec as it was** (labels or annotations only, or a rival
  revision with the same spec) bump no generation, so no reconcile runs: a handler on every
  watch event whose store revision (the annotation ``overlays.aioverlay.dev/revision``) the
  status lags sets ``revision`` and ``appliedAt`` once the current generation is applied
  (``kopf.on.field`` cannot see it: kopf's record of what was handled leaves annotations
  out, since they render nothing).
- **failures** never crash-loop and never stop the other overlays: a spec that cannot be
  served (``InvalidSpec``) sets ``Degraded=True`` with the reason, posts a Warning Event and
  waits for the next generation (``kopf.PermanentError``); a registry that cannot be reached
  (``RegistryUnavailable``), a version not registered (``VersionNotFound``) or an API call
  refused or failed (``Forbidden``, ``ResourceMissing``, ``ApiUnavailable``...) does the same and
  is retried with exponential backoff (``kopf.TemporaryError(delay=...)``, 1 s doubling to 5 min).
- **readiness**: from the index of the Deployments, a timer per overlay sets ``Ready=True``
  once all of the overlay's Deployments are available, and ``Degraded=True`` (``Ready=False``)
  with the reason and message of a Deployment that failed (``ReplicaFailure=True``, or
  ``Progressing=False`` with ``ProgressDeadlineExceeded``; a Warning Event), cleared when it
  recovers (``Recovered``); a status patch carrying the ``resourceVersion`` it read: it never
  overwrites a newer reconcile. A reconcile writes the same from the same index.
- **deletion**: a finalizer (``overlays.aioverlay.dev/history``) holds a deleted CR until its
  history is released (:meth:`KubernetesStore.settle`), so that the garbage collector, which
  removes every child through its ``ownerReferences``, keeps the ControllerRevisions.
- **alerts**: with a telemetry URL, a timer runs :func:`overlay_sdk.watch.evaluate` for each
  overlay with a ``budget`` or ``drift`` watch and posts a Warning Event per new alert.

API calls the operator makes, all in the watched namespaces (``deploy/rbac/operator.yaml``
grants exactly these): aioverlays get/list/watch/patch and aioverlays/status patch; events
create; deployments, services and horizontalpodautoscalers create/patch/list/watch/delete;
destinationrules and virtualservices create/patch; controllerrevisions get/list/create/patch
(the history: on deletion, for spec edits and for alerts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

import kopf
from kubernetes import client as k8s

from overlay_sdk.diff import describe_change
from overlay_sdk.errors import (
    BackendError,
    FieldError,
    NotFoundError,
    OverlayError,
    ValidationError,
)
from overlay_sdk.k8s import reconcile as rc
from overlay_sdk.k8s.cluster import (
    AUTOSCALERS_INDEX,
    DEPLOYMENTS_INDEX,
    FIELD_MANAGER,
    KINDS,
    PLURAL,
    SERVICES_INDEX,
    Cluster,
    children_of,
    connection_info,
    in_pod,
    load_configuration,
    name_key,
    owners_of,
    post_event,
)
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

FINALIZER = f"{API_GROUP}/history"
ANNOTATIONS_PREFIX = f"operator.{API_GROUP}"
"""Where kopf keeps its progress and the last handled spec (annotations on the CR)."""

ALERT_REASONS = {"budget": "BudgetExceeded", "drift": "DriftDetected"}

_log = logging.getLogger("overlay_sdk.k8s.operator")
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


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
        problems: list[FieldError] = []
        for i, ns in enumerate(self.namespaces):
            if not isinstance(ns, str) or len(ns) > 63 or not _NAMESPACE.fullmatch(ns):
                problems.append(FieldError(f"namespaces[{i}]", f"{ns!r} is not a namespace name "
                                           "(lowercase letters, digits, '-')"))
        for name in ("alert_interval", "readiness_interval", "request_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                problems.append(FieldError(name, f"must be seconds > 0, got {value!r}"))
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) \
                or not 1 <= self.workers <= 256:
            problems.append(FieldError("workers", f"must be 1..256, got {self.workers!r}"))
        if problems:
            raise ValidationError(problems, subject="operator configuration")

    @property
    def registry(self) -> str:
        """The registry URI the versions are resolved in."""
        return self.registry_uri or self.render.registry_uri or self.render.tracking_uri


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
        served = self.cluster.served(f"{API_GROUP}/{API_VERSION}")
        istio = self.cluster.served("networking.istio.io/v1")
        if PLURAL not in (served or ()):
            raise BackendError(f"{self.cluster.where} does not serve {PLURAL}.{API_GROUP}/"
                               f"{API_VERSION}: install the CRD first (kubectl apply "
                               "--server-side -f deploy/crds/aioverlay.yaml, or kubectl apply "
                               "-k deploy/)")
        if istio is None:
            _log.warning("%s does not serve Istio's networking.istio.io/v1: every overlay will "
                         "be Degraded (ResourceMissing) until Istio is installed",
                         self.cluster.where)

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
            if self.config.kubeconfig or self.config.context or not in_pod():
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
            state = rc.child_state(body)
            return {(namespace, overlay): state,
                    name_key(namespace, state.kind, state.name): state.owner_uid}

        # the children, as watched: readiness and what a new generation leaves behind,
        # without a list call per reconcile
        kopf.index("apps", "v1", "deployments", labels=managed, registry=reg,
                   id=DEPLOYMENTS_INDEX)(child)
        kopf.index("", "v1", "services", labels=managed, registry=reg, id=SERVICES_INDEX)(child)
        kopf.index("autoscaling", "v2", "horizontalpodautoscalers", labels=managed,
                   registry=reg, id=AUTOSCALERS_INDEX)(child)

        @kopf.on.resume(*resource, registry=reg, id="reconcile", backoff=5.0)
        @kopf.on.create(*resource, registry=reg, id="reconcile", backoff=5.0)
        @kopf.on.update(*resource, registry=reg, id="reconcile", backoff=5.0)
        def reconcile(**kwargs: Any) -> None:
            self.on_change(**kwargs)

        # The store's revision is an annotation, and kopf's record of what was handled leaves
        # annotations out (they render nothing): kopf.on.field never sees it change, so every
        # watch event is checked, cheaply, by the filter.
        def revision_lags(type: str | None, meta: kopf.Meta, status: kopf.Status,
                          **_: Any) -> bool:
            return type != "DELETED" and self.revision_update(meta, status) is not None

        @kopf.on.event(*resource, registry=reg, id="revision", when=revision_lags)
        async def follow_revision(**kwargs: Any) -> None:
            await self.on_revision(**kwargs)

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

    def apply(self, body: Mapping[str, Any], *, children: Iterable[rc.Child] = (),
              owners: Callable[[str, str], Iterable[str | None]] = lambda kind, name: (),
              ) -> _Applied:
        """Validate, resolve, render and apply ``body``'s children, then delete those of
        ``children`` (what the indices know of the overlay's) no longer rendered. ``owners``
        gives the controlling overlays of an object by kind and name (from the indices): a
        child another overlay controls is not taken over. Failure says what went wrong."""
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
        rc.check_names(manifests, uid=uid, owners=owners)
        for manifest in manifests:
            self.cluster.apply(manifest)
        keep = [(m["kind"], m["metadata"]["name"]) for m in manifests]
        pruned = self.cluster.prune(namespace, rc.stale_children(children, uid=uid, keep=keep))
        applied = _Applied(resolved, manifests, pruned)
        with self._lock:
            self._expected[namespace, str(name)] = (uid, applied.deployments)
        return applied

    @staticmethod
    def _children(kwargs: Mapping[str, Any], meta: Mapping[str, Any]) -> list[rc.Child]:
        """The overlay's children in the indices passed to a handler."""
        return children_of(kwargs, meta.get("namespace"), meta.get("name"))

    def on_change(self, *, body: kopf.Body, meta: kopf.Meta, status: kopf.Status,
                  reason: str, retry: int, patch: kopf.Patch, old: Any = None,
                  new: Any = None, logger: Any = None, **kwargs: Any) -> None:
        """The create/update/resume handler."""
        generation = meta.get("generation")
        now = datetime.now(UTC)
        try:
            namespace = meta.get("namespace")
            applied = self.apply(body, children=self._children(kwargs, meta),
                                 owners=lambda kind, name: owners_of(kwargs, namespace, kind,
                                                                     name))
        except rc.Failure as failure:
            self._failed(body, status, patch, failure, generation, retry, now)
        except Exception as err:  # a bug: still no crash loop, and visible on the object
            _log.exception("reconcile of %s/%s failed", meta.get("namespace"), meta.get("name"))
            self._failed(body, status, patch, rc.Failure(
                "ReconcileError", f"{type(err).__name__}: {err}; retrying (see the operator's "
                "log)", min_delay=10.0), generation, retry, now)
        self._record_edit(meta, body)
        spec = applied.overlay.spec
        summary = rc.route_summary(spec)
        children = self._children(kwargs, meta)
        ready = self._readiness(children, meta, applied.deployments)
        problem = rc.degradation(children, uid=meta.get("uid"))
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
            ready=ready, now=now, problem=problem)
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
        post_event(body, "Normal", "Applied", message)

    def _record_edit(self, meta: Mapping[str, Any], body: kopf.Body) -> None:
        """A spec edited beside the store (kubectl, GitOps) becomes the overlay's next
        revision in its history at once (author ``kubernetes``), not at the next SDK write."""
        from overlay_sdk.store.kubernetes import pending_edit

        if pending_edit(body) is None:
            return
        namespace, name = str(meta.get("namespace")), str(meta.get("name"))
        try:
            self.store(namespace).settle(name)
        except OverlayError as err:  # the next reconcile or SDK write records it
            _log.warning("recording the edit of %s/%s in its history failed: %s",
                         namespace, name, err)

    def _failed(self, body: kopf.Body, status: Mapping[str, Any], patch: kopf.Patch,
                failure: rc.Failure, generation: int | None, retry: int,
                now: datetime) -> NoReturn:
        patch.status.update(rc.failed_status(status, failure, generation=generation, now=now))
        post_event(body, "Warning", failure.reason, failure.message)
        if failure.retry:
            raise kopf.TemporaryError(str(failure), delay=rc.backoff(
                retry, min_delay=failure.min_delay))
        raise kopf.PermanentError(str(failure))

    @staticmethod
    def _readiness(children: Iterable[rc.Child], meta: Mapping[str, Any],
                   expected: Iterable[str]) -> rc.Readiness:
        return rc.readiness(children, uid=meta.get("uid"), expected=expected)

    # readiness

    async def on_readiness(self, *, body: kopf.Body, meta: kopf.Meta, status: kopf.Status,
                           **kwargs: Any) -> None:
        """The readiness timer: ``Ready`` and ``Degraded`` follow the overlay's Deployments
        (a Deployment that failed makes the overlay ``Degraded`` with its reason, and a
        Warning Event; ``Recovered`` when none fails any more)."""
        namespace, name, uid = meta.get("namespace"), meta.get("name"), meta.get("uid")
        with self._lock:
            known = self._expected.get((str(namespace), str(name)))
        if known is None or known[0] != uid:
            return  # not reconciled by this operator yet
        children = self._children(kwargs, meta)
        ready = self._readiness(children, meta, known[1])
        new = rc.ready_status(status, ready, generation=meta.get("generation"),
                              now=datetime.now(UTC),
                              problem=rc.degradation(children, uid=uid))
        if new is None:
            return
        # before the patch: a timer's body is a live view, its own change arrives meanwhile
        news = rc.health_event(status, new)
        # a precondition on the resourceVersion read: never overwrite a newer reconcile
        written = await asyncio.to_thread(self.cluster.patch_status, str(namespace), str(name),
                                          new, meta.get("resourceVersion"))
        if written and news is not None:
            post_event(body, *news)

    # revisions that leave the spec as it was

    @staticmethod
    def revision_update(meta: Mapping[str, Any], status: Mapping[str, Any],
                        now: datetime | None = None) -> dict[str, Any] | None:
        """The status naming the store's revision on the CR, when it names an older one
        although the current generation is applied (see :func:`rc.revision_status`)."""
        if meta.get("deletionTimestamp"):
            return None
        return rc.revision_status(status, revision=rc.revision_of(meta.get("annotations")),
                                  generation=meta.get("generation"),
                                  now=now or datetime.now(UTC))

    async def on_revision(self, *, meta: kopf.Meta, status: kopf.Status, patch: kopf.Patch,
                          **_: Any) -> None:
        """The revision handler (every watch event whose revision the status lags): a
        revision that did not change the spec (labels, annotations, or a rival revision with
        the same spec) bumps no generation, so no reconcile runs; the status names it."""
        new = self.revision_update(meta, status)
        if new is not None:
            patch.status.update(new)

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
        post_event(body, "Normal", "HistoryKept",
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
            post_event(body, "Warning", ALERT_REASONS.get(alert.kind, "Alert"), alert.message)


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
