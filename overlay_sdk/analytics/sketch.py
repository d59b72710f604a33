"""Bounded-memory drift for long streams: mergeable KLL sketches of numeric features.

A :class:`FeatureSketch` holds an Apache DataSketches KLL sketch (``datasketches``,
``kll_doubles_sketch``) of one feature's non-missing values, and counts the missing ones.
It is updated from numpy arrays, merged with sketches of other windows or processes, and
serialized to bytes and back (~24 KB at the default k, whatever the stream's length).

:func:`ks_sketches` compares two of them: the KS statistic is the largest difference of
the two sketches' normalized ranks over the union of their retained items (where both
rank functions step), the two-sample statistic of the streams, estimated.

Accuracy (``benchmarks/bench_drift.py``, BENCHMARKS.md "Drift"): with :data:`DEFAULT_K`
= 1000 the estimated statistic is within 0.005 of the exact one at 10M rows per feature
(measured over seeds and shifts: at most 0.003, mean 0.002; k = 800 reached 0.0039, k =
600 0.006); a sketch serializes to 23.9 KB.

The p-value is approximate. It applies the two-sample asymptotic formula of the exact path
(:func:`overlay_sdk.analytics.stats.ks_pvalue`, scipy's ``kstwo.sf(d, round(en))``) to the
statistic *less* the sketches' rank-error bound (DataSketches' a priori normalized rank
error at 99 % confidence, summed over the two sketches, 0 for a sketch that still holds
every value): at 10M rows the sampling noise of the statistic (~0.0006) is far below the
sketch's error (~0.003), so the formula on the raw estimate would call nearly every
stream drifted. Taken this way it errs on the side of "no drift": a shift is detected
once the true statistic exceeds the error bound (0.0056 at k = 1000) plus the critical
value: at 10M rows per side a mean shift of 0.015 sigma is found on every seed, 0.01 sigma
on 0-2 of 5 (measured, BENCHMARKS.md). Smaller shifts need the exact path (windows that
fit in memory).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from overlay_sdk.analytics.stats import ks_pvalue

__all__ = ["DEFAULT_K", "FeatureSketch", "SketchKS", "ks_sketches"]

DEFAULT_K = 1000
_MAGIC = b"OVKL"
_HEADER = struct.Struct("<4sBQ")  # magic, format version, missing values
_VERSION = 1


def _kll(k: int) -> Any:
    from datasketches import kll_doubles_sketch

    return kll_doubles_sketch(k)


class FeatureSketch:
    """A mergeable sketch of one numeric feature: a KLL sketch of its non-missing values
    (``k`` trades memory for accuracy, see the module docstring) and the count of missing
    ones."""

    def __init__(self, k: int = DEFAULT_K) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or not 8 <= k <= 65535:
            raise ValueError(f"k: give an integer between 8 and 65535, got {k!r}")
        self._sketch = _kll(k)
        self.missing = 0

    @classmethod
    def of(cls, values: Any, k: int = DEFAULT_K) -> FeatureSketch:
        """A new sketch of ``values``."""
        return cls(k).update(values)

    @property
    def k(self) -> int:
        return int(self._sketch.k)

    @property
    def n(self) -> int:
        """How many non-missing values went in."""
        return int(self._sketch.n)

    @property
    def rank_error(self) -> float:
        """The a priori bound on the error of any normalized rank it gives (DataSketches',
        99 % confidence); 0 while it still holds every value."""
        if not self._sketch.is_estimation_mode():
            return 0.0
        return float(self._sketch.normalized_rank_error(False))

    def update(self, values: Any) -> FeatureSketch:
        """Add ``values`` (a numpy array, a pandas Series or any sequence of numbers; NaN
        and missing values are counted, not sketched). Returns the sketch."""
        if hasattr(values, "to_numpy"):
            array = values.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            array = np.asarray(values, dtype=np.float64)
        # (the library takes only writable, contiguous float64 arrays: pandas may lend
        # read-only views)
        array = np.require(array.reshape(-1), np.float64, ["C", "W"])
        missing = np.isnan(array)
        count = int(missing.sum())
        if count:
            array = array[~missing]
            self.missing += count
        if len(array):
            self._sketch.update(array)
        return self

    def merge(self, other: FeatureSketch) -> FeatureSketch:
        """Fold ``other`` (of this or another window, process or machine) into this sketch.
        Returns this sketch."""
        if not isinstance(other, FeatureSketch):
            raise TypeError(f"merge a FeatureSketch, not {type(other).__name__}")
        self._sketch.merge(other._sketch)
        self.missing += other.missing
        return self

    def to_bytes(self) -> bytes:
        """A compact serialized form (:meth:`from_bytes` reads it back)."""
        return _HEADER.pack(_MAGIC, _VERSION, self.missing) + bytes(self._sketch.serialize())

    @classmethod
    def from_bytes(cls, data: bytes) -> FeatureSketch:
        from datasketches import kll_doubles_sketch

        if len(data) < _HEADER.size:
            raise ValueError("not a FeatureSketch: too short")
        magic, version, missing = _HEADER.unpack_from(data)
        if magic != _MAGIC or version != _VERSION:
            raise ValueError(f"not a FeatureSketch (header {magic!r}, version {version})")
        sketch = cls.__new__(cls)
        sketch._sketch = kll_doubles_sketch.deserialize(bytes(data[_HEADER.size:]))
        sketch.missing = int(missing)
        return sketch

    def quantiles(self, q: Iterable[float]) -> np.ndarray:
        """Estimated quantiles at probabilities ``q`` (NaN for an empty sketch)."""
        ranks = [float(v) for v in q]
        if self._sketch.is_empty():
            return np.full(len(ranks), np.nan)
        return np.asarray(self._sketch.get_quantiles(ranks, True), dtype=float)

    def cdf(self, points: Iterable[float]) -> np.ndarray:
        """Estimated share of values <= each of ``points`` (NaN for an empty sketch)."""
        at = [float(v) for v in points]
        if self._sketch.is_empty():
            return np.full(len(at), np.nan)
        if not at:
            return np.empty(0)
        return np.asarray(self._sketch.get_cdf(at, True), dtype=float)[:-1]

    def sorted_view(self) -> tuple[np.ndarray, np.ndarray]:
        """The retained items in order and the normalized rank (share of values <= it)
        at each: the sketch's estimate of the empirical CDF, a step at each item."""
        if self._sketch.is_empty():
            return np.empty(0), np.empty(0)
        # the ranks from the library's own sorted view (get_cdf): the weights its iterator
        # yields are wrong after a merge (datasketches 5.2: all 1)
        items = np.unique(np.fromiter((item for item, _ in self._sketch), dtype=float))
        ranks = np.asarray(self._sketch.get_cdf(items.tolist(), True), dtype=float)[:-1]
        return items, ranks

    def __repr__(self) -> str:
        return (f"<FeatureSketch k={self.k} n={self.n} missing={self.missing} "
                f"retained={self._sketch.num_retained}>")


