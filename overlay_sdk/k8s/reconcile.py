"""What the operator decides about one ``AIOverlay``, as pure functions of plain data.

The kopf handlers in :mod:`overlay_sdk.k8s.operator` do the I/O (read the CR, resolve versions,
apply manifests, patch status, post Events); everything they decide is here, where the tests
are dense:

- the status they write: ``Ready``, ``RoutesApplied`` and ``Degraded`` conditions in the shape
  of ``metav1.Condition`` (``lastTransitionTime`` kept while a status does not change,
  ``observedGeneration`` on each), ``observedGeneration``, ``revision``, ``appliedAt`` and
  ``endpoints`` (:func:`applied_status`, :func:`failed_status`, :func:`ready_status`), and
  the revision followed when a new one leaves the spec as it was (:func:`revision_status`);
- the route summary the ``Routes`` printer column shows (``copilot:3=80 copilot:4=20``);
- the versions an overlay names, each resolved through an injected :class:`Resolver`
  (``name@alias`` given its version), with what each failure means (:func:`resolve_versions`);
- what a failure means (:class:`Failure`: a reason, a message saying what to do, and whether
  to retry), for API errors (:func:`api_failure`), and the retry delay (:func:`backoff`);
- what the operator's index keeps of each child (:func:`child_state`), whether the overlay's
  Deployments are available and the overlay therefore ready (:func:`readiness`), whether one
  of them failed (``ReplicaFailure=True``, or ``Progressing=False`` past its progress
  deadline) and the overlay is therefore degraded (:func:`deployment_problem`,
  :func:`degradation`), and what a new generation leaves behind: children no longer rendered,
  among them the HorizontalPodAutoscaler an indexed Deployment names (:func:`stale_children`);
- what a CR's status tells a user of the SDK (:func:`reported`: serving, warming, failed or
  behind, and the revision whose routes are applied).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from overlay_sdk.errors import BackendError, NotFoundError, ValidationError
from overlay_sdk.k8s.manifests import AUTOSCALER_ANNOTATION, VersionTarget
from overlay_sdk.spec import (
    API_GROUP,
    API_VERSION,
    KIND,
    AIOverlay,
    AIOverlaySpec,
    ModelRef,
    parse_overlay,
)

__all__ = [
    "AUTOSCALER_KIND",
    "CONDITION_TYPES",
    "DEGRADED",
    "READY",
    "REVISION_ANNOTATION",
    "ROUTES_APPLIED",
    "Child",
    "Failure",
    "Problem",
    "Readiness",
    "Report",
    "Resolver",
    "api_failure",
    "applied_status",
    "backoff",
    "check_names",
    "child_state",
    "condition",
    "degradation",
    "deployment_problem",
    "endpoints",
    "failed_status",
    "health_event",
    "precise_timestamp",
    "readiness",
    "ready_status",
    "reported",
    "resolve_versions",
    "revision_of",
    "revision_status",
    "route_summary",
    "set_condition",
    "stale_children",
    "timestamp",
]

READY = "Ready"
ROUTES_APPLIED = "RoutesApplied"
DEGRADED = "Degraded"
CONDITION_TYPES = (READY, ROUTES_APPLIED, DEGRADED)
"""The conditions the operator writes, in the order it writes them."""

REVISION_ANNOTATION = f"{API_GROUP}/revision"
"""Where the Kubernetes store records the overlay's current revision number."""

ConditionStatus = Literal["True", "False", "Unknown"]


def timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC to the second, as Kubernetes writes times (``2025-01-31T12:00:00Z``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def precise_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC to the millisecond (``2025-01-31T12:00:00.250Z``): ``appliedAt``,
    which a propagation time in milliseconds is measured to."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# -- what the overlay routes ------------------------------------------------------------------


def route_summary(spec: AIOverlaySpec) -> str:
    """The routes as the ``Routes`` column shows them: ``copilot:3=80 copilot:4=20``, and the
    shadow when there is one: ``... mirror scorer:5=12.5%``."""
    parts = [f"{r.model}:{r.version if r.version else '@' + str(r.alias)}={r.weight}"
             for r in spec.routes]
    shadow = spec.shadow
    if shadow is not None:
        version = shadow.version if shadow.version else "@" + str(shadow.alias)
        parts.append(f"mirror {shadow.model}:{version}={shadow.percent:g}%")
    return " ".join(parts)


def revision_of(annotations: Mapping[str, Any] | None) -> int | None:
    """The store's revision number recorded on the CR (None: not written by the store, or
    unreadable)."""
    text = (annotations or {}).get(REVISION_ANNOTATION)
    if isinstance(text, str) and text.isdigit() and int(text) > 0:
        return int(text)
    return None


def endpoints(name: str, namespace: str, *, gateway_service: str, gateway_port: int,
              models_service: str, models_port: int, cluster_domain: str) -> dict[str, str]:
    """Where the overlay answers inside the cluster (``status.endpoints``)."""
    gateway = f"http://{gateway_service}.{namespace}.svc.{cluster_domain}:{gateway_port}"
    return {
        "gateway": gateway,
        "invoke": f"{gateway}/_overlay/{name}/invoke",
        "models": f"http://{models_service}.{namespace}.svc.{cluster_domain}:{models_port}",
    }


# -- conditions and status --------------------------------------------------------------------


def condition(type_: str, status: ConditionStatus, reason: str, message: str, *,
              generation: int | None, now: str) -> dict[str, Any]:
    """One ``metav1.Condition`` as a dict (``reason`` CamelCase, ``now`` RFC 3339)."""
    out: dict[str, Any] = {"type": type_, "status": status, "reason": reason,
                           "message": message[:32768], "lastTransitionTime": now}
    if generation is not None:
        out["observedGeneration"] = generation
    return out


def set_condition(conditions: Sequence[Mapping[str, Any]] | None,
                  new: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``conditions`` with ``new`` in place of the condition of its type, keeping the old
    ``lastTransitionTime`` when the status did not change (as ``meta.SetStatusCondition``).
    The operator's types come first, in :data:`CONDITION_TYPES` order; others are kept."""
    by_type: dict[str, dict[str, Any]] = {}
    for item in conditions or ():
        if isinstance(item, Mapping) and isinstance(item.get("type"), str):
            by_type[item["type"]] = dict(item)
    fresh = dict(new)
    old = by_type.get(fresh["type"])
    if old is not None and old.get("status") == fresh["status"] and old.get("lastTransitionTime"):
        fresh["lastTransitionTime"] = old["lastTransitionTime"]
    by_type[fresh["type"]] = fresh
    ours = [by_type[t] for t in CONDITION_TYPES if t in by_type]
    return ours + [c for t, c in by_type.items() if t not in CONDITION_TYPES]


def _conditions(old: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    found = (old or {}).get("conditions")
    return [dict(c) for c in found] if isinstance(found, list) else []


@dataclass(frozen=True)
class Readiness:
    """The ``Ready`` condition's status, reason and message."""

    status: ConditionStatus
    reason: str
    message: str


@dataclass(frozen=True)
class Problem:
    """Why a child (or, from its children, the overlay) is degraded: a CamelCase reason and
    a message."""

    reason: str
    message: str


def _health(conditions: Sequence[Mapping[str, Any]], ready: Readiness,
            problem: Problem | None, *, generation: int | None,
            at: str) -> list[dict[str, Any]]:
    """``conditions`` with ``Degraded`` and ``Ready`` set for an applied generation:
    ``problem`` (from the children) makes it ``Degraded=True`` and ``Ready=False`` with its
    reason and message; else ``Degraded=False`` and ``Ready`` as ``ready`` says."""
    if problem is not None:
        degraded = condition(DEGRADED, "True", problem.reason, problem.message,
                             generation=generation, now=at)
        ready_now = condition(READY, "False", problem.reason, problem.message,
                              generation=generation, now=at)
    else:
        degraded = condition(
            DEGRADED, "False", "Reconciled",
            f"generation {generation} reconciled" if generation is not None else "reconciled",
            generation=generation, now=at)
        ready_now = condition(READY, ready.status, ready.reason, ready.message,
                              generation=generation, now=at)
    return set_condition(set_condition(conditions, degraded), ready_now)


def applied_status(old: Mapping[str, Any] | None, *, generation: int | None,
                   revision: int | None, summary: str, endpoints: Mapping[str, str],
                   ready: Readiness, now: datetime,
                   problem: Problem | None = None) -> dict[str, Any]:
    """The status after generation ``generation`` was applied: ``RoutesApplied=True`` with the
    route summary; ``Degraded=False`` and ``Ready`` as ``ready`` says, unless the children
    have a ``problem`` (:func:`degradation`): then ``Degraded=True`` and ``Ready=False`` with
    its reason and message."""
    at = timestamp(now)
    conditions = _conditions(old)
    conditions = set_condition(conditions, condition(
        ROUTES_APPLIED, "True", "Applied", summary, generation=generation, now=at))
    conditions = _health(conditions, ready, problem, generation=generation, at=at)
    status: dict[str, Any] = {"observedGeneration": generation, "conditions": conditions,
                              "appliedAt": precise_timestamp(now),
                              "endpoints": dict(endpoints)}
    if revision is not None:
        status["revision"] = revision
    if generation is None:
        del status["observedGeneration"]
    return status


def failed_status(old: Mapping[str, Any] | None, failure: Failure, *, generation: int | None,
                  now: datetime) -> dict[str, Any]:
    """The status when generation ``generation`` could not be applied: ``Degraded=True`` with
    the reason, ``RoutesApplied=False`` saying why (the children of the last generation
    applied keep serving: ``revision`` and ``appliedAt`` still name it) and ``Ready=False``.
    (So ``Degraded=True`` beside ``RoutesApplied=True`` always comes from the children.)"""
    at = timestamp(now)
    conditions = _conditions(old)
    before = next((c for c in conditions if c.get("type") == ROUTES_APPLIED
                   and c.get("status") == "True"), None)
    kept = (f" (still serving generation {before.get('observedGeneration')}: "
            f"{before.get('message')})") if before is not None else ""
    conditions = set_condition(conditions, condition(
        ROUTES_APPLIED, "False", failure.reason, failure.short + kept, generation=generation,
        now=at))
    conditions = set_condition(conditions, condition(
        DEGRADED, "True", failure.reason, failure.message, generation=generation, now=at))
    conditions = set_condition(conditions, condition(
        READY, "False", failure.reason, failure.short, generation=generation, now=at))
    status: dict[str, Any] = {"conditions": conditions}
    if generation is not None:
        status["observedGeneration"] = generation
    return status


def _applied_now(conditions: Sequence[Mapping[str, Any]], generation: int | None) -> bool:
    """Whether ``RoutesApplied=True`` for ``generation``: its routes are applied."""
    applied = next((c for c in conditions if c.get("type") == ROUTES_APPLIED), None)
    if applied is None or applied.get("status") != "True":
        return False
    return generation is None or applied.get("observedGeneration") == generation


def ready_status(old: Mapping[str, Any] | None, ready: Readiness, *, generation: int | None,
                 now: datetime, problem: Problem | None = None) -> dict[str, Any] | None:
    """The status with ``Ready`` and ``Degraded`` following the children (``ready``, and
    ``problem`` as :func:`applied_status` takes them), or None when nothing would change or
    when they are not the children's to set: the current generation is not applied yet, or
    it failed (``RoutesApplied=False``: ``Degraded`` then says why, until a reconcile)."""
    conditions = _conditions(old)
    if not _applied_now(conditions, generation):
        return None
    new = _health(conditions, ready, problem, generation=generation, at=timestamp(now))

    def shown(items: Sequence[Mapping[str, Any]]) -> dict[Any, tuple[Any, ...]]:
        return {c.get("type"): (c.get("status"), c.get("reason"), c.get("message"))
                for c in items if c.get("type") in (READY, DEGRADED)}

    if shown(new) == shown(conditions):
        return None
    return {"conditions": new}


def health_event(old: Mapping[str, Any] | None,
                 new: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """The Event (type, reason, message) a status change made by the children deserves:
    ``Warning`` with the problem's reason when ``Degraded`` turns True (or names another
    problem), ``Normal Recovered`` when it turns False; None otherwise."""
    def degraded(status: Mapping[str, Any] | None) -> dict[str, Any]:
        return next((c for c in _conditions(status) if c.get("type") == DEGRADED), {})

    before, after = degraded(old), degraded(new)
    if after.get("status") == "True":
        if (before.get("status"), before.get("reason"), before.get("message")) == (
                "True", after.get("reason"), after.get("message")):
            return None
        return "Warning", str(after.get("reason")), str(after.get("message"))
    if before.get("status") == "True" and after.get("status") == "False":
        ready = next((c for c in _conditions(new) if c.get("type") == READY), {})
        return "Normal", "Recovered", f"no Deployment failing any more; {ready.get('message')}"
    return None


def revision_status(old: Mapping[str, Any] | None, *, revision: int | None,
                    generation: int | None, now: datetime) -> dict[str, Any] | None:
    """The status naming ``revision`` (the store's, on the CR) as applied, or None when it
    already does, when the CR has no store revision, or when the current generation is not
    applied (the reconcile of that generation writes the revision). For a revision that did
    not change the spec (labels or annotations only, or a rival revision with the same spec):
    the generation stays, so no reconcile runs, yet its routes are the ones applied."""
    if revision is None or (old or {}).get("revision") == revision:
        return None
    if not _applied_now(_conditions(old), generation):
        return None
    return {"revision": revision, "appliedAt": precise_timestamp(now)}


# -- readiness --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Child:
    """A child of an overlay as the operator's index keeps it: its kind, name and uid, the
    uid of the AIOverlay that controls it, and (a Deployment) whether it is available, what
    failed (:func:`deployment_problem`) and the HorizontalPodAutoscaler rendered for it
    (``autoscaler``, from its :data:`~overlay_sdk.k8s.manifests.AUTOSCALER_ANNOTATION`)."""

    kind: str
    name: str
    uid: str
    owner_uid: str | None
    available: bool = True
    detail: str = ""
    problem: Problem | None = None
    autoscaler: str | None = None


def child_state(obj: Mapping[str, Any]) -> Child:
    """What the index keeps of a child. A Deployment is available when its controller has
    seen its current generation, and as many replicas as it wants (at least one) run that
    generation and are available."""
    meta = obj.get("metadata") or {}
    owner = next((o.get("uid") for o in meta.get("ownerReferences") or []
                  if o.get("kind") == KIND and o.get("controller")
                  and o.get("apiVersion") == f"{API_GROUP}/{API_VERSION}"), None)
    kind = str(obj.get("kind") or "")
    name, uid = str(meta.get("name")), str(meta.get("uid") or "")
    if kind != "Deployment":
        return Child(kind, name, uid, owner)
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    wanted = spec.get("replicas", 1)
    wanted = max(1, wanted if isinstance(wanted, int) else 1)
    available = status.get("availableReplicas") or 0
    updated = status.get("updatedReplicas") or 0
    seen = status.get("observedGeneration")
    generation = meta.get("generation")
    current = seen is not None and (generation is None or seen >= generation)
    ok = current and available >= wanted and updated >= wanted
    detail = f"{available}/{wanted} available" if current else "rollout not observed yet"
    # conditions of a generation the controller has not observed describe an earlier rollout
    problem = deployment_problem(obj) if current else None
    scaler = (meta.get("annotations") or {}).get(AUTOSCALER_ANNOTATION)
    return Child(kind, name, uid, owner, bool(ok), detail, problem,
                 scaler if isinstance(scaler, str) and scaler else None)


def deployment_problem(obj: Mapping[str, Any]) -> Problem | None:
    """What failed in a Deployment, from the conditions its controller sets:
    ``ReplicaFailure=True`` (pods cannot be created: a quota, an admission policy; reason
    e.g. ``FailedCreate``), or ``Progressing=False`` with ``ProgressDeadlineExceeded`` (the
    rollout stalled past ``progressDeadlineSeconds``: an image that cannot be pulled, pods
    that never become ready). None when neither."""
    conditions = (obj.get("status") or {}).get("conditions")
    found = [c for c in conditions if isinstance(c, Mapping)] if isinstance(
        conditions, list) else []
    for c in found:
        if c.get("type") == "ReplicaFailure" and c.get("status") == "True":
            return Problem(str(c.get("reason") or "ReplicaFailure"),
                           str(c.get("message") or "its pods cannot be created"))
    for c in found:
        if c.get("type") == "Progressing" and c.get("status") == "False" \
                and c.get("reason") == "ProgressDeadlineExceeded":
            return Problem("ProgressDeadlineExceeded",
                           str(c.get("message") or "its rollout exceeded its progress "
                               "deadline"))
    return None


def degradation(children: Iterable[Child], *, uid: str | None) -> Problem | None:
    """The overlay's problem from its Deployments (those the overlay ``uid`` controls): the
    reason of the first failing one by name, and a message naming each (at most 3), or None
    when none failed."""
    failing = sorted((c for c in children if c.kind == "Deployment" and c.problem is not None
                      and (uid is None or c.owner_uid == uid)), key=lambda c: c.name)
    if not failing:
        return None
    first = failing[0].problem
    assert first is not None
    parts = []
    for child in failing[:3]:
        problem = child.problem
        assert problem is not None
        label = f"Deployment {child.name}" + (
            f" ({problem.reason})" if problem.reason != first.reason else "")
        parts.append(f"{label}: {problem.message}")
    more = f"; and {len(failing) - 3} more" if len(failing) > 3 else ""
    return Problem(first.reason, "; ".join(parts) + more)


def readiness(children: Iterable[Child], *, uid: str | None,
              expected: Iterable[str]) -> Readiness:
    """``Ready`` from the overlay's Deployments: True when every expected Deployment (and
    every other one it owns) is available."""
    own = {c.name: c for c in children
           if c.kind == "Deployment" and (uid is None or c.owner_uid == uid)}
    names = sorted(set(expected) | set(own))
    missing = [n for n in names if n not in own]
    waiting = [own[n] for n in names if n in own and not own[n].available]
    if not missing and not waiting:
        return Readiness("True", "Available",
                         f"{len(names)} Deployment{'s' if len(names) != 1 else ''} available")
    parts = [f"{n} (not observed yet)" for n in missing]
    parts += [f"{c.name} ({c.detail})" for c in waiting]
    shown = ", ".join(parts[:5]) + (f" and {len(parts) - 5} more" if len(parts) > 5 else "")
    return Readiness("False", "Progressing", f"waiting for {shown}")


# -- what a new generation leaves behind ------------------------------------------------------


AUTOSCALER_KIND = "HorizontalPodAutoscaler"


def check_names(manifests: Iterable[Mapping[str, Any]], *, uid: str,
                owners: Callable[[str, str], Iterable[str | None]]) -> None:
    """Failure ``NameConflict`` when a rendered object's name is taken by a child another
    overlay controls (``owners(kind, name)``: the controlling uids of what exists). Overlay
    ``a`` routing model ``b-c:1`` and overlay ``a-b`` routing ``c:1`` both name their model
    server ``a-b-c-v1``: applying it would take the other overlay's."""
    for manifest in manifests:
        kind, name = str(manifest.get("kind")), str(manifest["metadata"]["name"])
        others = sorted({o for o in owners(kind, name) if o and o != uid})
        if others:
            raise Failure(
                "NameConflict", f"{kind} {name} belongs to another AIOverlay (uid "
                f"{others[0]}): both render that name (an overlay name ending where the other "
                "overlay's model name begins, such as 'a' + model 'b-c' and 'a-b' + model "
                "'c'); rename one of the overlays, or register the model under another name",
                min_delay=30.0)


def stale_children(children: Iterable[Child], *, uid: str,
                   keep: Iterable[tuple[str, str]]) -> list[Child]:
    """The children controlled by the overlay ``uid`` whose (kind, name) is not in ``keep``
    (what was just rendered): the model servers of versions no longer routed nor shadowed,
    and their HorizontalPodAutoscalers when no longer rendered (the version is gone, or
    ``spec.scaling`` no longer allows more than one replica): as indexed, or as a Deployment
    names it (``Child.autoscaler``) while the index has not seen it yet; such an autoscaler
    has no uid here (it is deleted by name)."""
    kept = set(keep)
    known = list(children)
    seen = {(c.kind, c.name) for c in known}
    for c in list(known):
        if c.kind == "Deployment" and c.autoscaler and (AUTOSCALER_KIND, c.autoscaler) not in seen:
            seen.add((AUTOSCALER_KIND, c.autoscaler))
            known.append(Child(AUTOSCALER_KIND, c.autoscaler, "", c.owner_uid))
    return sorted((c for c in known if c.owner_uid == uid and (c.kind, c.name) not in kept),
                  key=lambda c: (c.kind, c.name))


# -- what the status tells a user --------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    """What the operator reported on an overlay (its CR's status), as the SDK shows it.

    ``state``: ``serving`` (the stored revision's routes are applied and every Deployment is
    available), ``warming`` (applied, Deployments not all available yet), ``failed``
    (``Degraded=True``: the generation could not be applied, or a Deployment failed;
    ``message`` says which and why) or ``behind`` (the operator has not reported on the
    stored revision yet). ``revision``: the revision whose routes are applied
    (``status.revision``), ``applied_at`` when the operator recorded it, ``gateway_url`` the
    overlay's gateway in the cluster; ``conditions`` by type."""

    state: str
    revision: int | None
    applied_at: datetime | None
    message: str
    gateway_url: str | None
    conditions: dict[str, dict[str, Any]]


def reported(status: Mapping[str, Any] | None, *, generation: int | None,
             revision: int) -> Report:
    """What ``status`` says about the CR at ``generation`` (its ``metadata.generation``)
    whose stored revision is ``revision``."""
    status = status or {}
    by_type = {str(c["type"]): dict(c) for c in _conditions(status)
               if isinstance(c.get("type"), str)}
    served = status.get("revision")
    served = served if isinstance(served, int) and not isinstance(served, bool) else None
    endpoints = status.get("endpoints")
    gateway = endpoints.get("gateway") if isinstance(endpoints, Mapping) else None

    def report(state: str, message: str) -> Report:
        return Report(state, served, _parse_time(status.get("appliedAt")), message,
                      gateway if isinstance(gateway, str) else None, by_type)

    routes, degraded, ready = (by_type.get(t) for t in (ROUTES_APPLIED, DEGRADED, READY))
    if routes is None:
        return report("behind", "the operator has not reported on it yet")
    if generation is not None and routes.get("observedGeneration") != generation:
        return report("behind", f"the operator has not reconciled generation {generation} "
                      f"yet (it reported on generation {routes.get('observedGeneration')})")
    if degraded is not None and degraded.get("status") == "True":
        return report("failed", f"{degraded.get('reason')}: {degraded.get('message')}")
    if served != revision:
        applied = f"revision {served}" if served is not None else "no revision"
        return report("behind", f"the operator reports {applied} applied, not revision "
                      f"{revision} yet")
    if ready is not None and ready.get("status") == "True":
        return report("serving", str(ready.get("message") or ""))
    return report("warming", str((ready or {}).get("message") or ""))


# -- resolving versions ---------------------------------------------------------------------


class Resolver(Protocol):
    """What runs a model version: ``ref`` (``name:version`` or ``name@alias``) -> its
    :class:`VersionTarget`, whose ``key`` names the concrete version. Raises NotFoundError
    (no such model, version or alias) or BackendError (the registry cannot be read)."""

    def __call__(self, ref: ModelRef) -> VersionTarget: ...


def resolve_versions(overlay: AIOverlay, resolver: Resolver, *,
                     registry: str = "the model registry"
                     ) -> tuple[AIOverlay, dict[str, VersionTarget]]:
    """The overlay with every ``name@alias`` route or shadow given its current version, and
    the target of each version. Failure: ``RegistryUnavailable`` (retried),
    ``VersionNotFound`` (retried, more slowly: it may be registered later)."""
    doc = overlay.to_dict()
    spec = doc["spec"]
    refs: list[tuple[str, dict[str, Any]]] = [
        (f"spec.routes[{i}]", r) for i, r in enumerate(spec.get("routes") or [])]
    if spec.get("shadow"):
        refs.append(("spec.shadow", spec["shadow"]))
    targets: dict[str, VersionTarget] = {}
    changed = False
    for where, item in refs:
        version = item.get("version")
        ref = (ModelRef(item["model"], version=str(version)) if version
               else ModelRef(item["model"], alias=item.get("alias")))
        try:
            target = resolver(ref)
        except NotFoundError as err:
            raise Failure("VersionNotFound", f"{where}: {err}; register it, or route to a "
                             "version that exists", min_delay=30.0,
                             summary=f"{where}: {ref} is not registered") from None
        except BackendError as err:
            raise Failure("RegistryUnavailable", f"cannot read {ref} from {registry} (the "
                             f"operator's --registry-uri): {err}", min_delay=5.0,
                             summary=f"the model registry {registry} cannot be read") from None
        except ValidationError as err:
            raise Failure("InvalidSpec", f"{where}: {err}", retry=False) from None
        model, _, concrete = target.key.partition(":")
        if model != ref.model or (version and concrete != str(version)):
            raise Failure("ReconcileError", f"{where}: the resolver answered {target.key} "
                             f"for {ref}", retry=False)
        if not version:
            item["version"] = concrete
            changed = True
        targets[target.key] = target
    if not changed:
        return overlay, targets
    try:
        return parse_overlay(doc), targets
    except ValidationError as err:  # two aliases pointing at one version, routed twice
        raise Failure("InvalidSpec", f"after resolving its aliases: {err}",
                         retry=False) from None


# -- failures and retries ---------------------------------------------------------------------


class Failure(Exception):
    """Why a generation could not be applied. ``reason`` is the condition and Event reason
    (CamelCase); ``message`` says what is wrong and what to do; ``retry`` False means the
    spec itself is at fault (wait for a new generation), True a condition that may pass
    (retried with :func:`backoff`, at least ``min_delay`` seconds later)."""

    def __init__(self, reason: str, message: str, *, retry: bool = True,
                 min_delay: float = 0.0, summary: str | None = None) -> None:
        super().__init__(reason, message)
        self.reason = reason
        self.message = message
        self.retry = retry
        self.min_delay = min_delay
        self.summary = summary

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Failure) and (self.reason, self.message, self.retry,
                                               self.min_delay) == (
            other.reason, other.message, other.retry, other.min_delay)

    __hash__ = Exception.__hash__

    @property
    def short(self) -> str:
        """One line for the ``Routes`` column: the summary, else the message's first clause."""
        first = self.summary or self.message.split("; ", 1)[0]
        return first if len(first) <= 200 else first[:197] + "..."


def backoff(retry: int, *, min_delay: float = 0.0, base: float = 1.0,
            cap: float = 300.0) -> float:
    """Seconds before retry number ``retry + 1``: ``base * 2**retry`` capped at ``cap``, and
    never below ``min_delay``."""
    exponent = min(max(retry, 0), 30)
    return float(max(min_delay, min(cap, base * 2 ** exponent)))


def api_failure(status: int | None, message: str, *, doing: str) -> Failure:
    """A refused or failed API call, as a :class:`Failure` (every one is retried: the
    cluster may change; refusals wait longer). ``status`` None: no HTTP answer."""
    what = f"{doing}: {message}" if message else doing
    summary = f"{doing} failed" + (f" (HTTP {status})" if status is not None else "")
    if status is None:
        return Failure("ApiUnavailable", f"{what}; the API server did not answer, retrying",
                       summary=summary)
    if status == 401:
        return Failure("Unauthorized", f"{what}; the operator's credentials were refused "
                       "(an expired kubeconfig token?), retrying after logging in again",
                       summary=summary)
    if status == 403:
        return Failure("Forbidden", f"{what}; the operator's ServiceAccount lacks the "
                       "permission: apply deploy/rbac (kubectl apply -k deploy/) in this "
                       "namespace", min_delay=30.0, summary=summary)
    if status == 404:
        return Failure("ResourceMissing", f"{what}; the API server does not serve this kind: "
                       "install Istio (its networking.istio.io/v1 CRDs) before the operator",
                       min_delay=60.0, summary=summary)
    if status in (400, 415, 422):
        return Failure("ApplyRejected", f"{what}; the API server refused the manifest (an "
                       "admission policy or an older Kubernetes?): `overlay render -f` shows "
                       "what is applied", min_delay=60.0, summary=summary)
    if status == 409:
        return Failure("Conflict", f"{what}; retrying", summary=summary)
    return Failure("ApiUnavailable", f"{what} (HTTP {status}); retrying", summary=summary)
