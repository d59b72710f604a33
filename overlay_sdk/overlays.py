"""Overlay handles: ``cp.overlays`` (:class:`Overlays`) and one overlay (:class:`Overlay`).

A handle remembers the revision it read. Every change builds the new document with the
pure functions of :mod:`overlay_sdk.traffic` and hands it to its control plane
(:mod:`overlay_sdk.client`), which validates, resolves model references and writes one
revision with that revision as ``expected_revision``. ``status()`` and ``metrics()``
read what the data plane did (:mod:`overlay_sdk.observe`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import TYPE_CHECKING, Any

import pandas as pd

from overlay_sdk import traffic
from overlay_sdk.alerts import read_alerts
from overlay_sdk.analytics.cost_frame import CostFrame
from overlay_sdk.analytics.drift_sketch import EXACT_ROWS
from overlay_sdk.analytics.timeline import DriftTimeline
from overlay_sdk.errors import ConflictError, NotFoundError, ValidationError
from overlay_sdk.observe import OverlayStatus, overlay_metrics, overlay_status, spend
from overlay_sdk.spec import AIOverlay, AIOverlaySpec, ModelRef, parse_overlay
from overlay_sdk.store import Revision, created_revision
from overlay_sdk.watch import overlay_drift
from overlay_sdk.when import parse_when

if TYPE_CHECKING:
    from overlay_sdk.client import ControlPlane

__all__ = ["KEEP", "Overlay", "Overlays", "RouteInput", "ShadowInput"]

KEEP: Any = type("Keep", (), {"__repr__": lambda self: "KEEP"})()
"""The default of optional changes: leave that part of the spec as it is."""

RouteInput = Mapping[str, int] | Sequence[Mapping[str, Any]]
ShadowInput = str | ModelRef | Mapping[str, Any] | None


def _routes_doc(routes: RouteInput) -> list[dict[str, Any]]:
    if isinstance(routes, Mapping):
        out = []
        for key, weight in routes.items():
            ref = ModelRef.parse(key, field=f"spec.routes[{key!r}]")
            out.append(traffic.route_entry(ref, weight=traffic.as_int(weight)))
        return out
    if isinstance(routes, str) or not isinstance(routes, Sequence):
        raise ValidationError.at(
            "spec.routes", "give {'model:version': weight, ...} or a list of route dicts, "
            f"got {routes!r}"
        )
    return [
        {**r, "weight": traffic.as_int(r["weight"])} if isinstance(r, Mapping) and "weight" in r
        else (dict(r) if isinstance(r, Mapping) else r)
        for r in routes
    ]


def _shadow_doc(shadow: ShadowInput, percent: float = 100) -> dict[str, Any] | None:
    if shadow is None:
        return None
    if isinstance(shadow, Mapping):
        return dict(shadow)
    ref = shadow if isinstance(shadow, ModelRef) else ModelRef.parse(shadow, field="spec.shadow")
    return traffic.route_entry(ref, percent=percent)


def _describe_routes(spec: AIOverlaySpec) -> str:
    return ", ".join(f"{ref}={w}" for ref, w in spec.weights().items())


def _describe_shadow(spec: AIOverlaySpec) -> str:
    if spec.shadow is None:
        return ""
    return f"{spec.shadow} {spec.shadow.percent:g}%"


class Overlays:
    """The overlays of a control plane: ``cp.overlays``."""

    def __init__(self, cp: ControlPlane) -> None:
        self._cp = cp

    def create(
        self,
        name: str,
        *,
        host: str | Mapping[str, Any],
        routes: RouteInput,
        mode: str = "passthrough",
        shadow: ShadowInput = None,
        labels: Mapping[str, str] | None = None,
        message: str = "",
        **spec_fields: Any,
    ) -> Overlay:
        """Create an overlay; ConflictError if one of that name exists.

        ``routes`` is ``{"copilot:3": 80, "copilot:4": 20}``; ``shadow`` is ``"copilot:5"``
        or ``{"model": ..., "version": ..., "percent": 10}``. Further spec fields
        (``match``, ``sticky``, ``injection``, ``slo``, ``budget``, ``placement``,
        ``scaling``) are passed as dicts, e.g. ``sticky={"header": "x-user-id"}``.
        """
        if not isinstance(host, str | Mapping):
            raise ValidationError.at(
                "spec.host", f"give the host URL as a string like 'http://crm:8080', got {host!r}"
            )
        if labels is not None and not isinstance(labels, Mapping):
            raise ValidationError.at("metadata.labels", f"give a dict of strings, got {labels!r}")
        spec: dict[str, Any] = {
            "host": {"url": host} if isinstance(host, str) else dict(host),
            "mode": mode,
            "routes": _routes_doc(routes),
        }
        shadow_doc = _shadow_doc(shadow)
        if shadow_doc is not None:
            spec["shadow"] = shadow_doc
        spec.update(spec_fields)
        metadata: dict[str, Any] = {"name": name}
        if labels:
            metadata["labels"] = dict(labels)
        doc = {"metadata": metadata, "spec": spec}
        try:
            rev = self._cp._write(
                doc, expected_revision=0, message=message or "create", refresh_aliases=True
            )
        except ConflictError as err:
            raise ConflictError(
                f"overlay {name!r} already exists (revision {err.current}): open it with "
                f"cp.overlays.get({name!r}), or delete it first",
                expected=0, current=err.current,
            ) from None
        return Overlay(self._cp, rev)

    def apply(self, document: AIOverlay | Mapping[str, Any] | str, *, message: str = "") -> Overlay:
        """Create or update from a whole ``AIOverlay`` document (dict, YAML text or model)."""
        overlay = parse_overlay(document)
        rev = self._cp._write(
            overlay, expected_revision=None, message=message or "apply", refresh_aliases=True
        )
        return Overlay(self._cp, rev)

    def get(self, name: str) -> Overlay:
        """A handle on an existing overlay; NotFoundError lists the names that exist."""
        try:
            return Overlay(self._cp, self._cp.store.get(name))
        except NotFoundError:
            names = self.names()
            known = f"; existing overlays: {', '.join(names)}" if names else "; none exist yet"
            raise NotFoundError(
                f"overlay {name!r} not found{known}. Create it with cp.overlays.create() "
                "or `overlay apply -f FILE`"
            ) from None

    def names(self) -> list[str]:
        """Names of the live overlays, sorted."""
        return [r.name for r in self._cp.store.list()]

    def list(self) -> pd.DataFrame:
        """One row per live overlay: name, mode, revision, routes, shadow, host, updated."""
        rows = []
        for rev in self._cp.store.list():
            assert rev.overlay is not None
            spec = rev.overlay.spec
            rows.append(
                {
                    "name": rev.name,
                    "mode": spec.mode,
                    "revision": rev.revision,
                    "routes": _describe_routes(spec),
                    "shadow": _describe_shadow(spec),
                    "host": spec.host.url,
                    "updated_at": rev.created_at,
                    "author": rev.author,
                }
            )
        columns = ["name", "mode", "revision", "routes", "shadow", "host", "updated_at", "author"]
        return pd.DataFrame(rows, columns=columns)

    def delete(self, name: str, *, missing_ok: bool = False, message: str = "") -> None:
        """Delete an overlay (its history stays); NotFoundError unless ``missing_ok``."""
        try:
            self._cp.store.delete(name, author=self._cp.author, message=message or "delete")
        except NotFoundError:
            if not missing_ok:
                raise

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names()

    def __iter__(self) -> Iterator[Overlay]:
        return (Overlay(self._cp, rev) for rev in self._cp.store.list())

    def __len__(self) -> int:
        return len(self._cp.store.list())

    def _repr_html_(self) -> str:
        html: str = self.list().to_html(index=False)
        return html


class Overlay:
    """A handle on one overlay at a known revision.

    Every change method validates, writes one new revision and returns this handle,
    updated. If someone else changed the overlay since this handle last saw it, the
    change raises ConflictError: call :meth:`refresh` and try again.
    """

    def __init__(self, cp: ControlPlane, revision: Revision) -> None:
        self._cp = cp
        self._set(revision)

    def _set(self, revision: Revision) -> None:
        if revision.overlay is None:
            raise NotFoundError(f"overlay {revision.name!r} is deleted")
        self._rev = revision
        self.name: str = revision.name
        self.overlay: AIOverlay = revision.overlay
        self.spec: AIOverlaySpec = revision.overlay.spec
        self.revision: int = revision.revision

    @property
    def cp(self) -> ControlPlane:
        """The control plane this handle belongs to."""
        return self._cp

    @property
    def info(self) -> Revision:
        """The stored revision this handle shows (author, time, summary)."""
        return self._rev

    def refresh(self) -> Overlay:
        """Re-read the current revision."""
        self._set(self._cp.store.get(self.name))
        return self

    def _change(self, spec: Mapping[str, Any], message: str) -> Overlay:
        doc = self.overlay.to_dict()
        doc["spec"] = dict(spec)
        doc.pop("status", None)
        try:
            rev = self._cp._write(doc, expected_revision=self.revision, message=message)
        except ConflictError as err:
            now = f"now {err.current}" if err.current else "it was deleted since"
            raise ConflictError(
                f"overlay {self.name!r} changed since this handle read revision {self.revision} "
                f"({now}): call .refresh(), check the change, and try again",
                expected=self.revision, current=err.current,
            ) from None
        self._set(rev)
        return self

    def _spec_doc(self) -> dict[str, Any]:
        spec: dict[str, Any] = self.overlay.to_dict()["spec"]
        return spec

    def set_traffic(self, weights: Mapping[str, int], *, shadow: Any = KEEP,
                    shadow_percent: float = 100, message: str = "") -> Overlay:
        """Set the route weights: ``{"copilot:3": 95, "copilot:4": 5}`` (sum 100).

        ``shadow``: also set the shadow in the same revision (a reference, with
        ``shadow_percent``), or remove it (None); by default it stays as it is."""
        spec = traffic.set_traffic(self._spec_doc(), weights)
        text = "set traffic " + ", ".join(f"{k}={v}" for k, v in weights.items())
        if shadow is not KEEP:
            ref = None if shadow is None else ModelRef.parse(shadow, field="shadow")
            spec = traffic.set_shadow(spec, ref, shadow_percent)
            text += "; no shadow" if ref is None else f"; shadow {ref} at {shadow_percent:g}%"
        return self._change(spec, message or text)

    def canary(self, ref: str, percent: int = 1, *, message: str = "") -> Overlay:
        """Send ``percent`` (default 1) of traffic to ``ref``; others keep their proportions."""
        model_ref = ModelRef.parse(ref, field="ref")
        spec = traffic.canary(self._spec_doc(), model_ref, percent)
        return self._change(spec, message or f"canary {model_ref} at {percent}%")

    def shadow(self, ref: str | None, percent: float = 100, *, message: str = "") -> Overlay:
        """Copy ``percent`` of traffic to ``ref``; its output is recorded, never returned.

        ``shadow(None)`` removes the shadow.
        """
        model_ref = None if ref is None else ModelRef.parse(ref, field="ref")
        spec = traffic.set_shadow(self._spec_doc(), model_ref, percent)
        text = "remove shadow"
        if model_ref is not None:
            text = f"shadow {model_ref} at {spec['shadow']['percent']:g}%"
        return self._change(spec, message or text)

    def promote(self, ref: str, *, message: str = "") -> Overlay:
        """Send all traffic to ``ref``; the other routes are removed."""
        model_ref = ModelRef.parse(ref, field="ref")
        spec = traffic.promote(self._spec_doc(), model_ref)
        return self._change(spec, message or f"promote {model_ref}")

    def update(self, *, message: str = "", **fields: Any) -> Overlay:
        """Change other spec fields, e.g. ``update(mode="shadow", match={"path": "/score"})``.

        A field given as None is removed.
        """
        spec = self._spec_doc()
        for key, value in fields.items():
            wire = _camel(key)
            if value is None:
                spec.pop(wire, None)
            elif wire == "host" and isinstance(value, str):
                spec["host"] = {"url": value}
            else:
                spec[wire] = value
        text = ", ".join(sorted(_camel(k) for k in fields))
        return self._change(spec, message or f"update {text}")

    def rollback(self, to: int | None = None, *, message: str = "") -> Overlay:
        """Re-apply an earlier revision as a new one.

        ``to`` is a revision number; by default the latest earlier revision whose spec
        differs from the current one. Versions are restored exactly as they were.
        """
        to = traffic.as_int(to)
        if to is not None and (isinstance(to, bool) or not isinstance(to, int)):
            raise ValidationError.at("to", f"give a revision number such as 3, got {to!r}")
        history = [r for r in self._cp.store.history(self.name) if r.overlay is not None]
        if to is None:
            target = next(
                (r for r in reversed(history)
                 if r.revision < self.revision and r.overlay is not None
                 and r.overlay.spec != self.spec),
                None,
            )
            if target is None:
                raise NotFoundError(
                    f"overlay {self.name!r} has no earlier revision that differs from revision "
                    f"{self.revision}; nothing to roll back to"
                )
        else:
            target = next((r for r in history if r.revision == to), None)
            if target is None:
                numbers = ", ".join(str(r.revision) for r in history)
                raise NotFoundError(
                    f"overlay {self.name!r} has no revision {to} to roll back to; "
                    f"revisions with a spec: {numbers}"
                )
        assert target.overlay is not None
        spec = target.overlay.to_dict()["spec"]
        return self._change(spec, message or f"rollback to revision {target.revision}")

    def status(self) -> OverlayStatus:
        """Where this overlay stands in the data plane: the revision it serves, when it was
        applied and how long the change took to reach it (``.history`` per revision), and
        each model version's state. Embedded: what the running gateway reports (warming,
        ready, failed per version). In a cluster (a Kubernetes store): what the operator
        reported on the AIOverlay (its conditions ``Ready``, ``RoutesApplied`` and
        ``Degraded``, the revision applied, when and the message); the versions are then
        ``applied`` or ``not applied`` as a whole."""
        current = self._cp.store.get(self.name)
        versions: list[str] = []
        if current.overlay is not None:
            spec = current.overlay.spec
            versions = [f"{r.model}:{r.version}" for r in spec.routes]
            if spec.shadow is not None:
                versions.append(f"{spec.shadow.model}:{spec.shadow.version}")
        if _kubernetes_store(self._cp.store):
            return _cluster_status(self._cp.store, current, versions)
        return overlay_status(self._cp.home, self.name, current.revision, versions)

    def metrics(self, *, since: Any = None, by: str | None = "version") -> pd.DataFrame:
        """Model calls served for this overlay, summarised per model version and role:
        calls, errors, timeouts, rejected, error_rate, p50/p95/p99/mean latency (ms) and
        share (% of the role's calls), since the overlay was (re)created.
        ``by="minute"|"hour"|"day"`` adds a time column;
        ``by=None`` returns the call records (sampled inputs as ``input.<feature>``).
        ``since``: a datetime or a phrase such as "an hour ago"."""
        return overlay_metrics(self._cp.telemetry_url, self.name, since=since, by=by,
                               first_revision=self._created())

    def _created(self) -> int:
        """The first revision after the overlay's last deletion (metrics start afresh)."""
        return created_revision(self._cp.store.history(self.name))

    def drift(self, *, reference: Any = "registered", window: str = "1h", since: Any = None,
              alpha: float = 0.05, correction: str = "fdr_bh", exact_rows: int = EXACT_ROWS,
              progress: Callable[[int, int], None] | None = None) -> DriftTimeline:
        """Whether this overlay's inputs and outputs drift, per model version and
        ``window`` ("15min", "1h", "1D"), from ``reference``: ``"registered"`` (each
        version's reference data), a DataFrame, or a time range ``(start, end)`` of the
        version's own calls (``("2 days ago", "yesterday")``). Uses the sampled calls
        (``spec.telemetry.sampleRate``). ``.frame`` has a row per feature, window and
        version; ``.plot()`` a heatmap; ``.streaks(k)`` the runs of drifted windows.
        Calls are read in chunks; a window of more than ``exact_rows`` records is tested
        from sketches in bounded memory (its rows say "estimated"). ``progress(windows,
        calls)`` hears how far reading and testing went."""
        return overlay_drift(self._cp.telemetry_url, self.name, reference,
                             registry=self._cp.models, window=window, since=since,
                             alpha=alpha, correction=correction,
                             first_revision=self._created(), exact_rows=exact_rows,
                             progress=progress)

    def alerts(self, *, kind: str | None = None, since: Any = None) -> pd.DataFrame:
        """This overlay's stored alerts (``drift``, ``budget``), newest first."""
        start = parse_when(since, datetime.now(UTC), field="since") if since is not None \
            else None
        return read_alerts(self._cp.telemetry_url, overlay=self.name, kind=kind, since=start)

    def cost(self, *, by: str = "version", since: Any = None) -> CostFrame:
        """What this overlay's model calls cost since it was (re)created: per model version
        (``by="version"``), or per ``"hour"``/``"day"`` and version: calls, priced_calls,
        cost_usd, usd_per_call, tokens. Prices come from ``cp.prices`` when each version
        loaded. ``.plot()`` draws spend over time and cost per inference;
        ``.total_usd`` is the exact total."""
        budget = self.spec.budget.usd_per_day if self.spec.budget else None
        return spend(self._cp.telemetry_url, name=self.name, since=since, by=by,
                     first_revision=self._created(), budget=budget)

    def history(self) -> pd.DataFrame:
        """Every revision, oldest first: revision, action, time, author, message, changes."""
        rows = []
        for rev in self._cp.store.history(self.name):
            spec = rev.overlay.spec if rev.overlay is not None else None
            rows.append(
                {
                    "revision": rev.revision,
                    "action": rev.action,
                    "created_at": rev.created_at,
                    "author": rev.author,
                    "message": rev.message,
                    "changes": rev.changes,
                    "routes": _describe_routes(spec) if spec else "",
                    "shadow": _describe_shadow(spec) if spec else "",
                }
            )
        return pd.DataFrame(rows).set_index("revision")

    def to_yaml(self) -> str:
        """The overlay as an ``AIOverlay`` YAML document."""
        return self.overlay.to_yaml()

    def __repr__(self) -> str:
        shadow = _describe_shadow(self.spec)
        extra = f" shadow={shadow!r}" if shadow else ""
        return (
            f"<Overlay {self.name!r} revision={self.revision} mode={self.spec.mode} "
            f"routes={_describe_routes(self.spec)!r}{extra}>"
        )

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{escape(r.model)}</td><td>{r.version or ''}</td><td>{r.alias or ''}</td>"
            f"<td>{r.weight}%</td></tr>"
            for r in self.spec.routes
        )
        if self.spec.shadow is not None:
            s = self.spec.shadow
            rows += (
                f"<tr><td>{escape(s.model)}</td><td>{s.version or ''}</td><td>{s.alias or ''}</td>"
                f"<td>shadow {s.percent:g}%</td></tr>"
            )
        return (
            f"<div><b>Overlay {self.name}</b> &middot; revision {self.revision} &middot; "
            f"mode {self.spec.mode} &middot; host {escape(self.spec.host.url)}"
            "<table><tr><th>model</th><th>version</th><th>alias</th><th>traffic</th></tr>"
            f"{rows}</table></div>"
        )


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


