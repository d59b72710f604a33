"""What each inference costs: a price catalog, the rate of a model version, the cost of one
call, and spend summaries. Pure (the catalog's file is read and written by
:mod:`overlay_sdk.prices`).

- Provider models are priced per 1,000 input and output tokens
  (``catalog.tokens["openai:gpt-4o-mini"] = TokenPrice(0.00015, 0.0006)``).
- Self-hosted versions are priced by the hour of what they hold: the hourly price of their
  GPU type times the share of it they declared (``resources={"gpu": "A100-80GB",
  "fraction": 0.25}``), or of their CPU cores; a call costs its busy time (its latency) x
  that hourly share. Calls served at the same time each pay their whole latency: the sum
  is what the calls used if served one by one, an upper bound of the machine's time when
  a version serves calls concurrently (divide by the concurrency for the machine's bill).
- The gateway prices a version's calls from the catalog as it was when it loaded the
  version, and again whenever the catalog file changed (it looks every
  ``alert_interval`` seconds): an edit applies to calls from then on, never to calls
  already recorded.

Costs are kept as whole nano-dollars (1e-9 USD, :data:`NANO`) so that totals are exact
sums of the per-call costs, whatever the grouping; frames show them as ``cost_usd``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from overlay_sdk.errors import ValidationError

__all__ = ["BY", "COST_COLUMNS", "NANO", "PriceCatalog", "Rate", "TokenPrice", "call_cost",
           "cost_frame", "rate_for"]

NANO = 1_000_000_000  # nano-dollars per dollar
BY = {"hour": "1h", "day": "1D", "version": None, "overlay": None}
COST_COLUMNS = ("calls", "priced_calls", "cost_usd", "usd_per_call", "tokens_in", "tokens_out")


@dataclass(frozen=True)
class TokenPrice:
    """USD per 1,000 input tokens and per 1,000 output tokens."""

    input_per_1k: float
    output_per_1k: float


def _price(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
            math.isfinite(value) and value >= 0):
        raise ValidationError.at(path, f"give a price in USD >= 0, got {value!r:.40}")
    return float(value)


@dataclass(frozen=True)
class PriceCatalog:
    """``tokens``: ``"provider:model"`` (or ``"model"`` for any provider) -> TokenPrice;
    ``compute``: GPU type (``"A100-80GB"``) or ``"cpu"`` (per core) -> USD per hour."""

    tokens: Mapping[str, TokenPrice] = field(default_factory=dict)
    compute: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> PriceCatalog:
        """A catalog from its JSON form; ValidationError naming the entry at fault."""
        if not isinstance(doc, Mapping) or set(doc) - {"tokens", "compute"}:
            raise ValidationError.at("prices", 'give {"tokens": {...}, "compute": {...}}')
        tokens = {}
        for key, value in (doc.get("tokens") or {}).items():
            if not isinstance(value, Mapping) or set(value) != {"input_per_1k", "output_per_1k"}:
                raise ValidationError.at(f"tokens.{key}", 'give {"input_per_1k": USD, '
                                         '"output_per_1k": USD}')
            tokens[str(key)] = TokenPrice(_price(value["input_per_1k"], f"tokens.{key}."
                                                 "input_per_1k"),
                                          _price(value["output_per_1k"], f"tokens.{key}."
                                                 "output_per_1k"))
        compute = {str(k): _price(v, f"compute.{k}") for k, v in
                   (doc.get("compute") or {}).items()}
        return cls(tokens, compute)

    def to_dict(self) -> dict[str, Any]:
        return {"tokens": {k: {"input_per_1k": v.input_per_1k, "output_per_1k": v.output_per_1k}
                           for k, v in sorted(self.tokens.items())},
                "compute": dict(sorted(self.compute.items()))}

    def frame(self) -> pd.DataFrame:
        """The catalog as a table: kind, name, and its prices."""
        rows = [{"kind": "tokens", "name": k, "input_per_1k": v.input_per_1k,
                 "output_per_1k": v.output_per_1k, "usd_per_hour": math.nan}
                for k, v in sorted(self.tokens.items())]
        rows += [{"kind": "compute", "name": k, "input_per_1k": math.nan,
                  "output_per_1k": math.nan, "usd_per_hour": v}
                 for k, v in sorted(self.compute.items())]
        return pd.DataFrame(rows, columns=["kind", "name", "input_per_1k", "output_per_1k",
                                           "usd_per_hour"])


@dataclass(frozen=True)
class Rate:
    """How one version's calls are priced: per token, per busy hour, or not (``why``)."""

    kind: Literal["tokens", "compute", "none"]
    tokens: TokenPrice | None = None
    usd_per_hour: float = 0.0
    why: str = ""


