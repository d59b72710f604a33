"""Drift of a model's inputs and outputs from a reference: :func:`drift_report`.

One row per feature (column), tested by kind:

- numbers: two-sample Kolmogorov-Smirnov on the non-missing values (scipy's statistic and
  p-value, see :mod:`.stats`), with the Wasserstein distance and PSI as effect sizes, and
  chi-square on PSI's bins (the reference's deciles) as ``chi2_bins_p``, a second opinion
  that is not used for ``drifted``;
- categories (text with few distinct values, booleans, integers with at most 10 values
  such as class labels): chi-square on the contingency
  table, with PSI and the Jensen-Shannon distance;
- free text (model outputs): the distributions of its length in characters and in
  whitespace-separated tokens, each tested as numbers (``answer.length``,
  ``answer.tokens``).

P-values are corrected across the features tested together (``correction``), and a
feature is ``drifted`` when its adjusted p-value is below ``alpha``. What cannot be tested
(a column on one side only, an empty side, a single category) gets no p-value and a
``message`` saying why, never a misleading number.
"""

from __future__ import annotations

import concurrent.futures
import math
import numbers
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from html import escape
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from overlay_sdk.analytics.stats import (
    CORRECTIONS,
    adjust,
    binned_tests,
    category_tests,
    ks_sorted,
    quantiles_sorted,
    wasserstein_sorted,
)
from overlay_sdk.errors import ValidationError

__all__ = ["REPORT_COLUMNS", "TESTS", "DriftReport", "assemble_report", "drift_report",
           "drift_setting", "feature_kind"]

TESTS = ("ks", "chi2", "text")
REPORT_COLUMNS = ("feature", "kind", "test", "statistic", "p_value", "p_adjusted", "drifted",
                  "wasserstein", "psi", "js", "chi2_bins_p", "rows_reference", "rows_current",
                  "missing_reference", "missing_current", "message")
PROGRESS_ROWS = 1_000_000  # a progress bar past this many values in all
PARALLEL_ROWS = 200_000  # columns tested on threads past this many values in all
LABELS_MAX_DISTINCT = 10  # integers with at most this many values in all: class labels
TEXT_MIN_DISTINCT = 50  # strings with more distinct values than this, mostly unique: text
TEXT_MIN_LENGTH = 20  # or fewer, but long (median characters) and of several words
_GRID = 101  # points kept per side to draw a feature's distributions


@dataclass(frozen=True)
class _Shape:
    """What is kept of a feature's two samples for its plot (a quantile grid, or the
    category shares): a report on 10^6 rows does not keep 10^6 rows."""

    kind: str
    reference: Any
    current: Any


class DriftReport(pd.DataFrame):  # type: ignore[misc]
    """A drift report: a DataFrame with one row per feature (:data:`REPORT_COLUMNS`).

    ``report.drifted_features`` lists the drifted features (``report.drifted`` is the
    column); ``report.plot()`` draws the p-values and each feature's reference and current
    distributions (plotly); ``alpha`` and ``correction`` say how it was decided (kept in
    ``attrs``, which pandas keeps through ``concat`` of reports made alike)."""

    _metadata: ClassVar[list[str]] = ["shapes"]
    shapes: dict[str, _Shape]

    @property
    def _constructor(self) -> Any:
        return DriftReport

    @classmethod
    def of(cls, frame: pd.DataFrame, alpha: float, correction: str,
           shapes: dict[str, _Shape]) -> DriftReport:
        report = cls(frame)
        report.attrs["drift"] = {"alpha": alpha, "correction": correction}
        report.shapes = shapes
        return report

    @property
    def alpha(self) -> float:
        return float(drift_setting(self, "alpha"))

    @property
    def correction(self) -> str:
        return str(drift_setting(self, "correction"))

    @property
    def frame(self) -> pd.DataFrame:
        """The report as a plain DataFrame."""
        return pd.DataFrame(self)

    @property
    def drifted_features(self) -> list[str]:
        """The features that drifted."""
        frame = self.frame
        return [str(f) for f in frame.loc[frame["drifted"].astype(bool), "feature"]]

    def summary(self) -> str:
        frame = self.frame
        if frame.empty:
            return "DriftReport: no columns to compare"
        tested = int(frame["p_value"].notna().sum())
        drifted = len(self.drifted_features)
        return (f"DriftReport: {len(frame)} features, {tested} tested, {drifted} drifted "
                f"(alpha {self.alpha}, {self.correction})")

    def __repr__(self) -> str:
        return f"{self.summary()}\n{pd.DataFrame.__repr__(self)}"

    def _repr_html_(self) -> str:
        drifted = self.drifted_features
        frame = self.frame
        head = (f"<p><b>Drift</b>: {len(drifted)} of {len(frame)} features drifted "
                f"(adjusted p &lt; {self.alpha}, {escape(self.correction)})"
                + (f": {escape(', '.join(drifted))}" if drifted else "") + "</p>")
        styled = frame.style.apply(
            lambda row: ["background-color: rgba(198,40,40,0.15)" if row["drifted"] else ""
                         for _ in row], axis=1).format(precision=4, na_rep="")
        return head + str(styled.to_html())

    def plot(self, features: list[str] | None = None) -> list[Any]:
        """Plotly figures: the adjusted p-value per feature (with ``alpha``), then for each
        of ``features`` (default: the tested ones, drifted first) the reference and current
        distributions (ECDF for numbers, shares for categories)."""
        from overlay_sdk.analytics.drift_plots import feature_figure, p_value_figure

        if not hasattr(self, "shapes"):
            raise ValidationError.at("report", "this frame has no distributions to draw (it "
                                     "was combined from reports); draw each report")
        if features is None:
            order = self.frame.sort_values(["drifted", "p_adjusted"], ascending=[False, True])
            features = [f for f in order["feature"] if f in self.shapes]
        unknown = [f for f in features if f not in self.shapes]
        if unknown:
            raise ValidationError.at("features", f"{unknown[0]!r} has no distribution to "
                                     f"draw; choose among {', '.join(self.shapes)}")
        figures = [p_value_figure(self.frame, self.alpha)]
        for name in features:
            row = self.frame.set_index("feature").loc[name]
            figures.append(feature_figure(name, self.shapes[name], row))
        return figures


