"""Spend tables that draw themselves: :class:`CostFrame` is a DataFrame whose ``.plot()``
gives plotly figures (spend over time stacked by version, cost per inference by version)."""

from __future__ import annotations

from typing import Any, ClassVar

import pandas as pd

__all__ = ["CostFrame"]


class CostFrame(pd.DataFrame):  # type: ignore[misc]
    """What ``o.cost()`` and ``cp.cost()`` return: a DataFrame of spend (see
    :func:`overlay_sdk.analytics.cost.cost_frame`) with a plotly ``plot()``."""

    _metadata: ClassVar[list[str]] = ["budget_usd_per_day", "by"]  # kept by pandas
    budget_usd_per_day: float | None = None
    by: str = "version"  # how the spend is grouped: version, hour, day, overlay

    @property
    def _constructor(self) -> Any:
        return CostFrame

    @property
    def total_usd(self) -> float:
        """The spend of every call in the frame (exact: a sum of whole nano-dollars)."""
        return int(self["cost_nusd"].sum()) / 1_000_000_000 if len(self) else 0.0

    def plot(self, *args: Any, **kwargs: Any) -> Any:
        """One plotly figure: spend over time stacked by version (or per version without a
        time column), beside the cost per inference of each version; the daily budget is a
        line over spend per day, and its pace (a 24th of it) over spend per hour."""
        from plotly.subplots import make_subplots

        series = "overlay" if "overlay" in self.columns else "version"
        label = (self[series].astype(str) if series == "overlay" else
                 self["model"].astype(str) + ":" + self["version"].astype(str))
        frame = self.assign(label=label)
        figure = make_subplots(rows=1, cols=2, column_widths=[0.62, 0.38], subplot_titles=(
            "spend (USD)" + (" over time" if "time" in frame else ""),
            "cost per inference (USD)"))
        x = "time" if "time" in frame else "label"
        for name, part in frame.groupby("label", sort=True):
            figure.add_bar(x=part[x], y=part["cost_usd"], name=str(name), legendgroup=str(name),
                           row=1, col=1)
        per_call = frame.groupby("label", sort=True).agg(
            cost=("cost_nusd", "sum"), priced=("priced_calls", "sum"))
        per_call = per_call[per_call["priced"] > 0]
        figure.add_bar(x=per_call.index, y=per_call["cost"] / 1e9 / per_call["priced"],
                       marker_color="#546e7a", showlegend=False, row=1, col=2)
        if self.budget_usd_per_day is not None and x == "time":
            # per hour, the pace that spends the daily budget in a day
            hourly = self.by == "hour"
            line = self.budget_usd_per_day / 24 if hourly else self.budget_usd_per_day
            figure.add_hline(y=line, line_dash="dash", row=1, col=1, annotation_text=(
                f"budget pace {line:.3g} USD/hour ({self.budget_usd_per_day:g}/day)" if hourly
                else f"budget {self.budget_usd_per_day:g} USD/day"))
        figure.update_layout(barmode="stack", template="plotly_white", height=380,
                             title="Cost")
        return figure
