"""The operator's I/O: connecting to the API server, and every call its handlers make.

:mod:`overlay_sdk.k8s.operator` keeps the kopf handlers (what happens when), and
:mod:`overlay_sdk.k8s.reconcile` what they decide; this module is the plumbing between them
and the cluster:

- **connecting**: a client configuration from a kubeconfig or the pod's service account
  (:func:`load_configuration`), and kopf's credentials for the same identity
  (:func:`connection_info`);
- **the calls** (:class:`Cluster`, through the official client, synchronous: kopf runs the
  handlers in threads): discovery of what the API server serves (:meth:`Cluster.served`),
  *server-side apply* of a child (field manager ``overlay-operator``, ``force``; a create when
  the apply answers 404, as an API server without apply-creates would, then an apply again if
  that create finds it made meanwhile) (:meth:`Cluster.apply`), deletion of the children a
  generation leaves behind, HorizontalPodAutoscalers among them (:meth:`Cluster.prune`), and
  status patches carrying the ``resourceVersion`` read (:meth:`Cluster.patch_status`). Every
  failure is a :class:`~overlay_sdk.k8s.reconcile.Failure` naming what was being done;
- **the children as watched**: the ids of kopf's indices of the overlays' Deployments and
  Services, and the overlay's entries in them (:func:`children_of`);
- **Events** on the overlay (:func:`post_event`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import kopf
import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config import incluster_config, kube_config

from overlay_sdk.errors import BackendError, ValidationError
from overlay_sdk.k8s import reconcile as rc
from overlay_sdk.k8s.api import PLURAL, api_message, in_pod, kubeconfig_files
from overlay_sdk.spec import API_GROUP, API_VERSION

__all__ = [
    "APPLY_PATCH",
    "AUTOSCALERS_INDEX",
    "DEPLOYMENTS_INDEX",
    "FIELD_MANAGER",
    "KINDS",
    "MERGE_PATCH",
    "PLURAL",
    "PRUNED",
    "SERVICES_INDEX",
    "Cluster",
    "api_message",
    "children_of",
    "connection_info",
    "in_pod",
    "load_configuration",
    "name_key",
    "owners_of",
    "post_event",
]

FIELD_MANAGER = "overlay-operator"

KINDS: dict[tuple[str, str], tuple[str, str]] = {
    ("apps/v1", "Deployment"): ("/apis/apps/v1", "deployments"),
    ("v1", "Service"): ("/api/v1", "services"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"): ("/apis/autoscaling/v2",
                                                   "horizontalpodautoscalers"),
    ("networking.istio.io/v1", "DestinationRule"): ("/apis/networking.istio.io/v1",
                                                    "destinationrules"),
    ("networking.istio.io/v1", "VirtualService"): ("/apis/networking.istio.io/v1",
                                                   "virtualservices"),
}
"""What the renderer makes: (apiVersion, kind) -> (API path prefix, plural)."""

PRUNED: tuple[tuple[str, str], ...] = (("apps/v1", "Deployment"), ("v1", "Service"),
                                       ("autoscaling/v2", "HorizontalPodAutoscaler"))
"""Kinds whose names depend on the versions routed (and, for the autoscalers, on
``spec.scaling``): a new generation may leave some behind. Deployments and Services are
indexed; an autoscaler is known from the Deployment that names it
(:func:`~overlay_sdk.k8s.reconcile.stale_children`)."""

DEPLOYMENTS_INDEX, SERVICES_INDEX = "overlay_deployments", "overlay_services"
AUTOSCALERS_INDEX = "overlay_autoscalers"
"""The ids of kopf's indices of the children (and of the handler arguments holding them)."""

APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"


# -- connecting --------------------------------------------------------------------------------


def load_configuration(kubeconfig: str | None = None,
                       context: str | None = None) -> k8s.Configuration:
    """A client configuration from ``kubeconfig`` (None: ``$KUBECONFIG`` or
    ``~/.kube/config``) and ``context`` (None: its current context), or the pod's service
    account when neither is given and there is no kubeconfig. ValidationError says why not."""
    configuration = k8s.Configuration()
    if kubeconfig is None and context is None and in_pod() and not kubeconfig_files()[1]:
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


