"""The SDK's front door: ``ov.connect()`` -> :class:`ControlPlane`, and :class:`Overlay` handles.

Every write goes the same way: build the new document (with the pure functions of
:mod:`overlay_sdk.traffic`), validate it (:func:`overlay_sdk.spec.parse_overlay`),
resolve and check each model reference in the registry, then write one revision
to the store with the revision the caller last saw as ``expected_revision``. Any
failure before the store write leaves the stored state exactly as it was.

Called by notebooks, and later by the CLI, widgets and the Jupyter server extension.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterator, Mapping, Sequence
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from overlay_sdk import traffic
from overlay_sdk.errors import (
    ConflictError,
    FieldError,
    NotFoundError,
    OverlayError,
    ValidationError,
)
from overlay_sdk.home import resolve_home
from overlay_sdk.observe import OverlayStatus, overlay_metrics, overlay_status
from overlay_sdk.registry import ModelRegistry
from overlay_sdk.registry_aliases import AliasMove
from overlay_sdk.spec import AIOverlay, AIOverlaySpec, ModelRef, parse_overlay
from overlay_sdk.store import LocalStore, Revision, Store

if TYPE_CHECKING:
    from overlay_sdk.gateway import GatewayHandle

__all__ = ["ControlPlane", "Overlay", "Overlays", "connect"]

TELEMETRY_ENV = "OVERLAY_TELEMETRY_URL"
RouteInput = Mapping[str, int] | Sequence[Mapping[str, Any]]
ShadowInput = str | ModelRef | Mapping[str, Any] | None


def connect(
    home: str | os.PathLike[str] | None = None,
    *,
    registry_uri: str | None = None,
    author: str | None = None,
) -> ControlPlane:
    """Connect to the embedded control plane.

    ``home`` is the overlay home folder (default: ``$OVERLAY_HOME``, else the nearest
    ``.overlay/`` at or above the current directory, else a new ``./.overlay/``).
    ``registry_uri`` is an MLflow tracking URI (default ``sqlite:///<home>/mlflow.db``).
    ``author`` is recorded on every revision (default ``$OVERLAY_AUTHOR`` or the user name).
    """
    if home is not None and not isinstance(home, str | os.PathLike):
        raise ValidationError.at(
            "home", f"give the overlay home as a folder path, got {type(home).__name__}"
        )
    if isinstance(home, str) and not home.strip():
        raise ValidationError.at("home", "give a folder path, or None for the default")
    if isinstance(home, str) and "://" in home:
        scheme = home.split("://", 1)[0]
        raise ValidationError.at(
            "home", f"unsupported control plane address scheme {scheme!r}; give a folder path "
            "(the overlay home) or nothing for the default"
        )
    for field, value in (("registry_uri", registry_uri), ("author", author)):
        if value is not None and (not isinstance(value, str) or not value):
            raise ValidationError.at(field, f"give a non-empty string, got {value!r}")
    try:
        folder = resolve_home(home)
    except OSError as err:
        raise ValidationError.at(
            "home", f"cannot use {home or err.filename!s} as the overlay home ({err.strerror}); "
            "give a folder you can write to"
        ) from None
    store = LocalStore(folder / "overlays.db")
    if registry_uri is None:  # the embedded default: everything inside the home
        registry = ModelRegistry(
            f"sqlite:///{folder / 'mlflow.db'}", artifact_root=folder / "mlartifacts",
            lock_dir=folder,
        )
    else:  # a tracking server keeps its own artifact store
        registry = ModelRegistry(registry_uri, lock_dir=folder)
    return ControlPlane(folder, store, registry, author=author)


class ControlPlane:
    """One control plane: a store of overlays and a model registry.

    ``cp.models`` is the :class:`~overlay_sdk.registry.ModelRegistry`; ``cp.overlays``
    creates, lists and opens overlays.
    """

    def __init__(
        self, home: Path, store: Store, models: ModelRegistry, *, author: str | None = None
    ) -> None:
        self.home = home
        self.store = store
        self.models = models
        self.author = author
        self.overlays = Overlays(self)
        # Moving an alias (cp.models.set_alias / rollback) changes what overlays naming
        # model@alias serve: each gets a new revision, so the data plane sees the change.
        # A move that an overlay naming the alias could not follow is refused before it is made.
        self.models.alias_listeners.append(self._on_alias_move)
        self.models.alias_checks.append(self._check_alias_move)

    def close(self) -> None:
        """Close the store's connections and stop following alias moves."""
        with contextlib.suppress(ValueError):
            self.models.alias_listeners.remove(self._on_alias_move)
        with contextlib.suppress(ValueError):
            self.models.alias_checks.remove(self._check_alias_move)
        self.store.close()

    @property
    def telemetry_url(self) -> str:
        """Where gateways started from here write call records (SQLAlchemy URL):
        ``$OVERLAY_TELEMETRY_URL``, else ``sqlite:///<home>/telemetry.db``."""
        return os.environ.get(TELEMETRY_ENV) or f"sqlite:///{self.home / 'telemetry.db'}"

    def start_gateway(
        self, port: int = 8700, *, host: str = "127.0.0.1", token: str | None = None,
        endpoints: Mapping[str, str] | None = None, **options: Any,
    ) -> GatewayHandle:
        """Start the overlay gateway in the background of this process (for notebooks).

        It serves every overlay of this control plane: host traffic at ``gw.url``, model
        calls at ``gw.url + "/_overlay/<overlay>/invoke"``, and follows every change made
        here within milliseconds. ``port=0`` picks a free port; ``token`` requires
        ``Authorization: Bearer <token>`` on invoke and admin endpoints; ``endpoints`` maps
        container-image versions to where they listen. Other ``options`` are
        :class:`~overlay_sdk.gateway.GatewayConfig` fields. Stop it with ``gw.stop()``.
        """
        from overlay_sdk.gateway import GatewayConfig, start_gateway

        if not isinstance(self.store, LocalStore):
            raise ValidationError.at("store", "start_gateway runs the embedded gateway; a "
                                     "cluster's gateway runs in the cluster")
        known = set(GatewayConfig.__dataclass_fields__) - {"host", "port", "token", "endpoints",
                                                           "telemetry_url"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValidationError.at(unknown[0], f"not a gateway option; give one of "
                                     f"{', '.join(sorted(known))}")
        config = GatewayConfig(host=host, port=port, token=token,
                               telemetry_url=self.telemetry_url,
                               endpoints=dict(endpoints or {}), **options)
        return start_gateway(LocalStore(self.store.path), self.models, self.home, config)

    def _naming(self, move: AliasMove) -> Iterator[tuple[Revision, AIOverlay]]:
        """Current revisions (with their overlay) whose routes or shadow name the alias."""
        for rev in self.store.list():
            if rev.overlay is not None and _names_alias(rev.overlay.spec, move.name, move.alias):
                yield rev, rev.overlay

    def _check_alias_move(self, move: AliasMove) -> None:
        """ConflictError, before anything moves, if an overlay naming the alias cannot follow."""
        problems: list[str] = []
        for rev, overlay in self._naming(move):
            if move.to_version is None:
                problems.append(f"overlay {rev.name!r} routes to it")
                continue
            doc = overlay.to_dict()
            spec = doc["spec"]
            for entry in [*spec["routes"], *([spec["shadow"]] if spec.get("shadow") else [])]:
                if entry["model"] == move.name and entry.get("alias") == move.alias:
                    entry["version"] = move.to_version
            try:
                parse_overlay(doc)
            except ValidationError as err:
                problems.append(f"overlay {rev.name!r} could not follow ({err})")
        if problems:
            target = move.to_version or "(deleted)"
            raise ConflictError(
                f"{move.name}@{move.alias} was not moved to {target}: " + "; ".join(problems)
                + ". Change those overlays first (route them to a version or another alias)"
            )

    def _on_alias_move(self, move: AliasMove) -> None:
        """Write a new revision of every overlay whose routes or shadow name the alias."""
        failures: list[str] = []
        for rev, _ in self._naming(move):
            if move.to_version is None:
                failures.append(f"overlay {rev.name!r} routes to {move.name}@{move.alias}, "
                                "which was deleted: point it at a version or another alias")
                continue
            message = f"alias {move}" + (f" ({move.reason})" if move.reason else "")
            try:
                for _ in range(5):  # someone may write the overlay meanwhile: re-read, retry
                    doc = rev.overlay.to_dict() if rev.overlay is not None else {}
                    try:
                        self._write(doc, expected_revision=rev.revision, message=message,
                                    refresh_aliases=True)
                        break
                    except ConflictError:
                        rev = self.store.get(rev.name)
                else:
                    raise ConflictError("it kept changing during 5 attempts: re-apply it")
            except OverlayError as err:  # one overlay refusing must not stop the others
                failures.append(f"overlay {rev.name!r} kept revision {rev.revision}: {err}")
        if failures:
            raise ValidationError.at("alias", "; ".join(failures))

    def __enter__(self) -> ControlPlane:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ControlPlane home={str(self.home)!r} overlays={len(self.overlays)}>"

    # -- shared write path ---------------------------------------------------------------

    def _resolve(self, overlay: AIOverlay, *, refresh_aliases: bool) -> AIOverlay:
        """Check every model reference exists; fill ``version`` from ``alias``.

        An entry that already carries the version its alias resolved to keeps it unless
        ``refresh_aliases`` (create/apply of a whole document): a traffic change to one
        route must not silently move another.
        """
        doc = overlay.to_dict()
        spec = doc["spec"]
        problems: list[FieldError] = []
        entries = [(f"spec.routes[{i}]", r) for i, r in enumerate(spec["routes"])]
        if spec.get("shadow"):
            entries.append(("spec.shadow", spec["shadow"]))
        for path, entry in entries:
            ref = ModelRef(
                entry["model"],
                version=None if (entry.get("alias") and refresh_aliases) else entry.get("version"),
                alias=entry.get("alias"),
            )
            try:
                found = self.models.resolve(ref)
            except NotFoundError as err:
                problems.append(FieldError(path, str(err)))
                continue
            entry["version"] = found.version
        if problems:
            raise ValidationError(problems)
        return parse_overlay(doc)  # re-check: two aliases may resolve to one version

    def _current(self, name: str) -> Revision | None:
        try:
            return self.store.get(name)
        except NotFoundError:
            return None

    def _write(
        self,
        doc: Mapping[str, Any] | AIOverlay,
        *,
        expected_revision: int | None,
        message: str,
        refresh_aliases: bool = False,
    ) -> Revision:
        if not isinstance(message, str):
            raise ValidationError.at("message", f"a message is a string, got {message!r}")
        if isinstance(doc, AIOverlay):
            doc = doc.to_dict()
        # status is observed state, written by the control plane, never taken from callers
        doc = {k: v for k, v in doc.items() if k != "status"} if isinstance(doc, Mapping) else doc
        overlay = parse_overlay(doc)
        overlay = self._resolve(overlay, refresh_aliases=refresh_aliases)
        if expected_revision != 0:
            current = self._current(overlay.name)
            same_base = expected_revision is None or (
                current is not None and current.revision == expected_revision
            )
            if current is not None and same_base and current.overlay == overlay:
                return current  # nothing changes: no new revision (like kubectl apply)
        return self.store.apply(
            overlay, expected_revision=expected_revision, author=self.author, message=message
        )


def _names_alias(spec: AIOverlaySpec, model: str, alias: str) -> bool:
    entries = [*spec.routes, *([spec.shadow] if spec.shadow is not None else [])]
    return any(e.model == model and e.alias == alias for e in entries)


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

    def set_traffic(self, weights: Mapping[str, int], *, message: str = "") -> Overlay:
        """Set the route weights: ``{"copilot:3": 95, "copilot:4": 5}`` (sum 100)."""
        spec = traffic.set_traffic(self._spec_doc(), weights)
        text = ", ".join(f"{k}={v}" for k, v in weights.items())
        return self._change(spec, message or f"set traffic {text}")

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
        """Where this overlay stands in the running gateway: the revision it serves, when it
        was applied and how long the change took to reach it (``.history`` per revision),
        and each model version's state (warming, ready, failed)."""
        current = self._cp.store.get(self.name)
        versions: list[str] = []
        if current.overlay is not None:
            spec = current.overlay.spec
            versions = [f"{r.model}:{r.version}" for r in spec.routes]
            if spec.shadow is not None:
                versions.append(f"{spec.shadow.model}:{spec.shadow.version}")
        return overlay_status(self._cp.home, self.name, current.revision, versions)

    def metrics(self, *, since: Any = None, by: str | None = "version") -> pd.DataFrame:
        """Model calls served for this overlay, summarised per model version and role:
        calls, errors, timeouts, rejected, error_rate, p50/p95/p99/mean latency (ms) and
        share (% of the role's calls), since the overlay was (re)created.
        ``by="minute"|"hour"|"day"`` adds a time column;
        ``by=None`` returns the call records (sampled inputs as ``input.<feature>``).
        ``since``: a datetime or a phrase such as "an hour ago"."""
        history = self._cp.store.history(self.name)
        created = 1  # the first revision after the last deletion
        for before, after in itertools.pairwise(history):
            if before.action == "delete" and after.action == "apply":
                created = after.revision
        return overlay_metrics(self._cp.telemetry_url, self.name, since=since, by=by,
                               first_revision=created)

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

