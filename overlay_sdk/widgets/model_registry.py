"""``ModelRegistry(cp)``: the registered models and their versions, in a notebook.

A table of models (versions, latest, which version the serving alias points at, aliases);
selecting one shows its versions: version, label, short SHA-256 (the full one in a
tooltip), created, source, flavor and aliases as badges, the serving alias highlighted.
"Register from MLflow run" imports a model logged in a run (``runs:/<run_id>/model``) as a
new version, then shows it. "Roll back…" moves an alias back in two steps: the dry run
(``cp.models.rollback_target``) is shown as ``fraud@serving: version 3 -> 2 (label C=0.1)``
and only Confirm moves the alias (``cp.models.rollback``); Cancel changes nothing.

Everything goes through the SDK (``cp.models``); a refusal is shown inline (the ``error``
trait: ``{action, field, message}``, ``field`` as the SDK's ValidationError names it) and
never raised into the notebook. Each button has a method doing the same from code:
:meth:`~ModelRegistry.refresh`, :meth:`~ModelRegistry.select`,
:meth:`~ModelRegistry.register_run`, :meth:`~ModelRegistry.preview_rollback`,
:meth:`~ModelRegistry.confirm_rollback` and :meth:`~ModelRegistry.cancel_rollback`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, TypeVar

import anywidget
import traitlets

from overlay_sdk.client import ControlPlane
from overlay_sdk.errors import ConflictError, NotFoundError, OverlayError, ValidationError
from overlay_sdk.registry import ModelRegistry as Registry
from overlay_sdk.registry import ModelVersion
from overlay_sdk.registry_aliases import DEFAULT_ALIAS
from overlay_sdk.widgets.assets import asset, esm
from overlay_sdk.widgets.registry_state import (
    PendingRollback,
    RollbackFlow,
    RollbackRequest,
    alias_choices,
    model_rows,
    parse_register,
    parse_rollback,
    version_rows,
)

__all__ = ["ModelRegistry"]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")


class ModelRegistry(anywidget.AnyWidget):
    """The models of control plane ``cp`` (or of a ``cp.models`` registry) and their
    versions (module docstring).

    ``alias`` is the serving alias: highlighted in the tables and preselected for
    rollbacks (default ``"serving"``); ``model`` the model shown first (default: the first).
    In code: ``reg.register_run("fraud", "runs:/<run_id>/model")`` does what the Register
    button does; ``reg.preview_rollback("fraud")`` then ``reg.confirm_rollback()`` what
    Roll back… and Confirm do; ``reg.error`` holds the last refusal."""

    _esm = esm("model_registry.js")
    _css = asset("model_registry.css")

    models = traitlets.List(traitlets.Dict()).tag(sync=True)
    selected = traitlets.Unicode("").tag(sync=True)
    versions = traitlets.List(traitlets.Dict()).tag(sync=True)
    selected_version = traitlets.Unicode("").tag(sync=True)
    alias = traitlets.Unicode(DEFAULT_ALIAS).tag(sync=True)
    alias_choices = traitlets.List(traitlets.Unicode()).tag(sync=True)
    pending = traitlets.Dict().tag(sync=True)
    busy = traitlets.Bool(False).tag(sync=True)
    error = traitlets.Dict().tag(sync=True)
    notice = traitlets.Unicode("").tag(sync=True)

    def __init__(self, cp: ControlPlane | Registry, *, model: str | None = None,
                 alias: str = DEFAULT_ALIAS, **kwargs: Any) -> None:
        if isinstance(cp, ControlPlane):
            registry, author = cp.models, cp.author
        elif isinstance(cp, Registry):
            registry, author = cp, None
        else:
            raise ValidationError.at("cp", f"give a control plane (ov.connect()) or its "
                                     f"cp.models, got {type(cp).__name__}")
        if not isinstance(alias, str) or not alias:
            raise ValidationError.at("alias", f"give an alias such as {DEFAULT_ALIAS!r}, got "
                                     f"{alias!r}")
        super().__init__(alias=alias, **kwargs)
        self._registry = registry
        self._author = author
        self._flow = RollbackFlow()
        self._depth = 0
        self.on_msg(self._on_message)
        self.refresh(select=model)

    @traitlets.observe("alias")
    def _alias_changed(self, _change: Any) -> None:
        if hasattr(self, "_flow"):  # (not while __init__ sets it)
            self.refresh()

    @property
    def registry(self) -> Registry:
        """The SDK registry the widget shows and changes (``cp.models``)."""
        return self._registry

    # -- reading ---------------------------------------------------------------------------

    def refresh(self, *, select: str | None = None) -> ModelRegistry:
        """Re-read the models, and the versions of the selected one (``select``: that model;
        default: the one selected, else the first)."""
        with self._working():
            rows = model_rows(self._registry.list().to_dict("records"), self.alias)
            names = [r["name"] for r in rows]
            wanted = select if select is not None else self.selected
            if wanted and wanted not in names:
                if select is not None:
                    raise ValidationError.at("name", f"no model named {select!r}; the models "
                                             f"are {', '.join(names) or '(none)'}")
                wanted = ""
            self.models = rows
            self._show(wanted or (names[0] if names else ""))
        return self

    def select(self, name: str) -> ModelRegistry:
        """Show the versions of model ``name`` (a pending rollback of another model is
        cancelled)."""
        with self._working():
            if name not in {r["name"] for r in self.models}:
                self.refresh(select=name)  # it may be new; else the error names the models
                return self
            self._show(name)
        return self

    def _show(self, name: str) -> None:
        if self._flow.pending is not None and self._flow.pending.name != name:
            self._flow.cancel()
        records = self._registry.versions(name).to_dict("records") if name else []
        recorded = (self._registry.alias_history(name)["alias"].unique().tolist()
                    if name else [])
        current: dict[str, str] = next((r["aliases"] for r in self.models if r["name"] == name), {})
        with self.hold_sync():
            if name != self.selected:
                self.selected_version = ""
            self.selected = name
            self.versions = version_rows(records, self.alias)
            self.alias_choices = alias_choices(current, recorded, self.alias) if name else []
            self.pending = self._flow.pending.as_dict() if self._flow.pending else {}

    # -- register from an MLflow run -----------------------------------------------------------

    def register_run(self, name: str, uri: str, label: str | None = None
                     ) -> ModelVersion | None:
        """Register the model MLflow logged at ``uri`` (``runs:/<run_id>/<artifact_path>``)
        as a version of ``name``, then show it. Returns the version (an existing one when
        its content is already registered), or None with :attr:`error` set."""
        return self._register({"name": name, "uri": uri, "label": label})

    def _register(self, content: Any) -> ModelVersion | None:
        def run() -> ModelVersion:
            request = parse_register(content)
            before = next((r["latest"] for r in self.models if r["name"] == request.name), None)
            version = self._registry.register(request.name, model=request.uri,
                                              label=request.label)
            self.refresh(select=version.name)
            self.selected_version = version.version
            if before is not None and int(version.version) <= int(before):
                self.notice = (f"{version} already had this content: nothing new was "
                               "registered")
            else:
                self.notice = f"registered {version} from {request.uri}"
            return version

        return self._attempt("register", run)

    # -- rollback, with a confirmation step ------------------------------------------------

    def preview_rollback(self, name: str, to: Any = "previous", *, alias: str | None = None
                         ) -> PendingRollback | None:
        """The dry run of rolling ``name@alias`` (default: the serving alias) back ``to``
        ("previous", a version, a label, a time): shown for confirmation and returned;
        nothing moves until :meth:`confirm_rollback`. None, with :attr:`error` set, when the
        rollback is impossible (no recorded history, no such version...)."""
        text = to.isoformat() if isinstance(to, datetime) else to
        return self._preview({"name": name, "alias": alias or self.alias, "to": text})

    def _preview(self, content: Any) -> PendingRollback | None:
        def run() -> PendingRollback:
            try:
                request = parse_rollback(content, self.alias)
                if request.name != self.selected:
                    self._show(request.name)
                target = self._registry.rollback_target(request.name, request.to,
                                                        alias=request.alias)
                pending = self._flow.preview(request, self._current(request), target.version,
                                             target.label)
            except OverlayError:
                self._drop_pending()
                raise
            self.pending = pending.as_dict()
            self.notice = ""
            return pending

        return self._attempt("rollback", run)

    def confirm_rollback(self) -> ModelVersion | None:
        """Perform the previewed rollback; returns the version the alias now points at.
        None, with :attr:`error` set, when nothing was previewed, when the move is refused
        (an overlay naming the alias could not follow it...), or when the alias moved since
        the preview (the new preview is then shown, to confirm again)."""
        return self._confirm(None)

    def _confirm(self, seen: Any) -> ModelVersion | None:
        def run() -> ModelVersion:
            pending = self._flow.confirm(seen if isinstance(seen, dict) else None)
            request = RollbackRequest(pending.name, pending.alias, pending.to)
            try:
                target = self._registry.rollback_target(pending.name, pending.to,
                                                        alias=pending.alias)
                current = self._current(request)
            except OverlayError:
                self._drop_pending()
                raise
            if (current, target.version) != (pending.from_version, pending.to_version):
                self._repreview(request, current, target)
            try:
                moved = self._registry.rollback(
                    pending.name, to=pending.to_version, alias=pending.alias,
                    author=self._author,
                    reason=f"rollback to {pending.to} (model registry widget)")
            except OverlayError:
                self._drop_pending()
                with contextlib.suppress(OverlayError):  # show what is there now
                    self.refresh(select=pending.name)
                raise
            self._drop_pending()
            self.refresh(select=pending.name)
            self.notice = f"rolled back {pending.move}"
            return moved

        return self._attempt("rollback", run)

    def _repreview(self, request: RollbackRequest, current: str | None,
                   target: ModelVersion) -> None:
        """The alias moved since the preview: show the rollback as it would be now, to be
        confirmed again (ConflictError, always)."""
        try:
            fresh = self._flow.preview(request, current, target.version, target.label)
        except ValidationError:  # it is already where the rollback would take it
            self._drop_pending()
            raise ConflictError(f"{request.name}@{request.alias} changed since the preview: it "
                                f"now points at version {current}, where the rollback would "
                                "take it; nothing to do") from None
        self.pending = fresh.as_dict()
        raise ConflictError(f"{request.name}@{request.alias} changed since the preview; now "
                            f"it is {fresh.text}: check it and confirm again")

    def _drop_pending(self) -> None:
        self._flow.done()
        self.pending = {}

    def cancel_rollback(self) -> PendingRollback | None:
        """Drop the previewed rollback; nothing is changed. Returns what was dropped
        (None: nothing was pending)."""
        dropped = self._flow.cancel()
        with self.hold_sync():
            self.pending = {}
            self.error = {}
            self.notice = f"cancelled: {dropped.text}" if dropped else ""
        return dropped

    def _current(self, request: RollbackRequest) -> str | None:
        """The version ``name@alias`` points at now (None: not set)."""
        try:
            return self._registry.get_version_by_alias(request.name, request.alias).version
        except NotFoundError:
            return None

    # -- plumbing --------------------------------------------------------------------------

    def _on_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        try:
            if kind == "refresh":
                self._attempt("refresh", self.refresh)
            elif kind == "select":
                name = content.get("name")
                self._attempt("select", lambda: self.select(name if isinstance(name, str)
                                                            else ""))
            elif kind == "register":
                self._register(content)
            elif kind == "preview":
                self._preview(content)
            elif kind == "confirm":
                self._confirm(content)
            elif kind == "cancel":
                self.cancel_rollback()
        except Exception as err:  # a button must not fail silently, nor raise in the kernel
            _log.exception("model registry widget: %s failed", kind)
            self.error = {"action": str(kind), "field": "",
                          "message": f"unexpected error: {type(err).__name__}: {err}"}
            self.busy = False
            self._depth = 0

    def _attempt(self, action: str, run: Callable[[], _T]) -> _T | None:
        """``run()``; an SDK refusal becomes :attr:`error` (None returned), success clears
        it."""
        with self._working():  # the error is set before busy ends
            try:
                result = run()
            except OverlayError as err:
                self.error = _error(action, err)
                return None
            self.error = {}
            return result

    @contextlib.contextmanager
    def _working(self) -> Iterator[None]:
        """Busy while Python works (nested calls: until the outer one is done)."""
        self._depth += 1
        self.busy = True
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth <= 0:
                self._depth = 0
                self.busy = False


def _error(action: str, err: OverlayError) -> dict[str, str]:
    """The ``error`` trait for ``err``: the field the SDK names (ValidationError), and
    every broken rule in the message."""
    if isinstance(err, ValidationError):
        first = err.errors[0]
        rest = "; ".join(str(e) for e in err.errors[1:])
        return {"action": action, "field": first.path,
                "message": first.message + (f"; {rest}" if rest else "")}
    return {"action": action, "field": "", "message": str(err)}
