"""Running chat turns for every front end: a few at a time, one at a time per session.

The engine is CPU-bound, so turns run in threads (the API's worker threads, the UI's Gradio
threads); a semaphore keeps the number computed at once near the core count (more threads only
make every turn slower), and a lock per session keeps two messages of one conversation from
racing on its state. The REST API and the UI mounted beside it share one runner, so a UI turn
waits for the same slots, counts against the same per-session rate limit as a public API chat
and shows in the same `/metrics`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol

import anyio.to_thread
from anyio import CapacityLimiter

from assistant.services.metrics import Metrics
from assistant.services.ratelimit import RateLimited, RateLimits
from assistant.turn.safety import InputRejected
from assistant.turn.schemas import TurnRequest, TurnResult

if TYPE_CHECKING:
    from assistant.settings import Settings

# Turns of the event loop wait for a slot in threads of their own, at most this many at once
# (the rest wait on the loop, costing nothing): a burst of chats then never takes the threads
# that the API's other routes (search, /readyz, /metrics) run in.
WAITING_THREADS = 64


class TurnHandler(Protocol):
    """What runs one turn: the engine, or a test double."""

    def handle_turn(self, request: TurnRequest) -> TurnResult: ...


def input_kind(request: TurnRequest) -> str:
    """The latency histogram's label: photo turns cost far more than text turns."""
    if request.chosen_product_id:
        return "pick"
    if request.image is not None:
        return "text+photo" if request.text.strip() else "photo"
    return "text"


class TurnRunner:
    """Admits, runs and measures chat turns; thread-safe, shared by the API and the UI.

    `engine` is called on first use (the models load then), inside the turn's thread.
    """

    def __init__(
        self,
        engine: Callable[[], TurnHandler],
        metrics: Metrics,
        limits: RateLimits,
        concurrency: int,
        waiting_threads: int = WAITING_THREADS,
    ) -> None:
        self._engine = engine
        self.metrics = metrics
        self.limits = limits
        self.concurrency = concurrency
        self._slots = threading.BoundedSemaphore(concurrency)
        self._sessions: dict[str, tuple[threading.Lock, int]] = {}
        self._sessions_lock = threading.Lock()
        self._threads = CapacityLimiter(waiting_threads)

    @classmethod
    def from_settings(
        cls, settings: Settings, engine: Callable[[], TurnHandler], metrics: Metrics | None = None
    ) -> TurnRunner:
        """The runner with the configured cap (SHOPSIGHT_TURN_CONCURRENCY) and rate limits."""
        limits = RateLimits(
            settings.rate_limit_session_per_minute, settings.rate_limit_client_per_minute
        )
        return cls(engine, metrics or Metrics(), limits, settings.turn_concurrency)

    def admit(self, session_id: str, trusted: bool) -> None:
        """Count one message against its session's rate limit (untrusted callers only).

        Raises `RateLimited`. The API admits a message as soon as its session id is known,
        before its text and photo are checked; `answer` admits and runs in one call.
        """
        if not trusted:
            self.limits.check_session(session_id)

    def run(self, request: TurnRequest) -> TurnResult:
        """Run an admitted turn in this thread, after the session's previous turn, in a slot."""
        with self._in_progress():
            return self._run(request)

    async def run_async(self, request: TurnRequest) -> TurnResult:
        """`run` from the event loop: the turn runs (and waits for its slot) in a thread."""
        with self._in_progress():
            return await anyio.to_thread.run_sync(self._run, request, limiter=self._threads)

    def answer(self, request: TurnRequest, trusted: bool = False) -> TurnResult:
        """Admit and run one turn (the UI's path); a refusal is counted by its error code."""
        try:
            self.admit(request.session_id, trusted)
            return self.run(request)
        except RateLimited as exc:
            self.metrics.errors.labels(code=exc.code).inc()
            raise
        except InputRejected:
            self.metrics.errors.labels(code="input_rejected").inc()
            raise

    def _run(self, request: TurnRequest) -> TurnResult:
        with self._session(request.session_id), self._slots:
            started = time.perf_counter()
            result = self._engine().handle_turn(request)
            self.metrics.observe_turn(result, time.perf_counter() - started, input_kind(request))
            return result

    @contextmanager
    def _in_progress(self) -> Iterator[None]:
        self.metrics.turns_in_progress.inc()
        try:
            yield
        finally:
            self.metrics.turns_in_progress.dec()

    @contextmanager
    def _session(self, session_id: str) -> Iterator[None]:
        """The session's lock, kept only while some turn of the session holds or awaits it."""
        with self._sessions_lock:
            lock, users = self._sessions.get(session_id) or (threading.Lock(), 0)
            self._sessions[session_id] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._sessions_lock:
                lock, users = self._sessions[session_id]
                if users <= 1:
                    del self._sessions[session_id]
                else:
                    self._sessions[session_id] = (lock, users - 1)
