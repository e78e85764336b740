"""The chat tab's turns go through the shared runner: measured and limited like public chats."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from assistant.services.chat import TurnRunner
from assistant.services.metrics import Metrics
from assistant.services.ratelimit import RateLimits
from assistant.settings import Settings
from assistant.turn.schemas import Decision, IntentView, SentimentView, TurnRequest, TurnResult
from assistant.ui.customer import CustomerChat

pytestmark = pytest.mark.unit


class EchoEngine:
    def __init__(self) -> None:
        self.requests: list[TurnRequest] = []

    def handle_turn(self, request: TurnRequest) -> TurnResult:
        self.requests.append(request)
        return TurnResult(
            session_id=request.session_id,
            turn_index=len(self.requests) - 1,
            language="en",
            reply=f"You said: {request.text}",
            sentiment=SentimentView(score=0.0, label="neutral", trend=0.0),
            intent=IntentView(intent="other", confidence=1.0),
            decision=Decision(action="answer"),
        )


def chat_tab(tmp_path: Path, engine: EchoEngine, session_per_minute: int) -> CustomerChat:
    components: Any = SimpleNamespace(
        settings=Settings(data_dir=tmp_path),
        memory=SimpleNamespace(agent_replies=lambda _session: []),
    )
    turns = TurnRunner(lambda: engine, Metrics(), RateLimits(session_per_minute, 0), 2)
    return CustomerChat(components, turns)


def send(chat: CustomerChat, session_id: str, text: str) -> list[dict[str, Any]]:
    history: list[dict[str, Any]] = chat.answer(
        {"text": text, "photo": None}, [], session_id, "auto", 0, {}
    )[0]
    return history


def test_a_ui_turn_is_counted_in_the_metrics(tmp_path: Path) -> None:
    engine = EchoEngine()
    chat = chat_tab(tmp_path, engine, session_per_minute=0)
    assert "You said: hello" in send(chat, "web-1", "hello")[-1]["content"]
    registry = chat.turns.metrics.registry
    assert registry.get_sample_value("shopsight_turn_latency_seconds_count", {"input": "text"}) == 1
    assert registry.get_sample_value("shopsight_decisions_total", {"action": "answer"}) == 1


def test_ui_turns_are_rate_limited_per_session_like_public_api_chats(tmp_path: Path) -> None:
    engine = EchoEngine()
    chat = chat_tab(tmp_path, engine, session_per_minute=2)
    send(chat, "web-1", "one")
    send(chat, "web-1", "two")
    refused = send(chat, "web-1", "three")[-1]["content"]
    assert "too many messages in this session" in refused
    assert "SHOPSIGHT_RATE_LIMIT_SESSION_PER_MINUTE" in refused
    assert "You said: four" in send(chat, "web-2", "four")[-1]["content"]
    assert [r.text for r in engine.requests] == ["one", "two", "four"]
    errors = chat.turns.metrics.registry.get_sample_value(
        "shopsight_errors_total", {"code": "rate_limited"}
    )
    assert errors == 1
