"""`overlay drift`, `overlay cost`, `overlay alerts`, `overlay prices` (issue 6)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from overlay_sdk.telemetry import CallRecord, TelemetryWriter

DOC = """\
apiVersion: overlays.aioverlay.dev/v1alpha1
kind: AIOverlay
metadata: {name: scoring}
spec:
  host: {url: "http://127.0.0.1:8001"}
  routes: [{model: fraud, version: "1", weight: 100}]
"""


def test_prices_then_cost_drift_and_alerts(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert run("prices", "set-tokens", "openai", "gpt-4o-mini", "--input", "0.15",
               "--output", "0.6").exit_code == 0
    assert run("prices", "set-compute", "cpu", "--usd-per-hour", "0.05").exit_code == 0
    listed = json.loads(run("prices", "list", "-o", "json").output)
    assert {p["name"] for p in listed} == {"openai:gpt-4o-mini", "cpu"}
    bad = run("prices", "set-compute", "cpu", "--usd-per-hour", "-1")
    assert bad.exit_code == 2 and "compute.cpu" in bad.output

    (tmp_path / "o.yaml").write_text(DOC)
    assert run("apply", "-f", str(tmp_path / "o.yaml")).exit_code == 0
    writer = TelemetryWriter(f"sqlite:///{tmp_path / 'home' / 'telemetry.db'}")
    for i in range(40):
        writer.submit(CallRecord("scoring", 1, "fraud", "1", "primary", 2.0,
                                 inputs={"amount": float(i % 7), "age_days": 3.0},
                                 output=[0], cost_nusd=1000, time=datetime.now(UTC)))
    writer.flush()
    writer.close()
    spent = json.loads(run("cost", "scoring", "-o", "json").output)
    assert spent[0]["calls"] == 40 and spent[0]["cost_usd"] == pytest.approx(40e-6)
    everything = json.loads(run("cost", "-o", "json").output)
    assert everything[0]["overlay"] == "scoring"
    drifted = run("drift", "scoring", "--window", "1D")
    assert drifted.exit_code == 0 and "amount" in drifted.output
    assert run("drift", "scoring", "--window", "soon").exit_code == 2
    ranged = json.loads(run("drift", "scoring", "--window", "1D", "--reference",
                            "2 days ago", "now", "-o", "json").output)
    assert {r["feature"] for r in ranged} == {"amount", "age_days", "output"}
    assert not any(r["drifted"] for r in ranged)  # the same calls on both sides
    pd.DataFrame({"amount": [50.0 + i for i in range(40)], "age_days": 3.0}).to_csv(
        tmp_path / "ref.csv", index=False)
    filed = json.loads(run("drift", "scoring", "--window", "1D", "--reference-file",
                           str(tmp_path / "ref.csv"), "-o", "json").output)
    assert {r["feature"]: r["drifted"] for r in filed}["amount"] is True
    assert run("drift", "scoring", "--reference", "a", "b", "--reference-file",
               str(tmp_path / "ref.csv")).exit_code == 2
    assert json.loads(run("alerts", "scoring", "-o", "json").output) == []
    assert run("drift", "nope").exit_code == 3
