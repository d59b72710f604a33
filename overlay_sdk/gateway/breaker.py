"""A circuit breaker per model version. Pure: the caller passes the time.

``closed``: calls go through; ``threshold`` consecutive failures open it. ``open``: calls
are refused at once (the caller gets a degraded answer without waiting) until
``cooldown`` seconds have passed; then ``half-open``: one trial call goes through, its
success closes the breaker, its failure opens it again for another cooldown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Breaker", "BreakerState"]

BreakerState = Literal["closed", "open", "half-open"]


@dataclass
class Breaker:
    """Counts consecutive failures of one version and decides whether to call it."""

    threshold: int = 5
    cooldown: float = 5.0
    failures: int = 0
    opened_at: float | None = None
    trial: bool = False
    last_error: str | None = None

    def state(self, now: float) -> BreakerState:
        """Where the breaker stands at time ``now``."""
        if self.opened_at is None:
            return "closed"
        return "half-open" if now - self.opened_at >= self.cooldown else "open"

    def allow(self, now: float) -> bool:
        """Whether a call may go through now (in half-open, only one trial at a time)."""
        state = self.state(now)
        if state == "closed":
            return True
        if state == "half-open" and not self.trial:
            self.trial = True
            return True
        return False

    def success(self) -> None:
        """A call succeeded: close the breaker."""
        self.failures = 0
        self.opened_at = None
        self.trial = False
        self.last_error = None

    def failure(self, now: float, error: str) -> None:
        """A call failed or timed out: count it, and open the breaker at the threshold
        (or again at once after a failed half-open trial)."""
        self.failures += 1
        self.last_error = error
        if self.trial or self.failures >= self.threshold:
            self.opened_at = now
        self.trial = False

    def retry_in(self, now: float) -> float:
        """Seconds until a trial call is allowed (0 when calls go through)."""
        if self.opened_at is None:
            return 0.0
        return max(0.0, self.cooldown - (now - self.opened_at))
