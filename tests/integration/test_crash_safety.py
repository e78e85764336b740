"""SIGKILL in the middle of `shopsight kb ingest`, of chat turns and of an uploaded catalogue,
then again: exactly the right records, and no answered turn lost."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from knowledge_base.store import KnowledgeStore
from tests.integration.serving import ADMIN, AGENT, environment, serve

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
    # The finished batches were kept; the batch whose write was still in flight (writing
    # overlaps embedding the next one) may be lost, and is embedded again.
    assert report["images_unchanged"] >= killed_after - BATCH
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


# --- the server killed with SIGKILL: during chat turns, and during an uploaded catalogue ---------


def test_server_killed_during_turns_loses_no_answered_turn(tmp_path: Path) -> None:
    env = environment(tmp_path / "data")
    served = serve(env, tmp_path)
    answered: dict[str, list[str]] = {}
    stop = threading.Event()

    def talk() -> None:
        with served.client(timeout=60) as client:
            for n in range(10_000):
                if stop.is_set():
                    return
                session, text = f"crash-{n % 3}", f"question number {n}"
                try:
                    response = client.post("/v1/chat", json={"session_id": session, "text": text})
                except httpx.HTTPError:
                    return  # the server died mid-turn: that turn was never answered
                if response.status_code == 200:
                    answered.setdefault(session, []).append(text)

    talker = threading.Thread(target=talk, daemon=True)
    talker.start()
    deadline = time.monotonic() + 180
    while sum(map(len, answered.values())) < 12 and time.monotonic() < deadline:
        time.sleep(0.05)
    served.kill()  # SIGKILL, with a turn in flight
    stop.set()
    talker.join(timeout=60)
    assert sum(map(len, answered.values())) >= 12, "too few turns were answered before the kill"

    again = serve(env, tmp_path)  # the store opens and the killed server's lock is gone
    try:
        with again.client() as client:
            for session, texts in answered.items():
                turns = client.get(f"/v1/sessions/{session}", headers=AGENT).json()["turns"]
                stored = [turn["text"] for turn in turns]
                # Every answered turn is there, in order; a turn stored just before the kill
                # whose answer never left may follow them.
                assert stored[: len(texts)] == texts
                assert len(stored) - len(texts) <= 1
            session = next(iter(answered))
            after = client.post("/v1/chat", json={"session_id": session, "text": "still there?"})
            assert after.status_code == 200, after.text
    finally:
        again.kill()


@pytest.mark.timeout(600)
def test_server_killed_during_an_upload_finishes_on_a_second_upload(tmp_path: Path) -> None:
    expected = photo_folder(tmp_path / "photos" / "shop")
    archive = tmp_path / "shop.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in sorted((tmp_path / "photos").rglob("*.jpg")):
            zipped.write(path, path.relative_to(tmp_path / "photos" / "shop").as_posix())
    env = environment(tmp_path / "data", SHOPSIGHT_INGEST_BATCH_SIZE=str(BATCH))
    served = serve(env, tmp_path)
    outcome: dict[str, object] = {}

    def upload() -> None:
        with served.client(timeout=600) as client:
            try:
                outcome["response"] = client.post(
                    "/v1/kb/ingest",
                    files={"file": ("shop.zip", archive.read_bytes())},
                    headers=ADMIN,
                )
            except httpx.HTTPError as exc:
                outcome["error"] = exc

    uploader = threading.Thread(target=upload, daemon=True)
    uploader.start()
    killed_at = 0
    deadline = time.monotonic() + 300
    with served.client() as client:
        while uploader.is_alive() and time.monotonic() < deadline:
            images = client.get("/v1/kb/stats", headers=ADMIN).json()["images"]
            if 2 * BATCH <= images < TOTAL:
                served.kill()
                killed_at = images
                break
            time.sleep(0.05)
    uploader.join(timeout=60)
    served.kill()
    assert killed_at, f"the upload was not caught halfway: {outcome}"
    assert "error" in outcome  # the killed upload was never answered

    again = serve(env, tmp_path)
    try:
        with again.client(timeout=600) as client:
            done = client.post(
                "/v1/kb/ingest", files={"file": ("shop.zip", archive.read_bytes())}, headers=ADMIN
            )
            assert done.status_code == 200, done.text
            report = done.json()["report"]
            assert report["rejections"] == []
            # The second upload has a folder of its own: products already stored get its
            # image paths (updated), the rest are embedded; none is stored twice.
            for kind in ("products", "images"):
                outcomes = ("embedded", "updated", "unchanged")
                assert sum(report[f"{kind}_{n}"] for n in outcomes) == TOTAL, report
            assert report["images_embedded"] <= TOTAL - killed_at + BATCH, report
            stats = client.get("/v1/kb/stats", headers=ADMIN).json()
            assert (stats["products"], stats["images"]) == (TOTAL, TOTAL)  # no duplicates
            found = client.post(
                "/v1/search/text", json={"query": "item-007", "k": 50, "include": ["products"]}
            )
            assert found.status_code == 200
    finally:
        again.kill()
    store = KnowledgeStore(path=tmp_path / "data" / "chroma")
    assert set(store.ids("products")) == expected
    assert set(store.ids("images")) == {f"{pid}#img0" for pid in expected}
