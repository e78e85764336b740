"""Drafted replies: kept only when every number and source marker is backed by the sources."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from assistant.components import Components
from assistant.turn.drafting import Drafter, check_draft
from assistant.turn.engine import Engine
from assistant.turn.schemas import TurnRequest

SOURCES = "[1] Returns: You can return unworn items within 30 days of delivery for a refund."
GROUNDED = "You can return unworn items within 30 days of delivery [1]."


@pytest.mark.unit
@pytest.mark.parametrize(
    ("draft", "accepted"),
    [
        ("Sure! Unworn items can be returned within 30 days of delivery [1].", True),
        ("Unworn items can be returned within 45 days [1].", False),
        ("Returns are free within 30 days and cost 4.99 after that [1].", False),
        ("You can return it within 30 days [2].", False),
        ("You can return it within 30 days.", False),
        ("", False),
    ],
)
def test_check_draft_accepts_only_supported_numbers_and_sources(draft: str, accepted: bool) -> None:
    check = check_draft(draft, SOURCES, {1})
    assert check.accepted is accepted, check.reasons


@pytest.mark.unit
def test_numbers_match_whatever_their_format() -> None:
    assert check_draft("It costs 59 USD [1].", "[1] price 59.00 USD", {1}).accepted
    assert check_draft("It costs 1,299.50 [1].", "[1] price 1299.5", {1}).accepted
    assert not check_draft("It costs 1,299.50 [1].", "[1] price 129.95", {1}).accepted


@pytest.mark.unit
def test_an_invented_term_is_replaced_by_the_grounded_reply() -> None:
    drafter = Drafter(FakeListChatModel(responses=["You have 90 days to return it [1]."]), "fake")
    text, check = drafter.rewrite(GROUNDED, SOURCES, {1}, "how long to return?", "en", False)
    assert text == GROUNDED
    assert not check.accepted and "90" in check.reasons[0]


@pytest.mark.unit
def test_a_faithful_draft_is_sent() -> None:
    draft = "Of course! You can send unworn items back within 30 days of delivery [1]."
    drafter = Drafter(FakeListChatModel(responses=[draft]), "fake")
    text, check = drafter.rewrite(GROUNDED, SOURCES, {1}, "how long to return?", "en", True)
    assert text == draft and check.accepted


class _Unreachable(FakeListChatModel):
    def invoke(self, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("endpoint down")


@pytest.mark.unit
def test_a_failing_model_costs_nothing_but_the_draft() -> None:
    drafter = Drafter(_Unreachable(responses=["x"]), "down")
    text, check = drafter.rewrite(GROUNDED, SOURCES, {1}, "q", "en", False)
    assert text == GROUNDED and "endpoint down" in check.reasons[0]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def openai_endpoint() -> Iterator[tuple[str, dict[str, str]]]:
    """A local OpenAI-compatible server whose next completion the test sets."""
    import uvicorn
    from fastapi import FastAPI

    canned = {"content": ""}
    app = FastAPI()

    @app.post("/v1/chat/completions")
    def complete(body: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": canned["content"]},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/v1", canned
    server.should_exit = True
    thread.join(timeout=10)


@pytest.mark.integration
def test_engine_checks_drafts_from_an_openai_compatible_endpoint(
    components: Components, openai_endpoint: tuple[str, dict[str, str]]
) -> None:
    from assistant.turn.chat_models import build_chat_model

    url, canned = openai_endpoint
    model = build_chat_model("openai", url, "shop-model", timeout_s=10)
    assert model is not None
    base = components.engine
    engine = Engine(
        base.perception, base.store, base.memory, base.config, drafter=Drafter(model, "shop-model")
    )
    question = "What is your return policy?"
    grounded = base.handle_turn(TurnRequest(session_id="draft-grounded", text=question))
    assert grounded.citations

    canned["content"] = "No worries! You have 365 days to send it back, free of charge [1]."
    invented = engine.handle_turn(TurnRequest(session_id="draft-invented", text=question))
    assert invented.reply == grounded.reply
    assert invented.debug["draft"]["used"] is False

    canned["content"] = f"Happy to help! {grounded.reply}"
    faithful = engine.handle_turn(TurnRequest(session_id="draft-faithful", text=question))
    assert faithful.reply.startswith("Happy to help!")
    assert faithful.debug["draft"] == {"model": "shop-model", "used": True, "reasons": []}


@pytest.mark.integration
@pytest.mark.slow
def test_bundled_smollm2_drafts_are_checked() -> None:
    from assistant.turn.chat_models import build_chat_model, smollm2_folder

    try:
        smollm2_folder()
    except Exception as exc:
        pytest.skip(str(exc))
    model = build_chat_model("smollm2", max_tokens=60)
    assert model is not None
    text, check = Drafter(model, "smollm2").rewrite(
        GROUNDED, SOURCES, {1}, "How long do I have to return my jacket?", "en", False
    )
    assert text.strip()
    assert check.accepted or text == GROUNDED
    assert check_draft(text, SOURCES + GROUNDED, {1}).accepted
