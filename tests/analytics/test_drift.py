"""drift_report (issue 6): right tests per kind, honest messages, error rates and power."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from overlay_sdk.analytics.drift import REPORT_COLUMNS, drift_report, feature_kind
from overlay_sdk.errors import ValidationError


def _frame(seed: int, n: int, features: int, shift: float = 0.0, shifted: int = 0
           ) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = rng.normal(size=(n, features))
    data[:, :shifted] += shift
    return pd.DataFrame(data, columns=[f"x{i}" for i in range(features)])


def test_a_report_has_a_row_per_feature_with_every_column() -> None:
    ref, cur = _frame(1, 500, 3), _frame(2, 400, 3, shift=1.0, shifted=1)
    report = drift_report(ref, cur)
    assert list(report.frame.columns) == list(REPORT_COLUMNS)
    assert list(report.frame["feature"]) == ["x0", "x1", "x2"]
    assert report.drifted_features == ["x0"]
    row = report.frame.iloc[0]
    expected = stats.ks_2samp(ref["x0"], cur["x0"])
    assert row["statistic"] == pytest.approx(expected.statistic, abs=1e-12)
    assert row["p_value"] == pytest.approx(expected.pvalue, abs=1e-12)
    assert row["wasserstein"] == pytest.approx(stats.wasserstein_distance(ref["x0"], cur["x0"]))
    assert (row["rows_reference"], row["rows_current"]) == (500, 400)
    assert "1 drifted" in repr(report) and "x0" in report._repr_html_()
    assert isinstance(report, pd.DataFrame) and report["drifted"].sum() == 1


def test_missing_values_are_counted_and_left_out_of_the_test() -> None:
    ref, cur = _frame(3, 300, 1), _frame(4, 300, 1)
    cur.loc[:49, "x0"] = np.nan
    row = drift_report(ref, cur).frame.iloc[0]
    assert (row["missing_reference"], row["missing_current"]) == (0, 50)
    assert row["rows_current"] == 250
    expected = stats.ks_2samp(ref["x0"], cur["x0"].dropna())
    assert row["p_value"] == pytest.approx(expected.pvalue, abs=1e-12)


@pytest.mark.parametrize(("ref", "cur", "message"), [
    (pd.DataFrame({"a": [1.0, 2.0]}), pd.DataFrame({"a": pd.Series([], dtype=float)}),
     "no values in current"),
    (pd.DataFrame({"a": [1.0, 2.0]}), pd.DataFrame({"a": [np.nan, np.nan]}),
     "no values in current (2 missing)"),
    (pd.DataFrame({"a": ["x", "x"]}), pd.DataFrame({"a": ["x", "x", "x"]}),
     "a single category on both sides"),
    (pd.DataFrame({"a": [1.0, 2.0], "b": [1, 2]}), pd.DataFrame({"a": [1.0, 3.0]}),
     "only in reference"),
    (pd.DataFrame({"a": [1.0]}), pd.DataFrame({"a": [1.0], "c": ["new"]}), "only in current"),
])
def test_what_cannot_be_tested_says_why_and_has_no_p_value(ref: pd.DataFrame,
                                                           cur: pd.DataFrame,
                                                           message: str) -> None:
    frame = drift_report(ref, cur).frame
    row = frame[frame["message"].str.contains(message, regex=False)]
    assert len(row) == 1, frame
    assert np.isnan(row["p_value"].iloc[0]) and not row["drifted"].iloc[0]


def test_constant_columns() -> None:
    same = drift_report(pd.DataFrame({"a": [5.0] * 30}), pd.DataFrame({"a": [5.0] * 40}))
    row = same.frame.iloc[0]
    assert row["message"] == "constant on both sides" and row["p_value"] == 1.0
    assert not row["drifted"]
    moved = drift_report(pd.DataFrame({"a": [5.0] * 30}), pd.DataFrame({"a": [6.0] * 40}))
    row = moved.frame.iloc[0]
    assert row["drifted"] and "5 then 6" in row["message"]


def test_categories_and_booleans_get_chi_square() -> None:
    ref = pd.DataFrame({"plan": ["basic"] * 60 + ["pro"] * 40, "vip": [True] * 10 + [False] * 90})
    cur = pd.DataFrame({"plan": ["basic"] * 20 + ["pro"] * 80, "vip": [True] * 12 + [False] * 88})
    frame = drift_report(ref, cur).frame.set_index("feature")
    assert frame.loc["plan", "test"] == "chi2" and frame.loc["plan", "drifted"]
    assert frame.loc["vip", "test"] == "chi2" and not frame.loc["vip", "drifted"]
    assert frame.loc["plan", "js"] > 0


def test_text_outputs_are_compared_by_length_and_tokens() -> None:
    rng = np.random.default_rng(5)
    ref = pd.DataFrame({"answer": [" ".join(["word"] * int(k)) + f" {i}"
                                   for i, k in enumerate(rng.integers(5, 10, 300))]})
    cur = pd.DataFrame({"answer": [" ".join(["word"] * int(k)) + f" {i}"
                                   for i, k in enumerate(rng.integers(20, 30, 300))]})
    assert feature_kind(ref["answer"]) == "text"
    frame = drift_report(ref, cur).frame.set_index("feature")
    assert list(frame.index) == ["answer.length", "answer.tokens"]
    assert frame["drifted"].all() and set(frame["kind"]) == {"text"}


def test_tests_can_be_chosen_per_column() -> None:
    ref = pd.DataFrame({"code": [1, 2, 3] * 50})
    cur = pd.DataFrame({"code": [1, 2, 3, 3] * 40})
    frame = drift_report(ref, cur, tests={"code": "chi2"}).frame
    assert frame["test"].iloc[0] == "chi2"
    with pytest.raises(ValidationError, match=r"tests\.code"):
        drift_report(ref, cur, tests={"code": "anova"})


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"alpha": 1.5}, "alpha"), ({"correction": "sidak"}, "correction"),
])
def test_bad_settings_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        drift_report(_frame(1, 10, 1), _frame(2, 10, 1), **kwargs)  # type: ignore[arg-type]
    assert list(err.value.paths) == [field]


def test_duplicate_columns_and_tests_of_unknown_columns_are_refused() -> None:
    with pytest.raises(ValidationError) as err:
        drift_report(pd.DataFrame([[1.0, 2.0]], columns=["a", "a"]), _frame(2, 10, 1))
    assert list(err.value.paths) == ["reference.columns"] and "'a'" in str(err.value)
    with pytest.raises(ValidationError) as err:
        drift_report(_frame(1, 10, 1), _frame(2, 10, 1), tests={"nope": "ks"})
    assert list(err.value.paths) == ["tests.nope"]


def test_numbers_on_one_side_and_text_on_the_other_are_said_not_tested() -> None:
    row = drift_report(pd.DataFrame({"x": np.arange(60.0)}),
                       pd.DataFrame({"x": ["red", "green", "blue"]})).frame.iloc[0]
    assert row["message"].startswith("reference holds numbers and current holds text")
    assert np.isnan(row["p_value"]) and not row["drifted"]
    assert row["rows_reference"] == 60 and row["missing_reference"] == 0


def test_values_that_are_not_text_are_said_not_counted_missing() -> None:
    ref = pd.DataFrame({"answer": [f"answer number {i}" for i in range(100)]})
    cur = pd.DataFrame({"answer": [*[f"answer number {i}" for i in range(95)], *range(3),
                                   None, None]})
    rows = drift_report(ref, cur, tests={"answer": "text"}).frame
    assert list(rows["missing_current"]) == [2, 2] and list(rows["rows_current"]) == [95, 95]
    assert rows["message"].str.contains("3 values in current are not text").all()


def test_complex_numbers_are_said_not_tested() -> None:
    frame = pd.DataFrame({"z": np.arange(5) + 1j})
    row = drift_report(frame, frame).frame.iloc[0]
    assert "complex numbers cannot be tested" in row["message"] and np.isnan(row["p_value"])


def test_integer_labels_get_chi_square_even_with_a_missing_value() -> None:
    ref = pd.DataFrame({"label": [0, 1] * 500, "count": np.arange(1000)})
    cur = pd.DataFrame({"label": [0.0, 1.0, np.nan] * 300, "count": np.arange(900.0)})
    frame = drift_report(ref, cur, alpha=np.float32(0.05)).frame.set_index("feature")
    assert frame.loc["label", "test"] == "chi2" and frame.loc["label", "missing_current"] == 300
    assert frame.loc["count", "test"] == "ks"  # many values: a number, not a label


def test_a_report_without_columns_says_so() -> None:
    assert drift_report(pd.DataFrame(), pd.DataFrame()).summary() == (
        "DriftReport: no columns to compare")


def test_a_list_is_not_a_frame() -> None:
    with pytest.raises(ValidationError, match="reference"):
        drift_report([1, 2], _frame(2, 10, 1))  # type: ignore[arg-type]


def test_false_alarms_stay_within_alpha_across_1000_null_reports() -> None:
    """1,000 reports of 20 features with no drift: the share of reports that call any
    feature drifted (after Benjamini-Hochberg) stays <= alpha + 0.02."""
    alarms = 0
    rng = np.random.default_rng(2026)
    for _ in range(1000):
        ref = pd.DataFrame(rng.normal(size=(60, 20)))
        cur = pd.DataFrame(rng.normal(size=(60, 20)))
        alarms += bool(drift_report(ref, cur, threads=1).drifted_features)
    assert alarms / 1000 <= 0.05 + 0.02, alarms


@pytest.mark.parametrize("rows", [10_000, 10_001])  # scipy's exact path; our large-n path
def test_a_tenth_of_a_sigma_is_found_at_ten_thousand_rows(rows: int) -> None:
    found = 0
    for seed in range(20):
        ref = _frame(seed, rows, 20)
        cur = _frame(seed + 1000, rows, 20, shift=0.1, shifted=1)
        found += "x0" in drift_report(ref, cur).drifted_features
    assert found / 20 >= 0.9, found


def test_false_alarms_stay_within_alpha_on_the_large_sample_path() -> None:
    """The same bound past 10,000 rows, where the statistic and p-value are computed here
    rather than by scipy's exact path (150 reports of 20 features)."""
    rng = np.random.default_rng(2027)
    alarms = sum(bool(drift_report(pd.DataFrame(rng.normal(size=(10_050, 20))),
                                   pd.DataFrame(rng.normal(size=(10_020, 20)))).drifted_features)
                 for _ in range(150))
    assert alarms / 150 <= 0.05 + 0.04, alarms  # (150 runs: a wider margin for chance)


