"""The operator's pure decisions (:mod:`overlay_sdk.k8s.reconcile`), as tables of cases:
what a Deployment's conditions say failed, what that makes of the overlay (``Degraded``,
``Ready``, an Event), the revision a status follows when the spec stays, and what a status
tells the SDK's ``o.status()``. The operator loop itself is in ``test_operator.py``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from overlay_sdk.crd_cel import crd_errors
from overlay_sdk.k8s import reconcile as rc

GROUP, VERSION = "overlays.aioverlay.dev", "v1alpha1"
NOW = datetime(2025, 1, 31, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=3)
OWNER = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "AIOverlay", "controller": True, "uid": "u"}
WAITING = rc.Readiness("False", "Progressing", "waiting for o-gateway (0/2 available)")
AVAILABLE = rc.Readiness("True", "Available", "2 Deployments available")
QUOTA = rc.Problem("FailedCreate", "Deployment o-copilot-v3: exceeded quota")


def cond(type_: str, status: str, reason: str = "", message: str = "") -> dict[str, str]:
    return {"type": type_, "status": status, "reason": reason, "message": message}


def deployment(*conditions: Mapping[str, Any], name: str = "o-copilot-v3", seen: int = 1,
               generation: int = 1, owner: str = "u") -> dict[str, Any]:
    return {"kind": "Deployment",
            "metadata": {"name": name, "uid": f"d-{name}", "generation": generation,
                         "ownerReferences": [{**OWNER, "uid": owner}]},
            "spec": {"replicas": 1},
            "status": {"observedGeneration": seen, "availableReplicas": 0,
                       "updatedReplicas": 0, "conditions": list(conditions)}}


def by_type(status: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def shown(status: Mapping[str, Any] | None) -> dict[str, tuple[str, str, str]] | None:
    """(status, reason, message) of Degraded and Ready."""
    if status is None:
        return None
    c = by_type(status)
    return {t: (c[t]["status"], c[t]["reason"], c[t]["message"]) for t in (rc.DEGRADED,
                                                                         rc.READY)}


# -- what failed in a Deployment ---------------------------------------------------------------


STALLED = cond("Progressing", "False", "ProgressDeadlineExceeded",
               'ReplicaSet "o-copilot-v3-5c8b" has timed out progressing.')


@pytest.mark.parametrize(("conditions", "expected"), [
    ([], None),
    ([cond("Available", "False", "MinimumReplicasUnavailable", "no")], None),
    ([cond("ReplicaFailure", "True", "FailedCreate", 'pods "p" is forbidden: exceeded quota')],
     rc.Problem("FailedCreate", 'pods "p" is forbidden: exceeded quota')),
    ([{"type": "ReplicaFailure", "status": "True"}],
     rc.Problem("ReplicaFailure", "its pods cannot be created")),
    ([cond("ReplicaFailure", "False", "FailedCreate", "fixed")], None),
    ([STALLED], rc.Problem("ProgressDeadlineExceeded",
                           'ReplicaSet "o-copilot-v3-5c8b" has timed out progressing.')),
    ([{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}],
     rc.Problem("ProgressDeadlineExceeded", "its rollout exceeded its progress deadline")),
    ([cond("Progressing", "False", "ReplicaSetCreateError", "x")], None),
    ([cond("Progressing", "True", "NewReplicaSetAvailable", "done")], None),
    ([cond("Progressing", "Unknown", "ProgressDeadlineExceeded", "x")], None),
    # both: the replica failure is the cause, the stalled rollout its consequence
    ([STALLED, cond("ReplicaFailure", "True", "FailedCreate", "quota")],
     rc.Problem("FailedCreate", "quota")),
], ids=["none", "unavailable-only", "replica-failure", "replica-failure-bare",
        "replica-failure-false", "deadline", "deadline-bare", "progressing-other-reason",
        "progressing-true", "progressing-unknown", "both"])
def test_what_failed_in_a_deployment(conditions: list[dict[str, Any]],
                                     expected: rc.Problem | None) -> None:
    assert rc.deployment_problem(deployment(*conditions)) == expected
    assert rc.child_state(deployment(*conditions)).problem == expected


def test_conditions_of_an_earlier_rollout_are_not_a_problem() -> None:
    """The controller has not observed the current generation: its conditions describe the
    generation before (the one a fix just replaced)."""
    stale = deployment(cond("ReplicaFailure", "True", "FailedCreate", "quota"), seen=1,
                       generation=2)
    assert rc.child_state(stale).problem is None
    assert rc.deployment_problem({"kind": "Deployment", "status": {"conditions": "x"}}) is None
    assert rc.child_state({"kind": "Service", "metadata": {"name": "s"}}).problem is None


# -- what that makes of the overlay ------------------------------------------------------------


def child(name: str, problem: rc.Problem | None, *, owner: str = "u",
          kind: str = "Deployment") -> rc.Child:
    return rc.Child(kind, name, f"d-{name}", owner, False, "0/1 available", problem)


@pytest.mark.parametrize(("children", "expected"), [
    ([], None),
    ([child("o-copilot-v3", None), child("o-gateway", None)], None),
    ([child("o-gateway", rc.Problem("FailedCreate", "quota"))],
     rc.Problem("FailedCreate", "Deployment o-gateway: quota")),
    # sorted by name; another reason is named beside its Deployment
    ([child("o-gateway", rc.Problem("ProgressDeadlineExceeded", "timed out")),
      child("o-copilot-v3", rc.Problem("FailedCreate", "quota"))],
     rc.Problem("FailedCreate", "Deployment o-copilot-v3: quota; Deployment o-gateway "
                "(ProgressDeadlineExceeded): timed out")),
    # another overlay's Deployment (an earlier one of the same name), and a Service
    ([child("o-copilot-v3", rc.Problem("FailedCreate", "quota"), owner="previous"),
      child("o-models", rc.Problem("FailedCreate", "x"), kind="Service")], None),
    ([child(f"o-m{i}", rc.Problem("FailedCreate", "quota")) for i in range(5)],
     rc.Problem("FailedCreate", "Deployment o-m0: quota; Deployment o-m1: quota; "
                "Deployment o-m2: quota; and 2 more")),
], ids=["no-children", "healthy", "one", "two-reasons", "not-ours", "many"])
def test_the_overlays_problem_from_its_deployments(children: list[rc.Child],
                                                   expected: rc.Problem | None) -> None:
    assert rc.degradation(children, uid="u") == expected


def applied(problem: rc.Problem | None = None, ready: rc.Readiness = WAITING,
            generation: int = 2) -> dict[str, Any]:
    return rc.applied_status(None, generation=generation, revision=5, summary="copilot:3=100",
                             endpoints={}, ready=ready, now=NOW, problem=problem)


FAILED = rc.failed_status(applied(), rc.Failure("VersionNotFound", "copilot:9 is missing"),
                          generation=3, now=NOW)
RECONCILED = ("False", "Reconciled", "generation 2 reconciled")


@pytest.mark.parametrize(("old", "ready", "problem", "expected"), [
    # healthy, nothing new
    (applied(), WAITING, None, None),
    # Ready follows availability
    (applied(), AVAILABLE, None, {rc.DEGRADED: RECONCILED,
                                  rc.READY: ("True", "Available", "2 Deployments available")}),
    # a Deployment fails: Degraded and Ready say so, with its reason
    (applied(ready=AVAILABLE), AVAILABLE, QUOTA,
     {rc.DEGRADED: ("True", "FailedCreate", QUOTA.message),
      rc.READY: ("False", "FailedCreate", QUOTA.message)}),
    # still failing, the same way
    (applied(QUOTA), WAITING, QUOTA, None),
    # failing another way
    (applied(QUOTA), WAITING, rc.Problem("ProgressDeadlineExceeded", "timed out"),
     {rc.DEGRADED: ("True", "ProgressDeadlineExceeded", "timed out"),
      rc.READY: ("False", "ProgressDeadlineExceeded", "timed out")}),
    # recovered: cleared, Ready from availability
    (applied(QUOTA), AVAILABLE, None, {rc.DEGRADED: RECONCILED,
                                       rc.READY: ("True", "Available",
                                                  "2 Deployments available")}),
    (applied(QUOTA), WAITING, None, {rc.DEGRADED: RECONCILED,
                                     rc.READY: ("False", "Progressing", WAITING.message)}),
    # a generation that failed to apply: Degraded says why until a reconcile, not the children
    (FAILED, AVAILABLE, QUOTA, None),
    (FAILED, AVAILABLE, None, None),
    # a generation not applied yet
    (applied(generation=1), AVAILABLE, QUOTA, None),
    # no status yet
    (None, AVAILABLE, QUOTA, None),
], ids=["same", "ready", "fails", "still-failing", "fails-otherwise", "recovers-ready",
        "recovers-waiting", "reconcile-failed", "reconcile-failed-healthy", "not-applied",
        "no-status"])
def test_ready_and_degraded_follow_the_children(
        old: dict[str, Any] | None, ready: rc.Readiness, problem: rc.Problem | None,
        expected: dict[str, tuple[str, str, str]] | None) -> None:
    new = rc.ready_status(old, ready, generation=2 if old is not FAILED else 3, now=LATER,
                          problem=problem)
    assert shown(new) == expected
    if new is not None:
        assert crd_errors({"apiVersion": f"{GROUP}/{VERSION}", "kind": "AIOverlay",
                           "metadata": {"name": "o"},
                           "spec": {"host": {"url": "http://h:1"}, "routes": [
                               {"model": "copilot", "version": "3", "weight": 100}]},
                           "status": {**(old or {}), **new}}) == []


def test_a_reconcile_with_a_failing_child_stays_degraded() -> None:
    """A generation applied while a Deployment fails: RoutesApplied=True (the routes are
    applied), Degraded and Ready from the Deployment; its transition time kept."""
    first = applied(QUOTA)
    c = by_type(first)
    assert (c[rc.ROUTES_APPLIED]["status"], c[rc.DEGRADED]["status"],
            c[rc.READY]["status"]) == ("True", "True", "False")
    assert c[rc.DEGRADED]["reason"] == c[rc.READY]["reason"] == "FailedCreate"
    again = rc.applied_status(first, generation=3, revision=6, summary="copilot:3=100",
                              endpoints={}, ready=WAITING, now=LATER, problem=QUOTA)
    c = by_type(again)
    assert c[rc.DEGRADED]["lastTransitionTime"] == "2025-01-31T12:00:00Z"
    assert c[rc.DEGRADED]["observedGeneration"] == 3
    healthy = rc.applied_status(again, generation=4, revision=7, summary="copilot:3=100",
                                endpoints={}, ready=WAITING, now=LATER, problem=None)
    assert shown(healthy) == {rc.DEGRADED: ("False", "Reconciled", "generation 4 reconciled"),
                              rc.READY: ("False", "Progressing", WAITING.message)}


@pytest.mark.parametrize(("old", "new", "expected"), [
    (applied(), applied(QUOTA), ("Warning", "FailedCreate", QUOTA.message)),
    (applied(QUOTA), applied(QUOTA), None),
    (applied(QUOTA), applied(rc.Problem("FailedCreate", "other")),
     ("Warning", "FailedCreate", "other")),
    (applied(QUOTA), applied(ready=AVAILABLE),
     ("Normal", "Recovered", "no Deployment failing any more; 2 Deployments available")),
    (applied(), applied(ready=AVAILABLE), None),
    (None, applied(), None),
], ids=["degraded", "unchanged", "another-problem", "recovered", "healthy", "first"])
def test_the_event_a_change_from_the_children_deserves(
        old: dict[str, Any] | None, new: dict[str, Any],
        expected: tuple[str, str, str] | None) -> None:
    assert rc.health_event(old, new) == expected


# -- the revision a status follows -------------------------------------------------------------


@pytest.mark.parametrize(("old", "revision", "generation", "expected"), [
    # an annotation-only revision, or a rival with the same spec: generation 2 still applied
    (applied(), 6, 2, {"revision": 6, "appliedAt": "2025-01-31T12:03:00.000Z"}),
    (applied(), 5, 2, None),  # already named
    (applied(), None, 2, None),  # not written by the store
    (applied(), 6, 3, None),  # a new generation: its reconcile writes the revision
    (FAILED, 6, 3, None),  # its spec could not be applied: the status keeps what serves
    (applied(QUOTA), 6, 2, {"revision": 6, "appliedAt": "2025-01-31T12:03:00.000Z"}),
    (None, 1, 1, None),  # not reconciled yet
    # an API server that counts no generations
    ({"conditions": [{"type": rc.ROUTES_APPLIED, "status": "True"}]}, 2, None,
     {"revision": 2, "appliedAt": "2025-01-31T12:03:00.000Z"}),
    ({"conditions": [{"type": rc.ROUTES_APPLIED, "status": "True"}]}, 2, 1, None),
], ids=["follows", "already", "no-revision", "new-generation", "failed", "degraded-child",
        "no-status", "no-generation", "no-observed-generation"])
def test_the_status_follows_revisions_that_leave_the_spec(
        old: dict[str, Any] | None, revision: int | None, generation: int | None,
        expected: dict[str, Any] | None) -> None:
    assert rc.revision_status(old, revision=revision, generation=generation,
                              now=LATER) == expected


def test_applied_at_is_precise_and_accepted() -> None:
    moment = datetime(2025, 1, 31, 12, 0, 1, 987654, tzinfo=UTC)
    assert rc.precise_timestamp(moment) == "2025-01-31T12:00:01.987Z"
    assert rc.precise_timestamp(moment.astimezone(
        datetime.now().astimezone().tzinfo)) == "2025-01-31T12:00:01.987Z"
    status = applied()
    assert status["appliedAt"] == "2025-01-31T12:00:00.000Z"


# -- what a status tells the SDK ---------------------------------------------------------------


ENDPOINTS = {"gateway": "http://o-gateway.a.svc.cluster.local:8700"}


def status_of(*, ready: rc.Readiness = WAITING, problem: rc.Problem | None = None,
              generation: int = 2, revision: int | None = 5) -> dict[str, Any]:
    out = rc.applied_status(None, generation=generation, revision=revision,
                            summary="copilot:3=100", endpoints=ENDPOINTS, ready=ready,
                            now=NOW, problem=problem)
    return out


@pytest.mark.parametrize(("status", "generation", "revision", "state", "message"), [
    (None, 1, 1, "behind", "the operator has not reported on it yet"),
    (status_of(), 3, 6, "behind",
     "the operator has not reconciled generation 3 yet (it reported on generation 2)"),
    (status_of(), 2, 6, "behind", "the operator reports revision 5 applied, not revision 6 "
     "yet"),
    (status_of(revision=None), 2, 6, "behind", "the operator reports no revision applied, "
     "not revision 6 yet"),
    (status_of(), 2, 5, "warming", WAITING.message),
    (status_of(ready=AVAILABLE), 2, 5, "serving", "2 Deployments available"),
    (status_of(problem=QUOTA), 2, 5, "failed", f"FailedCreate: {QUOTA.message}"),
    (FAILED, 3, 6, "failed", "VersionNotFound: copilot:9 is missing"),
], ids=["no-status", "new-generation", "new-revision", "no-revision", "warming", "serving",
        "child-failed", "reconcile-failed"])
def test_what_a_status_tells_the_sdk(status: dict[str, Any] | None, generation: int,
                                     revision: int, state: str, message: str) -> None:
    report = rc.reported(status, generation=generation, revision=revision)
    assert (report.state, report.message) == (state, message)
    if status is None:
        assert (report.revision, report.applied_at, report.gateway_url) == (None, None, None)
        assert report.conditions == {}
        return
    assert report.revision == status.get("revision")
    assert report.applied_at == (NOW if "appliedAt" in status else None)
    assert report.gateway_url == (ENDPOINTS["gateway"] if "endpoints" in status else None)
    assert set(report.conditions) == {rc.READY, rc.ROUTES_APPLIED, rc.DEGRADED}


def test_a_name_another_overlay_controls_is_a_name_conflict() -> None:
    manifests = [{"kind": "Deployment", "metadata": {"name": "a-b-c-v1"}},
                 {"kind": "Service", "metadata": {"name": "a-b-c-v1"}}]
    held = {("Service", "a-b-c-v1"): ["uid-other"]}

    def owners(kind: str, name: str) -> list[str | None]:
        return held.get((kind, name), [])

    with pytest.raises(rc.Failure) as info:
        rc.check_names(manifests, uid="uid-mine", owners=owners)
    assert info.value.reason == "NameConflict" and info.value.retry
    assert "Service a-b-c-v1 belongs to another AIOverlay (uid uid-other)" in str(info.value)
    held[("Service", "a-b-c-v1")] = ["uid-mine", None]  # ours, or an orphan: applied
    rc.check_names(manifests, uid="uid-mine", owners=owners)
