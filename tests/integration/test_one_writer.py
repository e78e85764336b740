"""A running `shopsight serve` is the store's one writer: its admin API changes the catalogue
(and its search follows at once), a second writer is refused at once, a killed server leaves
no lock behind, and backup and restore wait for the store to be free."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.serving import (
    ADMIN,
    AGENT,
    Served,
    catalogue,
    environment,
    run,
    serve,
    wait_for_first,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SHOP = catalogue(("green-tea", "Green tea tin"), ("black-tea", "Black tea tin"))


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    env = environment(tmp_path / "data")
    (tmp_path / "shop.json").write_bytes(SHOP)
    assert run("kb", "ingest", str(tmp_path / "shop.json"), env=env, cwd=tmp_path).returncode == 0
    running = serve(env, tmp_path)
    yield running
    running.kill()


def upload(served: Served, name: str, data: bytes) -> dict[str, object]:
    with served.client() as client:
        response = client.post("/v1/kb/ingest", files={"file": (name, data)}, headers=ADMIN)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_the_admin_api_changes_what_the_server_finds_at_once(served: Served) -> None:
    done = upload(served, "new.json", catalogue(("quokka-pot", "Quokkaberry teapot")))
    assert done["ok"] is True
    with served.client() as client:
        wait_for_first(client, "quokkaberry", "quokka-pot")
        # An edit keeps the number of products: the generation, not the count, says so.
        upload(served, "edit.json", catalogue(("green-tea", "Wombatleaf green tea tin")))
        wait_for_first(client, "wombatleaf", "green-tea", mode="bm25")
        gone = client.delete("/v1/kb/records/quokka-pot", headers=ADMIN)
        assert gone.status_code == 200 and gone.json()["products"] == 1
        found = client.post("/v1/search/text", json={"query": "quokkaberry", "k": 3}).json()
        assert "quokka-pot" not in [p["product_id"] for p in found["products"]]
        missing = client.delete("/v1/kb/records/quokka-pot", headers=ADMIN)
        assert missing.status_code == 404
        assert client.delete("/v1/kb/records/green-tea").status_code == 401


def test_a_second_writer_is_refused_at_once_naming_the_server(
    served: Served, tmp_path: Path
) -> None:
    env = environment(tmp_path / "data")
    (tmp_path / "new.json").write_bytes(catalogue(("numbat", "Numbat mug")))
    refusals = {}
    for args in (
        ("kb", "ingest", str(tmp_path / "new.json")),
        ("kb", "delete", "green-tea"),
        ("kb", "reset", "--yes"),
        ("kb", "backup", str(tmp_path / "backup")),
    ):
        # The timeout is the hang check: a refused writer must not wait for the lock.
        result = run(*args, env=env, cwd=tmp_path, timeout=60)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, (args, result.stderr)
        assert f"`shopsight serve` (pid {served.pid}, {served.url}" in lines[0], lines[0]
        assert "Traceback" not in result.stderr
        refusals[args[1]] = lines[0]
    assert f"POST {served.url}/v1/kb/ingest" in refusals["ingest"]
    assert f"DELETE {served.url}/v1/kb/records/ID" in refusals["delete"]
    assert "cannot back up" in refusals["backup"] and "stop it" in refusals["backup"]
    assert not (tmp_path / "backup").exists()
    second = run("serve", "--port", "0", env=env, cwd=tmp_path, timeout=60)
    assert second.returncode == 1 and f"pid {served.pid}" in second.stderr
    with served.client() as client:
        found = client.post("/v1/search/text", json={"query": "green tea", "k": 3}).json()
    assert found["products"][0]["product_id"] == "green-tea"  # the reset was refused


def test_a_killed_server_leaves_a_store_the_next_writer_opens(
    served: Served, tmp_path: Path
) -> None:
    env = environment(tmp_path / "data")
    upload(served, "new.json", catalogue(("quokka-pot", "Quokkaberry teapot")))
    served.kill()  # SIGKILL: no shutdown code runs
    (tmp_path / "more.json").write_bytes(catalogue(("numbat", "Numbat mug")))
    again = run("kb", "ingest", str(tmp_path / "more.json"), "--json", env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    stats = json.loads(run("kb", "stats", "--json", env=env, cwd=tmp_path).stdout)
    assert stats["products"] == 4


def test_backup_and_restore_through_the_cli_once_the_server_stopped(
    served: Served, tmp_path: Path
) -> None:
    env = environment(tmp_path / "data")
    with served.client() as client:
        turn = client.post("/v1/chat", json={"session_id": "s-1", "text": "hello"})
        assert turn.status_code == 200, turn.text
    served.kill()
    made = run("kb", "backup", str(tmp_path / "backup"), "--json", env=env, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    manifest = json.loads(made.stdout)
    assert manifest["store"]["shopsight_products"] == 2
    assert manifest["databases"]["sessions.db"]["turns"] == 1
    assert run("kb", "reset", "--yes", env=env, cwd=tmp_path).returncode == 0

    refused = run("kb", "restore", str(tmp_path / "data"), "--yes", env=env, cwd=tmp_path)
    assert refused.returncode == 1 and "is not a ShopSight backup" in refused.stderr
    restored = run("kb", "restore", str(tmp_path / "backup"), "--yes", env=env, cwd=tmp_path)
    assert restored.returncode == 0, restored.stderr
    assert (
        "Restored the backup of" in restored.stdout and "Kept what it replaced" in restored.stdout
    )
    stats = json.loads(run("kb", "stats", "--json", env=env, cwd=tmp_path).stdout)
    assert stats["products"] == 2

    running = serve(env, tmp_path)
    try:
        blocked = run("kb", "restore", str(tmp_path / "backup"), "--yes", env=env, cwd=tmp_path)
        assert blocked.returncode == 1 and f"pid {running.pid}" in blocked.stderr
        with running.client() as client:
            session = client.get("/v1/sessions/s-1", headers=AGENT)
            assert session.status_code == 200, session.text
            assert [t["text"] for t in session.json()["turns"]] == ["hello"]
            found = client.post("/v1/search/text", json={"query": "black tea", "k": 1}).json()
            assert found["products"][0]["product_id"] == "black-tea"
    finally:
        running.kill()
