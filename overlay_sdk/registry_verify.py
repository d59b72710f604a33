"""``verify``: recompute a registered version's identity from its stored artifacts.

:meth:`overlay_sdk.registry.ModelRegistry.verify` calls :func:`verify_version`, which
downloads the version's model folder, reference data and file manifest (what
:mod:`overlay_sdk.registry_identity` stored at registration), recomputes the identity with
the same :func:`~overlay_sdk.registry_identity.compute_identity` from the stored files and
version tags alone, and compares it with the ``overlay.sha256`` tag. The manifest names the
files that differ; environment files, which are not part of the identity, are checked
against it too. The result is a :class:`VerifyResult`; ``raise_for_mismatch`` turns a
mismatch into a BackendError.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from overlay_sdk import hashing
from overlay_sdk.errors import BackendError
from overlay_sdk.registry_backend import safe_uri
from overlay_sdk.registry_identity import (
    MANIFEST_PATH,
    MODEL_PATH,
    REFERENCE_PATH,
    TAG_FEATURES,
    TAG_FLAVOR,
    TAG_FORMAT,
    TAG_MANIFEST,
    TAG_REFERENCE,
    TAG_RESOURCES,
    TAG_SHA,
    Identity,
    compute_identity,
    reference_hash,
)

if TYPE_CHECKING:
    from overlay_sdk.registry_backend import MlflowBackend

__all__ = ["VerifyResult", "verify_version"]

_FORMAT_1 = "overlay-sdk/identity/1"  # versions registered before the format tag existed


@dataclass(frozen=True)
class VerifyResult:
    """What :meth:`~overlay_sdk.registry.ModelRegistry.verify` found for one version.

    ``expected_sha256`` is the identity recorded at registration (tag ``overlay.sha256``),
    ``actual_sha256`` the one recomputed from the stored artifacts. ``ok`` is True when they
    are equal and every stored file is as registered. ``changed``, ``missing`` and ``added``
    name artifacts by their path in the version's run (``model/model.pkl``,
    ``reference/reference.parquet``; the run's artifacts are at ``location``) or a tag
    (``tag overlay.flavor``); ``note`` says why files cannot be named, if they cannot.
    """

    name: str
    version: str
    expected_sha256: str
    actual_sha256: str
    ok: bool
    changed: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    note: str = ""
    location: str = ""

    @property
    def files(self) -> tuple[str, ...]:
        """Every artifact or tag that differs from registration, sorted."""
        return tuple(sorted({*self.changed, *self.missing, *self.added}))

    def __str__(self) -> str:
        subject = f"{self.name}:{self.version}"
        if self.ok:
            return f"{subject} verified: its stored artifacts hash to sha256 {self.actual_sha256}"
        if self.actual_sha256 == self.expected_sha256:
            head = (f"{subject} failed verification: its identity matches (sha256 "
                    f"{self.expected_sha256}) but stored files differ from registration")
        else:
            head = (f"{subject} failed verification: expected sha256 {self.expected_sha256}, "
                    f"its stored artifacts hash to {self.actual_sha256}")
        parts = [head] + [f"{kind}: {', '.join(paths)}" for kind, paths in (
            ("changed", self.changed), ("missing", self.missing), ("added", self.added)) if paths]
        if self.location and (self.changed or self.missing or self.added):
            parts.append(f"artifact paths are under {self.location}")
        if self.note:
            parts.append(self.note)
        parts.append("restore the stored files from a backup, or register the model again "
                     "(as a new version) and route traffic to that")
        return "; ".join(parts)

    def raise_for_mismatch(self) -> VerifyResult:
        """This result if ``ok``; else BackendError with the whole report as its message."""
        if not self.ok:
            raise BackendError(str(self))
        return self


def _recorded_manifest(data: bytes | None, tags: Mapping[str, str]) -> tuple[
        dict[str, Any] | None, str | None]:
    """The stored manifest if it is intact, else None and what is wrong with it."""
    if data is None:
        return None, "missing"
    if hashlib.sha256(data).hexdigest() != tags.get(TAG_MANIFEST):
        return None, "changed"
    try:
        doc = json.loads(data)
    except ValueError:
        return None, "changed"
    return (doc, None) if isinstance(doc, dict) else (None, "changed")


def _features(tags: Mapping[str, str]) -> tuple[list[str], bool]:
    """The features tag, and whether it could be read."""
    try:
        value = json.loads(tags.get(TAG_FEATURES, "[]"))
    except ValueError:
        return [], False
    ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    return (value, True) if ok else ([], False)


def _resources(tags: Mapping[str, str]) -> tuple[dict[str, Any] | None, bool]:
    """The resources tag (None: not declared), and whether it could be read."""
    from overlay_sdk.registry_resources import Resources

    text = tags.get(TAG_RESOURCES)
    if text is None:
        return None, True
    try:
        return Resources.from_json(text).as_dict(), True
    except (ValueError, TypeError):
        return {"unreadable": hashlib.sha256(text.encode()).hexdigest()}, False


def verify_version(backend: MlflowBackend, name: str, version: str) -> VerifyResult:
    """Download the stored artifacts of ``name`` version ``version``, recompute its identity
    and compare (see the module docs). NotFoundError when the version does not exist;
    BackendError when it cannot be checked (no identity recorded, an identity format this
    overlay-sdk does not compute, the artifact store unreachable)."""
    mv = backend.model_version(name, version)
    tags: dict[str, str] = dict(mv.tags or {})
    subject = f"{name}:{version}"
    expected = tags.get(TAG_SHA)
    if not expected:
        raise BackendError(
            f"{subject} has no recorded identity (tag {TAG_SHA}): it was not registered with "
            f"overlay-sdk; import it with register(name, model='models:/{name}/{version}') "
            "to give it one, then verify that version"
        )
    fmt = tags.get(TAG_FORMAT, _FORMAT_1)
    if fmt != hashing.IDENTITY_FORMAT:
        raise BackendError(
            f"{subject} was registered with identity format {fmt!r}, which this overlay-sdk "
            f"cannot recompute (it computes {hashing.IDENTITY_FORMAT!r}); register the model "
            "again to get a version that can be verified"
        )
    root = str(backend.run(mv.run_id).info.artifact_uri).rstrip("/")
    with tempfile.TemporaryDirectory(prefix="overlay-verify-") as tmp:
        work = Path(tmp)
        model_dir = backend.download(backend.version_download_uri(name, version), work / "m")
        manifest = backend.download(f"{root}/{MANIFEST_PATH}", work / "o")
        recorded, manifest_problem = _recorded_manifest(
            manifest.read_bytes() if manifest is not None else None, tags)
        ref_state, ref_hash = "none", None
        if TAG_REFERENCE in tags:
            parquet = backend.download(f"{root}/{REFERENCE_PATH}", work / "r")
            if parquet is None:
                ref_state = "missing"
            else:
                try:
                    ref_state, ref_hash = "ok", reference_hash(parquet)
                except Exception:  # pyarrow raises many kinds for a damaged file
                    digest = hashlib.sha256(parquet.read_bytes()).hexdigest()
                    ref_state, ref_hash = "unreadable", f"unreadable:{digest}"
        features, features_ok = _features(tags)
        resources, resources_ok = _resources(tags)
        actual = compute_identity(model_dir, flavor=tags.get(TAG_FLAVOR, ""), features=features,
                                  reference=ref_hash, resources=resources)
    bad_tags = [f"tag {tag}" for tag, ok in ((TAG_FEATURES, features_ok),
                                              (TAG_RESOURCES, resources_ok)) if not ok]
    return _compare(name, version, expected, actual, recorded, manifest_problem, ref_state,
                    bad_tags, has_model=model_dir is not None, location=safe_uri(root))


def _compare(name: str, version: str, expected: str, actual: Identity,
             recorded: dict[str, Any] | None, manifest_problem: str | None, ref_state: str,
             bad_tags: list[str], *, has_model: bool, location: str) -> VerifyResult:
    """The report: what differs between the recorded manifest (None: missing or edited,
    ``manifest_problem`` says which) and what was recomputed."""
    changed: list[str] = []
    missing: list[str] = []
    added: list[str] = []
    note = ""
    if ref_state == "missing":
        missing.append(REFERENCE_PATH)
    elif ref_state == "unreadable":
        changed.append(REFERENCE_PATH)
    changed += bad_tags
    if recorded is None:
        (missing if manifest_problem == "missing" else changed).append(MANIFEST_PATH)
        if not has_model:
            missing.append(f"{MODEL_PATH}/")
        if actual.sha256 != expected:
            note = (f"without an intact {MANIFEST_PATH} the model files that differ cannot be "
                    "named")
    else:
        now = {f"{MODEL_PATH}/{p}": d for p, d in actual.files.items()}
        then: dict[str, str] = dict(recorded.get("files") or {})
        changed += [p for p in then if p in now and now[p] != then[p]]
        missing += [p for p in then if p not in now]
        added += [p for p in now if p not in then]
        config = dict(recorded.get("config") or {})
        for key, tag in (("flavor", TAG_FLAVOR), ("features", TAG_FEATURES),
                         ("resources", TAG_RESOURCES)):
            if config.get(key) != actual.config.get(key) and f"tag {tag}" not in changed:
                changed.append(f"tag {tag}")
        if config.get("reference") != actual.config["reference"] and ref_state == "ok":
            changed.append(REFERENCE_PATH)
        elif config.get("reference") is not None and ref_state == "none":
            changed.append(f"tag {TAG_REFERENCE}")
        if recorded.get("sha256") != expected:
            changed.append(f"tag {TAG_SHA}")
    ok = actual.sha256 == expected and not (changed or missing or added)
    return VerifyResult(name, version, expected, actual.sha256, ok, tuple(sorted(changed)),
                        tuple(sorted(missing)), tuple(sorted(added)), note, location)
