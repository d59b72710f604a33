"""Drift of a window too big to hold: :class:`WindowDrift`.

A window's records come in chunks (as they are read from telemetry). While a window holds
at most ``exact_rows`` records they are kept, and its report is :func:`drift_report`'s,
exact. Past that, what is kept becomes a bounded summary and the records are let go:

- numbers: a :class:`~overlay_sdk.analytics.sketch.FeatureSketch` (KLL, ~24 KB); tested by
  :func:`~overlay_sdk.analytics.sketch.ks_sketches` (KS statistic within 0.005 of the
  exact one at 10M rows, a conservative p-value), with the Wasserstein distance from the
  two quantile functions and PSI on the reference's deciles, both estimated;
- categories: the count of each category (exact; chi-square, PSI, Jensen-Shannon as in
  the exact path);
- free text: sketches of its length and token count.

Each estimated row says so in its ``message`` and in its ``test`` (``ks-sketch``).
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from overlay_sdk.analytics.drift import (
    _GRID,
    DriftReport,
    _as_numbers,
    _empty_side,
    _kind,
    _row,
    _Shape,
    assemble_report,
    drift_report,
    feature_kind,
)
from overlay_sdk.analytics.sketch import DEFAULT_K, FeatureSketch, ks_sketches
from overlay_sdk.analytics.stats import PSI_BINS, _psi, category_count_tests

__all__ = ["EXACT_ROWS", "WindowDrift"]

EXACT_ROWS = 200_000  # records of one window and version held for the exact path
_QUANTILES = np.linspace(0, 1, 1001)  # where the quantile functions are compared


@dataclass
class _Summary:
    """What is kept of one column once its window no longer fits: sketches of numbers
    (``sketches``, one for a number, length and tokens for text) or category counts."""

    kind: str
    sketches: dict[str, FeatureSketch] = field(default_factory=dict)
    counts: collections.Counter[str] = field(default_factory=collections.Counter)
    missing: int = 0
    foreign: int = 0  # present values that were not numbers (left out)

    def update(self, values: pd.Series, k: int) -> None:
        if self.kind == "chi2":
            present = values.dropna()
            self.missing += len(values) - len(present)
            self.counts.update(present.astype(str))
            return
        for name, numbers in _measures(self.kind, values).items():
            if self.kind == "ks":
                numbers, foreign = numbers
                self.foreign += foreign
            self.sketches.setdefault(name, FeatureSketch(k)).update(numbers)


def _measures(kind: str, values: pd.Series) -> dict[str, Any]:
    """The numbers a column is sketched as: itself (with how many were not numbers), or a
    text's ``length`` and ``tokens``."""
    if kind == "ks":
        return {"": _as_numbers(values)}
    return {suffix: values.map(lambda v, f=measure: f(v) if isinstance(v, str) else np.nan)
            for suffix, measure in (("length", len), ("tokens", lambda s: len(s.split())))}


