"""Two-sample statistics for drift, on numpy arrays. Pure.

- :func:`ks_sorted`: the two-sample Kolmogorov-Smirnov statistic and two-sided p-value of
  ``scipy.stats.ks_2samp`` (``method="auto"``) from sorted samples. Small samples (both
  <= 10,000, where scipy computes the exact p-value) go to scipy itself; larger ones get the
  statistic from two ``searchsorted`` passes over the sorted samples (the same counts
  divided the same way as scipy, so the same float) and scipy's asymptotic p-value
  ``kstwo.sf(d, round(m*n/(m+n)))``. That call takes ~0.4 s when the p-value is below
  ~1e-10 (it is ~0.2 ms otherwise); when Kolmogorov's limit ``kolmogorov(sqrt(en)*d)``
  (within 4 % of it, measured) puts it under 5e-13, the limit is returned instead: the
  p-value is then within 1e-12 of scipy's, and the decision the same.
- :func:`wasserstein_sorted`: the 1-Wasserstein distance of the empirical distributions
  (``scipy.stats.wasserstein_distance``'s value, ~40x faster from sorted samples).
- :func:`psi`: the population stability index on reference-quantile bins;
  :func:`category_tests`: chi-square on the contingency table (scipy), PSI and
  Jensen-Shannon distance for categories.
- :func:`adjust`: p-values corrected across features (Benjamini-Hochberg, Bonferroni,
  Holm).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats
from scipy.special import kolmogorov

__all__ = ["CORRECTIONS", "EXACT_MAX_N", "adjust", "category_tests", "ks_sorted", "psi",
           "wasserstein_sorted"]

EXACT_MAX_N = 10_000  # scipy's MAX_AUTO_N: up to this size "auto" computes the exact p-value
# scipy's own ks_2samp without its array-handling wrapper (~0.4 ms a call, 5x the test on
# small samples); the same computation, on the 1-d NaN-free arrays given here
_KS_2SAMP = getattr(stats.ks_2samp, "__wrapped__", stats.ks_2samp)
_TINY_P = 5e-13
PSI_BINS = 10
PSI_EPS = 1e-4  # share given to an empty bin (PSI has no value for 0 shares)
CORRECTIONS = ("fdr_bh", "bonferroni", "holm", "none")


def ks_sorted(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(statistic, p-value) of the two-sided two-sample KS test on sorted, non-empty,
    NaN-free samples ``a`` and ``b``: ``scipy.stats.ks_2samp``'s (see the module
    docstring)."""
    n1, n2 = len(a), len(b)
    if max(n1, n2) <= EXACT_MAX_N:
        result = _KS_2SAMP(a, b)
        return float(result.statistic), float(result.pvalue)
    # F2 at the last of each run of equal values in a, F1 at the last of each run in b:
    # every point of the pooled sample is such a point of one of them
    last_a = np.flatnonzero(np.append(a[1:] != a[:-1], True))
    last_b = np.flatnonzero(np.append(b[1:] != b[:-1], True))
    f1_at_a = (last_a + 1) / n1
    f2_at_a = np.searchsorted(b, a[last_a], side="right") / n2
    f1_at_b = np.searchsorted(a, b[last_b], side="right") / n1
    f2_at_b = (last_b + 1) / n2
    diff_a = f1_at_a - f2_at_a
    diff_b = f1_at_b - f2_at_b
    max_s = max(float(diff_a.max()), float(diff_b.max()))
    min_s = min(float(diff_a.min()), float(diff_b.min()))
    d = max(max_s, min(max(-min_s, 0.0), 1.0))
    m, n = sorted((float(n1), float(n2)), reverse=True)
    en = m * n / (m + n)
    limit = float(kolmogorov(math.sqrt(en) * d))
    p = limit if limit < _TINY_P else float(stats.kstwo.sf(d, np.round(en)))
    return float(d), float(min(max(p, 0.0), 1.0))


def wasserstein_sorted(a: np.ndarray, b: np.ndarray) -> float:
    """The 1-Wasserstein distance between the empirical distributions of sorted samples:
    the integral of |F1 - F2| over the pooled support (for samples of one size, the mean
    distance between their order statistics, the same integral taken along quantiles)."""
    if len(a) == len(b):
        return float(np.mean(np.abs(a - b)))
    pooled = np.concatenate([a, b])
    pooled.sort(kind="stable")
    deltas = np.diff(pooled)
    f1 = np.searchsorted(a, pooled[:-1], side="right") / len(a)
    f2 = np.searchsorted(b, pooled[:-1], side="right") / len(b)
    return float(np.sum(np.abs(f1 - f2) * deltas))


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    shares = counts / total if total else np.zeros(len(counts))
    return np.maximum(shares, PSI_EPS)


def _psi(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    p, q = _shares(ref_counts), _shares(cur_counts)
    return float(np.sum((q - p) * np.log(q / p)))


def psi(a: np.ndarray, b: np.ndarray, bins: int = PSI_BINS) -> float:
    """Population stability index of sorted sample ``b`` against reference ``a``, on
    ``bins`` bins cut at the reference's quantiles (fewer when values repeat; empty bins
    count as a share of 1e-4)."""
    edges = np.unique(np.quantile(a, np.linspace(0, 1, bins + 1)[1:-1]))
    ref_counts = np.diff(np.searchsorted(a, edges, side="right"), prepend=0, append=len(a))
    cur_counts = np.diff(np.searchsorted(b, edges, side="right"), prepend=0, append=len(b))
    return _psi(ref_counts.astype(float), cur_counts.astype(float))


def category_tests(ref: Sequence[Any], cur: Sequence[Any]) -> dict[str, Any]:
    """Chi-square on the 2 x k contingency table (``scipy.stats.chi2_contingency``), PSI and
    the Jensen-Shannon distance (base 2) for two samples of categories. With fewer than
    two categories in all there is nothing to test: statistic and p-value are NaN."""
    ref_values, ref_counts = np.unique(np.asarray(ref, dtype=object).astype(str),
                                       return_counts=True)
    cur_values, cur_counts = np.unique(np.asarray(cur, dtype=object).astype(str),
                                       return_counts=True)
    categories = np.union1d(ref_values, cur_values)
    table = np.zeros((2, len(categories)))
    table[0, np.searchsorted(categories, ref_values)] = ref_counts
    table[1, np.searchsorted(categories, cur_values)] = cur_counts
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
