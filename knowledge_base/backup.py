"""A consistent copy of what a shop cannot rebuild, and putting it back.

A backup folder holds:
- `chroma/`: the embedded Chroma folder, copied while the caller holds its writer lock
  (`knowledge_base.lock`), so no write lands mid-copy; its SQLite file goes through SQLite's
  online backup, the segment files are copied as they are;
- the folders beside it that records point into (`uploads/`: the images of uploaded zips, which
  products name by path) or that cost a training run to remake (`artifacts/`);
- SQLite databases (the conversations), each through SQLite's online backup API, which gives a
  consistent copy even while a server writes turns;
- `backup.json`: format, version, when, the record count of every store collection and row
  count of every table, and the size and SHA-256 of every file.

Caches and evidence packs are not copied: they are derived and rebuilt on demand. A restore
checks the manifest and every checksum before it touches anything, stages the store beside the
live one and swaps it in by renames, keeps what it replaced (`*.before-restore-<time>`), then
opens the restored store and compares its counts with the manifest.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel

from knowledge_base.store import KnowledgeStore

__all__ = [
    "BACKUP_FORMAT",
    "BACKUP_VERSION",
    "MANIFEST",
    "BackupError",
    "BackupSources",
    "FileEntry",
    "Manifest",
    "RestoreReport",
    "make_backup",
    "read_backup",
    "restore_backup",
]

BACKUP_FORMAT = "shopsight-backup"
BACKUP_VERSION = 1
MANIFEST = "backup.json"
STORE_FOLDER = "chroma"
CHROMA_DB = "chroma.sqlite3"
_CHUNK = 1024 * 1024


class BackupError(ValueError):
    """A backup that cannot be made or used; the message says why and what to do."""


@dataclass
class BackupSources:
    """What to copy (or where to restore to): the store folder, its collection prefix, plain
    folders and SQLite databases by the name they get in the backup."""

    chroma: Path | None
    prefix: str = "shopsight"
    folders: dict[str, Path] = field(default_factory=dict)
    databases: dict[str, Path] = field(default_factory=dict)


class FileEntry(BaseModel):
    size: int
    sha256: str


class Manifest(BaseModel):
    format: str = BACKUP_FORMAT
    version: int = BACKUP_VERSION
    created: str
    store: dict[str, int] | None = None
    """Records per collection of the store's prefix; None when no store was copied."""
    prefix: str = "shopsight"
    folders: list[str] = []
    databases: dict[str, dict[str, int]] = {}
    """Rows per table of each SQLite database."""
    files: dict[str, FileEntry] = {}


class RestoreReport(BaseModel):
    """What a restore put back and where the replaced data was kept."""

    manifest: Manifest
    store: dict[str, int] | None = None
    kept: list[str] = []


def make_backup(sources: BackupSources, destination: Path) -> Manifest:
    """Copy `sources` into `destination` (new or empty) and write the manifest last, so a
    folder without one is an unfinished backup. The caller holds the store's writer lock."""
    if destination.exists() and any(destination.iterdir()):
        raise BackupError(f"{destination} is not empty: give a new folder for the backup")
    destination.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), prefix=sources.prefix)
    if sources.chroma is not None:
        if not (sources.chroma / CHROMA_DB).is_file():
            raise BackupError(f"no Chroma store at {sources.chroma} (no {CHROMA_DB})")
        _copy_store(sources.chroma, destination / STORE_FOLDER)
        manifest.store = _store_counts(destination / STORE_FOLDER, sources.prefix)
    for name, folder in sources.folders.items():
        if folder.is_dir():
            shutil.copytree(folder, destination / name)
            manifest.folders.append(name)
    for name, database in sources.databases.items():
        if database.is_file():
            _sqlite_copy(database, destination / name)
            manifest.databases[name] = _table_counts(destination / name)
    manifest.files = {
        path.relative_to(destination).as_posix(): _entry(path)
        for path in sorted(destination.rglob("*"))
        if path.is_file()
    }
    (destination / MANIFEST).write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
    return manifest


