"""How an in-memory model object becomes MLflow model artifacts in a folder.

:mod:`overlay_sdk.registry_identity` calls :func:`detect_flavor`, :func:`check_reference`
and :func:`save_model` when registering, then hashes the folder (:mod:`overlay_sdk.hashing`).
Flavors: ``sklearn`` (a scikit-learn estimator, saved with ``mlflow.sklearn``),
``pyfunc`` (an ``mlflow.pyfunc.PythonModel`` instance, or a plain callable wrapped in
:class:`CallableModel`) and ``onnx`` (an ``onnx.ModelProto``, optional:
:mod:`overlay_sdk.flavors_onnx`). Saving is made deterministic: explicit pip requirements (no
requirement inference, which runs a subprocess and depends on the environment; the
environment files are not part of the identity anyway), no uv project files from the
current directory, and one fixed sklearn serialization format, cloudpickle, which is also
what a user passes to ``mlflow.sklearn.log_model`` for an imported model to hash the same.

What identity can and cannot see in pickled (pyfunc, sklearn) models: classes and functions
defined in ``__main__`` or a notebook are pickled by value, code included, and hash the same
in every process (see :func:`overlay_sdk.hashing.canonical_pickle`); those importable from
a module are pickled by reference, so editing that module's code does not change the
hash (and loading needs the module). A ``set`` of strings in a model's state pickles in
per-process hash order, so such a model hashes differently in each process.

Imports MLflow at module level: the registry imports this module only when it needs it.
:class:`CallableModel` is pickled by reference into registered models, so its import path
``overlay_sdk.flavors.CallableModel`` must not change.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow import pyfunc
from mlflow.models import ModelSignature, infer_signature
from mlflow.pyfunc.model import PythonModel
from mlflow.types.schema import ColSpec, Schema

from overlay_sdk import flavors_onnx
from overlay_sdk.errors import BackendError, ValidationError

__all__ = [
    "FLAVORS",
    "SKLEARN_SERIALIZATION",
    "CallableModel",
    "SavedModel",
    "check_reference",
    "detect_flavor",
    "save_model",
]

FLAVORS = ("onnx", "pyfunc", "sklearn")
SKLEARN_SERIALIZATION = "cloudpickle"

PROCESS_LOCAL_ATTRIBUTES = ("_stop_words_id",)
"""Fitted scikit-learn attributes that hold a per-process value (``id()`` of an object,
kept only as a cache key), dropped before saving so the same model hashes the same in
every process. scikit-learn recomputes them when needed."""


def _process_local_holders(obj: Any, seen: set[int] | None = None) -> list[Any]:
    """Objects inside ``obj`` (estimators, pipelines, lists, dicts) that hold such values."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return []
    seen.add(id(obj))
    found: list[Any] = []
    if isinstance(obj, list | tuple | set | frozenset):
        children: list[Any] = list(obj)
    elif isinstance(obj, dict):
        children = list(obj.values())
    elif hasattr(obj, "get_params") and hasattr(obj, "__dict__"):  # a scikit-learn estimator
        if any(name in vars(obj) for name in PROCESS_LOCAL_ATTRIBUTES):
            found.append(obj)
        children = list(vars(obj).values())
    else:
        return []
    for child in children:
        found.extend(_process_local_holders(child, seen))
    return found


def without_process_local_state(model: Any) -> Any:
    """``model`` itself, or a deep copy without :data:`PROCESS_LOCAL_ATTRIBUTES`."""
    if not _process_local_holders(model):
        return model
    import copy

    clean = copy.deepcopy(model)
    for holder in _process_local_holders(clean):
        for name in PROCESS_LOCAL_ATTRIBUTES:
            vars(holder).pop(name, None)
    return clean
"""MLflow's default outside Databricks is ``skops``, which needs the ``skops`` package (not a
dependency) and refuses classes defined in notebooks; cloudpickle is MLflow's Databricks
default and gives the same bytes for the same estimator in every process."""


