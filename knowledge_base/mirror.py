"""Keeping a second model's vectors of the stored images in step with the store.

The trained photo matcher embeds catalogue images differently from the frozen encoder that
ingestion uses. Its vectors live in a mirror of the `images` collection (`KnowledgeStore.mirror`)
with the same ids and metadata. `sync_mirror` brings the mirror level with the store: images
that are new or whose file changed are embedded, changed metadata is copied, images gone from
the store go from the mirror. It writes a batch at a time and compares the records' hashes, so a
killed run resumes where it stopped; the mirror is marked `synced` once a pass has finished, and
only a synced mirror is searched.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from knowledge_base.store import Hit, KnowledgeStore

PathEmbedder = Callable[[Sequence[Path]], np.ndarray]
"""Image files → one L2-normalised row each (may raise on an unreadable file)."""

SYNCED = "synced"


@dataclass
class MirrorReport:
    """What one pass did; `unreadable` lists images whose file could not be embedded."""

    space: str
    embedded: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    unreadable: list[str] = field(default_factory=list)
    seconds: float = 0.0


def is_synced(store: KnowledgeStore, space: str, encoder_name: str) -> bool:
    """True when `space` exists, was built by `encoder_name` and a sync pass has finished."""
    if space not in store.mirror_spaces():
        return False
    marks = store.mirror(space).marks("images")
    return bool(marks.get(SYNCED)) and marks.get("encoder") == encoder_name


def sync_mirror(
    store: KnowledgeStore,
    space: str,
    encoder_name: str,
    embed: PathEmbedder,
    batch: int = 64,
    progress: bool = True,
) -> MirrorReport:
    """Bring the mirror `space` level with the store's images (see the module docstring)."""
    started = time.perf_counter()
    mirror = store.mirror(space)
    mirror.collection("images", encoder=encoder_name)
    report = MirrorReport(space=space)
    source = {hit.id: hit for hit in store.scan("images")}
    target = {hit.id: hit.metadata for hit in mirror.scan("images")}
    gone = [record_id for record_id in target if record_id not in source]
    if gone:
        report.removed = mirror.delete("images", ids=gone)
    fresh: list[Hit] = []
    changed: list[Hit] = []
    for record_id, hit in source.items():
        held = target.get(record_id)
        if held is None or held.get("vector_hash") != hit.metadata.get("vector_hash"):
            fresh.append(hit)
        elif held.get("content_hash") != hit.metadata.get("content_hash"):
            changed.append(hit)
        else:
            report.unchanged += 1
    if changed:
        mirror.refresh(
            "images",
            [hit.id for hit in changed],
            [hit.document for hit in changed],
            [hit.metadata for hit in changed],
        )
        report.updated = len(changed)
    with tqdm(
        total=len(fresh), desc=f"re-embedding images ({space})", unit="img", disable=not progress
    ) as bar:
        for start in range(0, len(fresh), batch):
            part = fresh[start : start + batch]
            done, vectors = _embed_readable(part, embed, report)
            mirror.upsert(
                "images",
                [hit.id for hit in done],
                vectors,
                [hit.document for hit in done],
                [hit.metadata for hit in done],
            )
            report.embedded += len(done)
            bar.update(len(part))
    mirror.mark("images", {SYNCED: True})
    report.seconds = round(time.perf_counter() - started, 2)
    return report


def _embed_readable(
    hits: list[Hit], embed: PathEmbedder, report: MirrorReport
) -> tuple[list[Hit], np.ndarray]:
    """Embed the batch; when that fails, one by one, so one bad file costs only itself."""
    with_path = [hit for hit in hits if hit.metadata.get("path")]
    report.unreadable += [hit.id for hit in hits if not hit.metadata.get("path")]
    try:
        return with_path, embed([Path(str(hit.metadata["path"])) for hit in with_path])
    except (OSError, ValueError):
        pass
    done: list[Hit] = []
    rows: list[np.ndarray] = []
    for hit in with_path:
        try:
            rows.append(embed([Path(str(hit.metadata["path"]))])[0])
        except (OSError, ValueError) as exc:
            report.unreadable.append(f"{hit.id}: {exc}")
            continue
        done.append(hit)
    return done, np.stack(rows) if rows else np.zeros((0, 1), dtype=np.float32)
