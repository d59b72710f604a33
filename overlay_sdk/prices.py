"""The price catalog of a home, as users edit it: ``cp.prices``.

Kept as JSON in ``<home>/prices.json`` (written atomically; a catalog that does not parse
is an error naming the entry, never silently replaced). A home without one starts from
:data:`DEFAULT_PRICES`: an hourly CPU-core price only, since token and GPU prices differ by
contract and change often; set yours::

    cp.prices.set_tokens("openai", "gpt-4o-mini", input_per_1k=0.00015, output_per_1k=0.0006)
    cp.prices.set_compute("A100-80GB", usd_per_hour=3.40)
    cp.prices.frame()

The gateway reads the catalog when it loads a version, and again when the file changes
(it looks every ``alert_interval`` seconds), and prices each call as it records it
(:mod:`overlay_sdk.analytics.cost`): a changed price applies to calls from then on, never
to calls already recorded.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from overlay_sdk.analytics.cost import PriceCatalog, TokenPrice
from overlay_sdk.errors import ValidationError

__all__ = ["DEFAULT_PRICES", "PRICES_FILE", "PriceBook", "load_catalog"]

PRICES_FILE = "prices.json"
DEFAULT_PRICES: dict[str, Any] = {"tokens": {}, "compute": {"cpu": 0.04}}
"""USD 0.04 per CPU-core hour (a typical on-demand cloud price, 2026): edit it."""


def load_catalog(home: str | Path) -> PriceCatalog:
    """The catalog of ``home`` (the defaults when it has none)."""
    path = Path(home) / PRICES_FILE
    if not path.exists():
        return PriceCatalog.from_dict(DEFAULT_PRICES)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise ValidationError.at("prices", f"{path} is not JSON ({err}); fix it or delete it "
                                 "to start again from the defaults") from None
    return PriceCatalog.from_dict(doc)


class PriceBook:
    """``cp.prices``: read and edit the home's price catalog."""

    def __init__(self, home: str | Path) -> None:
        self.home = Path(home)

    @property
    def catalog(self) -> PriceCatalog:
        return load_catalog(self.home)

    def frame(self) -> pd.DataFrame:
        """The catalog as a DataFrame."""
        return self.catalog.frame()

    def _save(self, catalog: PriceCatalog) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        text = json.dumps(catalog.to_dict(), indent=2) + "\n"
        fd, tmp = tempfile.mkstemp(dir=self.home, prefix=".prices-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, self.home / PRICES_FILE)

    def set_tokens(self, provider: str, model: str, *, input_per_1k: float,
                   output_per_1k: float) -> None:
        """The price of a provider model per 1,000 input and output tokens (USD)."""
        current = self.catalog
        checked = PriceCatalog.from_dict({"tokens": {f"{provider}:{model}": {
            "input_per_1k": input_per_1k, "output_per_1k": output_per_1k}}})
        tokens: dict[str, TokenPrice] = {**current.tokens, **checked.tokens}
        self._save(PriceCatalog(tokens, current.compute))

    def set_compute(self, kind: str, *, usd_per_hour: float) -> None:
        """The hourly price of one GPU of type ``kind`` (``"A100-80GB"``), or of one CPU
        core (``"cpu"``)."""
        current = self.catalog
        checked = PriceCatalog.from_dict({"compute": {kind: usd_per_hour}})
        self._save(PriceCatalog(current.tokens, {**current.compute, **checked.compute}))

    def remove(self, name: str) -> None:
        """Forget a price (``"openai:gpt-4o-mini"``, ``"A100-80GB"``, ``"cpu"``)."""
        current = self.catalog
        if name not in current.tokens and name not in current.compute:
            raise ValidationError.at("name", f"{name!r} has no price; priced: "
                                     f"{', '.join([*current.tokens, *current.compute])}")
        self._save(PriceCatalog({k: v for k, v in current.tokens.items() if k != name},
                                {k: v for k, v in current.compute.items() if k != name}))

    def __repr__(self) -> str:
        catalog = self.catalog
        return (f"<PriceBook {len(catalog.tokens)} token prices, {len(catalog.compute)} "
                f"compute prices at {self.home / PRICES_FILE}>")