def rate_for(catalog: PriceCatalog, *, provider: str | None = None, model: str | None = None,
             gpu: str | int | None = None, fraction: float | None = None,
             cpu: float | None = None) -> Rate:
    """The rate of a version: a provider ``model`` by its token price; else its declared
    ``gpu`` (type, share ``fraction``) or ``cpu`` cores by their hourly price."""
    if provider is not None:
        price = catalog.tokens.get(f"{provider}:{model}") or catalog.tokens.get(str(model))
        if price is None:
            return Rate("none", why=f"no token price for {provider}:{model}; add one with "
                        f"cp.prices.set_tokens({provider!r}, {model!r}, input_per_1k=..., "
                        "output_per_1k=...)")
        return Rate("tokens", tokens=price)
    if gpu is not None:
        # a GPU type ("A100-80GB") at its own price; a count of GPUs of no type (2) at the
        # generic "gpu" price each
        kind = "gpu" if isinstance(gpu, int) else str(gpu)
        hourly = catalog.compute.get(kind)
        if hourly is None:
            return Rate("none", why=f"no hourly price for GPU {kind}; add one with "
                        f"cp.prices.set_compute({kind!r}, usd_per_hour=...)")
        count = float(gpu) if isinstance(gpu, int) else 1.0
        return Rate("compute", usd_per_hour=hourly * (fraction if fraction else count))
    hourly = catalog.compute.get("cpu")
    if hourly is None:
        return Rate("none", why="no hourly price per CPU core; add one with "
                    "cp.prices.set_compute('cpu', usd_per_hour=...)")
    return Rate("compute", usd_per_hour=hourly * (cpu if cpu else 1.0))


def call_cost(rate: Rate, *, tokens_in: int | None, tokens_out: int | None,
              busy_ms: float) -> int | None:
    """The cost of one call in nano-dollars (None: not priced): tokens x their price, or
    busy time x the hourly price of what the version holds."""
    if rate.kind == "tokens" and rate.tokens is not None:
        if tokens_in is None and tokens_out is None:
            return None  # the provider said nothing of usage
        usd = ((tokens_in or 0) * rate.tokens.input_per_1k
               + (tokens_out or 0) * rate.tokens.output_per_1k) / 1000
        return round(usd * NANO)
    if rate.kind == "compute":
        return round(max(busy_ms, 0.0) / 3_600_000 * rate.usd_per_hour * NANO)
    return None


def cost_frame(calls: pd.DataFrame, by: str | None = "version") -> pd.DataFrame:
    """Spend of call records (with ``cost_nusd``): per ``model, version``, per ``overlay``,
    or per ``hour``/``day`` and version, with :data:`COST_COLUMNS`. ``cost_usd`` is the
    exact sum of the per-call costs (``cost_nusd``, whole nano-dollars, is kept too)."""
    if by not in BY:
        raise ValidationError.at("by", f"give one of {', '.join(BY)}, got {by!r}")
    keys: list[Any] = ["overlay"] if by == "overlay" else ["model", "version"]
    if BY[by] is not None:
        keys = [pd.Grouper(key="time", freq=BY[by]), *keys]
    names = ["time", *keys[1:]] if BY[by] is not None else keys
    if calls.empty:
        return pd.DataFrame(columns=[*names, *COST_COLUMNS, "cost_nusd"])
    frame = calls.assign(
        priced=calls["cost_nusd"].notna(),
        cost_nusd=calls["cost_nusd"].fillna(0).astype("int64"),
        tokens_in=calls["tokens_in"].fillna(0).astype("int64"),
        tokens_out=calls["tokens_out"].fillna(0).astype("int64"))
    grouped = frame.groupby(keys, sort=True)
    out = pd.DataFrame({
        "calls": grouped.size(), "priced_calls": grouped["priced"].sum(),
        "cost_nusd": grouped["cost_nusd"].sum(), "tokens_in": grouped["tokens_in"].sum(),
        "tokens_out": grouped["tokens_out"].sum()}).reset_index()
    out = out[out["calls"] > 0].reset_index(drop=True)
    out["cost_usd"] = out["cost_nusd"] / NANO
    priced = out["priced_calls"].where(out["priced_calls"] > 0)
    out["usd_per_call"] = out["cost_usd"] / priced
    for column in ("calls", "priced_calls", "cost_nusd", "tokens_in", "tokens_out"):
        out[column] = out[column].astype("int64")
    return out[[*names, *COST_COLUMNS, "cost_nusd"]]
