"""Sliding-window rate limits: the limit, then when to retry; idle keys are forgotten."""

from __future__ import annotations

import pytest

from assistant.services.ratelimit import RateLimited, RateLimits, SlidingWindowLimiter

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_sliding_window_allows_the_limit_then_says_when_to_retry() -> None:
    clock = Clock()
    limiter = SlidingWindowLimiter(3, window_s=60, clock=clock)
    assert [limiter.hit("a") for _ in range(3)] == [None, None, None]
    clock.now += 10
    assert limiter.hit("a") == pytest.approx(50)
    assert limiter.hit("b") is None
    clock.now += 50.5
    assert limiter.hit("a") is None


def test_a_zero_limit_means_unlimited_and_idle_keys_are_forgotten() -> None:
    assert all(SlidingWindowLimiter(0).hit("a") is None for _ in range(1000))
    clock = Clock()
    limiter = SlidingWindowLimiter(1, window_s=60, clock=clock, max_keys=10)
    for index in range(10):
        limiter.hit(f"client-{index}")
    clock.now += 61
    limiter.hit("newcomer")
    assert len(limiter._hits) == 1


def test_a_refusal_says_which_limit_and_when_to_retry_in_whole_seconds() -> None:
    limits = RateLimits(session_per_minute=1, client_per_minute=0)
    limits.check_session("s")
    limits.check_client("203.0.113.7")
    with pytest.raises(RateLimited) as refused:
        limits.check_session("s")
    assert refused.value.code == "rate_limited"
    assert 1 <= refused.value.retry_after_s <= 60
    assert "SHOPSIGHT_RATE_LIMIT_SESSION_PER_MINUTE" in refused.value.message
    assert f"try again in {refused.value.retry_after_s} s" in str(refused.value)
