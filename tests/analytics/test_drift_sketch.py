"""Windows too big to hold: tested from sketches and counts, fed in chunks (issue 6)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from overlay_sdk.analytics.drift import drift_report
from overlay_sdk.analytics.drift_sketch import WindowDrift
from overlay_sdk.analytics.timeline import drift_timeline
from overlay_sdk.errors import ValidationError


def _answer(rng: np.random.Generator, words: int) -> str:
    """Free text: a model's answer of ``words`` words."""
    return " ".join(f"w{w}" for w in rng.integers(0, 5_000, size=words))


RNG = np.random.default_rng(5)
REFERENCE = pd.DataFrame({
    "amount": RNG.normal(size=20_000),
    "country": RNG.choice(["fr", "de", "it"], size=20_000, p=[0.5, 0.3, 0.2]),
    "output": [_answer(RNG, int(n)) for n in RNG.integers(3, 30, size=20_000)],
})


def _current(n: int, shift: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "amount": rng.normal(shift, 1.0, n),
        "country": rng.choice(["fr", "de", "it"], size=n, p=[0.5, 0.3, 0.2]),
        "output": [_answer(rng, int(k)) for k in rng.integers(3, 30, size=n)],
    })


def _fed(current: pd.DataFrame, exact_rows: int, chunks: int = 8) -> WindowDrift:
    window = WindowDrift(REFERENCE, exact_rows=exact_rows)
    for part in np.array_split(np.arange(len(current)), chunks):
        window.add(current.iloc[part])
    return window


def test_a_window_that_fits_gets_the_exact_report() -> None:
    current = _current(5_000, 0.1, seed=1)
    window = _fed(current, exact_rows=5_000)
    assert not window.sketched
    exact = drift_report(REFERENCE, current, progress=False).frame
    pd.testing.assert_frame_equal(window.report().frame, exact)


@pytest.mark.parametrize(("shift", "drifted"), [(0.0, False), (0.1, True)])
def test_a_window_past_the_limit_is_estimated_close_to_the_exact_report(
        shift: float, drifted: bool) -> None:
    current = _current(60_000, shift, seed=2)
    window = _fed(current, exact_rows=10_000)
    assert window.sketched and window.rows == 60_000
    estimated = window.report().frame.set_index("feature")
    exact = drift_report(REFERENCE, current, progress=False).frame.set_index("feature")
    assert list(estimated.index) == list(exact.index)  # the same rows, in the same order
    amount = estimated.loc["amount"]
    assert amount["test"] == "ks-sketch" and "estimated" in amount["message"]
    assert amount["statistic"] == pytest.approx(exact.loc["amount", "statistic"], abs=0.01)
    assert amount["wasserstein"] == pytest.approx(exact.loc["amount", "wasserstein"],
                                                  abs=0.02)
    assert amount["psi"] == pytest.approx(exact.loc["amount", "psi"], abs=0.01)
    assert amount["p_value"] >= exact.loc["amount", "p_value"]  # conservative
    assert bool(amount["drifted"]) is drifted
    assert amount["rows_current"] == 60_000 and amount["rows_reference"] == 20_000
    # categories are counted, not sketched: the very same test as the exact path
    for column in ("statistic", "p_value", "psi", "js"):
        assert estimated.loc["country", column] == pytest.approx(
            exact.loc["country", column], rel=1e-12)
    # text outputs by length and tokens, as in the exact path
    assert estimated.loc["output.tokens", "kind"] == "text"
    assert not estimated.loc[["output.length", "output.tokens"], "drifted"].any()


def test_missing_values_and_columns_absent_from_a_chunk_are_counted() -> None:
    current = _current(30_000, 0.0, seed=3)
    current.loc[:999, "amount"] = np.nan
    window = WindowDrift(REFERENCE, exact_rows=5_000)
    window.add(current.iloc[:20_000])
    window.add(current.iloc[20_000:].drop(columns=["country"]))
    rows = window.report().frame.set_index("feature")
    assert rows.loc["amount", "missing_current"] == 1_000
    assert rows.loc["amount", "rows_current"] == 29_000
    assert rows.loc["country", "missing_current"] == 10_000


def test_columns_on_one_side_and_empty_sides_are_said_not_tested() -> None:
    current = _current(20_000, 0.0, seed=4).assign(extra=1.0, amount=np.nan)
    rows = _fed(current, exact_rows=1_000).report().frame.set_index("feature")
    assert "only in current" in rows.loc["extra", "message"]
    assert "no values in current" in rows.loc["amount", "message"]
    assert np.isnan(rows.loc["amount", "p_value"])


def test_an_estimated_report_still_draws() -> None:
    report = _fed(_current(20_000, 0.3, seed=6), exact_rows=1_000).report()
    figures = report.plot()
    assert len(figures) == 1 + len(report.shapes)


def _calls(hours: int, per_hour: int, shift_from: int) -> pd.DataFrame:
    rng = np.random.default_rng(8)
    start = pd.Timestamp("2026-11-25", tz="UTC")
    frames = []
    for hour in range(hours):
        times = start + pd.Timedelta(hours=hour) + pd.to_timedelta(
            np.sort(rng.uniform(0, 3600, per_hour)), unit="s")
        frames.append(pd.DataFrame({
            "time": times, "model": "fraud", "version": "1",
            "input.amount": rng.normal(0.5 if hour >= shift_from else 0.0, 1.0, per_hour),
            "output": [[0.5]] * per_hour}))
    return pd.concat(frames, ignore_index=True)


def test_a_timeline_read_in_chunks_equals_the_one_read_whole() -> None:
    calls = _calls(4, 2_000, shift_from=2)
    reference = REFERENCE[["amount"]]
    whole = drift_timeline(calls, lambda key: reference).frame
    chunks = (calls.iloc[i:i + 700] for i in range(0, len(calls), 700))
    chunked = drift_timeline(chunks, lambda key: reference).frame
    pd.testing.assert_frame_equal(chunked, whole)
    assert list(whole[whole["feature"] == "amount"]["drifted"]) == [False, False, True, True]


def test_a_timeline_tests_big_windows_from_sketches() -> None:
    calls = _calls(3, 6_000, shift_from=1)
    chunks = (calls.iloc[i:i + 1_000] for i in range(0, len(calls), 1_000))
    timeline = drift_timeline(chunks, lambda key: REFERENCE[["amount"]], exact_rows=2_000)
    amount = timeline.frame[timeline.frame["feature"] == "amount"]
    assert set(amount["test"]) == {"ks-sketch"}
    assert list(amount["drifted"]) == [False, True, True]


def test_records_arriving_after_their_window_was_tested_are_said() -> None:
    calls = _calls(6, 500, shift_from=9)
    early, later = calls.iloc[:1500], calls.iloc[1500:]  # hours 0-2, then 3-5
    late = calls.iloc[:10].assign(time=calls["time"].iloc[0])
    frame = drift_timeline([early, later, late], lambda key: REFERENCE[["amount"]]).frame
    assert frame["window"].nunique() == 6
    first = frame[frame["window"] == frame["window"].min()]
    assert all("10 records written after this window was tested" in m
               for m in first["message"])


def test_exact_rows_must_be_a_positive_whole_number() -> None:
    with pytest.raises(ValidationError, match="exact_rows"):
        drift_timeline(_calls(1, 10, 0), lambda key: REFERENCE, exact_rows=0)
