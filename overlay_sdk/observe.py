"""What the data plane did for an overlay: ``o.status()`` and ``o.metrics()``.

Both read what gateways wrote, from any process: the status book (``<home>/gateway.db``,
:mod:`overlay_sdk.gateway.status`) says which revision a gateway serves, since when and
how long the change took to reach it; the telemetry store
(:mod:`overlay_sdk.telemetry`) has one record per model call, summarised here per
version (or per time bucket) as a DataFrame.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd

from overlay_sdk.analytics.cost import cost_frame
from overlay_sdk.analytics.cost_frame import CostFrame
from overlay_sdk.errors import ValidationError
from overlay_sdk.gateway.status import StatusBook
from overlay_sdk.telemetry import read_calls
from overlay_sdk.when import parse_when

__all__ = [
    "METRIC_COLUMNS",
    "OverlayStatus",
    "metrics_frame",
    "overlay_metrics",
    "overlay_status",
    "spend",
]

METRIC_COLUMNS = ("calls", "errors", "timeouts", "rejected", "error_rate", "p50_ms", "p95_ms",
                  "p99_ms", "mean_ms", "share")
_BY = {"version": None, "minute": "1min", "hour": "1h", "day": "1D"}


@dataclass(frozen=True)
class OverlayStatus:
    """Where an overlay stands in the data plane.

    ``state``: ``serving`` (the gateway serves the stored revision), ``warming`` (the
    stored revision's versions are loading; ``serving_revision`` still serves),
    ``failed`` (it could not be applied: ``message`` says why), ``behind`` (the gateway
    has not seen it yet) or ``no gateway`` (none is running for this home).
    ``versions`` gives the state of each version the stored revision names (warming, ready,
    failed). ``history`` lists every revision the gateway saw, newest first, with when it was
    committed and applied and the propagation time in milliseconds.
    """

    name: str
    revision: int
    state: str
    serving_revision: int | None = None
    applied_at: datetime | None = None
    propagation_ms: float | None = None
    gateway_url: str | None = None
    message: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    history: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    @property
    def up_to_date(self) -> bool:
        """Whether the gateway serves the stored revision."""
        return self.serving_revision == self.revision

    def __str__(self) -> str:
        if self.state == "no gateway":
            return (f"{self.name}: revision {self.revision} stored; no gateway is running "
                    "(start one with cp.start_gateway() or `overlay gateway`)")
        served = (f"revision {self.serving_revision} serving since "
                  f"{self.applied_at:%Y-%m-%d %H:%M:%S} UTC ({self.propagation_ms:.1f} ms "
                  "after its commit)" if self.serving_revision is not None
                  and self.applied_at is not None and self.propagation_ms is not None
                  else "nothing serving yet")
        tail = f"; {self.message}" if self.message else ""
        return (f"{self.name}: {self.state}: stored revision {self.revision}, {served} at "
                f"{self.gateway_url}{tail}")

    def __repr__(self) -> str:
        return f"<OverlayStatus {self}>"

    def _repr_html_(self) -> str:
        colour = {"serving": "#2e7d32", "warming": "#f9a825", "failed": "#c62828"}.get(
            self.state, "#616161")
        versions = ", ".join(f"{escape(k)}: {escape(v)}" for k, v in self.versions.items())
        table = self.history.head(10).to_html(index=False) if len(self.history) else ""
        return (f"<div><b>{escape(self.name)}</b> <span style='color:{colour}'>"
                f"{escape(self.state)}</span><br>{escape(str(self))}"
                f"<br>model versions: {versions or '-'}{table}</div>")


def _ts(value: Any) -> datetime | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).to_pydatetime()


def overlay_status(home: str | Path, name: str, stored_revision: int,
                   versions: Iterable[str] = ()) -> OverlayStatus:
    """The status of overlay ``name`` (stored at ``stored_revision``, naming ``versions``)
    in the running gateway of ``home``."""
    book = StatusBook(home)
    live = book.live_gateway()
    if live is None:
        return OverlayStatus(name, stored_revision, "no gateway")
    gateway = int(live["id"])
    history = book.applied(name, gateway)
    backends = book.backends(gateway)
    serving = history[history["state"] == "serving"]
    current = history[history["revision"] == stored_revision]
    state = str(current["state"].iloc[0]) if len(current) else "behind"
    message = str(current["message"].iloc[0]) if len(current) else ""
    top = serving.iloc[0] if len(serving) else None
    states = {v: s for v, (s, _) in backends.items()}
    named = {v: states.get(v, "not loaded") for v in versions}
    return OverlayStatus(
        name=name, revision=stored_revision, state=state,
        serving_revision=int(top["revision"]) if top is not None else None,
        applied_at=_ts(top["applied_at"]) if top is not None else None,
        propagation_ms=float(top["propagation_ms"]) if top is not None else None,
        gateway_url=str(live["url"]), message=message, versions=named, history=history,
    )


def metrics_frame(calls: pd.DataFrame, by: str | None = "version") -> pd.DataFrame:
    """Summarise call records: per ``model, version, role`` (``by="version"``), also per
    time bucket (``"minute"``, ``"hour"``, ``"day"``), or the records themselves (None).
    Columns: :data:`METRIC_COLUMNS`; ``share`` is the percent of the role's calls."""
    if by is None:
        return calls
    if by not in _BY:
        raise ValidationError.at("by", f"give one of {', '.join(_BY)} or None (the records), "
                                 f"got {by!r}")
    keys: list[Any] = ["model", "version", "role"]
    if _BY[by] is not None:
        keys = [pd.Grouper(key="time", freq=_BY[by]), *keys]
    if calls.empty:
        names = ["time", *keys[-3:]] if _BY[by] is not None else keys
        return pd.DataFrame(columns=[*names, *METRIC_COLUMNS])
    status = calls["status"]
    frame = calls.assign(error=status == "error", timeout=status == "timeout",
                         rejected=status == "rejected",
                         # a streamed answer the caller left is not the model's failure
                         failed=~status.isin(("ok", "aborted")))
    grouped = frame.groupby(keys, sort=True)
    latency = grouped["latency_ms"]
    out = pd.DataFrame({
        "calls": grouped.size(),
        "errors": grouped["error"].sum(),
        "timeouts": grouped["timeout"].sum(),
        "rejected": grouped["rejected"].sum(),
        "error_rate": grouped["failed"].mean(),
        "p50_ms": latency.quantile(0.50),
        "p95_ms": latency.quantile(0.95),
        "p99_ms": latency.quantile(0.99),
        "mean_ms": latency.mean(),
    })
    role_keys = [k for k in out.index.names if k in ("time", "role")]
    out["share"] = out["calls"] * 100 / out.groupby(level=role_keys)["calls"].transform("sum")
    out = out.reset_index()
    for column in ("calls", "errors", "timeouts", "rejected"):
        out[column] = out[column].astype("int64")
    return out


def overlay_metrics(url: str, name: str, *, since: Any = None, by: str | None = "version",
                    first_revision: int = 1, now: datetime | None = None) -> pd.DataFrame:
    """Metrics of overlay ``name`` from the telemetry store at ``url`` (see
    :func:`metrics_frame`); ``since`` is a datetime or a phrase ("an hour ago");
    ``first_revision`` leaves out calls of earlier revisions (an overlay deleted and
    created again continues its numbering, and starts its metrics afresh)."""
    start = parse_when(since, now or datetime.now(UTC), field="since") if since is not None \
        else None
    calls = read_calls(url, overlay=name, since=start, payloads=by is None)
    if first_revision > 1:
        calls = calls[calls["revision"] >= first_revision].reset_index(drop=True)
    return metrics_frame(calls, by)


def spend(url: str, *, name: str | None = None, since: Any = None, by: str = "version",
          first_revision: int = 1, budget: float | None = None,
          now: datetime | None = None) -> CostFrame:
    """Spend of overlay ``name`` (or of every overlay) from the telemetry store at ``url``:
    :func:`overlay_sdk.analytics.cost.cost_frame` as a :class:`CostFrame`."""
    start = parse_when(since, now or datetime.now(UTC), field="since") if since is not None \
        else None
    calls = read_calls(url, overlay=name, since=start, payloads=False)
    if first_revision > 1:
        calls = calls[calls["revision"] >= first_revision].reset_index(drop=True)
    frame = CostFrame(cost_frame(calls, by))
    frame.budget_usd_per_day = budget
    frame.by = by
    return frame
