"""What each REST call does with a control plane: blocking SDK calls (the handlers run them
in worker threads) whose results :mod:`overlay_sdk.jupyter.payloads` shapes into JSON.

Changes go through the SDK's own ``Overlay.rollback`` / ``Overlay.set_traffic``, which
validate, resolve model references and write one revision, or write nothing at all, and
``cp.models.rollback``, after which the control plane writes a revision of each overlay
naming the alias moved (or refuses the move when one of them could not follow).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import overlay_sdk
from overlay_sdk.alerts import read_alerts
from overlay_sdk.client import ControlPlane
from overlay_sdk.errors import ConflictError, NotFoundError, OverlayError
from overlay_sdk.jupyter.payloads import (
    ApiError,
    ModelRollbackRequest,
    RollbackRequest,
    TrafficRequest,
    alert_counts,
    alerts_payload,
    aliases_payload,
    health_by_overlay,
    history_payload,
    models_payload,
    overlay_payload,
)
from overlay_sdk.overlays import Overlay
from overlay_sdk.registry_aliases import AliasMove
from overlay_sdk.registry_backend import safe_uri
from overlay_sdk.store import Revision
from overlay_sdk.topology import DEFAULT_SINCE

__all__ = [
    "ALERT_WINDOW",
    "alerts",
    "aliases",
    "get_overlay",
    "list_overlays",
    "models",
    "rollback",
    "rollback_model",
    "set_traffic",
    "status",
    "topology",
]

ALERT_WINDOW = timedelta(hours=24)
"""The overlays' ``alerts`` count the stored alerts of this window."""

_log = logging.getLogger(__name__)


def _address(cp: ControlPlane) -> str:
    """What ``?plane=`` takes to reach ``cp``: its cluster address or its home folder."""
    url = getattr(cp.store, "url", None)
    return str(url) if url else str(cp.home)


def _live(cp: ControlPlane) -> list[Revision]:
    return sorted((r for r in cp.store.list() if r.overlay is not None), key=lambda r: r.name)


class _Context:
    """Health and alert counts of every overlay, read once per answer. When they cannot be
    read (telemetry store unreachable), overlays still list, with health ``unknown`` and
    the reason."""

    def __init__(self, cp: ControlPlane) -> None:
        self.health: dict[str, tuple[str, str]] = {}
        self.alerts: dict[str, int] = {}
        self.failure = ""
        try:
            self.health = health_by_overlay(cp.topology().to_dict()["nodes"])
            since = datetime.now(UTC) - ALERT_WINDOW
            frame = read_alerts(cp.telemetry_url, since=since)
            self.alerts = alert_counts(frame.to_dict("records"))
        except Exception as err:  # a degraded answer beats no overlay list at all
            _log.warning("overlay health not available for %s: %s", _address(cp), err)
            self.failure = f"health not available: {err}"

    def overlay(self, rev: Revision) -> dict[str, Any]:
        health = self.health.get(rev.name, ("unknown", self.failure))
        return overlay_payload(rev, health=health, alerts=self.alerts.get(rev.name, 0))


def status(cp: ControlPlane) -> dict[str, Any]:
    """``GET status``; ``registryUri`` is the registry's tracking URI with any password or
    secret masked (``***``), what ``ov.connect(..., registry_uri=)`` takes."""
    return {"version": overlay_sdk.__version__, "controlPlane": _address(cp),
            "registryUri": safe_uri(cp.models.tracking_uri),
            "overlays": len(_live(cp)), "models": len(cp.models.list())}


def list_overlays(cp: ControlPlane) -> dict[str, Any]:
    """``GET overlays``: every live overlay, by name."""
    live = _live(cp)
    context = _Context(cp)
    return {"overlays": [context.overlay(r) for r in live]}


def get_overlay(cp: ControlPlane, name: str) -> dict[str, Any]:
    """``GET overlays/NAME``: the overlay and its whole history."""
    rev = cp.overlays.get(name).info  # NotFoundError names the overlays that exist
    return {**_Context(cp).overlay(rev), "history": history_payload(cp.store.history(name))}


def models(cp: ControlPlane) -> dict[str, Any]:
    """``GET models``: every registered model with its versions."""
    listed = cp.models.list().to_dict("records")
    versions = {str(m["name"]): cp.models.versions(str(m["name"])).to_dict("records")
                for m in listed}
    return models_payload(listed, versions)


def topology(cp: ControlPlane, since: Any = DEFAULT_SINCE) -> dict[str, Any]:
    """``GET topology``: ``cp.topology(since=...).to_dict()``."""
    return cp.topology(since=since).to_dict()


def alerts(cp: ControlPlane, *, limit: int, overlay: str | None = None) -> dict[str, Any]:
    """``GET alerts``: the newest ``limit`` stored alerts (of ``overlay``, or all)."""
    frame = read_alerts(cp.telemetry_url, overlay=overlay, limit=limit)
    return alerts_payload(frame.to_dict("records"), limit=limit)


