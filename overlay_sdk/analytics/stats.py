"""Two-sample statistics for drift, on numpy arrays. Pure.

- :func:`ks_sorted`: the two-sample Kolmogorov-Smirnov statistic and two-sided p-value of
  ``scipy.stats.ks_2samp`` (``method="auto"``) from sorted samples. Small samples (both
  <= 10,000, where scipy computes the exact p-value) go to scipy itself; larger ones get the
  statistic from one merge of the two sorted samples (a stable ``argsort`` of the two runs,
  ~2x faster than scipy's two ``searchsorted``): the same counts divided the same way as
  scipy, so the same float. The p-value is scipy's asymptotic ``kstwo.sf(d, round(m*n/(m+n)))``
  (:func:`ks_pvalue`). Where that calls ``scipy.special.smirnov(n, d)`` (n > 140 and
  2.2 <= n*d^2 < 370, i.e. p below ~0.025) scipy sums that exact series term by term while
  holding the GIL: ~0.9 us per unit of n, 0.4 s at n = 500,000 (1M x 1M rows), blocking
  the other columns' threads. For 10,000 <= n <= 10^6 the same series is summed here with
  numpy (each term a binomial probability computed the way Loader's ``dbinom`` does it;
  ~6x faster, mostly without the GIL), within 3e-15 of scipy's value (measured over n and
  d; tests check it). Strongly drifted columns skip even that: when Kolmogorov's limit
  ``kolmogorov(sqrt(en)*d)`` (within 4 % of the p-value, measured) is under 5e-13, the limit
  is returned: within 1e-12 of scipy's p-value, and the same decision.
- :func:`wasserstein_sorted`: the 1-Wasserstein distance of the empirical distributions
  (``scipy.stats.wasserstein_distance``'s value to ~1e-15), in O(n1 + n2) from sorted
  samples, as the integral of |Q1(u) - Q2(u)| over the merged quantile breakpoints.
- :func:`psi`: the population stability index on reference-quantile bins, and
  :func:`binned_tests`: PSI plus chi-square on those same bins' counts (for numbers);
  :func:`category_tests`: chi-square on the contingency table (scipy), PSI and
  Jensen-Shannon distance for categories.
- :func:`adjust`: p-values corrected across features (Benjamini-Hochberg, Bonferroni,
  Holm).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np
from scipy import special, stats

__all__ = ["CORRECTIONS", "EXACT_MAX_N", "adjust", "binned_tests", "category_count_tests",
           "category_tests", "ks_pvalue", "ks_sorted", "psi", "quantiles_sorted",
           "wasserstein_sorted"]

EXACT_MAX_N = 10_000  # scipy's MAX_AUTO_N: up to this size "auto" computes the exact p-value
# scipy's own ks_2samp without its array-handling wrapper (~0.4 ms a call, 5x the test on
# small samples); the same computation, on the 1-d NaN-free arrays given here
_KS_2SAMP = getattr(stats.ks_2samp, "__wrapped__", stats.ks_2samp)
_TINY_P = 5e-13
_CHUNK = 1 << 16  # pooled positions handled at once: temporaries stay in cache
_EXACT_KEYS_BELOW = 2.0**49  # n1*n2 up to which the KS extremes are found on integers
_SMIRNOV_SUM = (10_000, 1_000_000)  # n where the series is summed here (scipy: above, a formula)
PSI_BINS = 10
PSI_EPS = 1e-4  # share given to an empty bin (PSI has no value for 0 shares)
CORRECTIONS = ("fdr_bh", "bonferroni", "holm", "none")


def quantiles_sorted(a: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``np.quantile(a, q)`` (its default linear method, the same floats) for a sorted,
    non-empty, NaN-free ``a``: read off the order statistics, without numpy's partition
    of the whole array."""
    n = len(a)
    virtual = (n - 1) * np.asarray(q, dtype=float)
    previous = np.floor(virtual)
    above = virtual >= n - 1
    previous[above] = -1  # as numpy: the last value, and its gamma
    lo_index = previous.astype(np.intp)
    hi_index = np.where(above, -1, lo_index + 1)
    gamma = virtual - previous
    lo, hi = a[lo_index], a[hi_index]
    with np.errstate(invalid="ignore"):  # infinite values: NaN where numpy gives NaN
        diff = hi - lo
        out: np.ndarray = lo + diff * gamma
        upper = gamma >= 0.5
        out[upper] = (hi - diff * (1 - gamma))[upper]
    return out