def test_plots() -> None:
    ref = pd.DataFrame({"x": np.arange(100.0), "plan": ["a", "b"] * 50})
    cur = pd.DataFrame({"x": np.arange(100.0) + 30, "plan": ["a"] * 70 + ["b"] * 30})
    report = drift_report(ref, cur)
    figures = report.plot()
    assert len(figures) == 3
    assert figures[0].layout.yaxis.type == "log"
    assert {t.name for t in figures[1].data} == {"reference", "current"}
    with pytest.raises(ValidationError, match="features"):
        report.plot(["nope"])


def test_numbers_get_chi_square_on_psi_bins_categories_do_not() -> None:
    from overlay_sdk.analytics.stats import binned_tests

    ref = pd.DataFrame({"x": np.random.default_rng(8).normal(size=3000), "plan": ["a"] * 3000})
    cur = pd.DataFrame({"x": np.random.default_rng(9).normal(0.3, 1, 2000),
                        "plan": ["a", "b"] * 1000})
    frame = drift_report(ref, cur).frame.set_index("feature")
    expected = binned_tests(np.sort(ref["x"].to_numpy()), np.sort(cur["x"].to_numpy()))
    assert frame.loc["x", "chi2_bins_p"] == expected["chi2_p"] < 1e-6
    assert frame.loc["x", "psi"] == expected["psi"]
    assert np.isnan(frame.loc["plan", "chi2_bins_p"])


