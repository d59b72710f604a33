"""KubernetesStore against kmock's emulated API server (``tests/kmock_support.py``), in-process.

The shared behaviour of every store runs from ``store_contract.py``; the rest checks what
is particular to the cluster: the AIOverlay CR and its ControllerRevisions, ownership and
the history surviving deletion, conflicts on resourceVersion (against the emulator, which
refuses stale PATCHes with 409, and with a monkeypatched ApiException where the emulator
cannot stage the case), repairs after interrupted writes, watch, ``fieldValidation=Strict``
on every write, and ``k8s://`` addresses.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kmock
import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from store_contract import NAME, StoreContract
from store_workers import make_doc, make_overlay

from overlay_sdk.errors import BackendError, ConflictError, NotFoundError, ValidationError
from overlay_sdk.spec import parse_overlay
from overlay_sdk.store import kubernetes as kstore
from overlay_sdk.store.base import WatchEvent
from overlay_sdk.store.kubernetes import (
    EDIT_MESSAGE,
    EXTERNAL_AUTHOR,
    EXTERNAL_MESSAGE,
    OVERLAY_LABEL,
    PLURAL,
    RECORD_ANNOTATION,
    REVISION_ANNOTATION,
    SEQ_ANNOTATION,
    KubernetesStore,
    parse_url,
)
from tests.kmock_support import AIOVERLAYS, CONTROLLER_REVISIONS, ClusterThread, api_client

NS = "team-a"
GROUP, VERSION = "overlays.aioverlay.dev", "v1alpha1"


@pytest.fixture
def cluster() -> Iterator[ClusterThread]:
    with ClusterThread(namespaces=("default", NS)) as running:
        yield running


@pytest.fixture
def store(cluster: ClusterThread) -> Iterator[KubernetesStore]:
    with KubernetesStore(NS, cluster.api_client(), poll_interval=0.05) as s:
        yield s


@pytest.fixture
def kubectl(cluster: ClusterThread) -> k8s.CustomObjectsApi:
    """Another client, writing as a user or the operator would (not through the store)."""
    return k8s.CustomObjectsApi(cluster.api_client())


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kstore, "_backoff", lambda attempt: None)


class TestKubernetesStoreContract(StoreContract):
    """Every behaviour the embedded store has, on the emulated cluster."""


# -- helpers ---------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=dict))


def cr(cluster: ClusterThread, name: str = NAME) -> dict[str, Any] | None:
    """The stored AIOverlay (None if absent), as a plain dict."""
    key = (kmock.resource(AIOVERLAYS), NS, name)
    objects = cluster.server.objects
    if key not in objects or objects[key].deleted:
        return None
    return _plain(objects[key].raw)


def crevs(cluster: ClusterThread) -> dict[str, dict[str, Any]]:
    """The stored ControllerRevisions of the namespace by name, as plain dicts."""
    wanted = kmock.resource(CONTROLLER_REVISIONS)
    return {
        name: _plain(obj.raw) for (res, ns, name), obj in cluster.server.objects.items()
        if res == wanted and ns == NS and not obj.deleted
    }


def sent(request: kmock.Request) -> Any:
    """What the client sent (the emulator's recorded ``data`` is what it stored)."""
    return json.loads(request.text) if request.text else None


def writes(cluster: ClusterThread) -> list[kmock.Request]:
    return [r for r in cluster.requests()
            if r.resource is not None and r.method.value in ("POST", "PATCH", "PUT", "DELETE")]


def interfere_on_first_patch(
    store: KubernetesStore, monkeypatch: pytest.MonkeyPatch, action: Callable[[], object]
) -> list[dict[str, Any]]:
    """Run ``action`` just before the store's first PATCH of an AIOverlay is sent;
    returns the bodies of the store's AIOverlay PATCHes."""
    real = store._api.patch_namespaced_custom_object
    bodies: list[dict[str, Any]] = []

    def patch(*args: Any, **kwargs: Any) -> Any:
        if args[3] == PLURAL:
            if not bodies:
                action()
            bodies.append(copy.deepcopy(args[5]))
        return real(*args, **kwargs)

    monkeypatch.setattr(store._api, "patch_namespaced_custom_object", patch)
    return bodies


# -- the AIOverlay custom resource -----------------------------------------------------------


def test_the_cr_carries_the_spec_metadata_and_the_current_revision(
    store: KubernetesStore, cluster: ClusterThread, kubectl: k8s.CustomObjectsApi
) -> None:
    doc = make_doc(weights=(90, 10), team="crm")
    doc["metadata"]["labels"] = {"tier": "gold", "legacy": "yes"}
    doc["spec"]["sticky"] = {"header": "x-user-id"}
    first = store.apply(parse_overlay(doc), author="ada", message="first")
    obj = cr(cluster)
    assert obj is not None and first.overlay is not None
    assert (obj["apiVersion"], obj["kind"]) == (f"{GROUP}/{VERSION}", "AIOverlay")
    assert obj["spec"] == first.overlay.to_dict()["spec"]
    assert obj["metadata"]["labels"] == {"tier": "gold", "legacy": "yes"}
    notes = obj["metadata"]["annotations"]
    assert notes["team"] == "crm" and notes[REVISION_ANNOTATION] == "1"
    assert json.loads(notes[RECORD_ANNOTATION]) == {
        "name": NAME, "revision": 1, "action": "apply", "overlay": parse_overlay(doc).to_dict(),
        "author": "ada", "createdAt": first.created_at.isoformat(), "message": "first",
        "changes": first.changes,
    }
    # the operator writes status and kopf its annotation; neither is the overlay's
    kubectl.patch_namespaced_custom_object_status(
        GROUP, VERSION, NS, PLURAL, NAME, {"status": {"observedGeneration": 1, "revision": 1}})
    kubectl.patch_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, NAME,
        {"metadata": {"annotations": {"kopf.zalando.org/last-handled-configuration": "{}"}}})
    doc2 = make_doc(weights=(100,))
    doc2["metadata"]["labels"] = {"tier": "silver"}
    second = store.apply(parse_overlay(doc2), expected_revision=1)
    obj = cr(cluster)
    assert obj is not None
    assert obj["spec"] == parse_overlay(doc2).to_dict()["spec"]  # sticky and route 2 gone
    assert obj["metadata"]["labels"] == {"tier": "silver"}
    notes = obj["metadata"]["annotations"]
    assert "team" not in notes and notes[REVISION_ANNOTATION] == "2"
    assert notes["kopf.zalando.org/last-handled-configuration"] == "{}"
    assert obj["status"] == {"observedGeneration": 1, "revision": 1}
    assert obj["metadata"]["generation"] == 2
    assert store.get(NAME) == second and second.overlay == parse_overlay(doc2)


