"""Plotly figures of a drift report: adjusted p-values per feature, and a feature's
reference and current distributions."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

__all__ = ["feature_figure", "p_value_figure", "timeline_figure"]

REFERENCE = "#546e7a"
CURRENT = "#ef6c00"
DRIFTED = "#c62828"
STABLE = "#2e7d32"


def p_value_figure(frame: pd.DataFrame, alpha: float) -> go.Figure:
    """Adjusted p-value per tested feature on a log scale, the ``alpha`` line, drifted
    features in red."""
    tested = frame[frame["p_adjusted"].notna()].sort_values("p_adjusted")
    floor = 1e-300
    values = np.maximum(tested["p_adjusted"].to_numpy(dtype=float), floor)
    figure = go.Figure(go.Bar(
        x=tested["feature"], y=values,
        marker_color=[DRIFTED if d else STABLE for d in tested["drifted"]],
        # (the bar stops at 1e-300 on the log axis; the hover says the real value)
        customdata=np.stack([tested["test"], tested["statistic"],
                             tested["p_adjusted"].map(lambda p: f"{p:.3g}")], axis=-1),
        hovertemplate="%{x}<br>adjusted p %{customdata[2]}<br>%{customdata[0]} statistic "
                      "%{customdata[1]:.4f}<extra></extra>"))
    figure.add_hline(y=alpha, line_dash="dash", annotation_text=f"alpha {alpha}")
    figure.update_layout(title="Drift: adjusted p-value per feature (red: drifted)",
                         yaxis_type="log", yaxis_title="adjusted p-value",
                         xaxis_title="feature", template="plotly_white", height=380)
    return figure


def feature_figure(name: str, shape: Any, row: pd.Series) -> go.Figure:
    """Reference against current for one feature: ECDFs for numbers, shares for
    categories; the title gives the test's verdict."""
    verdict = ("drifted" if row["drifted"] else "no drift shown") if pd.notna(
        row["p_adjusted"]) else (row["message"] or "not tested")
    p = f", adjusted p {row['p_adjusted']:.3g}" if pd.notna(row["p_adjusted"]) else ""
    figure = go.Figure()
    if shape.kind == "numeric":
        levels = np.linspace(0, 1, len(shape.reference))
        figure.add_trace(go.Scatter(x=shape.reference, y=levels, name="reference",
                                    line={"color": REFERENCE, "shape": "hv"}))
        figure.add_trace(go.Scatter(x=shape.current, y=np.linspace(0, 1, len(shape.current)),
                                    name="current", line={"color": CURRENT, "shape": "hv"}))
        figure.update_layout(yaxis_title="cumulative share", xaxis_title=name)
    else:
        categories = sorted(set(shape.reference.index) | set(shape.current.index))
        figure.add_trace(go.Bar(x=categories, y=[shape.reference.get(c, 0) for c in categories],
                                name="reference", marker_color=REFERENCE))
        figure.add_trace(go.Bar(x=categories, y=[shape.current.get(c, 0) for c in categories],
                                name="current", marker_color=CURRENT))
        figure.update_layout(barmode="group", yaxis_title="share", xaxis_title=name)
    figure.update_layout(title=f"{name}: {verdict}{p}", template="plotly_white", height=340)
    return figure


def timeline_figure(frame: pd.DataFrame, version: str, alpha: float) -> go.Figure:
    """Adjusted p-value per feature (rows) and window (columns) for one version: red where
    the feature drifted (log colour scale; grey: not tested)."""
    tested = frame.assign(log_p=np.log10(frame["p_adjusted"].astype(float).clip(lower=1e-12)))
    grid = tested.pivot_table(index="feature", columns="window", values="log_p",
                              aggfunc="first", dropna=False)
    marks = tested.pivot_table(index="feature", columns="window", values="drifted",
                               aggfunc="first", dropna=False).reindex_like(grid)
    text = marks.map(lambda d: "drifted" if d is True else "")
    figure = go.Figure(go.Heatmap(
        z=grid.to_numpy(), x=[str(w) for w in grid.columns], y=list(grid.index),
        text=text.to_numpy(), zmin=-12, zmax=0, colorscale="RdBu",
        colorbar={"title": "adjusted p", "tickvals": [-12, -6, float(np.log10(alpha)), 0],
                  "ticktext": ["1e-12", "1e-6", f"alpha {alpha:g}", "1"]},
        hovertemplate="%{y} at %{x}<br>log10 adjusted p %{z:.2f}<br>%{text}<extra></extra>"))
    figure.update_layout(title=f"Drift of {version} per window (red: small p-values)",
                         template="plotly_white", height=120 + 28 * len(grid.index),
                         xaxis_title="window start", yaxis_title="feature",
                         # one column per window, labelled by its start (a date axis would
                         # centre each cell on its start)
                         xaxis={"type": "category", "tickvals": [str(w) for w in grid.columns],
                                "ticktext": [pd.Timestamp(w).strftime("%m-%d %H:%M")
                                             for w in grid.columns]})
    return figure
