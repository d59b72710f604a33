"""What the server extension's REST API answers and accepts, as pure functions.

The handlers (:mod:`overlay_sdk.jupyter.handlers`) read SDK objects in a worker thread and
pass them here: :func:`overlay_payload`, :func:`history_payload`, :func:`models_payload`,
:func:`aliases_payload`, :func:`alerts_payload` shape them into the JSON of
``docs/jupyter-extension-api.md``. Request bodies and query arguments are data from a
browser: :func:`parse_rollback`, :func:`parse_traffic`, :func:`parse_model_rollback`,
:func:`parse_limit`, :func:`parse_since` check their types and name the field at fault
(:class:`ApiError`) before the SDK validates the change as any other. :func:`api_error` maps
the SDK's errors to HTTP statuses, in the body's terms. No I/O, no tornado.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from overlay_sdk.errors import (
    BackendError,
    ConflictError,
    FieldError,
    NotFoundError,
    OverlayError,
    ValidationError,
)
from overlay_sdk.overlays import KEEP
from overlay_sdk.registry_aliases import DEFAULT_ALIAS
from overlay_sdk.spec import AIOverlaySpec
from overlay_sdk.store import Revision

__all__ = [
    "CONFIG_FIELD_PREFIX",
    "DEFAULT_ALERT_LIMIT",
    "HEALTH_UNKNOWN",
    "MAX_ALERT_LIMIT",
    "ApiError",
    "ModelRollbackRequest",
    "RollbackRequest",
    "ShadowChange",
    "TrafficRequest",
    "alert_counts",
    "alerts_payload",
    "aliases_payload",
    "api_error",
    "dumps",
    "health_by_overlay",
    "history_payload",
    "models_payload",
    "overlay_payload",
    "parse_body",
    "parse_limit",
    "parse_model_rollback",
    "parse_plane",
    "parse_rollback",
    "parse_since",
    "parse_traffic",
    "to_iso",
    "traffic_field",
]

CONFIG_FIELD_PREFIX = "OverlaySdk."
DEFAULT_ALERT_LIMIT = 50
MAX_ALERT_LIMIT = 1000
HEALTH_UNKNOWN = ("unknown", "")
_MAX_MESSAGE = 2000  # longest revision message a body may carry
_MAX_TO = 200  # longest "to" of a model rollback (a label, a time phrase)
_DURATION = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$", re.IGNORECASE)
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class ApiError(Exception):
    """An error answer: ``status`` (400, 404, 409, 500, 502), ``field`` (the request part at
    fault, or None) and ``message`` (what is wrong and what to do)."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field
        self.message = message

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"status": self.status, "field": self.field, "message": self.message}}


def api_error(err: BaseException, *,
              field_of: Callable[[str], str] | None = None) -> ApiError:
    """The answer for an error raised while serving a request.

    ValidationError -> 400 naming its first path, 500 when that is a setting of the server
    (``OverlaySdk.home``); ``field_of`` renames SDK paths to the request's fields, in
    ``field`` and in the message alike (``spec.routes[0].weight`` -> ``weights['fraud:1']``);
    NotFoundError -> 404; ConflictError -> 409 (field ``revision``); BackendError -> 502; an
    ApiError as it is; anything else -> 500."""
    if isinstance(err, ApiError):
        return err
    if isinstance(err, ValidationError):
        path = err.paths[0] if err.paths else ""
        if path.startswith(CONFIG_FIELD_PREFIX):  # the server's configuration, not the request
            return ApiError(500, f"the server's configuration is unusable: {err}", path)
        if field_of is None:
            return ApiError(400, str(err), path or None)
        renamed = ValidationError([FieldError(field_of(e.path) if e.path else "", e.message)
                                   for e in err.errors], subject=err.subject)
        return ApiError(400, str(renamed), renamed.paths[0] or None)
    if isinstance(err, NotFoundError):
        return ApiError(404, str(err))
    if isinstance(err, ConflictError):
        return ApiError(409, str(err), "revision")
    if isinstance(err, BackendError):
        return ApiError(502, str(err))
    if isinstance(err, OverlayError):
        return ApiError(500, str(err))
    return ApiError(500, f"internal error ({type(err).__name__}); the Jupyter server log "
                    "has the details")


def dumps(payload: Any) -> str:
    """JSON text of ``payload``; NaN and infinities become null (JSON has none)."""
    return json.dumps(_finite(payload))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _missing(value: Any) -> bool:
    """None, NaN, pandas' NA or NaT (a missing cell of a DataFrame)."""
    return (value is None or (isinstance(value, float) and math.isnan(value))
            or type(value).__name__ in ("NAType", "NaTType"))


