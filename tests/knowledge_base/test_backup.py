"""`make_backup` / `restore_backup`: a checked copy of the store, its folders and databases."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from knowledge_base.backup import (
    MANIFEST,
    BackupError,
    BackupSources,
    make_backup,
    read_backup,
    restore_backup,
)
from knowledge_base.ingest import IngestOptions, Ingestor
from knowledge_base.loaders import load_paths
from knowledge_base.store import KnowledgeStore
from retrieval.encoders.text import HashEmbedder
from tests.conftest import TinyImageEncoder, make_image


def shop(data: Path) -> BackupSources:
    """A data folder with two products (one with a photo), an article and a conversation."""
    uploads = data / "uploads" / "u1"
    make_image(uploads / "kettle.jpg", (200, 30, 30))
    catalogue = uploads / "shop.json"
    catalogue.write_text(
        json.dumps(
            [
                {
                    "id": "kettle",
                    "title": "Kettle",
                    "category": "kitchen",
                    "images": ["kettle.jpg"],
                },
                {"id": "lamp", "title": "Lamp", "category": "home"},
                {"id": "hours", "title": "Opening hours", "body": "We answer from 9 to 17."},
            ]
        ),
        encoding="utf-8",
    )
    store = KnowledgeStore(path=data / "chroma")
    encoder = TinyImageEncoder()
    report = Ingestor(
        store, HashEmbedder(), lambda: encoder, encoder.name, IngestOptions(progress=False)
    ).ingest(load_paths([catalogue]))
    assert report.ok, report.rejections
    store.client.close()
    database = data / "sessions.db"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE turns (id INTEGER PRIMARY KEY, text TEXT)")
        connection.executemany("INSERT INTO turns (text) VALUES (?)", [("hi",), ("thanks",)])
    connection.close()
    return BackupSources(
        chroma=data / "chroma",
        folders={"uploads": data / "uploads", "artifacts": data / "artifacts"},
        databases={"sessions.db": database},
    )


def test_backup_then_restore_brings_everything_back_and_keeps_what_it_replaced(
    tmp_path: Path,
) -> None:
    sources = shop(tmp_path / "data")
    manifest = make_backup(sources, tmp_path / "backup")
    assert manifest.store is not None
    assert (manifest.store["shopsight_products"], manifest.store["shopsight_images"]) == (2, 1)
    assert manifest.store["shopsight_articles"] == 1
    assert manifest.databases == {"sessions.db": {"turns": 2}}
    assert manifest.folders == ["uploads"]  # no artifacts folder existed
    assert "uploads/u1/kettle.jpg" in manifest.files and "chroma/chroma.sqlite3" in manifest.files
    assert read_backup(tmp_path / "backup") == manifest

    # Lose the catalogue and a turn.
    store = KnowledgeStore(path=sources.chroma)
    store.reset()
    store.client.close()
    with sqlite3.connect(tmp_path / "data" / "sessions.db") as connection:
        connection.execute("DELETE FROM turns")
    connection.close()
    (tmp_path / "data" / "uploads" / "u1" / "kettle.jpg").unlink()

    report = restore_backup(tmp_path / "backup", sources)
    assert report.store == manifest.store
    restored = KnowledgeStore(path=sources.chroma)
    assert sorted(restored.ids("products")) == ["kettle", "lamp"]
    assert restored.count("images") == 1
    restored.client.close()
    with sqlite3.connect(tmp_path / "data" / "sessions.db") as connection:
        assert [r[0] for r in connection.execute("SELECT text FROM turns")] == ["hi", "thanks"]
    connection.close()
    assert (tmp_path / "data" / "uploads" / "u1" / "kettle.jpg").is_file()
    assert len(report.kept) == 2 and all(Path(kept).exists() for kept in report.kept)
    assert any(".before-restore-" in kept and "chroma" in kept for kept in report.kept)


def test_a_folder_that_is_not_a_backup_is_refused(tmp_path: Path) -> None:
    sources = shop(tmp_path / "data")
    with pytest.raises(BackupError, match="is not a ShopSight backup"):
        restore_backup(tmp_path / "data", sources)
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / MANIFEST).write_text('{"format": "other", "created": "x"}')
    with pytest.raises(BackupError, match="'other' backup"):
        read_backup(tmp_path / "odd")


def test_a_damaged_backup_is_refused_before_anything_is_touched(tmp_path: Path) -> None:
    sources = shop(tmp_path / "data")
    make_backup(sources, tmp_path / "backup")
    before = sorted(p.name for p in (tmp_path / "data").iterdir())
    with (tmp_path / "backup" / "uploads" / "u1" / "kettle.jpg").open("ab") as photo:
        photo.write(b"x")
    with pytest.raises(BackupError, match=r"damaged: uploads/u1/kettle\.jpg does not match"):
        restore_backup(tmp_path / "backup", sources)
    (tmp_path / "backup" / "sessions.db").unlink()
    with pytest.raises(BackupError, match=r"sessions\.db is missing"):
        read_backup(tmp_path / "backup")
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == before


def test_a_backup_needs_a_new_folder_and_a_store(tmp_path: Path) -> None:
    sources = shop(tmp_path / "data")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "something").write_text("x")
    with pytest.raises(BackupError, match="is not empty"):
        make_backup(sources, tmp_path / "full")
    with pytest.raises(BackupError, match="no Chroma store"):
        make_backup(BackupSources(chroma=tmp_path / "nothing"), tmp_path / "b")


def test_restore_refuses_another_collection_prefix(tmp_path: Path) -> None:
    sources = shop(tmp_path / "data")
    make_backup(sources, tmp_path / "backup")
    other = BackupSources(chroma=sources.chroma, prefix="othershop")
    with pytest.raises(BackupError, match="SHOPSIGHT_COLLECTION_PREFIX"):
        restore_backup(tmp_path / "backup", other)