def _ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """scipy's two-sided statistic: max |F1 - F2| over the pooled sample, both sides
    right-continuous, the counts divided by n1 and n2 as scipy does (so the same float).

    One merge (a stable ``argsort`` of the two sorted runs), then the pooled positions in
    cache-sized chunks: the count of ``a`` so far, F1 and F2 at the last of each run of
    equal values. While n1*n2 < 2^49 two positions whose n1*n2*(F1 - F2), an integer,
    differs are ordered the same way by the floats (they differ by >= 1/(n1*n2), the
    floats' error is < 4e-16): the integers find the extremes, the floats are computed
    only where they are reached."""
    n1, n2 = len(a), len(b)
    total = n1 + n2
    pooled = np.concatenate([a, b])
    order = np.argsort(pooled, kind="stable")  # timsort: one merge of the two runs
    exact_keys = float(n1) * n2 < _EXACT_KEYS_BELOW
    top: tuple[float, float] = (-math.inf, -math.inf)  # (key, F1 - F2) at the largest
    bottom: tuple[float, float] = (math.inf, math.inf)  # ... and at the smallest
    carry = 0
    for start in range(0, total, _CHUNK):
        stop = min(start + _CHUNK, total)
        positions = order[start:stop]
        in_a = np.cumsum(positions < n1, dtype=np.int64)  # a-values up to each position
        in_a += carry
        carry = int(in_a[-1])
        values = pooled[positions]
        ends = np.empty(len(values), dtype=bool)  # the last of a run of equal values
        np.not_equal(values[:-1], values[1:], out=ends[:-1])
        ends[-1] = stop == total or bool(values[-1] != pooled[order[stop]])
        if ends.all():
            at_a, seen = in_a, np.arange(start + 1, stop + 1, dtype=np.int64)
        else:
            last = np.flatnonzero(ends)
            if not len(last):  # one run of equal values goes on into the next chunk
                continue
            at_a, seen = in_a[last], last + (start + 1)
        if exact_keys:
            keys = at_a * total - seen * n1  # n1*n2*(F1 - F2)
            high, low = int(keys.max()), int(keys.min())
            if high >= top[0]:
                at = keys == high
                value = float((at_a[at] / n1 - (seen[at] - at_a[at]) / n2).max())
                top = (high, value if high > top[0] else max(top[1], value))
            if low <= bottom[0]:
                at = keys == low
                value = float((at_a[at] / n1 - (seen[at] - at_a[at]) / n2).min())
                bottom = (low, value if low < bottom[0] else min(bottom[1], value))
        else:
            diff = at_a / n1 - (seen - at_a) / n2
            top = (0, max(top[1], float(diff.max())))
            bottom = (0, min(bottom[1], float(diff.min())))
    return max(top[1], min(max(-bottom[1], 0.0), 1.0))


