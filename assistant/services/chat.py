"""Running chat turns from the event loop: a few at a time, one at a time per session.

The engine is CPU-bound, so turns run in worker threads; a semaphore keeps the number computed
at once near the core count (more threads only make every turn slower), and a lock per session
keeps two messages of one conversation from racing on its state.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from starlette.concurrency import run_in_threadpool

from assistant.api.metrics import Metrics
from assistant.turn.engine import Engine
from assistant.turn.schemas import TurnRequest, TurnResult


def input_kind(request: TurnRequest) -> str:
    if request.chosen_product_id:
        return "pick"
    if request.image is not None:
        return "text+photo" if request.text.strip() else "photo"
    return "text"


class TurnRunner:
    def __init__(self, engine: Callable[[], Engine], metrics: Metrics, concurrency: int) -> None:
        self._engine = engine
        self._metrics = metrics
        self._slots = asyncio.Semaphore(concurrency)
        self._sessions: dict[str, tuple[asyncio.Lock, int]] = {}

    async def run(self, request: TurnRequest) -> TurnResult:
        self._metrics.turns_in_progress.inc()
        try:
            async with self._session(request.session_id), self._slots:
                started = time.perf_counter()
                result = await run_in_threadpool(self._handle, request)
                self._metrics.observe_turn(
                    result, time.perf_counter() - started, input_kind(request)
                )
                return result
        finally:
            self._metrics.turns_in_progress.dec()

    def _handle(self, request: TurnRequest) -> TurnResult:
        # The engine is built on first use (models load), so that too happens off the loop.
        return self._engine().handle_turn(request)

    @asynccontextmanager
    async def _session(self, session_id: str) -> AsyncIterator[None]:
        # Only the event loop touches this dict, so it needs no lock of its own.
        lock, users = self._sessions.get(session_id) or (asyncio.Lock(), 0)
        self._sessions[session_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._sessions[session_id]
            if users <= 1:
                del self._sessions[session_id]
            else:
                self._sessions[session_id] = (lock, users - 1)
