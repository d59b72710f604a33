"""Invoke payloads -> a DataFrame checked against the model signature; outputs -> JSON."""

from __future__ import annotations

import json
import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from overlay_sdk.gateway.payload import (
    MAX_ROWS,
    Column,
    PayloadError,
    describe,
    frame_of,
    jsonable,
    sample_of,
)

SIGNATURE = [Column("amount", "double"), Column("country", "string")]


def error(inputs: Any, columns: list[Column] | None = SIGNATURE) -> PayloadError:
    with pytest.raises(PayloadError) as info:
        frame_of(inputs, columns)
    return info.value


# --- the three input forms -----------------------------------------------------------------


def test_record_list_of_records_and_columns_give_the_same_frame() -> None:
    one = [frame_of({"amount": 12.5, "country": "FR"}, SIGNATURE),
           frame_of([{"amount": 12.5, "country": "FR"}], SIGNATURE),
           frame_of({"amount": [12.5], "country": ["FR"]}, SIGNATURE)]
    for frame in one[1:]:
        assert_frame_equal(frame, one[0])
    assert one[0].to_dict(orient="records") == [{"amount": 12.5, "country": "FR"}]

    records = frame_of([{"amount": 12.5, "country": "FR"}, {"country": "DE", "amount": 80}],
                       SIGNATURE)
    columns = frame_of({"amount": [12.5, 80], "country": ["FR", "DE"]}, SIGNATURE)
    assert_frame_equal(records, columns)
    assert records["amount"].tolist() == [12.5, 80.0]
    assert records["country"].tolist() == ["FR", "DE"]


def test_columns_follow_the_signature_order_and_extra_features_are_dropped() -> None:
    frame = frame_of({"country": "FR", "session": "abc", "amount": 1.5}, SIGNATURE)
    assert list(frame.columns) == ["amount", "country"]


def test_ints_for_a_double_column_become_float64() -> None:
    frame = frame_of([{"amount": 3, "country": "FR"}, {"amount": 4, "country": "DE"}],
                     SIGNATURE)
    assert frame["amount"].dtype == np.float64
    assert frame["amount"].tolist() == [3.0, 4.0]


@pytest.mark.parametrize(("mlflow_type", "value", "dtype"), [
    ("double", 3, "float64"), ("float", 3, "float32"), ("long", 3, "int64"),
    ("integer", 3, "int32"), ("long", 3.0, "int64"), ("boolean", True, "bool"),
])
def test_numeric_and_boolean_columns_get_mlflow_dtypes(
        mlflow_type: str, value: Any, dtype: str) -> None:
    frame = frame_of({"x": value}, [Column("x", mlflow_type)])
    assert frame["x"].dtype == np.dtype(dtype)
    assert frame["x"].iloc[0] == value


# --- missing and mistyped ------------------------------------------------------------------


def test_missing_features_are_named_with_the_expected_signature() -> None:
    columns = [Column("amount", "double"), Column("country", "string"),
               Column("channel", "string", required=False)]
    err = error({"merchant": "m1"}, columns)
    assert err.field == "inputs"
    assert "amount, country" in err.message
    assert "channel" not in err.message.split(";")[0]  # optional is not missing
    assert describe(columns) in err.message
    assert describe(columns) == "amount (double), country (string), channel (string, optional)"
    assert str(err).startswith("inputs: ")


def test_an_optional_feature_may_be_absent() -> None:
    columns = [*SIGNATURE, Column("channel", "string", required=False)]
    frame = frame_of({"amount": 1.0, "country": "FR"}, columns)
    assert list(frame.columns) == ["amount", "country", "channel"]
    assert frame["channel"].isna().all()


@pytest.mark.parametrize(("inputs", "row"), [
    ({"amount": "12.5", "country": "FR"}, 0),
    ([{"amount": 1.0, "country": "FR"}, {"amount": "high", "country": "DE"}], 1),
    ({"amount": [1.0, 2.0, [3.0]], "country": ["a", "b", "c"]}, 2),
])
def test_wrong_types_name_the_feature_and_the_row(inputs: Any, row: int) -> None:
    err = error(inputs)
    assert err.field == "inputs.amount"
    assert f"row {row}" in err.message
    assert "double" in err.message


