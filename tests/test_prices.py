"""The home's price catalog as users edit it: cp.prices (issue 6)."""

from __future__ import annotations

from pathlib import Path

import pytest

from overlay_sdk.errors import ValidationError
from overlay_sdk.prices import DEFAULT_PRICES, PRICES_FILE, PriceBook, load_catalog


def test_defaults_then_edits_persist(tmp_path: Path) -> None:
    book = PriceBook(tmp_path)
    assert book.catalog.compute == DEFAULT_PRICES["compute"]
    book.set_tokens("openai", "gpt-4o-mini", input_per_1k=0.00015, output_per_1k=0.0006)
    book.set_compute("A100-80GB", usd_per_hour=3.4)
    again = load_catalog(tmp_path)
    assert again.tokens["openai:gpt-4o-mini"].output_per_1k == 0.0006
    assert again.compute == {"A100-80GB": 3.4, "cpu": 0.04}
    book.remove("A100-80GB")
    assert "A100-80GB" not in load_catalog(tmp_path).compute
    assert len(book.frame()) == 2 and "1 token prices" in repr(book)


def test_bad_prices_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    book = PriceBook(tmp_path)
    book.set_compute("cpu", usd_per_hour=0.05)
    before = (tmp_path / PRICES_FILE).read_text()
    with pytest.raises(ValidationError, match=r"compute\.H100"):
        book.set_compute("H100", usd_per_hour=-2)
    with pytest.raises(ValidationError, match="name"):
        book.remove("nothing")
    assert (tmp_path / PRICES_FILE).read_text() == before


def test_a_broken_file_is_an_error_that_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / PRICES_FILE).write_text("{oops")
    with pytest.raises(ValidationError, match=r"not JSON.*delete it"):
        load_catalog(tmp_path)