def test_every_write_is_strict_and_names_the_field_manager(
    store: KubernetesStore, cluster: ClusterThread
) -> None:
    store.apply(make_overlay(), expected_revision=0)
    store.apply(make_overlay(weights=(90, 10)), expected_revision=1)
    store.delete(NAME)
    store.apply(make_overlay(), expected_revision=0)
    posts_and_patches = [r for r in writes(cluster) if r.method.value in ("POST", "PATCH")]
    assert {r.resource for r in posts_and_patches} == {
        kmock.resource(AIOVERLAYS), kmock.resource(CONTROLLER_REVISIONS)}
    assert len(posts_and_patches) >= 8
    for request in posts_and_patches:
        assert request.params.get("fieldValidation") == "Strict", request.url
        assert request.params.get("fieldManager") == "overlay-sdk", request.url
    assert not [r for r in cluster.requests() if r.method.value == "PUT"]
    # the CR PATCH is conditional on the resourceVersion the store read
    patch = next(r for r in posts_and_patches
                 if r.method.value == "PATCH" and r.resource == kmock.resource(AIOVERLAYS))
    assert sent(patch)["metadata"]["resourceVersion"].isdigit()


def test_each_revision_is_a_controller_revision_owned_by_the_live_overlay(
    store: KubernetesStore, cluster: ClusterThread
) -> None:
    store.apply(make_overlay(), author="ada", message="first")
    store.apply(make_overlay(weights=(90, 10)), author="bob")
    history = store.history(NAME)
    obj = cr(cluster)
    assert obj is not None
    owner = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "AIOverlay", "name": NAME,
             "uid": obj["metadata"]["uid"], "controller": True, "blockOwnerDeletion": False}
    stored = crevs(cluster)
    assert sorted(stored) == [f"{NAME}.r1", f"{NAME}.r2"]
    for rev in history:
        item = stored[f"{NAME}.r{rev.revision}"]
        assert (item["apiVersion"], item["kind"]) == ("apps/v1", "ControllerRevision")
        assert item["revision"] == rev.revision
        assert item["metadata"]["labels"] == {
            OVERLAY_LABEL: NAME, "overlays.aioverlay.dev/action": "apply",
            "overlays.aioverlay.dev/revision": str(rev.revision),
            "app.kubernetes.io/managed-by": "overlay-sdk",
        }
        assert item["metadata"]["ownerReferences"] == [owner]
        assert item["data"] == {
            "name": NAME, "revision": rev.revision, "action": "apply",
            "overlay": rev.overlay.to_dict() if rev.overlay else None, "author": rev.author,
            "createdAt": rev.created_at.isoformat(), "message": rev.message,
            "changes": rev.changes,
        }
    assert [r.author for r in history] == ["ada", "bob"]


