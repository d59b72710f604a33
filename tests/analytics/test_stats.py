"""Drift statistics against scipy's own (issue 6)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import example, given, settings
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
@example(seed=0, n1=5, n2=5, shift=0.0, decimals=0)  # scipy's exact p-value gives up here
def test_ks_equals_scipy_on_small_samples(seed: int, n1: int, n2: int, shift: float,
                                          decimals: int | None) -> None:
    a, b = _sample(seed, n1, 0.0, decimals), _sample(seed + 1, n2, shift, decimals)
    with warnings.catch_warnings():  # scipy says when its exact p-value falls back
        warnings.filterwarnings("ignore", "ks_2samp: Exact", RuntimeWarning)
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


def _raw_ks(a: np.ndarray, b: np.ndarray) -> float:
    """scipy's statistic before its exact mode rounds it to the lattice (what the asymptotic
    mode, samples over 10,000, returns)."""
    pooled = np.concatenate([a, b])
    diff = (np.searchsorted(a, pooled, side="right") / len(a)
            - np.searchsorted(b, pooled, side="right") / len(b))
    return float(max(diff.max(), np.clip(-diff.min(), 0, 1)))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n1=st.integers(1, 400), n2=st.integers(1, 400),
       shift=st.sampled_from([0.0, 0.2, 3.0]), decimals=st.sampled_from([None, 0, 1]),
       chunk=st.sampled_from([1, 3, 64, 1 << 16]), integer_keys=st.booleans())
def test_the_merged_statistic_is_scipys_float_across_chunks_and_ties(
        seed: int, n1: int, n2: int, shift: float, decimals: int | None, chunk: int,
        integer_keys: bool) -> None:
    """The merge walks the pooled sample in chunks (runs of ties cross their borders) and
    finds the extremes on integers, or on floats past n1*n2 = 2^49: the same float."""
    from overlay_sdk.analytics import stats as module

    a, b = _sample(seed, n1, 0.0, decimals), _sample(seed + 1, n2, shift, decimals)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(module, "_CHUNK", chunk)
        patch.setattr(module, "_EXACT_KEYS_BELOW", 2.0**49 if integer_keys else 0.0)
        assert module._ks_statistic(a, b) == _raw_ks(a, b)


def test_ks_on_large_samples_with_few_distinct_values() -> None:
    rng = np.random.default_rng(7)
    a = np.sort(rng.integers(0, 5, 30_000).astype(float))
    b = np.sort(rng.integers(0, 6, 25_000).astype(float))
    expected = stats.ks_2samp(a, b)
    d, p = ks_sorted(a, b)
    assert d == expected.statistic and p == pytest.approx(expected.pvalue, abs=1e-12)


@pytest.mark.parametrize(("n", "n_d2"), [(10_000, 2.2), (10_000, 14.0), (23_456, 3.3),
                                         (31_000, 7.9), (40_000, 2.21), (40_000, 30.0),
                                         (40_000, 369.0)])
def test_the_smirnov_series_equals_scipys(n: int, n_d2: float) -> None:
    """Where scipy's kstwo.sf sums scipy.special.smirnov's series (slowly, holding the GIL),
    ks_pvalue sums it with numpy: within 1e-14 here (the requirement is 1e-12)."""
    from scipy.special import smirnov

    from overlay_sdk.analytics.stats import _smirnov_sf, ks_pvalue

    d = math.sqrt(n_d2 / n) * 1.0000001
    assert _smirnov_sf(n, d) == pytest.approx(smirnov(n, d), abs=1e-14)
    # two samples whose en rounds to n: the p-value scipy's ks_2samp would give
    assert ks_pvalue(d, 2 * n, 2 * n) == pytest.approx(stats.kstwo.sf(d, n), abs=1e-14)


@settings(max_examples=15, deadline=None)
@given(n1=st.integers(20_001, 60_000), n2=st.integers(20_001, 60_000),
       z=st.floats(1.45, 4.0))
def test_ks_pvalue_equals_scipys_asymptotic_p(n1: int, n2: int, z: float) -> None:
    from overlay_sdk.analytics.stats import ks_pvalue

    en = n1 * n2 / (n1 + n2)
    d = z / math.sqrt(en)
    assert ks_pvalue(d, n1, n2) == pytest.approx(stats.kstwo.sf(d, np.round(en)), abs=1e-12)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 500), q=st.lists(
    st.floats(0, 1), min_size=1, max_size=12), decimals=st.sampled_from([None, 0]),
    infinite=st.booleans())
def test_quantiles_of_sorted_samples_are_numpys(seed: int, n: int, q: list[float],
                                               decimals: int | None, infinite: bool) -> None:
    from overlay_sdk.analytics.stats import quantiles_sorted

    a = _sample(seed, n, 0.0, decimals)
    if infinite:
        a = np.sort(np.concatenate([a, [np.inf, -np.inf]]))
    probabilities = np.array([*q, 0.0, 1.0, 0.5])
    with np.errstate(invalid="ignore"):  # inf - inf, as in numpy's own
        expected = np.quantile(a, probabilities)
    np.testing.assert_array_equal(quantiles_sorted(a, probabilities), expected)


@pytest.mark.parametrize(("n1", "n2", "decimals"), [(200_000, 150_001, None),
                                                    (99_999, 300_000, 1), (1, 50_000, None),
                                                    (70_000, 2, 0)])
def test_wasserstein_of_large_unequal_samples_equals_scipy(n1: int, n2: int,
                                                           decimals: int | None) -> None:
    a, b = _sample(3, n1, 0.0, decimals), _sample(4, n2, 0.3, decimals)
    assert wasserstein_sorted(a, b) == pytest.approx(stats.wasserstein_distance(a, b),
                                                     rel=1e-12)


def test_chi_square_on_psi_bins_is_scipys_on_the_same_table() -> None:
    from overlay_sdk.analytics.stats import binned_tests

    a, b = _sample(5, 20_000, 0.0, 1), _sample(6, 15_000, 0.05, 1)
    out = binned_tests(a, b)
    edges = np.unique(np.quantile(a, np.linspace(0, 1, 11)[1:-1]))
    table = np.array([np.bincount(np.searchsorted(edges, x, side="left"),
                                  minlength=len(edges) + 1) for x in (a, b)])
    expected = stats.chi2_contingency(table[:, table.sum(axis=0) > 0])
    assert out["chi2"] == pytest.approx(expected.statistic, rel=1e-12)
    assert out["chi2_p"] == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
    assert out["psi"] == psi(a, b)
    two = binned_tests(np.sort(np.array([0.0] * 90 + [1.0] * 10)),
                       np.sort(np.array([0.0] * 50 + [1.0] * 50)))  # 2 bins: Yates
    expected = stats.chi2_contingency(np.array([[90, 10], [50, 50]]))
    assert two["chi2_p"] == pytest.approx(expected.pvalue, rel=1e-12)
    single = binned_tests(np.zeros(10), np.zeros(5))
    assert math.isnan(single["chi2_p"]) and single["psi"] == pytest.approx(0.0)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n1=st.integers(1, 300), n2=st.integers(1, 300),
       decimals=st.sampled_from([None, 0]), chunk=st.sampled_from([1, 2, 7, 1 << 16]))
def test_wasserstein_across_chunks_equals_scipy(seed: int, n1: int, n2: int,
                                                decimals: int | None, chunk: int) -> None:
    from overlay_sdk.analytics import stats as module

    a, b = _sample(seed, n1, 0.0, decimals), _sample(seed + 1, n2, 0.7, decimals)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(module, "_CHUNK", chunk)
        assert wasserstein_sorted(a, b) == pytest.approx(stats.wasserstein_distance(a, b),
                                                         rel=1e-12, abs=1e-15)