def to_iso(value: Any) -> str | None:
    """ISO 8601 text of a datetime or pandas Timestamp (None when missing)."""
    if _missing(value):
        return None
    if isinstance(value, datetime):  # a pandas Timestamp is a datetime too
        return value.isoformat()
    return str(value)


# -- answers -----------------------------------------------------------------------------


def _ref(model: str, version: str | None, alias: str | None) -> str:
    return f"{model}:{version}" if version else f"{model}@{alias}"


def _shadow(spec: AIOverlaySpec) -> dict[str, Any] | None:
    shadow = spec.shadow
    if shadow is None:
        return None
    return {"ref": _ref(shadow.model, shadow.version, shadow.alias),
            "percent": float(shadow.percent)}


def overlay_payload(rev: Revision, *, health: tuple[str, str] = HEALTH_UNKNOWN,
                    alerts: int = 0) -> dict[str, Any]:
    """``OVERLAY`` of the contract from a live overlay's current revision, its health
    (health, reason) and its number of stored alerts of the last 24 h."""
    if rev.overlay is None:
        raise ValueError(f"revision {rev.revision} of {rev.name!r} is a deletion")
    spec = rev.overlay.spec
    return {
        "name": rev.name,
        "revision": rev.revision,
        "mode": spec.mode,
        "host": spec.host.url,
        "weights": spec.weights(),
        "shadow": _shadow(spec),
        "health": health[0],
        "healthReason": health[1],
        "alerts": int(alerts),
        "updatedAt": to_iso(rev.created_at),
        "author": rev.author,
        "message": rev.message,
    }


def history_payload(history: Iterable[Revision]) -> list[dict[str, Any]]:
    """Every revision, oldest first (deletions too: action ``delete``)."""
    return [{"revision": r.revision, "action": r.action, "author": r.author,
             "createdAt": to_iso(r.created_at), "message": r.message, "changes": r.changes}
            for r in sorted(history, key=lambda r: r.revision)]


def health_by_overlay(nodes: Iterable[Mapping[str, Any]]) -> dict[str, tuple[str, str]]:
    """(health, reason) per overlay name from the topology's nodes (``Topology.to_dict()
    ["nodes"]``)."""
    return {str(n["label"]): (str(n.get("health") or "unknown"), str(n.get("reason") or ""))
            for n in nodes if n.get("kind") == "overlay"}


