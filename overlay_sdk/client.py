"""The SDK's front door: ``ov.connect()`` -> :class:`ControlPlane` (handles of overlays are
in :mod:`overlay_sdk.overlays`; ``Overlay`` and ``Overlays`` are re-exported here).

Every write goes the same way: build the new document (with the pure functions of
:mod:`overlay_sdk.traffic`), validate it (:func:`overlay_sdk.spec.parse_overlay`),
resolve and check each model reference in the registry, then write one revision
to the store with the revision the caller last saw as ``expected_revision``. Any
failure before the store write leaves the stored state exactly as it was.

Called by notebooks, and later by the CLI, widgets and the Jupyter server extension.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from overlay_sdk.alerts import read_alerts
from overlay_sdk.analytics.cost_frame import CostFrame
from overlay_sdk.errors import (
    BackendError,
    ConflictError,
    FieldError,
    NotFoundError,
    OverlayError,
    ValidationError,
)
from overlay_sdk.home import resolve_home
from overlay_sdk.observe import spend
from overlay_sdk.overlays import Overlay, Overlays
from overlay_sdk.prices import PriceBook
from overlay_sdk.registry import ModelRegistry
from overlay_sdk.registry_aliases import AliasMove
from overlay_sdk.spec import AIOverlay, AIOverlaySpec, ModelRef, parse_overlay
from overlay_sdk.store import LocalStore, Revision, Store
from overlay_sdk.topology import DEFAULT_SINCE, Topology, topology

if TYPE_CHECKING:
    from overlay_sdk.gateway import GatewayHandle
    from overlay_sdk.migrate import MigrationReport

__all__ = ["ControlPlane", "Overlay", "Overlays", "connect"]

TELEMETRY_ENV = "OVERLAY_TELEMETRY_URL"


def connect(
    home: str | os.PathLike[str] | None = None,
    *,
    registry_uri: str | None = None,
    author: str | None = None,
) -> ControlPlane:
    """Connect to the embedded control plane, or to a cluster.

    ``home`` is the overlay home folder (default: ``$OVERLAY_HOME``, else the nearest
    ``.overlay/`` at or above the current directory, else a new ``./.overlay/``), or a
    cluster address ``k8s://CONTEXT/NAMESPACE`` (``k8s:///NAMESPACE``: the kubeconfig's
    current context, or the pod's service account in a cluster): overlays are then the
    AIOverlay resources of that namespace, and ``registry_uri`` is required.
    ``registry_uri`` is an MLflow tracking URI (default ``sqlite:///<home>/mlflow.db``).
    ``author`` is recorded on every revision (default ``$OVERLAY_AUTHOR`` or the user name).
    """
    if home is not None and not isinstance(home, str | os.PathLike):
        raise ValidationError.at(
            "home", f"give the overlay home as a folder path, got {type(home).__name__}"
        )
    if isinstance(home, str) and not home.strip():
        raise ValidationError.at("home", "give a folder path, or None for the default")
    for field, value in (("registry_uri", registry_uri), ("author", author)):
        if value is not None and (not isinstance(value, str) or not value):
            raise ValidationError.at(field, f"give a non-empty string, got {value!r}")
    if isinstance(home, str) and "://" in home:
        scheme = home.split("://", 1)[0]
        if scheme.lower() == "k8s":
            return _connect_cluster(home, registry_uri=registry_uri, author=author)
        raise ValidationError.at(
            "home", f"unsupported control plane address scheme {scheme!r}; give a folder path "
            "(the overlay home), k8s://CONTEXT/NAMESPACE for a cluster, or nothing for the "
            "default"
        )
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


def _connect_cluster(url: str, *, registry_uri: str | None, author: str | None) -> ControlPlane:
    """Overlays in the AIOverlay resources at ``url``, models in the MLflow tracking server
    ``registry_uri`` (the cluster's model servers cannot read a registry on this machine);
    prices and other local settings stay in the overlay home."""
    if registry_uri is None:
        raise ValidationError.at(
            "registry_uri", "a cluster needs a model registry it can reach: give the MLflow "
            "tracking server's URI, e.g. registry_uri='http://mlflow.mlops:5000'"
        )
    try:
        from overlay_sdk.store.kubernetes import KubernetesStore
    except ImportError as err:
        raise BackendError(
            f"{url} needs the cluster backend ({err.name} is missing): "
            "pip install 'overlay-sdk[k8s]'"
        ) from None
    store = KubernetesStore.from_url(url)  # ValidationError names url.scheme/context/namespace
    try:
        folder = resolve_home(None)
        registry = ModelRegistry(registry_uri, lock_dir=folder)
    except BaseException:
        store.close()
        raise
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
        self._author = author
        self._acting = threading.local()  # acting_as(): an author per thread
        self.overlays = Overlays(self)
        self.closed = False  # True once close() ran (widgets' timers stop then)
        # Moving an alias (cp.models.set_alias / rollback) changes what overlays naming
        # model@alias serve: each gets a new revision, so the data plane sees the change.
        # A move that an overlay naming the alias could not follow is refused before it is made.
        self.models.alias_listeners.append(self._on_alias_move)
        self.models.alias_checks.append(self._check_alias_move)

    @property
    def author(self) -> str | None:
        """Who revisions written here are recorded as (None: ``$OVERLAY_AUTHOR`` or the
        login name); inside :meth:`acting_as`, that author for the calling thread."""
        acting: str | None = getattr(self._acting, "author", None)
        return acting or self._author

    @author.setter
    def author(self, value: str | None) -> None:
        self._author = value

    @contextlib.contextmanager
    def acting_as(self, author: str | None) -> Iterator[ControlPlane]:
        """Record ``author`` on what this thread writes inside the block (None: no change):
        a server writing for several users through one control plane (the Jupyter server
        extension under JupyterHub)."""
        if author is not None and (not isinstance(author, str) or not author.strip()):
            raise ValidationError.at("author", f"give a non-empty name, got {author!r}")
        before = getattr(self._acting, "author", None)
        self._acting.author = author or before
        try:
            yield self
        finally:
            self._acting.author = before

    def close(self) -> None:
        """Close the store's connections and stop following alias moves."""
        self.closed = True
        with contextlib.suppress(ValueError):
            self.models.alias_listeners.remove(self._on_alias_move)
        with contextlib.suppress(ValueError):
            self.models.alias_checks.remove(self._check_alias_move)
        self.store.close()

    @property
    def prices(self) -> PriceBook:
        """The price catalog calls are priced with (``cp.prices.set_tokens(...)``,
        ``set_compute(...)``, ``frame()``)."""
        return PriceBook(self.home)

    def cost(self, *, by: str = "overlay", since: Any = None) -> CostFrame:
        """What every overlay's model calls cost: per ``"overlay"`` (default), per model
        ``"version"``, or per ``"hour"``/``"day"``; ``.plot()``, ``.total_usd``."""
        return spend(self.telemetry_url, since=since, by=by)

    def topology(self, *, since: Any = DEFAULT_SINCE) -> Topology:
        """The live graph host apps -> overlays -> model versions over the window from
        ``since`` (default: the last 15 minutes): each edge's share (route weight, shadow
        percent), observed share, calls and error rate; health ok/warn/error with its reason
        (error rate, drift alerts, versions the gateway failed to load). ``.nodes_frame()``,
        ``.edges_frame()``, ``.plot()``, ``.to_dict()`` (what ``TopologyMap`` draws)."""
        return topology(self, since=since)

    def alerts(self, *, kind: str | None = None) -> pd.DataFrame:
        """Every overlay's stored alerts (drift, budget), newest first."""
        return read_alerts(self.telemetry_url, kind=kind)

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

    @property
    def address(self) -> str:
        """Where this control plane's overlays are: its store's file or cluster address."""
        url = getattr(self.store, "url", None)
        return str(url) if url else str(getattr(self.store, "path", self.home))

    def migrate(
        self, to: str | os.PathLike[str] | ControlPlane, *, target_registry: str | None = None,
        names: Any = None, check_models: bool | None = None, dry_run: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> MigrationReport:
        """Copy overlays (``names``, default all, deleted ones too) with their whole history
        to another control plane: ``to`` is ``k8s://CONTEXT/NAMESPACE``, an overlay home
        folder, or a ControlPlane. Idempotent: a second run copies nothing; an overlay whose
        history differs in the target is reported, never rewritten (``report.failed``).

        Models are not copied. ``target_registry`` (the MLflow tracking server the target
        uses) turns on ``check_models``: every version the live overlays use must be there
        with the same SHA-256, else nothing is copied; without it ``report.notes`` says how
        to move the registry. ``dry_run``: write nothing, report what would be copied."""
        from overlay_sdk.migrate import check_registry, migrate, registry_steps

        with contextlib.ExitStack() as stack:
            target = to if isinstance(to, ControlPlane) else None
            store: Store
            if target is None and target_registry is None:  # the overlays only
                if _is_cluster(to):
                    from overlay_sdk.store.kubernetes import KubernetesStore

                    store = stack.enter_context(KubernetesStore.from_url(str(to)))
                else:
                    assert not isinstance(to, ControlPlane)
                    store = stack.enter_context(LocalStore.in_home(to))
                where = getattr(store, "url", None) or str(getattr(store, "path", to))
            else:
                if target is None:
                    assert not isinstance(to, ControlPlane)
                    target = stack.enter_context(connect(to, registry_uri=target_registry))
                store, where = target.store, target.address
            if where == self.address:
                raise ValidationError.at("to", f"{where} is this control plane itself; give "
                                         "another cluster namespace or overlay home")
            models = None if target is None else target.models
            check = (models is not None and models.tracking_uri != self.models.tracking_uri
                     if check_models is None else check_models)
            if check and models is None:
                raise ValidationError.at("target_registry", "give the target's MLflow tracking "
                                         "URI to check the models against")
            steps = registry_steps(self.models.tracking_uri, target_registry,
                                   cluster=_is_cluster(to) or _is_cluster(where))
            if check and models is not None:
                missing = check_registry(self.store, self.models, models)
                if missing:
                    lines = "\n  ".join(str(m) for m in missing)
                    raise ValidationError.at(
                        "target_registry", f"{len(missing)} model version(s) the overlays "
                        f"use are not in the target registry as they are here; nothing was "
                        f"copied:\n  {lines}\n{steps}")
            report = migrate(self.store, store, names=names, dry_run=dry_run,
                             progress=progress, source_name=self.address, target_name=where)
        note = "" if check else steps
        return dataclasses.replace(report, notes=note)

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


def _is_cluster(address: object) -> bool:
    return isinstance(address, str) and address.lower().startswith("k8s://")