def test_delete_releases_the_history_then_deletes_the_cr(
    store: KubernetesStore, cluster: ClusterThread
) -> None:
    store.apply(make_overlay())
    store.apply(make_overlay(weights=(90, 10)))
    obj = cr(cluster)
    assert obj is not None
    uid = obj["metadata"]["uid"]
    created_rv = {n: i["metadata"]["resourceVersion"] for n, i in crevs(cluster).items()}
    mark = len(cluster.requests())
    tomb = store.delete(NAME, author="ops", message="retired")
    assert cr(cluster) is None
    stored = crevs(cluster)
    for n in (f"{NAME}.r1", f"{NAME}.r2"):  # released: the garbage collector keeps them
        assert "ownerReferences" not in stored[n]["metadata"]
        assert stored[n]["metadata"]["annotations"] == {SEQ_ANNOTATION: created_rv[n]}
    grave = stored[f"{NAME}.r3"]
    assert "ownerReferences" not in grave["metadata"]
    assert grave["metadata"]["labels"]["overlays.aioverlay.dev/action"] == "delete"
    assert grave["data"]["overlay"] is None and grave["data"]["author"] == "ops"
    assert store.revision(NAME, 3) == tomb
    # order: tombstone on the CR, its ControllerRevision, the releases, then the DELETE
    after = [(r.method.value, r.resource == kmock.resource(AIOVERLAYS), r.name)
             for r in cluster.requests()[mark:] if r.method.value != "GET"]
    assert after == [
        ("PATCH", True, NAME), ("POST", False, None),
        ("PATCH", False, f"{NAME}.r1"), ("PATCH", False, f"{NAME}.r2"),
        ("DELETE", True, NAME),
    ]
    delete = [r for r in cluster.requests() if r.method.value == "DELETE"][-1]
    assert sent(delete)["preconditions"] == {"uid": uid}
    assert sent(delete)["propagationPolicy"] == "Background"
    # re-created: a new CR owns the new revisions, numbering continues, seqs stay in order
    again = store.apply(make_overlay(), expected_revision=0)
    new = cr(cluster)
    assert again.revision == 4 and new is not None and new["metadata"]["uid"] != uid
    owners = crevs(cluster)[f"{NAME}.r4"]["metadata"]["ownerReferences"]
    assert [o["uid"] for o in owners] == [new["metadata"]["uid"]]
    events = list(store.watch(since=0, timeout=0.05))
    assert [e.revision.revision for e in events] == [1, 2, 3, 4]
    assert [e.seq for e in events][:2] == [int(created_rv[f"{NAME}.r1"]),
                                          int(created_rv[f"{NAME}.r2"])]


# -- conflicts on resourceVersion ----------------------------------------------------------


@pytest.mark.parametrize("change", ["status", "kopf-annotation", "kubectl-spec-edit"])
def test_a_409_from_a_change_that_is_no_revision_is_retried(
    store: KubernetesStore, cluster: ClusterThread, kubectl: k8s.CustomObjectsApi,
    monkeypatch: pytest.MonkeyPatch, change: str,
) -> None:
    store.apply(make_overlay(), expected_revision=0)

    def act() -> None:
        if change == "status":
            kubectl.patch_namespaced_custom_object_status(
                GROUP, VERSION, NS, PLURAL, NAME, {"status": {"observedGeneration": 1}})
        elif change == "kopf-annotation":
            kubectl.patch_namespaced_custom_object(
                GROUP, VERSION, NS, PLURAL, NAME, {"metadata": {"finalizers": ["kopf"]}})
        else:
            kubectl.patch_namespaced_custom_object(
                GROUP, VERSION, NS, PLURAL, NAME, {"spec": {"mode": "shadow"}})

    before = cr(cluster)
    assert before is not None
    bodies = interfere_on_first_patch(store, monkeypatch, act)
    rev = store.apply(make_overlay(weights=(90, 10)), expected_revision=1)
    assert rev.revision == 2 and store.get(NAME) == rev
    assert len(bodies) == 2  # refused once (409), then written
    rvs = [b["metadata"]["resourceVersion"] for b in bodies]
    assert rvs[0] == before["metadata"]["resourceVersion"] and rvs[1] != rvs[0]
    after = cr(cluster)
    assert after is not None and rev.overlay is not None
    assert after["spec"] == rev.overlay.to_dict()["spec"]
    if change == "status":
        assert after["status"] == {"observedGeneration": 1}
    if change == "kopf-annotation":
        assert after["metadata"]["finalizers"] == ["kopf"]
    assert [r.revision for r in store.history(NAME)] == [1, 2]