class Cluster:
    """The operator's own API calls, through the official client (synchronous: kopf runs the
    handlers in threads). Every failure is raised as :class:`~overlay_sdk.k8s.reconcile.Failure`
    naming what was being done."""

    def __init__(self, api_client: k8s.ApiClient, *, timeout: float = 30.0) -> None:
        self.api = api_client
        self.timeout = timeout

    @property
    def where(self) -> str:
        """The API server, as messages name it."""
        return f"the API server at {self.api.configuration.host}"

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
            raise rc.api_failure(err.status, api_message(err), doing=doing) from None

    @staticmethod
    def _collection(api_version: str, kind: str, namespace: str) -> str:
        try:
            prefix, plural = KINDS[api_version, kind]
        except KeyError:
            raise rc.Failure("ReconcileError", f"the operator cannot apply {api_version} "
                             f"{kind}: not a kind the renderer makes", retry=False) from None
        return f"{prefix}/namespaces/{namespace}/{plural}"

    def served(self, group_version: str) -> set[str] | None:
        """The resources (plurals) the API server serves in ``group_version``, None when it
        does not serve that group version. BackendError when it cannot be reached or refuses
        the discovery (what to check is in the message)."""
        try:
            found = self.request("GET", f"/apis/{group_version}",
                                 doing=f"discovery of {group_version}")
        except ApiException as err:
            if err.status != 404:
                raise BackendError(f"{self.where} refused the discovery of {group_version} "
                                   f"(HTTP {err.status}: {api_message(err)}); check the "
                                   "credentials of --kubeconfig/--context") from None
            return None
        except rc.Failure as failure:
            raise BackendError(f"cannot reach {self.where}: {failure.message}; check "
                               "--kubeconfig/--context") from None
        if not found:
            return None
        return {str(r.get("name")) for r in (found.get("resources") or [])
                if isinstance(r, Mapping)}

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
                                content_type=APPLY_PATCH, doing=f"apply of {what}",
                                expect=(404,))
        except ApiException:
            try:
                result = self._call("POST", collection, body=obj,
                                    query=[("fieldManager", FIELD_MANAGER)],
                                    doing=f"create of {what}", expect=(409,))
            except ApiException:  # created meanwhile: apply over it
                result = self._call("PATCH", f"{collection}/{meta['name']}", body=obj,
                                    query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
                                    content_type=APPLY_PATCH, doing=f"apply of {what}")
        return dict(result) if isinstance(result, Mapping) else {}

    def delete(self, api_version: str, kind: str, namespace: str, name: str,
               uid: str | None) -> None:
        """Delete one object (if it is still the one with ``uid``; None or empty: the one of
        that name); gone already is fine."""
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions",
                                "propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        with contextlib.suppress(ApiException):  # 404 gone, 409 another object by now
            self._call("DELETE", f"{self._collection(api_version, kind, namespace)}/{name}",
                       body=body, doing=f"delete of {kind} {namespace}/{name}",
                       expect=(404, 409))

    def prune(self, namespace: str, stale: Iterable[rc.Child]) -> list[str]:
        """Delete the children ``stale`` (of the :data:`PRUNED` kinds: what
        :func:`~overlay_sdk.k8s.reconcile.stale_children` found); ``Kind name`` of each."""
        pruned: list[str] = []
        for child in stale:
            api_version = next(v for (v, k) in PRUNED if k == child.kind)
            self.delete(api_version, child.kind, namespace, child.name, child.uid)
            pruned.append(f"{child.kind} {child.name}")
        return pruned

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
            self._call("PATCH", path, body=body, content_type=MERGE_PATCH, expect=(404, 409),
                       doing=f"status update of AIOverlay {namespace}/{name}")
        except ApiException:
            return False
        return True


# -- the children, as kopf's indices hold them -------------------------------------------------


def _indices(indices: Mapping[str, Any]) -> Iterator[Any]:
    for key in (DEPLOYMENTS_INDEX, SERVICES_INDEX, AUTOSCALERS_INDEX):
        if indices.get(key) is not None:
            yield indices[key]


def owners_of(indices: Mapping[str, Any], namespace: str | None, kind: str,
              name: str) -> list[str | None]:
    """The controlling AIOverlay uids of the managed ``kind`` objects called ``name`` in
    ``namespace``, as indexed (the index also keys each child by its name)."""
    found: list[str | None] = []
    for index in _indices(indices):
        found.extend(index.get(name_key(namespace, kind, name), []))
    return found


def name_key(namespace: str | None, kind: str, name: str) -> tuple[str, str | None, str, str]:
    """The key under which the indices hold a child's owner, by the child's name."""
    return ("name", namespace, kind, name)


def children_of(indices: Mapping[str, Any], namespace: str | None,
                name: str | None) -> list[rc.Child]:
    """The overlay's children in the indices passed to a handler (its keyword arguments
    :data:`DEPLOYMENTS_INDEX`, :data:`SERVICES_INDEX` and :data:`AUTOSCALERS_INDEX`)."""
    key = (namespace, name)
    found: list[rc.Child] = []
    for index in _indices(indices):
        found.extend(index.get(key, []))
    return found


# -- Events ------------------------------------------------------------------------------------


def post_event(body: kopf.Body, type_: str, reason: str, message: str) -> None:
    """Post an Event on the overlay (the message cut to 1,000 characters, as events.k8s.io
    wants its notes)."""
    text = message if len(message) <= 1000 else message[:997] + "..."
    kopf.event(body, type=type_, reason=reason, message=text)
