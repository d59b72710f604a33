"""Notebook widgets (anywidget): each is one Python class here and one ES module and CSS
file of the same base name in ``widgets/`` at the top of the repository.

``TrafficSplitter(overlay)``: drag an overlay's traffic between versions.
``ModelRegistry(cp)``: models and versions; register from an MLflow run; roll back an alias.
"""

from __future__ import annotations

from overlay_sdk.widgets.model_registry import ModelRegistry
from overlay_sdk.widgets.traffic_splitter import TrafficSplitter

__all__ = ["ModelRegistry", "TrafficSplitter"]
