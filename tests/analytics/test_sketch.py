"""KLL sketches of numeric features (issue 6): mergeable, serializable, KS within bound."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from overlay_sdk.analytics.sketch import DEFAULT_K, FeatureSketch, ks_sketches
from overlay_sdk.analytics.stats import ks_sorted

ERROR_BOUND = 0.005  # the statement for DEFAULT_K at 10M rows (benchmarks/bench_drift.py)


def _normal(seed: int, n: int, shift: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(shift, 1.0, n)


@pytest.mark.parametrize("shift", [0.0, 0.05])
def test_ks_statistic_error_stays_within_the_bound(shift: float) -> None:
    """At 1M rows per side (the benchmark measures 10M): the estimated statistic is within
    0.005 of the exact one, and the error bound the p-value allows for covers it."""
    a, b = _normal(1, 1_000_000), _normal(2, 1_000_000, shift)
    exact, _ = ks_sorted(np.sort(a), np.sort(b))
    result = ks_sketches(FeatureSketch.of(a), FeatureSketch.of(b))
    assert abs(result.statistic - exact) <= ERROR_BOUND
    assert abs(result.statistic - exact) <= result.error
    assert (result.rows_reference, result.rows_current) == (1_000_000, 1_000_000)
    if shift:
        assert result.p_value < 1e-10  # 0.05 sigma: true statistic ~0.02, well past the bound
    else:
        assert result.p_value > 0.05  # sketch error is not called drift


def test_a_small_stream_is_held_exactly() -> None:
    a, b = _normal(3, 700), _normal(4, 500, 0.5)  # under k = 1000 values: all kept
    exact, _ = ks_sorted(np.sort(a), np.sort(b))
    result = ks_sketches(FeatureSketch.of(a), FeatureSketch.of(b))
    assert result.error == 0.0
    assert result.statistic == pytest.approx(exact, abs=1e-12)
    assert result.p_value < 1e-6


def test_updates_count_missing_values_and_take_series() -> None:
    sketch = FeatureSketch(k=200)
    sketch.update(np.array([1.0, np.nan, 3.0]))
    sketch.update(pd.Series([2.0, None, 4.0], dtype="Float64"))
    sketch.update([5, 6])
    assert (sketch.n, sketch.missing, sketch.k) == (6, 2, 200)
    assert sketch.quantiles([0.0, 1.0]).tolist() == [1.0, 6.0]
    items, ranks = sketch.sorted_view()
    assert items.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0] and ranks[-1] == 1.0


def test_merged_windows_match_one_sketch_of_the_whole_stream() -> None:
    values = _normal(5, 400_000)
    windows = [FeatureSketch.of(chunk) for chunk in np.array_split(values, 8)]
    merged = windows[0]
    for window in windows[1:]:
        merged.merge(window)
    assert merged.n == len(values)
    exact, _ = ks_sorted(np.sort(values), np.sort(_normal(6, 400_000)))
    whole = ks_sketches(merged, FeatureSketch.of(_normal(6, 400_000)))
    assert abs(whole.statistic - exact) <= ERROR_BOUND
    np.testing.assert_allclose(merged.quantiles([0.1, 0.5, 0.9]),
                               np.quantile(values, [0.1, 0.5, 0.9]), atol=0.02)


def test_bytes_round_trip() -> None:
    sketch = FeatureSketch.of(np.append(_normal(7, 300_000), [np.nan] * 3))
    data = sketch.to_bytes()
    assert len(data) < 30_000  # bounded: ~24 KB at k = 1000 whatever the stream's length
    back = FeatureSketch.from_bytes(data)
    assert (back.n, back.missing, back.k) == (sketch.n, 3, DEFAULT_K)
    for got, expected in zip(back.sorted_view(), sketch.sorted_view(), strict=True):
        np.testing.assert_array_equal(got, expected)
    with pytest.raises(ValueError, match="not a FeatureSketch"):
        FeatureSketch.from_bytes(b"nonsense-bytes-here")


def test_what_cannot_be_compared_says_so() -> None:
    with pytest.raises(ValueError, match="reference sketch holds no values"):
        ks_sketches(FeatureSketch(), FeatureSketch.of([1.0, 2.0]))
    with pytest.raises(ValueError, match="k: give an integer"):
        FeatureSketch(k=3)
    with pytest.raises(TypeError, match="merge a FeatureSketch"):
        FeatureSketch().merge(object())  # type: ignore[arg-type]