def test_missing_and_infinite_values_at_scale() -> None:
    """Past 10,000 rows (the merged path): NaN is counted and left out, infinities are
    values like any other, as in scipy on the non-missing values."""
    rng = np.random.default_rng(10)
    ref, cur = rng.normal(size=30_000), rng.normal(0.02, 1, 25_000)
    ref[::97], cur[::89] = np.nan, np.nan
    ref[5::1000], cur[7::800] = np.inf, -np.inf
    row = drift_report(pd.DataFrame({"x": ref}), pd.DataFrame({"x": cur})).frame.iloc[0]
    expected = stats.ks_2samp(ref[~np.isnan(ref)], cur[~np.isnan(cur)])
    assert row["statistic"] == expected.statistic
    assert row["p_value"] == pytest.approx(expected.pvalue, abs=1e-12)
    assert (row["missing_reference"], row["missing_current"]) == (
        int(np.isnan(ref).sum()), int(np.isnan(cur).sum()))


def test_threads_change_nothing_but_time() -> None:
    ref, cur = _frame(11, 40_000, 6), _frame(12, 30_000, 6, shift=0.05, shifted=2)
    cur.iloc[::50, 3] = np.nan
    one = drift_report(ref, cur, threads=1).frame
    two = drift_report(ref, cur, threads=2).frame
    pd.testing.assert_frame_equal(one, two)
    for i in range(6):
        column = f"x{i}"
        expected = stats.ks_2samp(ref[column], cur[column].dropna())
        row = one.iloc[i]
        assert row["statistic"] == expected.statistic
        assert row["p_value"] == pytest.approx(expected.pvalue, abs=1e-12)
        assert row["wasserstein"] == pytest.approx(
            stats.wasserstein_distance(ref[column], cur[column].dropna()), rel=1e-12)


