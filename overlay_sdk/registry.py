"""The model registry: register, list, resolve, load and verify immutable model versions.

``cp.models`` (the client) is a :class:`ModelRegistry`; the control plane calls
:meth:`ModelRegistry.resolve` to turn ``name:version`` / ``name@alias`` in a route into a
concrete :class:`ModelVersion`, and the gateway calls :meth:`ModelRegistry.load`.

A version's identity is the SHA-256 of its saved artifacts plus canonical configuration
(:mod:`overlay_sdk.hashing`), kept in the model version tag ``overlay.sha256``; registering
identical content returns the existing version. :meth:`ModelRegistry.register` saves the
model into a temporary folder (:mod:`overlay_sdk.flavors`), or downloads the MLflow model a
URI names (:mod:`overlay_sdk.registry_import`), hashes it with its reference data as stored
(:mod:`overlay_sdk.registry_identity`), then, holding a file lock, looks the hash up and, if it
is new, logs exactly those files and a file manifest into a run of the ``overlay-sdk``
experiment and creates the version (:mod:`overlay_sdk.registry_backend`, all or nothing).
:meth:`ModelRegistry.verify` recomputes the identity from what is stored
(:mod:`overlay_sdk.registry_verify`). MLflow and pandas
are imported on first use, so importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

from overlay_sdk.errors import BackendError, ValidationError
from overlay_sdk.registry_backend import MlflowBackend, safe_uri, sqlite_path
from overlay_sdk.registry_identity import (
    TAG_FEATURES,
    TAG_FLAVOR,
    TAG_LABEL,
    TAG_REFERENCE,
    TAG_SHA,
    TAG_SOURCE,
    prepare,
)
from overlay_sdk.registry_verify import VerifyResult, verify_version
from overlay_sdk.spec import MODEL_NAME, VERSION, ModelRef

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "LIST_COLUMNS",
    "UI_ENV",
    "VERSION_COLUMNS",
    "ModelRegistry",
    "ModelVersion",
    "VerifyResult",
    "content_sha256",
    "ui_link",
    "versions_frame",
]

VERSION_COLUMNS = ("version", "label", "sha256", "created_at", "source", "flavor", "aliases",
                   "features", "ui")
LIST_COLUMNS = ("name", "latest_version", "versions", "aliases", "updated_at")
UI_ENV = "OVERLAY_MLFLOW_UI"
"""Environment variable with the MLflow UI address, used when ``ui_url`` is not given."""
LOCK_TIMEOUT_S = 300.0
_MAX_NAME, _MAX_LABEL, _MAX_DESCRIPTION = 128, 250, 5000
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelVersion:
    """One immutable registered model version. ``source`` says what it was made from
    (``sklearn:LogisticRegression``, or the URI it was imported from, ``runs:/<run_id>/model``);
    ``uri`` names it for MLflow (``models:/fraud/3``)."""

    name: str
    version: str
    sha256: str
    label: str | None
    created_at: datetime
    source: str
    flavor: str = ""
    features: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    uri: str = ""

    def __str__(self) -> str:
        return f"{self.name}:{self.version}"


def _check_name(name: Any, field: str = "name") -> str:
    if not isinstance(name, str) or not re.match(MODEL_NAME, name) or len(name) > _MAX_NAME:
        raise ValidationError.at(
            field, f"{name!r} is not a model name: use up to {_MAX_NAME} letters, digits, "
            "'.', '_' and '-', starting with a letter or digit, e.g. 'fraud-detector'"
        )
    return name


def _check_version(version: Any) -> str:
    text = str(version) if isinstance(version, int) and not isinstance(version, bool) else version
    if not isinstance(text, str) or not re.match(VERSION, text):
        raise ValidationError.at(
            "version", f"{version!r} is not a version: use a positive integer such as 3 or \"3\""
        )
    return text


def _check_text(value: Any, field: str, limit: int) -> None:
    if value is not None and (not isinstance(value, str) or not value or len(value) > limit):
        raise ValidationError.at(field, f"must be a non-empty string of at most {limit} "
                                 f"characters, got {value!r:.60}")


@contextlib.contextmanager
def _file_lock(path: Path, timeout: float) -> Iterator[None]:
    """An exclusive ``fcntl.flock`` on ``path``; released when the block or process ends."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+b")  # noqa: SIM115 - closed below, after the lock is released
    except OSError as err:
        raise BackendError(f"cannot open the registry lock {path} ({err}); pass a writable "
                           "lock_dir") from err
    with handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise BackendError(
                        f"another process has held the registry lock {path} for {timeout:.0f} s;"
                        " wait for it to finish, or end it if it hangs"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class ModelRegistry:
    """Registered models and their versions, stored in MLflow at ``tracking_uri``.

    ``lock_dir`` holds ``registry.lock``, which serialises registration between
    processes on this machine (default: the folder of a SQLite database, else a temp
    folder). ``artifact_root`` (a folder or a URI) is where the ``overlay-sdk`` experiment
    stores artifacts when this registry creates it (default: ``mlartifacts/`` next to a
    SQLite database, else the tracking server's default).

    ``ui_url`` is the address of an MLflow UI showing this registry (such as
    ``http://127.0.0.1:5000`` from ``mlflow ui --backend-store-uri <tracking_uri>``); it
    gives :meth:`versions` its ``ui`` links. Default: ``$OVERLAY_MLFLOW_UI``, else the
    tracking URI itself when it is an ``http(s)://`` tracking server (which serves the UI),
    else none. ``ui_url=""`` turns the links off.
    """

    def __init__(
        self,
        tracking_uri: str,
        *,
        registry_uri: str | None = None,
        lock_dir: str | Path | None = None,
        artifact_root: str | Path | None = None,
        ui_url: str | None = None,
    ) -> None:
        db = sqlite_path(tracking_uri)
        if artifact_root is None and db is not None:
            artifact_root = db.parent / "mlartifacts"
        artifact_location = (
            Path(artifact_root).expanduser().absolute().as_uri()
            if isinstance(artifact_root, Path) or (artifact_root and "://" not in artifact_root)
            else artifact_root
        )
        if lock_dir is None:
            digest = hashlib.sha256(tracking_uri.encode()).hexdigest()[:16]
            lock_dir = (db.parent if db is not None
                        else Path(tempfile.gettempdir()) / "overlay-sdk-locks" / digest)
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri or tracking_uri
        self.lock_dir = Path(lock_dir)
        self.artifact_location = artifact_location
        self.ui_url = _ui_base(ui_url, tracking_uri)
        self._mlflow = MlflowBackend(tracking_uri, self.registry_uri, artifact_location)

    @classmethod
    def for_home(cls, home: str | Path) -> ModelRegistry:
        """The embedded default: ``sqlite:///<home>/mlflow.db``, artifacts in
        ``<home>/mlartifacts``, lock file ``<home>/registry.lock``."""
        return cls(f"sqlite:///{Path(home).expanduser().absolute()}/mlflow.db")

    def __repr__(self) -> str:
        return f"ModelRegistry({safe_uri(self.tracking_uri)!r})"

    def register(
        self,
        name: str,
        model: Any,
        *,
        flavor: str | None = None,
        label: str | None = None,
        reference: pd.DataFrame | None = None,
        signature: Any = None,
        input_example: Any = None,
        description: str | None = None,
    ) -> ModelVersion:
        """Register ``model`` as a new version of ``name``, or return the identical one.

        ``model`` is a model object, or an MLflow model URI to import from this registry's
        tracking server: ``runs:/<run_id>/<artifact_path>``, ``models:/<name>/<version>``,
        ``models:/<name>@<alias>`` or ``models:/<model_id>`` (what ``log_model`` returns as
        ``model_info.model_uri``). An imported model keeps its files, flavor and signature;
        its ``source`` is the URI (an alias resolved to its version). It hashes like the same
        model registered directly when MLflow wrote the same files, e.g. a scikit-learn model
        logged with ``serialization_format="cloudpickle"`` and the same signature.

        ``flavor`` is "sklearn" or "pyfunc" (detected when None); ``label`` is free text
        such as "v1.0.4-alpha"; ``reference`` (the training data) is stored with the version
        for drift analysis and names the features; ``signature`` is an MLflow
        ``ModelSignature``, inferred from ``input_example`` or ``reference`` when None (model
        objects only). Label and description are not part of the identity: identical
        content registered with another label returns the existing version, which keeps its
        label.
        """
        _check_name(name)
        _check_text(label, "label", _MAX_LABEL)
        _check_text(description, "description", _MAX_DESCRIPTION)
        with tempfile.TemporaryDirectory(prefix="overlay-register-") as tmp:
            sha, artifacts, tags = prepare(Path(tmp), model, flavor, reference, signature,
                                            input_example, self._mlflow)
            if label is not None:
                tags[TAG_LABEL] = label
            with _file_lock(self.lock_dir / "registry.lock", LOCK_TIMEOUT_S):
                existing = self._find(name, sha)
                if existing is None:
                    return self._create(name, artifacts, tags, description)
        if label is not None and existing.label != label:
            _log.info("%s has the same content as %s; keeping its label %r", name, existing,
                      existing.label)
        return existing

    def _find(self, name: str, sha256: str) -> ModelVersion | None:
        """The lowest version of ``name`` whose identity is ``sha256``, if any."""
        found = self._mlflow.search_versions(name, {TAG_SHA: sha256})
        return self.get(name, found[0].version) if found else None

    def _create(self, name: str, artifacts: Mapping[str, Path], tags: Mapping[str, str],
                description: str | None) -> ModelVersion:
        mv = self._mlflow.create_version(name, artifacts, tags, description)
        # The lock is per machine: a process elsewhere may have registered the same content
        # meanwhile. Keep the lowest version and drop ours.
        same = self._mlflow.search_versions(name, {TAG_SHA: tags[TAG_SHA]})
        first = str(same[0].version) if same else str(mv.version)
        if first != str(mv.version):
            self._mlflow.delete_version(name, str(mv.version), mv.run_id)
        return self.get(name, first)

    def get(self, name: str, version: str | int) -> ModelVersion:
        """Version ``version`` of ``name``; NotFoundError lists the versions that exist."""
        return _to_version(self._mlflow.model_version(_check_name(name), _check_version(version)))

    def resolve(self, ref: ModelRef | str) -> ModelVersion:
        """The concrete version that ``name:version`` or ``name@alias`` names."""
        if isinstance(ref, str):
            ref = ModelRef.parse(ref, field="ref")
        if not isinstance(ref, ModelRef):
            raise ValidationError.at("ref", "expected 'name:version', 'name@alias' or a "
                                     f"ModelRef, got a {type(ref).__name__}")
        _check_name(ref.model, "ref")
        if ref.version is not None:
            return self.get(ref.model, ref.version)
        if ref.alias is None:
            raise ValidationError.at("ref", "give a version or an alias, e.g. copilot:3")
        return _to_version(self._mlflow.model_version_by_alias(ref.model, ref.alias))

    def load(self, name: str, version: str | int) -> Any:
        """The version as an ``mlflow.pyfunc.PyFuncModel``: call ``.predict(data)``."""
        mv = self.get(name, version)
        return self._mlflow.load_pyfunc(mv.name, mv.version)

    def verify(self, name: str, version: str | int, *, strict: bool = False) -> VerifyResult:
        """Recompute the identity of a version from its stored artifacts and compare it with
        the SHA-256 recorded at registration.

        Returns a :class:`VerifyResult` naming the files that differ (``result.ok``), or with
        ``strict=True`` raises BackendError with that report when it does not match.
        NotFoundError when the version does not exist; BackendError when it cannot be
        checked (registered without overlay-sdk, or the artifact store is unreachable).
        """
        result = verify_version(self._mlflow, _check_name(name), _check_version(version))
        return result.raise_for_mismatch() if strict else result

    def reference(self, name: str, version: str | int) -> pd.DataFrame | None:
        """The reference data registered with the version, or None if it has none."""
        mv = self._mlflow.model_version(_check_name(name), _check_version(version))
        path = (mv.tags or {}).get(TAG_REFERENCE)
        return None if path is None else self._mlflow.read_parquet(mv.run_id, path)

    def versions(self, name: str) -> pd.DataFrame:
        """One row per version of ``name`` (:data:`VERSION_COLUMNS`), oldest first; ``ui``
        links to the version in the MLflow UI, or is None without a UI address
        (see :class:`ModelRegistry`)."""
        aliases = dict(self._mlflow.registered_model(_check_name(name)).aliases)
        return versions_frame([_to_version(mv, aliases)
                               for mv in self._mlflow.search_versions(name)], ui_url=self.ui_url)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str) or not re.match(MODEL_NAME, name):
            return False
        return self._mlflow.exists(name)

    def list(self) -> pd.DataFrame:
        """One row per registered model (:data:`LIST_COLUMNS`), by name."""
        import pandas as pd

        rows = []
        for rm in self._mlflow.registered_models():
            numbers = [int(mv.version) for mv in self._mlflow.search_versions(rm.name)]
            rows.append({
                "name": rm.name,
                "latest_version": str(max(numbers)) if numbers else None,
                "versions": len(numbers),
                "aliases": {a: str(v) for a, v in sorted(dict(rm.aliases).items())},
                "updated_at": _utc(rm.last_updated_timestamp),
            })
        frame = pd.DataFrame(rows, columns=list(LIST_COLUMNS))
        frame["updated_at"] = pd.to_datetime(frame["updated_at"], utc=True)
        return frame


