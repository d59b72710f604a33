"""Drift over time, from call records: one drift report per model version per window.

:func:`drift_timeline` takes the calls as :func:`overlay_sdk.telemetry.read_calls` gives
them (sampled inputs as ``input.<feature>``, the model's ``output``) and a reference per
version, cuts the calls into windows (``"1h"``, ``"15min"``, ``"1D"``) and tests each
window's inputs and outputs against the version's reference with
:func:`~overlay_sdk.analytics.drift.drift_report`. :meth:`DriftTimeline.streaks` finds
features drifted for ``k`` windows in a row: what raises a drift alert.
"""

from __future__ import annotations

import collections
import contextlib
import json
from collections.abc import Callable, Iterable
from html import escape
from typing import Any, ClassVar

import pandas as pd

from overlay_sdk.analytics.drift import REPORT_COLUMNS, DriftReport, drift_setting
from overlay_sdk.analytics.drift_sketch import EXACT_ROWS, WindowDrift
from overlay_sdk.errors import ValidationError

__all__ = ["LATE_GRACE", "TIMELINE_COLUMNS", "DriftTimeline", "call_features", "drift_timeline",
           "output_value", "window_of"]

TIMELINE_COLUMNS = ("window", "model", "version", *REPORT_COLUMNS)
LATE_GRACE = pd.Timedelta(minutes=5)  # a window is tested once calls are this far past it
STREAK_COLUMNS = ("model", "version", "feature", "first_window", "last_window", "windows")


def window_of(window: str) -> pd.Timedelta:
    """The length of a window given as ``"1h"``, ``"15min"``, ``"1D"``; ValidationError
    naming ``window`` otherwise."""
    try:
        length = pd.Timedelta(pd.tseries.frequencies.to_offset(window))
    except (ValueError, TypeError):
        raise ValidationError.at("window", f"give a window length such as '15min', '1h' or "
                                 f"'1D', got {window!r}") from None
    if length <= pd.Timedelta(0):
        raise ValidationError.at("window", f"give a positive window length, got {window!r}")
    return length


