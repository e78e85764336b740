"""One writer per embedded Chroma folder: an OS file lock beside the folder, and who holds it.

Two processes that open one embedded Chroma folder do not see each other's writes (each keeps
its own HNSW graph in memory and flushes it over the other's), so only one process may write.
`shopsight serve` takes the lock at startup and keeps it; a writing command takes it for its
run. The lock is `flock` on `<folder>.lock` (through `filelock`), so the kernel drops it when
its process dies, even by `kill -9`: a stale lock file never blocks the next start. Whoever
holds it describes itself in `<folder>.lock.json` (pid, command, URL once known), which is only
believed while the lock is held.

Within one process the lock is counted, not re-taken: the server's store and a command run in
the same process share one Chroma client, which is safe. (`store.py` imports this module only
when it first writes: this module needs its `StoreUnavailable`.)
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from filelock import FileLock, Timeout

from knowledge_base.store import StoreUnavailable

__all__ = ["LockHolder", "Role", "StoreLock", "StoreLocked", "publish_url"]

Role = Literal["server", "command"]


@dataclass(frozen=True)
class LockHolder:
    """The process that holds a store's writer lock, as it described itself."""

    pid: int
    command: str
    since: str
    role: Role = "command"
    url: str | None = None

    def describe(self) -> str:
        where = f", {self.url}" if self.url else ""
        return f"`{self.command}` (pid {self.pid}{where}, since {self.since})"


class StoreLocked(StoreUnavailable):
    """Another process holds the store's writer lock; the message names it and what to do."""

    def __init__(self, folder: Path, holder: LockHolder | None) -> None:
        who = holder.describe() if holder else "another process"
        if holder and holder.role == "server":
            api = holder.url or ""
            advice = (
                f"change the catalogue through its admin API (POST {api}/v1/kb/ingest, DELETE "
                f"{api}/v1/kb/records/ID, with an admin key), or stop that server and run this "
                "again"
            )
        else:
            advice = "wait for it to finish, or stop it, and run this again"
        super().__init__(f"the knowledge base at {folder} is in use by {who}: {advice}")
        self.folder = folder
        self.holder = holder


@dataclass
class _Held:
    lock: FileLock
    info: Path
    holder: LockHolder
    count: int = 0


_HELD: dict[Path, _Held] = {}
_REGISTRY = threading.RLock()


class StoreLock:
    """The writer lock of one embedded store folder; `acquire` never waits."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.key = self.folder.resolve()
        self.path = self.key.with_name(self.key.name + ".lock")
        self.info = self.key.with_name(self.key.name + ".lock.json")

    @property
    def held_here(self) -> bool:
        """True while this process holds the lock."""
        with _REGISTRY:
            return self.key in _HELD

    def acquire(self, role: Role = "command", url: str | None = None) -> None:
        """Take the lock (or count once more if this process has it); raises `StoreLocked` at
        once if another process holds it."""
        with _REGISTRY:
            held = _HELD.get(self.key)
            if held is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                lock = FileLock(self.path, timeout=0, thread_local=False, preserve_lock_file=True)
                try:
                    lock.acquire()
                except Timeout:
                    raise StoreLocked(self.folder, self.holder()) from None
                holder = LockHolder(
                    pid=os.getpid(),
                    command=_command_line(),
                    since=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    role=role,
                    url=url,
                )
                held = _Held(lock, self.info, holder)
                _write_info(held)
                _HELD[self.key] = held
            elif role == "server" and held.holder.role != "server":
                held.holder = dataclasses.replace(held.holder, role="server", url=url)
                _write_info(held)
            held.count += 1

    def release(self) -> None:
        """Give back one count; the last one unlocks the file."""
        with _REGISTRY:
            held = _HELD.get(self.key)
            if held is None:
                return
            held.count -= 1
            if held.count <= 0:
                del _HELD[self.key]
                held.info.unlink(missing_ok=True)
                held.lock.release()

    def holder(self) -> LockHolder | None:
        """Who holds the lock now (this process included), or None when nobody does."""
        with _REGISTRY:
            if self.key in _HELD:
                return _HELD[self.key].holder
        probe = FileLock(self.path, timeout=0, thread_local=False, preserve_lock_file=True)
        try:
            probe.acquire()
        except Timeout:
            return _read_info(self.info) or LockHolder(pid=0, command="unknown", since="?")
        probe.release()
        return None

    def __enter__(self) -> StoreLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def publish_url(url: str) -> None:
    """Tell whoever finds a lock of this process where it serves (a server, once it listens)."""
    with _REGISTRY:
        for held in _HELD.values():
            if held.holder.role == "server":
                held.holder = dataclasses.replace(held.holder, url=url)
                _write_info(held)


def _command_line() -> str:
    """What started this process, short: `shopsight kb ingest`, `app.py`."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    words = [name]
    for arg in sys.argv[1:]:
        if arg.startswith("-") or len(words) == 3:
            break
        words.append(arg)
    return " ".join(words) if name == "shopsight" else name


def _write_info(held: _Held) -> None:
    """Written whole and renamed into place, so a reader never sees half of it."""
    part = held.info.with_name(held.info.name + f".{os.getpid()}.tmp")
    part.write_text(json.dumps(asdict(held.holder)), encoding="utf-8")
    part.replace(held.info)


def _read_info(path: Path) -> LockHolder | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return LockHolder(
            pid=int(data["pid"]),
            command=str(data["command"]),
            since=str(data["since"]),
            role="server" if data.get("role") == "server" else "command",
            url=data.get("url"),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
