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
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from overlay_sdk import hashing
from overlay_sdk.errors import ValidationError

if TYPE_CHECKING:
    from overlay_sdk.registry_backend import MlflowBackend

__all__ = [
    "MANIFEST_PATH",
    "MODEL_PATH",
    "REFERENCE_PATH",
    "TAG_FEATURES",
    "TAG_FLAVOR",
    "TAG_FORMAT",
    "TAG_LABEL",
    "TAG_MANIFEST",
    "TAG_REFERENCE",
    "TAG_SHA",
    "TAG_SOURCE",
    "Identity",
    "compute_identity",
    "prepare",
    "reference_hash",
]

TAG_SHA = "overlay.sha256"
TAG_LABEL = "overlay.label"
TAG_FLAVOR = "overlay.flavor"
TAG_SOURCE = "overlay.source"
TAG_FEATURES = "overlay.features"
TAG_REFERENCE = "overlay.reference"
TAG_FORMAT = "overlay.identity_format"
TAG_MANIFEST = "overlay.manifest_sha256"
MODEL_PATH = "model"
REFERENCE_PATH = "reference/reference.parquet"
MANIFEST_PATH = "overlay/manifest.json"
_MAX_TAG = 100_000


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
                     reference: str | None) -> Identity:
    """The identity of a model folder (None: no files) with this configuration; used both
    when registering and when verifying."""
    files = hashing.hash_model_dir(model_dir) if model_dir is not None else {}
    config = hashing.identity_config(flavor=flavor, features=features, reference=reference)
    return Identity(hashing.model_identity(files, config), config, files)


def prepare(
    tmp: Path, model: Any, flavor: str | None, reference: Any, signature: Any,
    input_example: Any, backend: MlflowBackend | None,
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
    identity = compute_identity(saved.path, flavor=saved.flavor, features=saved.features,
                                reference=ref_hash)
    manifest = tmp / Path(MANIFEST_PATH).name
    manifest.write_bytes(identity.manifest())
    artifacts[str(Path(MANIFEST_PATH).parent)] = manifest
    tags[TAG_MANIFEST] = hashlib.sha256(manifest.read_bytes()).hexdigest()
    tags[TAG_SHA] = identity.sha256
    return identity.sha256, artifacts, tags
