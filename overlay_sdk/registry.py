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

import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from overlay_sdk.errors import ValidationError
from overlay_sdk.registry_aliases import AliasesMixin
from overlay_sdk.registry_backend import MlflowBackend, file_lock, safe_uri, sqlite_path
from overlay_sdk.registry_identity import (
    CONFIG_FLAVORS,
    TAG_FEATURES,
    TAG_FLAVOR,
    TAG_LABEL,
    TAG_REFERENCE,
    TAG_RESOURCES,
    TAG_SHA,
    TAG_SOURCE,
    prepare_version,
    stored_config,
)
from overlay_sdk.registry_providers import check_free_text
from overlay_sdk.registry_resources import Resources
from overlay_sdk.registry_ui import UI_ENV, ui_base, ui_link
from overlay_sdk.registry_verify import VerifyResult, verify_version
from overlay_sdk.spec import MODEL_NAME, VERSION, ModelRef

if TYPE_CHECKING:
    import pandas as pd

    from overlay_sdk.registry_images import ImageConfig
    from overlay_sdk.registry_providers import ProviderConfig

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
                   "features", "resources", "ui")
LIST_COLUMNS = ("name", "latest_version", "versions", "aliases", "updated_at")
LOCK_TIMEOUT_S = 300.0
_MAX_NAME, _MAX_LABEL, _MAX_DESCRIPTION = 128, 250, 5000
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelVersion:
    """One immutable registered model version. ``source`` says what it was made from
    (``sklearn:LogisticRegression``, the URI it was imported from, ``runs:/<run_id>/model``,
    ``openai:gpt-4o-mini`` for a provider, the image reference for an image); ``flavor`` is
    sklearn, pyfunc, onnx, provider or image; ``resources`` what it declared needing (None:
    nothing declared); ``uri`` names it for MLflow (``models:/fraud/3``)."""

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
    resources: Resources | None = None

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