def _open(cp: ControlPlane, name: str, seen: int | None) -> Overlay:
    overlay = cp.overlays.get(name)
    if seen is not None and seen != overlay.revision:
        raise ConflictError(
            f"overlay {name!r} is at revision {overlay.revision}, not at revision {seen} as "
            "you saw it: someone changed it meanwhile; reload it, check, and try again",
            expected=seen, current=overlay.revision)
    return overlay


def rollback(cp: ControlPlane, name: str, request: RollbackRequest) -> dict[str, Any]:
    """``POST overlays/NAME/rollback``: re-apply revision ``to`` (default: the latest
    earlier one that differs) as a new revision."""
    overlay = _open(cp, name, request.revision)
    try:
        overlay.rollback(to=request.to, message=request.message)
    except NotFoundError as err:  # the overlay exists: the revision does not
        raise ApiError(404, str(err), "to") from None
    return _Context(cp).overlay(overlay.info)


def set_traffic(cp: ControlPlane, name: str, request: TrafficRequest) -> dict[str, Any]:
    """``POST overlays/NAME/traffic``: new route weights (and shadow) in one revision."""
    overlay = _open(cp, name, request.revision)
    overlay.set_traffic(request.weights, **request.sdk_kwargs())
    return _Context(cp).overlay(overlay.info)


def aliases(cp: ControlPlane, name: str) -> dict[str, Any]:
    """``GET models/NAME/aliases``: where each alias of model ``name`` points, and every
    recorded move (``cp.models.alias_history(name)``), oldest first."""
    try:
        history = cp.models.alias_history(name).to_dict("records")
        current = _aliases_now(cp, name)
    except NotFoundError as err:
        raise ApiError(404, str(err), "name") from None
    return aliases_payload(name, current, history)


def _aliases_now(cp: ControlPlane, name: str) -> dict[str, str]:
    """alias -> the version it points at now."""
    return {str(alias): str(row["version"])
            for row in cp.models.versions(name).to_dict("records")
            for alias in (row.get("aliases") or ())}


def _following(cp: ControlPlane, model: str, alias: str) -> dict[str, int]:
    """Revision of each live overlay whose routes or shadow name ``model@alias``."""
    out = {}
    for rev in cp.store.list():
        if rev.overlay is None:
            continue
        spec = rev.overlay.spec
        entries = [*spec.routes, *([spec.shadow] if spec.shadow is not None else [])]
        if any(e.model == model and e.alias == alias for e in entries):
            out[rev.name] = rev.revision
    return out


class _MoveSeen:
    """An alias listener keeping the move of ``model@alias`` made by this thread (what
    the alias pointed at before: ``move.from_version``)."""

    def __init__(self, model: str, alias: str) -> None:
        self.model, self.alias = model, alias
        self.thread = threading.get_ident()
        self.move: AliasMove | None = None

    def __call__(self, move: AliasMove) -> None:
        if ((move.name, move.alias) == (self.model, self.alias)
                and threading.get_ident() == self.thread):
            self.move = move


def rollback_model(cp: ControlPlane, name: str, request: ModelRollbackRequest
                   ) -> dict[str, Any]:
    """``POST models/NAME/rollback``: ``cp.models.rollback`` of ``request.alias``; the
    overlays naming ``NAME@alias`` follow it (the control plane writes each a revision;
    a move one of them could not follow is refused: 409)."""
    before = _following(cp, name, request.alias)
    seen = _MoveSeen(name, request.alias)
    cp.models.alias_listeners.append(seen)  # after the control plane's own: runs last
    try:
        moved = cp.models.rollback(name, request.to, alias=request.alias,
                                   reason=request.reason, author=cp.author)
    except NotFoundError as err:
        raise ApiError(404, str(err), _not_found_field(cp, name, request.alias)) from None
    except ConflictError as err:  # an overlay naming the alias could not follow: unmoved
        raise ApiError(409, str(err), "to") from None
    finally:
        with contextlib.suppress(ValueError):
            cp.models.alias_listeners.remove(seen)
    previous = moved.version if seen.move is None else seen.move.from_version
    followed = []
    for overlay, revision in before.items():
        try:
            if cp.store.get(overlay).revision != revision:
                followed.append(overlay)
        except NotFoundError:  # deleted meanwhile
            continue
    return {"model": name, "alias": request.alias, "version": str(moved.version),
            "previous": None if previous is None else str(previous),
            "overlays": sorted(followed)}


def _not_found_field(cp: ControlPlane, name: str, alias: str) -> str:
    """What a NotFoundError of a model rollback is about: the model (``name``), an alias
    never set here (``alias``), else the target (``to``: no such version, nothing before,
    nothing serving at that time)."""
    try:
        if name not in cp.models:
            return "name"
        if cp.models.alias_history(name, alias).empty:
            return "alias"
    except OverlayError:
        pass
    return "to"