def test_a_revision_committed_in_between_is_a_real_conflict(
    store: KubernetesStore, cluster: ClusterThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.apply(make_overlay(), expected_revision=0)
    rival = KubernetesStore(NS, cluster.api_client())
    bodies = interfere_on_first_patch(
        store, monkeypatch,
        lambda: rival.apply(make_overlay(weights=(50, 50)), expected_revision=1, author="rival"))
    with pytest.raises(ConflictError) as info:
        store.apply(make_overlay(weights=(90, 10)), expected_revision=1, author="me")
    err = info.value
    assert (err.expected, err.current) == (1, 2)
    text = str(err)
    assert NAME in text and "expected revision 1" in text and "current revision 2" in text
    assert len(bodies) == 1  # refused, then the fresh read showed a new revision
    assert [(r.revision, r.author) for r in store.history(NAME)][1:] == [(2, "rival")]
    assert sorted(crevs(cluster)) == [f"{NAME}.r1", f"{NAME}.r2"]
    # without expected_revision there is nothing to check: written on top of the rival's 3
    monkeypatch.undo()
    bodies = interfere_on_first_patch(
        store, monkeypatch, lambda: rival.apply(make_overlay(weights=(60, 40)), author="rival"))
    rev = store.apply(make_overlay(weights=(80, 20)), author="me")
    assert rev.revision == 4 and len(bodies) == 2
    assert [r.author for r in store.history(NAME)][1:] == ["rival", "rival", "me"]


def test_a_409_that_never_stops_gives_up_with_a_conflict(
    store: KubernetesStore, monkeypatch: pytest.MonkeyPatch, no_backoff: None
) -> None:
    """Unit level: the API is faked to answer every PATCH with 409, the CR never changing."""
    store.apply(make_overlay())
    calls: list[str] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[4])
        raise ApiException(status=409, reason="Conflict")

    monkeypatch.setattr(store._api, "patch_namespaced_custom_object", refuse)
    with pytest.raises(ConflictError) as info:
        store.apply(make_overlay(weights=(90, 10)), expected_revision=1)
    assert len(calls) == kstore._ATTEMPTS
    assert "kept changing" in str(info.value) and NAME in str(info.value)
    assert "expected revision 1, current revision 1" in str(info.value)
    assert (info.value.expected, info.value.current) == (1, 1)
    assert [r.revision for r in store.history(NAME)] == [1]