def read_backup(folder: Path) -> Manifest:
    """The manifest of a complete, undamaged backup; `BackupError` for anything else."""
    path = folder / MANIFEST
    if not path.is_file():
        raise BackupError(
            f"{folder} is not a ShopSight backup (no {MANIFEST}; an interrupted backup has none)"
        )
    try:
        manifest = Manifest.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except ValueError as exc:
        raise BackupError(f"{path} is not a readable backup manifest: {exc}") from exc
    if manifest.format != BACKUP_FORMAT or manifest.version > BACKUP_VERSION:
        raise BackupError(
            f"{folder} holds a {manifest.format!r} backup of version {manifest.version}; this "
            f"ShopSight reads {BACKUP_FORMAT!r} up to version {BACKUP_VERSION}"
        )
    for name, expected in manifest.files.items():
        file = folder / name
        if not file.is_file():
            raise BackupError(f"the backup in {folder} is damaged: {name} is missing")
        if _entry(file) != expected:
            raise BackupError(
                f"the backup in {folder} is damaged: {name} does not match its checksum"
            )
    listed = set(manifest.files) | {MANIFEST}
    extra = [
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.relative_to(folder).as_posix() not in listed
    ]
    if extra:
        raise BackupError(f"the backup in {folder} has files it does not list: {extra[:3]}")
    return manifest


def restore_backup(folder: Path, targets: BackupSources) -> RestoreReport:
    """Put a checked backup back into `targets`; the caller holds the store's writer lock."""
    manifest = read_backup(folder)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    report = RestoreReport(manifest=manifest)
    if manifest.store is not None:
        if targets.chroma is None:
            raise BackupError(
                "this backup holds an embedded store, but the store is a Chroma server "
                "(SHOPSIGHT_CHROMA_URL): unset it to restore into SHOPSIGHT_CHROMA_PATH"
            )
        if targets.prefix != manifest.prefix:
            raise BackupError(
                f"the backup's collections are named {manifest.prefix!r}, the settings say "
                f"{targets.prefix!r} (SHOPSIGHT_COLLECTION_PREFIX)"
            )
        report.kept += _swap_in(folder / STORE_FOLDER, targets.chroma, stamp)
        report.store = _store_counts(targets.chroma, targets.prefix)
        if report.store != manifest.store:
            raise BackupError(
                f"the restored store at {targets.chroma} holds {report.store}, the backup "
                f"says {manifest.store}; the store it replaced is kept as {report.kept}"
            )
    for name in manifest.folders:
        target = targets.folders.get(name)
        if target is not None:
            # Merged: files the backup has come back; newer files beside them stay.
            shutil.copytree(folder / name, target, dirs_exist_ok=True)
    for name in manifest.databases:
        target = targets.databases.get(name)
        if target is None:
            continue
        if target.is_file():
            kept = target.with_name(f"{target.name}.before-restore-{stamp}")
            _sqlite_copy(target, kept)
            report.kept.append(str(kept))
        target.parent.mkdir(parents=True, exist_ok=True)
        _sqlite_copy(folder / name, target)
    return report


def _copy_store(source: Path, target: Path) -> None:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(f"{CHROMA_DB}*"))
    _sqlite_copy(source / CHROMA_DB, target / CHROMA_DB)


def _swap_in(backup_store: Path, live: Path, stamp: str) -> list[str]:
    """Stage the copy beside the live folder, then two renames; the old folder is kept."""
    staged = live.with_name(f"{live.name}.restoring-{stamp}")
    shutil.copytree(backup_store, staged)
    kept: list[str] = []
    if live.exists():
        old = live.with_name(f"{live.name}.before-restore-{stamp}")
        live.rename(old)
        kept.append(str(old))
    staged.rename(live)
    return kept


def _store_counts(folder: Path, prefix: str) -> dict[str, int]:
    """Records per collection of `prefix` (mirrors and the generation record included), read
    through Chroma itself: this also proves the folder opens."""
    store = KnowledgeStore(path=folder, prefix=prefix)
    try:
        return {
            c.name: int(c.count())
            for c in sorted(store.client.list_collections(), key=lambda c: c.name)
            if c.name.startswith(f"{prefix}_")
        }
    finally:
        # Let go of Chroma's per-path client, so files can be checksummed or moved after.
        store.client.close()


def _sqlite_copy(source: Path, target: Path) -> None:
    """SQLite's online backup: a consistent snapshot even while another connection writes."""
    with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as src:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
        finally:
            dst.close()
    src.close()


def _table_counts(database: Path) -> dict[str, int]:
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        tables = [
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' "
                "ORDER BY name"
            )
        ]
        return {
            table: int(connection.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0])
            for table in tables
        }
    finally:
        connection.close()


def _entry(path: Path) -> FileEntry:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return FileEntry(size=path.stat().st_size, sha256=digest.hexdigest())