def test_a_number_for_a_string_column_is_refused() -> None:
    assert error({"amount": 1.0, "country": 33}).field == "inputs.country"


@pytest.mark.parametrize(("mlflow_type", "value"), [
    ("double", True), ("double", False), ("long", True), ("integer", False),
])
def test_booleans_are_not_numbers(mlflow_type: str, value: bool) -> None:
    assert error({"x": value}, [Column("x", mlflow_type)]).field == "inputs.x"


@pytest.mark.parametrize("value", [1, 0, "true", None])
def test_boolean_columns_take_only_true_or_false(value: Any) -> None:
    assert error({"x": value}, [Column("x", "boolean")]).field == "inputs.x"


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("mlflow_type", ["double", "float", "long"])
def test_nan_and_infinity_are_refused_for_numbers(mlflow_type: str, value: float) -> None:
    assert error({"x": value}, [Column("x", mlflow_type)]).field == "inputs.x"


@pytest.mark.parametrize("value", [3.5, 1e-9])
def test_a_fractional_number_is_refused_for_an_integer_column(value: float) -> None:
    assert error({"n": value}, [Column("n", "long")]).field == "inputs.n"


def test_null_in_a_required_column_is_refused_with_its_row() -> None:
    err = error([{"amount": 1.0, "country": "FR"}, {"amount": None, "country": "DE"}])
    assert err.field == "inputs.amount"
    assert "row 1" in err.message


def test_a_feature_missing_from_one_record_is_a_null_in_that_row() -> None:
    err = error([{"amount": 1.0, "country": "FR"}, {"amount": 2.0}])
    assert err.field == "inputs.country"
    assert "row 1" in err.message


def test_null_in_an_optional_column_is_allowed() -> None:
    columns = [Column("amount", "double"), Column("tip", "double", required=False)]
    frame = frame_of([{"amount": 1, "tip": None}, {"amount": 2, "tip": 0.5}], columns)
    assert frame["amount"].dtype == np.float64
    assert pd.isna(frame["tip"].iloc[0])
    assert frame["tip"].iloc[1] == 0.5


def test_unknown_signature_types_are_not_checked() -> None:
    frame = frame_of({"blob": [1, "x"]}, [Column("blob", "binary")])
    assert frame["blob"].tolist() == [1, "x"]


# --- no signature --------------------------------------------------------------------------


@pytest.mark.parametrize("columns", [None, []])
def test_without_a_signature_records_are_passed_as_given(columns: list[Column] | None) -> None:
    frame = frame_of([{"a": 1, "b": "x"}, {"a": 2, "b": "y", "c": True}], columns)
    assert list(frame.columns) == ["a", "b", "c"]
    assert frame["a"].tolist() == [1, 2]
    assert frame["b"].tolist() == ["x", "y"]
    assert pd.isna(frame["c"].iloc[0])
    assert frame["c"].iloc[1] is True


# --- shape errors --------------------------------------------------------------------------


def test_at_most_max_rows() -> None:
    frame_of({"amount": [1.0] * MAX_ROWS, "country": ["FR"] * MAX_ROWS}, SIGNATURE)
    err = error({"amount": [1.0] * (MAX_ROWS + 1), "country": ["FR"] * (MAX_ROWS + 1)})
    assert err.field == "inputs"
    assert str(MAX_ROWS + 1) in err.message and str(MAX_ROWS) in err.message
    assert error([{"amount": 1.0}] * (MAX_ROWS + 1), None).field == "inputs"


