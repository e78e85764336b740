"""One writer per embedded store folder, and the generation every write changes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from knowledge_base.lock import StoreLock, StoreLocked
from knowledge_base.store import KnowledgeStore, StoreUnavailable
from retrieval.search.bm25 import CollectionCache
from retrieval.search.tokenize import Tokenizer

HOLD = """
import sys, time
from pathlib import Path
from knowledge_base.lock import StoreLock, publish_url
StoreLock(Path(sys.argv[1])).acquire(sys.argv[2])
publish_url("http://127.0.0.1:9")
print("held", flush=True)
time.sleep(120)
"""


def hold_in_another_process(folder: Path, role: str = "server") -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder), role], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "held"
    return process


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    process = hold_in_another_process(tmp_path / "chroma")
    yield process
    if process.poll() is None:
        process.kill()
        process.wait(timeout=10)


def test_a_second_process_is_refused_at_once_with_the_holder_named(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    lock = StoreLock(tmp_path / "chroma")
    found = lock.holder()
    assert found is not None and found.pid == holder.pid and found.role == "server"
    with pytest.raises(StoreLocked) as refused:
        lock.acquire()
    message = str(refused.value)
    assert f"pid {holder.pid}" in message and "http://127.0.0.1:9" in message
    assert "POST http://127.0.0.1:9/v1/kb/ingest" in message and "stop that server" in message
    assert "\n" not in message
    assert isinstance(refused.value, StoreUnavailable)  # the CLI's one-line user errors
    assert not lock.held_here


def test_a_write_to_a_store_held_elsewhere_is_refused(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    store = KnowledgeStore(path=tmp_path / "chroma")
    assert store.count("products") == 0  # reading is allowed
    with pytest.raises(StoreLocked, match=f"pid {holder.pid}"):
        store.upsert("products", ["a"], np.ones((1, 4)), ["a"], [{}])
    assert store.count("products") == 0


def test_the_lock_of_a_killed_process_is_free_at_once(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    lock = StoreLock(tmp_path / "chroma")
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    assert (tmp_path / "chroma.lock").exists()  # the file stays; the kernel dropped the lock
    assert lock.holder() is None
    with lock:
        assert lock.held_here
    assert not lock.held_here


def test_one_process_counts_its_holds(tmp_path: Path) -> None:
    first, second = StoreLock(tmp_path / "chroma"), StoreLock(tmp_path / "chroma")
    first.acquire("server")
    second.acquire()
    first.release()
    assert second.held_here
    assert (holder := second.holder()) is not None and holder.role == "server"
    second.release()
    assert not second.held_here and second.holder() is None


def test_a_command_holding_the_lock_is_named_with_advice_to_wait(tmp_path: Path) -> None:
    process = hold_in_another_process(tmp_path / "chroma", role="command")
    try:
        with pytest.raises(StoreLocked, match="wait for it to finish"):
            StoreLock(tmp_path / "chroma").acquire()
    finally:
        process.kill()
        process.wait(timeout=10)


def test_every_write_changes_the_generation_and_others_see_it(tmp_path: Path) -> None:
    writer = KnowledgeStore(path=tmp_path / "chroma")
    reader = KnowledgeStore(path=tmp_path / "chroma", watch_seconds=0.2)
    assert writer.generation() == reader.generation() == ""
    writer.upsert("products", ["a"], np.ones((1, 4)), ["first"], [{"x": 1}])
    first = writer.generation()
    assert first and reader.generation() == ""  # read at most every watch_seconds
    time.sleep(0.25)
    assert reader.generation() == first
    writer.refresh("products", ["a"], ["second"], [{"x": 2}])
    second = writer.generation()
    assert second != first
    assert writer.delete("products", ids=["missing"]) == 0
    assert writer.generation() == second  # nothing went: nothing changed
    writer.delete("products", ids=["a"])
    assert writer.generation() not in ("", first, second)
    time.sleep(0.25)
    assert reader.generation() == writer.generation()


def test_bm25_follows_an_edit_by_another_writer_that_keeps_the_count(tmp_path: Path) -> None:
    writer = KnowledgeStore(path=tmp_path / "chroma")
    served = KnowledgeStore(path=tmp_path / "chroma", watch_seconds=0.2)
    writer.upsert(
        "products",
        ["kettle", "lamp"],
        np.eye(2, 4),
        ["electric kettle", "table lamp"],
        [{"content_hash": "1"}, {"content_hash": "1"}],
    )
    cache = CollectionCache(served, Tokenizer(), recheck_seconds=3600)
    assert [hit.record.id for hit in cache.index("products").search("lamp", 5)] == ["lamp"]
    writer.refresh("products", ["kettle"], ["zyzzyva kettle"], [{"content_hash": "2"}])
    time.sleep(0.25)
    found = cache.index("products").search("zyzzyva", 5)
    assert [hit.record.id for hit in found] == ["kettle"]
    assert cache.builds == 2
