"""What a registered version stores, and how its identity is computed from it.

:meth:`overlay_sdk.registry.ModelRegistry.register` (and ``content_sha256``) call
:func:`prepare`: it saves the model object into a folder (:mod:`overlay_sdk.flavors`) or
downloads the MLflow model a URI names (:mod:`overlay_sdk.registry_import`), writes the
reference data as parquet, and computes the identity with :func:`compute_identity`, which
``verify`` (:mod:`overlay_sdk.registry_verify`) calls again on the stored artifacts.

A version stores, in its run: the model folder (artifact ``model/``), the reference data
(``reference/reference.parquet``) and a file manifest (``overlay/manifest.json``: the digest
of every model file, the identity configuration and the SHA-256); and the version tags
named ``TAG_*`` here. The tags hold everything the identity needs besides the files: the
flavor, the features and the identity format (:data:`overlay_sdk.hashing.IDENTITY_FORMAT`);
the reference hash is recomputed from the stored parquet, which is also what registration
hashed. The manifest's own SHA-256 is a tag, so an edited manifest is seen too.

Provider and container-image models (:mod:`overlay_sdk.registry_providers`,
:mod:`overlay_sdk.registry_images`) go through :func:`prepare_config`: their model folder is
one canonical JSON file (``provider.json`` / ``image.json``), hashed like any model file, so
the same configuration is the same identity and ``verify`` needs nothing special. Declared
resources (:mod:`overlay_sdk.registry_resources`) are the tag ``overlay.resources`` and part
of the identity configuration.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from overlay_sdk import hashing
from overlay_sdk.errors import ValidationError

if TYPE_CHECKING:
    from overlay_sdk.registry_backend import MlflowBackend
    from overlay_sdk.registry_images import ImageConfig
    from overlay_sdk.registry_providers import ProviderConfig
    from overlay_sdk.registry_resources import Resources

__all__ = [
    "CONFIG_FLAVORS",
    "MANIFEST_PATH",
    "MODEL_PATH",
    "REFERENCE_PATH",
    "TAG_FEATURES",
    "TAG_FLAVOR",
    "TAG_FORMAT",
    "TAG_LABEL",
    "TAG_MANIFEST",
    "TAG_REFERENCE",
    "TAG_RESOURCES",
    "TAG_SHA",
    "TAG_SOURCE",
    "Identity",
    "compute_identity",
    "prepare",
    "prepare_config",
    "prepare_version",
    "reference_hash",
    "stored_config",
]

TAG_SHA = "overlay.sha256"
TAG_LABEL = "overlay.label"
TAG_FLAVOR = "overlay.flavor"
TAG_SOURCE = "overlay.source"
TAG_FEATURES = "overlay.features"
TAG_REFERENCE = "overlay.reference"
TAG_FORMAT = "overlay.identity_format"
TAG_MANIFEST = "overlay.manifest_sha256"
TAG_RESOURCES = "overlay.resources"
MODEL_PATH = "model"
REFERENCE_PATH = "reference/reference.parquet"
MANIFEST_PATH = "overlay/manifest.json"
_MAX_TAG = 100_000
CONFIG_FLAVORS = frozenset({"image", "provider"})
"""Flavors of versions stored as a configuration (no Python model to load)."""
_MODEL_ONLY = ("flavor", "reference", "signature", "input_example")


@dataclass(frozen=True)
class Identity:
    """A computed identity: ``files`` are the digests of the model folder's files (by path
    inside it), ``config`` the :func:`overlay_sdk.hashing.identity_config`."""

    sha256: str
    config: dict[str, Any]
    files: dict[str, str]

    def manifest(self) -> bytes:
        """The ``overlay/manifest.json`` stored with the version (canonical JSON)."""
        return hashing.canonical_json({
            "config": self.config,
            "files": {f"{MODEL_PATH}/{path}": digest for path, digest in self.files.items()},
            "format": hashing.IDENTITY_FORMAT,
            "sha256": self.sha256,
        })


def reference_hash(parquet: Path) -> str:
    """:func:`overlay_sdk.hashing.hash_reference` of reference data as stored (parquet).

    Registration hashes the frame read back from the parquet it stores, not the caller's
    frame: the two differ where parquet does not keep a dtype (object strings become
    ``str``, seconds become milliseconds), and only the stored form can be re-checked.
    """
    import pandas as pd

    return hashing.hash_reference(pd.read_parquet(parquet))


def compute_identity(model_dir: Path | None, *, flavor: str, features: Sequence[str],
                     reference: str | None, resources: Mapping[str, Any] | None = None,
                     ) -> Identity:
    """The identity of a model folder (None: no files) with this configuration; used both
    when registering and when verifying."""
    files = hashing.hash_model_dir(model_dir) if model_dir is not None else {}
    config = hashing.identity_config(flavor=flavor, features=features, reference=reference,
                                     resources=resources)
    return Identity(hashing.model_identity(files, config), config, files)


def _finish(tmp: Path, model_dir: Path, artifacts: dict[str, Path], tags: dict[str, str],
            features: Sequence[str], ref_hash: str | None, resources: Resources | None,
            ) -> tuple[str, dict[str, Path], dict[str, str]]:
    """Compute the identity, write the manifest, complete the artifacts and tags."""
    if resources is not None:
        tags[TAG_RESOURCES] = resources.to_json()
    identity = compute_identity(model_dir, flavor=tags[TAG_FLAVOR], features=features,
                                reference=ref_hash,
                                resources=None if resources is None else resources.as_dict())
    manifest = tmp / Path(MANIFEST_PATH).name
    manifest.write_bytes(identity.manifest())
    artifacts[str(Path(MANIFEST_PATH).parent)] = manifest
    tags[TAG_MANIFEST] = hashlib.sha256(manifest.read_bytes()).hexdigest()
    tags[TAG_SHA] = identity.sha256
    return identity.sha256, artifacts, tags


def prepare_config(tmp: Path, config: ProviderConfig | ImageConfig, resources: Resources | None,
                   ) -> tuple[str, dict[str, Path], dict[str, str]]:
    """Like :func:`prepare` for a provider or image model: the model folder holds the
    configuration's canonical JSON only; flavor ``provider`` or ``image``."""
    from overlay_sdk.registry_images import IMAGE_FILE, ImageConfig
    from overlay_sdk.registry_providers import PROVIDER_FILE

    image = isinstance(config, ImageConfig)
    model_dir = tmp / MODEL_PATH
    model_dir.mkdir()
    (model_dir / (IMAGE_FILE if image else PROVIDER_FILE)).write_bytes(config.to_json())
    source = config.image if isinstance(config, ImageConfig) else config.source
    tags = {TAG_FLAVOR: "image" if image else "provider", TAG_SOURCE: source,
            TAG_FEATURES: "[]", TAG_FORMAT: hashing.IDENTITY_FORMAT}
    return _finish(tmp, model_dir, {MODEL_PATH: model_dir}, tags, (), None, resources)


