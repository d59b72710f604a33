"""``overlay migrate``: copy overlays with their whole history from one store to another.

The way from the embedded default to a cluster (``overlay migrate --to k8s://CONTEXT/NS``),
and back. :func:`migrate` copies, per overlay, every revision the target does not hold yet,
oldest first, with :meth:`~overlay_sdk.store.base.Store.import_revision`: numbers, authors,
times, messages and tombstones are kept, so ``history``, ``rollback --to N`` and the metrics
of "the overlay since it was (re)created" read the same on both sides. It is idempotent: a
second run copies nothing, an interrupted run continues where it stopped, and a target whose
history of an overlay differs from the source's (someone wrote there meanwhile) is refused
for that overlay, never rewritten (:func:`plan_copy`).

Models are not copied: overlays name registry versions (``copilot:4``), and a cluster's
model servers read them from an MLflow tracking server, not from the registry file in the
overlay home. :func:`registry_steps` says how to move the registry;
:func:`check_registry` confirms, before anything is copied, that every version the live
overlays route to exists in the target registry with the same SHA-256 identity.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from overlay_sdk.errors import ConflictError, NotFoundError, ValidationError
from overlay_sdk.spec import ModelRef
from overlay_sdk.store.base import Revision, Store

if TYPE_CHECKING:
    import pandas as pd

    from overlay_sdk.registry import ModelRegistry

__all__ = [
    "MigrationReport",
    "OverlayCopy",
    "RegistryMismatch",
    "check_registry",
    "migrate",
    "plan_copy",
    "registry_steps",
]


@dataclass(frozen=True)
class OverlayCopy:
    """What :func:`migrate` did (or, in a dry run, would do) for one overlay."""

    name: str
    revisions: int  # in the source's history
    present: int  # already in the target (an earlier run)
    copied: int  # written by this run (dry run: would be written)
    live: bool  # the overlay is live (not deleted) after the copy
    error: str = ""  # why it was not copied (the target's history differs)


@dataclass(frozen=True)
class MigrationReport:
    """The outcome of :func:`migrate`, per overlay; ``frame()`` for a DataFrame."""

    source: str
    target: str
    overlays: tuple[OverlayCopy, ...]
    dry_run: bool = False
    notes: str = ""  # what is left to do (moving the model registry)

    @property
    def copied(self) -> int:
        """Revisions written (dry run: that would be written)."""
        return sum(o.copied for o in self.overlays)

    @property
    def failed(self) -> tuple[OverlayCopy, ...]:
        return tuple(o for o in self.overlays if o.error)

    def frame(self) -> pd.DataFrame:
        import pandas as pd

        columns = [f.name for f in dataclasses.fields(OverlayCopy)]
        return pd.DataFrame([dataclasses.astuple(o) for o in self.overlays], columns=columns)

    def __str__(self) -> str:
        verb = "would copy" if self.dry_run else "copied"
        live = sum(o.live for o in self.overlays if not o.error)
        text = (f"{verb} {self.copied} revision(s) of {len(self.overlays)} overlay(s) "
                f"({live} live) from {self.source} to {self.target}")
        for o in self.failed:
            text += f"\n  {o.name}: not copied: {o.error}"
        return f"{text}\n{self.notes}" if self.notes else text


def plan_copy(source: Sequence[Revision], target: Sequence[Revision]) -> int:
    """How many of ``source``'s revisions (one overlay's history, oldest first) ``target``
    holds already; the rest are to be copied. Pure. ConflictError when ``target`` is not a
    beginning of ``source``: its history of the overlay differs, and is never rewritten."""
    for i, held in enumerate(target):
        if i >= len(source):
            raise ConflictError(
                f"overlay {held.name!r} has {len(target)} revision(s) in the target but "
                f"{len(source)} in the source: it was changed in the target after an earlier "
                "copy; copy it under another name, or delete it from the target first",
                expected=len(source), current=len(target),
            )
        if _for_target(source[i]) != held:
            raise ConflictError(
                f"overlay {held.name!r} revision {held.revision} differs between source (by "
                f"{source[i].author}, {source[i].action}) and target (by {held.author}, "
                f"{held.action}): the target has another history of that name; copy it under "
                "another name, or delete it from the target first",
                expected=held.revision - 1, current=len(target),
            )
    return len(target)


def _for_target(rev: Revision) -> Revision:
    """``rev`` as the target holds it: the namespace is the target store's own."""
    if rev.overlay is None or rev.overlay.metadata.namespace is None:
        return rev
    meta = rev.overlay.metadata.model_copy(update={"namespace": None})
    return dataclasses.replace(rev, overlay=rev.overlay.model_copy(update={"metadata": meta}))


def _history(store: Store, name: str) -> list[Revision]:
    try:
        return store.history(name)
    except NotFoundError:
        return []