def test_a_single_fake_409_is_retried(
    store: KubernetesStore, monkeypatch: pytest.MonkeyPatch, no_backoff: None
) -> None:
    store.apply(make_overlay())
    real = store._api.patch_namespaced_custom_object
    calls: list[int] = []

    def once(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise ApiException(status=409, reason="Conflict")
        return real(*args, **kwargs)

    monkeypatch.setattr(store._api, "patch_namespaced_custom_object", once)
    assert store.apply(make_overlay(weights=(90, 10)), expected_revision=1).revision == 2
    assert len(calls) == 2


# -- repairs ---------------------------------------------------------------------------------


def test_a_writer_interrupted_after_its_commit_is_repaired(
    store: KubernetesStore, cluster: ClusterThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.apply(make_overlay())

    def crash(*args: Any) -> Any:
        raise BackendError("simulated crash before the history copy")

    monkeypatch.setattr(store, "_create_crev", crash)
    with pytest.raises(BackendError, match="simulated"):
        store.apply(make_overlay(weights=(90, 10)), message="interrupted")
    monkeypatch.undo()
    obj = cr(cluster)
    assert obj is not None and obj["metadata"]["annotations"][REVISION_ANNOTATION] == "2"
    assert f"{NAME}.r2" not in crevs(cluster)
    # committed, so reads see it already
    assert store.get(NAME).message == "interrupted"
    assert [r.revision for r in store.history(NAME)] == [1, 2]
    assert store.revision(NAME, 2).message == "interrupted"
    # the next write records it first
    store.apply(make_overlay(weights=(80, 20)))
    stored = crevs(cluster)
    assert {f"{NAME}.r2", f"{NAME}.r3"} <= set(stored)
    assert stored[f"{NAME}.r2"]["data"]["message"] == "interrupted"
    assert stored[f"{NAME}.r2"]["metadata"]["ownerReferences"][0]["uid"] == \
        obj["metadata"]["uid"]
    events = list(store.watch(since=0, timeout=0.05))
    assert [e.revision.revision for e in events] == [1, 2, 3]


def test_an_interrupted_delete_is_finished_by_the_next_write(
    store: KubernetesStore, cluster: ClusterThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.apply(make_overlay())
    old = cr(cluster)
    assert old is not None

    def crash(*args: Any) -> Any:
        raise BackendError("simulated crash before the CR is deleted")

    monkeypatch.setattr(store, "_finish_delete", crash)
    with pytest.raises(BackendError, match="simulated"):
        store.delete(NAME, message="gone")
    monkeypatch.undo()
    assert cr(cluster) is not None  # still there, carrying the tombstone
    with pytest.raises(NotFoundError, match="deleted at revision 2"):
        store.get(NAME)
    assert store.list() == []
    assert [(r.revision, r.action) for r in store.history(NAME)] == [(1, "apply"),
                                                                    (2, "delete")]
    with pytest.raises(NotFoundError, match="nothing to delete"):
        store.delete(NAME)
    rev = store.apply(make_overlay(), expected_revision=0)
    new = cr(cluster)
    assert rev.revision == 3 and new is not None
    assert new["metadata"]["uid"] != old["metadata"]["uid"]
    assert "ownerReferences" not in crevs(cluster)[f"{NAME}.r1"]["metadata"]


def test_kubectl_delete_is_recorded_as_a_tombstone(
    store: KubernetesStore, cluster: ClusterThread, kubectl: k8s.CustomObjectsApi
) -> None:
    store.apply(make_overlay())
    kubectl.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, NAME)
    with pytest.raises(NotFoundError, match="deleted outside overlay-sdk after revision 1"):
        store.get(NAME)
    with pytest.raises(ConflictError) as info:
        store.apply(make_overlay(), expected_revision=1)
    assert info.value.current is None
    rev = store.apply(make_overlay(weights=(50, 50)), expected_revision=0)
    assert rev.revision == 3
    history = store.history(NAME)
    assert [(r.revision, r.action, r.author) for r in history][:2] == [
        (1, "apply", history[0].author), (2, "delete", EXTERNAL_AUTHOR)]
    assert history[1].message == EXTERNAL_MESSAGE and history[1].changes == "deleted"


def test_a_spec_edited_with_kubectl_is_the_next_revision(
    store: KubernetesStore, cluster: ClusterThread, kubectl: k8s.CustomObjectsApi
) -> None:
    """kubectl edit or a GitOps sync changes the CR's spec beside the store: reads show it as
    revision 2 (by ``kubernetes``); a write based on revision 1 is a conflict, not a silent
    undo; the edit is recorded in the history before the next revision."""
    store.apply(make_overlay(), author="ana")
    edited = make_doc(weights=(90, 10))["spec"]
    kubectl.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, NAME, {"spec": edited})
    current = store.get(NAME)
    assert (current.revision, current.author, current.message) == (2, EXTERNAL_AUTHOR,
                                                                    EDIT_MESSAGE)
    assert current.overlay is not None
    assert [r.weight for r in current.overlay.spec.routes] == [90, 10]
    assert "copilot:4" in current.changes
    assert [r.revision for r in store.history(NAME)] == [1, 2]
    # when: the edit's managedFields time; kmock keeps no managedFields, so "now" here
    same = dataclasses.replace(store.revision(NAME, 2), created_at=current.created_at)
    assert same == current
    assert [r.revision for r in store.list()] == [2]
    assert sorted(crevs(cluster)) == [f"{NAME}.r1"]  # reads never write
    with pytest.raises(ConflictError) as info:
        store.apply(make_overlay(weights=(80, 20)), expected_revision=1)
    assert (info.value.expected, info.value.current) == (1, 2)
    obj = cr(cluster)
    assert obj is not None and obj["metadata"]["annotations"][REVISION_ANNOTATION] == "2"
    assert obj["spec"]["routes"][0]["weight"] == 90  # the edit is kept, and recorded
    recorded = crevs(cluster)[f"{NAME}.r2"]["data"]
    assert (recorded["author"], recorded["revision"]) == (EXTERNAL_AUTHOR, 2)
    assert store.get(NAME).revision == 2 and store.get(NAME).author == EXTERNAL_AUTHOR
    rev = store.apply(make_overlay(weights=(80, 20)), expected_revision=2)
    assert rev.revision == 3 and rev.changes.startswith("routes copilot:3 90->80")


def test_an_edit_is_dated_by_the_managed_fields_of_whoever_wrote_the_spec() -> None:
    obj = {"metadata": {"managedFields": [
        {"manager": "kubectl-edit", "operation": "Update", "time": "2026-01-02T03:04:05Z",
         "fieldsV1": {"f:spec": {"f:routes": {}}}},
        {"manager": "argocd-controller", "operation": "Apply", "time": "2026-01-01T00:00:00Z",
         "fieldsV1": {"f:spec": {}}},
        {"manager": "overlay-sdk", "time": "2026-03-01T00:00:00Z", "fieldsV1": {"f:spec": {}}},
        {"manager": "overlay-operator", "time": "2026-04-01T00:00:00Z",
         "fieldsV1": {"f:status": {}}},
    ]}}
    assert kstore._edited_at(obj) == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_spec_edits_that_change_nothing_or_are_invalid_are_no_revision(
    store: KubernetesStore, cluster: ClusterThread, kubectl: k8s.CustomObjectsApi
) -> None:
    first = store.apply(make_overlay())
    spec = copy.deepcopy(make_doc()["spec"])
    spec["mode"] = "passthrough"  # the default, spelled out (as API server defaulting does)
    kubectl.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, NAME, {"spec": spec})
    assert store.get(NAME) == first
    spec["routes"][0]["weight"] = 60  # weights no longer sum to 100: the SDK refuses it
    kubectl.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, NAME, {"spec": spec})
    assert store.get(NAME) == first
    assert store.apply(make_overlay(weights=(50, 50)), expected_revision=1).revision == 2
    obj = cr(cluster)
    assert obj is not None and [r["weight"] for r in obj["spec"]["routes"]] == [50, 50]


