"""The model registry: register, list, resolve and load immutable model versions.

``cp.models`` (the client) is a :class:`ModelRegistry`; the control plane calls
:meth:`ModelRegistry.resolve` to turn ``name:version`` / ``name@alias`` in a route into a
concrete :class:`ModelVersion`, and the gateway calls :meth:`ModelRegistry.load`.

A version's identity is the SHA-256 of its saved artifacts plus canonical configuration
(:mod:`overlay_sdk.hashing`), kept in the model version tag ``overlay.sha256``; registering
identical content returns the existing version. :meth:`ModelRegistry.register` saves the
model into a temporary folder (:mod:`overlay_sdk.flavors`), hashes it, then, holding a file
lock, looks the hash up and, if it is new, logs exactly those files into a
run of the ``overlay-sdk`` experiment and creates the version
(:mod:`overlay_sdk.registry_backend`, all or nothing). MLflow and pandas are imported on
first use, so importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import re
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from overlay_sdk import hashing
from overlay_sdk.errors import BackendError, ValidationError
from overlay_sdk.registry_backend import MlflowBackend, safe_uri, sqlite_path
from overlay_sdk.spec import MODEL_NAME, VERSION, ModelRef

if TYPE_CHECKING:
    import pandas as pd

    from overlay_sdk import flavors

__all__ = [
    "LIST_COLUMNS",
    "VERSION_COLUMNS",
    "ModelRegistry",
    "ModelVersion",
    "content_sha256",
    "versions_frame",
]

VERSION_COLUMNS = ("version", "label", "sha256", "created_at", "source", "flavor", "aliases",
                   "features")
LIST_COLUMNS = ("name", "latest_version", "versions", "aliases", "updated_at")
TAG_SHA, TAG_LABEL, TAG_FLAVOR, TAG_SOURCE, TAG_FEATURES, TAG_REFERENCE = (
    "overlay.sha256", "overlay.label", "overlay.flavor", "overlay.source", "overlay.features",
    "overlay.reference",
)
REFERENCE_PATH = "reference/reference.parquet"
LOCK_TIMEOUT_S = 300.0
_MAX_NAME, _MAX_LABEL, _MAX_DESCRIPTION, _MAX_TAG = 128, 250, 5000, 100_000
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelVersion:
    """One immutable registered model version. ``source`` says what it was made from
    (``sklearn:LogisticRegression``); ``uri`` names it for MLflow (``models:/fraud/3``)."""

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
    """

    def __init__(
        self,
        tracking_uri: str,
        *,
        registry_uri: str | None = None,
        lock_dir: str | Path | None = None,
        artifact_root: str | Path | None = None,
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

        ``flavor`` is "sklearn" or "pyfunc" (detected when None); ``label`` is free text
        such as "v1.0.4-alpha"; ``reference`` (the training data) is stored with the version
        for drift analysis and names the features; ``signature`` is an MLflow
        ``ModelSignature``, inferred from ``input_example`` or ``reference`` when None.
        Label and description are not part of the identity: identical content registered
        with another label returns the existing version, which keeps its label.
        """
        _check_name(name)
        _check_text(label, "label", _MAX_LABEL)
        _check_text(description, "description", _MAX_DESCRIPTION)
        with tempfile.TemporaryDirectory(prefix="overlay-register-") as tmp:
            saved, sha, ref = _save_and_hash(Path(tmp), model, flavor, reference, signature,
                                             input_example)
            tags = {TAG_SHA: sha, TAG_FLAVOR: saved.flavor, TAG_SOURCE: saved.source,
                    TAG_FEATURES: json.dumps(list(saved.features))}
            if label is not None:
                tags[TAG_LABEL] = label
            artifacts = {"model": saved.path}
            if ref is not None:
                tags[TAG_REFERENCE] = REFERENCE_PATH
                artifacts["reference"] = Path(tmp) / "reference.parquet"
                try:
                    ref.to_parquet(artifacts["reference"])
                except (TypeError, ValueError, ImportError) as err:  # pyarrow's errors
                    raise ValidationError.at("reference", f"cannot be stored as parquet "
                                             f"({type(err).__name__}: {err}); give each "
                                             "column one type") from err
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

    def reference(self, name: str, version: str | int) -> pd.DataFrame | None:
        """The reference data registered with the version, or None if it has none."""
        mv = self._mlflow.model_version(_check_name(name), _check_version(version))
        path = (mv.tags or {}).get(TAG_REFERENCE)
        return None if path is None else self._mlflow.read_parquet(mv.run_id, path)

    def versions(self, name: str) -> pd.DataFrame:
        """One row per version of ``name`` (:data:`VERSION_COLUMNS`), oldest first."""
        aliases = dict(self._mlflow.registered_model(_check_name(name)).aliases)
        return versions_frame([_to_version(mv, aliases)
                               for mv in self._mlflow.search_versions(name)])

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


def _save_and_hash(
    tmp: Path, model: Any, flavor: str | None, reference: Any, signature: Any,
    input_example: Any,
) -> tuple[flavors.SavedModel, str, pd.DataFrame | None]:
    """Check the input, save the model into ``tmp/model`` and compute its identity."""
    from overlay_sdk import flavors

    flavor = flavors.detect_flavor(model, flavor)
    ref = flavors.check_reference(reference)
    saved = flavors.save_model(model, flavor, tmp / "model", reference=ref,
                               signature=signature, input_example=input_example)
    if len(json.dumps(list(saved.features))) > _MAX_TAG:
        raise ValidationError.at("reference", f"{len(saved.features)} features are too many "
                                 "to record; pass fewer columns")
    config = {"features": list(saved.features), "flavor": saved.flavor,
              "reference": hashing.hash_reference(ref) if ref is not None else None,
              "source": saved.source}
    return saved, hashing.model_identity(hashing.hash_model_dir(saved.path), config), ref


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
        return _save_and_hash(Path(tmp), model, flavor, reference, signature, input_example)[1]


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


def versions_frame(versions: Sequence[ModelVersion]) -> pd.DataFrame:
    """:data:`VERSION_COLUMNS` of ``versions`` as a DataFrame, by version number;
    ``created_at`` is tz-aware UTC."""
    import pandas as pd

    rows = [{c: getattr(v, c) for c in VERSION_COLUMNS}
            for v in sorted(versions, key=lambda v: int(v.version))]
    frame = pd.DataFrame(rows, columns=list(VERSION_COLUMNS))
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    return frame