def prepare(
    tmp: Path, model: Any, flavor: str | None, reference: Any, signature: Any,
    input_example: Any, backend: MlflowBackend | None, resources: Resources | None = None,
) -> tuple[str, dict[str, Path], dict[str, str]]:
    """Check the input, save the model object (or import the MLflow model URI ``model``
    through ``backend``; None: URIs are refused) into ``tmp`` and compute its identity.

    Returns the SHA-256, the artifacts to log (run artifact path -> local file or folder)
    and the version tags (all but the label)."""
    from overlay_sdk import flavors, registry_import

    if isinstance(model, str):
        if backend is None:
            raise ValidationError.at("model", "content_sha256 hashes a model object; import an "
                                     "MLflow model URI with ModelRegistry.register(name, uri)")
        ref = flavors.check_reference(reference)
        saved = registry_import.import_model(backend, model, tmp, flavor=flavor, reference=ref,
                                             signature=signature, input_example=input_example)
    else:
        flavor = flavors.detect_flavor(model, flavor)
        ref = flavors.check_reference(reference)
        saved = flavors.save_model(model, flavor, tmp / MODEL_PATH, reference=ref,
                                   signature=signature, input_example=input_example)
    if len(json.dumps(list(saved.features))) > _MAX_TAG:
        raise ValidationError.at("reference", f"{len(saved.features)} features are too many "
                                 "to record; pass fewer columns")
    artifacts = {MODEL_PATH: saved.path}
    tags = {TAG_FLAVOR: saved.flavor, TAG_SOURCE: saved.source,
            TAG_FEATURES: json.dumps(list(saved.features)), TAG_FORMAT: hashing.IDENTITY_FORMAT}
    ref_hash = None
    if ref is not None:
        parquet = tmp / Path(REFERENCE_PATH).name
        try:
            ref.to_parquet(parquet)
        except (TypeError, ValueError, ImportError) as err:  # pyarrow's errors
            raise ValidationError.at("reference", f"cannot be stored as parquet "
                                     f"({type(err).__name__}: {err}); give each "
                                     "column one type") from err
        ref_hash = reference_hash(parquet)
        artifacts[str(Path(REFERENCE_PATH).parent)] = parquet
        tags[TAG_REFERENCE] = REFERENCE_PATH
    return _finish(tmp, saved.path, artifacts, tags, saved.features, ref_hash, resources)