class CallableModel(PythonModel):
    """A plain callable ``fn(model_input) -> output`` as an MLflow PythonModel."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> Any:
        return self.fn(model_input)


@dataclass(frozen=True)
class SavedModel:
    """A model saved in ``path`` by :func:`save_model`; ``features`` are its input names."""

    path: Path
    flavor: str
    source: str
    features: tuple[str, ...]


def _is_sklearn(model: Any) -> bool:
    base = sys.modules.get("sklearn.base")  # an estimator object means sklearn is imported
    return base is not None and isinstance(model, base.BaseEstimator)


def detect_flavor(model: Any, flavor: str | None) -> str:
    """The flavor to save ``model`` with; ValidationError naming ``flavor`` or ``model``."""
    if flavor is not None and flavor not in FLAVORS:
        raise ValidationError.at(
            "flavor", f"unknown flavor {flavor!r}; use one of {', '.join(FLAVORS)}, "
            "or leave it out to detect it from the model"
        )
    if isinstance(model, type):
        raise ValidationError.at(
            "model", f"got the class {model.__name__}; pass a fitted instance, "
            f"such as {model.__name__}(...)"
        )
    kind = type(model).__name__
    if flavor is None:
        if flavors_onnx.is_onnx(model):
            flavor = "onnx"
        elif _is_sklearn(model):
            flavor = "sklearn"
        elif isinstance(model, PythonModel) or callable(model):
            flavor = "pyfunc"
        else:
            raise ValidationError.at(
                "model", f"cannot tell the flavor of a {kind}; pass a scikit-learn estimator, "
                "an mlflow.pyfunc.PythonModel, a function of a DataFrame or an onnx.ModelProto"
            )
    if flavor == "onnx":
        flavors_onnx.check_onnx(model)
    elif flavor == "sklearn":
        if not _is_sklearn(model):
            raise ValidationError.at(
                "model", f"flavor 'sklearn' needs a scikit-learn estimator, got a {kind}; "
                "pass flavor='pyfunc' for other Python models"
            )
        from sklearn.exceptions import NotFittedError
        from sklearn.utils.validation import check_is_fitted

        if not callable(getattr(model, "predict", None)):
            raise ValidationError.at(
                "model", f"this {kind} has no predict(); register an estimator that predicts, "
                "e.g. a Pipeline that ends in one"
            )
        try:
            check_is_fitted(model)
        except NotFittedError:
            raise ValidationError.at(
                "model", f"this {kind} is not fitted; call .fit(X, y) before registering it"
            ) from None
    elif not (isinstance(model, PythonModel) or callable(model)):
        raise ValidationError.at(
            "model", f"flavor 'pyfunc' needs an mlflow.pyfunc.PythonModel or a callable, got "
            f"a {kind}" + ("; use flavor='sklearn'" if _is_sklearn(model) else "")
        )
    return flavor


def check_reference(reference: Any) -> pd.DataFrame | None:
    """``reference`` if it is a usable DataFrame (or None); else ValidationError."""
    if reference is None:
        return None
    if not isinstance(reference, pd.DataFrame):
        raise ValidationError.at(
            "reference", f"must be a pandas DataFrame (the training or reference data), got a "
            f"{type(reference).__name__}; wrap it with pandas.DataFrame(...)"
        )
    problems = []
    if reference.empty:
        problems.append("has no rows or no columns; pass the data the model was trained on")
    names = [c for c in reference.columns if not isinstance(c, str)]
    if names:
        problems.append(f"column names must be strings, got {names[:5]!r}; rename them, "
                        "e.g. df.columns = df.columns.astype(str)")
    if reference.columns.has_duplicates:
        dup = sorted({str(c) for c in reference.columns[reference.columns.duplicated()]})
        problems.append(f"duplicate column names {dup}; give every column its own name")
    if problems:
        raise ValidationError.at("reference", "; ".join(problems))
    return reference


def _source(model: Any) -> str:
    if flavors_onnx.is_onnx(model):
        return flavors_onnx.onnx_source(model)
    if isinstance(model, CallableModel):
        fn = model.fn
        return "pyfunc:" + str(getattr(fn, "__qualname__", type(fn).__name__))
    flavor = "sklearn" if _is_sklearn(model) else "pyfunc"
    return f"{flavor}:{type(model).__name__}"


_NOTICES = (
    # mlflow.sklearn / mlflow.pyfunc warn that pickles run code when loaded. Pickling is
    # the only way to save an in-memory object; the choice is documented on this module.
    "pickle or cloudpickle format",
    "Passing a Python object as `python_model`",
)


def _not_a_notice(record: logging.LogRecord) -> bool:
    return not any(n in record.getMessage() for n in _NOTICES)


@contextlib.contextmanager
def _quiet_save() -> Iterator[None]:
    """Silence MLflow notices that would repeat on every register and do not apply to it."""
    loggers = [logging.getLogger(n) for n in ("mlflow.sklearn", "mlflow.pyfunc")]
    for logger in loggers:
        logger.addFilter(_not_a_notice)
    try:
        with warnings.catch_warnings():
            # Signatures are inferred from the reference data, which is the realistic
            # sample these two hints ask for.
            warnings.filterwarnings(
                "ignore", message=r".*Inferred schema contains integer column", category=UserWarning
            )
            warnings.filterwarnings(
                "ignore", message=r".*An input example was not provided", category=UserWarning
            )
            yield
    finally:
        for logger in loggers:
            logger.removeFilter(_not_a_notice)


def _infer_signature(model: Any, flavor: str, reference: pd.DataFrame) -> ModelSignature:
    """Input schema from the reference; output schema too for sklearn (predict on a sample)."""
    columns = list(reference.columns)
    if flavor == "sklearn":
        names = getattr(model, "feature_names_in_", None)
        n_in = getattr(model, "n_features_in_", None)
        if names is not None:
            missing = [str(n) for n in names if n not in reference.columns]
            if missing:
                raise ValidationError.at(
                    "reference", f"lacks the model's feature columns {missing[:10]}; "
                    "pass the data the model was trained on"
                )
            columns = [str(n) for n in names]
        elif n_in is not None and n_in != len(columns):
            raise ValidationError.at(
                "reference", f"has {len(columns)} columns but the model was fitted on {n_in} "
                "unnamed features; pass only the feature columns, or a signature"
            )
        # Fitted on a DataFrame: named columns. Fitted on an array: an unnamed tensor, so
        # that serving passes an array too (sklearn warns when names appear at predict).
        inputs: Any = reference[columns] if names is not None else reference.to_numpy()
        try:
            output = model.predict(inputs[:20])
        except Exception as err:  # the user's estimator: any failure means a mismatch
            raise ValidationError.at(
                "reference", f"the model cannot predict on it ({type(err).__name__}: {err}); "
                "pass the data the model was trained on"
            ) from None
        return infer_signature(inputs, output)
    # Arbitrary Python: which columns it needs is unknown (the reference may hold the target
    # too), so the columns are typed but optional; MLflow checks the types of those given.
    inferred = infer_signature(reference)
    if inferred.inputs is None or not inferred.inputs.has_input_names():
        return inferred
    return ModelSignature(inputs=Schema(
        [ColSpec(c.type, c.name, required=False) for c in inferred.inputs.inputs]))


def save_model(
    model: Any,
    flavor: str,
    path: Path,
    *,
    reference: pd.DataFrame | None = None,
    signature: Any = None,
    input_example: Any = None,
) -> SavedModel:
    """Save ``model`` with ``mlflow.<flavor>.save_model`` into the new folder ``path``.

    A signature is inferred from ``input_example`` (by MLflow) or else from ``reference``
    when none is given. Raises ValidationError when MLflow cannot save the object.
    """
    if signature is not None and not isinstance(signature, ModelSignature):
        raise ValidationError.at(
            "signature", f"must be an mlflow.models.ModelSignature, got a "
            f"{type(signature).__name__}; build one with mlflow.models.infer_signature(X, y)"
        )
    if flavor == "pyfunc" and not isinstance(model, PythonModel):
        model = CallableModel(model)
    with _quiet_save():
        if (signature is None and input_example is None and reference is not None
                and flavor != "onnx"):  # an ONNX graph types its own inputs
            signature = _infer_signature(model, flavor, reference)
        try:
            if flavor == "onnx":
                flavors_onnx.save_onnx(model, path, signature=signature,
                                       input_example=input_example)
            elif flavor == "sklearn":
                from mlflow import sklearn as mlflow_sklearn

                mlflow_sklearn.save_model(
                    without_process_local_state(model), str(path),
                    serialization_format=SKLEARN_SERIALIZATION,
                    signature=signature, input_example=input_example,
                    pip_requirements=mlflow_sklearn.get_default_pip_requirements(
                        include_cloudpickle=True
                    ),
                )
            else:
                from mlflow.pyfunc.model import get_default_pip_requirements

                pyfunc.save_model(
                    str(path), python_model=model, signature=signature,
                    input_example=input_example,
                    pip_requirements=get_default_pip_requirements(),  # type: ignore[no-untyped-call]
                    uv_project_path=str(path.parent),  # a folder without uv.lock: copy none
                )
        except ValidationError:
            raise
        except OSError as err:
            raise BackendError(
                f"cannot write the model into the temporary folder {path.parent} ({err}); "
                "check the free space there, or set TMPDIR to another folder"
            ) from err
        except Exception as err:  # MLflow and pickling raise many kinds; all mean "cannot save"
            raise ValidationError.at(
                "model", f"MLflow could not save this {flavor} model ({type(err).__name__}: "
                f"{err}); check that it is picklable and that input_example fits it"
            ) from err
    return SavedModel(path, flavor, _source(model), _features(path, reference))


def _features(path: Path, reference: pd.DataFrame | None) -> tuple[str, ...]:
    """Signature input names if the saved model has named inputs, else reference columns."""
    from mlflow.models import Model

    sig = Model.load(str(path)).signature
    if sig is not None and sig.inputs is not None and sig.inputs.has_input_names():
        return tuple(str(n) for n in sig.inputs.input_names())
    return tuple(str(c) for c in reference.columns) if reference is not None else ()