def drift_setting(frame: pd.DataFrame, name: str) -> Any:
    """A drift setting kept in ``frame.attrs``; a clear error when an operation dropped
    it (``pd.concat`` of frames made with different settings)."""
    value = frame.attrs.get("drift", {}).get(name)
    if value is None:
        raise ValidationError.at(name, "this frame lost its drift settings (combined from "
                                 "frames made with different ones?); make it again")
    return value


def feature_kind(values: pd.Series) -> str:
    """``ks`` (numbers), ``chi2`` (categories, booleans) or ``text`` (strings that are
    mostly distinct: free text such as a model's answers)."""
    if pd.api.types.is_bool_dtype(values):
        return "chi2"
    if pd.api.types.is_numeric_dtype(values):
        return "ks"
    present = values.dropna()
    if present.empty:
        return "chi2"
    if pd.api.types.is_numeric_dtype(pd.Series(present.tolist())) and not present.map(
            lambda v: isinstance(v, str | bool)).any():
        return "ks"
    strings = present.astype(str)
    distinct = strings.nunique()
    if distinct > TEXT_MIN_DISTINCT and distinct > 0.5 * len(present):
        return "text"
    # a few answers of a chat model: long strings of several words, mostly distinct
    sentences = strings.str.len().median() >= TEXT_MIN_LENGTH and bool(
        strings.str.contains(" ").mean() >= 0.5) and distinct > 0.5 * len(present)
    return "text" if sentences else "chi2"


def _kind(ref: pd.Series, cur: pd.Series) -> str:
    """The test for a column, from both sides: numbers (booleans beside numbers, dates and
    durations count as numbers) get KS; two boolean sides, and integers with at most
    :data:`LABELS_MAX_DISTINCT` values in all (class labels), get chi-square."""
    numeric = pd.api.types.is_numeric_dtype
    boolean = pd.api.types.is_bool_dtype
    timely = (pd.api.types.is_datetime64_any_dtype, pd.api.types.is_timedelta64_dtype)
    if all(boolean(x) for x in (ref, cur)):
        return "chi2"
    if all(_whole(x) for x in (ref, cur)) and any(
            pd.api.types.is_integer_dtype(x) for x in (ref, cur)) and len(
            set(ref.dropna().unique()) | set(cur.dropna().unique())) <= LABELS_MAX_DISTINCT:
        return "chi2"  # class labels (0/1, 0..9): categories, not a continuous scale
    sides = [_side(x) for x in (ref, cur)]
    if set(sides) == {"numbers", "text"}:
        return "mismatch"
    if all(numeric(x) or any(t(x) for t in timely) for x in (ref, cur)):
        return "ks"
    return feature_kind(pd.concat([ref.head(1000), cur.head(1000)], ignore_index=True))


