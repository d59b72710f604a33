"""Canonical identity hashing (overlay_sdk.hashing): pure, no MLflow, no registry."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import cloudpickle
import numpy as np
import pandas as pd
import pytest

from overlay_sdk import hashing
from overlay_sdk.hashing import (
    canonical_mlmodel,
    canonical_pickle,
    hash_model_dir,
    hash_reference,
    identity_config,
    model_identity,
)

MLMODEL = """\
artifact_path: model
flavors:
  python_function:
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.sklearn
    model_path: model.pkl
    python_version: 3.11.7
  sklearn:
    pickled_model: model.pkl
    serialization_format: cloudpickle
    sklearn_version: 1.9.1
mlflow_version: 3.17.2
model_id: null
model_size_bytes: 729
model_uuid: b14d749638844730ab7e7af620a047a9
run_id: 4e68e930cd374766810fb83fd3514da9
signature:
  inputs: '[{"type": "double", "name": "amount", "required": true}]'
  outputs: null
utc_time_created: '2026-11-26 07:12:44.390853'
"""

REQUIREMENTS = "mlflow==3.17.2\ncloudpickle==3.1.3\nscikit-learn==1.9.1"

CONDA = """\
channels:
- conda-forge
dependencies:
- python=3.11.7
- pip<=23.2.1
- pip:
  - mlflow==3.17.2
  - cloudpickle==3.1.3
  - scikit-learn==1.9.1