def output_value(value: Any) -> Any:
    """What drift compares of a model's output: the value of a one-row answer (``[0.7]`` ->
    0.7), a chat answer's text, a record of named values as it is (each tested as
    ``output.<name>``), else the answer as JSON text."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, dict):
        if isinstance(value.get("content"), str):
            return value["content"]
        return value
    if isinstance(value, list):
        return json.dumps(value, default=str)
    return value


def call_features(calls: pd.DataFrame) -> pd.DataFrame:
    """The sampled inputs (``input.x`` -> ``x``) and the output, one row per record: a call
    that sent several records (its inputs and outputs kept as lists) gives one row each.
    Outputs that are records of named values (``{"score": 0.7, "label": 1}``) give a
    column each (``output.score``, ``output.label``)."""
    inputs = [c for c in calls.columns if c.startswith("input.")]
    frame = calls[inputs].rename(columns=lambda c: c.removeprefix("input.")).reset_index(
        drop=True)
    if "output" in calls:
        frame["output"] = list(calls["output"])
    listed = [c for c in frame.columns if frame[c].map(lambda v: isinstance(v, list)).any()]
    if [c for c in listed if c != "output"]:
        # (lists of different lengths in one call cannot be paired: kept as they are)
        with contextlib.suppress(ValueError):
            frame = frame.explode(listed, ignore_index=True)
    if "output" in frame:
        outputs = [output_value(v) for v in frame["output"]]
        present = [v for v in outputs if v is not None and v == v]
        if present and all(isinstance(v, dict) for v in present):
            named = pd.DataFrame([v if isinstance(v, dict) else {} for v in outputs])
            frame = pd.concat([frame.drop(columns=["output"]),
                               named.add_prefix("output.")], axis=1)
        else:
            frame["output"] = [json.dumps(v, sort_keys=True, default=str)
                               if isinstance(v, dict) else v for v in outputs]
    for column in frame.columns:  # exploded columns are objects: numbers again
        if frame[column].dtype == object:
            converted = pd.to_numeric(frame[column], errors="coerce")
            if converted.notna().sum() == frame[column].notna().sum():
                frame[column] = converted
    return frame


class DriftTimeline(pd.DataFrame):  # type: ignore[misc]
    """Drift per window and model version: a DataFrame with :data:`TIMELINE_COLUMNS`
    (one row per feature, window and version); :attr:`reports` keeps each window's
    :class:`DriftReport` (for its plots); ``.plot()`` draws a heatmap, ``.streaks(k)`` finds
    runs of drifted windows."""

    _metadata: ClassVar[list[str]] = ["reports"]
    reports: dict[tuple[pd.Timestamp, str], DriftReport]

    @property
    def _constructor(self) -> Any:
        return DriftTimeline

    @classmethod
    def of(cls, frame: pd.DataFrame, window: str, alpha: float,
           reports: dict[tuple[pd.Timestamp, str], DriftReport]) -> DriftTimeline:
        timeline = cls(frame)
        # in attrs: pandas keeps them through concat of timelines made alike (the window
        # length decides what "consecutive" means)
        timeline.attrs["drift"] = {"window": window, "alpha": alpha}
        timeline.reports = reports
        return timeline

    @property
    def window_length(self) -> str:
        """The window length (``timeline.window`` is the column of window starts)."""
        return str(drift_setting(self, "window"))

    @property
    def alpha(self) -> float:
        return float(drift_setting(self, "alpha"))

    @property
    def frame(self) -> pd.DataFrame:
        """The timeline as a plain DataFrame."""
        return pd.DataFrame(self)

    def summary(self) -> str:
        frame = self.frame
        windows = frame["window"].nunique() if len(frame) else 0
        drifted = frame.loc[frame["drifted"].astype(bool), "feature"].nunique() if len(
            frame) else 0
        return (f"DriftTimeline: {windows} windows of {self.window_length}, {drifted} features "
                "drifted at least once")

    def __repr__(self) -> str:
        return f"{self.summary()}\n{pd.DataFrame.__repr__(self)}"

    def _repr_html_(self) -> str:
        return f"<p>{escape(self.summary())}</p>" + str(self.frame.to_html(max_rows=40))

    def streaks(self, k: int) -> pd.DataFrame:
        """Features drifted in ``k`` or more consecutive windows (consecutive: one window
        length apart; a window without calls, or where the feature was not tested, breaks
        a run). One row per run, with its first and last window."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValidationError.at("consecutive", f"give a whole number >= 1, got {k!r}")
        step = window_of(self.window_length)
        runs = []
        for (model, version, feature), part in self.frame.groupby(
                ["model", "version", "feature"], sort=True):
            start = previous = None
            count = 0
            for window, drifted in zip(part["window"], part["drifted"], strict=True):
                if drifted and previous is not None and count and window - previous == step:
                    count += 1
                elif drifted:  # a run starts (after a gap, the one before it ended)
                    if count >= k:
                        runs.append((model, version, feature, start, previous, count))
                    start, count = window, 1
                else:
                    if count >= k:
                        runs.append((model, version, feature, start, previous, count))
                    count = 0
                previous = window
            if count >= k:
                runs.append((model, version, feature, start, previous, count))
        return pd.DataFrame(runs, columns=list(STREAK_COLUMNS))

    def plot(self, version: str | None = None) -> Any:
        """A heatmap of adjusted p-values, feature x window, for one model version
        (default: the one with the most windows)."""
        from overlay_sdk.analytics.drift_plots import timeline_figure

        if self.frame.empty:
            raise ValidationError.at("timeline", "no windows with calls to draw")
        keys = self.frame["model"] + ":" + self.frame["version"]
        chosen = version or keys.value_counts().index[0]
        if chosen not in set(keys):
            raise ValidationError.at("version", f"{chosen!r} has no windows; choose among "
                                     f"{', '.join(sorted(set(keys)))}")
        return timeline_figure(self.frame[keys == chosen], chosen, self.alpha)


