"""The per-version circuit breaker: closed -> open at the threshold, open refuses until the
cooldown, half-open lets exactly one trial through, whose outcome closes or reopens it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from overlay_sdk.gateway.breaker import Breaker


def opened(threshold: int = 3, cooldown: float = 10.0, at: float = 100.0) -> Breaker:
    b = Breaker(threshold=threshold, cooldown=cooldown)
    for _ in range(threshold):
        b.failure(at, "timeout")
    return b


def test_a_new_breaker_is_closed_and_lets_calls_through() -> None:
    b = Breaker()
    assert b.state(0.0) == "closed"
    assert all(b.allow(t) for t in (0.0, 1.0, 1e9))
    assert b.retry_in(0.0) == 0.0


def test_defaults() -> None:
    b = Breaker()
    assert (b.threshold, b.cooldown) == (5, 5.0)


@pytest.mark.parametrize("threshold", [1, 2, 5])
def test_opens_at_exactly_threshold_consecutive_failures(threshold: int) -> None:
    b = Breaker(threshold=threshold, cooldown=10.0)
    for i in range(threshold - 1):
        b.failure(float(i), "boom")
        assert b.state(float(i)) == "closed"
        assert b.allow(float(i))
    b.failure(50.0, "boom")
    assert b.state(50.0) == "open"
    assert not b.allow(50.0)


def test_a_success_resets_the_failure_count() -> None:
    b = Breaker(threshold=3, cooldown=10.0)
    b.failure(0.0, "a")
    b.failure(1.0, "b")
    b.success()
    b.failure(2.0, "c")
    b.failure(3.0, "d")
    assert b.state(3.0) == "closed"
    assert b.allow(3.0)
    b.failure(4.0, "e")
    assert b.state(4.0) == "open"


def test_last_error_is_kept_until_a_success() -> None:
    b = Breaker(threshold=3)
    b.failure(0.0, "connection refused")
    b.failure(1.0, "timeout after 800 ms")
    assert b.last_error == "timeout after 800 ms"
    b.success()
    assert b.last_error is None


def test_open_refuses_until_the_cooldown_has_passed() -> None:
    b = opened(cooldown=10.0, at=100.0)
    for t in (100.0, 105.0, 109.999):
        assert b.state(t) == "open"
        assert not b.allow(t)
    assert b.state(110.0) == "half-open"


def test_retry_in_counts_down_to_the_trial() -> None:
    b = opened(cooldown=10.0, at=100.0)
    assert b.retry_in(100.0) == pytest.approx(10.0)
    assert b.retry_in(104.0) == pytest.approx(6.0)
    assert b.retry_in(110.0) == 0.0
    assert b.retry_in(500.0) == 0.0


def test_half_open_allows_exactly_one_trial() -> None:
    b = opened(cooldown=10.0, at=100.0)
    assert b.allow(110.0)
    assert not b.allow(110.0)
    assert not b.allow(111.0)
    assert not b.allow(1000.0)  # still waiting for the trial's outcome


def test_a_successful_trial_closes_the_breaker() -> None:
    b = opened(threshold=3, cooldown=10.0, at=100.0)
    assert b.allow(110.0)
    b.success()
    assert b.state(110.0) == "closed"
    assert b.allow(110.0) and b.allow(110.0)
    assert b.retry_in(110.0) == 0.0
    # the count starts over: threshold failures again to reopen
    b.failure(111.0, "x")
    b.failure(112.0, "x")
    assert b.state(112.0) == "closed"


def test_a_failed_trial_reopens_for_a_full_cooldown_from_the_failure() -> None:
    b = opened(threshold=5, cooldown=10.0, at=100.0)
    assert b.allow(115.0)
    b.failure(117.0, "still down")
    assert b.state(117.0) == "open"
    assert not b.allow(126.9)
    assert b.retry_in(117.0) == pytest.approx(10.0)
    assert b.state(127.0) == "half-open"
    assert b.allow(127.0)  # a new trial after the new cooldown
    assert not b.allow(127.0)


# --- random sequences against a reference model --------------------------------------------


class Reference:
    """Independent statement of the documented behaviour (integer times)."""

    def __init__(self, threshold: int, cooldown: int) -> None:
        self.threshold, self.cooldown = threshold, cooldown
        self.consecutive = 0
        self.open_until: int | None = None  # None: closed
        self.trial_out = False

    def state(self, now: int) -> str:
        if self.open_until is None:
            return "closed"
        return "open" if now < self.open_until else "half-open"

    def allow(self, now: int) -> bool:
        state = self.state(now)
        if state == "closed":
            return True
        if state == "half-open" and not self.trial_out:
            self.trial_out = True
            return True
        return False

    def success(self) -> None:
        self.consecutive, self.open_until, self.trial_out = 0, None, False

    def failure(self, now: int) -> None:
        self.consecutive += 1
        # while not closed, any failure (the trial's or a straggler's) opens it anew
        if self.open_until is not None or self.consecutive >= self.threshold:
            self.open_until = now + self.cooldown
        self.trial_out = False

    def retry_in(self, now: int) -> int:
        return 0 if self.open_until is None else max(0, self.open_until - now)


_ops = st.lists(st.tuples(st.integers(0, 4), st.sampled_from(["allow", "success", "failure"])),
                max_size=40)


@settings(max_examples=150, deadline=None)
@given(threshold=st.integers(1, 4), cooldown=st.integers(1, 5), ops=_ops)
def test_random_sequences_match_the_reference(
        threshold: int, cooldown: int, ops: list[tuple[int, str]]) -> None:
    real = Breaker(threshold=threshold, cooldown=float(cooldown))
    ref = Reference(threshold, cooldown)
    now = 0
    for step, op in ops:
        now += step
        if op == "allow":
            assert real.allow(float(now)) == ref.allow(now)
        elif op == "success":
            real.success()
            ref.success()
        else:
            real.failure(float(now), "e")
            ref.failure(now)
        assert real.state(float(now)) == ref.state(now)
        assert real.retry_in(float(now)) == ref.retry_in(now)