# -- status() in a cluster -------------------------------------------------------------------


def _kubernetes_store(store: Any) -> bool:
    """Whether ``store`` is a KubernetesStore, without importing the ``kubernetes`` client (an
    optional extra) for any other store: a KubernetesStore's module is imported already."""
    if "overlay_sdk.store.kubernetes" not in sys.modules:
        return False
    from overlay_sdk.store.kubernetes import KubernetesStore

    return isinstance(store, KubernetesStore)


def _cluster_status(store: Any, current: Revision, versions: Sequence[str]) -> OverlayStatus:
    """The OverlayStatus of ``current`` from its AIOverlay's status, as the operator wrote it
    (read with the store's own client and identity)."""
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException

    from overlay_sdk.errors import BackendError
    from overlay_sdk.k8s.reconcile import reported
    from overlay_sdk.spec import API_GROUP, API_VERSION
    from overlay_sdk.store.kubernetes import PLURAL

    name = current.name
    try:
        found = k8s.CustomObjectsApi(store.api_client).get_namespaced_custom_object(
            API_GROUP, API_VERSION, store.namespace, PLURAL, name)
    except ApiException as err:
        if err.status == 404:
            raise NotFoundError(f"overlay {name!r} has no AIOverlay in namespace "
                                f"{store.namespace!r} (deleted meanwhile?)") from None
        raise BackendError(f"cannot read the status of AIOverlay {store.namespace}/{name} "
                           f"(HTTP {err.status}: {err.reason}); the reader needs get on "
                           "aioverlays") from None
    except OSError as err:  # urllib3's errors are OSErrors: no answer at all
        raise BackendError(f"cannot read the status of AIOverlay {store.namespace}/{name}: "
                           f"{err}") from None
    cr: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    meta = cr.get("metadata") or {}
    report = reported(cr.get("status"), generation=meta.get("generation"),
                      revision=current.revision)
    committed: datetime | None = None
    propagation: float | None = None
    if report.revision is not None and report.applied_at is not None:
        # from the revision's commit to the operator's record of it applied
        committed = current.created_at if report.revision == current.revision else next(
            (r.created_at for r in store.history(name) if r.revision == report.revision), None)
        if committed is not None:
            propagation = max(0.0, (report.applied_at - committed).total_seconds() * 1000)
    history = pd.DataFrame([{
        "revision": report.revision, "state": report.state,
        "committed_at": pd.Timestamp(committed) if committed is not None else pd.NaT,
        "applied_at": pd.Timestamp(report.applied_at) if report.applied_at else pd.NaT,
        "propagation_ms": propagation, "message": report.message,
    }] if report.revision is not None else [], columns=[
        "revision", "state", "committed_at", "applied_at", "propagation_ms", "message"])
    applied = "applied" if report.revision == current.revision and report.state != "behind" \
        else "not applied"
    return OverlayStatus(
        name=name, revision=current.revision, state=report.state,
        serving_revision=report.revision, applied_at=report.applied_at,
        propagation_ms=propagation, gateway_url=report.gateway_url, message=report.message,
        versions={v: applied for v in versions}, history=history,
    )