def ks_sorted(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(statistic, p-value) of the two-sided two-sample KS test on sorted, non-empty,
    NaN-free samples ``a`` and ``b``: ``scipy.stats.ks_2samp``'s (see the module
    docstring)."""
    n1, n2 = len(a), len(b)
    if max(n1, n2) <= EXACT_MAX_N:
        with warnings.catch_warnings():
            # scipy falls back to the asymptotic p-value when its exact one fails to
            # converge (ties in tiny samples) and warns: the value is still scipy's
            warnings.filterwarnings("ignore", "ks_2samp: Exact calculation unsuccessful",
                                    RuntimeWarning)
            result = _KS_2SAMP(a, b)
        return float(result.statistic), float(result.pvalue)
    d = _ks_statistic(a, b)
    return d, ks_pvalue(d, n1, n2)


def ks_pvalue(d: float, n1: int, n2: int) -> float:
    """The two-sided p-value scipy's ``ks_2samp`` gives statistic ``d`` on samples of sizes
    ``n1`` and ``n2`` in its asymptotic mode (sizes over 10,000): ``kstwo.sf(d, round(en))``
    with ``en = n1*n2/(n1+n2)``, computed faster where that is slow (module docstring)."""
    m, n = sorted((float(n1), float(n2)), reverse=True)
    en = m * n / (m + n)
    limit = float(special.kolmogorov(math.sqrt(en) * d))
    if limit < _TINY_P:
        return limit
    size = int(np.round(en))
    # scipy's _kolmogn, survival side, takes 2 * smirnov(n, d) on exactly this range
    t = size * d
    if (_SMIRNOV_SUM[0] <= size <= _SMIRNOV_SUM[1] and 1.0 < t < size - 1 and d < 0.5
            and 2.2 <= t * d < 370.0):
        p = 2 * _smirnov_sf(size, d)
    else:
        p = float(stats.kstwo.sf(d, float(size)))
    return float(min(max(p, 0.0), 1.0))


_LN_2PI = math.log(2 * math.pi)
_STIRLERR_SMALL = np.array([0.0] + [math.lgamma(k + 1.0) - (k + 0.5) * math.log(k) + k
                                    - 0.5 * _LN_2PI for k in range(1, 16)])


def _stirlerr(k: np.ndarray) -> np.ndarray:
    """log(k!) - log(sqrt(2 pi k) (k/e)^k) for integers k >= 1 (Loader's, from its
    asymptotic series past 15)."""
    out = np.empty(len(k))
    small = k <= 15
    out[small] = _STIRLERR_SMALL[k[small].astype(np.intp)]
    big = k[~small]
    nn = big * big
    out[~small] = (1 / 12 - (1 / 360 - (1 / 1260 - (1 / 1680 - 1 / 1188 / nn) / nn) / nn)
                   / nn) / big
    return out


def _bd0(x: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """x log(x / mean) + mean - x without the cancellation when x is near mean (Loader)."""
    out: np.ndarray = x * np.log(x / mean) + mean - x
    near = np.abs(x - mean) < 0.1 * (x + mean)
    if near.any():
        xs, ms = x[near], mean[near]
        v = (xs - ms) / (xs + ms)
        s = (xs - ms) * v
        term = 2 * xs * v
        v2 = v * v
        for k in range(1, 12):  # |v| < 0.1: v^22 is below double precision
            term *= v2
            s += term / (2 * k + 1)
        out[near] = s
    return out


def _smirnov_sf(n: int, x: float) -> float:
    """``scipy.special.smirnov(n, x)``, P(D+_n >= x), by the Birnbaum-Tingey series that
    scipy sums, ``x * sum_j C(n,j) (x + j/n)^(j-1) (1 - x - j/n)^(n-j)`` over the j with
    ``1 - x - j/n > 0``, in numpy: term j is ``dbinom(j; n, q) / q`` with ``q = x + j/n``,
    computed as Loader's saddle-point form (relative error ~1e-14 per term)."""
    nx_exact = Fraction(x) * n
    last = n - math.floor(nx_exact) - 1  # the largest j with n - j - nx > 0
    nx = float(nx_exact)
    j = np.arange(1, last + 1, dtype=float)
    mean_in = j + nx  # n q
    mean_out = (n - j) - nx  # n (1 - q)
    log_c = (float(_stirlerr(np.array([float(n)]))[0]) - _stirlerr(j) - _stirlerr(n - j)
             - _bd0(j, mean_in) - _bd0(n - j, mean_out))
    log_f = _LN_2PI + np.log(j) + np.log1p(-j / n)
    terms = np.exp(log_c - 0.5 * log_f) * (n / mean_in)
    return float(x * terms.sum() + math.exp(n * math.log1p(-x)))