def _whole(values: pd.Series) -> bool:
    """Integers, or floats that are all whole numbers (integer labels with a missing value
    turn float): what class labels look like, beside integers on the other side."""
    if pd.api.types.is_bool_dtype(values):
        return False
    if pd.api.types.is_integer_dtype(values):
        return True
    if not pd.api.types.is_float_dtype(values):
        return False
    present = values.dropna().to_numpy(dtype=float)
    return bool(len(present)) and bool(np.all(np.isfinite(present)) and np.all(
        present == np.round(present)))


def _side(values: pd.Series) -> str:
    """What one side of a column holds: ``numbers``, ``text`` (strings, none of which
    read as a number) or ``other`` (empty, mixed, dates...)."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return "numbers"
    present = values.dropna()
    if present.empty or pd.api.types.is_numeric_dtype(values):
        return "other"
    strings = present.map(lambda v: isinstance(v, str))
    if bool(strings.all()) and pd.to_numeric(present, errors="coerce").isna().all():
        return "text"
    return "other"


def _as_numbers(values: pd.Series) -> tuple[pd.Series, int]:
    """``values`` as floats (booleans as 0/1, dates as seconds since the epoch, durations
    as seconds), and how many present values were not numbers (left out, and said)."""
    if pd.api.types.is_bool_dtype(values):
        return values.astype(float), 0
    if pd.api.types.is_datetime64_any_dtype(values):
        stamps = values.dt.tz_convert("UTC") if getattr(values.dt, "tz", None) else values
        return (stamps - pd.Timestamp("1970-01-01", tz=getattr(stamps.dt, "tz", None))
                ).dt.total_seconds(), 0
    if pd.api.types.is_timedelta64_dtype(values):
        return values.dt.total_seconds(), 0
    if pd.api.types.is_numeric_dtype(values):
        return values, 0
    numbers = pd.to_numeric(values.map(lambda v: int(v) if isinstance(v, bool) else v),
                            errors="coerce")
    return numbers, int((numbers.isna() & values.notna()).sum())


def _numbers(values: pd.Series) -> tuple[np.ndarray, int, int]:
    """Sorted non-missing values as floats, how many were missing, and how many of those
    were present but not numbers. One sorted copy: NaN sorts last, so the missing values
    are cut off the end (a view), no mask."""
    numbers, foreign = _as_numbers(values)
    array = numbers.to_numpy(dtype=float, na_value=np.nan)
    ordered = np.sort(array)
    present = len(ordered)
    if present and np.isnan(ordered[-1]):
        present = int(np.searchsorted(ordered, np.nan, side="left"))
    return ordered[:present], len(ordered) - present, foreign


def _grid(values: np.ndarray) -> np.ndarray:
    return quantiles_sorted(values, np.linspace(0, 1, _GRID)) if len(values) else values


def _row(feature: str, kind: str, test: str, ref_rows: int, cur_rows: int,
         ref_missing: int, cur_missing: int) -> dict[str, Any]:
    return {"feature": feature, "kind": kind, "test": test, "statistic": math.nan,
            "p_value": math.nan, "wasserstein": math.nan, "psi": math.nan, "js": math.nan,
            "chi2_bins_p": math.nan,
            "rows_reference": ref_rows, "rows_current": cur_rows,
            "missing_reference": ref_missing, "missing_current": cur_missing, "message": ""}


def _empty_side(row: dict[str, Any], ref_n: int, cur_n: int) -> bool:
    """Say why a side with no values cannot be tested; True when that is the case."""
    if ref_n and cur_n:
        return False
    sides = [name for name, n in (("reference", ref_n), ("current", cur_n)) if not n]
    missing = [row[f"missing_{s}"] for s in sides]
    row["message"] = " and ".join(
        f"no values in {s}" + (f" ({m} missing)" if m else "") for s, m in zip(sides, missing,
                                                                                 strict=True))
    return True


def _numeric(feature: str, ref: pd.Series, cur: pd.Series, kind: str = "numeric"
             ) -> tuple[dict[str, Any], _Shape | None]:
    a, ref_missing, ref_foreign = _numbers(ref)
    b, cur_missing, cur_foreign = _numbers(cur)
    row = _row(feature, kind, "ks", len(a), len(b), ref_missing, cur_missing)
    foreign = "; ".join(f"{n} values in {side} are not numbers (left out)"
                        for side, n in (("reference", ref_foreign), ("current", cur_foreign))
                        if n)
    if _empty_side(row, len(a), len(b)):
        row["message"] = "; ".join(m for m in (row["message"], foreign) if m)
        return row, None
    d, p = ks_sorted(a, b)
    binned = binned_tests(a, b)
    row.update(statistic=d, p_value=p, wasserstein=wasserstein_sorted(a, b),
               psi=binned["psi"], chi2_bins_p=binned["chi2_p"])
    if a[0] == a[-1] and b[0] == b[-1]:
        row["message"] = ("constant on both sides" if a[0] == b[0] else
                          f"constant on each side, {a[0]:g} then {b[0]:g}")
    elif a[0] == a[-1]:
        row["message"] = "constant in reference"
    elif b[0] == b[-1]:
        row["message"] = "constant in current"
    if foreign:
        row["message"] = "; ".join(m for m in (row["message"], foreign) if m)
    return row, _Shape("numeric", _grid(a), _grid(b))


def _categorical(feature: str, ref: pd.Series, cur: pd.Series
                 ) -> tuple[dict[str, Any], _Shape | None]:
    a, b = ref.dropna(), cur.dropna()
    row = _row(feature, "categorical", "chi2", len(a), len(b), len(ref) - len(a),
               len(cur) - len(b))
    if _empty_side(row, len(a), len(b)):
        return row, None
    out = category_tests(a.astype(str).tolist(), b.astype(str).tolist())
    row.update(statistic=out["statistic"], p_value=out["p_value"], psi=out["psi"],
               js=out["js"])
    if out["categories"] < 2:
        row["message"] = "a single category on both sides: nothing to test"
    shares = (a.astype(str).value_counts(normalize=True),
              b.astype(str).value_counts(normalize=True))
    return row, _Shape("categorical", *shares)


def _text(feature: str, ref: pd.Series, cur: pd.Series
          ) -> list[tuple[dict[str, Any], _Shape | None]]:
    foreign = {side: int((x.notna() & ~x.map(lambda v: isinstance(v, str))).sum())
               for side, x in (("reference", ref), ("current", cur))}
    said = "; ".join(f"{n} values in {side} are not text (left out)"
                     for side, n in foreign.items() if n)
    out = []
    for suffix, measure in (("length", len), ("tokens", lambda s: len(s.split()))):
        def sized(values: pd.Series, f: Callable[[str], int] = measure) -> pd.Series:
            return values.map(lambda v: f(str(v)) if isinstance(v, str) else np.nan)
        row, shape = _numeric(f"{feature}.{suffix}", sized(ref), sized(cur), kind="text")
        row["missing_reference"] -= foreign["reference"]
        row["missing_current"] -= foreign["current"]
        # an empty side said again, its missing count less the values that are not text
        _empty_side(row, row["rows_reference"], row["rows_current"])
        if said:
            row["message"] = "; ".join(m for m in (row["message"], said) if m)
        out.append((row, shape))
    return out


def _check(reference: Any, current: Any, alpha: float, correction: str, tests: Any) -> None:
    for name, frame in (("reference", reference), ("current", current)):
        if not isinstance(frame, pd.DataFrame):
            raise ValidationError.at(name, f"give a pandas DataFrame, got "
                                     f"{type(frame).__name__}")
        names = pd.Index([str(c) for c in frame.columns])
        if names.has_duplicates:
            twice = names[names.duplicated()][0]
            raise ValidationError.at(f"{name}.columns", f"column {twice!r} appears more than "
                                     "once: rename or drop the copies")
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0 < alpha < 1:
        raise ValidationError.at("alpha", f"give a significance level between 0 and 1, got "
                                 f"{alpha!r}")
    if correction not in CORRECTIONS:
        raise ValidationError.at("correction", f"give one of {', '.join(CORRECTIONS)}, got "
                                 f"{correction!r}")
    if tests != "auto":
        if not isinstance(tests, Mapping):
            raise ValidationError.at("tests", 'give "auto" or {column: "ks"|"chi2"|"text"}')
        known = {str(c) for c in [*reference.columns, *current.columns]}
        for column, test in tests.items():
            if str(column) not in known:
                raise ValidationError.at(f"tests.{column}", "no such column in reference or "
                                         "current")
            if test not in TESTS:
                raise ValidationError.at(f"tests.{column}", f"give one of {', '.join(TESTS)}, "
                                         f"got {test!r}")


def drift_report(reference: pd.DataFrame, current: pd.DataFrame, *, alpha: float = 0.05,
                 correction: str = "fdr_bh", tests: str | Mapping[str, str] = "auto",
                 progress: bool | None = None, threads: int | None = None) -> DriftReport:
    """Test every column of ``current`` against ``reference`` (see the module docstring).

    ``tests``: ``"auto"`` (by dtype) or ``{column: "ks"|"chi2"|"text"}`` for some columns.
    ``progress``: a progress bar (default: past 10^6 values). ``threads``: how many columns
    are tested at once (default: the machine's cores; numpy releases the GIL)."""
    _check(reference, current, alpha, correction, tests)
    chosen = tests if isinstance(tests, Mapping) else {}
    columns = list(dict.fromkeys([*map(str, reference.columns), *map(str, current.columns)]))
    ref_columns = {str(c): c for c in reference.columns}
    cur_columns = {str(c): c for c in current.columns}
    rows: dict[str, list[tuple[dict[str, Any], _Shape | None]]] = {}
    jobs: dict[str, Callable[[], list[tuple[dict[str, Any], _Shape | None]]]] = {}
    for name in columns:
        if name not in ref_columns or name not in cur_columns:
            side = "reference" if name in ref_columns else "current"
            row = _row(name, "", "", 0, 0, 0, 0)
            row["message"] = f"only in {side}: nothing to compare it with"
            rows[name] = [(row, None)]
            continue
        ref, cur = reference[ref_columns[name]], current[cur_columns[name]]
        kind = chosen.get(name) or _kind(ref, cur)
        jobs[name] = _job(kind, name, ref, cur)
    total = (len(reference) + len(current)) * len(jobs)
    show = progress if progress is not None else total > PROGRESS_ROWS
    workers = threads or min(len(jobs), os.cpu_count() or 1) or 1
    bar: Any = None
    if show:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(jobs), desc="drift", unit="feature")
    try:
        if workers == 1 or total < PARALLEL_ROWS:  # threads cost more than they save here
            for name, job in jobs.items():
                rows[name] = job()
                if bar is not None:
                    bar.update(1)
        else:
            with concurrent.futures.ThreadPoolExecutor(workers) as pool:
                futures = {pool.submit(job): name for name, job in jobs.items()}
                for future in concurrent.futures.as_completed(futures):
                    rows[futures[future]] = future.result()
                    if bar is not None:
                        bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return assemble_report([pair for name in columns for pair in rows[name]], alpha,
                           correction)


