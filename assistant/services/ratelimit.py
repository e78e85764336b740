"""In-memory sliding-window rate limits, per chat session and per client address.

A sliding log (the times of the last N requests per key) is exact, needs no background task and
stays small: at most `limit` timestamps per active key. Limits are per process; replicas behind a
load balancer each enforce their own (use the balancer's limits for a global cap).

A refusal is a `RateLimited` error that says when to retry; the API answers it with 429 and
Retry-After, the UI shows its message.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable


class RateLimited(Exception):
    """Too many requests: `retry_after_s` (whole seconds, at least 1) until the next is allowed."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s


class SlidingWindowLimiter:
    """At most `limit` hits per `window_s` seconds per key; `limit` 0 means unlimited."""

    def __init__(
        self,
        limit: int,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self.max_keys = max_keys
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> float | None:
        """Record a hit; None if allowed, else the seconds until the next hit would be allowed."""
        if self.limit <= 0:
            return None
        now = self.clock()
        with self._lock:
            hits = self._hits.get(key)
            if hits is None:
                if len(self._hits) >= self.max_keys:
                    self._prune(now)
                hits = self._hits[key] = deque()
            while hits and hits[0] <= now - self.window_s:
                hits.popleft()
            if len(hits) >= self.limit:
                return max(hits[0] + self.window_s - now, 0.001)
            hits.append(now)
            return None

    def _prune(self, now: float) -> None:
        """Forget keys with no hit inside the window (keeps memory bounded under many clients)."""
        stale = [k for k, hits in self._hits.items() if not hits or hits[-1] <= now - self.window_s]
        for key in stale:
            del self._hits[key]


class RateLimits:
    """The chat/search limits of one app; trusted callers (valid API key) are never limited.

    The UI's customer chat counts against the same per-session limit as public API chats.
    """

    def __init__(self, session_per_minute: int, client_per_minute: int) -> None:
        self.session = SlidingWindowLimiter(session_per_minute)
        self.client = SlidingWindowLimiter(client_per_minute)

    def check_client(self, client: str) -> None:
        _check(
            self.client,
            client,
            f"too many requests from {client}: the limit is {self.client.limit} per minute "
            "(SHOPSIGHT_RATE_LIMIT_CLIENT_PER_MINUTE)",
        )

    def check_session(self, session_id: str) -> None:
        _check(
            self.session,
            session_id,
            f"too many messages in this session: the limit is {self.session.limit} per minute "
            "(SHOPSIGHT_RATE_LIMIT_SESSION_PER_MINUTE)",
        )


def _too_many(retry_after: float, message: str) -> RateLimited:
    seconds = max(1, math.ceil(retry_after))
    return RateLimited(f"{message}; try again in {seconds} s", seconds)


def _check(limiter: SlidingWindowLimiter, key: str, message: str) -> None:
    """Count one hit for `key`; over the limit, refuse it with `message` and the wait."""
    retry = limiter.hit(key)
    if retry is not None:
        raise _too_many(retry, message)
