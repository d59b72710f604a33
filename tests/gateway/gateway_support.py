"""Helpers shared by the gateway tests: models that misbehave on purpose, sample inputs.

Imported by module name (``gateway_support``): registered pyfunc models pickle these
functions by reference, which works because the tests load them in this same process.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
FEATURES = ["amount", "age_days", "velocity", "risk_score"]
RELEASE = threading.Event()  # set at teardown: hanging models return
ROW = {"amount": 120.0, "age_days": 30, "velocity": 0.5, "risk_score": 0.2}


def slow_model(frame: pd.DataFrame) -> list[float]:
    """Answers after 2 s (a slow shadow)."""
    time.sleep(2)
    return [0.5] * len(frame)


STALL = threading.Event()  # set by a test: stall_model's health check then hangs


def stall_model(frame: pd.DataFrame) -> list[float]:
    """Answers at once, or hangs while STALL is set (a health check that never returns)."""
    if STALL.is_set():
        RELEASE.wait(60)
    return [0.0] * len(frame)


def broken_model(frame: pd.DataFrame) -> list[float]:
    """Always fails."""
    raise RuntimeError("model bug: division by zero in feature scaling")


def hanging_model(frame: pd.DataFrame) -> list[float]:
    """Never answers (until the tests end)."""
    RELEASE.wait(60)
    return [0.0] * len(frame)


def training() -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(200, 4)), columns=FEATURES)
    return x, (x["amount"] + x["risk_score"] > 0).astype(int)


def invoke_body(**override: Any) -> bytes:
    return json.dumps({"inputs": {**ROW, **override}}).encode()