def assemble_report(pairs: list[tuple[dict[str, Any], _Shape | None]], alpha: float,
                    correction: str) -> DriftReport:
    """The report of the rows tested (with what to draw of each): p-values corrected
    across them, ``drifted`` where the adjusted p-value is below ``alpha``."""
    frame = pd.DataFrame([row for row, _ in pairs], columns=[
        c for c in REPORT_COLUMNS if c not in ("p_adjusted", "drifted")])
    frame.insert(5, "p_adjusted", adjust(frame["p_value"].to_numpy(dtype=float), correction))
    frame.insert(6, "drifted", (frame["p_adjusted"] < alpha).to_numpy())
    shapes = {row["feature"]: shape for row, shape in pairs if shape is not None}
    return DriftReport.of(frame, float(alpha), correction, shapes)


def _refused(name: str, ref: pd.Series, cur: pd.Series, message: str
             ) -> list[tuple[dict[str, Any], _Shape | None]]:
    row = _row(name, "", "", int(ref.notna().sum()), int(cur.notna().sum()),
               int(ref.isna().sum()), int(cur.isna().sum()))
    row["message"] = message
    return [(row, None)]


def _job(kind: str, name: str, ref: pd.Series, cur: pd.Series
         ) -> Callable[[], list[tuple[dict[str, Any], _Shape | None]]]:
    if any(pd.api.types.is_complex_dtype(x) for x in (ref, cur)):
        return lambda: _refused(name, ref, cur, "complex numbers cannot be tested: compare "
                                "their real and imaginary parts (or abs) as columns")
    if kind == "mismatch":
        sides = " and ".join(f"{side} holds {_side(x)}" for side, x in (
            ("reference", ref), ("current", cur)))
        return lambda: _refused(name, ref, cur, f"{sides}: nothing to compare; check the "
                                "column (or choose its test with tests=)")
    if kind == "ks":
        return lambda: [_numeric(name, ref, cur)]
    if kind == "text":
        return lambda: _text(name, ref, cur)
    return lambda: [_categorical(name, ref, cur)]