@dataclass(frozen=True)
class SketchKS:
    """KS between two sketched streams: ``statistic`` (estimated), ``error`` (the bound on
    its error that ``p_value`` allows for) and the approximate, conservative ``p_value``
    (see the module docstring); ``rows_reference`` and ``rows_current`` are the streams'
    non-missing counts."""

    statistic: float
    error: float
    p_value: float
    rows_reference: int
    rows_current: int


def _ranks_at(items: np.ndarray, ranks: np.ndarray, points: np.ndarray) -> np.ndarray:
    at = np.searchsorted(items, points, side="right")
    return np.concatenate([[0.0], ranks])[at]


def ks_sketches(reference: FeatureSketch, current: FeatureSketch) -> SketchKS:
    """The two-sample KS statistic between two sketched streams, and its approximate
    p-value (module docstring). Both must hold values."""
    if not reference.n or not current.n:
        side = "reference" if not reference.n else "current"
        raise ValueError(f"the {side} sketch holds no values: nothing to compare")
    items_a, ranks_a = reference.sorted_view()
    items_b, ranks_b = current.sorted_view()
    points = np.union1d(items_a, items_b)
    gaps = _ranks_at(items_a, ranks_a, points) - _ranks_at(items_b, ranks_b, points)
    statistic = float(min(np.abs(gaps).max(), 1.0))
    error = reference.rank_error + current.rank_error
    reduced = max(statistic - error, 0.0)
    p_value = 1.0 if reduced == 0 else ks_pvalue(reduced, reference.n, current.n)
    if math.isnan(p_value):
        p_value = 1.0
    return SketchKS(statistic, error, p_value, reference.n, current.n)
