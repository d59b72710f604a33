"""register(name, model="runs:/..." | "models:/...") (overlay_sdk.registry_import): import a model
logged with plain MLflow, detect its flavor, keep its identity.

The "user" side logs models with MLflow's fluent API (``mlflow.start_run`` +
``mlflow.sklearn.log_model``) into a user experiment of the registry's own tracking database,
as a data scientist would; the registry then imports them by URI. MLflow 3.17's default
scikit-learn format is skops, which is not installed (log_model fails without
``serialization_format``), so users pick cloudpickle (the registry's format) or pickle.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.models import infer_signature
from sklearn.linear_model import LogisticRegression

from overlay_sdk.errors import NotFoundError, ValidationError
from overlay_sdk.registry import ModelRegistry, content_sha256

RNG = np.random.RandomState(7)
X = pd.DataFrame(RNG.rand(80, 3), columns=["amount", "age", "score"])
Y = (X["amount"] + 0.3 * X["score"] > 0.7).astype(int)
MODEL = LogisticRegression(random_state=0).fit(X, Y)
# Not the registry's own list: requirements are not part of the identity.
USER_REQUIREMENTS = ["scikit-learn", "cloudpickle", "pandas"]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, workdir: Path) -> Path:
    return tmp_path_factory.mktemp("import-home")


@pytest.fixture(scope="module")
def registry(home: Path) -> ModelRegistry:
    return ModelRegistry.for_home(home)


@pytest.fixture(scope="module")
def user_experiment(registry: ModelRegistry, home: Path) -> Iterator[str]:
    """A user's experiment in the registry's tracking database; the fluent API points at it
    (through MLFLOW_TRACKING_URI) for the module."""
    client = MlflowClient(registry.tracking_uri)
    experiment = client.create_experiment("user", artifact_location=(home / "user").as_uri())
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", registry.tracking_uri)
        yield experiment


@pytest.fixture(scope="module")
def logged(user_experiment: str) -> dict[str, Any]:
    """One run logging the model three ways, and a registered model version ``user-fraud:1``
    with alias ``champion``; requirements are given, so MLflow runs no inference subprocess."""
    with mlflow.start_run(experiment_id=user_experiment) as run:
        plain = mlflow.sklearn.log_model(MODEL, name="plain", serialization_format="cloudpickle",
                                         pip_requirements=USER_REQUIREMENTS)
        signed = mlflow.sklearn.log_model(
            MODEL, name="signed", serialization_format="cloudpickle",
            signature=infer_signature(X, MODEL.predict(X)), pip_requirements=USER_REQUIREMENTS,
            registered_model_name="user-fraud")
        pickled = mlflow.sklearn.log_model(MODEL, name="pickled", serialization_format="pickle",
                                           pip_requirements=USER_REQUIREMENTS)
    MlflowClient(mlflow.get_tracking_uri()).set_registered_model_alias("user-fraud", "champion",
                                                                       "1")
    return {"run_id": run.info.run_id, "plain": plain, "signed": signed, "pickled": pickled}


# -- the same model, the same identity --------------------------------------------------------


def test_importing_a_runs_uri_registers_the_same_sha256_as_registering_directly(
    registry: ModelRegistry, logged: dict[str, Any],
) -> None:
    direct = registry.register("direct", MODEL)
    uri = f"runs:/{logged['run_id']}/plain"
    imported = registry.register("imported", model=uri, label="from a run")
    assert imported.sha256 == direct.sha256 == content_sha256(MODEL)
    assert (imported.name, imported.version, imported.label) == ("imported", "1", "from a run")
    assert (imported.source, imported.flavor, imported.features) == (uri, "sklearn", ())
    np.testing.assert_array_equal(
        np.asarray(registry.load("imported", 1).predict(X[:5])), MODEL.predict(X[:5]))
    assert registry.verify("imported", 1).ok
    assert registry.register("imported", model=uri) == imported, "identical content: same version"


def test_a_signature_and_reference_give_the_same_identity_as_the_direct_path(
    registry: ModelRegistry, logged: dict[str, Any],
) -> None:
    direct = registry.register("direct-ref", MODEL, reference=X)
    imported = registry.register("imported-ref", model=f"runs:/{logged['run_id']}/signed",
                                 reference=X)
    assert imported.sha256 == direct.sha256
    assert imported.features == ("amount", "age", "score")
    pd.testing.assert_frame_equal(registry.reference("imported-ref", 1), X)


def test_models_uris_by_version_alias_and_logged_model_id(
    registry: ModelRegistry, logged: dict[str, Any],
) -> None:
    by_version = registry.register("from-version", model="models:/user-fraud/1")
    by_alias = registry.register("from-alias", model="models:/user-fraud@champion")
    model_uri = logged["signed"].model_uri
    assert model_uri.startswith("models:/m-")
    by_id = registry.register("from-logged-model", model=model_uri)
    assert by_version.sha256 == by_alias.sha256 == by_id.sha256
    assert by_version.source == by_alias.source == "models:/user-fraud/1", "alias resolved"
    assert by_id.source == model_uri
    assert by_version.features == ("amount", "age", "score")
    assert registry.verify("from-alias", 1).ok


def test_a_pickle_format_model_imports_with_its_own_identity(
    registry: ModelRegistry, logged: dict[str, Any],
) -> None:
    v = registry.register("pickle-format", model=f"runs:/{logged['run_id']}/pickled")
    assert v.flavor == "sklearn" and v.sha256 != content_sha256(MODEL)
    out = registry.load("pickle-format", v.version).predict(X[:5])
    np.testing.assert_array_equal(np.asarray(out), MODEL.predict(X[:5]))


def test_a_version_of_this_registry_imports_as_itself(registry: ModelRegistry) -> None:
    own = registry.register("own", MODEL, reference=X, label="original")
    run_id = MlflowClient(registry.tracking_uri).get_model_version("own", "1").run_id
    assert registry.register("own", model="models:/own/1", reference=X) == own
    again = registry.register("own-copy", model=f"runs:/{run_id}/model", reference=X)
    assert again.sha256 == own.sha256 and again.source == f"runs:/{run_id}/model"


@pytest.mark.slow
def test_a_model_logged_with_mlflows_inferred_requirements_hashes_like_the_direct_one(
    registry: ModelRegistry, user_experiment: str,
) -> None:
    # MLflow infers requirements in a subprocess: they list pandas, psutil, rich... and differ
    # from the registry's, which is why environment files are not part of the identity.
    with mlflow.start_run(experiment_id=user_experiment):
        info = mlflow.sklearn.log_model(MODEL, name="inferred", serialization_format="cloudpickle")
    v = registry.register("inferred", model=info.model_uri)
    assert v.sha256 == content_sha256(MODEL)
    assert registry.verify("inferred", v.version).ok


# -- bad URIs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "hint"),
    [
        ("fraud.pkl", "neither a model object nor an MLflow model URI; pass a fitted model"),
        ("s3://bucket/model", "unsupported URI scheme 's3'.*log it to MLflow first"),
        ("file:///tmp/model", "unsupported URI scheme 'file'"),
        ("runs:/0123abcd", r"names a run but no model in it; .*runs:/0123abcd/model"),
        ("runs:/0123abcd/../secrets", "is not an artifact path"),
        ("runs:/not a run/model", "is not a runs:/ URI"),
        ("models:/user-fraud", "does not name a model version"),
        ("models:/user-fraud/Production", r"stages are deprecated.*models:/user-fraud/3 or "
                                          "models:/user-fraud@champion"),
        ("models:/user-fraud/0", "is not a version number"),
        ("runs:/" + "a" * 3000, "at most 2000 characters"),
    ],
)
def test_malformed_uris_are_validation_errors_naming_model(
    registry: ModelRegistry, uri: str, hint: str,
) -> None:
    with pytest.raises(ValidationError, match=hint) as info:
        registry.register("bad-uri", model=uri)
    assert info.value.paths == ["model"]
    assert "bad-uri" not in registry


def test_uris_naming_nothing_are_not_found_errors_saying_what_exists(
    registry: ModelRegistry, logged: dict[str, Any],
) -> None:
    run_id = logged["run_id"]
    cases = [
        ("runs:/0123456789abcdef0123456789abcdef/model", "no run with id '0123456789abcdef"
                                                         "0123456789abcdef' in sqlite:///"),
        (f"runs:/{run_id}/nope", rf"run {run_id} has no MLflow model at 'nope'; the models "
                                 rf"logged in that run are runs:/{run_id}/pickled, "
                                 rf"runs:/{run_id}/plain, runs:/{run_id}/signed"),
        ("models:/user-fraud/9", "'user-fraud' has no version 9; its versions are 1"),
        ("models:/user-fraud@gold", r"no alias 'gold'; its aliases are champion \(-> 1\)"),
        ("models:/nobody/1", "no registered model named 'nobody'"),
        ("models:/m-0123456789abcdef", "no logged model with id 'm-0123456789abcdef'"),
    ]
    for uri, hint in cases:
        with pytest.raises(NotFoundError, match=hint) as info:
            registry.register("missing-uri", model=uri)
        assert str(info.value).startswith(f"model={uri!r}: ")
    assert "missing-uri" not in registry


@pytest.mark.parametrize(
    ("kwargs", "path", "hint"),
    [
        ({"flavor": "pyfunc"}, "flavor", "is a sklearn model .*pass flavor='sklearn'"),
        ({"flavor": "tensorflow"}, "flavor", "unknown flavor 'tensorflow'"),
        ({"signature": infer_signature(X)}, "signature", "keeps what it was logged with"),
        ({"input_example": X.head(2)}, "input_example", "keeps what it was logged with"),
        ({"reference": X[["amount"]]}, "reference", r"lacks the model's feature columns "
                                                    r"\['age', 'score'\]"),
        ({"reference": [1, 2]}, "reference", "must be a pandas DataFrame"),
    ],
)
def test_options_that_do_not_fit_an_import_are_validation_errors(
    registry: ModelRegistry, logged: dict[str, Any], kwargs: dict[str, Any], path: str,
    hint: str,
) -> None:
    with pytest.raises(ValidationError, match=hint) as info:
        registry.register("bad-option", model=f"runs:/{logged['run_id']}/signed", **kwargs)
    assert info.value.paths == [path]
    assert "bad-option" not in registry


def test_a_model_that_cannot_be_served_is_refused(
    registry: ModelRegistry, user_experiment: str, tmp_path: Path,
) -> None:
    folder = tmp_path / "weird"
    folder.mkdir()
    (folder / "MLmodel").write_text("flavors:\n  onnx:\n    data: model.onnx\n")
    client = MlflowClient(registry.tracking_uri)
    run = client.create_run(user_experiment)
    client.log_artifacts(run.info.run_id, str(folder), artifact_path="weird")
    with pytest.raises(ValidationError, match=r"has no python_function flavor .*onnx") as info:
        registry.register("weird", model=f"runs:/{run.info.run_id}/weird")
    assert info.value.paths == ["model"]
    with pytest.raises(NotFoundError, match="no model was logged in that run"):
        registry.register("weird", model=f"runs:/{run.info.run_id}/other")
    (folder / "MLmodel").write_text("flavors: [unclosed\n")
    client.log_artifacts(run.info.run_id, str(folder), artifact_path="broken")
    with pytest.raises(ValidationError, match=r"MLmodel file of .* cannot be read"):
        registry.register("weird", model=f"runs:/{run.info.run_id}/broken")
    assert "weird" not in registry


def test_content_sha256_takes_objects_only() -> None:
    with pytest.raises(ValidationError, match="hashes a model object") as info:
        content_sha256("runs:/abc/model")
    assert info.value.paths == ["model"]


def test_importing_writes_nothing_into_the_working_directory(
    registry: ModelRegistry, logged: dict[str, Any], workdir: Path,
) -> None:
    registry.register("cwd-check", model=f"runs:/{logged['run_id']}/plain")
    registry.register("cwd-check-2", model="models:/user-fraud@champion")
    assert list(workdir.iterdir()) == []
