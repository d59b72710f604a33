"""``overlay drift``, ``overlay cost``, ``overlay alerts`` and ``overlay prices``: the
analytics from a terminal (see :mod:`overlay_sdk.cli`)."""

from __future__ import annotations

from typing import Any

import click

from overlay_sdk.cli_support import TABLE_OR_JSON, emit, handles_errors, plane

__all__ = ["alerts", "cost", "drift", "prices"]

_DRIFT_COLUMNS = ["window", "model", "version", "feature", "test", "statistic", "p_adjusted",
                  "drifted", "wasserstein", "psi", "rows_current", "message"]


@click.command()
@click.argument("name")
@click.option("--window", default="1h", show_default=True,
              help="Window length: 15min, 1h, 1D...")
@click.option("--since", help='Only calls after this ("a day ago", ISO 8601).')
@click.option("--alpha", type=float, default=0.05, show_default=True,
              help="Significance level after Benjamini-Hochberg across features.")
@click.option("--drifted-only", is_flag=True, help="Only the features that drifted.")
@click.option("--reference", "reference_range", nargs=2, metavar="START END",
              help='Compare with the version\'s own calls in this time range instead '
              '("2 days ago" yesterday).')
@click.option("--reference-file", type=click.Path(exists=True, dir_okay=False),
              help="Compare with this CSV or Parquet file (a column per feature, and "
              "'output') instead.")
@TABLE_OR_JSON
@click.pass_context
@handles_errors
def drift(ctx: click.Context, name: str, window: str, since: str | None, alpha: float,
          drifted_only: bool, reference_range: tuple[str, str] | None,
          reference_file: str | None, output: str) -> None:
    """Drift of overlay NAME's sampled inputs and outputs per window and version, from
    each version's registered reference data (or --reference / --reference-file): KS for
    numbers, chi-square for categories and class labels, length and tokens for text."""
    if reference_range and reference_file:
        raise click.UsageError("give --reference or --reference-file, not both")
    reference: Any = "registered"
    if reference_range:
        reference = tuple(reference_range)
    elif reference_file:
        import pandas as pd

        reference = (pd.read_parquet(reference_file) if reference_file.endswith(
            (".parquet", ".pq")) else pd.read_csv(reference_file))
    with plane(ctx) as cp:
        frame = cp.overlays.get(name).drift(reference=reference, window=window, since=since,
                                            alpha=alpha).frame
        if drifted_only:
            frame = frame[frame["drifted"]]
        emit(frame[_DRIFT_COLUMNS], output)


@click.command()
@click.argument("name", required=False)
@click.option("--by", type=click.Choice(["version", "hour", "day", "overlay"]),
              default=None, help="Group by (default: version for one overlay, overlay for all).")
@click.option("--since", help='Only calls after this ("a week ago", ISO 8601).')
@TABLE_OR_JSON
@click.pass_context
@handles_errors
def cost(ctx: click.Context, name: str | None, by: str | None, since: str | None,
         output: str) -> None:
    """What model calls cost (overlay NAME, or all): calls, spend in USD, USD per call,
    tokens. Prices: `overlay prices`."""
    with plane(ctx) as cp:
        if name:
            frame = cp.overlays.get(name).cost(by=by or "version", since=since)
        else:
            frame = cp.cost(by=by or "overlay", since=since)
        emit(frame.drop(columns=["cost_nusd"]), output)


@click.command()
@click.argument("name")
@click.option("--kind", type=click.Choice(["drift", "budget"]), help="Only this kind.")
@click.option("--since", help='Only alerts after this ("a day ago", ISO 8601).')
@TABLE_OR_JSON
@click.pass_context
@handles_errors
def alerts(ctx: click.Context, name: str, kind: str | None, since: str | None,
           output: str) -> None:
    """Drift and budget alerts the gateway raised for overlay NAME, newest first."""
    with plane(ctx) as cp:
        frame = cp.overlays.get(name).alerts(kind=kind, since=since)
        emit(frame[["time", "kind", "version", "subject", "message"]], output)


@click.group()
def prices() -> None:
    """The price catalog calls are priced with (per 1k tokens, per hour of compute)."""


@prices.command("list")
@TABLE_OR_JSON
@click.pass_context
@handles_errors
def prices_list(ctx: click.Context, output: str) -> None:
    """Every price in the catalog."""
    with plane(ctx) as cp:
        emit(cp.prices.frame(), output)


@prices.command("set-tokens")
@click.argument("provider")
@click.argument("model")
@click.option("--input", "input_per_1k", type=float, required=True,
              help="USD per 1,000 input tokens.")
@click.option("--output", "output_per_1k", type=float, required=True,
              help="USD per 1,000 output tokens.")
@click.pass_context
@handles_errors
def prices_tokens(ctx: click.Context, provider: str, model: str, input_per_1k: float,
                  output_per_1k: float) -> None:
    """Price a provider MODEL per 1,000 tokens: overlay prices set-tokens openai gpt-4o-mini."""
    with plane(ctx) as cp:
        cp.prices.set_tokens(provider, model, input_per_1k=input_per_1k,
                             output_per_1k=output_per_1k)
        click.echo(f"{provider}:{model} priced; versions loaded from now on use it")


@prices.command("set-compute")
@click.argument("kind")
@click.option("--usd-per-hour", type=float, required=True,
              help="USD per hour of one GPU of this type, or of one CPU core (KIND cpu).")
@click.pass_context
@handles_errors
def prices_compute(ctx: click.Context, kind: str, usd_per_hour: float) -> None:
    """Price a GPU type such as A100-80GB, or 'cpu' (per core), by the hour."""
    with plane(ctx) as cp:
        cp.prices.set_compute(kind, usd_per_hour=usd_per_hour)
        click.echo(f"{kind} priced at {usd_per_hour:g} USD an hour")
