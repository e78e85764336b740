"""SIGKILL in the middle of `shopsight kb ingest`, then again: exactly the right records."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from knowledge_base.store import KnowledgeStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CATEGORIES = ("shoes", "bags", "hats")
PER_CATEGORY = 50
TOTAL = len(CATEGORIES) * PER_CATEGORY
BATCH = 8
PROGRESS = re.compile(rf"product images:[^\r\n]*?\|\s*(\d+)/{TOTAL}\b")


def photo_folder(root: Path) -> set[str]:
    """150 distinct small JPEGs, 50 per category folder; returns the expected product ids."""
    rng = np.random.default_rng(7)
    ids = set()
    for category_index, category in enumerate(CATEGORIES):
        folder = root / category
        folder.mkdir(parents=True)
        for n in range(PER_CATEGORY):
            base = np.zeros((96, 96, 3), dtype=np.uint8)
            base[..., category_index] = 60 + 3 * n
            pixels = np.clip(base + rng.integers(0, 60, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"item-{n:03d}.jpg", quality=90)
            ids.add(f"{category}/item-{n:03d}")
    return ids


def shopsight(*args: str) -> list[str]:
    script = Path(sys.executable).parent / "shopsight"
    prefix = [str(script)] if script.exists() else [sys.executable, "-m", "assistant.cli"]
    return [*prefix, *args]


class Output:
    """Collects a pipe in a background thread so the test can watch progress as it happens."""

    def __init__(self, stream: object) -> None:
        self.text = ""
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: object) -> None:
        fd = stream.fileno()  # type: ignore[attr-defined]
        while chunk := os.read(fd, 4096):
            with self._lock:
                self.text += chunk.decode("utf-8", "replace")

    def images_done(self) -> int:
        with self._lock:
            counts = [int(m) for m in PROGRESS.findall(self.text)]
        return max(counts, default=0)

    def join(self) -> str:
        self._thread.join(timeout=10)
        return self.text


@pytest.mark.timeout(600)
def test_ingest_killed_with_sigkill_finishes_on_rerun_without_duplicates(tmp_path: Path) -> None:
    expected = photo_folder(tmp_path / "photos")
    env = {
        **os.environ,
        "SHOPSIGHT_DATA_DIR": str(tmp_path / "data"),
        "SHOPSIGHT_INGEST_BATCH_SIZE": str(BATCH),
        "SHOPSIGHT_TEXT_EMBEDDER": "e5",
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": "1",  # no thread oversubscription on a small, busy CPU
    }
    env.pop("SHOPSIGHT_CHROMA_URL", None)
    env.pop("SHOPSIGHT_CHROMA_PATH", None)
    command = shopsight("kb", "ingest", str(tmp_path / "photos"), "--json")

    first = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    output = Output(first.stderr)
    deadline = time.monotonic() + 180
    killed_after = 0
    try:
        while first.poll() is None and time.monotonic() < deadline:
            done = output.images_done()
            if 2 * BATCH <= done < TOTAL:
                first.send_signal(signal.SIGKILL)
                killed_after = done
                break
            time.sleep(0.02)
    finally:
        if first.poll() is None and not killed_after:
            first.kill()
        first.wait(timeout=30)
    log = output.join()
    assert killed_after, f"the ingest was not caught halfway (exit {first.returncode}):\n{log}"
    assert first.returncode == -signal.SIGKILL

    second = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180
    )
    assert second.returncode == 0, second.stderr
    report = json.loads(second.stdout)
    assert report["rejections"] == []
    assert report["products_embedded"] + report["products_unchanged"] == TOTAL
    assert report["products_unchanged"] == TOTAL  # products were all written before the kill
    assert report["images_unchanged"] >= killed_after  # the finished batches were kept
    assert report["images_embedded"] + report["images_unchanged"] == TOTAL

    store = KnowledgeStore(path=tmp_path / "data" / "chroma")
    product_ids = store.ids("products")
    image_hits = store.get("images")
    image_ids = [hit.id for hit in image_hits]
    assert len(product_ids) == len(set(product_ids)) == TOTAL
    assert len(image_ids) == len(set(image_ids)) == TOTAL
    assert set(product_ids) == expected
    assert set(image_ids) == {f"{pid}#img0" for pid in expected}
    assert sorted(str(hit.metadata["product_id"]) for hit in image_hits) == sorted(expected)
    assert store.count("products") == store.count("images") == TOTAL
