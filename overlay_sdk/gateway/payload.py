"""Model call payloads: the invoke body -> a DataFrame checked against the version's
signature, and a model's output -> JSON. Pure (pandas and numpy only).

``{"inputs": ...}`` takes the forms MLflow's scoring server takes for a tabular model:
one record ``{"amount": 12.5, "country": "FR"}``, a list of records, or columns
``{"amount": [12.5, 80.0], "country": ["FR", "DE"]}``. Features the model does not
name are ignored (as MLflow does); missing or mistyped features are a
:class:`PayloadError` naming them, which the gateway answers with 422.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from overlay_sdk.errors import PayloadError

__all__ = ["Column", "PayloadError", "describe", "frame_of", "jsonable", "sample_of"]

_NUMERIC = {"integer", "long", "float", "double"}
_INTEGER = {"integer", "long"}
_DTYPES = {"integer": "int32", "long": "int64", "float": "float32", "double": "float64",
           "boolean": "bool"}
MAX_ROWS = 10_000


@dataclass(frozen=True)
class Column:
    """One input column of a model signature: ``type`` is MLflow's data type name
    (``double``, ``long``, ``string``, ``boolean``...)."""

    name: str
    type: str
    required: bool = True


def describe(columns: Sequence[Column]) -> str:
    """``amount (double), country (string)`` for messages."""
    return ", ".join(f"{c.name} ({c.type}{'' if c.required else ', optional'})" for c in columns)


def _rows(inputs: Any) -> list[Mapping[str, Any]]:
    if isinstance(inputs, Mapping):
        if not inputs:
            raise PayloadError("inputs", "is empty; give the features, e.g. "
                               '{"inputs": {"amount": 12.5}}')
        lists = [isinstance(v, list) for v in inputs.values()]
        if all(lists):
            lengths = {len(v) for v in inputs.values()}
            if len(lengths) != 1:
                raise PayloadError("inputs", "columns have different lengths "
                                   f"({sorted(lengths)}); give one value per row in each")
            n = lengths.pop()
            return [{k: v[i] for k, v in inputs.items()} for i in range(n)]
        if any(lists):
            raise PayloadError("inputs", "mixes lists and single values; give one record "
                               "{name: value} or columns {name: [values]}")
        return [inputs]
    if isinstance(inputs, list) and inputs and all(isinstance(r, Mapping) for r in inputs):
        return inputs
    raise PayloadError("inputs", "give one record {\"amount\": 12.5, ...}, a list of records, "
                       "or columns {\"amount\": [12.5, 80.0], ...}")


def _check_value(column: Column, value: Any, row: int) -> None:
    if value is None:
        if column.required:
            raise PayloadError(f"inputs.{column.name}", f"is null in row {row}; the model "
                               "needs a value")
        return
    if column.type in _NUMERIC:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and isinstance(value, float) and not math.isfinite(value):
            ok = False
        if ok and column.type in _INTEGER and isinstance(value, float):
            ok = value.is_integer()
        kind = "an integer" if column.type in _INTEGER else "a number"
    elif column.type == "string":
        ok, kind = isinstance(value, str), "a string"
    elif column.type == "boolean":
        ok, kind = isinstance(value, bool), "true or false"
    else:
        return
    if not ok:
        raise PayloadError(f"inputs.{column.name}", f"expected {kind} ({column.type}), got "
                           f"{value!r:.60} in row {row}")


def frame_of(inputs: Any, columns: Sequence[Column] | None) -> pd.DataFrame:
    """The model input for ``inputs``, checked against ``columns`` when the version has a
    column signature (None: no signature, the records are passed as they are)."""
    rows = _rows(inputs)
    if len(rows) > MAX_ROWS:
        raise PayloadError("inputs", f"has {len(rows)} rows; send at most {MAX_ROWS} per call")
    if not columns:
        return pd.DataFrame.from_records(rows)
    missing = sorted({c.name for c in columns if c.required} - set().union(*rows))
    if missing:
        raise PayloadError("inputs", f"missing feature(s) {', '.join(missing)}; the model "
                           f"expects {describe(columns)}")
    for i, row in enumerate(rows):
        for column in columns:
            _check_value(column, row.get(column.name), i)
    names = [c.name for c in columns]
    frame = pd.DataFrame.from_records([{n: r.get(n) for n in names} for r in rows],
                                      columns=names)
    for column in columns:  # JSON 3 is an int; a double column needs 3.0 (MLflow is strict)
        dtype = _DTYPES.get(column.type)
        if dtype is not None and not frame[column.name].isna().any():
            frame[column.name] = _cast(frame[column.name], column, dtype)
    return frame


def _cast(values: pd.Series, column: Column, dtype: str) -> pd.Series:
    """``values`` as ``dtype``, refusing what would not fit (no silent wrap-around or inf)."""
    if column.type in _INTEGER:
        info = np.iinfo(dtype)
        outside = [v for v in values if not info.min <= v <= info.max]
        if outside:
            raise PayloadError(f"inputs.{column.name}", f"{outside[0]!r:.40} does not fit "
                               f"{column.type} ({info.min} to {info.max})")
        return values.astype(dtype)
    if column.type == "float":
        limit = float(np.finfo(np.float32).max)
        outside = [v for v in values if isinstance(v, int | float) and abs(v) > limit]
        if outside:
            raise PayloadError(f"inputs.{column.name}", f"{outside[0]!r:.40} does not fit "
                               "float (32-bit)")
    try:
        return values.astype(dtype)
    except (OverflowError, ValueError) as err:
        raise PayloadError(f"inputs.{column.name}", f"cannot be read as {column.type}: "
                           f"{err}") from None


def sample_of(frame: pd.DataFrame) -> dict[str, Any]:
    """The inputs as telemetry keeps them: feature -> value for one row, feature -> list of
    values for several."""
    if len(frame) == 1:
        return {str(k): jsonable(v) for k, v in frame.iloc[0].items()}
    return {str(k): jsonable(frame[k].tolist()) for k in frame.columns}


def jsonable(value: Any) -> Any:
    """A model output (numpy, pandas or plain) as JSON-serialisable Python values."""
    if isinstance(value, pd.DataFrame):
        return [jsonable(r) for r in value.to_dict(orient="records")]
    if isinstance(value, pd.Series | np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