class ModelRegistry(AliasesMixin):
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
    else none. ``ui_url=""`` turns the links off. A malformed ``ui_url`` fails here; a
    malformed ``$OVERLAY_MLFLOW_UI`` (read here) fails only where links are needed:
    :attr:`ui_url` and :meth:`versions` raise ValidationError naming it
    (:mod:`overlay_sdk.registry_ui`).
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
        # an explicit argument is checked now; the variable when links are first needed
        self._ui: tuple[str | None] | None = (
            None if ui_url is None else (ui_base(ui_url, tracking_uri),))
        self._ui_environ = {UI_ENV: os.environ[UI_ENV]} if UI_ENV in os.environ else {}
        self._mlflow = MlflowBackend(tracking_uri, self.registry_uri, artifact_location)

    @classmethod
    def for_home(cls, home: str | Path) -> ModelRegistry:
        """The embedded default: ``sqlite:///<home>/mlflow.db``, artifacts in
        ``<home>/mlartifacts``, lock file ``<home>/registry.lock``."""
        return cls(f"sqlite:///{Path(home).expanduser().absolute()}/mlflow.db")

    @property
    def ui_url(self) -> str | None:
        """The MLflow UI address :meth:`versions` links to (None: no links); ValidationError
        naming ``OVERLAY_MLFLOW_UI`` when that variable (as it was when the registry was
        made) is malformed."""
        if self._ui is None:
            self._ui = (ui_base(None, self.tracking_uri, environ=self._ui_environ),)
        return self._ui[0]

    def __repr__(self) -> str:
        return f"ModelRegistry({safe_uri(self.tracking_uri)!r})"

    def register(
        self,
        name: str,
        model: Any = None,
        *,
        flavor: str | None = None,
        label: str | None = None,
        reference: pd.DataFrame | None = None,
        signature: Any = None,
        input_example: Any = None,
        description: str | None = None,
        provider: str | None = None,
        params: Mapping[str, Any] | None = None,
        api_key_env: str | None = None,
        image: str | None = None,
        port: int | None = None,
        health_path: str | None = None,
        resources: Mapping[str, Any] | None = None,
    ) -> ModelVersion:
        """Register a new version of ``name``, or return the identical one. Give one of:

        - ``model``, a model object, or an MLflow model URI to import from this registry's
          tracking server: ``runs:/<run_id>/<artifact_path>``, ``models:/<name>/<version>``,
          ``models:/<name>@<alias>`` or ``models:/<model_id>`` (``model_info.model_uri``).
          An imported model keeps its files, flavor and signature; its ``source`` is the URI.
          It hashes like the same model registered directly when MLflow wrote the same
          files (e.g. sklearn logged with ``serialization_format="cloudpickle"``).
          ``flavor`` is "sklearn", "pyfunc" or "onnx" (detected when None; onnx needs
          ``pip install 'overlay-sdk[onnx]'``); ``reference`` (the training data) is stored
          for drift analysis and names the features; ``signature`` is an MLflow
          ``ModelSignature``, inferred from ``input_example`` or ``reference`` when None.
        - ``provider`` ("openai", "anthropic", "cohere" or "ollama") with ``params`` (the
          request settings, ``params["model"]`` required) and ``api_key_env``, the NAME of the
          environment variable holding the key (not needed for ollama). The key is never
          read or stored; a key passed by mistake is refused
          (:mod:`overlay_sdk.registry_providers`). Flavor "provider".
        - ``image``, a container image reference serving HTTP on ``port`` (default 8080),
          health-checked at ``health_path``. A tag can be pushed again: pin with
          ``@sha256:<digest>`` (:mod:`overlay_sdk.registry_images`). Flavor "image".

        ``resources`` ({"cpu": 2, "memory": "4Gi"}, {"gpu": "A100-80GB", "fraction": 0.25})
        declares what one replica needs; it is part of the identity, so another declaration
        makes another version (:mod:`overlay_sdk.registry_resources`). ``label`` is free
        text such as "v1.0.4-alpha". Label and description are not part of the identity:
        identical content registered with another label returns the existing version,
        which keeps its label. A label or description that looks like it holds a secret (a
        key, a token, a URL with a password) is refused, masked.
        """
        _check_name(name)
        _check_text(label, "label", _MAX_LABEL)
        _check_text(description, "description", _MAX_DESCRIPTION)
        check_free_text(label, "label")
        check_free_text(description, "description")
        with tempfile.TemporaryDirectory(prefix="overlay-register-") as tmp:
            sha, artifacts, tags = prepare_version(
                Path(tmp), self._mlflow, model=model, flavor=flavor, reference=reference,
                signature=signature, input_example=input_example, provider=provider,
                params=params, api_key_env=api_key_env, image=image, port=port,
                health_path=health_path, resources=resources)
            if label is not None:
                tags[TAG_LABEL] = label
            with file_lock(self.lock_dir / "registry.lock", LOCK_TIMEOUT_S):
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
        """The version as an ``mlflow.pyfunc.PyFuncModel``: call ``.predict(data)``.

        Provider and image versions have no Python model: ValidationError pointing to
        :meth:`config` (the gateway calls them over HTTP)."""
        mv = self.get(name, version)
        if mv.flavor in CONFIG_FLAVORS:
            kind = {"image": "an image", "provider": "a provider"}[mv.flavor]
            raise ValidationError.at("version", f"{mv} is {kind} model ({mv.source}) "
                                     "with no Python model to load: the gateway calls it over "
                                     f"HTTP; read its settings with config({name!r}, "
                                     f"{mv.version!r})")
        return self._mlflow.load_pyfunc(mv.name, mv.version)

    def config(self, name: str, version: str | int) -> ProviderConfig | ImageConfig:
        """The stored configuration of a provider or image version (no secret in it);
        ValidationError for model versions, which :meth:`load` returns instead."""
        mv = self.get(name, version)
        if mv.flavor not in CONFIG_FLAVORS:
            raise ValidationError.at("version", f"{mv} is a {mv.flavor or 'MLflow'} model, not "
                                     f"a provider or image; load it with load({name!r}, "
                                     f"{mv.version!r})")
        return stored_config(self._mlflow, mv.name, mv.version, mv.flavor)

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
        (see :class:`ModelRegistry`; a malformed ``$OVERLAY_MLFLOW_UI`` raises
        ValidationError naming it)."""
        _check_name(name)
        ui_url = self.ui_url
        aliases = dict(self._mlflow.registered_model(name).aliases)
        return versions_frame([_to_version(mv, aliases)
                               for mv in self._mlflow.search_versions(name)], ui_url=ui_url)

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


def content_sha256(model: Any = None, **kwargs: Any) -> str:
    """The identity :meth:`ModelRegistry.register` would give ``model`` (or a ``provider=``
    or ``image=`` configuration), without a registry; takes register's keyword arguments
    but ``label`` and ``description``."""
    with tempfile.TemporaryDirectory(prefix="overlay-hash-") as tmp:
        return prepare_version(Path(tmp), None, model=model, **kwargs)[0]


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
        resources=Resources.from_json(tags[TAG_RESOURCES]) if TAG_RESOURCES in tags else None,
    )


def versions_frame(versions: Sequence[ModelVersion], *, ui_url: str | None = None
                   ) -> pd.DataFrame:
    """:data:`VERSION_COLUMNS` of ``versions`` as a DataFrame, by version number;
    ``created_at`` is tz-aware UTC; ``ui`` is the :func:`ui_link` with ``ui_url``, or None
    without one (the column is always there)."""
    import pandas as pd

    rows = [{**{c: getattr(v, c) for c in VERSION_COLUMNS if c not in ("resources", "ui")},
             "resources": v.resources.as_dict() if v.resources else None,
             "ui": ui_link(ui_url, v.name, v.version) if ui_url else None}
            for v in sorted(versions, key=lambda v: int(v.version))]
    frame = pd.DataFrame(rows, columns=list(VERSION_COLUMNS))
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    return frame