def prepare_version(
    tmp: Path, backend: MlflowBackend | None, *, model: Any = None, flavor: str | None = None,
    reference: Any = None, signature: Any = None, input_example: Any = None,
    provider: Any = None, params: Any = None, api_key_env: Any = None, image: Any = None,
    port: Any = None, health_path: Any = None, resources: Any = None,
) -> tuple[str, dict[str, Path], dict[str, str]]:
    """Dispatch the arguments of ``register`` to :func:`prepare` (a model object or URI) or
    :func:`prepare_config` (``provider=`` or ``image=``); ValidationError naming the
    argument that does not belong."""
    from overlay_sdk.registry_images import image_config
    from overlay_sdk.registry_providers import HOSTED_PROVIDERS, provider_config
    from overlay_sdk.registry_resources import check_resources

    kinds = [k for k, v in (("model", model), ("provider", provider), ("image", image))
             if v is not None]
    if len(kinds) != 1:
        got = f"; got {', '.join(kinds)}" if kinds else ""
        raise ValidationError.at(kinds[-1] if kinds else "model", "give exactly one of model "
                                 "(a model object or MLflow URI), provider (an LLM API) or "
                                 f"image (a container image){got}")
    for arg, value in (("params", params), ("api_key_env", api_key_env)):
        if value is not None and provider is None:  # never echo: it may be a key
            raise ValidationError.at(arg, "is for provider models; pass provider= too, e.g. "
                                     "provider='openai'")
    for arg, value in (("port", port), ("health_path", health_path)):
        if value is not None and image is None:
            raise ValidationError.at(arg, f"is for container-image models; pass image= too, "
                                     f"e.g. image='ghcr.io/acme/scorer:1.4', or drop {arg}")
    checked = check_resources(resources)
    if model is not None:
        return prepare(tmp, model, flavor, reference, signature, input_example, backend, checked)
    extra = [a for a, v in zip(_MODEL_ONLY, (flavor, reference, signature, input_example),
                               strict=True) if v is not None]
    if extra:
        kind = {"image": "an image", "provider": "a provider"}[kinds[0]]
        raise ValidationError.at(extra[0], f"is for model objects; {kind} model has no "
                                 f"{extra[0]} (its flavor is {kinds[0]!r}); drop it")
    if provider is not None:
        config: ProviderConfig | ImageConfig = provider_config(provider, params, api_key_env)
        if checked is not None and provider in HOSTED_PROVIDERS:
            raise ValidationError.at("resources", f"{provider} models run on {provider}'s "
                                     "servers; declare resources only for models served here "
                                     "(model objects, images, ollama)")
    else:
        config = image_config(image, 8080 if port is None else port, health_path)
    return prepare_config(tmp, config, checked)


def stored_config(backend: MlflowBackend, name: str, version: str, flavor: str
                  ) -> ProviderConfig | ImageConfig:
    """The configuration a provider or image version stored (``model/<kind>.json``)."""
    import tempfile

    from overlay_sdk.errors import BackendError
    from overlay_sdk.registry_images import IMAGE_FILE, ImageConfig
    from overlay_sdk.registry_providers import PROVIDER_FILE, ProviderConfig

    file = IMAGE_FILE if flavor == "image" else PROVIDER_FILE
    root = backend.version_download_uri(name, version).rstrip("/")
    with tempfile.TemporaryDirectory(prefix="overlay-config-") as tmp:
        local = backend.download(f"{root}/{file}", Path(tmp))
        if local is None:
            raise BackendError(f"{name}:{version} has no stored {MODEL_PATH}/{file}; run "
                               f"verify({name!r}, {version}) to see what is missing")
        data = local.read_bytes()
    try:
        return ImageConfig.from_json(data) if flavor == "image" else ProviderConfig.from_json(data)
    except (ValueError, KeyError, TypeError) as err:
        raise BackendError(f"{name}:{version} has an unreadable {MODEL_PATH}/{file} ({err}); "
                           f"run verify({name!r}, {version})") from err