def test_a_stale_read_of_an_absent_cr_records_no_deletion(
    store: KubernetesStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CR read as absent, then the history read ending with an apply: a writer may have
    re-created the CR in between, so the CR is read again before a tombstone is written."""
    store.apply(make_overlay())
    real = store._read
    reads: list[str] = []

    def stale_first(name: str) -> Any:
        reads.append(name)
        return None if len(reads) == 1 else real(name)

    monkeypatch.setattr(store, "_read", stale_first)
    assert store.apply(make_overlay(weights=(50, 50)), expected_revision=1).revision == 2
    assert [(r.revision, r.action) for r in store.history(NAME)] == [(1, "apply"),
                                                                    (2, "apply")]


def test_settle_keeps_the_history_of_a_cr_held_by_a_finalizer(
    store: KubernetesStore, cluster: ClusterThread, kubectl: k8s.CustomObjectsApi,
    no_backoff: None,
) -> None:
    store.apply(make_overlay())
    kubectl.patch_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, NAME, {"metadata": {"finalizers": ["operator/cleanup"]}})
    kubectl.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, NAME)
    assert cr(cluster) is not None  # terminating
    with pytest.raises(NotFoundError, match="being deleted by Kubernetes after revision 1"):
        store.get(NAME)
    store.settle(NAME)  # what the operator's delete handler calls
    stored = crevs(cluster)
    assert "ownerReferences" not in stored[f"{NAME}.r1"]["metadata"]
    assert stored[f"{NAME}.r2"]["data"]["author"] == EXTERNAL_AUTHOR
    store.settle(NAME)  # idempotent
    assert sorted(crevs(cluster)) == [f"{NAME}.r1", f"{NAME}.r2"]
    with pytest.raises(ConflictError, match=r"still being deleted by Kubernetes \(finalizers: "
                       r"operator/cleanup\)"):
        store.apply(make_overlay(), expected_revision=0)
    kubectl.patch_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, NAME, {"metadata": {"finalizers": None}})
    assert cr(cluster) is None
    assert store.apply(make_overlay(), expected_revision=0).revision == 3


def test_a_cr_made_outside_overlay_sdk_is_adopted_by_its_first_apply(
    store: KubernetesStore, cluster: ClusterThread, kubectl: k8s.CustomObjectsApi
) -> None:
    doc = make_doc("manual")
    kubectl.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "AIOverlay", **doc})
    with pytest.raises(NotFoundError, match="not written by overlay-sdk"):
        store.get("manual")
    assert store.list() == []
    rev = store.apply(parse_overlay(doc), expected_revision=0)
    assert rev.revision == 1 and store.get("manual") == rev
    obj = cr(cluster, "manual")
    assert obj is not None
    owners = crevs(cluster)["manual.r1"]["metadata"]["ownerReferences"]
    assert [o["uid"] for o in owners] == [obj["metadata"]["uid"]]


# -- watch ---------------------------------------------------------------------------------


def test_watch_uses_the_api_watch_from_the_lists_resource_version(
    store: KubernetesStore, cluster: ClusterThread
) -> None:
    store.apply(make_overlay("a"))
    events = store.watch(timeout=0.5)
    store.apply(make_overlay("b"))
    store.delete("a")
    got = [(e.revision.name, e.revision.revision, e.revision.action) for e in events]
    assert got == [("b", 1, "apply"), ("a", 2, "delete")]
    watches = [r for r in cluster.requests() if r.params.get("watch") == "true"]
    assert watches and all(r.resource == kmock.resource(CONTROLLER_REVISIONS) for r in watches)
    assert watches[0].params["labelSelector"] == OVERLAY_LABEL
    assert watches[0].params["resourceVersion"].isdigit()


def test_watch_relists_after_410_gone(store: KubernetesStore, cluster: ClusterThread) -> None:
    cluster.server[kmock.action.WATCH][:1] << 410
    store.apply(make_overlay())
    events = store.watch(since=0, timeout=0.3)
    assert next(events).revision.revision == 1
    store.apply(make_overlay(weights=(50, 50)))
    assert [e.revision.revision for e in events] == [2]
    lists = [r for r in cluster.requests() if r.resource == kmock.resource(CONTROLLER_REVISIONS)
             and r.method.value == "GET" and r.params.get("watch") != "true"]
    assert len(lists) >= 2


def test_watch_polls_where_the_server_refuses_watches(
    store: KubernetesStore, cluster: ClusterThread
) -> None:
    cluster.server[kmock.action.WATCH] << 405
    received: list[WatchEvent] = []
    events = store.watch(timeout=1)
    t = threading.Thread(target=lambda: received.extend(events))
    t.start()
    store.apply(make_overlay())
    store.apply(make_overlay(weights=(50, 50)))
    t.join(10)
    assert [e.revision.revision for e in received] == [1, 2]


def test_closing_the_store_ends_a_watch_without_timeout(
    cluster: ClusterThread
) -> None:
    s = KubernetesStore(NS, cluster.api_client())
    s.apply(make_overlay())
    events = s.watch(since=0)
    assert next(events).revision.revision == 1
    done = threading.Event()

    def drain() -> None:
        list(events)
        done.set()

    t = threading.Thread(target=drain)
    t.start()
    time.sleep(0.1)
    start = time.monotonic()
    s.close()
    t.join(5)
    assert done.is_set() and time.monotonic() - start < 2
    with pytest.raises(BackendError, match="closed"):
        s.get(NAME)


# -- addresses, configuration, arguments, errors -------------------------------------------


@pytest.mark.parametrize(("url", "parsed"), [
    ("k8s:///team-a", (None, "team-a")),
    ("k8s://kind-dev/team-a", ("kind-dev", "team-a")),
    ("K8S://kind-dev/team-a", ("kind-dev", "team-a")),
    ("k8s://ada%40prod/team-a", ("ada@prod", "team-a")),
    ("k8s://arn:aws:eks:eu-west-1:123:cluster/prod/team-a",
     ("arn:aws:eks:eu-west-1:123:cluster/prod", "team-a")),
])
def test_parse_url(url: str, parsed: tuple[str | None, str]) -> None:
    assert parse_url(url) == parsed


@pytest.mark.parametrize(("url", "path", "words"), [
    ("team-a", "url", "not a cluster address"),
    ("", "url", "k8s://CONTEXT/NAMESPACE"),
    (None, "url", "k8s://CONTEXT/NAMESPACE"),
    ("http://dev/team-a", "url.scheme", "'http'"),
    ("k8s://dev", "url.namespace", "names no namespace"),
    ("k8s://dev/", "url.namespace", "give a namespace"),
    ("k8s:///Team_A", "url.namespace", "'Team_A' in 'k8s:///Team_A' is not a namespace"),
    ("k8s:///" + "a" * 64, "url.namespace", "at most 63"),
    ("k8s://dev/team-a?x=1", "url", "query"),
])
def test_bad_urls_name_the_part_at_fault(url: Any, path: str, words: str) -> None:
    with pytest.raises(ValidationError) as info:
        KubernetesStore.from_url(url)
    assert info.value.paths == [path]
    assert words in str(info.value)


def _kubeconfig(tmp_path: Path, server: str, *, current: str | None = "dev") -> Path:
    config: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "emu", "cluster": {"server": server}}],
        "users": [{"name": "ada", "user": {"token": "ada-token"}},
                  {"name": "bob", "user": {"token": "bob-token"}}],
        "contexts": [{"name": "dev", "context": {"cluster": "emu", "user": "ada"}},
                     {"name": "prod/eu", "context": {"cluster": "emu", "user": "bob"}}],
    }
    if current:
        config["current-context"] = current
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def test_from_url_uses_the_kubeconfig_context(
    cluster: ClusterThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(_kubeconfig(tmp_path, cluster.url)))
    with KubernetesStore.from_url("k8s:///team-a") as current:
        assert current.url == "k8s:///team-a" and current.namespace == NS
        current.apply(make_overlay())
    with KubernetesStore.from_url("k8s://prod/eu/team-a") as named:
        assert named.context == "prod/eu" and named.get(NAME).revision == 1
    auth = [r.headers.get("Authorization") for r in cluster.requests()]
    assert "Bearer ada-token" in auth and "Bearer bob-token" in auth
    with pytest.raises(ValidationError) as info:
        KubernetesStore.from_url("k8s://nope/team-a")
    assert info.value.paths == ["url.context"]
    assert "'nope' is not in the kubeconfig" in str(info.value)
    assert "dev, prod/eu" in str(info.value)
    with pytest.raises(ValidationError) as info:
        KubernetesStore(NS, context="nope")
    assert info.value.paths == ["context"]


def test_from_url_without_current_context_or_kubeconfig(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(_kubeconfig(tmp_path, "http://x", current=None)))
    with pytest.raises(ValidationError) as info:
        KubernetesStore.from_url("k8s:///team-a")
    assert info.value.paths == ["url.context"] and "no current context" in str(info.value)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ValidationError) as info:
        KubernetesStore.from_url("k8s:///team-a")
    assert info.value.paths == ["url.context"] and "no kubeconfig found" in str(info.value)


def test_in_a_pod_an_empty_context_uses_the_service_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token, ca = tmp_path / "token", tmp_path / "ca.crt"
    token.write_text("pod-token")
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setattr(kstore, "SERVICE_TOKEN_FILE", str(token))
    monkeypatch.setattr(kstore, "SERVICE_CA_FILE", str(ca))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    with KubernetesStore.from_url("k8s:///team-a") as s:
        configuration = s.api_client.configuration
        assert configuration.host == "https://10.0.0.1:443"
        assert configuration.api_key["BearerToken"] == "bearer pod-token"
        assert "in-cluster" in repr(s._where)


def test_constructor_arguments_are_checked(cluster: ClusterThread) -> None:
    client = cluster.api_client()
    for kwargs, path in [({"namespace": "Bad_NS"}, "namespace"),
                         ({"namespace": ""}, "namespace"),
                         ({"context": "dev"}, "context"),
                         ({"poll_interval": 0}, "poll_interval")]:
        args: dict[str, Any] = {"namespace": NS, "api_client": client, **kwargs}
        with pytest.raises(ValidationError) as info:
            KubernetesStore(**args)
        assert info.value.paths == [path]
    s = KubernetesStore(NS, client)
    assert repr(s) == "KubernetesStore('team-a')" and s.url == "k8s:///team-a"


def test_apply_checks_namespace_and_reserved_annotations(
    store: KubernetesStore, cluster: ClusterThread
) -> None:
    other = make_doc()
    other["metadata"]["namespace"] = "elsewhere"
    with pytest.raises(ValidationError) as info:
        store.apply(parse_overlay(other))
    assert info.value.paths == ["metadata.namespace"] and "k8s://CONTEXT/elsewhere" in str(
        info.value)
    reserved = make_doc(**{RECORD_ANNOTATION: "{}"})
    with pytest.raises(ValidationError) as info:
        store.apply(parse_overlay(reserved))
    assert info.value.paths == [f"metadata.annotations[{RECORD_ANNOTATION!r}]"]
    assert writes(cluster) == []
    same = make_doc()
    same["metadata"]["namespace"] = NS
    rev = store.apply(parse_overlay(same))
    assert store.get(NAME) == rev and rev.overlay is not None
    assert rev.overlay.metadata.namespace == NS


def test_invalid_names_are_not_found_without_a_request(
    store: KubernetesStore, cluster: ClusterThread
) -> None:
    for call in (store.get, store.history, store.delete, store.settle,
                 lambda n: store.revision(n, 1)):
        with pytest.raises(NotFoundError):
            call("a/b")
    assert cluster.requests() == []


def test_api_failures_become_backend_errors_that_say_what_to_check(
    store: KubernetesStore, cluster: ClusterThread
) -> None:
    cluster.server["post", kmock.resource(AIOVERLAYS)] << 422 << {
        "kind": "Status", "code": 422,
        "message": 'AIOverlay in version "v1alpha1" cannot be handled: strict decoding error: '
                   'unknown field "spec.placement"'}
    with pytest.raises(BackendError) as info:
        store.apply(make_overlay())
    text = str(info.value)
    assert "unknown field" in text and "re-apply deploy/crds" in text and NS in text
    cluster.server["get", kmock.resource(AIOVERLAYS)] << 403
    with pytest.raises(BackendError, match="forbidden: the account needs aioverlays"):
        store.list()
    unreachable = KubernetesStore(NS, api_client("http://127.0.0.1:9"))
    with pytest.raises(BackendError, match="cannot reach the API server"):
        unreachable.get(NAME)


def test_a_hand_edited_record_is_a_backend_error(
    store: KubernetesStore, kubectl: k8s.CustomObjectsApi
) -> None:
    store.apply(make_overlay())
    kubectl.patch_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, NAME,
        {"metadata": {"annotations": {RECORD_ANNOTATION: '{"revision": "two"}'}}})
    with pytest.raises(BackendError, match="does not read as an overlay revision"):
        store.get(NAME)


# -- the emulator itself -------------------------------------------------------------------


def test_the_emulator_stops_with_a_watch_still_open() -> None:
    start = time.monotonic()
    with ClusterThread() as running:
        api = k8s.CustomObjectsApi(running.api_client())
        api.list_namespaced_custom_object("apps", "v1", NS, "controllerrevisions", watch=True,
                                          _preload_content=False)
    assert time.monotonic() - start < 5


def test_the_emulator_keeps_the_api_server_rules_the_store_relies_on(
    cluster: ClusterThread, kubectl: k8s.CustomObjectsApi
) -> None:
    body = {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": 1}, "status": {"ready": 9}}
    made = kubectl.create_namespaced_custom_object("apps", "v1", NS, "deployments", body)
    meta = made["metadata"]
    assert meta["uid"] and meta["generation"] == 1 and meta["namespace"] == NS
    assert "status" not in made  # the status subresource ignores status on create
    with pytest.raises(ApiException) as info:
        kubectl.create_namespaced_custom_object("apps", "v1", NS, "deployments", body)
    assert info.value.status == 409 and json.loads(info.value.body)["reason"] == "AlreadyExists"
    status = kubectl.patch_namespaced_custom_object_status(
        "apps", "v1", NS, "deployments", "web", {"status": {"ready": 1}, "spec": {"replicas": 5}})
    assert status["spec"] == {"replicas": 1} and status["metadata"]["generation"] == 1
    assert int(status["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])
    with pytest.raises(ApiException) as info:
        kubectl.patch_namespaced_custom_object(
            "apps", "v1", NS, "deployments", "web",
            {"metadata": {"resourceVersion": meta["resourceVersion"]}, "spec": {"replicas": 2}})
    assert info.value.status == 409 and json.loads(info.value.body)["reason"] == "Conflict"
    scaled = kubectl.patch_namespaced_custom_object(
        "apps", "v1", NS, "deployments", "web", {"spec": {"replicas": 2}, "status": {"x": 1}})
    assert scaled["metadata"]["generation"] == 2 and scaled["status"] == {"ready": 1}
    listed = kubectl.list_namespaced_custom_object("apps", "v1", NS, "deployments",
                                                   label_selector="app=web,!other")
    assert [i["metadata"]["name"] for i in listed["items"]] == ["web"]
    assert int(listed["metadata"]["resourceVersion"]) == cluster.server.resource_version
    assert kubectl.list_namespaced_custom_object(
        "apps", "v1", NS, "deployments", label_selector="app!=web")["items"] == []
    from kubernetes.dynamic import DynamicClient  # server-side apply creates a missing object

    deployments = DynamicClient(cluster.api_client()).resources.get(
        api_version="apps/v1", kind="Deployment")
    applied = deployments.server_side_apply(
        body={"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api"},
              "spec": {"replicas": 3}},
        namespace=NS, field_manager="overlay-operator", force_conflicts=True)
    assert applied.metadata.generation == 1 and applied.spec.replicas == 3