class WindowDrift:
    """One window's (and one model version's) drift against ``reference``, fed in chunks
    with :meth:`add`, reported by :meth:`report` (module docstring)."""

    def __init__(self, reference: pd.DataFrame, *, exact_rows: int = EXACT_ROWS,
                 k: int = DEFAULT_K) -> None:
        self.reference = reference
        self.exact_rows = exact_rows
        self.k = k
        self.rows = 0
        self._held: list[pd.DataFrame] = []
        self._summaries: dict[str, _Summary] | None = None

    @property
    def sketched(self) -> bool:
        """Whether the window outgrew ``exact_rows`` (its report is estimated)."""
        return self._summaries is not None

    def add(self, current: pd.DataFrame) -> None:
        """Add a chunk of the window's records (a column per feature, and ``output``)."""
        self.rows += len(current)
        if self._summaries is None:
            self._held.append(current)
            if self.rows <= self.exact_rows:
                return
            held = pd.concat(self._held, ignore_index=True)
            self._held = []
            self._summaries = {}
            current = held
        for column in current.columns:
            name = str(column)
            summary = self._summaries.get(name)
            if summary is None:
                kind = _kind(self.reference[name], current[column]) if (
                    name in self.reference.columns) else feature_kind(current[column])
                summary = self._summaries[name] = _Summary(kind)
            summary.update(current[column], self.k)
        for name, summary in self._summaries.items():  # columns absent from this chunk
            if name not in current.columns:
                summary.missing += len(current)
                for sketch in summary.sketches.values():
                    sketch.missing += len(current)

    def report(self, *, alpha: float = 0.05, correction: str = "fdr_bh") -> DriftReport:
        """The window's report: exact while it fit, estimated from its summaries after."""
        if self._summaries is None:
            current = pd.concat(self._held, ignore_index=True) if self._held else (
                pd.DataFrame())
            return drift_report(self.reference, current, alpha=alpha, correction=correction,
                                progress=False)
        pairs: list[tuple[dict[str, Any], _Shape | None]] = []
        note = (f"estimated: {self.rows} records in this window, more than the "
                f"{self.exact_rows} tested exactly")
        names = list(dict.fromkeys([*map(str, self.reference.columns), *self._summaries]))
        for name in names:
            summary = self._summaries.get(name)
            if summary is None or name not in self.reference.columns:
                side = "reference" if summary is None else "current"
                row = _row(name, "", "", 0, 0, 0, 0)
                row["message"] = f"only in {side}: nothing to compare it with"
                pairs.append((row, None))
                continue
            reference = _Summary(summary.kind)
            reference.update(self.reference[name], self.k)
            if summary.kind == "chi2":
                pairs.append(_categorical(name, reference, summary))
                continue
            for suffix, sketch in summary.sketches.items():
                feature = f"{name}.{suffix}" if suffix else name
                kind = "numeric" if summary.kind == "ks" else "text"
                pairs.append(_numeric(feature, kind, reference.sketches.get(suffix), sketch,
                                      summary.foreign))
        for row, _ in pairs:
            row["message"] = "; ".join(m for m in (note, row["message"]) if m)
        return assemble_report(pairs, alpha, correction)


def _numeric(feature: str, kind: str, reference: FeatureSketch | None, current: FeatureSketch,
             foreign: int) -> tuple[dict[str, Any], _Shape | None]:
    reference = reference or FeatureSketch(current.k)
    row = _row(feature, kind, "ks-sketch", reference.n, current.n, reference.missing,
               current.missing)
    if foreign:
        row["message"] = f"{foreign} values in current are not numbers (left out)"
    if _empty_side(row, reference.n, current.n):
        return row, None
    ks = ks_sketches(reference, current)
    ref_q, cur_q = reference.quantiles(_QUANTILES), current.quantiles(_QUANTILES)
    edges = np.unique(reference.quantiles(np.linspace(0, 1, PSI_BINS + 1)[1:-1]))
    ref_cdf, cur_cdf = reference.cdf(edges), current.cdf(edges)
    row.update(statistic=ks.statistic, p_value=ks.p_value,
               # the quantile form of the 1-Wasserstein distance, on 1001 points
               wasserstein=float(np.trapezoid(np.abs(ref_q - cur_q), _QUANTILES)),
               psi=_psi(np.diff(ref_cdf, prepend=0, append=1),
                        np.diff(cur_cdf, prepend=0, append=1)))
    row["message"] = "; ".join(m for m in (f"KS error <= {ks.error:.4f}", row["message"]) if m)
    grid = np.linspace(0, 1, _GRID)
    return row, _Shape("numeric", reference.quantiles(grid), current.quantiles(grid))


def _categorical(feature: str, reference: _Summary, current: _Summary
                 ) -> tuple[dict[str, Any], _Shape | None]:
    ref_n, cur_n = sum(reference.counts.values()), sum(current.counts.values())
    row = _row(feature, "categorical", "chi2", ref_n, cur_n, reference.missing,
               current.missing)
    if _empty_side(row, ref_n, cur_n):
        return row, None
    out = category_count_tests(reference.counts, current.counts)
    row.update(statistic=out["statistic"], p_value=out["p_value"], psi=out["psi"],
               js=out["js"])
    if out["categories"] < 2:
        row["message"] = "a single category on both sides: nothing to test"
    shares = [pd.Series(counts, dtype=float) / max(sum(counts.values()), 1)
              for counts in (reference.counts, current.counts)]
    return row, _Shape("categorical", *(s.sort_values(ascending=False) for s in shares))

