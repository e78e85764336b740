"""The chat turn runner with a stand-in engine: session order, the cap, limits and metrics."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from assistant.services.chat import TurnRunner, input_kind
from assistant.services.metrics import Metrics
from assistant.services.ratelimit import RateLimited, RateLimits
from assistant.turn.safety import InputRejected
from assistant.turn.schemas import Decision, IntentView, SentimentView, TurnRequest, TurnResult

pytestmark = pytest.mark.unit

TURN_SECONDS = 0.15


def result_for(request: TurnRequest, action: str = "answer") -> TurnResult:
    return TurnResult(
        session_id=request.session_id,
        turn_index=0,
        language="en",
        reply="ok",
        sentiment=SentimentView(score=0.0, label="neutral", trend=0.0),
        intent=IntentView(intent="other", confidence=1.0),
        decision=Decision(action=action),
    )


class SlowEngine:
    """Takes TURN_SECONDS per turn and records how many turns ran at once, overall and per
    session."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.active: Counter[str] = Counter()
        self.most_per_session: Counter[str] = Counter()
        self.most_at_once = 0
        self.turns = 0

    def handle_turn(self, request: TurnRequest) -> TurnResult:
        with self._lock:
            self.active[request.session_id] += 1
            self.most_per_session[request.session_id] = max(
                self.most_per_session[request.session_id], self.active[request.session_id]
            )
            self.most_at_once = max(self.most_at_once, sum(self.active.values()))
        time.sleep(TURN_SECONDS)
        with self._lock:
            self.active[request.session_id] -= 1
            self.turns += 1
        if request.text == "refuse me":
            raise InputRejected("TextTooLong: refused by the stand-in engine")
        return result_for(request)


def runner(engine: SlowEngine, concurrency: int = 8, session_per_minute: int = 0) -> TurnRunner:
    return TurnRunner(
        lambda: engine, Metrics(), RateLimits(session_per_minute, 0), concurrency=concurrency
    )


def run_all(turns: TurnRunner, sessions: list[str]) -> list[TurnResult]:
    with ThreadPoolExecutor(len(sessions)) as pool:
        return list(
            pool.map(lambda s: turns.run(TurnRequest(session_id=s, text="hello")), sessions)
        )


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_two_turns_of_one_session_never_run_at_once_but_different_sessions_do() -> None:
    engine = SlowEngine()
    results = run_all(runner(engine), ["a", "a", "a", "b", "b", "c"])
    assert [r.session_id for r in results] == ["a", "a", "a", "b", "b", "c"]
    assert engine.most_per_session == Counter({"a": 1, "b": 1, "c": 1})
    assert engine.most_at_once >= 2


def test_the_concurrency_cap_holds_across_sessions() -> None:
    engine = SlowEngine()
    run_all(runner(engine, concurrency=2), [f"s{n}" for n in range(6)])
    assert engine.turns == 6
    assert engine.most_at_once == 2


def test_turns_from_the_event_loop_share_the_locks_and_the_cap_with_thread_turns() -> None:
    engine = SlowEngine()
    turns = runner(engine, concurrency=2)

    async def from_the_loop() -> list[TurnResult]:
        requests = [TurnRequest(session_id=s, text="hi") for s in ("a", "a", "b", "c")]
        return await asyncio.gather(*(turns.run_async(r) for r in requests))

    with ThreadPoolExecutor(2) as pool:
        from_threads = [
            pool.submit(turns.run, TurnRequest(session_id=s, text="hi")) for s in ("a", "d")
        ]
        from_loop = asyncio.run(from_the_loop())
        done = [future.result() for future in from_threads]
    assert len(from_loop) == 4 and len(done) == 2
    assert engine.most_per_session["a"] == 1
    assert engine.most_at_once <= 2
    assert sample(turns.metrics, "shopsight_turns_in_progress") == 0


def test_every_turn_is_measured_by_input_kind_and_decision() -> None:
    turns = runner(SlowEngine())
    turns.run(TurnRequest(session_id="m", text="where is my parcel?"))
    turns.run(TurnRequest(session_id="m", chosen_product_id="mug"))
    metrics = turns.metrics
    assert sample(metrics, "shopsight_turn_latency_seconds_count", input="text") == 1
    assert sample(metrics, "shopsight_turn_latency_seconds_count", input="pick") == 1
    assert sample(metrics, "shopsight_turn_latency_seconds_sum", input="text") >= TURN_SECONDS
    assert sample(metrics, "shopsight_decisions_total", action="answer") == 2
    assert sample(metrics, "shopsight_turns_in_progress") == 0


def test_photo_turns_are_labelled_apart_from_text_turns() -> None:
    photo = TurnRequest(session_id="p", image=b"\x89PNG")
    assert input_kind(photo) == "photo"
    assert input_kind(TurnRequest(session_id="p", text="this one", image=b"x")) == "text+photo"


def test_untrusted_turns_are_limited_per_session_and_trusted_ones_never() -> None:
    engine = SlowEngine()
    turns = runner(engine, session_per_minute=1)
    first = TurnRequest(session_id="limited", text="hello")
    turns.answer(first)
    with pytest.raises(RateLimited, match="SHOPSIGHT_RATE_LIMIT_SESSION_PER_MINUTE"):
        turns.answer(first)
    turns.answer(TurnRequest(session_id="other", text="hello"))
    turns.answer(first, trusted=True)
    assert engine.turns == 3
    assert sample(turns.metrics, "shopsight_errors_total", code="rate_limited") == 1


def test_a_refused_input_is_counted_and_frees_its_slot() -> None:
    turns = runner(SlowEngine(), concurrency=1)
    with pytest.raises(InputRejected):
        turns.answer(TurnRequest(session_id="r", text="refuse me"))
    assert sample(turns.metrics, "shopsight_errors_total", code="input_rejected") == 1
    assert turns.run(TurnRequest(session_id="r", text="hello")).reply == "ok"
    assert sample(turns.metrics, "shopsight_turns_in_progress") == 0