def content_sha256(
    model: Any,
    *,
    flavor: str | None = None,
    reference: pd.DataFrame | None = None,
    signature: Any = None,
    input_example: Any = None,
) -> str:
    """The identity :meth:`ModelRegistry.register` would give ``model``, without a registry."""
    with tempfile.TemporaryDirectory(prefix="overlay-hash-") as tmp:
        return prepare(Path(tmp), model, flavor, reference, signature, input_example, None)[0]


def _ui_base(ui_url: str | None, tracking_uri: str) -> str | None:
    """The MLflow UI address to link to (see :class:`ModelRegistry`), without credentials,
    trailing slash or fragment; ValidationError naming ``ui_url`` or the variable when
    malformed."""
    field = "ui_url"
    if ui_url is None:
        ui_url, field = os.environ.get(UI_ENV), UI_ENV
    if ui_url is None:
        parts = urlsplit(tracking_uri)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return None
        ui_url = tracking_uri
    if not isinstance(ui_url, str):
        raise ValidationError.at(field, f"give the MLflow UI address as a string such as "
                                 f"'http://127.0.0.1:5000', got a {type(ui_url).__name__}")
    if not ui_url.strip():
        return None
    parts = urlsplit(ui_url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise ValidationError.at(field, f"{ui_url!r} is not an MLflow UI address; give the "
                                 "http(s) address it is served at, e.g. http://127.0.0.1:5000"
                                 " (or an empty string for no links)")
    netloc = parts.netloc.rpartition("@")[2]  # links are shown: never a user or password
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def ui_link(ui_url: str, name: str, version: str) -> str:
    """The MLflow UI page of a model version: ``{ui_url}/#/models/{name}/versions/{version}``
    (the route of MLflow's UI, which URL-encodes the name)."""
    return f"{ui_url.rstrip('/')}/#/models/{quote(name, safe='')}/versions/{quote(version)}"


def _utc(ms: int | None) -> datetime:
    return datetime.fromtimestamp((ms or 0) / 1000, tz=UTC)


def _to_version(mv: Any, aliases: Mapping[str, Any] | None = None) -> ModelVersion:
    """Our value object from an MLflow ModelVersion (``aliases``: the model's alias ->
    version map; needed for search results, which MLflow returns without aliases)."""
    tags: dict[str, str] = dict(mv.tags or {})
    version = str(mv.version)
    if aliases is None:
        names = tuple(sorted(mv.aliases or ()))
    else:
        names = tuple(sorted(a for a, v in aliases.items() if str(v) == version))
    return ModelVersion(
        name=mv.name,
        version=version,
        sha256=tags.get(TAG_SHA, ""),
        label=tags.get(TAG_LABEL),
        created_at=_utc(mv.creation_timestamp),
        source=tags.get(TAG_SOURCE, mv.source or ""),
        flavor=tags.get(TAG_FLAVOR, ""),
        features=tuple(json.loads(tags.get(TAG_FEATURES, "[]"))),
        aliases=names,
        uri=f"models:/{mv.name}/{version}",
    )


def versions_frame(versions: Sequence[ModelVersion], *, ui_url: str | None = None
                   ) -> pd.DataFrame:
    """:data:`VERSION_COLUMNS` of ``versions`` as a DataFrame, by version number;
    ``created_at`` is tz-aware UTC; ``ui`` is the :func:`ui_link` with ``ui_url``, or None
    without one (the column is always there)."""
    import pandas as pd

    rows = [{**{c: getattr(v, c) for c in VERSION_COLUMNS if c != "ui"},
             "ui": ui_link(ui_url, v.name, v.version) if ui_url else None}
            for v in sorted(versions, key=lambda v: int(v.version))]
    frame = pd.DataFrame(rows, columns=list(VERSION_COLUMNS))
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    return frame
