"""Conversation memory on SQLite: turns, state, agent replies, erasure, restarts."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.turn.memory import ConversationMemory, SessionState

pytestmark = pytest.mark.unit


def test_agent_replies_follow_the_turns_and_are_erased_with_the_session(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sessions.db'}"
    memory = ConversationMemory(url)
    assert memory.add_agent_reply("nobody", "hello") is None
    memory.save_turn("s", SessionState(turn_count=1), "where is my parcel?", "a" * 32, {})
    reply = memory.add_agent_reply("s", "It ships today.")
    assert reply is not None and reply.after_turn == 1

    reopened = ConversationMemory(url)
    assert [r.text for r in reopened.agent_replies("s")] == ["It ships today."]
    assert reopened.delete("s")
    assert memory.agent_replies("s") == [] and memory.history("s") == []