name: mlflow-env
"""


def write_model(root: Path, mlmodel: str = MLMODEL, pkl: bytes = b"\x80\x04weights",
                requirements: str = REQUIREMENTS, conda: str = CONDA) -> Path:
    root.mkdir(parents=True)
    (root / "MLmodel").write_text(mlmodel)
    (root / "model.pkl").write_bytes(pkl)
    (root / "requirements.txt").write_text(requirements)
    (root / "conda.yaml").write_text(conda)
    (root / "python_env.yaml").write_text("python: 3.11.7\ndependencies:\n- -r requirements.txt\n")
    return root


def identity(root: Path) -> str:
    return model_identity(hash_model_dir(root), {"flavor": "sklearn"})


# -- MLmodel and environment files ----------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("utc_time_created", "'2030-01-01 00:00:00.000001'"),
        ("model_uuid", "0123456789abcdef0123456789abcdef"),
        ("run_id", "ffffffffffffffffffffffffffffffff"),
        ("artifact_path", "elsewhere"),
        ("mlflow_version", "3.99.0"),
        ("model_size_bytes", "99999"),
        ("model_id", "m-123"),
    ],
)
def test_volatile_mlmodel_keys_are_ignored(key: str, value: str) -> None:
    lines = [f"{key}: {value}" if line.startswith(f"{key}:") else line
             for line in MLMODEL.splitlines()]
    changed = "\n".join(lines) + "\n"
    assert changed != MLMODEL
    assert canonical_mlmodel(changed.encode()) == canonical_mlmodel(MLMODEL.encode())
    assert key in hashing.VOLATILE_MLMODEL_KEYS


def test_mlmodel_key_order_and_missing_volatile_keys_do_not_matter() -> None:
    import yaml

    doc = yaml.safe_load(MLMODEL)
    for key in ("run_id", "artifact_path", "model_id"):
        doc.pop(key)
    reordered = yaml.safe_dump(dict(reversed(list(doc.items()))), sort_keys=False)
    assert canonical_mlmodel(reordered.encode()) == canonical_mlmodel(MLMODEL.encode())


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("sklearn_version: 1.9.1", "sklearn_version: 1.8.0"),
        ("serialization_format: cloudpickle", "serialization_format: pickle"),
        ('"name": "amount"', '"name": "total"'),
        ("python_version: 3.11.7", "python_version: 3.12.1"),
    ],
)
def test_meaningful_mlmodel_changes_change_the_canonical_form(old: str, new: str) -> None:
    assert old in MLMODEL
    changed = MLMODEL.replace(old, new)
    assert canonical_mlmodel(changed.encode()) != canonical_mlmodel(MLMODEL.encode())


def test_python_patch_release_in_mlmodel_is_not_identity() -> None:
    patch = MLMODEL.replace("python_version: 3.11.7", "python_version: 3.11.9")
    minor = MLMODEL.replace("python_version: 3.11.7", "python_version: 3.12.1")
    assert canonical_mlmodel(patch.encode()) == canonical_mlmodel(MLMODEL.encode())
    assert canonical_mlmodel(minor.encode()) != canonical_mlmodel(MLMODEL.encode())


@pytest.mark.parametrize(
    ("requirements", "conda"),
    [
        # MLflow's log_model infers requirements in a subprocess: it lists whatever was
        # imported there, so the same model gets different environment files.
        (REQUIREMENTS + "\npandas==3.1.1\npsutil==7.2.2\nrich==15.0.0", CONDA),
        (REQUIREMENTS.replace("scikit-learn==1.9.1", "scikit-learn"), CONDA),
        (REQUIREMENTS, CONDA.replace("python=3.11.7", "python=3.12.1").replace("pip<=23.2.1",
                                                                            "pip<=26.0")),
    ],
)
def test_environment_files_are_hashed_but_not_identity(
    tmp_path: Path, requirements: str, conda: str,
) -> None:
    a = write_model(tmp_path / "a")
    b = write_model(tmp_path / "b", requirements=requirements, conda=conda)
    assert identity(a) == identity(b)
    files_a, files_b = hash_model_dir(a), hash_model_dir(b)
    assert set(files_a) == set(files_b) >= hashing.ENVIRONMENT_FILES, "recorded for verify"
    changed = {p for p in files_a if files_a[p] != files_b[p]}
    assert changed and changed <= hashing.ENVIRONMENT_FILES
    assert hashing.identity_files(files_a) == hashing.identity_files(files_b)


def test_environment_files_are_hashed_as_raw_bytes(tmp_path: Path) -> None:
    a = write_model(tmp_path / "a")
    digest = hashlib.sha256(REQUIREMENTS.encode()).hexdigest()
    assert hash_model_dir(a)["requirements.txt"] == digest


def test_mlflow_download_bookkeeping_is_not_hashed(tmp_path: Path) -> None:
    a = write_model(tmp_path / "a")
    before = hash_model_dir(a)
    (a / "registered_model_meta").write_text("model_name: fraud\nmodel_version: '3'\n")
    assert hash_model_dir(a) == before
    (a / "data").mkdir()
    (a / "data" / "registered_model_meta").write_text("nested: kept")
    assert "data/registered_model_meta" in hash_model_dir(a)


# -- folders --------------------------------------------------------------------------------


def test_same_content_in_two_folders_has_the_same_identity(tmp_path: Path) -> None:
    a = write_model(tmp_path / "a")
    b = write_model(tmp_path / "b", mlmodel=MLMODEL.replace("b14d7496", "00000000"),
                    requirements=REQUIREMENTS.replace("3.17.2", "3.17.3"))
    files_a, files_b = hash_model_dir(a), hash_model_dir(b)
    assert files_a["MLmodel"] == files_b["MLmodel"]
    assert hashing.identity_files(files_a) == hashing.identity_files(files_b)
    assert identity(a) == identity(b)
    assert pd.Series([identity(a)]).str.fullmatch("[0-9a-f]{64}").all()


def test_content_change_changes_the_identity(tmp_path: Path) -> None:
    a = write_model(tmp_path / "a")
    b = write_model(tmp_path / "b", pkl=b"\x80\x04weightz")
    assert identity(a) != identity(b)


def test_renaming_a_file_changes_the_identity(tmp_path: Path) -> None:
    a = write_model(tmp_path / "a")
    b = write_model(tmp_path / "b")
    (b / "model.pkl").rename(b / "model2.pkl")
    assert identity(a) != identity(b)
    assert "model2.pkl" in hash_model_dir(b)


def test_moving_a_file_into_a_subfolder_changes_the_identity(tmp_path: Path) -> None:
    a = write_model(tmp_path / "a")
    (a / "data").mkdir()
    (a / "data" / "x.bin").write_bytes(b"1")
    b = write_model(tmp_path / "b")
    (b / "x.bin").write_bytes(b"1")
    assert "data/x.bin" in hash_model_dir(a)
    assert identity(a) != identity(b)


def test_swapping_contents_between_files_changes_the_identity(tmp_path: Path) -> None:
    a = write_model(tmp_path / "a")
    (a / "one.bin").write_bytes(b"1")
    (a / "two.bin").write_bytes(b"2")
    b = write_model(tmp_path / "b")
    (b / "one.bin").write_bytes(b"2")
    (b / "two.bin").write_bytes(b"1")
    assert identity(a) != identity(b)


def test_added_file_changes_the_identity(tmp_path: Path) -> None:
    a = write_model(tmp_path / "a")
    b = write_model(tmp_path / "b")
    (b / "input_example.json").write_text("{}")
    assert identity(a) != identity(b)


def test_configuration_is_part_of_the_identity(tmp_path: Path) -> None:
    files = hash_model_dir(write_model(tmp_path / "a"))
    base = model_identity(files, {"flavor": "sklearn", "features": ["a"]})
    assert base == model_identity(files, {"features": ["a"], "flavor": "sklearn"})
    assert base != model_identity(files, {"flavor": "pyfunc", "features": ["a"]})
    assert base != model_identity(files, {"flavor": "sklearn", "features": ["b"]})


def test_identity_config_is_flavor_features_and_reference_only(tmp_path: Path) -> None:
    config = identity_config(flavor="sklearn", features=("a", "b"), reference=None)
    assert config == {"features": ["a", "b"], "flavor": "sklearn", "reference": None}
    files = hash_model_dir(write_model(tmp_path / "a"))
    with_ref = identity_config(flavor="sklearn", features=["a", "b"], reference="0" * 64)
    assert model_identity(files, config) != model_identity(files, with_ref)


def test_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        hash_model_dir(tmp_path / "nothing")


# -- pickles --------------------------------------------------------------------------------

CLASS_SOURCE = """
import enum, typing
class Scaler:
    factor = {factor}
    def predict(self, x):
        return x * self.factor