def drift_timeline(calls: pd.DataFrame | Iterable[pd.DataFrame],
                   reference: Callable[[str], pd.DataFrame | None], *, window: str = "1h",
                   alpha: float = 0.05, correction: str = "fdr_bh",
                   exact_rows: int = EXACT_ROWS,
                   progress: Callable[[int, int], None] | None = None) -> DriftTimeline:
    """Drift of each model version's calls per ``window`` against ``reference(version)``
    (``"model:version"`` -> a DataFrame of features, and ``output`` to test outputs too;
    None: the version has no reference, said in the rows' ``message``).

    ``calls``: one frame, or frames oldest first (:func:`overlay_sdk.telemetry.iter_calls`)
    gone through in bounded memory: a window is tested once the calls have moved
    :data:`LATE_GRACE` past its end, exactly while it holds at most ``exact_rows`` records,
    from sketches past that (:mod:`.drift_sketch`). ``progress(windows, calls)`` is told
    how many windows were tested and calls read after each frame."""
    length = window_of(window)
    if isinstance(exact_rows, bool) or not isinstance(exact_rows, int) or exact_rows < 1:
        raise ValidationError.at("exact_rows", f"give a whole number >= 1, got {exact_rows!r}")
    references: dict[str, pd.DataFrame | None] = {}
    open_windows: dict[tuple[pd.Timestamp, str, str], WindowDrift | list[str]] = {}
    done: dict[tuple[pd.Timestamp, str, str], pd.DataFrame] = {}
    late: collections.Counter[tuple[pd.Timestamp, str, str]] = collections.Counter()
    reports: dict[tuple[pd.Timestamp, str], DriftReport] = {}

    def finish(at: tuple[pd.Timestamp, str, str]) -> None:
        start, model, version = at
        window_drift = open_windows.pop(at)
        if isinstance(window_drift, list):
            frame = pd.DataFrame([{"feature": c, "message": f"no reference for {model}:"
                                   f"{version}"} for c in window_drift],
                                 columns=list(REPORT_COLUMNS))
            frame["drifted"] = False
        else:
            report = window_drift.report(alpha=alpha, correction=correction)
            reports[(start, f"{model}:{version}")] = report
            frame = report.frame
        outputs = frame["feature"].astype(str).str.startswith("output") & frame[
            "message"].astype(str).str.startswith("only in current")
        frame.loc[outputs, "message"] = (
            "the reference has no model outputs to compare with: register the reference "
            "with an 'output' column (the model's answers to it), or compare with a time "
            "range of the version's own calls")
        done[at] = frame.assign(window=start, model=model, version=version)

    read = 0
    for chunk in [calls] if isinstance(calls, pd.DataFrame) else calls:
        read += len(chunk)
        if progress is not None:
            progress(len(done), read)
        if chunk.empty or not any(c.startswith("input.") for c in chunk.columns):
            continue
        sampled = chunk[chunk.filter(like="input.").notna().any(axis=1)]
        for (start, model, version), part in sampled.groupby(
                [sampled["time"].dt.floor(length), sampled["model"], sampled["version"]],
                sort=True):
            at = (start, str(model), str(version))
            if at in done:
                late[at] += len(part)
                continue
            current = call_features(part)
            if at not in open_windows:
                key = f"{model}:{version}"
                if key not in references:
                    references[key] = reference(key)
                ref = references[key]
                open_windows[at] = [] if ref is None else WindowDrift(ref,
                                                                      exact_rows=exact_rows)
            window_drift = open_windows[at]
            if isinstance(window_drift, list):
                window_drift.extend(c for c in current.columns if c not in window_drift)
            else:
                window_drift.add(current)
        horizon = chunk["time"].min()
        for at in [at for at in open_windows if at[0] + length + LATE_GRACE <= horizon]:
            finish(at)
    for at in list(open_windows):
        finish(at)
    if progress is not None:
        progress(len(done), read)
    for at, count in late.items():
        frame = done[at]
        said = f"{count} records written after this window was tested are left out"
        frame["message"] = [f"{m}; {said}" if isinstance(m, str) and m else said
                            for m in frame["message"]]
    rows = [done[at] for at in sorted(done)]
    frame = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
        columns=list(TIMELINE_COLUMNS))
    frame = frame[list(TIMELINE_COLUMNS)]
    frame["drifted"] = frame["drifted"].astype(bool)
    return DriftTimeline.of(frame, window, alpha, reports)
