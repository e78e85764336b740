"""Conversation memory on a real PostgreSQL server: the same code as SQLite, another URL."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.turn.memory import ConversationMemory, SessionState
from tests.conftest import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root; run its tools as the `postgres` user then."""
    if os.geteuid() != 0:
        return command
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.skip("running as root without runuser: cannot start PostgreSQL")
    return [runuser, "-u", "postgres", "--", *command]


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    pytest.importorskip("psycopg", reason="psycopg is not installed")
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    # Not under pytest's tmp folder: its parents are private to root, and the server runs as
    # the `postgres` user.
    root = Path(tempfile.mkdtemp(prefix="shopsight-postgres-"))
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sockets, "postgres")
    port = free_port()
    subprocess.run(
        _as_postgres([initdb, "-D", str(data), "-U", "shopsight", "-A", "trust"]),
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1"
    start = [pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"]
    subprocess.run(_as_postgres(start), check=True, capture_output=True, timeout=60)
    try:
        yield f"postgresql+psycopg://shopsight@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_postgres([pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"]),
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


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
