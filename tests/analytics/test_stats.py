"""Drift statistics against scipy's own (issue 6)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from overlay_sdk.analytics.stats import (
    adjust,
    category_tests,
    ks_sorted,
    psi,
    wasserstein_sorted,
)


def _sample(seed: int, n: int, shift: float, decimals: int | None) -> np.ndarray:
    values = np.random.default_rng(seed).normal(shift, 1.0, n)
    return np.sort(np.round(values, decimals) if decimals is not None else values)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n1=st.integers(1, 60), n2=st.integers(1, 60),
       shift=st.sampled_from([0.0, 0.3, 2.0]), decimals=st.sampled_from([None, 0, 1]))
def test_ks_equals_scipy_on_small_samples(seed: int, n1: int, n2: int, shift: float,
                                          decimals: int | None) -> None:
    a, b = _sample(seed, n1, 0.0, decimals), _sample(seed + 1, n2, shift, decimals)
    expected = stats.ks_2samp(a, b)
    d, p = ks_sorted(a, b)
    assert d == pytest.approx(expected.statistic, abs=1e-12)
    assert p == pytest.approx(expected.pvalue, abs=1e-12)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n1=st.integers(10_001, 40_000),
       n2=st.integers(10, 40_000), shift=st.sampled_from([0.0, 0.01, 0.05, 0.2, 1.0]),
       decimals=st.sampled_from([None, 1, 2]))
def test_ks_equals_scipy_on_large_samples_with_ties(seed: int, n1: int, n2: int, shift: float,
                                                    decimals: int | None) -> None:
    a, b = _sample(seed, n1, 0.0, decimals), _sample(seed + 1, n2, shift, decimals)
    expected = stats.ks_2samp(a, b)
    d, p = ks_sorted(a, b)
    assert d == expected.statistic  # the same counts, divided the same way
    assert p == pytest.approx(expected.pvalue, abs=1e-12)


def test_ks_on_constant_samples() -> None:
    same = np.zeros(20_000)
    assert ks_sorted(same, same) == (0.0, 1.0)
    d, p = ks_sorted(same, np.ones(20_000))
    assert d == 1.0 and p == pytest.approx(0.0, abs=1e-12)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n1=st.integers(1, 3000), n2=st.integers(1, 3000),
       decimals=st.sampled_from([None, 0, 1]), same_size=st.booleans())
def test_wasserstein_equals_scipy(seed: int, n1: int, n2: int, decimals: int | None,
                                  same_size: bool) -> None:
    n2 = n1 if same_size else n2
    a, b = _sample(seed, n1, 0.0, decimals), _sample(seed + 1, n2, 0.5, decimals)
    assert wasserstein_sorted(a, b) == pytest.approx(stats.wasserstein_distance(a, b),
                                                     rel=1e-12, abs=1e-15)


def test_psi_is_zero_for_the_same_distribution_and_grows_with_a_shift() -> None:
    a = _sample(1, 50_000, 0.0, None)
    assert psi(a, a) == pytest.approx(0.0, abs=1e-12)
    small, large = psi(a, _sample(2, 50_000, 0.1, None)), psi(a, _sample(2, 50_000, 1.0, None))
    assert 0 < small < 0.05 < 0.25 < large  # the usual reading: < 0.1 stable, > 0.25 shifted


def test_psi_with_few_distinct_values() -> None:
    a = np.sort(np.array([0.0] * 900 + [1.0] * 100))
    b = np.sort(np.array([0.0] * 500 + [1.0] * 500))
    assert psi(a, b) > 0.25
    assert psi(np.zeros(10), np.zeros(10)) == pytest.approx(0.0)


def test_category_tests_match_scipy() -> None:
    ref = ["a"] * 50 + ["b"] * 30 + ["c"] * 20
    cur = ["a"] * 20 + ["b"] * 30 + ["c"] * 40 + ["d"] * 10
    out = category_tests(ref, cur)
    table = np.array([[50, 30, 20, 0], [20, 30, 40, 10]])
    expected = stats.chi2_contingency(table)
    assert out["statistic"] == pytest.approx(expected.statistic)
    assert out["p_value"] == pytest.approx(expected.pvalue)
    assert out["categories"] == 4 and 0 < out["js"] <= 1 and out["psi"] > 0


def test_a_single_category_has_nothing_to_test() -> None:
    out = category_tests(["x"] * 5, ["x"] * 7)
    assert np.isnan(out["p_value"]) and out["categories"] == 1


def test_adjustments() -> None:
    ps = [0.01, 0.04, 0.03, np.nan, 0.2]
    np.testing.assert_allclose(adjust(ps, "none"), ps)
    np.testing.assert_allclose(adjust(ps, "bonferroni"), [0.04, 0.16, 0.12, np.nan, 0.8])
    np.testing.assert_allclose(adjust(ps, "holm"), [0.04, 0.09, 0.09, np.nan, 0.2])
    bh = stats.false_discovery_control([0.01, 0.04, 0.03, 0.2])
    np.testing.assert_allclose(adjust(ps, "fdr_bh"), [bh[0], bh[1], bh[2], np.nan, bh[3]])
    with pytest.raises(ValueError, match="fdr_bh"):
        adjust(ps, "sidak")
