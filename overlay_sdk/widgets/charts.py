"""Plotly charts inside the widgets: each chart is a ``go.FigureWidget`` (itself an
anywidget) held by a widget trait and drawn by the widget's front end as a child view;
its content is replaced in place, so a chart's clicks stay wired."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

__all__ = ["CHART", "blank", "chart", "show"]

CHART: dict[str, Any] = {"template": "plotly_white", "margin": {"l": 60, "r": 20, "t": 50,
                                                                  "b": 50}}


def chart(height: int = 320) -> go.FigureWidget:
    """An empty chart to fill with :func:`show`."""
    return go.FigureWidget(layout={**CHART, "height": height})


def blank(message: str, height: int = 200) -> go.Figure:
    """A figure that only says ``message`` (nothing to draw yet, or why not)."""
    # (the message is the title: an annotation would outlive the figure in the browser,
    # where a FigureWidget's layout is patched, not replaced)
    figure = go.Figure(layout={**CHART, "height": height, "title": {"text": message,
                                                                     "font": {"size": 14}}})
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    return figure


def show(widget: go.FigureWidget, figure: go.Figure) -> None:
    """Replace ``widget``'s traces and layout with ``figure``'s."""
    with widget.batch_update():
        widget.data = ()
        widget.add_traces(list(figure.data))
        widget.layout = figure.layout
