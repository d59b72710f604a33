"""An emulated Kubernetes API server for tests: kmock 0.8 plus what our code relies on.

No real kube-apiserver runs on our machines (see ``../shared/notes/kubernetes-testing.md``).
:class:`ApiServer` is kmock's in-memory ``KubernetesEmulator`` with every resource overlay-sdk
touches declared (the ``AIOverlay`` CRD read from ``deploy/crds/``, namespaces, events,
ControllerRevisions and the rest of ``apps/v1``, Services, HPAs, Istio's VirtualService and
DestinationRule, the CRD kind itself) and the parts of API-server behaviour that kmock leaves
out and our code depends on:

- every object gets ``metadata.uid``, ``creationTimestamp``, ``generation`` (1, then +1 on
  each change outside ``metadata`` and ``status``) and a ``resourceVersion`` from one
  cluster-wide counter; a list answers with the counter as its ``resourceVersion``;
- optimistic concurrency: a PATCH carrying ``metadata.resourceVersion`` that is not the
  stored one answers 409 ``Conflict``, as does a DELETE whose ``preconditions`` (uid,
  resourceVersion) do not hold; a POST of an existing name answers 409 ``AlreadyExists``;
- the ``status`` subresource: a PATCH of ``.../status`` changes only ``status``, a PATCH of
  the object itself never changes ``status`` (and neither bumps ``generation`` for status);
- server-side apply (``application/apply-patch+yaml``) of a missing object creates it
  (kmock answers 404); an existing one is merged as a plain dict, except that a field the
  same ``fieldManager`` applied last time and leaves out now is removed (what an API server
  does with a field only that manager owns: the operator's Deployment losing ``replicas`` to
  an autoscaler, or an annotation it stopped rendering). There is no other field ownership:
  no conflicts, and a field set by someone else too is removed all the same;
- ``labelSelector`` (``k``, ``!k``, ``k=v``, ``k==v``, ``k!=v``, comma-separated) on lists
  and watches, and on watches ``resourceVersion`` (no initial ADDED burst for objects not
  newer than it) and ``timeoutSeconds`` (the server ends the stream);
- open watch streams end when the server stops (else its shutdown waits for them);
- routing in O(1) per reaction instead of O(recorded requests) (:func:`_member`): with
  plain kmock the thousandth request took tens of milliseconds.

Still not emulated: schema validation and ``fieldValidation`` (recorded, not enforced),
defaulting, admission, RBAC, namespace existence, garbage collection of
``ownerReferences``, PUT, JSON-patch preconditions, ``BOOKMARK`` events, 410 Gone (stage
one with ``server[kmock.action.WATCH][:1] << 410``), subresources other than ``status``.

Two ways to run one:

- :func:`emulated_api_server` (async context manager) in the running event loop, for code
  that is async itself (kopf in the same loop);
- :class:`ClusterThread` (sync context manager) in a background thread with its own loop,
  for synchronous code such as the official ``kubernetes`` client: ``cluster.api_client()``.

Every request is recorded (``list(server)``, :meth:`ApiServer.requests_to`,
:meth:`ClusterThread.requests`) with its method, path, query ``params`` and headers, for
assertions; ``text`` is the body as sent, ``data`` what the emulator stored (stamped).
Reactions work as in kmock: ``server["post", kmock.resource(AIOVERLAYS)] << 422 << {...}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import attrs
import kmock
import yaml
from kubernetes import client as k8s_client

__all__ = [
    "AIOVERLAYS",
    "CONTROLLER_REVISIONS",
    "CRDS",
    "CRD_FILE",
    "RESOURCES",
    "ApiServer",
    "ClusterThread",
    "api_client",
    "emulated_api_server",
    "selector_matches",
]

CRD_FILE = Path(__file__).resolve().parents[1] / "deploy" / "crds" / "aioverlay.yaml"
CRDS = "apiextensions.k8s.io/v1/customresourcedefinitions"
AIOVERLAYS = "overlays.aioverlay.dev/v1alpha1/aioverlays"
CONTROLLER_REVISIONS = "apps/v1/controllerrevisions"

_VERBS = {"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
T = TypeVar("T")


def _info(kind: str, *, namespaced: bool = True, subresources: Iterable[str] = (),
          shortnames: Iterable[str] = ()) -> kmock.ResourceInfo:
    return kmock.ResourceInfo(
        kind=kind, singular=kind.lower(), namespaced=namespaced, verbs=_VERBS,
        subresources=set(subresources), shortnames=set(shortnames),
    )


def _crd() -> dict[str, Any]:
    doc = yaml.safe_load(CRD_FILE.read_text(encoding="utf-8"))
    assert isinstance(doc, dict), f"{CRD_FILE} is not one YAML mapping"
    return doc


def _aioverlay_info(crd: Mapping[str, Any]) -> tuple[str, kmock.ResourceInfo]:
    spec = crd["spec"]
    names = spec["names"]
    version = next(v for v in spec["versions"] if v.get("storage"))
    info = kmock.ResourceInfo(
        kind=names["kind"], singular=names.get("singular", names["kind"].lower()),
        namespaced=spec.get("scope", "Namespaced") == "Namespaced", verbs=_VERBS,
        shortnames=set(names.get("shortNames", [])), categories=set(names.get("categories", [])),
        subresources=set(version.get("subresources", {})),
    )
    return f"{spec['group']}/{version['name']}/{names['plural']}", info


#: Every resource declared for discovery, keyed ``group/version/plural`` (``v1/...`` for core).
RESOURCES: dict[str, kmock.ResourceInfo] = {
    "v1/namespaces": _info("Namespace", namespaced=False, subresources={"status"}),
    "v1/events": _info("Event", shortnames={"ev"}),
    "events.k8s.io/v1/events": _info("Event", shortnames={"ev"}),
    "v1/services": _info("Service", subresources={"status"}, shortnames={"svc"}),
    "v1/configmaps": _info("ConfigMap", shortnames={"cm"}),
    "v1/serviceaccounts": _info("ServiceAccount", shortnames={"sa"}),
    "v1/pods": _info("Pod", subresources={"status"}, shortnames={"po"}),
    "apps/v1/deployments": _info("Deployment", subresources={"status", "scale"},
                                 shortnames={"deploy"}),
    "apps/v1/replicasets": _info("ReplicaSet", subresources={"status", "scale"},
                                 shortnames={"rs"}),
    "apps/v1/statefulsets": _info("StatefulSet", subresources={"status", "scale"},
                                  shortnames={"sts"}),
    "apps/v1/daemonsets": _info("DaemonSet", subresources={"status"}, shortnames={"ds"}),
    CONTROLLER_REVISIONS: _info("ControllerRevision"),
    "autoscaling/v2/horizontalpodautoscalers": _info(
        "HorizontalPodAutoscaler", subresources={"status"}, shortnames={"hpa"}),
    "policy/v1/poddisruptionbudgets": _info("PodDisruptionBudget", subresources={"status"},
                                            shortnames={"pdb"}),
    "coordination.k8s.io/v1/leases": _info("Lease"),
    "networking.istio.io/v1/virtualservices": _info("VirtualService", subresources={"status"},
                                                    shortnames={"vs"}),
    "networking.istio.io/v1/destinationrules": _info("DestinationRule", subresources={"status"},
                                                     shortnames={"dr"}),
    "networking.istio.io/v1/gateways": _info("Gateway", subresources={"status"},
                                             shortnames={"gw"}),
    CRDS: _info("CustomResourceDefinition", namespaced=False, subresources={"status"},
                shortnames={"crd", "crds"}),
}


# -- label selectors -----------------------------------------------------------------------


def _parse_selector(text: str | None) -> list[tuple[str, str, str | None]]:
    """``a=1,!b,c!=2`` -> [(op, key, value)], op one of = != exists !exists."""
    terms: list[tuple[str, str, str | None]] = []
    for raw in (text or "").split(","):
        term = raw.strip()
        if not term:
            continue
        if "!=" in term:
            key, value = term.split("!=", 1)
            terms.append(("!=", key.strip(), value.strip()))
        elif "==" in term or "=" in term:
            key, value = term.split("==", 1) if "==" in term else term.split("=", 1)
            terms.append(("=", key.strip(), value.strip()))
        elif term.startswith("!"):
            terms.append(("!exists", term[1:].strip(), None))
        elif " in " in term or " notin " in term:
            raise kmock.KubernetesError(
                400, "BadRequest", f"set-based selector {term!r} is not emulated")
        else:
            terms.append(("exists", term, None))
    return terms


def selector_matches(selector: str | None, obj: Mapping[str, Any]) -> bool:
    """Whether ``obj``'s labels satisfy an equality-based ``labelSelector``."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for op, key, value in _parse_selector(selector):
        if op == "=" and labels.get(key) != value:
            return False
        if op == "!=" and labels.get(key) == value:
            return False
        if op == "exists" and key not in labels:
            return False
        if op == "!exists" and key in labels:
            return False
    return True


