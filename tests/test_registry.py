"""The model registry on MLflow (overlay_sdk.registry): identity, register, resolve, load.

One registry (SQLite in a temp overlay home) serves the whole module; creating the MLflow
database costs a few seconds. Each test uses its own model names. Cross-process tests
run tests/registry_worker.py with this venv's python.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.pyfunc.model import PythonModel
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from overlay_sdk.errors import BackendError, NotFoundError, ValidationError
from overlay_sdk.registry import (
    LIST_COLUMNS,
    VERSION_COLUMNS,
    ModelRegistry,
    ModelVersion,
    content_sha256,
    versions_frame,
)
from overlay_sdk.spec import ModelRef

WORKER = Path(__file__).with_name("registry_worker.py")
HEX64 = r"^[0-9a-f]{64}$"


def data(seed: int = 7) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.RandomState(seed)
    X = pd.DataFrame(rng.rand(80, 3), columns=["amount", "age", "score"])
    y = (X["amount"] + 0.3 * X["score"] > 0.7).astype(int)
    return X, y


X, Y = data()


def fitted(C: float = 1.0) -> LogisticRegression:
    return LogisticRegression(C=C, random_state=0).fit(X, Y)


class Scaler(PythonModel):
    def __init__(self, factor: float) -> None:
        self.factor = factor

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        return model_input * self.factor


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, workdir: Path) -> Path:
    return tmp_path_factory.mktemp("overlay-home")


@pytest.fixture(scope="module")
def registry(home: Path) -> ModelRegistry:
    return ModelRegistry.for_home(home)


@pytest.fixture(scope="module")
def client(registry: ModelRegistry) -> MlflowClient:
    return MlflowClient(registry.tracking_uri, registry.registry_uri)


def run_worker(*args: str) -> str:
    done = subprocess.run([sys.executable, str(WORKER), *args], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


# -- identity -------------------------------------------------------------------------------


def test_same_model_saved_twice_in_one_process_has_the_same_sha256() -> None:
    first = content_sha256(fitted(), reference=X)
    assert first == content_sha256(fitted(), reference=X)
    assert first != content_sha256(fitted(C=0.5), reference=X)
    assert first != content_sha256(fitted()), "the reference is part of the identity"


@pytest.mark.slow
def test_two_saves_in_two_processes_give_the_same_sha256_and_a_changed_coefficient_changes_it(
) -> None:
    one, two = run_worker("sklearn"), run_worker("sklearn")
    assert one == two
    assert one != run_worker("sklearn", "--tweak")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["sklearn-text", "pyfunc-class", "pyfunc-function"])
def test_models_defined_in_main_have_the_same_sha256_in_two_processes(mode: str) -> None:
    assert run_worker(mode) == run_worker(mode)


@pytest.mark.slow
def test_two_processes_registering_the_same_content_at_once_make_one_version(
    registry: ModelRegistry,
) -> None:
    procs = [subprocess.Popen([sys.executable, str(WORKER), "register", registry.tracking_uri],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        outputs.append(out.split())
    assert outputs[0] == outputs[1]
    assert outputs[0][0] == "1"
    assert registry.versions("fraud-xproc")["version"].tolist() == ["1"]
    # The same content registered in this process is that version too.
    same = registry.register("fraud-xproc", LogisticRegression(random_state=0).fit(X, Y),
                             reference=X)
    assert [same.version, same.sha256] == outputs[0]


# -- register -------------------------------------------------------------------------------


def test_register_sklearn_returns_the_version(registry: ModelRegistry) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    v = registry.register("fraud", fitted(), flavor="sklearn", label="v1.0.4-alpha",
                          reference=X.assign(label=Y), description="first try")
    assert isinstance(v, ModelVersion)
    assert (v.name, v.version, v.label, v.flavor) == ("fraud", "1", "v1.0.4-alpha", "sklearn")
    assert v.source == "sklearn:LogisticRegression"
    assert pd.Series([v.sha256]).str.match(HEX64).all()
    assert v.created_at.tzinfo is not None and v.created_at.utcoffset() == timedelta(0)
    assert before <= v.created_at <= datetime.now(UTC) + timedelta(seconds=5)
    assert v.features == ("amount", "age", "score"), "signature inputs, not the label column"
    assert (v.aliases, v.uri, str(v)) == ((), "models:/fraud/1", "fraud:1")
    assert "fraud" in registry and "nope" not in registry and 3 not in registry
    assert registry.get("fraud", 1) == v == registry.get("fraud", "1")


def test_identical_content_returns_the_existing_version_even_with_another_label(
    registry: ModelRegistry,
) -> None:
    first = registry.register("dedupe", fitted(), label="a", reference=X)
    again = registry.register("dedupe", fitted(), label="b", reference=X)
    assert again == first and again.label == "a"
    assert len(registry.versions("dedupe")) == 1


def test_changed_content_gets_a_new_version_number(registry: ModelRegistry) -> None:
    one = registry.register("changing", fitted(), reference=X)
    two = registry.register("changing", fitted(C=0.5), reference=X)
    three = registry.register("changing", fitted(C=0.5), reference=X.head(40))
    assert [one.version, two.version, three.version] == ["1", "2", "3"]
    assert len({one.sha256, two.sha256, three.sha256}) == 3
    assert registry.register("changing", fitted(), reference=X) == one


def test_sklearn_load_predicts_like_the_original(registry: ModelRegistry) -> None:
    model = fitted()
    v = registry.register("load-sk", model, reference=X)
    loaded = registry.load("load-sk", v.version)
    fresh, _ = data(seed=11)
    np.testing.assert_array_equal(np.asarray(loaded.predict(fresh)), model.predict(fresh))
    assert loaded.metadata.signature.inputs.input_names() == ["amount", "age", "score"]


def test_sklearn_fitted_on_arrays_gets_an_unnamed_signature(registry: ModelRegistry) -> None:
    model = LogisticRegression(random_state=0).fit(X.to_numpy(), Y)
    v = registry.register("arrays", model, reference=X)
    assert v.features == ("amount", "age", "score"), "reference columns name the features"
    out = registry.load("arrays", v.version).predict(X.to_numpy()[:5])
    np.testing.assert_array_equal(np.asarray(out), model.predict(X.to_numpy()[:5]))


def test_pyfunc_python_model_registers_loads_and_predicts(registry: ModelRegistry) -> None:
    v = registry.register("scaler", Scaler(3.0), label="x3", reference=X)
    assert (v.flavor, v.source, v.features) == ("pyfunc", "pyfunc:Scaler", tuple(X.columns))
    out = registry.load("scaler", v.version).predict(X.head(4))
    pd.testing.assert_frame_equal(out, X.head(4) * 3.0)
    assert registry.register("scaler", Scaler(3.0), reference=X) == v
    assert registry.register("scaler", Scaler(2.0), reference=X).version == "2"


def test_pyfunc_reference_types_inputs_but_requires_no_column(registry: ModelRegistry) -> None:
    v = registry.register("typed", Scaler(2.0), reference=X.assign(label=Y))
    assert v.features == ("amount", "age", "score", "label")
    model = registry.load("typed", v.version)
    pd.testing.assert_frame_equal(model.predict(X.head(2)), X.head(2) * 2.0)
    with pytest.raises(MlflowException, match=r"(?i)enforce schema"):
        model.predict(X.head(2).assign(amount=["a", "b"]))


def test_plain_callable_is_wrapped_as_pyfunc(registry: ModelRegistry) -> None:
    def risk(frame: pd.DataFrame) -> pd.Series:
        return (frame["amount"] > 0.5).astype(int)

    v = registry.register("rule", risk)
    assert (v.flavor, v.source, v.features) == ("pyfunc", "pyfunc:" + risk.__qualname__, ())
    out = registry.load("rule", v.version).predict(X.head(5))
    assert list(out) == list((X.head(5)["amount"] > 0.5).astype(int))


def test_explicit_signature_names_the_features(registry: ModelRegistry) -> None:
    sig = infer_signature(X[["amount", "age"]])
    v = registry.register("signed", Scaler(1.0), signature=sig, reference=X)
    assert v.features == ("amount", "age")


def test_input_example_gives_the_signature(registry: ModelRegistry) -> None:
    v = registry.register("example", fitted(), input_example=X.head(3))
    assert v.features == ("amount", "age", "score")
    assert registry.reference("example", v.version) is None


def test_reference_is_logged_and_returned(registry: ModelRegistry) -> None:
    ref = X.assign(segment=pd.Series(["a", "b"] * 40, dtype="str"), label=Y)
    v = registry.register("with-ref", fitted(), reference=ref)
    back = registry.reference("with-ref", v.version)
    assert back is not None
    pd.testing.assert_frame_equal(back, ref)


def test_versions_is_a_frame_oldest_first_with_utc_times(
    registry: ModelRegistry, client: MlflowClient,
) -> None:
    registry.register("listed", fitted(), label="first", reference=X)
    registry.register("listed", fitted(C=0.3), reference=X)
    client.set_registered_model_alias("listed", "champion", "1")
    frame = registry.versions("listed")
    assert tuple(frame.columns) == VERSION_COLUMNS
    assert frame["version"].tolist() == ["1", "2"]
    assert frame["label"].iloc[0] == "first" and pd.isna(frame["label"].iloc[1])
    assert str(frame["created_at"].dt.tz) == "UTC"
    assert frame["aliases"].tolist() == [("champion",), ()]
    assert frame["features"].iloc[0] == ("amount", "age", "score")
    assert frame["flavor"].tolist() == ["sklearn", "sklearn"]


def test_versions_link_each_version_to_the_mlflow_ui_when_one_is_configured(
    registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OVERLAY_MLFLOW_UI", raising=False)
    registry.register("linked", Scaler(13.0))
    registry.register("linked", Scaler(14.0))
    with_ui = ModelRegistry(registry.tracking_uri, ui_url="http://127.0.0.1:5000/")
    assert with_ui.versions("linked")["ui"].tolist() == [
        f"http://127.0.0.1:5000/#/models/linked/versions/{v}" for v in (1, 2)]
    no_ui = ModelRegistry(registry.tracking_uri)
    assert no_ui.versions("linked")["ui"].isna().all(), "no address: the column is empty"


def test_versions_frame_sorts_by_version_number() -> None:
    made = datetime(2024, 1, 1, tzinfo=UTC)
    rows = [ModelVersion("m", v, "0" * 64, None, made, "pyfunc:f") for v in ("10", "9", "1")]
    assert versions_frame(rows)["version"].tolist() == ["1", "9", "10"]
    empty = versions_frame([])
    assert tuple(empty.columns) == VERSION_COLUMNS and empty.empty


def test_list_has_one_row_per_model(registry: ModelRegistry, client: MlflowClient) -> None:
    registry.register("inventory", fitted())
    registry.register("inventory", fitted(C=0.2))
    client.set_registered_model_alias("inventory", "prod", "2")
    frame = registry.list()
    assert tuple(frame.columns) == LIST_COLUMNS
    assert frame["name"].is_unique and frame["name"].is_monotonic_increasing
    row = frame.set_index("name").loc["inventory"]
    assert (row["latest_version"], row["versions"], row["aliases"]) == ("2", 2, {"prod": "2"})
    assert str(frame["updated_at"].dt.tz) == "UTC"


# -- resolve and not found ------------------------------------------------------------------


def test_resolve_by_version_and_by_alias(registry: ModelRegistry, client: MlflowClient) -> None:
    one = registry.register("copilot", Scaler(1.0))
    two = registry.register("copilot", Scaler(2.0))
    client.set_registered_model_alias("copilot", "champion", two.version)
    assert registry.resolve("copilot:1") == one
    assert registry.resolve(ModelRef("copilot", version="2")).sha256 == two.sha256
    by_alias = registry.resolve("copilot@champion")
    assert (by_alias.version, by_alias.sha256, by_alias.aliases) == ("2", two.sha256,
                                                                      ("champion",))
    assert registry.resolve(ModelRef("copilot", alias="champion")).version == "2"


def test_unknown_version_names_the_versions_that_exist(registry: ModelRegistry) -> None:
    registry.register("few", Scaler(5.0))
    with pytest.raises(NotFoundError, match=r"'few' has no version 7; its versions are 1$"):
        registry.resolve("few:7")
    with pytest.raises(NotFoundError, match="no version 9"):
        registry.get("few", 9)


def test_unknown_alias_names_the_aliases_and_versions(
    registry: ModelRegistry, client: MlflowClient,
) -> None:
    registry.register("aliased", Scaler(6.0))
    with pytest.raises(NotFoundError, match=r"no alias 'gold'; it has no aliases; or name a "
                                            r"version: 1"):
        registry.resolve("aliased@gold")
    client.set_registered_model_alias("aliased", "silver", "1")
    with pytest.raises(NotFoundError, match=r"its aliases are silver \(-> 1\)"):
        registry.resolve("aliased@gold")


def test_unknown_model_suggests_a_close_name(registry: ModelRegistry) -> None:
    registry.register("fraud-model", Scaler(7.0))
    with pytest.raises(NotFoundError, match=r"no registered model named 'fraud-modl'.*did you "
                                            r"mean 'fraud-model'\?.*registered models: "):
        registry.resolve("fraud-modl:1")
    for call in (lambda: registry.versions("absent"), lambda: registry.load("absent", 1),
                 lambda: registry.reference("absent", 1), lambda: registry.resolve("absent@x")):
        with pytest.raises(NotFoundError, match="no registered model named 'absent'"):
            call()


# -- bad input ------------------------------------------------------------------------------


class NotAModel:
    pass


@pytest.mark.parametrize(
    ("kwargs", "path", "hint"),
    [
        ({"name": "bad-flavor", "flavor": "tensorflow"}, "flavor",
         "use one of onnx, pyfunc, sklearn"),
        ({"name": "wrong-type", "model": NotAModel()}, "model", "cannot tell the flavor"),
        ({"name": "wrong-type", "model": NotAModel(), "flavor": "pyfunc"}, "model",
         "needs an mlflow.pyfunc.PythonModel or a callable"),
        ({"name": "wrong-type", "model": len, "flavor": "sklearn"}, "model",
         "pass flavor='pyfunc'"),
        ({"name": "wrong-type", "model": fitted(), "flavor": "pyfunc"}, "model",
         "use flavor='sklearn'"),
        ({"name": "unfitted", "model": LogisticRegression()}, "model", r"call \.fit"),
        ({"name": "no-predict", "model": StandardScaler().fit(X)}, "model", "has no predict"),
        ({"name": "a-class", "model": Scaler}, "model", "pass a fitted instance"),
        ({"name": ""}, "name", "is not a model name"),
        ({"name": "-leading"}, "name", "starting with a letter or digit"),
        ({"name": "has space"}, "name", "is not a model name"),
        ({"name": "a/b"}, "name", "is not a model name"),
        ({"name": "x" * 129}, "name", "up to 128"),
        ({"name": 42}, "name", "is not a model name"),
        ({"name": "bad-ref", "reference": X.to_dict("records")}, "reference",
         "must be a pandas DataFrame.*got a list"),
        ({"name": "bad-ref", "reference": X.iloc[:0]}, "reference", "has no rows"),
        ({"name": "bad-ref", "reference": pd.DataFrame(np.zeros((3, 2)))}, "reference",
         "column names must be strings"),
        ({"name": "bad-ref", "reference": X[["amount"]]}, "reference",
         r"lacks the model's feature columns \['age', 'score'\]"),
        ({"name": "bad-label", "label": 3}, "label", "non-empty string"),
        ({"name": "bad-label", "label": "x" * 300}, "label", "at most 250"),
        ({"name": "bad-desc", "description": "x" * 5001}, "description", "at most 5000"),
        ({"name": "bad-sig", "signature": {"inputs": "a"}}, "signature", "infer_signature"),
    ],
)
def test_bad_input_is_a_validation_error_naming_the_argument(
    registry: ModelRegistry, kwargs: dict[str, Any], path: str, hint: str,
) -> None:
    args = {"model": fitted(), **kwargs}
    with pytest.raises(ValidationError, match=hint) as info:
        registry.register(args.pop("name"), args.pop("model"), **args)
    assert info.value.paths == [path]
    assert kwargs["name"] not in registry


@pytest.mark.parametrize(
    ("call", "path"),
    [
        (lambda r: r.get("fraud", "abc"), "version"),
        (lambda r: r.get("fraud", 0), "version"),
        (lambda r: r.get("fraud", True), "version"),
        (lambda r: r.get("bad name", 1), "name"),
        (lambda r: r.resolve("no-version"), "ref"),
        (lambda r: r.resolve(("fraud", 1)), "ref"),
        (lambda r: r.resolve(ModelRef("fraud")), "ref"),
        (lambda r: r.versions("a/b"), "name"),
    ],
)
def test_bad_lookups_are_validation_errors(registry: ModelRegistry, call: Any,
                                           path: str) -> None:
    with pytest.raises(ValidationError) as info:
        call(registry)
    assert info.value.paths == [path]


def test_unsaveable_model_is_a_validation_error(registry: ModelRegistry) -> None:
    import threading

    lock = threading.Lock()
    with pytest.raises(ValidationError, match="MLflow could not save this pyfunc model") as info:
        registry.register("unpicklable", lambda df: lock)
    assert info.value.paths == ["model"]


# -- backend failures leave nothing half-registered -----------------------------------------


def test_unreachable_backend_is_a_backend_error_naming_the_uri(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    uri = f"sqlite:///{tmp_path}/a-file/mlflow.db"  # a database inside a plain file
    with pytest.raises(BackendError, match=f"tracking URI {uri}.*check that the URI is right"):
        ModelRegistry(uri).versions("fraud")
    with pytest.raises(BackendError, match="cannot open the registry lock"):
        ModelRegistry(uri).register("fraud", fitted())
    secret = ModelRegistry("postgresql://me:s3cret@127.0.0.1:9/mlflow")
    with pytest.raises(BackendError) as info:
        secret.versions("fraud")
    assert "s3cret" not in str(info.value) and "me:***@127.0.0.1" in str(info.value)


def test_failed_logging_creates_no_version(registry: ModelRegistry,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(MlflowClient, "log_artifacts", broken)
    with pytest.raises(BackendError, match=r"registering 'half'.*OSError: disk full"):
        registry.register("half", fitted(), reference=X)
    assert "half" not in registry


def test_failed_version_creation_removes_what_it_created(
    registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry.register("kept", Scaler(8.0))

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("database is locked")

    monkeypatch.setattr(MlflowClient, "create_model_version", broken)
    with pytest.raises(BackendError, match="database is locked"):
        registry.register("fresh", Scaler(8.0))
    with pytest.raises(BackendError):
        registry.register("kept", Scaler(9.0))
    monkeypatch.undo()
    assert "fresh" not in registry, "the registered model made by the failed call is gone"
    assert registry.versions("kept")["version"].tolist() == ["1"]


def test_a_duplicate_from_a_racing_machine_is_dropped(
    registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = registry.register("raced", Scaler(10.0))
    # Simulate another machine having registered it between our lookup and our create.
    monkeypatch.setattr(ModelRegistry, "_find", lambda self, name, sha: None)
    again = registry.register("raced", Scaler(10.0), label="late")
    assert again == first
    assert registry.versions("raced")["version"].tolist() == ["1"]


def test_registration_waits_for_the_lock(registry: ModelRegistry) -> None:
    import fcntl
    import threading

    registry.lock_dir.mkdir(parents=True, exist_ok=True)
    released = []
    with open(registry.lock_dir / "registry.lock", "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)

        def release() -> None:
            time.sleep(0.3)
            released.append(time.monotonic())
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

        thread = threading.Thread(target=release)
        thread.start()
        registry.register("locked", Scaler(11.0))
        done = time.monotonic()
        thread.join()
    assert released and done >= released[0]


def test_default_locations_follow_the_tracking_uri(tmp_path: Path) -> None:
    local = ModelRegistry(f"sqlite:///{tmp_path}/mlflow.db")
    assert local.lock_dir == tmp_path
    assert local.artifact_location == (tmp_path / "mlartifacts").as_uri()
    assert local.registry_uri == local.tracking_uri
    chosen = ModelRegistry(f"sqlite:///{tmp_path}/mlflow.db", lock_dir=tmp_path / "locks",
                           artifact_root=tmp_path / "art", registry_uri="sqlite:///other.db")
    assert (chosen.lock_dir, chosen.artifact_location, chosen.registry_uri) == (
        tmp_path / "locks", (tmp_path / "art").as_uri(), "sqlite:///other.db")
    assert ModelRegistry("sqlite:///x.db", artifact_root="s3://bucket/models").artifact_location \
        == "s3://bucket/models"
    remote = ModelRegistry("http://mlflow.internal:5000")
    assert remote.artifact_location is None, "the tracking server decides"
    assert remote.lock_dir.is_relative_to(Path(tempfile.gettempdir()))
    assert repr(ModelRegistry("postgresql://u:pw@db/mlflow")) == (
        "ModelRegistry('postgresql://u:***@db/mlflow')")


# -- packaging ------------------------------------------------------------------------------


def test_importing_the_registry_does_not_import_mlflow_or_pandas() -> None:
    code = ("import sys, overlay_sdk.registry; "
            "print(sorted({'mlflow', 'pandas', 'sklearn'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout.strip()
    assert out == "[]"


def test_artifacts_live_in_the_home_and_nothing_in_the_working_directory(
    registry: ModelRegistry, home: Path, workdir: Path,
) -> None:
    registry.register("placement", Scaler(12.0), reference=X)
    registry.load("placement", 1)
    assert (home / "mlflow.db").is_file() and (home / "mlartifacts").is_dir()
    assert list(workdir.iterdir()) == []
