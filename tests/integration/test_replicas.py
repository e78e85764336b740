"""Two API replicas on one Chroma server and one PostgreSQL: a catalogue change made through
either (or by a third writer) shows in the other's search within 5 s, and a conversation held
with one is seen by the other."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import ChromaServer
from tests.integration.serving import (
    ADMIN,
    AGENT,
    Served,
    catalogue,
    environment,
    run,
    serve,
    wait_for_first,
    wait_for_gone,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LIVE_SECONDS = 5.0


@pytest.fixture
def replicas(
    chroma_server: ChromaServer, postgres_url: str, tmp_path: Path
) -> Iterator[tuple[Served, Served, dict[str, str]]]:
    shared = {
        "SHOPSIGHT_CHROMA_URL": chroma_server.url,
        "SHOPSIGHT_COLLECTION_PREFIX": f"replicas{uuid.uuid4().hex[:8]}",
        "SHOPSIGHT_DATABASE_URL": postgres_url,
    }
    writer = environment(tmp_path / "writer", **shared)
    (tmp_path / "shop.json").write_bytes(
        catalogue(("green-tea", "Green tea tin"), ("black-tea", "Black tea tin"))
    )
    seeded = run("kb", "ingest", str(tmp_path / "shop.json"), env=writer, cwd=tmp_path)
    assert seeded.returncode == 0, seeded.stderr
    first = serve(environment(tmp_path / "a", **shared), tmp_path)
    try:
        second = serve(environment(tmp_path / "b", **shared), tmp_path)
    except BaseException:
        first.kill()
        raise
    yield first, second, writer
    first.kill()
    second.kill()


def test_a_change_through_one_replica_or_a_third_writer_reaches_the_other(
    replicas: tuple[Served, Served, dict[str, str]], tmp_path: Path
) -> None:
    one, other, writer = replicas
    with one.client() as a, other.client() as b:
        # Both have built their BM25 index before the change.
        wait_for_first(a, "black tea", "black-tea", mode="bm25")
        wait_for_first(b, "black tea", "black-tea", mode="bm25")

        added = a.post(
            "/v1/kb/ingest",
            files={"file": ("new.json", catalogue(("quokka-pot", "Quokkaberry teapot")))},
            headers=ADMIN,
        )
        assert added.status_code == 200, added.text
        wait_for_first(b, "quokkaberry", "quokka-pot", LIVE_SECONDS, mode="bm25")

        # A third writer renames a product: the count stays, the generation moves.
        (tmp_path / "edit.json").write_bytes(catalogue(("green-tea", "Wombatleaf green tea")))
        edited = run("kb", "ingest", str(tmp_path / "edit.json"), env=writer, cwd=tmp_path)
        assert edited.returncode == 0, edited.stderr
        wait_for_first(a, "wombatleaf", "green-tea", LIVE_SECONDS, mode="bm25")
        wait_for_first(b, "wombatleaf", "green-tea", LIVE_SECONDS, mode="bm25")

        assert b.delete("/v1/kb/records/quokka-pot", headers=ADMIN).status_code == 200
        wait_for_gone(a, "quokkaberry", "quokka-pot", LIVE_SECONDS)


def test_a_conversation_with_one_replica_is_seen_by_the_other(
    replicas: tuple[Served, Served, dict[str, str]],
) -> None:
    one, other, _ = replicas
    session = f"replica-{uuid.uuid4().hex[:8]}"
    with one.client() as a, other.client() as b:
        assert a.post("/v1/chat", json={"session_id": session, "text": "hello"}).status_code == 200
        seen = b.get(f"/v1/sessions/{session}", headers=AGENT)
        assert seen.status_code == 200, seen.text
        assert [turn["text"] for turn in seen.json()["turns"]] == ["hello"]
        follow = b.post("/v1/chat", json={"session_id": session, "text": "green tea price?"})
        assert follow.status_code == 200, follow.text
        turns = a.get(f"/v1/sessions/{session}", headers=AGENT).json()["turns"]
        assert [turn["text"] for turn in turns] == ["hello", "green tea price?"]
