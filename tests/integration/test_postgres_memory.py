"""Conversation memory on a real PostgreSQL server: the same code as SQLite, another URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.turn.memory import ConversationMemory, SessionState

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_sessions_persist_survive_a_new_connection_and_delete(postgres_url: str) -> None:
    memory = ConversationMemory(postgres_url)
    state = SessionState(language="zh", context_product_id="mug-stoneware-white", turn_count=1)
    assert memory.save_turn("pg-1", state, "这个多少钱？", "e" * 32, {"reply": "14.00"}) == 0
    state.turn_count = 2
    assert memory.save_turn("pg-1", state, "thanks", "f" * 32, {"reply": "ok"}) == 1

    reopened = ConversationMemory(postgres_url)
    assert reopened.load_state("pg-1").context_product_id == "mug-stoneware-white"
    assert [t.text for t in reopened.history("pg-1")] == ["这个多少钱？", "thanks"]
    found = reopened.turn_by_evidence("f" * 32)
    assert found is not None and found[0] == "pg-1"
    assert [s[0] for s in reopened.sessions()] == ["pg-1"]

    assert reopened.delete("pg-1")
    assert memory.history("pg-1") == [] and memory.load_state("pg-1") == SessionState()
    assert not memory.delete("pg-1")


def test_database_url_setting_reaches_the_memory(postgres_url: str, tmp_path: Path) -> None:
    from assistant.components import Components
    from assistant.settings import Settings

    components = Components(Settings(data_dir=tmp_path, database_url=postgres_url))
    assert components.memory.engine.dialect.name == "postgresql"
