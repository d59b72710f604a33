"""The ``onnx`` flavor: an ``onnx.ModelProto`` saved with ``mlflow.onnx``, served by onnxruntime.

:mod:`overlay_sdk.flavors` calls :func:`is_onnx` to detect the flavor, :func:`check_onnx`
to validate the model and :func:`save_onnx` to write it. The flavor is optional: it needs
``onnx`` and ``onnxruntime`` (``pip install 'overlay-sdk[onnx]'``), and without them
registering an ONNX model is a ValidationError saying so. The model is written as one
``model.onnx`` file (no external-data files), deterministic for the same ``ModelProto``.

No signature is inferred from reference data for ONNX: the graph declares its own typed
inputs, and MLflow's ONNX wrapper feeds a DataFrame's values to a single input tensor
(so a float64 frame meets a float32 graph); pass ``signature`` to have inputs checked.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

from overlay_sdk.errors import ValidationError

__all__ = ["INSTALL_HINT", "check_onnx", "is_onnx", "onnx_source", "save_onnx"]

INSTALL_HINT = "pip install 'overlay-sdk[onnx]' (the onnx and onnxruntime packages)"


def is_onnx(model: Any) -> bool:
    """Whether ``model`` is an ``onnx.ModelProto`` (without importing onnx)."""
    onnx = sys.modules.get("onnx")
    return onnx is not None and isinstance(model, onnx.ModelProto)


def _installed(module: str) -> bool:
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def check_onnx(model: Any) -> None:
    """ValidationError naming ``flavor`` when onnx/onnxruntime are missing, or ``model``
    when it is not a valid ``onnx.ModelProto``."""
    missing = [name for name in ("onnx", "onnxruntime") if not _installed(name)]
    if missing:  # onnxruntime: MLflow's ONNX pyfunc needs it to load the model
        raise ValidationError.at("flavor", f"flavor 'onnx' needs {' and '.join(missing)}, "
                                 f"which {'is' if len(missing) == 1 else 'are'} not installed; "
                                 f"{INSTALL_HINT}")
    import onnx

    if not isinstance(model, onnx.ModelProto):
        raise ValidationError.at("model", f"flavor 'onnx' needs an onnx.ModelProto, got a "
                                 f"{type(model).__name__}; load a file with onnx.load(path)")
    try:
        onnx.checker.check_model(model)
    except Exception as err:  # onnx raises ValidationError and others for a bad graph
        raise ValidationError.at("model", f"is not a valid ONNX model ({type(err).__name__}: "
                                 f"{err}); check it with onnx.checker.check_model") from None


def onnx_source(model: Any) -> str:
    """``onnx:<graph name>`` (``onnx:ModelProto`` when the graph has no name)."""
    return f"onnx:{model.graph.name or 'ModelProto'}"


def save_onnx(model: Any, path: Path, *, signature: Any, input_example: Any) -> None:
    """``mlflow.onnx.save_model`` into ``path``, with explicit requirements."""
    import mlflow.onnx

    mlflow.onnx.save_model(
        model, str(path), signature=signature, input_example=input_example,
        pip_requirements=mlflow.onnx.get_default_pip_requirements(),
        save_as_external_data=False,
    )
