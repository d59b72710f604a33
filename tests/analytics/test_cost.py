"""Prices, the cost of a call, and spend totals that add up exactly (issue 6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from overlay_sdk.analytics.cost import (
    NANO,
    PriceCatalog,
    TokenPrice,
    call_cost,
    cost_frame,
    rate_for,
)
from overlay_sdk.analytics.cost_frame import CostFrame
from overlay_sdk.errors import ValidationError

CATALOG = PriceCatalog(tokens={"openai:gpt-4o-mini": TokenPrice(0.15, 0.6),
                               "llama3": TokenPrice(0.0, 0.0)},
                       compute={"A100-80GB": 4.0, "cpu": 0.04})


def test_provider_models_are_priced_per_token() -> None:
    rate = rate_for(CATALOG, provider="openai", model="gpt-4o-mini")
    # 1,000 in at 0.15 and 2,000 out at 0.6 per 1k: 0.15 + 1.2 USD
    assert call_cost(rate, tokens_in=1000, tokens_out=2000, busy_ms=50) == round(1.35 * NANO)
    assert call_cost(rate, tokens_in=None, tokens_out=None, busy_ms=50) is None
    assert rate_for(CATALOG, provider="ollama", model="llama3").kind == "tokens"


def test_self_hosted_versions_are_priced_by_their_share_of_the_hour() -> None:
    quarter = rate_for(CATALOG, gpu="A100-80GB", fraction=0.25)
    assert quarter.usd_per_hour == 1.0
    assert call_cost(quarter, tokens_in=None, tokens_out=None, busy_ms=3600) == NANO // 1000
    two_cores = rate_for(CATALOG, cpu=2)
    assert call_cost(two_cores, tokens_in=None, tokens_out=None, busy_ms=3_600_000) == round(
        0.08 * NANO)
    assert rate_for(CATALOG).usd_per_hour == 0.04  # nothing declared: one core


def test_what_has_no_price_says_how_to_add_one() -> None:
    rate = rate_for(CATALOG, provider="anthropic", model="claude-sonnet-5-5")
    assert rate.kind == "none" and "cp.prices.set_tokens('anthropic'" in rate.why
    assert call_cost(rate, tokens_in=5, tokens_out=5, busy_ms=1) is None
    assert "set_compute('H100'" in rate_for(CATALOG, gpu="H100").why


def test_catalog_round_trip_and_errors_name_the_entry() -> None:
    assert PriceCatalog.from_dict(CATALOG.to_dict()) == CATALOG
    with pytest.raises(ValidationError, match=r"tokens\.x\.input_per_1k"):
        PriceCatalog.from_dict({"tokens": {"x": {"input_per_1k": -1, "output_per_1k": 0}}})
    with pytest.raises(ValidationError, match=r"compute\.cpu"):
        PriceCatalog.from_dict({"compute": {"cpu": "cheap"}})
    assert list(CATALOG.frame()["name"]) == ["llama3", "openai:gpt-4o-mini", "A100-80GB", "cpu"]


calls_strategy = st.lists(st.tuples(
    st.integers(0, 72 * 60),  # minute of three days
    st.sampled_from(["copilot:1", "copilot:2", "fraud:3"]),
    st.sampled_from(["a", "b"]),
    st.one_of(st.none(), st.integers(0, 10**9)),
    st.integers(0, 5000), st.integers(0, 5000)), min_size=0, max_size=200)


@settings(max_examples=60, deadline=None)
@given(calls_strategy)
def test_every_total_is_the_exact_sum_of_the_calls(rows: list[tuple[int, str, str, int | None,
                                                                    int, int]]) -> None:
    start = datetime(2026, 11, 24, tzinfo=UTC)
    calls = pd.DataFrame([{
        "time": start + timedelta(minutes=m), "model": key.split(":")[0],
        "version": key.split(":")[1], "overlay": overlay, "cost_nusd": cost,
        "tokens_in": tin, "tokens_out": tout} for m, key, overlay, cost, tin, tout in rows],
        columns=["time", "model", "version", "overlay", "cost_nusd", "tokens_in",
                 "tokens_out"])
    expected = int(calls["cost_nusd"].fillna(0).sum())
    for by in ("version", "hour", "day", "overlay"):
        frame = cost_frame(calls, by)
        assert int(frame["cost_nusd"].sum()) == expected, by
        assert int(frame["calls"].sum()) == len(calls)
        assert int(frame["priced_calls"].sum()) == int(calls["cost_nusd"].notna().sum())
        assert CostFrame(frame).total_usd == expected / NANO
    by_day = cost_frame(calls, "day")
    for _, row in by_day.iterrows():  # a day's total is its calls' sum, exactly
        day = calls[(calls["time"].dt.floor("1D") == row["time"])
                    & (calls["model"] == row["model"]) & (calls["version"] == row["version"])]
        assert int(day["cost_nusd"].fillna(0).sum()) == row["cost_nusd"]


def test_a_plot_of_spend() -> None:
    calls = pd.DataFrame({"time": pd.date_range("2026-11-24", periods=48, freq="1h", tz="UTC"),
                          "model": "copilot", "version": ["1", "2"] * 24, "overlay": "o",
                          "cost_nusd": 10**6, "tokens_in": 10, "tokens_out": 5})
    frame = CostFrame(cost_frame(calls, "day"))
    frame.budget_usd_per_day = 0.02
    figure = frame.plot()
    assert {t.name for t in figure.data if t.name} == {"copilot:1", "copilot:2"}
    assert figure.layout.barmode == "stack"
    with pytest.raises(ValidationError, match="by"):
        cost_frame(calls, "week")


def test_a_count_of_gpus_uses_the_generic_gpu_price() -> None:
    catalog = PriceCatalog(compute={"gpu": 2.0})
    assert rate_for(catalog, gpu=2).usd_per_hour == 4.0
    assert "set_compute('gpu'" in rate_for(CATALOG, gpu=1).why
