"""What each REST call does with a control plane: blocking SDK calls (the handlers run them
in worker threads) whose results :mod:`overlay_sdk.jupyter.payloads` shapes into JSON.

Changes go through the SDK's own ``Overlay.rollback`` / ``Overlay.set_traffic``, which
validate, resolve model references and write one revision, or write nothing at all.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import overlay_sdk
from overlay_sdk.alerts import read_alerts
from overlay_sdk.client import ControlPlane
from overlay_sdk.errors import ConflictError, NotFoundError
from overlay_sdk.jupyter.payloads import (
    ApiError,
    RollbackRequest,
    TrafficRequest,
    alert_counts,
    alerts_payload,
    health_by_overlay,
    history_payload,
    models_payload,
    overlay_payload,
)
from overlay_sdk.overlays import Overlay
from overlay_sdk.store import Revision
from overlay_sdk.topology import DEFAULT_SINCE

__all__ = [
    "ALERT_WINDOW",
    "alerts",
    "get_overlay",
    "list_overlays",
    "models",
    "rollback",
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
    """``GET status``."""
    return {"version": overlay_sdk.__version__, "controlPlane": _address(cp),
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
    frame = read_alerts(cp.telemetry_url, overlay=overlay)
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
