"""Notebook widgets (anywidget): each is one Python class here and one ES module and CSS
file of the same base name in ``widgets/`` at the top of the repository. They talk to the
SDK only; charts are plotly ``FigureWidget``s.

``TrafficSplitter(overlay)``: drag an overlay's traffic between versions.
``ModelRegistry(cp)``: models and versions; register from an MLflow run; roll back an alias.
``DriftView(overlay)``: feature x window heatmap of drift; a cell's distributions; alerts.
``CostView(overlay_or_cp)``: spend over time by version, cost per inference, the budget.
``TopologyMap(cp)``: the live graph host apps -> overlays -> model versions.
``Dashboard(overlay)``: the above for one overlay, in tabs.
"""

from __future__ import annotations

from overlay_sdk.widgets.cost_view import CostView
from overlay_sdk.widgets.dashboard import Dashboard
from overlay_sdk.widgets.drift_view import DriftView
from overlay_sdk.widgets.model_registry import ModelRegistry
from overlay_sdk.widgets.topology_map import TopologyMap
from overlay_sdk.widgets.traffic_splitter import TrafficSplitter

__all__ = ["CostView", "Dashboard", "DriftView", "ModelRegistry", "TopologyMap",
           "TrafficSplitter"]
