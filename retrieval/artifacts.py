"""One convention for every trained artefact: `<name>-v<N>/` under the artefacts folder.

Each folder holds the model's files and a `meta.json` with at least `format_version`, `name`,
`version`, `created` and the run's `metrics`. A folder is written into a hidden temporary
sibling and renamed into place in one step, and `meta.json` is the last file written, so a
killed run never leaves a folder that `latest` would pick up: a version counts as complete only
when its `meta.json` is there. Retraining adds a version; loaders take the highest complete one.

Folders written before this convention (`category-vN/`, `intent-vN/`, `align-v1/`,
`photo-match-v1/`, `sentiment-v1/`) already follow the naming, so they load unchanged.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1
META_FILE = "meta.json"

WriteFiles = Callable[[Path], None]
"""Writes a model's files into the (temporary) folder it is given."""


def folder_name(name: str, version: int) -> str:
    return f"{name}-v{version}"


def versions(artifacts_dir: Path, name: str, complete: bool = True) -> list[int]:
    """Version numbers of `name` under `artifacts_dir`, ascending; with `complete=False` also
    those without a `meta.json` (a run that died before finishing)."""
    if not artifacts_dir.is_dir():
        return []
    pattern = re.compile(rf"{re.escape(name)}-v(\d+)")
    found = []
    for path in artifacts_dir.iterdir():
        match = pattern.fullmatch(path.name)
        if match and path.is_dir() and (not complete or (path / META_FILE).is_file()):
            found.append(int(match.group(1)))
    return sorted(found)


def latest(artifacts_dir: Path, name: str) -> Path | None:
    """The highest complete `<name>-vN/` under `artifacts_dir`, or None when none was saved."""
    found = versions(artifacts_dir, name)
    return artifacts_dir / folder_name(name, found[-1]) if found else None


def next_folder(artifacts_dir: Path, name: str) -> Path:
    """The folder the next version of `name` goes to (past any incomplete one too)."""
    found = versions(artifacts_dir, name, complete=False)
    return artifacts_dir / folder_name(name, (found[-1] if found else 0) + 1)


def read_meta(folder: Path) -> dict[str, Any]:
    """`folder/meta.json`; FileNotFoundError when the folder is not a complete artefact."""
    path = folder / META_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: not a saved model (no {META_FILE})")
    meta: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return meta


def read_model_meta(
    folder: Path, kind: str, format_version: int, retrain: str = "retrain it"
) -> dict[str, Any]:
    """`read_meta` of a `kind` model (e.g. "intent model") whose files must have the layout
    `format_version` names: a loader would misread another layout, so it is refused with how to
    rebuild it (`retrain`)."""
    if not (folder / META_FILE).is_file():
        article = "an" if kind[:1] in "aeiou" else "a"
        raise FileNotFoundError(f"{folder}: not {article} {kind} (no {META_FILE})")
    meta = read_meta(folder)
    if meta.get("format_version") != format_version:
        raise ValueError(
            f"{folder}: {kind} format {meta.get('format_version')} is not "
            f"{format_version}; {retrain}"
        )
    return meta


def save(artifacts_dir: Path, name: str, write_files: WriteFiles, meta: dict[str, Any]) -> Path:
    """Write a new version `<name>-v<N+1>/` atomically and return it."""
    return write(next_folder(artifacts_dir, name), name, write_files, meta)


def write(folder: Path, name: str, write_files: WriteFiles, meta: dict[str, Any]) -> Path:
    """Write `folder` atomically, replacing it if it exists: files and meta.json go into a
    temporary sibling that is renamed into place. Returns `folder`; `meta` is updated with the
    standard fields as written."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    stamp = time.time_ns()
    staging = folder.with_name(f".{folder.name}.staging-{stamp}")
    staging.mkdir()
    try:
        write_files(staging)
        match = re.fullmatch(rf"{re.escape(name)}-v(\d+)", folder.name)
        meta.setdefault("format_version", FORMAT_VERSION)
        meta["name"] = name
        if match:
            meta["version"] = int(match.group(1))
        meta.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        meta.setdefault("metrics", {})
        text = json.dumps(meta, indent=2, ensure_ascii=False, default=str)
        (staging / META_FILE).write_text(text, encoding="utf-8")
        retired = folder.with_name(f".{folder.name}.old-{stamp}")
        if folder.exists():
            folder.rename(retired)
        staging.rename(folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(retired, ignore_errors=True)
    return folder
