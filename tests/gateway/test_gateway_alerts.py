"""Drift and budget alerts raised by the gateway's periodic evaluation, once each; drift
of an overlay's traffic through o.drift() (issue 6)."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import numpy as np

from overlay_sdk.client import ControlPlane


def _send(url: str, name: str, rows: list[dict[str, float]]) -> None:
    async def go() -> None:
        async with aiohttp.ClientSession() as s:
            for row in rows:
                async with s.post(f"{url}/_overlay/{name}/invoke", json={"inputs": row}) as r:
                    assert r.status == 200, await r.text()
    asyncio.run(go())


def _rows(n: int, amount_shift: float, seed: int) -> list[dict[str, float]]:
    values = np.random.default_rng(seed).normal(size=(n, 4))
    values[:, 0] += amount_shift
    return [{"amount": float(a), "age_days": float(b), "velocity": float(c),
             "risk_score": float(d)} for a, b, c, d in values]


def test_a_budget_alert_fires_once_when_the_day_passes_the_budget(
        plane: ControlPlane, legacy_url: str) -> None:
    plane.prices.set_compute("cpu", usd_per_hour=3600.0)  # a dollar a busy second
    o = plane.overlays.create("budgeted", host=legacy_url, routes={"fraud:1": 100},
                              budget={"usdPerDay": 0.001})
    try:
        with plane.start_gateway(port=0) as gw:  # loads fraud:1 with the new price
            gw.wait(o)
            assert gw.evaluate_alerts() == []  # nothing spent yet
            _send(gw.url, "budgeted", _rows(5, 0.0, 1))
            raised = gw.evaluate_alerts()
            assert [a.kind for a in raised] == ["budget"]
            assert "over its budget of 0.001 USD a day" in raised[0].message
            _send(gw.url, "budgeted", _rows(5, 0.0, 2))
            assert gw.evaluate_alerts() == []  # once a day
        alerts = o.alerts()
        assert list(alerts["kind"]) == ["budget"] and alerts["details"][0]["limit_usd"] == 0.001
    finally:
        plane.overlays.delete("budgeted")
        plane.prices.set_compute("cpu", usd_per_hour=0.04)


def test_inputs_moved_away_from_the_reference_raise_a_drift_alert(
        plane: ControlPlane, legacy_url: str) -> None:
    o = plane.overlays.create("watched-drift", host=legacy_url, routes={"fraud:2": 100},
                              drift={"window": "1D", "consecutive": 1, "alpha": 0.01})
    try:
        with plane.start_gateway(port=0) as gw:
            gw.wait(o)
            _send(gw.url, "watched-drift", _rows(150, 3.0, 3))  # amount moved by 3 sigma
            raised = gw.evaluate_alerts()
            assert [(a.kind, a.subject, a.version) for a in raised] == [
                ("drift", "amount", "fraud:2")]
            assert gw.evaluate_alerts() == []  # the same run: the same alert
        timeline = o.drift(window="1D")
        today = timeline.frame.set_index("feature")
        assert today.loc["amount", "drifted"] and not today.loc["risk_score", "drifted"]
        assert today.loc["amount", "rows_current"] == 150
        assert "no model outputs" in today.loc["output", "message"]  # none registered
        assert list(o.alerts(kind="drift")["subject"]) == ["amount"]
        assert timeline.plot().data[0].type == "heatmap"
    finally:
        plane.overlays.delete("watched-drift")


def test_the_gateway_evaluates_alerts_on_its_own(plane: ControlPlane, legacy_url: str) -> None:
    plane.prices.set_compute("cpu", usd_per_hour=3600.0)
    o = plane.overlays.create("self-watched", host=legacy_url, routes={"fraud:1": 100},
                              budget={"usdPerDay": 0.001})
    try:
        with plane.start_gateway(port=0, alert_interval=0.2) as gw:
            gw.wait(o)
            assert o.alerts().empty
            _send(gw.url, "self-watched", _rows(5, 0.0, 4))
            gw.flush()
            deadline = time.monotonic() + 10
            while o.alerts().empty:
                assert time.monotonic() < deadline, "no alert from the periodic evaluation"
                time.sleep(0.1)
        assert list(o.alerts()["kind"]) == ["budget"]
    finally:
        plane.overlays.delete("self-watched")
        plane.prices.set_compute("cpu", usd_per_hour=0.04)
