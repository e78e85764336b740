"""`shopsight kb backup` / `kb restore` through CliRunner: what is copied, what is left to a
server's own tools, and what is refused. (The store round trip through separate processes, as
an operator runs it, is in tests/integration/test_one_writer.py.)"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assistant.cli import build_app

app = build_app()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "SHOPSIGHT_DATA_DIR": str(tmp_path / "data"),
        "SHOPSIGHT_TEXT_EMBEDDER": "hash",
        "SHOPSIGHT_CHROMA_URL": "",
        "SHOPSIGHT_DATABASE_URL": "",
    }


def test_backup_of_an_embedded_store_with_sqlite_lists_what_it_holds(
    env: dict[str, str], tmp_path: Path
) -> None:
    catalogue = tmp_path / "shop.json"
    catalogue.write_text(json.dumps([{"id": "mug", "title": "Mug", "category": "kitchen"}]))
    runner = CliRunner()
    assert runner.invoke(app, ["kb", "ingest", str(catalogue)], env=env).exit_code == 0
    with sqlite3.connect(tmp_path / "data" / "sessions.db") as connection:
        connection.execute("CREATE TABLE turns (id INTEGER PRIMARY KEY)")
        connection.execute("INSERT INTO turns DEFAULT VALUES")
    connection.close()

    result = runner.invoke(app, ["kb", "backup", str(tmp_path / "backup"), "--json"], env=env)
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    assert manifest["format"] == "shopsight-backup" and manifest["version"] == 1
    assert manifest["store"]["shopsight_products"] == 1
    assert manifest["databases"] == {"sessions.db": {"turns": 1}}
    assert manifest["notes"] == []
    assert (tmp_path / "backup" / "backup.json").is_file()

    again = runner.invoke(app, ["kb", "backup", str(tmp_path / "backup")], env=env)
    assert again.exit_code == 1 and "is not empty" in again.stderr


def test_a_chroma_server_and_postgresql_are_left_to_their_own_tools(
    env: dict[str, str], tmp_path: Path
) -> None:
    servers = env | {
        "SHOPSIGHT_CHROMA_URL": "http://127.0.0.1:9",
        "SHOPSIGHT_DATABASE_URL": "postgresql+psycopg://shop@127.0.0.1:9/shop",
    }
    (tmp_path / "data" / "artifacts" / "align-v1").mkdir(parents=True)
    (tmp_path / "data" / "artifacts" / "align-v1" / "meta.json").write_text("{}")
    result = CliRunner().invoke(
        app, ["kb", "backup", str(tmp_path / "backup"), "--json"], env=servers
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    assert manifest["store"] is None and manifest["databases"] == {}
    assert manifest["folders"] == ["artifacts"]
    notes = " ".join(manifest["notes"])
    assert "Chroma server http://127.0.0.1:9 and was not copied" in notes
    assert "pg_dump" in notes

    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "chroma").mkdir()
    (tmp_path / "full" / "backup.json").write_text(
        json.dumps({"created": "2026-01-01", "store": {"shopsight_products": 1}})
    )
    refused = CliRunner().invoke(
        app, ["kb", "restore", str(tmp_path / "full"), "--yes"], env=servers
    )
    assert refused.exit_code == 1 and "SHOPSIGHT_CHROMA_URL" in refused.stderr


def test_restore_refuses_a_folder_that_is_not_a_backup(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    result = CliRunner().invoke(app, ["kb", "restore", str(tmp_path / "photos"), "--yes"], env=env)
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "is not a ShopSight backup" in lines[0]
