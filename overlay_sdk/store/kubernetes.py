"""The cluster spec store: overlays as ``AIOverlay`` custom resources, their revisions as
``ControllerRevision`` objects, through the official ``kubernetes`` client.

``KubernetesStore("team-a")`` (or ``KubernetesStore.from_url("k8s://CONTEXT/team-a")``)
keeps the rules of :mod:`overlay_sdk.store.base` with these objects in one namespace:

- **the AIOverlay CR** ``<name>`` is what the operator reconciles, and the *commit point*:
  its ``spec`` is the overlay's spec, its labels and annotations the overlay's own, plus two
  store annotations: ``overlays.aioverlay.dev/revision`` (the current revision number) and
  ``overlays.aioverlay.dev/record`` (that revision as JSON: action, the whole document,
  author, time, message, changes). A revision is committed by one write of the CR: a POST
  for a new overlay, else a merge PATCH carrying the ``metadata.resourceVersion`` that was
  read, so that the API server refuses it (409) if the CR changed in between.
- **a 409 on that PATCH** is followed by a fresh read. If the revision recorded on the CR is
  unchanged, what changed was no revision: a status update by the operator (``generation``
  unchanged), kopf's annotations or finalizers, or a spec edited beside the store (see
  below); the write is retried after a short backoff. If another revision was committed,
  the ``expected_revision`` check runs again on the fresh state:
  :class:`~overlay_sdk.errors.ConflictError` naming the overlay, the expected and the
  current revision, or with ``expected_revision=None`` a write on top. The revision, not
  the generation, decides: a rival revision with the same spec leaves the generation
  unchanged and is still a conflict.
- **the history**: right after each commit the store writes the revision's immutable copy, a
  ControllerRevision ``<name>.r<N>`` (``revision: N``; ``data``: the same JSON as the
  record annotation; labels ``overlays.aioverlay.dev/overlay=<name>``, ``.../action``,
  ``.../revision``). A revision of a live overlay is *owned* by its CR (``ownerReferences``
  with the CR's uid, ``controller: true``), as Kubernetes' own controllers own theirs.
- **a delete** commits a tombstone record on the CR (same PATCH as above), writes the
  tombstone ControllerRevision *without* an owner, then *releases* the overlay's revisions
  (removes the CR from their ``ownerReferences``) and only then deletes the CR (with a uid
  precondition), so that Kubernetes' garbage collector, which deletes what a deleted object
  owns, keeps the whole history. Re-creating the overlay continues the numbering from the
  tombstone; the new CR (new uid) owns the new revisions.
- **edits beside the store** (``kubectl edit``/``apply``, a GitOps sync): a CR whose spec
  differs from its record stands for the next revision (author ``kubernetes``, the time
  from the CR's ``managedFields``): reads show it, and the next write first records it on
  the CR (and in the history), so that a write based on the revision before the edit is a
  :class:`~overlay_sdk.errors.ConflictError` instead of silently undoing it. A spec the
  SDK refuses is not recorded (the operator reports it as ``Degraded``); the next write
  replaces it.
- **crash safety**: every later write first repairs what an interrupted writer left: the
  ControllerRevision of the CR's current record if missing, an unfinished delete (a CR still
  carrying a tombstone record), and a deletion made outside overlay-sdk (``kubectl delete``:
  the CR is gone or terminating while the history ends with an apply) by recording a
  tombstone for it (author ``kubernetes``). Reads never write: :meth:`history` shows the
  CR's current record even before its copy exists. :meth:`settle` runs the repair on demand
  (the operator calls it when a CR is deleted, so that history survives ``kubectl delete``).
- **watch** follows the ControllerRevisions with the API's watch (a list, then a watch from
  the list's ``resourceVersion``, again after a 410 or the end of each watch), or by polling
  lists where the server refuses watches. ``WatchEvent.seq`` is the ControllerRevision's
  creation ``resourceVersion`` (kept in the annotation ``overlays.aioverlay.dev/seq`` when
  its owner reference is released, the only change ever made to it), so replay and live
  events agree on one order; it assumes etcd-style integer resourceVersions, as every
  conformant API server has. A revision is delivered once its ControllerRevision exists:
  right after its commit, or, if its writer died in between, when the next write (or
  :meth:`settle`) repairs it.

Every write is sent with ``fieldValidation=Strict``: an API server whose CRD is older than
this SDK refuses unknown fields instead of dropping them. The store needs, in its namespace:
aioverlays get/list/watch/create/patch/delete and controllerrevisions
get/list/watch/create/patch.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import unquote

import urllib3
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config import incluster_config, kube_config
from kubernetes.watch.watch import iter_resp_lines

from overlay_sdk.diff import describe_change
from overlay_sdk.errors import BackendError, ConflictError, NotFoundError, ValidationError
from overlay_sdk.home import default_author
from overlay_sdk.k8s.api import PLURAL, api_message, in_pod, kubeconfig_files
from overlay_sdk.spec import API_GROUP, API_VERSION, DNS_LABEL, KIND, AIOverlay, parse_overlay
from overlay_sdk.store.base import (
    Action,
    Revision,
    WatchEvent,
    check_write_args,
    import_check,
    to_import,
)

__all__ = [
    "ACTION_LABEL",
    "EDIT_MESSAGE",
    "EXTERNAL_AUTHOR",
    "EXTERNAL_MESSAGE",
    "FIELD_MANAGER",
    "OVERLAY_LABEL",
    "PLURAL",
    "RECORD_ANNOTATION",
    "REVISION_ANNOTATION",
    "REVISION_LABEL",
    "SEQ_ANNOTATION",
    "URL_SCHEME",
    "KubernetesStore",
    "parse_url",
    "pending_edit",
    "revision_object_name",
]

URL_SCHEME = "k8s"
FIELD_MANAGER = "overlay-sdk"
REVISION_ANNOTATION = f"{API_GROUP}/revision"
RECORD_ANNOTATION = f"{API_GROUP}/record"
SEQ_ANNOTATION = f"{API_GROUP}/seq"
OVERLAY_LABEL = f"{API_GROUP}/overlay"
ACTION_LABEL = f"{API_GROUP}/action"
REVISION_LABEL = f"{API_GROUP}/revision"
MANAGED_BY = {"app.kubernetes.io/managed-by": FIELD_MANAGER}
_RESERVED = (REVISION_ANNOTATION, RECORD_ANNOTATION)

#: who a deletion made outside overlay-sdk (kubectl delete) is recorded as
EXTERNAL_AUTHOR = "kubernetes"
EXTERNAL_MESSAGE = "deleted outside overlay-sdk (the AIOverlay was removed from the cluster)"
#: the message of a spec edit made beside the store (kubectl edit/apply, a GitOps sync)
EDIT_MESSAGE = "edited outside overlay-sdk (the AIOverlay's spec was changed in the cluster)"

# The pod's service account, for in-cluster config (module constants so tests can point
# them elsewhere).
SERVICE_TOKEN_FILE = incluster_config.SERVICE_TOKEN_FILENAME
SERVICE_CA_FILE = incluster_config.SERVICE_CERT_FILENAME

_STRICT = "Strict"
_ATTEMPTS = 12  # writes refused by a 409 (status updates, racing writers) before giving up
_CONNECT_TIMEOUT = 10.0
_WATCH_CHUNK = 60.0  # seconds one watch request stays open at most
_MAX_INT = 2**63
_DNS = re.compile(DNS_LABEL)
_WATCH_REFUSED = (403, 405, 501)  # the server will not watch: poll lists instead


def revision_object_name(name: str, number: int) -> str:
    """The ControllerRevision holding revision ``number`` of overlay ``name``."""
    return f"{name}.r{number}"


# -- URL and client configuration ----------------------------------------------------------


def parse_url(url: str) -> tuple[str | None, str]:
    """``k8s://CONTEXT/NAMESPACE`` -> (context or None for the default, namespace).

    CONTEXT may be empty (``k8s:///team-a``: the kubeconfig's current context, or the pod's
    service account in a cluster), percent-encoded, and may itself contain ``/``
    (``k8s://arn:aws:eks:eu-west-1:1:cluster/prod/team-a``): the namespace is the last part.
    ValidationError names the part at fault (``url``, ``url.scheme``, ``url.namespace``).
    """
    hint = "give k8s://CONTEXT/NAMESPACE (k8s:///NAMESPACE for the current context)"
    if not isinstance(url, str) or not url.strip():
        raise ValidationError.at("url", f"{hint}, got {url!r}")
    scheme, sep, rest = url.strip().partition("://")
    if not sep:
        raise ValidationError.at("url", f"{url!r} is not a cluster address: {hint}")
    if scheme.lower() != URL_SCHEME:
        raise ValidationError.at(
            "url.scheme", f"{scheme!r} in {url!r} is not a cluster address scheme: {hint}"
        )
    if "?" in rest or "#" in rest:
        raise ValidationError.at(
            "url", f"{url!r} has a query or fragment; a cluster address has none: {hint}"
        )
    context, slash, namespace = rest.rpartition("/")
    if not slash:
        raise ValidationError.at(
            "url.namespace", f"{url!r} names no namespace: give k8s://{rest}/NAMESPACE"
        )
    _check_namespace(namespace, field="url.namespace", where=f" in {url!r}")
    return (unquote(context) or None), namespace


def _check_namespace(namespace: object, *, field: str, where: str = "") -> str:
    if not isinstance(namespace, str) or not namespace:
        raise ValidationError.at(
            field, f"give a namespace such as 'team-a'{where}, got {namespace!r}"
        )
    if len(namespace) > 63 or not _DNS.match(namespace):
        raise ValidationError.at(
            field, f"{namespace!r}{where} is not a namespace name: at most 63 lowercase "
            "letters, digits and '-', starting and ending with a letter or digit"
        )
    return namespace


def _client_for(context: str | None, *, field: str) -> tuple[k8s.ApiClient, str]:
    """An ApiClient for ``context`` (None: the current context, else in-cluster config),
    and a description of where it points. ValidationError at ``field`` when it cannot be."""
    setting, files = kubeconfig_files()
    if context is None and not files and in_pod(SERVICE_TOKEN_FILE):
        configuration = k8s.Configuration()
        try:
            loader = incluster_config.InClusterConfigLoader(  # type: ignore[no-untyped-call]
                token_filename=SERVICE_TOKEN_FILE, cert_filename=SERVICE_CA_FILE
            )
            loader.load_and_set(configuration)  # type: ignore[no-untyped-call]
        except (k8s_config.ConfigException, OSError) as err:
            raise ValidationError.at(
                field, f"no context given, no kubeconfig, and the pod's service account "
                f"cannot be used: {err}"
            ) from None
        return k8s.ApiClient(configuration), "in-cluster service account"
    if not files:
        raise ValidationError.at(
            field, f"no kubeconfig found ({setting}) and not running in a pod: set KUBECONFIG, "
            "or run where kubectl works"
        )
    try:
        merged = kube_config.KubeConfigMerger(setting).config  # type: ignore[no-untyped-call]
        config = getattr(merged, "value", merged) or {}
        names = [str(getattr(c, "value", c).get("name")) for c in config.get("contexts") or []]
        current = config.get("current-context")
    except (k8s_config.ConfigException, OSError, ValueError, AttributeError,
            yaml.YAMLError) as err:
        raise ValidationError.at(field, f"cannot read the kubeconfig {setting}: {err}") from None
    if context is None:
        if not current:
            raise ValidationError.at(
                field, f"the kubeconfig {setting} has no current context: name one in the "
                f"address, k8s://CONTEXT/NAMESPACE (its contexts: {', '.join(names) or 'none'})"
            )
        context = str(current)
    elif context not in names:
        raise ValidationError.at(
            field, f"context {context!r} is not in the kubeconfig {setting}; its contexts are: "
            f"{', '.join(names) or 'none'}"
        )
    try:
        api_client = k8s_config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=setting, context=context, persist_config=False
        )
    except (k8s_config.ConfigException, OSError, ValueError) as err:
        raise ValidationError.at(
            field, f"context {context!r} of {setting} cannot be used: {err}"
        ) from None
    return api_client, f"context {context!r}"


# -- records: a revision as JSON (CR annotation and ControllerRevision data) -----------------


def _record_data(rev: Revision) -> dict[str, Any]:
    return {
        "name": rev.name,
        "revision": rev.revision,
        "action": rev.action,
        "overlay": None if rev.overlay is None else rev.overlay.to_dict(),
        "author": rev.author,
        "createdAt": rev.created_at.isoformat(),
        "message": rev.message,
        "changes": rev.changes,
    }


def _revision_of(data: Any, where: str) -> Revision:
    try:
        if not isinstance(data, Mapping):
            raise ValueError(f"a record is a JSON object, got {type(data).__name__}")
        number = data["revision"]
        action = data["action"]
        if isinstance(number, bool) or not isinstance(number, int) or number < 1:
            raise ValueError(f"revision {number!r} is not a positive integer")
        if action not in ("apply", "delete"):
            raise ValueError(f"action {action!r} is neither 'apply' nor 'delete'")
        document = data.get("overlay")
        if (document is None) != (action == "delete"):
            raise ValueError(f"action {action} with {'no ' if document is None else ''}document")
        created_at = datetime.fromisoformat(str(data["createdAt"]))
        if created_at.tzinfo is None:
            raise ValueError("createdAt has no timezone")
        fields = [data["name"], data["author"], data["message"], data["changes"]]
        if not all(isinstance(f, str) for f in fields):
            raise ValueError("name, author, message and changes are strings")
        overlay = None if document is None else parse_overlay(document)
    except (KeyError, TypeError, ValueError, ValidationError) as err:
        raise BackendError(
            f"{where} does not read as an overlay revision: {err!s}; was it written by "
            "another overlay-sdk version, or edited by hand?"
        ) from err
    return Revision(
        name=str(data["name"]),
        revision=number,
        action=cast(Action, action),
        overlay=overlay,
        author=str(data["author"]),
        created_at=created_at.astimezone(UTC),
        message=str(data["message"]),
        changes=str(data["changes"]),
    )


def pending_edit(obj: Mapping[str, Any]) -> Revision | None:
    """The revision an AIOverlay object stands for when its spec was edited beside the store
    and not recorded yet (the operator then calls :meth:`KubernetesStore.settle`); None
    when its spec is its record's, or it carries no (readable) record. No I/O."""
    text = (_meta(obj).get("annotations") or {}).get(RECORD_ANNOTATION)
    if not isinstance(text, str) or _meta(obj).get("deletionTimestamp"):
        return None
    try:
        record = _revision_of(json.loads(text), f"AIOverlay {_meta(obj).get('name')!r}")
    except (ValueError, BackendError):
        return None
    return _edit_of(obj, record) if record.action == "apply" else None


def _edit_of(obj: Mapping[str, Any], record: Revision) -> Revision | None:
    """The revision after ``record`` that a CR whose spec was changed beside the store
    (kubectl, GitOps) stands for; None if its spec is the record's, or if it is not a valid
    overlay spec (the operator reports that as Degraded; the next write replaces it)."""
    if record.overlay is None:
        return None
    base = record.overlay.to_dict()
    spec = obj.get("spec")
    if spec == base["spec"]:
        return None
    try:
        edited = parse_overlay({**base, "spec": spec})
    except ValidationError:
        return None
    if edited.spec == record.overlay.spec:  # the same spec, spelled with defaults
        return None
    return Revision(
        name=record.name, revision=record.revision + 1, action="apply", overlay=edited,
        author=EXTERNAL_AUTHOR, created_at=_edited_at(obj), message=EDIT_MESSAGE,
        changes=describe_change(base, edited.to_dict()),
    )


def _edited_at(obj: Mapping[str, Any]) -> datetime:
    """When another field manager last wrote the CR's spec (its managedFields), else now."""
    times = []
    for entry in _meta(obj).get("managedFields") or []:
        if not isinstance(entry, Mapping) or entry.get("manager") == FIELD_MANAGER:
            continue
        if "f:spec" in (entry.get("fieldsV1") or {}) and entry.get("time"):
            with contextlib.suppress(TypeError, ValueError):
                times.append(datetime.fromisoformat(str(entry["time"]).replace("Z", "+00:00")))
    stamped = [t.astimezone(UTC) for t in times if t.tzinfo is not None]
    return max(stamped) if stamped else datetime.now(UTC)


def _merge_diff(old: Any, new: Any) -> Any:
    """A JSON merge patch (RFC 7386) turning ``old`` into ``new``: removed keys are None."""
    if not isinstance(old, Mapping) or not isinstance(new, Mapping):
        return new
    patch: dict[str, Any] = {k: None for k in old if k not in new}
    for key, value in new.items():
        if key not in old:
            patch[key] = value
        elif old[key] != value:
            patch[key] = _merge_diff(old[key], value)
    return patch


def _meta(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _int_rv(value: object, what: str) -> int:
    text = str(value or "")
    if not text.isdigit():
        raise BackendError(
            f"{what} has resourceVersion {value!r}, not an integer: the store's watch needs an "
            "API server with etcd-style (integer) resourceVersions"
        )
    return int(text)


@dataclass(frozen=True)
class _Cr:
    """An AIOverlay custom resource as read, with the revision record it carries."""

    obj: dict[str, Any]
    record: Revision | None  # None: not written by overlay-sdk
    edit: Revision | None = None  # the spec edited beside the store, as the next revision

    @property
    def current(self) -> Revision | None:
        """The CR's revision: its record, or the edit made on top of it."""
        return self.edit or self.record

    @property
    def rv(self) -> str:
        return str(_meta(self.obj).get("resourceVersion") or "")

    @property
    def uid(self) -> str:
        return str(_meta(self.obj).get("uid") or "")

    @property
    def terminating(self) -> bool:
        return bool(_meta(self.obj).get("deletionTimestamp"))

    @property
    def live(self) -> Revision | None:
        """The current revision, if the CR holds a live one."""
        if self.record is None or self.record.action != "apply" or self.terminating:
            return None
        return self.current


@dataclass(frozen=True)
class _State:
    """What the store knows of one overlay before a write, after repairs."""

    cr: _Cr | None  # the CR to patch (None: absent, or gone once a pending delete finishes)
    live: Revision | None  # the current live revision
    latest: int  # the last revision number written (tombstones included), 0 if none
    note: str  # why the overlay is not live ("deleted at revision 4"), for messages


class KubernetesStore:
    """Overlays of one namespace as AIOverlay custom resources (see the module docstring).

    ``api_client`` is an official-client ``ApiClient`` (not closed by :meth:`close`); without
    one the store builds its own from the kubeconfig ``context`` (None: the current context,
    or the pod's service account when there is no kubeconfig). Safe to share between threads.
    """

    def __init__(
        self,
        namespace: str,
        api_client: k8s.ApiClient | None = None,
        *,
        context: str | None = None,
        poll_interval: float = 1.0,
    ) -> None:
        self.namespace = _check_namespace(namespace, field="namespace")
        if context is not None and (not isinstance(context, str) or not context):
            raise ValidationError.at("context", f"give a kubeconfig context name, got {context!r}")
        if api_client is not None and context is not None:
            raise ValidationError.at(
                "context", "give an api_client or a context, not both (the client already "
                "says where it connects)"
            )
        if isinstance(poll_interval, bool) or not isinstance(poll_interval, int | float) or \
                poll_interval <= 0:
            raise ValidationError.at(
                "poll_interval", f"give seconds > 0, got {poll_interval!r}"
            )
        self.context = context
        self.poll_interval = float(poll_interval)
        self._owns_client = api_client is None
        if api_client is None:
            api_client, self._target = _client_for(context, field="context")
        else:
            self._target = "the given api_client"
        self.api_client = api_client
        self._api = k8s.CustomObjectsApi(api_client)
        self._lock = threading.Lock()
        self._streams: set[Any] = set()
        self._closed = False

    @classmethod
    def from_url(cls, url: str, *, poll_interval: float = 1.0) -> KubernetesStore:
        """The store at ``k8s://CONTEXT/NAMESPACE`` (see :func:`parse_url`)."""
        context, namespace = parse_url(url)
        api_client, target = _client_for(context, field="url.context")
        try:
            store = cls(namespace, api_client, poll_interval=poll_interval)
        except BaseException:
            api_client.close()  # type: ignore[no-untyped-call]
            raise
        store.context, store._target, store._owns_client = context, target, True
        return store

    @property
    def url(self) -> str:
        return f"{URL_SCHEME}://{self.context or ''}/{self.namespace}"

    @property
    def _where(self) -> str:
        host = getattr(self.api_client.configuration, "host", "?")
        return f"Kubernetes store (namespace {self.namespace!r}, {self._target}, {host})"

    def __repr__(self) -> str:
        context = f", context={self.context!r}" if self.context else ""
        return f"KubernetesStore({self.namespace!r}{context})"

    def __enter__(self) -> KubernetesStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop running watchers and close the client this store made.

        Calls made afterwards raise BackendError.
        """
        with self._lock:
            self._closed = True
            streams = builtins.list(self._streams)
        for response in streams:
            with contextlib.suppress(Exception):
                response.shutdown()
        if self._owns_client:
            with contextlib.suppress(Exception):
                self.api_client.close()  # type: ignore[no-untyped-call]

    # -- API calls -----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise BackendError(f"{self._where} is closed; open a new KubernetesStore")

    def _call(
        self, doing: str, fn: Callable[..., Any], *args: Any, expect: tuple[int, ...] = (),
        **kwargs: Any,
    ) -> Any:
        """Call the API; ApiExceptions with a status in ``expect`` go to the caller, every
        other failure becomes a BackendError naming the store and what to check."""
        self._check_open()
        try:
            return fn(*args, **kwargs)
        except ApiException as err:
            if err.status in expect:
                raise
            raise self._api_error(doing, err) from err
        except (urllib3.exceptions.HTTPError, OSError) as err:
            if self._closed:
                raise BackendError(f"{self._where} is closed; open a new KubernetesStore") from err
            raise BackendError(
                f"{self._where}: {doing} failed: cannot reach the API server: {err}; check the "
                "kubeconfig context and that the cluster is reachable (kubectl get ns)"
            ) from err

    def _api_error(self, doing: str, err: ApiException) -> BackendError:
        message = api_message(err)
        if err.status == 401:
            hint = "the credentials were refused: refresh them (kubectl get ns to check)"
        elif err.status == 403:
            hint = ("forbidden: the account needs aioverlays get/list/watch/create/patch/delete "
                    "and controllerrevisions get/list/watch/create/patch in this namespace "
                    "(deploy/rbac)")
        elif err.status == 404:
            hint = ("not found: does the namespace exist, and is the AIOverlay CRD installed? "
                    "(kubectl apply -f deploy/crds/)")
        elif err.status in (400, 422):
            hint = ("the API server refused the object; if it names unknown fields, the CRD in "
                    "the cluster is older than this overlay-sdk: re-apply deploy/crds/")
        else:
            hint = "see the API server's message"
        return BackendError(f"{self._where}: {doing} failed ({err.status}): {message}; {hint}")

    def _cr_args(self) -> tuple[str, str, str, str]:
        return API_GROUP, API_VERSION, self.namespace, PLURAL

    def _crev_args(self) -> tuple[str, str, str, str]:
        return "apps", "v1", self.namespace, "controllerrevisions"

    def _read(self, name: str) -> _Cr | None:
        try:
            obj = self._call(f"read of overlay {name!r}", self._api.get_namespaced_custom_object,
                             *self._cr_args(), name, expect=(404,))
        except ApiException:
            return None
        return self._cr(obj)

    def _cr(self, obj: Any) -> _Cr:
        if not isinstance(obj, dict):
            raise BackendError(f"{self._where}: the API server sent {type(obj).__name__}, "
                               "not an AIOverlay object")
        text = (_meta(obj).get("annotations") or {}).get(RECORD_ANNOTATION)
        if text is None:
            return _Cr(obj, None)
        name = _meta(obj).get("name")
        where = f"{self._where}: annotation {RECORD_ANNOTATION} of AIOverlay {name!r}"
        try:
            data = json.loads(text)
        except (TypeError, ValueError) as err:
            raise BackendError(f"{where} is not JSON: {err}; was it edited by hand?") from err
        record = _revision_of(data, where)
        return _Cr(obj, record, _edit_of(obj, record))

    def _list_crevs(self, selector: str) -> tuple[builtins.list[dict[str, Any]], str]:
        """ControllerRevisions matching ``selector`` (checked here too) and the list's rv."""
        result = self._call("list of revisions", self._api.list_namespaced_custom_object,
                            *self._crev_args(), label_selector=selector)
        items = [i for i in result.get("items") or [] if _selected(selector, i)]
        return items, str(_meta(result).get("resourceVersion") or "")

    def _get_crev(self, name: str, number: int) -> dict[str, Any] | None:
        try:
            obj = self._call(
                f"read of revision {number} of overlay {name!r}",
                self._api.get_namespaced_custom_object, *self._crev_args(),
                revision_object_name(name, number), expect=(404,),
            )
        except ApiException:
            return None
        return cast(dict[str, Any], obj)

    def _crev_revision(self, item: Mapping[str, Any]) -> Revision:
        meta = _meta(item)
        where = f"{self._where}: ControllerRevision {meta.get('name')!r}"
        rev = _revision_of(item.get("data"), where)
        expected = revision_object_name(rev.name, rev.revision)
        if meta.get("name") != expected or item.get("revision") != rev.revision:
            raise BackendError(f"{where} holds revision {rev.revision} of overlay "
                               f"{rev.name!r}, which belongs in {expected!r}; was it copied "
                               "by hand?")
        return rev

    def _seq(self, item: Mapping[str, Any]) -> int:
        meta = _meta(item)
        seq = (meta.get("annotations") or {}).get(SEQ_ANNOTATION) or meta.get("resourceVersion")
        return _int_rv(seq, f"{self._where}: ControllerRevision {meta.get('name')!r}")

    def _history(self, name: str) -> builtins.list[dict[str, Any]]:
        items, _ = self._list_crevs(f"{OVERLAY_LABEL}={name}")
        return sorted(items, key=lambda i: int(i.get("revision") or 0))

    # -- reads ---------------------------------------------------------------------------

    def get(self, name: str) -> Revision:
        """The current revision of a live overlay; NotFoundError if absent or deleted."""
        if not _check_name(name):
            raise NotFoundError(f"overlay {name!r} does not exist: not a valid overlay name")
        cr = self._read(name)
        if cr is not None and cr.live is not None:
            return cr.live
        raise NotFoundError(
            f"overlay {name!r} does not exist in namespace {self.namespace!r}"
            f"{self._absent_note(name, cr)}; list the overlays that exist, or create it"
        )

    def _absent_note(self, name: str, cr: _Cr | None) -> str:
        if cr is not None and cr.record is not None:
            if cr.record.action == "delete":
                return f" (deleted at revision {cr.record.revision})"
            return f" (being deleted by Kubernetes after revision {cr.record.revision})"
        history = self._history(name)
        if cr is not None:
            return (" (an AIOverlay of that name exists but was not written by overlay-sdk: "
                    "apply it through overlay-sdk to give it a history)")
        if not history:
            return ""
        last = self._crev_revision(history[-1])
        if last.action == "delete":
            return f" (deleted at revision {last.revision})"
        return f" (deleted outside overlay-sdk after revision {last.revision})"

    def list(self) -> builtins.list[Revision]:
        """Current revisions of all live overlays, sorted by name."""
        result = self._call("list of overlays", self._api.list_namespaced_custom_object,
                            *self._cr_args())
        revisions = [self._cr(obj).live for obj in result.get("items") or []]
        return sorted((r for r in revisions if r is not None), key=lambda r: r.name)

    def names(self) -> builtins.list[str]:
        """Every overlay with a history, deleted ones included, sorted: the overlays of the
        ControllerRevisions and of the AIOverlays written by overlay-sdk."""
        result = self._call("list of overlays", self._api.list_namespaced_custom_object,
                            *self._cr_args())
        records = (self._cr(obj).record for obj in result.get("items") or [])
        found = {r.name for r in records if r is not None}
        items, _ = self._list_crevs(OVERLAY_LABEL)
        found |= {str(_meta(i)["labels"][OVERLAY_LABEL]) for i in items}
        return sorted(found)

    def history(self, name: str) -> builtins.list[Revision]:
        """Every revision of ``name``, oldest first, tombstones included."""
        if not _check_name(name):
            raise NotFoundError(f"overlay {name!r} has no history: not a valid overlay name")
        # The CR first, then the ControllerRevisions: a revision's copy exists before the next
        # revision is committed, so whatever the list holds beyond the CR's record has no gap.
        cr = self._read(name)
        revisions = [self._crev_revision(i) for i in self._history(name)]
        if cr is not None and cr.record is not None and (
            not revisions or cr.record.revision > revisions[-1].revision
        ):
            revisions.append(cr.record)  # committed; its copy is not written yet
        if cr is not None and cr.edit is not None and not cr.terminating:
            revisions.append(cr.edit)  # edited beside the store; recorded by the next write
        if not revisions:
            raise NotFoundError(f"overlay {name!r} has no history: it was never created")
        return revisions

    def revision(self, name: str, number: int) -> Revision:
        """Revision ``number`` of ``name``; NotFoundError if it does not exist."""
        if isinstance(number, bool) or not isinstance(number, int) or not 0 < number < _MAX_INT:
            raise ValidationError.at(
                "number", f"a revision number is a positive int such as 3, got {number!r}"
            )
        if not _check_name(name):
            raise NotFoundError(f"overlay {name!r} has no revision {number}: not a valid name")
        item = self._get_crev(name, number)
        if item is not None:
            return self._crev_revision(item)
        cr = self._read(name)
        for held in (cr.record, cr.edit) if cr is not None else ():
            if held is not None and held.revision == number:
                return held
        history = self._history(name)
        latest = max([int(i.get("revision") or 0) for i in history] +
                     [cr.current.revision if cr is not None and cr.current else 0])
        known = f"its revisions are 1..{latest}" if latest else "it was never created"
        raise NotFoundError(f"overlay {name!r} has no revision {number}: {known}; see its history")

    # -- writes --------------------------------------------------------------------------

    def apply(
        self,
        overlay: AIOverlay,
        *,
        expected_revision: int | None = None,
        author: str | None = None,
        message: str = "",
    ) -> Revision:
        """Write ``overlay`` as the next revision of ``overlay.name`` and return it.

        ConflictError (nothing written) when ``expected_revision`` is not None and differs
        from the current live revision (0 meaning "does not exist or was deleted").
        """
        self._check_overlay(overlay, field="overlay")
        return self._commit(overlay.name, overlay, expected_revision, author, message)

    def _check_overlay(self, overlay: object, *, field: str) -> None:
        if not isinstance(overlay, AIOverlay):
            raise ValidationError.at(
                field, f"expected an AIOverlay, got {type(overlay).__name__}; "
                "build one with overlay_sdk.spec.parse_overlay"
            )
        at = "" if field == "overlay" else f"{field}."
        namespace = overlay.metadata.namespace
        if namespace is not None and namespace != self.namespace:
            raise ValidationError.at(
                f"{at}metadata.namespace", f"{namespace!r} is not this store's namespace "
                f"{self.namespace!r}; remove metadata.namespace or connect to "
                f"k8s://CONTEXT/{namespace}"
            )
        for key in _RESERVED:
            if key in (overlay.metadata.annotations or {}):
                raise ValidationError.at(
                    f"{at}metadata.annotations[{key!r}]",
                    "is written by the store itself; remove it",
                )

    def delete(
        self,
        name: str,
        *,
        expected_revision: int | None = None,
        author: str | None = None,
        message: str = "",
    ) -> Revision:
        """Write a tombstone revision and delete the CR; NotFoundError if absent or deleted.

        The history stays (released from the CR before it is deleted)."""
        if not _check_name(name):
            raise NotFoundError(f"overlay {name!r} does not exist: not a valid overlay name")
        return self._commit(name, None, expected_revision, author, message)

    def import_revision(self, revision: Revision) -> bool:
        """Write ``revision`` as it is (number, author, time, message, changes) after the last
        revision of its overlay, as the CR's record and its ControllerRevision; False when
        the store holds this exact revision already. ConflictError for a gap or a different
        revision under that number (nothing written); see
        :func:`~overlay_sdk.store.base.import_check`."""
        revision = to_import(revision)
        name = revision.name
        if not _check_name(name):
            raise ValidationError.at("revision.name", f"{name!r} is not a valid overlay name")
        if revision.overlay is not None:
            self._check_overlay(revision.overlay, field="revision.overlay")
        for attempt in range(_ATTEMPTS):
            state = self._settle(name)
            existing = None
            if revision.revision <= state.latest:
                with contextlib.suppress(NotFoundError):
                    existing = self.revision(name, revision.revision)
            if not import_check(revision, latest=state.latest, live=state.live is not None,
                                existing=existing):
                return False
            live = state.live
            previous = None if live is None or live.overlay is None else live.overlay.to_dict()
            committed = self._write_cr(state, revision, previous)
            if committed is None:
                _backoff(attempt)
                continue
            cr = self._cr(committed)
            self._ensure_recorded(cr, missing=True)
            if revision.action == "delete":
                self._finish_delete(cr)
            return True
        raise ConflictError(
            f"revision {revision.revision} of overlay {name!r} was not copied: the AIOverlay "
            f"kept changing while it was written ({_ATTEMPTS} attempts refused by the API "
            "server); retry the copy", expected=revision.revision - 1,
        )

    def settle(self, name: str) -> None:
        """Repair what interrupted writers or deletions outside overlay-sdk left for ``name``:
        write a missing ControllerRevision, finish a delete, record a ``kubectl delete`` as a
        tombstone and release the history from the CR (so garbage collection keeps it)."""
        if not _check_name(name):
            raise NotFoundError(f"overlay {name!r} does not exist: not a valid overlay name")
        self._settle(name)

    def _commit(
        self,
        name: str,
        overlay: AIOverlay | None,
        expected: int | None,
        author: str | None,
        message: str,
    ) -> Revision:
        check_write_args(expected, author, message)
        who = author or default_author()
        doc = None if overlay is None else overlay.to_dict()
        for attempt in range(_ATTEMPTS):
            state = self._settle(name)
            live = state.live
            current = live.revision if live is not None else 0
            if overlay is None and live is None:
                note = f" ({state.note})" if state.note else ""
                raise NotFoundError(f"overlay {name!r} does not exist{note}; nothing to delete")
            if expected is not None and expected != current:
                raise _conflict(name, expected, current, state)
            previous = None if live is None or live.overlay is None else live.overlay.to_dict()
            record = Revision(
                name=name,
                revision=state.latest + 1,
                action="apply" if overlay is not None else "delete",
                overlay=overlay,
                author=who,
                created_at=datetime.now(UTC),
                message=message,
                changes=describe_change(previous, doc),
            )
            committed = self._write_cr(state, record, previous)
            if committed is None:  # refused (409) or gone (404): read again and retry
                _backoff(attempt)
                continue
            cr = self._cr(committed)
            self._ensure_recorded(cr, missing=True)
            if record.action == "delete":
                self._finish_delete(cr)
            return record
        state = self._settle(name)
        current = state.live.revision if state.live is not None else 0
        held_cr = self._read(name)
        if state.cr is None and held_cr is not None and held_cr.terminating:
            held = ", ".join(_meta(held_cr.obj).get("finalizers") or []) or "none left"
            why = (f"the AIOverlay is still being deleted by Kubernetes (finalizers: {held}); "
                   "retry once it is gone")
        else:
            why = (f"it kept changing while it was written ({_ATTEMPTS} attempts refused by "
                   "the API server); retry the change")
        raise ConflictError(
            f"overlay {name!r} was not written: expected revision {expected}, current revision "
            f"{current or 'none'}: {why}",
            expected=expected, current=current or None,
        )

    def _write_cr(
        self, state: _State, record: Revision, previous: dict[str, Any] | None, *,
        record_only: bool = False,
    ) -> dict[str, Any] | None:
        """Commit ``record`` on the CR (``record_only``: its annotations only, the CR holds
        its spec already); None when the API server refused it with 409 (the CR changed
        since it was read, or exists already) or 404 (it went away)."""
        name = record.name
        text = json.dumps(_record_data(record), separators=(",", ":"), ensure_ascii=False)
        ours = {REVISION_ANNOTATION: str(record.revision), RECORD_ANNOTATION: text}
        new = None if record.overlay is None else record.overlay.to_dict()
        doing = f"{record.action} of overlay {name!r} (revision {record.revision})"
        try:
            if state.cr is None:
                assert new is not None
                meta = dict(new["metadata"])
                meta["namespace"] = self.namespace
                meta["annotations"] = {**(meta.get("annotations") or {}), **ours}
                body = {"apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": KIND,
                        "metadata": meta, "spec": new["spec"]}
                obj = self._call(doing, self._api.create_namespaced_custom_object,
                                 *self._cr_args(), body, field_validation=_STRICT,
                                 field_manager=FIELD_MANAGER, expect=(409,))
            else:
                patch_meta: dict[str, Any] = {"resourceVersion": state.cr.rv}
                patch: dict[str, Any] = {"metadata": patch_meta}
                if new is None or record_only:
                    patch_meta["annotations"] = ours
                else:
                    old_meta = (previous or {}).get("metadata") or {}
                    for field in ("labels", "annotations"):
                        had = old_meta.get(field) or {}
                        has = new["metadata"].get(field) or {}
                        changes = {k: None for k in had if k not in has} | has
                        if field == "annotations":
                            changes |= ours
                        if changes:
                            patch_meta[field] = changes
                    patch["spec"] = _merge_diff(state.cr.obj.get("spec") or {}, new["spec"])
                obj = self._call(doing, self._api.patch_namespaced_custom_object,
                                 *self._cr_args(), name, patch, field_validation=_STRICT,
                                 field_manager=FIELD_MANAGER, expect=(404, 409))
        except ApiException:
            return None
        return cast(dict[str, Any], obj)

    # -- repairs -------------------------------------------------------------------------

    def _settle(self, name: str) -> _State:
        """The overlay's state for a write, after repairing what earlier writers left."""
        while True:
            cr = self._read(name)
            if cr is not None and cr.record is not None:
                self._ensure_recorded(cr)
                number = cr.record.revision
                if cr.record.action == "delete":
                    self._finish_delete(cr)
                    return _State(None, None, number, f"deleted at revision {number}")
                if cr.terminating:  # kubectl delete, held by a finalizer
                    number = self._record_external_delete(name, cr.record).revision
                    self._release(name, cr.uid)
                    return _State(None, None, number, f"deleted at revision {number}")
                if cr.edit is not None:  # kubectl edit, GitOps: record it, then read again
                    state = _State(cr, cr.record, number, "")
                    self._write_cr(state, cr.edit, None, record_only=True)
                    continue
                return _State(cr, cr.record, number, "")
            history = self._history(name)  # read after the CR: see history()
            if not history:
                return _State(cr, None, 0, "")
            last = self._crev_revision(history[-1])
            if last.action == "apply" and cr is None:
                # The CR is gone but its last revision is not a delete: kubectl delete, unless
                # a writer re-created the CR between our two reads. Only a read made after the
                # history was listed can tell.
                if self._read(name) is not None:
                    continue
                last = self._record_external_delete(name, last)
            return _State(cr, None, last.revision, f"deleted at revision {last.revision}")

    def _ensure_recorded(self, cr: _Cr, *, missing: bool = False) -> None:
        """Write the ControllerRevision of the CR's current record if it is missing (``missing``:
        just committed, so try the write at once)."""
        record = cr.record
        assert record is not None
        item = None if missing else self._get_crev(record.name, record.revision)
        if item is None:
            owner = cr.uid if record.action == "apply" and not cr.terminating else None
            item = self._create_crev(record, owner)
        if self._crev_revision(item) != record:
            raise BackendError(
                f"{self._where}: ControllerRevision "
                f"{revision_object_name(record.name, record.revision)!r} differs from the "
                f"revision {record.revision} that AIOverlay {record.name!r} records; was either "
                "edited or restored by hand? Delete the stale one or re-apply the overlay"
            )

    def _create_crev(self, record: Revision, owner_uid: str | None) -> dict[str, Any]:
        name = record.name
        meta: dict[str, Any] = {
            "name": revision_object_name(name, record.revision),
            "namespace": self.namespace,
            "labels": {OVERLAY_LABEL: name, ACTION_LABEL: record.action,
                       REVISION_LABEL: str(record.revision), **MANAGED_BY},
        }
        if owner_uid:
            meta["ownerReferences"] = [{
                "apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": KIND, "name": name,
                "uid": owner_uid, "controller": True, "blockOwnerDeletion": False,
            }]
        body = {"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": meta,
                "data": _record_data(record), "revision": record.revision}
        doing = f"write of revision {record.revision} of overlay {name!r} into its history"
        try:
            obj = self._call(doing, self._api.create_namespaced_custom_object,
                             *self._crev_args(), body, field_validation=_STRICT,
                             field_manager=FIELD_MANAGER, expect=(409,))
        except ApiException:  # written meanwhile by another writer
            existing = self._get_crev(name, record.revision)
            if existing is None:
                raise BackendError(f"{self._where}: {doing} was refused as existing, yet it "
                                   "cannot be read; retry") from None
            return existing
        return cast(dict[str, Any], obj)

    def _record_external_delete(self, name: str, last: Revision) -> Revision:
        """A tombstone after ``last`` for a deletion made outside overlay-sdk."""
        tomb = Revision(
            name=name, revision=last.revision + 1, action="delete", overlay=None,
            author=EXTERNAL_AUTHOR, created_at=datetime.now(UTC), message=EXTERNAL_MESSAGE,
            changes=describe_change(None if last.overlay is None else last.overlay.to_dict(),
                                    None),
        )
        return self._crev_revision(self._create_crev(tomb, None))

    def _finish_delete(self, cr: _Cr) -> None:
        """Release the history from the CR, then delete the CR (if still this one)."""
        name = _meta(cr.obj).get("name")
        assert isinstance(name, str)
        self._release(name, cr.uid)
        if cr.terminating:
            return
        options = k8s.V1DeleteOptions(
            preconditions=k8s.V1Preconditions(uid=cr.uid), propagation_policy="Background"
        )
        with contextlib.suppress(ApiException):  # 404 gone already; 409 a newer CR, not ours
            self._call(f"delete of overlay {name!r}", self._api.delete_namespaced_custom_object,
                       *self._cr_args(), name, body=options, expect=(404, 409))

    def _release(self, name: str, uid: str) -> None:
        """Remove the CR ``uid`` from the ownerReferences of ``name``'s revisions, keeping each
        one's creation resourceVersion as its watch sequence number."""
        for item in self._history(name):
            for _ in range(_ATTEMPTS):
                meta = _meta(item)
                owners = meta.get("ownerReferences") or []
                if not any(o.get("uid") == uid for o in owners):
                    break
                rest = [o for o in owners if o.get("uid") != uid]
                patch = {"metadata": {
                    "resourceVersion": meta.get("resourceVersion"),
                    "ownerReferences": rest or None,
                    "annotations": {SEQ_ANNOTATION: str(self._seq(item))},
                }}
                try:
                    self._call(f"release of {meta.get('name')!r} from its AIOverlay",
                               self._api.patch_namespaced_custom_object, *self._crev_args(),
                               meta.get("name"), patch, field_validation=_STRICT,
                               field_manager=FIELD_MANAGER, expect=(404, 409))
                    break
                except ApiException as err:
                    if err.status == 404:
                        break
                    fresh = self._get_crev(name, int(item.get("revision") or 0))
                    if fresh is None:
                        break
                    item = fresh

    # -- watch ---------------------------------------------------------------------------

    def watch(
        self, *, since: int | None = None, timeout: float | None = None
    ) -> Iterator[WatchEvent]:
        """Yield every revision recorded after sequence ``since``, in order.

        ``seq`` is the ControllerRevision's creation resourceVersion. ``since=None`` starts
        from the moment of this call; ``since=0`` replays all history. Stops after ``timeout``
        seconds without a new event (None: never), or soon after :meth:`close`.
        """
        if since is not None and (isinstance(since, bool) or not isinstance(since, int)
                                  or not 0 <= since < _MAX_INT):
            raise ValidationError.at(
                "since", f"give a sequence number >= 0 (0 replays everything) or None, "
                f"got {since!r}"
            )
        if timeout is not None and (isinstance(timeout, bool)
                                    or not isinstance(timeout, int | float) or timeout < 0):
            raise ValidationError.at(
                "timeout", f"give seconds >= 0, or None to wait for ever, got {timeout!r}"
            )
        if since is None:
            _, rv = self._list_crevs(OVERLAY_LABEL)
            since = _int_rv(rv, f"{self._where}: the list of revisions")
        return self._follow(since, timeout)

    def _follow(self, last: int, timeout: float | None) -> Iterator[WatchEvent]:
        deadline = None if timeout is None else time.monotonic() + timeout
        resume: str | None = None  # resourceVersion to watch from; None: list first
        polling = False
        while not self._closed:
            if resume is None:
                items, rv = self._list_crevs(OVERLAY_LABEL)
                fresh = sorted(((self._seq(i), i) for i in items), key=lambda pair: pair[0])
                for seq, item in fresh:
                    if seq > last:
                        last = seq
                        yield WatchEvent(seq=seq, revision=self._crev_revision(item))
                        deadline = None if timeout is None else time.monotonic() + timeout
                resume = rv
            remaining = None if deadline is None else deadline - time.monotonic()
            if self._closed or (remaining is not None and remaining <= 0):
                return
            if polling:
                time.sleep(min(self.poll_interval, remaining or self.poll_interval))
                resume = None
                continue
            window = _WATCH_CHUNK if remaining is None else min(remaining, _WATCH_CHUNK)
            try:
                for event in self._watch_events(resume, window):
                    kind = event.get("type")
                    obj = event.get("object") or {}
                    if kind == "ERROR":
                        if obj.get("code") == 410:  # too old: list again
                            resume = None
                            break
                        raise BackendError(f"{self._where}: watch of revisions failed: "
                                           f"{obj.get('code')} {obj.get('message')}")
                    resume = str(_meta(obj).get("resourceVersion") or resume)
                    if kind != "ADDED" or not _selected(OVERLAY_LABEL, obj):
                        continue
                    seq = self._seq(obj)
                    if seq > last:
                        last = seq
                        yield WatchEvent(seq=seq, revision=self._crev_revision(obj))
                        deadline = None if timeout is None else time.monotonic() + timeout
            except ApiException as err:
                if err.status == 410:
                    resume = None
                elif err.status in _WATCH_REFUSED:
                    polling = True
                else:
                    raise self._api_error("watch of revisions", err) from err

    def _watch_events(self, resume: str | None, seconds: float) -> Iterator[dict[str, Any]]:
        """The events of one watch request, ending after ``seconds`` without data."""
        response = self._call(
            "watch of revisions", self._api.list_namespaced_custom_object, *self._crev_args(),
            label_selector=OVERLAY_LABEL, watch=True, resource_version=resume or None,
            allow_watch_bookmarks=True, timeout_seconds=max(1, int(seconds + 0.999)),
            _preload_content=False, _request_timeout=(_CONNECT_TIMEOUT, max(seconds, 0.001)),
            expect=(403, 405, 410, 501),
        )
        with self._lock:
            if self._closed:
                response.close()
                return
            self._streams.add(response)
        try:
            for line in iter_resp_lines(response):  # type: ignore[no-untyped-call]
                if line.strip():
                    yield json.loads(line)
        except (urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.ProtocolError,
                ValueError):
            return  # the window passed without data, the store closed, or the server hung up
        finally:
            with self._lock:
                self._streams.discard(response)
            with contextlib.suppress(Exception):
                response.close()
                response.release_conn()


# -- helpers ---------------------------------------------------------------------------------


def _check_name(name: object) -> bool:
    """ValidationError for a non-string; False for a string no overlay can be named."""
    if not isinstance(name, str) or not name:
        raise ValidationError.at(
            "name", f"an overlay name is a non-empty string such as 'sales-copilot', got {name!r}"
        )
    return len(name) <= 63 and bool(_DNS.match(name))


def _conflict(name: str, expected: int, current: int, state: _State) -> ConflictError:
    if expected == 0:
        head = (f"overlay {name!r} already exists: expected revision 0 (must not exist), "
                f"current revision {current}")
    elif current == 0:
        gone = f"was {state.note}" if state.note else "does not exist"
        head = f"overlay {name!r} {gone}: expected revision {expected}, current revision none"
    else:
        head = (f"overlay {name!r} changed since it was read: expected revision {expected}, "
                f"current revision {current}")
    return ConflictError(f"{head}; re-read it and retry the change",
                         expected=expected, current=current or None)


def _selected(selector: str, obj: Mapping[str, Any]) -> bool:
    """Whether ``obj`` matches an equality ``selector`` of ours (``k`` or ``k=v``)."""
    labels = _meta(obj).get("labels") or {}
    key, _, value = selector.partition("=")
    return key in labels and (not value or labels[key] == value)


def _backoff(attempt: int) -> None:
    time.sleep(min(0.5, 0.005 * 2**attempt) * random.uniform(0.5, 1.5))

