"""The optional ``onnx`` flavor (overlay_sdk.flavors_onnx): a tiny graph built with
onnx.helper is registered, detected, hashed, verified, loaded and asked to predict."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from overlay_sdk.errors import ValidationError
from overlay_sdk.registry import ModelRegistry, content_sha256

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402 - after the skip

WEIGHTS = np.array([[1.0], [2.0], [-1.0]], dtype=np.float32)


def linear(weights: np.ndarray = WEIGHTS, name: str = "linear") -> onnx.ModelProto:
    """y = x @ weights, for a batch of 3-feature float32 rows."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])], name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])],
        [helper.make_tensor("W", TensorProto.FLOAT, [3, 1], weights.flatten())])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


FRAME = pd.DataFrame(np.random.default_rng(3).random((6, 3), dtype=np.float32),
                     columns=["amount", "age", "score"])


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    return ModelRegistry.for_home(tmp_path_factory.mktemp("onnx-home"))


def test_onnx_model_is_detected_registered_loaded_and_predicts(registry: ModelRegistry) -> None:
    v = registry.register("linear", linear(), reference=FRAME, label="w=1,2,-1")
    assert (v.flavor, v.source, v.features) == ("onnx", "onnx:linear", tuple(FRAME.columns))
    assert registry.register("linear", linear(), reference=FRAME, flavor="onnx") == v
    assert content_sha256(linear(), reference=FRAME) == v.sha256
    out = registry.load("linear", v.version).predict(FRAME)
    np.testing.assert_allclose(np.asarray(out).ravel(), (FRAME.to_numpy() @ WEIGHTS).ravel(),
                               rtol=1e-6)
    assert registry.verify("linear", v.version).ok
    changed = registry.register("linear", linear(WEIGHTS * 2), reference=FRAME)
    assert changed.version == "2" and changed.sha256 != v.sha256


def test_onnx_without_its_libraries_is_a_validation_error(monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ValidationError, match=r"needs onnxruntime, which is not installed; "
                                              r"pip install 'overlay-sdk\[onnx\]'") as info:
        content_sha256(linear())
    assert info.value.paths == ["flavor"]


@pytest.mark.parametrize(("model", "flavor", "path", "hint"), [
    (lambda df: df, "onnx", "model", "needs an onnx.ModelProto, got a function"),
    (helper.make_model(helper.make_graph(
        [helper.make_node("NoSuchOp", ["x"], ["y"])], "broken",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])), None, "model",
     "not a valid ONNX model"),
    (linear(), "pyfunc", "model", "needs an mlflow.pyfunc.PythonModel or a callable"),
])
def test_bad_onnx_input_names_the_argument(model: object, flavor: str | None, path: str,
                                           hint: str) -> None:
    with pytest.raises(ValidationError, match=hint) as info:
        content_sha256(model, flavor=flavor)
    assert info.value.paths == [path]
