"""Drift per window and version from call records, and runs of drifted windows (issue 6)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from overlay_sdk.analytics.timeline import drift_timeline, output_value, window_of
from overlay_sdk.errors import ValidationError

START = pd.Timestamp("2026-11-25 00:00", tz="UTC")


def _calls(hours: int, shift_from: int, n: int = 300) -> pd.DataFrame:
    """``n`` calls an hour of fraud:1; from hour ``shift_from`` on, amount moves by 1 sigma."""
    rng = np.random.default_rng(7)
    rows = []
    for hour in range(hours):
        amounts = rng.normal(1.0 if hour >= shift_from else 0.0, 1.0, n)
        for i, amount in enumerate(amounts):
            rows.append({"time": START + pd.Timedelta(hours=hour, seconds=i),
                         "model": "fraud", "version": "1", "input.amount": amount,
                         "input.age": rng.normal(), "output": [int(amount > 0.5)]})
    return pd.DataFrame(rows)


REFERENCE = pd.DataFrame({"amount": np.random.default_rng(1).normal(size=2000),
                          "age": np.random.default_rng(2).normal(size=2000)})


def test_one_report_per_window_and_version() -> None:
    timeline = drift_timeline(_calls(5, shift_from=2), lambda key: REFERENCE, window="1h",
                              alpha=0.01)  # 1 sigma is found at any level; chance is not
    frame = timeline.frame
    assert frame["window"].nunique() == 5
    amount = frame[frame["feature"] == "amount"].set_index("window")["drifted"]
    assert list(amount) == [False, False, True, True, True]
    assert not frame[frame["feature"] == "age"]["drifted"].any()
    # the registered reference has no output: said, not tested
    output = frame[frame["feature"] == "output"]
    assert output["message"].str.contains("the reference has no model outputs").all()
    assert "5 windows of 1h" in repr(timeline)
    assert isinstance(timeline, pd.DataFrame) and len(timeline) == len(frame)


def test_runs_of_drifted_windows() -> None:
    timeline = drift_timeline(_calls(6, shift_from=3), lambda key: REFERENCE, window="1h",
                              alpha=0.01)
    runs = timeline.streaks(3)
    assert list(runs["feature"]) == ["amount"] and runs["windows"].iloc[0] == 3
    assert runs["first_window"].iloc[0] == START + pd.Timedelta(hours=3)
    assert timeline.streaks(4).empty
    with pytest.raises(ValidationError, match="consecutive"):
        timeline.streaks(0)


def test_a_gap_ends_a_run_and_starts_another() -> None:
    calls = _calls(6, shift_from=0)  # drifted every hour; hours 2-4 without calls
    calls = calls[~calls["time"].between(START + pd.Timedelta(hours=2),
                                         START + pd.Timedelta(hours=5))]
    timeline = drift_timeline(calls, lambda key: REFERENCE, alpha=0.01)
    runs = timeline.streaks(1)
    amount = runs[runs["feature"] == "amount"]
    assert list(amount["windows"]) == [2, 1]
    assert list(amount["first_window"]) == [START, START + pd.Timedelta(hours=5)]
    assert list(timeline.streaks(2)["windows"]) == [2]


def test_a_version_without_reference_says_so() -> None:
    frame = drift_timeline(_calls(1, shift_from=5), lambda key: None).frame
    assert frame["message"].str.contains("no reference for fraud:1").all()
    assert frame["p_value"].isna().all()


def test_outputs_are_compared_when_the_reference_has_them() -> None:
    reference = REFERENCE.assign(output=(REFERENCE["amount"] > 0.5).astype(int))
    frame = drift_timeline(_calls(3, shift_from=1), lambda key: reference, alpha=0.01).frame
    output = frame[frame["feature"] == "output"].set_index("window")
    assert list(output["drifted"]) == [False, True, True]


def test_output_values() -> None:
    assert output_value([0.7]) == 0.7
    assert output_value({"content": "hi", "finish_reason": "stop"}) == "hi"
    assert output_value([1, 2]) == "[1, 2]"
    assert output_value({"b": 1, "a": 2}) == {"b": 1, "a": 2}  # tested as output.<name>


def test_outputs_of_named_values_are_tested_each() -> None:
    calls = _calls(3, shift_from=1)
    calls["output"] = [{"score": a, "label": int(a > 0.5)} for a in calls["input.amount"]]
    reference = REFERENCE.assign(**{"output.score": REFERENCE["amount"],
                                    "output.label": (REFERENCE["amount"] > 0.5).astype(int)})
    frame = drift_timeline(calls, lambda key: reference, alpha=0.01).frame
    score = frame[frame["feature"] == "output.score"].set_index("window")
    label = frame[frame["feature"] == "output.label"].set_index("window")
    assert list(score["drifted"]) == [False, True, True] and set(score["test"]) == {"ks"}
    # integer class labels are categories: chi-square
    assert list(label["drifted"]) == [False, True, True] and set(label["test"]) == {"chi2"}


@pytest.mark.parametrize("window", ["soon", "-1h", ""])
def test_bad_windows_name_the_field(window: str) -> None:
    with pytest.raises(ValidationError, match="window"):
        window_of(window)


def test_no_calls_no_windows() -> None:
    empty = pd.DataFrame(columns=["time", "model", "version", "input.amount", "output"])
    empty["time"] = pd.to_datetime(empty["time"], utc=True)
    timeline = drift_timeline(empty, lambda key: REFERENCE)
    assert timeline.frame.empty and timeline.streaks(1).empty
    with pytest.raises(ValidationError, match="no windows"):
        timeline.plot()


def test_heatmap() -> None:
    figure = drift_timeline(_calls(3, shift_from=1), lambda key: REFERENCE).plot()
    assert figure.data[0].type == "heatmap" and "fraud:1" in figure.layout.title.text


def test_calls_with_several_records_give_one_row_each() -> None:
    rng = np.random.default_rng(4)
    rows = []
    for i in range(40):  # calls of 5 records each: inputs and outputs kept as lists
        amounts = rng.normal(2.0, 1.0, 5)
        rows.append({"time": START + pd.Timedelta(seconds=i), "model": "fraud", "version": "1",
                     "input.amount": list(amounts), "input.age": list(rng.normal(size=5)),
                     "output": [int(a > 0.5) for a in amounts]})
    frame = drift_timeline(pd.DataFrame(rows), lambda key: REFERENCE).frame.set_index("feature")
    assert frame.loc["amount", "rows_current"] == 200 and frame.loc["amount", "drifted"]
    assert frame.loc["age", "rows_current"] == 200 and frame.loc["age", "test"] == "ks"


def test_settings_survive_concat_of_timelines_made_alike() -> None:
    day = drift_timeline(_calls(6, shift_from=3), lambda key: REFERENCE, window="1h",
                         alpha=0.01)
    halves = pd.concat([day.iloc[: len(day) // 2], day.iloc[len(day) // 2:]])
    assert halves.window_length == "1h"  # what "consecutive" means is kept
    assert list(halves.streaks(3)["windows"]) == [3]
    assert "window" in halves.columns and halves.window.equals(halves["window"])
    mixed = pd.concat([day, drift_timeline(_calls(1, shift_from=5), lambda key: REFERENCE,
                                           window="1D")])
    with pytest.raises(ValidationError, match="lost its drift settings"):
        mixed.streaks(1)