def alert_counts(records: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """How many alerts each overlay has among ``records`` (rows of ``read_alerts``)."""
    counts: dict[str, int] = {}
    for row in records:
        name = str(row.get("overlay"))
        counts[name] = counts.get(name, 0) + 1
    return counts


def models_payload(models: Sequence[Mapping[str, Any]],
                   versions: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
    """``{"models": [...]}`` from the records of ``cp.models.list()`` and, per model, of
    ``cp.models.versions(name)`` (versions in version order)."""
    out = []
    for model in sorted(models, key=lambda m: str(m["name"])):
        name = str(model["name"])
        rows = sorted(versions.get(name, ()), key=lambda v: int(str(v["version"])))
        out.append({
            "name": name,
            "latestVersion": None if _missing(model.get("latest_version"))
            else str(model["latest_version"]),
            "versions": [{
                "version": str(v["version"]),
                "label": None if _missing(v.get("label")) else str(v["label"]),
                "sha256": str(v.get("sha256") or ""),
                "flavor": str(v.get("flavor") or ""),
                "source": str(v.get("source") or ""),
                "createdAt": to_iso(v.get("created_at")),
                "aliases": sorted(str(a) for a in (v.get("aliases") or ())),
            } for v in rows],
        })
    return {"models": out}


def alerts_payload(records: Iterable[Mapping[str, Any]], *, limit: int) -> dict[str, Any]:
    """``{"alerts": [...]}``: the first ``limit`` of ``records`` (rows of ``read_alerts``,
    newest first)."""
    out: list[dict[str, Any]] = []
    for row in records:
        if len(out) >= limit:
            break
        out.append({
            "time": to_iso(row.get("time")),
            "overlay": str(row.get("overlay")),
            "kind": str(row.get("kind")),
            "message": str(row.get("message") or ""),
            "version": None if _missing(row.get("version")) else str(row["version"]),
            "subject": None if _missing(row.get("subject")) else str(row["subject"]),
        })
    return {"alerts": out}


# -- requests ----------------------------------------------------------------------------


def parse_body(body: bytes, *, empty: Any = None) -> Any:
    """The JSON of a request body; an empty body is ``empty`` (None: refused)."""
    if not body.strip():
        if empty is not None:
            return empty
        raise ApiError(400, "the body is empty: send a JSON object", "body")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise ApiError(400, f"the body is not JSON ({err}); send a JSON object", "body") from None


def _object(data: Any, allowed: Iterable[str]) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ApiError(400, f"the body must be a JSON object, got {type(data).__name__}",
                       "body")
    known = set(allowed)
    for key in data:
        if key not in known:
            raise ApiError(400, f"unknown field {key!r}; the fields are "
                           f"{', '.join(sorted(known))}", str(key))
    return data


def _int_or_none(data: Mapping[str, Any], key: str, what: str) -> int | None:
    value = data.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise ApiError(400, f"give {what}, or null; got {json.dumps(value)}", key)
    return value


def _message(data: Mapping[str, Any]) -> str:
    value = data.get("message", "")
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > _MAX_MESSAGE:
        raise ApiError(400, f"give the revision message as a string of at most {_MAX_MESSAGE} "
                       f"characters, got {json.dumps(value)[:60]}", "message")
    return value


@dataclass(frozen=True)
class RollbackRequest:
    """``to``: the revision to re-apply (None: the latest earlier one that differs);
    ``revision``: the revision the client last saw (None: whatever is current)."""

    to: int | None = None
    message: str = ""
    revision: int | None = None


def parse_rollback(data: Any) -> RollbackRequest:
    """A rollback body ``{"to": 2 | null, "message": "...", "revision": 5}`` (every field
    optional)."""
    body = _object(data, ("to", "message", "revision"))
    return RollbackRequest(
        to=_int_or_none(body, "to", "a revision number such as 3"),
        message=_message(body),
        revision=_int_or_none(body, "revision", "the revision you last saw, such as 5"),
    )


@dataclass(frozen=True)
class ShadowChange:
    """The shadow a traffic change sets."""

    ref: str
    percent: float = 100.0


@dataclass(frozen=True)
class TrafficRequest:
    """Route weights; ``shadow``: a :class:`ShadowChange`, None (remove it) or
    :data:`~overlay_sdk.overlays.KEEP` (leave it)."""

    weights: dict[str, int]
    shadow: Any = KEEP
    message: str = ""
    revision: int | None = None

    def sdk_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``Overlay.set_traffic`` (but ``weights``)."""
        if self.shadow is KEEP:
            return {"message": self.message}
        if self.shadow is None:
            return {"shadow": None, "message": self.message}
        return {"shadow": self.shadow.ref, "shadow_percent": self.shadow.percent,
                "message": self.message}


def parse_traffic(data: Any) -> TrafficRequest:
    """A traffic body ``{"weights": {"fraud:1": 90, "fraud:2": 10}, "shadow": {"ref":
    "fraud:3", "percent": 10} | null, "message": "...", "revision": 5}``; ``weights`` is
    required, a missing ``shadow`` keeps the shadow as it is."""
    body = _object(data, ("weights", "shadow", "message", "revision"))
    weights = body.get("weights")
    if not isinstance(weights, Mapping) or not weights:
        raise ApiError(400, "give each route's weight: an object such as "
                       '{"fraud:1": 90, "fraud:2": 10} (integers summing to 100)', "weights")
    clean: dict[str, int] = {}
    for key, weight in weights.items():
        if isinstance(weight, bool) or not isinstance(weight, int):
            raise ApiError(400, f"give a whole number from 0 to 100, got {json.dumps(weight)}",
                           f"weights[{key!r}]")
        clean[str(key)] = weight
    shadow: Any = KEEP
    if "shadow" in body:
        shadow = _shadow_change(body["shadow"])
    return TrafficRequest(
        weights=clean, shadow=shadow, message=_message(body),
        revision=_int_or_none(body, "revision", "the revision you last saw, such as 5"),
    )


def _shadow_change(value: Any) -> ShadowChange | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ApiError(400, 'give the shadow as {"ref": "fraud:3", "percent": 10}, or null to '
                       f"remove it; got {json.dumps(value)[:60]}", "shadow")
    for key in value:
        if key not in ("ref", "percent"):
            raise ApiError(400, f"unknown field {key!r}; a shadow has ref and percent",
                           f"shadow.{key}")
    ref = value.get("ref")
    if not isinstance(ref, str) or not ref:
        raise ApiError(400, "give the shadow's model version such as \"fraud:3\"",
                       "shadow.ref")
    percent = value.get("percent", 100)
    if (isinstance(percent, bool) or not isinstance(percent, int | float)
            or not math.isfinite(percent)):
        raise ApiError(400, f"give a number from 0 to 100, got {json.dumps(percent)}",
                       "shadow.percent")
    return ShadowChange(ref, float(percent))


def traffic_field(path: str, request: TrafficRequest) -> str:
    """The body field an SDK error path of a traffic change is about: ``spec.routes`` ->
    ``weights``, ``spec.routes[1]`` -> ``weights['fraud:2']`` (the weights in the order
    sent), ``spec.shadow.percent`` -> ``shadow.percent``, ``shadow`` (the reference given)
    -> ``shadow.ref``; others unchanged."""
    m = re.fullmatch(r"spec\.routes(?:\[(\d+)\])?(.*)", path)
    if m:
        keys = list(request.weights)
        if m[1] is not None and int(m[1]) < len(keys):
            return f"weights[{keys[int(m[1])]!r}]"
        return "weights"
    if path == "spec.shadow" or path.startswith("spec.shadow."):
        return path[len("spec."):]
    return {"shadow": "shadow.ref", "percent": "shadow.percent"}.get(path, path)


@dataclass(frozen=True)
class ModelRollbackRequest:
    """Where to move ``alias`` of a model back to: ``to`` as ``cp.models.rollback`` takes it
    ("previous", a version, a label, a point in time); ``reason`` (None: the SDK's)."""

    to: str | int = "previous"
    alias: str = DEFAULT_ALIAS
    reason: str | None = None


def parse_model_rollback(data: Any) -> ModelRollbackRequest:
    """A model rollback body ``{"to": "previous" | 3 | "3" | "C=0.1" | "yesterday" |
    "2026-11-25T10:00:00Z", "alias": "serving", "reason": "..."}`` (every field optional;
    null is the default). The SDK checks the values (a version that exists, an alias name, a
    past time)."""
    body = _object(data, ("to", "alias", "reason"))
    to = body.get("to")
    if to is None:
        to = "previous"
    elif isinstance(to, bool) or not isinstance(to, int | str):
        raise ApiError(400, 'give "previous", a version such as 3 or "3", the label of one '
                       'version, or a past time such as "yesterday" or "2026-11-25T10:00:00Z"; '
                       f"got {json.dumps(to)[:60]}", "to")
    elif isinstance(to, str) and (not to.strip() or len(to) > _MAX_TO):
        raise ApiError(400, 'give "previous", a version, a label or a past time as a non-empty '
                       f"string of at most {_MAX_TO} characters", "to")
    alias = body.get("alias")
    if alias is None:
        alias = DEFAULT_ALIAS
    elif not isinstance(alias, str):
        raise ApiError(400, f'give the alias to move as a string such as "{DEFAULT_ALIAS}", '
                       f"got {json.dumps(alias)[:60]}", "alias")
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise ApiError(400, f"give the reason as a string, or null; got "
                       f"{json.dumps(reason)[:60]}", "reason")
    return ModelRollbackRequest(to=to, alias=alias,
                                reason=reason if reason and reason.strip() else None)


def aliases_payload(name: str, aliases: Mapping[str, str],
                    history: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """``GET models/NAME/aliases``: where each alias points now and every recorded move,
    oldest first (rows of ``cp.models.alias_history(name)``: ``previous`` -> ``from``,
    ``version`` -> ``to``; null: the alias did not exist / was deleted)."""
    def text(value: Any) -> str | None:
        return None if _missing(value) else str(value)

    return {
        "model": name,
        "aliases": {str(a): str(v) for a, v in sorted(aliases.items())},
        "history": [{"alias": str(r["alias"]), "from": text(r.get("previous")),
                     "to": text(r.get("version")), "time": to_iso(r.get("time")),
                     "author": str(r.get("author") or ""), "reason": text(r.get("reason"))}
                    for r in history],
    }


def parse_limit(text: str | None) -> int:
    """``?limit=`` of the alerts: 1 to :data:`MAX_ALERT_LIMIT` (default 50)."""
    if text is None or not text.strip():
        return DEFAULT_ALERT_LIMIT
    try:
        limit = int(text)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_ALERT_LIMIT:
        raise ApiError(400, f"give a whole number from 1 to {MAX_ALERT_LIMIT}, got {text!r}",
                       "limit")
    return limit


def parse_since(text: str | None, default: str) -> str:
    """``?since=`` of the topology: a duration back from now (``15m``, ``1h``, ``2d``,
    ``1w``) or any point in time ``cp.topology(since=)`` takes (``"an hour ago"``, ISO 8601
    with an offset); ``default`` when absent."""
    if text is None or not text.strip():
        return default
    m = _DURATION.match(text)
    if m:
        n = int(m[1])
        if n < 1:
            raise ApiError(400, f"give a duration of at least 1, got {text!r}", "since")
        return f"{n} {_UNITS[m[2].lower()]} ago"
    return text


def parse_plane(text: str | None) -> str | None:
    """``?plane=``: a folder path or ``k8s://CONTEXT/NAMESPACE`` (None or empty: the
    server's default)."""
    if text is None or not text.strip():
        return None
    return text.strip()