def _merge(old: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: ``None`` removes a key, dicts merge, the rest replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(old) if isinstance(old, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge(result.get(key), value)
    return result


def _dropped(before: Any, now: Any) -> dict[str, Any]:
    """A merge patch removing what ``before`` (an earlier apply) set and ``now`` leaves out:
    leaves set to None, maps followed into (their other keys untouched); lists are atomic."""
    out: dict[str, Any] = {}
    if not isinstance(before, Mapping):
        return out
    for key, value in before.items():
        if key in ("status",):
            continue
        if isinstance(now, Mapping) and key in now:
            if isinstance(value, Mapping) and isinstance(now[key], Mapping):
                inner = _dropped(value, now[key])
                if inner:
                    out[key] = inner
        elif isinstance(value, Mapping) and value:
            out[key] = _dropped(value, {})
        else:
            out[key] = None
    return out


def _body(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What ``generation`` counts: everything outside ``metadata`` and ``status``."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def _replace(request: kmock.Request, **changes: Any) -> kmock.Request:
    """Change a recorded request in place: kmock routes a request only if it is the very
    object it recorded. ``data`` then holds what was stored; ``text`` keeps what was sent."""
    for field, value in changes.items():
        object.__setattr__(request, field, value)
    return request


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- the emulator ----------------------------------------------------------------------------


def _member(view: kmock.View, request: kmock.Request) -> bool:
    """Whether ``request`` is seen through ``view``, in O(length of the view chain).

    kmock answers ``request in view`` by walking every recorded request through the view's
    filters: O(requests) for each reaction tried on each request, which made the thousandth
    request take tens of milliseconds. Root, criteria filters and priorities (all that the
    emulator's own reactions and plain ``server[criteria] << payload`` use) are decided here;
    any other view (slices, groups, exclusions, streams) is asked the kmock way.
    """
    if isinstance(view, kmock.Root):
        return True
    if type(view) is kmock.Filter:
        return _member(view._source, request) and bool(view.criteria(request))
    if type(view) is kmock.Priority:
        return _member(view._source, request)
    return request in view


class _FastRouting(kmock.RawHandler):
    """RawHandler._handle of kmock 0.8 with :func:`_member` instead of ``in``."""

    __slots__ = ()

    async def _handle(self, request: kmock.Request) -> Any:
        priorities = [payload.priorities for payload in self._payloads]
        width = max((len(p) for p in priorities), default=0)
        keys = [tuple(-p for p in priority) + (0,) * (width - len(priority))
                for priority in priorities]
        order = sorted(range(len(keys)), key=lambda index: keys[index])
        for payload in [self._payloads[index] for index in order]:
            if _member(payload._source, request) and not payload._disabled.is_set():
                try:
                    return await payload(request)
                except kmock.ReactionMismatchError:  # mismatch or depletion
                    payload._disabled.set()
                except NotImplementedError:  # matched, but nothing to respond with
                    pass
        # (kmock's own protocol for "no reaction defined": its server answers it; this is
        # the emulator's routing, not a stub of the product)
        raise NotImplementedError(
            "Undefined server behaviour: no reaction matching the request is defined."
        )


@attrs.define(kw_only=True)
class ApiServer(kmock.KubernetesEmulator, _FastRouting):
    """kmock's KubernetesEmulator with uids, resourceVersions, generations, conflicts,
    the status subresource, create-on-apply and label selectors (see the module docstring).

    ``resource_version`` is the cluster-wide counter (the last resourceVersion handed out).
    """

    resource_version: int = 1000
    _write_lock: asyncio.Lock = attrs.field(factory=asyncio.Lock, init=False)
    _stopping: asyncio.Event = attrs.field(factory=asyncio.Event, init=False)
    # (resource, namespace, name, fieldManager) -> (uid, what that manager applied last)
    _applied: dict[tuple[Any, ...], tuple[str, Any]] = attrs.field(factory=dict, init=False)

    def stop_watches(self) -> None:
        """End every open watch stream (the server cannot shut down while one is open)."""
        self._stopping.set()

    def _next_rv(self) -> str:
        self.resource_version += 1
        return str(self.resource_version)

    def _has_status(self, resource: kmock.resource) -> bool:
        for declared in self.resources:
            if declared == resource:
                return "status" in self.resources[declared].subresources
        return False

    @staticmethod
    def _what(resource: kmock.resource, name: str | None) -> str:
        group = f".{resource.group}" if resource.group else ""
        return f'{resource.plural}{group} "{name}"'

    def _stored(self, key: tuple[kmock.resource, str | None, str]) -> Any:
        if key in self.objects and not self.objects[key].deleted:
            return self.objects[key]
        return None

    async def _handle(self, request: kmock.Request) -> Any:
        if request.resource is None or request.action not in (
            kmock.action.CREATE, kmock.action.UPDATE, kmock.action.DELETE
        ):
            return await super()._handle(request)
        async with self._write_lock:  # check-and-write is atomic across requests
            return await super()._handle(self._prepare(request))

    def _prepare(self, request: kmock.Request) -> kmock.Request:
        resource = request.resource
        assert resource is not None
        if request.action == kmock.action.CREATE:
            return self._prepare_create(request, request.data)
        key = (resource, request.namespace, request.name or "")
        stored = self._stored(key)
        if request.action == kmock.action.DELETE:
            if stored is not None:
                preconditions = (request.data or {}).get("preconditions") or {}
                meta = stored.get("metadata", {})
                for field, have in (("uid", meta.get("uid")),
                                    ("resourceVersion", meta.get("resourceVersion"))):
                    want = preconditions.get(field)
                    if want is not None and str(want) != str(have):
                        raise kmock.KubernetesError(
                            409, "Conflict", f"Operation cannot be fulfilled on "
                            f"{self._what(resource, request.name)}: Precondition failed: "
                            f"{field} in precondition: {want}, {field} in object meta: {have}")
            return request
        # UPDATE, i.e. PATCH
        content_type = request.headers.get("Content-Type", "")
        if not isinstance(request.data, Mapping):
            raise kmock.KubernetesError(
                415, "UnsupportedMediaType", "this emulator applies merge patches and "
                f"server-side apply only, not {content_type or 'this body'}")
        applying = content_type.startswith("application/apply-patch") \
            and not request.subresource
        manager = (*key, request.params.get("fieldManager", ""))
        if stored is None:
            if applying:
                data = dict(request.data)
                data.setdefault("metadata", {})
                data["metadata"] = {**data["metadata"], "name": request.name}
                _replace(request, action=kmock.action.CREATE)
                created = self._prepare_create(request, data)
                self._applied[manager] = (created.data["metadata"]["uid"],
                                          copy.deepcopy(dict(request.data)))
                return created
            return request  # kmock answers 404
        patch = copy.deepcopy(dict(request.data))
        old = stored.last.raw
        old_meta = old.get("metadata", {})
        want = (patch.get("metadata") or {}).get("resourceVersion")
        if want is not None and str(want) != str(old_meta.get("resourceVersion")):
            raise kmock.KubernetesError(
                409, "Conflict", f"Operation cannot be fulfilled on "
                f"{self._what(resource, request.name)}: the object has been modified; please "
                "apply your changes to the latest version and try again")
        if applying:
            uid = str(old_meta.get("uid"))
            before = self._applied.get(manager)
            if before is not None and before[0] == uid:
                patch = _merge(_dropped(before[1], patch), patch)
            self._applied[manager] = (uid, copy.deepcopy(dict(request.data)))
        meta_patch = dict(patch.get("metadata") or {})
        meta_patch.pop("resourceVersion", None)
        for frozen in ("uid", "creationTimestamp", "generation", "name", "namespace"):
            meta_patch.pop(frozen, None)
        if request.subresource == "status":
            patch = {"status": patch.get("status")}
        elif request.subresource:  # scale and others: as kmock does (merged into the object)
            return request
        else:
            if self._has_status(resource):
                patch.pop("status", None)
            if meta_patch:
                patch["metadata"] = meta_patch
            else:
                patch.pop("metadata", None)
        after = _merge(old, patch)
        if after == old:
            return _replace(request, data={})
        generation = int(old_meta.get("generation") or 1)
        if _body(after) != _body(old):
            generation += 1
        patch["metadata"] = {**(patch.get("metadata") or {}),
                             "resourceVersion": self._next_rv(), "generation": generation}
        return _replace(request, data=patch)

    def _prepare_create(self, request: kmock.Request, body: Any) -> kmock.Request:
        resource = request.resource
        assert resource is not None
        data = copy.deepcopy(dict(body or {}))
        meta = dict(data.get("metadata") or {})
        name = meta.get("name")
        if not name:
            raise kmock.KubernetesError(422, "Invalid", "metadata.name: Required value")
        namespace = request.namespace or meta.get("namespace")
        if self._stored((resource, namespace, name)) is not None:
            raise kmock.KubernetesError(
                409, "AlreadyExists", f"{self._what(resource, name)} already exists")
        if namespace is not None:
            meta["namespace"] = namespace
        meta.update(uid=str(uuid.uuid4()), resourceVersion=self._next_rv(), generation=1,
                    creationTimestamp=_now())
        data["metadata"] = meta
        if self._has_status(resource):
            data.pop("status", None)
        return _replace(request, data=data, namespace=namespace)

    async def _serve_create(self, request: kmock.Request) -> Any:
        result = await super()._serve_create(request)
        return kmock.Response(status=201, payload=result)

    async def _serve_list(self, request: kmock.Request) -> Any:
        result = dict(await super()._serve_list(request))
        selector = request.params.get("labelSelector")
        result["items"] = [o for o in result["items"] if selector_matches(selector, o)]
        result["metadata"] = {"resourceVersion": str(self.resource_version)}
        return result

    async def _serve_watch(self, request: kmock.Request) -> AsyncIterator[Any]:
        selector = request.params.get("labelSelector")
        since_text = request.params.get("resourceVersion") or ""
        since = int(since_text) if since_text.isdigit() and since_text != "0" else None
        timeout = request.params.get("timeoutSeconds")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(timeout) if timeout else None
        source = aiter(super()._serve_watch(request))
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            while True:
                step: asyncio.Future[Any] = asyncio.ensure_future(anext(source))
                wait = None if deadline is None else max(0.0, deadline - loop.time())
                await asyncio.wait({step, stopping}, timeout=wait,
                                   return_when=asyncio.FIRST_COMPLETED)
                if not step.done():  # timeoutSeconds passed, or the server stops
                    step.cancel()
                    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                        await step
                    return
                try:
                    item = step.result()
                except StopAsyncIteration:
                    return
                if isinstance(item, Mapping):
                    obj = item.get("object") or {}
                    if not selector_matches(selector, obj):
                        continue
                    rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
                    if (since is not None and item.get("type") == "ADDED" and rv.isdigit()
                            and int(rv) <= since):
                        continue
                yield item
        finally:
            stopping.cancel()
            with contextlib.suppress(Exception):
                await source.aclose()

    def declare(self, *, namespaces: Iterable[str] = ("default",)) -> None:
        """Declare :data:`RESOURCES` and the AIOverlay CRD; create ``namespaces`` and the CRD
        object (so that kopf and ``kubectl``-like discovery find them)."""
        crd = _crd()
        plural, info = _aioverlay_info(crd)
        for key, value in {**RESOURCES, plural: info}.items():
            self.resources[key] = value
        self.objects[CRDS, None, crd["metadata"]["name"]] = {
            **crd, "metadata": {**crd["metadata"], "uid": str(uuid.uuid4()),
                                "resourceVersion": self._next_rv(), "generation": 1},
        }
        for ns in namespaces:
            self.objects["v1/namespaces", None, ns] = {
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": ns, "uid": str(uuid.uuid4()),
                             "resourceVersion": self._next_rv()},
                "status": {"phase": "Active"},
            }

    def requests_to(self, resource: str, *, method: str | None = None) -> list[kmock.Request]:
        """Recorded requests to ``resource`` (``group/version/plural``), optionally one method."""
        wanted = kmock.resource(resource)
        return [r for r in list(self) if r.resource == wanted
                and (method is None or r.method.value == method.upper())]


@contextlib.asynccontextmanager
async def emulated_api_server(
    *, namespaces: Iterable[str] = ("default",)
) -> AsyncIterator[ApiServer]:
    """An :class:`ApiServer` listening on a free local port in the running loop;
    ``str(server.url)`` is its address."""
    async with ApiServer() as server, kmock.Server(server):
        server.declare(namespaces=namespaces)
        try:
            yield server
        finally:
            server.stop_watches()


def api_client(url: str) -> k8s_client.ApiClient:
    """An official-client ``ApiClient`` talking plain HTTP to ``url`` (no credentials)."""
    configuration = k8s_client.Configuration(host=url.rstrip("/"))
    return k8s_client.ApiClient(configuration)


class ClusterThread:
    """An :class:`ApiServer` in a background thread with its own event loop.

    ``with ClusterThread() as cluster:`` then ``cluster.url``, ``cluster.server`` (the
    emulator: ``.objects``, ``.resources``, recorded requests), ``cluster.api_client()``,
    ``cluster.call(coroutine_function)`` to run something in the server's loop.
    """

    def __init__(self, *, namespaces: Iterable[str] = ("default",)) -> None:
        self.namespaces = tuple(namespaces)
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._server: ApiServer | None = None
        self._thread = threading.Thread(target=self._run, name="kmock-api-server", daemon=True)
        self._clients: list[k8s_client.ApiClient] = []

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            async with emulated_api_server(namespaces=self.namespaces) as server:
                self._server = server
                self._ready.set()
                await self._stop.wait()

        try:
            asyncio.run(main())
        except BaseException as err:  # reported by __enter__ or __exit__
            self._failure = err
        finally:
            self._ready.set()

    def __enter__(self) -> ClusterThread:
        self._thread.start()
        self._ready.wait(30)
        if self._server is None:
            raise RuntimeError(f"the emulated API server did not start: {self._failure!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        for client in self._clients:
            client.close()
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        if self._thread.is_alive():
            raise RuntimeError("the emulated API server did not stop within 30 s")

    @property
    def server(self) -> ApiServer:
        assert self._server is not None, "use ClusterThread as a context manager"
        return self._server

    @property
    def url(self) -> str:
        return str(self.server.url).rstrip("/")

    def api_client(self) -> k8s_client.ApiClient:
        """A new client for this server, closed when the cluster stops."""
        client = api_client(self.url)
        self._clients.append(client)
        return client

    def call(self, fn: Callable[[], Coroutine[Any, Any, T]], timeout: float = 30) -> T:
        """Run ``fn()`` in the server's loop and return its result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(fn(), self._loop).result(timeout)

    def requests(self) -> list[kmock.Request]:
        """Every request served so far, in order."""
        return list(self.server)
