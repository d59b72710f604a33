"""Dashboard: one overlay's widgets in tabs, a header, what is still loading (issue 7)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from overlay_sdk.client import ControlPlane
from overlay_sdk.errors import ValidationError
from overlay_sdk.widgets import CostView, Dashboard, DriftView, TopologyMap, TrafficSplitter
from overlay_sdk.widgets.dashboard import loading_text

REFERENCE = pd.DataFrame({"amount": np.random.default_rng(1).normal(size=500)})


def test_the_dashboard_composes_the_overlays_widgets(cp: ControlPlane) -> None:
    o = cp.overlays.create("scoring", host="http://127.0.0.1:9",
                           routes={"fraud:1": 90, "fraud:2": 10})
    board = Dashboard(o, drift={"reference": REFERENCE, "window": "15min"},
                      topology_interval=None, tab="cost").wait(30)
    assert isinstance(board.traffic, TrafficSplitter) and isinstance(board.drift, DriftView)
    assert isinstance(board.cost, CostView) and isinstance(board.topology, TopologyMap)
    assert board.drift.window == "15min" and board.tab == "cost" and board.loading == ""
    assert board.header["routes"] == "fraud:1 90%, fraud:2 10%"
    assert board.header["revision"] == 1
    assert board.splitter.apply({"fraud:1": 50, "fraud:2": 50})  # the header follows
    assert board.header["revision"] == 2 and board.header["routes"].endswith("fraud:2 50%")
    board.close()


def test_what_is_loading_is_said() -> None:
    assert loading_text(True, "1,000 calls read, 2 windows tested", True) == (
        "loading drift (1,000 calls read, 2 windows tested) and cost...")
    assert loading_text(False, "", True) == "loading cost..."
    assert loading_text(False, "", False) == ""


def test_bad_input_is_refused(cp: ControlPlane) -> None:
    o = cp.overlays.create("scoring", host="http://127.0.0.1:9", routes={"fraud:1": 100})
    with pytest.raises(ValidationError, match="tab"):
        Dashboard(o, tab="money")
    with pytest.raises(ValidationError, match="overlay"):
        Dashboard("scoring")  # type: ignore[arg-type]
    with pytest.raises(ValidationError) as err:
        Dashboard(o, drift={"windw": "1h"})
    assert err.value.paths == ["drift.windw"]