class Color(enum.Enum):
    RED = 1
T = typing.TypeVar("T")
model = [Scaler(), Scaler, Color.RED, T, {{"tag": "{tag}"}}]
"""


def pickled(factor: float = 2.0, tag: str = "0" * 32) -> bytes:
    """A notebook-style model: classes defined in __main__, so cloudpickle pickles them by
    value with a fresh class-tracker id every time they are defined."""
    ns: dict[str, object] = {"__name__": "__main__"}
    exec(compile(CLASS_SOURCE.format(factor=factor, tag=tag), "<cell>", "exec"), ns)
    return bytes(cloudpickle.dumps(ns["model"], protocol=pickle.DEFAULT_PROTOCOL))


def test_cloudpickle_class_tracker_ids_are_canonicalised() -> None:
    one, two = pickled(), pickled()
    assert one != two, "cloudpickle writes a new tracker id for each definition"
    assert canonical_pickle(one) == canonical_pickle(two)
    assert len(canonical_pickle(one)) == len(one)


def test_canonical_pickle_still_loads_and_keeps_real_changes() -> None:
    loaded = pickle.loads(canonical_pickle(pickled()))
    assert loaded[0].predict(3) == 6.0
    assert canonical_pickle(pickled(factor=2.5)) != canonical_pickle(pickled())


def test_user_strings_that_look_like_tracker_ids_are_kept() -> None:
    tag_a, tag_b = "a" * 32, "b" * 32
    assert canonical_pickle(pickled(tag=tag_a)) != canonical_pickle(pickled(tag=tag_b))
    plain = pickle.dumps({"id": tag_a})
    assert canonical_pickle(plain) == plain


def test_ordinary_pickles_and_other_bytes_pass_through_unchanged() -> None:
    data = pickle.dumps({"weights": np.arange(5)})
    assert canonical_pickle(data) is data
    assert canonical_pickle(b"not a pickle _make_skeleton_class") == (
        b"not a pickle _make_skeleton_class")
    broken = b"\x80\x05_make_skeleton_class"
    assert canonical_pickle(broken) == broken


def test_pickles_in_a_folder_are_hashed_canonically(tmp_path: Path) -> None:
    a = write_model(tmp_path / "a", pkl=pickled())
    b = write_model(tmp_path / "b", pkl=pickled())
    assert identity(a) == identity(b)
    digest = hashlib.sha256(canonical_pickle(pickled())).hexdigest()
    assert hash_model_dir(a)["model.pkl"] == digest


# -- reference data -------------------------------------------------------------------------


def frame() -> pd.DataFrame:
    rng = np.random.RandomState(3)
    return pd.DataFrame({
        "amount": rng.rand(50),
        "count": rng.randint(0, 9, 50),
        "segment": pd.Series(list("ab") * 25, dtype="str"),
        "when": pd.date_range("2024-01-01", periods=50, freq="h", tz="UTC"),
    })


def test_equal_frames_hash_equal_across_storage(tmp_path: Path) -> None:
    df = frame()
    df.to_parquet(tmp_path / "ref.parquet")
    assert hash_reference(df) == hash_reference(df.copy())
    assert hash_reference(df) == hash_reference(pd.read_parquet(tmp_path / "ref.parquet"))


@pytest.mark.parametrize(
    "change",
    [
        lambda df: df.assign(amount=df["amount"].where(df.index != 7, 0.5)),
        lambda df: df.rename(columns={"count": "n"}),
        lambda df: df.astype({"count": "float64"}),
        lambda df: df[["count", "amount", "segment", "when"]],
        lambda df: df.iloc[::-1],
        lambda df: df.iloc[::-1].reset_index(drop=True),
        lambda df: df.head(49),
        lambda df: df.drop(columns="when"),
        lambda df: df.set_index("segment"),
    ],
)
def test_any_change_to_the_reference_changes_its_hash(change: object) -> None:
    df = frame()
    assert callable(change)
    assert hash_reference(change(df)) != hash_reference(df)


def test_unhashable_cells_are_hashed_by_value() -> None:
    a = pd.DataFrame({"tokens": [["a", "b"], ["c"]]})
    b = pd.DataFrame({"tokens": [["a", "b"], ["d"]]})
    assert hash_reference(a) == hash_reference(a.copy()) != hash_reference(b)


def test_process_local_sklearn_attributes_are_dropped_from_a_copy() -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from overlay_sdk.flavors import without_process_local_state

    docs, labels = ["good fast", "bad slow", "fast good ok", "slow bad"] * 3, [1, 0, 1, 0] * 3
    model = make_pipeline(TfidfVectorizer(stop_words="english"), LogisticRegression())
    model.fit(docs, labels)
    assert "_stop_words_id" in vars(model[0])
    clean = without_process_local_state(model)
    assert "_stop_words_id" not in vars(clean[0])
    assert "_stop_words_id" in vars(model[0])  # the user's object is untouched
    assert list(clean.predict(docs)) == list(model.predict(docs))
    plain = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    assert without_process_local_state(plain) is plain