def test_mixed_types_between_sides_are_compared_as_numbers() -> None:
    same = np.random.default_rng(9).integers(0, 2, 400)
    frame = drift_report(pd.DataFrame({"flag": same.astype(bool)}),
                         pd.DataFrame({"flag": same.astype(float)})).frame
    assert frame["test"].iloc[0] == "ks" and not frame["drifted"].iloc[0]
    assert frame["p_value"].iloc[0] == 1.0  # the same values, written two ways


def test_dates_and_durations_are_numbers() -> None:
    days = pd.date_range("2026-01-01", periods=300, freq="1h", tz="UTC")
    later = days + pd.Timedelta(days=30)
    row = drift_report(pd.DataFrame({"when": days}), pd.DataFrame({"when": later})).frame.iloc[0]
    assert row["test"] == "ks" and row["drifted"] and row["missing_current"] == 0
    spans = pd.DataFrame({"took": pd.to_timedelta(np.arange(200), unit="s")})
    row = drift_report(spans, spans).frame.iloc[0]
    assert row["test"] == "ks" and row["p_value"] == 1.0


def test_values_that_are_not_numbers_are_said_and_left_out() -> None:
    ref = pd.DataFrame({"a": np.arange(100.0)})
    cur = pd.DataFrame({"a": [*map(str, range(90)), *(["n/a"] * 10)]})
    row = drift_report(ref, cur, tests={"a": "ks"}).frame.iloc[0]
    assert row["rows_current"] == 90 and row["missing_current"] == 10
    assert "10 values in current are not numbers" in row["message"]
    assert not row["drifted"]


def test_a_few_long_answers_are_text_not_categories() -> None:
    rng = np.random.default_rng(8)
    short = pd.DataFrame({"answer": [" ".join(["word"] * int(k)) + f" {i}"
                                     for i, k in enumerate(rng.integers(5, 10, 20))]})
    long = pd.DataFrame({"answer": [" ".join(["word"] * int(k)) + f" {i}"
                                    for i, k in enumerate(rng.integers(40, 60, 20))]})
    frame = drift_report(short, long).frame.set_index("feature")
    assert list(frame.index) == ["answer.length", "answer.tokens"] and frame["drifted"].all()


def test_a_progress_bar_counts_every_feature(capsys: pytest.CaptureFixture[str]) -> None:
    drift_report(_frame(1, 50, 3), _frame(2, 50, 3), progress=True, threads=1)
    assert "3/3" in capsys.readouterr().err