@pytest.mark.parametrize("inputs", [
    {"amount": [1.0, 2.0], "country": "FR"},   # lists mixed with single values
    {"amount": [1.0, 2.0], "country": ["FR"]},  # columns of different lengths
    {},
    [],
    [{"amount": 1.0}, [1.0]],
    [1.0, 2.0],
    "amount=1",
    12.5,
    None,
])
def test_malformed_inputs_are_refused_as_a_whole(inputs: Any) -> None:
    err = error(inputs)
    assert err.field == "inputs"
    assert isinstance(err, ValueError)


def test_mixed_lists_and_scalars_are_refused_with_an_explanation() -> None:
    assert "mixes lists and single values" in error(
        {"amount": [1.0], "country": "FR"}).message


# --- value ranges the dtype cannot hold ----------------------------------------------------


def test_an_integer_too_large_for_long_is_a_payload_error() -> None:
    with pytest.raises(PayloadError):
        frame_of({"n": 2**70}, [Column("n", "long")])


def test_an_integer_too_large_for_int32_is_a_payload_error() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(PayloadError):
            frame_of({"n": 2**40}, [Column("n", "integer")])


def test_a_number_too_large_for_float32_is_a_payload_error() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(PayloadError):
            frame_of({"x": 1e39}, [Column("x", "float")])


# --- jsonable ------------------------------------------------------------------------------


def test_jsonable_turns_numpy_scalars_into_python_values() -> None:
    values = jsonable([np.int64(3), np.float32(0.5), np.bool_(True), np.str_("a")])
    assert values == [3, 0.5, True, "a"]
    assert [type(v) for v in values] == [int, float, bool, str]


def test_jsonable_turns_arrays_series_and_frames_into_lists() -> None:
    assert jsonable(np.array([[1, 2], [3, 4]])) == [[1, 2], [3, 4]]
    assert jsonable(pd.Series([0.25, 0.75])) == [0.25, 0.75]
    frame = pd.DataFrame({"label": ["fraud", "ok"], "p": np.array([0.9, 0.1], "float32")})
    out = jsonable(frame)
    assert out == [{"label": "fraud", "p": pytest.approx(0.9)},
                   {"label": "ok", "p": pytest.approx(0.1)}]
    assert type(out[0]["p"]) is float


def test_jsonable_handles_nesting_and_nan() -> None:
    value = {"scores": np.array([0.5, np.nan]), 1: (np.int32(7), {"inf": math.inf}),
             "nan": math.nan, "frame": pd.DataFrame({"a": [np.nan]})}
    out = jsonable(value)
    assert out == {"scores": [0.5, None], "1": [7, {"inf": None}], "nan": None,
                   "frame": [{"a": None}]}
    json.dumps(out, allow_nan=False)


@pytest.mark.parametrize("value", [np.float64("nan"), np.float32("inf")])
def test_jsonable_turns_numpy_nan_scalars_into_none(value: Any) -> None:
    assert jsonable(value) is None


# --- sample_of -----------------------------------------------------------------------------


def test_sample_of_one_row_gives_scalars() -> None:
    sample = sample_of(frame_of({"amount": 3, "country": "FR"}, SIGNATURE))
    assert sample == {"amount": 3.0, "country": "FR"}
    assert type(sample["amount"]) is float
    json.dumps(sample, allow_nan=False)


def test_sample_of_several_rows_gives_lists() -> None:
    frame = frame_of({"amount": [3, 4.5], "country": ["FR", "DE"]}, SIGNATURE)
    assert sample_of(frame) == {"amount": [3.0, 4.5], "country": ["FR", "DE"]}


def test_sample_of_keeps_nulls_as_none() -> None:
    columns = [Column("amount", "double"), Column("tip", "double", required=False)]
    one = sample_of(frame_of({"amount": 1.0, "tip": None}, columns))
    many = sample_of(frame_of({"amount": [1.0, 2.0], "tip": [None, 0.5]}, columns))
    assert one == {"amount": 1.0, "tip": None}
    assert many == {"amount": [1.0, 2.0], "tip": [None, 0.5]}
    json.dumps([one, many], allow_nan=False)
