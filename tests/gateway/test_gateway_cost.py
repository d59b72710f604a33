"""Each call priced as the gateway records it, totals exact (issue 6)."""

from __future__ import annotations

import asyncio
import os

import aiohttp
import pytest
from gateway_support import ROW
from providers_support import KEY, FakeProviders

from overlay_sdk.analytics.cost import NANO
from overlay_sdk.client import ControlPlane
from overlay_sdk.telemetry import read_calls


def _invoke(url: str, name: str, inputs: object, times: int) -> list[int]:
    async def go() -> list[int]:
        async with aiohttp.ClientSession() as s:
            out = []
            for _ in range(times):
                async with s.post(f"{url}/_overlay/{name}/invoke", json={"inputs": inputs}) as r:
                    await r.read()
                    out.append(r.status)
            return out
    return asyncio.run(go())


def test_calls_are_priced_by_tokens_or_busy_time_and_totals_add_up(
        plane: ControlPlane, fake: FakeProviders, legacy_url: str) -> None:
    os.environ["OVERLAY_TEST_COST_KEY"] = KEY
    chat = plane.models.register("priced-chat", provider="openai",
                                 params={"model": "gpt-4o-mini"},
                                 api_key_env="OVERLAY_TEST_COST_KEY")
    plane.prices.set_tokens("openai", "gpt-4o-mini", input_per_1k=0.15, output_per_1k=0.6)
    plane.prices.set_compute("cpu", usd_per_hour=36.0)  # 0.01 USD a busy second
    made = [plane.overlays.create("priced-chat", host=legacy_url, routes={str(chat): 100},
                                  budget={"usdPerDay": 5}),
            plane.overlays.create("priced-fraud", host=legacy_url, routes={"fraud:1": 100})]
    try:
        with plane.start_gateway(port=0, endpoints={str(chat): fake.url + "/v1"}) as gw:
            for o in made:
                gw.wait(o)
            assert _invoke(gw.url, "priced-chat", "hello", 5) == [200] * 5
            assert _invoke(gw.url, "priced-fraud", ROW, 4) == [200] * 4
            assert _invoke(gw.url, "priced-chat", "fail", 1) == [502]
            assert not gw.refresh_prices()  # nothing changed
            plane.prices.set_tokens("openai", "gpt-4o-mini", input_per_1k=0.3,
                                    output_per_1k=1.2)  # twice the price, from now on
            assert gw.refresh_prices()
            assert _invoke(gw.url, "priced-chat", "hello", 1) == [200]
            gw.flush()
        records = read_calls(plane.telemetry_url, payloads=False)
        chat_calls = records[records["overlay"] == "priced-chat"]
        # 11 tokens in, 3 out, as the fake answers: 11 * 0.15/1k + 3 * 0.6/1k USD
        per_call = round((11 * 0.15 + 3 * 0.6) / 1000 * NANO)
        ok = chat_calls[chat_calls["status"] == "ok"]
        assert list(ok["cost_nusd"]) == [per_call] * 5 + [2 * per_call]
        assert chat_calls[chat_calls["status"] != "ok"]["cost_nusd"].isna().all()  # no usage
        fraud = records[records["overlay"] == "priced-fraud"]
        for _, call in fraud.iterrows():  # busy time x 36 USD an hour
            assert call["cost_nusd"] == round(call["latency_ms"] / 3_600_000 * 36.0 * NANO)
        cost = made[0].cost()
        assert list(cost["calls"]) == [7] and list(cost["priced_calls"]) == [6]
        assert int(cost["cost_nusd"].iloc[0]) == 7 * per_call
        assert cost["usd_per_call"].iloc[0] == pytest.approx(7 * per_call / 6 / NANO)
        assert cost.budget_usd_per_day == 5
        everything = plane.cost()
        assert set(everything["overlay"]) >= {"priced-chat", "priced-fraud"}
        assert int(everything["cost_nusd"].sum()) == int(records["cost_nusd"].fillna(0).sum())
        by_hour = made[1].cost(by="hour")
        assert int(by_hour["cost_nusd"].sum()) == int(fraud["cost_nusd"].sum())
    finally:
        for o in made:
            plane.overlays.delete(o.name)
        del os.environ["OVERLAY_TEST_COST_KEY"]