def migrate(
    source: Store,
    target: Store,
    *,
    names: Iterable[str] | None = None,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
    source_name: str = "",
    target_name: str = "",
) -> MigrationReport:
    """Copy ``names`` (default: every overlay the source has a history of, deleted ones
    too) with their whole history from ``source`` to ``target``.

    An overlay whose history in the target differs from the source's is not copied and
    is reported (``report.failed``); the others are. ``progress(done, total)`` is called
    after each overlay. ``dry_run``: read both stores, write nothing, report what would be
    copied."""
    if names is None:
        wanted = source.names()
    else:
        wanted = [names] if isinstance(names, str) else list(names)
        if not all(isinstance(n, str) for n in wanted):
            raise ValidationError.at("names", f"give overlay names as strings, got {wanted!r}")
        known = set(source.names())
        for name in wanted:
            if name not in known:
                raise NotFoundError(
                    f"overlay {name!r} has no history in {source_name or 'the source'}; "
                    f"its overlays are: {', '.join(sorted(known)) or 'none'}"
                )
    done: list[OverlayCopy] = []
    for name in wanted:
        history = [_for_target(r) for r in source.history(name)]
        try:
            present = plan_copy(history, _history(target, name))
            todo = history[present:]
            if not dry_run:
                for rev in todo:
                    target.import_revision(rev)
            done.append(OverlayCopy(name, len(history), present, len(todo),
                                    history[-1].action == "apply"))
        except ConflictError as err:
            done.append(OverlayCopy(name, len(history), 0, 0, False, error=str(err)))
        if progress is not None:
            progress(len(done), len(wanted))
    return MigrationReport(source_name or repr(source), target_name or repr(target),
                           tuple(done), dry_run)


@dataclass(frozen=True)
class RegistryMismatch:
    """A model version a live overlay uses that the target registry lacks or holds with
    other contents."""

    overlay: str
    ref: str  # as the overlay names it: copilot:4, copilot@prod
    source_sha256: str
    target: str  # the target's version and identity, or why it has none

    def __str__(self) -> str:
        return (f"{self.overlay} uses {self.ref} (sha256 {self.source_sha256[:12]}): "
                f"target registry {self.target}")


def _refs(store: Store) -> list[tuple[str, ModelRef]]:
    out: list[tuple[str, ModelRef]] = []
    for rev in store.list():
        assert rev.overlay is not None
        spec = rev.overlay.spec
        targets: list[Any] = [*spec.routes, *([spec.shadow] if spec.shadow else [])]
        out.extend((rev.name, t.ref) for t in targets)
    return out


def check_registry(store: Store, source: ModelRegistry,
                   target: ModelRegistry) -> list[RegistryMismatch]:
    """Every model version the live overlays of ``store`` route or mirror to, resolved in
    ``source`` and in ``target``: those the target lacks or holds with another SHA-256."""
    out: list[RegistryMismatch] = []
    seen: dict[str, tuple[str, str]] = {}
    for overlay, ref in _refs(store):
        key = str(ref)
        if key not in seen:
            mine = source.resolve(ref)
            try:
                theirs = target.resolve(ref)
                there = (f"has {theirs.name}:{theirs.version} with sha256 "
                         f"{theirs.sha256[:12]}" if theirs.sha256 != mine.sha256 else "")
            except NotFoundError as err:
                there = f"lacks it ({err})"
            seen[key] = (mine.sha256, there)
        sha, there = seen[key]
        if there:
            out.append(RegistryMismatch(overlay, key, sha, there))
    return out


def registry_steps(source_uri: str, target_uri: str | None, *, cluster: bool = True) -> str:
    """What to do with the model registry the overlays name versions of (``source_uri``)
    when copying them to a ``cluster`` (else another overlay home) that uses ``target_uri``."""
    if not cluster:
        return "\n".join([
            f"Models are not copied: open the copy with the same registry (registry_uri="
            f"{source_uri}, or --registry-uri), or move the registry as below and check it "
            "with --target-registry.",
            f"  MLFLOW_TRACKING_URI={source_uri} export-models --models all --output-dir "
            "/tmp/models   (pip install mlflow-export-import)",
            "  MLFLOW_TRACKING_URI=<target> import-models --input-dir /tmp/models",
        ])
    target = target_uri or "http://mlflow.mlops.svc:5000"
    if source_uri.startswith(("sqlite:", "file:")) or "://" not in source_uri:
        head = (f"The models are in a registry on this machine ({source_uri}), which the "
                "cluster cannot read. Move them to an MLflow tracking server it can reach:")
    else:
        head = (f"The models stay in the registry at {source_uri}; the cluster's model "
                "servers and gateway must reach it (OVERLAY_REGISTRY_URI). Otherwise:")
    return "\n".join([
        head,
        "  1. Run a tracking server with a database and an artifact store, e.g.",
        "     mlflow server --backend-store-uri postgresql://... --artifacts-destination "
        "s3://BUCKET/mlflow --serve-artifacts",
        "  2. Copy the registered models with MLflow's export tools "
        "(pip install mlflow-export-import):",
        f"     MLFLOW_TRACKING_URI={source_uri} export-models --models all --output-dir "
        "/tmp/models",
        f"     MLFLOW_TRACKING_URI={target} import-models --input-dir /tmp/models",
        "  3. Check that every version the overlays use arrived with the same SHA-256 "
        "identity, then copy the overlays:",
        f"     overlay migrate --to k8s://CONTEXT/NAMESPACE --target-registry {target}",
        f"  4. Install the operator with OVERLAY_REGISTRY_URI={target} (see README, "
        "'On a cluster').",
    ])