def wasserstein_sorted(a: np.ndarray, b: np.ndarray) -> float:
    """The 1-Wasserstein distance between the empirical distributions of sorted, non-empty
    samples: the integral over u in (0, 1] of |Q1(u) - Q2(u)| (for samples of one size, the
    mean distance between their order statistics).

    The quantile functions step at i/n1 and j/n2: on the integer scale u * n1 * n2 at
    i*n2 and j*n1. Merged (breakpoint j*n1 comes after ceil(j*n1/n2) - 1 of the interior
    i*n2; ties give empty segments), each segment has Q1 = a[i] and Q2 = b[j] with i and j
    the breakpoints of each sample passed so far: O(n1 + n2), no sort, no search."""
    n1, n2 = len(a), len(b)
    if n1 == n2:
        return float(np.mean(np.abs(a - b)))
    segments = n1 + n2 - 1
    j = np.arange(1, n2, dtype=np.int64)
    if float(n1) * n2 < 2.0**50:  # j*n1 exact in floats, the quotient rounded once: when
        # it is not an integer it is >= 1/n2 from one, far more than the rounding error
        before = np.ceil(j * float(n1) / n2).astype(np.int64)
    else:
        before = -((-j * n1) // n2)
    # per breakpoint in merged order (0, the interior ones, n1*n2): is it a j*n1?
    from_b = np.zeros(segments + 1, dtype=bool)
    from_b[j + before - 1] = True
    from_b[segments] = True  # n1*n2 = n2*n1
    total = 0.0
    passed_a = 0  # interior i*n2 breakpoints before the chunk
    for start in range(0, segments, _CHUNK):  # in cache-sized chunks, as the KS merge
        stop = min(start + _CHUNK, segments)
        at_b = from_b[start:stop + 1]  # the chunk's segment starts, and the next one
        at_a = ~at_b
        if start == 0:
            at_a[0] = False  # the origin
        i_at = np.cumsum(at_a, dtype=np.int64)  # index into a over each segment
        i_at += passed_a
        passed_a = int(i_at[-2])
        j_at = np.arange(start, stop + 1, dtype=np.int64) - i_at
        widths = np.diff(np.where(at_b, j_at * n1, i_at * n2))
        total += float(np.sum(np.abs(a[i_at[:-1]] - b[j_at[:-1]]) * widths))
    return total / (float(n1) * float(n2))


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    shares = counts / total if total else np.zeros(len(counts))
    return np.maximum(shares, PSI_EPS)


def _psi(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    p, q = _shares(ref_counts), _shares(cur_counts)
    return float(np.sum((q - p) * np.log(q / p)))


def _bin_counts(a: np.ndarray, b: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    edges = np.unique(quantiles_sorted(a, np.linspace(0, 1, bins + 1)[1:-1]))
    ref_counts = np.diff(np.searchsorted(a, edges, side="right"), prepend=0, append=len(a))
    cur_counts = np.diff(np.searchsorted(b, edges, side="right"), prepend=0, append=len(b))
    return ref_counts.astype(float), cur_counts.astype(float)


def psi(a: np.ndarray, b: np.ndarray, bins: int = PSI_BINS) -> float:
    """Population stability index of sorted sample ``b`` against reference ``a``, on
    ``bins`` bins cut at the reference's quantiles (fewer when values repeat; empty bins
    count as a share of 1e-4)."""
    return _psi(*_bin_counts(a, b, bins))


def binned_tests(a: np.ndarray, b: np.ndarray, bins: int = PSI_BINS) -> dict[str, float]:
    """On the bins of :func:`psi` (cut at reference ``a``'s quantiles; both samples sorted,
    non-empty): ``psi``, and the chi-square test of the 2 x bins table of counts
    (``scipy.stats.chi2_contingency``, bins empty on both sides left out): ``chi2`` and
    ``chi2_p``, NaN when fewer than two bins hold values (nothing to test)."""
    ref_counts, cur_counts = _bin_counts(a, b, bins)
    out = {"psi": _psi(ref_counts, cur_counts), "chi2": math.nan, "chi2_p": math.nan}
    used = (ref_counts + cur_counts) > 0
    if used.sum() >= 2:
        out["chi2"], out["chi2_p"] = _chi2_two_rows(ref_counts[used], cur_counts[used])
    return out


def _chi2_two_rows(first: np.ndarray, second: np.ndarray) -> tuple[float, float]:
    """``scipy.stats.chi2_contingency`` on the 2 x k table of counts (columns not empty),
    Yates' correction included when k = 2, without its ~1 ms of wrapping."""
    observed = np.vstack([first, second])
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / observed.sum()
    dof = observed.shape[1] - 1
    if dof == 1:
        diff = expected - observed
        observed = observed + np.minimum(0.5, np.abs(diff)) * np.sign(diff)
    statistic = float(np.sum((observed - expected) ** 2 / expected))
    return statistic, float(special.chdtrc(dof, statistic))


def category_tests(ref: Sequence[Any], cur: Sequence[Any]) -> dict[str, Any]:
    """Chi-square on the 2 x k contingency table (``scipy.stats.chi2_contingency``), PSI and
    the Jensen-Shannon distance (base 2) for two samples of categories. With fewer than
    two categories in all there is nothing to test: statistic and p-value are NaN."""
    ref_values, ref_counts = np.unique(np.asarray(ref, dtype=object).astype(str),
                                       return_counts=True)
    cur_values, cur_counts = np.unique(np.asarray(cur, dtype=object).astype(str),
                                       return_counts=True)
    return category_count_tests(dict(zip(ref_values, ref_counts, strict=True)),
                                dict(zip(cur_values, cur_counts, strict=True)))


def category_count_tests(ref: Mapping[str, int], cur: Mapping[str, int]) -> dict[str, Any]:
    """:func:`category_tests` from the count of each category on each side (what a stream
    too long to hold keeps of a categorical feature)."""
    categories = sorted(set(ref) | set(cur))
    table = np.array([[ref.get(c, 0) for c in categories],
                      [cur.get(c, 0) for c in categories]], dtype=float).reshape(2, -1)
    out: dict[str, Any] = {"categories": len(categories)}
    if len(categories) < 2:
        out.update(statistic=math.nan, p_value=math.nan, psi=0.0, js=0.0)
        return out
    result = stats.chi2_contingency(table)
    p, q = table[0] / table[0].sum(), table[1] / table[1].sum()
    from scipy.spatial.distance import jensenshannon
    out.update(statistic=float(result.statistic), p_value=float(result.pvalue),
               psi=_psi(table[0], table[1]), js=float(jensenshannon(p, q, base=2)))
    return out


def adjust(p_values: Sequence[float], method: str = "fdr_bh") -> np.ndarray:
    """``p_values`` corrected for testing them together; NaN (no test) stays NaN and is
    not counted. ``fdr_bh``: Benjamini-Hochberg (scipy's ``false_discovery_control``);
    ``bonferroni``; ``holm``; ``none``."""
    if method not in CORRECTIONS:
        raise ValueError(f"correction {method!r}: give one of {', '.join(CORRECTIONS)}")
    values = np.asarray(p_values, dtype=float)
    out = np.full(values.shape, np.nan)
    tested = ~np.isnan(values)
    ps = values[tested]
    if not len(ps) or method == "none":
        out[tested] = ps
        return out
    if method == "fdr_bh":
        out[tested] = stats.false_discovery_control(ps, method="bh")
    elif method == "bonferroni":
        out[tested] = np.minimum(ps * len(ps), 1.0)
    else:
        order = np.argsort(ps)
        steps = ps[order] * (len(ps) - np.arange(len(ps)))
        held = np.minimum(np.maximum.accumulate(steps), 1.0)
        result = np.empty(len(ps))
        result[order] = held
        out[tested] = result
    return out
