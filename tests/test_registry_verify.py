"""ModelRegistry.verify (overlay_sdk.registry_verify): recompute a version's identity from its
stored artifacts, name what was tampered with, fail loudly with strict=True.

One registry (SQLite in a temp overlay home) serves the module; each test registers its own
model name and then edits the stored files on disk, as an attacker or a broken disk would.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import cloudpickle
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.pyfunc.model import PythonModel
from sklearn.linear_model import LogisticRegression

from overlay_sdk.errors import BackendError, NotFoundError, ValidationError
from overlay_sdk.hashing import IDENTITY_FORMAT
from overlay_sdk.registry import ModelRegistry, VerifyResult, content_sha256

RNG = np.random.RandomState(7)
X = pd.DataFrame(RNG.rand(80, 3), columns=["amount", "age", "score"])
Y = (X["amount"] + 0.3 * X["score"] > 0.7).astype(int)


def fitted(C: float = 1.0) -> LogisticRegression:
    return LogisticRegression(C=C, random_state=0).fit(X, Y)


class Doubler(PythonModel):
    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        return model_input * 2


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, workdir: Path) -> ModelRegistry:
    return ModelRegistry.for_home(tmp_path_factory.mktemp("verify-home"))


@pytest.fixture(scope="module")
def client(registry: ModelRegistry) -> MlflowClient:
    return MlflowClient(registry.tracking_uri, registry.registry_uri)


def local(uri: str) -> Path:
    assert uri.startswith("file://"), uri
    return Path(urlsplit(uri).path)


def model_folder(client: MlflowClient, name: str, version: str) -> Path:
    return local(client.get_model_version_download_uri(name, version))


def run_folder(client: MlflowClient, name: str, version: str) -> Path:
    run_id = client.get_model_version(name, version).run_id
    return local(client.get_run(run_id).info.artifact_uri)


# -- what verify reports --------------------------------------------------------------------


def test_an_untampered_version_verifies_ok(registry: ModelRegistry) -> None:
    v = registry.register("intact", fitted(), reference=X.assign(label=Y), label="v1")
    result = registry.verify("intact", v.version)
    assert isinstance(result, VerifyResult)
    assert (result.name, result.version, result.ok) == ("intact", "1", True)
    assert result.expected_sha256 == result.actual_sha256 == v.sha256
    assert result.files == () and result.note == ""
    assert str(result) == f"intact:1 verified: its stored artifacts hash to sha256 {v.sha256}"
    assert registry.verify("intact", 1, strict=True) == result
    assert registry.verify("intact", "1").raise_for_mismatch() == result


def test_a_pyfunc_version_without_reference_verifies_ok(registry: ModelRegistry) -> None:
    v = registry.register("intact-pyfunc", Doubler())
    assert registry.verify("intact-pyfunc", v.version).ok


@pytest.mark.parametrize("how", ["append a byte", "change a coefficient and re-pickle"])
def test_a_tampered_artifact_is_caught_by_verify(
    registry: ModelRegistry, client: MlflowClient, how: str,
) -> None:
    name = "tampered-" + how.split()[1]
    v = registry.register(name, fitted(), reference=X)
    pkl = model_folder(client, name, v.version) / "model.pkl"
    if how == "append a byte":
        with open(pkl, "ab") as handle:
            handle.write(b"\0")
    else:
        model = cloudpickle.loads(pkl.read_bytes())
        model.coef_[0, 0] += 0.5
        pkl.write_bytes(cloudpickle.dumps(model))
    result = registry.verify(name, v.version)
    assert not result.ok
    assert result.expected_sha256 == v.sha256 != result.actual_sha256
    assert (result.changed, result.missing, result.added) == (("model/model.pkl",), (), ())
    with pytest.raises(BackendError) as info:
        registry.verify(name, v.version, strict=True)
    message = str(info.value)
    for part in (f"{name}:1 failed verification", f"expected sha256 {v.sha256}",
                 f"hash to {result.actual_sha256}", "changed: model/model.pkl",
                 "register the model again"):
        assert part in message
    assert str(result) == message


def test_a_missing_artifact_is_reported_and_strict_raises(
    registry: ModelRegistry, client: MlflowClient,
) -> None:
    v = registry.register("lost-file", fitted(C=0.3))
    (model_folder(client, "lost-file", v.version) / "model.pkl").unlink()
    result = registry.verify("lost-file", v.version)
    assert (result.ok, result.missing, result.changed) == (False, ("model/model.pkl",), ())
    with pytest.raises(BackendError, match=r"lost-file:1 failed verification: expected sha256 "
                                           r"[0-9a-f]{64}, .*; missing: model/model\.pkl; "):
        registry.verify("lost-file", v.version, strict=True)


def test_a_deleted_model_folder_lists_every_file_as_missing(
    registry: ModelRegistry, client: MlflowClient,
) -> None:
    v = registry.register("lost-folder", fitted(C=0.4))
    folder = model_folder(client, "lost-folder", v.version)
    names = sorted(p.name for p in folder.iterdir())
    shutil.rmtree(folder)
    result = registry.verify("lost-folder", v.version)
    assert not result.ok and result.missing == tuple(f"model/{n}" for n in names)
    assert "model/MLmodel" in result.missing


def test_tampered_or_missing_reference_data_is_named(
    registry: ModelRegistry, client: MlflowClient,
) -> None:
    v = registry.register("ref-edit", fitted(C=0.5), reference=X)
    parquet = run_folder(client, "ref-edit", v.version) / "reference" / "reference.parquet"
    X.assign(amount=X["amount"].where(X.index != 3, 99.0)).to_parquet(parquet)
    result = registry.verify("ref-edit", v.version)
    assert (result.ok, result.changed) == (False, ("reference/reference.parquet",))
    assert result.actual_sha256 != v.sha256
    parquet.write_bytes(b"not parquet")
    assert registry.verify("ref-edit", v.version).changed == ("reference/reference.parquet",)
    parquet.unlink()
    assert registry.verify("ref-edit", v.version).missing == ("reference/reference.parquet",)


def test_an_edited_requirements_file_is_caught_though_the_identity_matches(
    registry: ModelRegistry, client: MlflowClient,
) -> None:
    v = registry.register("env-edit", fitted(C=0.6))
    with open(model_folder(client, "env-edit", v.version) / "requirements.txt", "a") as handle:
        handle.write("\nevil-package==6.6.6\n")
    result = registry.verify("env-edit", v.version)
    assert not result.ok and result.actual_sha256 == result.expected_sha256 == v.sha256
    assert result.changed == ("model/requirements.txt",)
    assert "its identity matches" in str(result)


def test_an_added_file_is_named(registry: ModelRegistry, client: MlflowClient) -> None:
    v = registry.register("extra-file", fitted(C=0.7))
    (model_folder(client, "extra-file", v.version) / "payload.py").write_text("import os\n")
    result = registry.verify("extra-file", v.version)
    assert (result.ok, result.added) == (False, ("model/payload.py",))


def test_mlflow_download_bookkeeping_is_not_tampering(
    registry: ModelRegistry, client: MlflowClient,
) -> None:
    v = registry.register("meta-file", fitted(C=0.8))
    (model_folder(client, "meta-file", v.version) / "registered_model_meta").write_text(
        "model_name: meta-file\nmodel_version: '1'\n")
    assert registry.verify("meta-file", v.version).ok


def test_edited_tags_are_named(registry: ModelRegistry, client: MlflowClient) -> None:
    v = registry.register("tag-edit", fitted(C=0.9), reference=X)
    client.set_model_version_tag("tag-edit", v.version, "overlay.features",
                                 json.dumps(["amount"]))
    result = registry.verify("tag-edit", v.version)
    assert (result.ok, result.changed) == (False, ("tag overlay.features",))
    assert result.actual_sha256 != v.sha256
    client.set_model_version_tag("tag-edit", v.version, "overlay.features", "not json")
    assert registry.verify("tag-edit", v.version).changed == ("tag overlay.features",)
    client.set_model_version_tag("tag-edit", v.version, "overlay.features",
                                 json.dumps(list(X.columns)))
    assert registry.verify("tag-edit", v.version).ok
    client.set_model_version_tag("tag-edit", v.version, "overlay.sha256", "0" * 64)
    forged = registry.verify("tag-edit", v.version)
    assert (forged.ok, forged.changed, forged.actual_sha256) == (
        False, ("tag overlay.sha256",), v.sha256)


def test_an_edited_or_missing_manifest_is_reported(
    registry: ModelRegistry, client: MlflowClient,
) -> None:
    v = registry.register("manifest-edit", fitted(C=1.1))
    manifest = run_folder(client, "manifest-edit", v.version) / "overlay" / "manifest.json"
    doc = json.loads(manifest.read_bytes())
    assert doc["sha256"] == v.sha256 and doc["format"] == IDENTITY_FORMAT
    assert "model/model.pkl" in doc["files"] and "model/requirements.txt" in doc["files"]
    # Forge the manifest to match a tampered model: the manifest's own tag gives it away.
    pkl = model_folder(client, "manifest-edit", v.version) / "model.pkl"
    pkl.write_bytes(pkl.read_bytes() + b"\0")
    doc["files"]["model/model.pkl"] = "f" * 64
    manifest.write_text(json.dumps(doc))
    result = registry.verify("manifest-edit", v.version)
    assert (result.ok, result.changed) == (False, ("overlay/manifest.json",))
    assert "cannot be named" in result.note and result.note in str(result)
    manifest.unlink()
    gone = registry.verify("manifest-edit", v.version)
    assert (gone.ok, gone.missing) == (False, ("overlay/manifest.json",))


def test_reference_data_parquet_cannot_keep_is_hashed_as_stored(
    registry: ModelRegistry,
) -> None:
    # object strings come back as str, seconds as milliseconds: the identity is of what the
    # registry stores, so verify can recompute it, and content_sha256 agrees.
    ref = X.assign(
        segment=pd.Series(["a", "b"] * 40, dtype=object),
        seen=pd.date_range("2024-01-01", periods=80, freq="h").astype("datetime64[s]"),
    )
    v = registry.register("lossy-ref", fitted(C=1.2), reference=ref)
    assert registry.verify("lossy-ref", v.version).ok
    assert content_sha256(fitted(C=1.2), reference=ref) == v.sha256


# -- versions that cannot be verified --------------------------------------------------------


def test_unknown_versions_and_bad_input(registry: ModelRegistry) -> None:
    registry.register("verify-few", fitted(C=1.3))
    with pytest.raises(NotFoundError, match="'verify-few' has no version 4; its versions are 1"):
        registry.verify("verify-few", 4)
    with pytest.raises(NotFoundError, match="no registered model named 'verify-none'"):
        registry.verify("verify-none", 1)
    with pytest.raises(ValidationError) as info:
        registry.verify("verify-few", "latest")
    assert info.value.paths == ["version"]


def test_versions_registered_without_overlay_sdk_cannot_be_verified(
    registry: ModelRegistry, client: MlflowClient, tmp_path: Path,
) -> None:
    client.create_registered_model("plain-mlflow")
    client.create_model_version("plain-mlflow", source=tmp_path.as_uri())
    with pytest.raises(BackendError, match=r"plain-mlflow:1 has no recorded identity .*import "
                                           r"it with register\(name, model='models:/plain"):
        registry.verify("plain-mlflow", 1)


def test_versions_of_another_identity_format_cannot_be_verified(
    registry: ModelRegistry, client: MlflowClient,
) -> None:
    v = registry.register("old-format", fitted(C=1.4))
    client.delete_model_version_tag("old-format", v.version, "overlay.identity_format")
    with pytest.raises(BackendError, match=r"identity format 'overlay-sdk/identity/1'.*register "
                                           r"the model again"):
        registry.verify("old-format", v.version)


def test_verify_writes_nothing_into_the_working_directory(
    registry: ModelRegistry, workdir: Path,
) -> None:
    v = registry.register("clean-cwd", fitted(C=1.5), reference=X)
    registry.verify("clean-cwd", v.version)
    assert list(workdir.iterdir()) == []
