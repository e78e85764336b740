"""`shopsight serve` and `shopsight ...` as separate processes, the way an operator runs them."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ADMIN_KEY = "admin-key-for-serving-tests"
AGENT_KEY = "agent-key-for-serving-tests"
ADMIN = {"X-API-Key": ADMIN_KEY}
AGENT = {"X-API-Key": AGENT_KEY}
RUNNING = re.compile(r"ShopSight is running at (http://127\.0\.0\.1:\d+)")
STARTUP_SECONDS = 180


def shopsight(*args: str) -> list[str]:
    script = Path(sys.executable).parent / "shopsight"
    prefix = [str(script)] if script.exists() else [sys.executable, "-m", "assistant.cli"]
    return [*prefix, *args]


def environment(data_dir: Path, **overrides: str) -> dict[str, str]:
    """A ShopSight process on `data_dir`: hash embedder, keys known to the tests, no limits."""
    env = {
        **os.environ,
        "SHOPSIGHT_DATA_DIR": str(data_dir),
        "SHOPSIGHT_TEXT_EMBEDDER": "hash",
        "SHOPSIGHT_WARM_UP": "false",
        "SHOPSIGHT_EVIDENCE_MODE": "on_demand",
        "SHOPSIGHT_API_KEYS": hashlib.sha256(AGENT_KEY.encode()).hexdigest(),
        "SHOPSIGHT_ADMIN_API_KEYS": hashlib.sha256(ADMIN_KEY.encode()).hexdigest(),
        "SHOPSIGHT_RATE_LIMIT_SESSION_PER_MINUTE": "0",
        "SHOPSIGHT_RATE_LIMIT_CLIENT_PER_MINUTE": "0",
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": "1",
    }
    for name in ("SHOPSIGHT_CHROMA_URL", "SHOPSIGHT_CHROMA_PATH", "SHOPSIGHT_DATABASE_URL"):
        env.pop(name, None)
    return env | overrides


@dataclass
class Served:
    """A `shopsight serve` process and what it has printed."""

    process: subprocess.Popen[str]
    url: str = ""
    lines: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    def client(self, timeout: float = 120) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)


def serve(env: dict[str, str], cwd: Path) -> Served:
    """Start `shopsight serve` on a free port; returns once it said where it listens."""
    process = subprocess.Popen(
        shopsight("serve", "--host", "127.0.0.1", "--port", "0"),
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    served = Served(process)
    found = threading.Event()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            served.lines.append(line)
            if match := RUNNING.search(line):
                served.url = match.group(1)
                found.set()
        found.set()

    threading.Thread(target=pump, daemon=True).start()
    if not found.wait(STARTUP_SECONDS) or not served.url:
        served.kill()
        raise AssertionError("shopsight serve did not start:\n" + "".join(served.lines))
    return served


def run(*args: str, env: dict[str, str], cwd: Path, timeout: float = 120) -> Any:
    """A `shopsight` command to completion; a hang fails the test through `timeout`."""
    return subprocess.run(
        shopsight(*args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def ranked(client: httpx.Client, query: str, mode: str = "hybrid") -> list[str]:
    """The product ids `/v1/search/text` finds for `query`, best first."""
    response = client.post("/v1/search/text", json={"query": query, "k": 3, "mode": mode})
    assert response.status_code == 200, response.text
    return [p["product_id"] for p in response.json()["products"]]


def wait_for_first(
    client: httpx.Client, query: str, product_id: str, seconds: float = 5.0, mode: str = "hybrid"
) -> float:
    """Seconds until `/v1/search/text` ranks `product_id` first for `query`; fails after
    `seconds`. `mode="bm25"` watches the server's BM25 index alone (dense search asks the
    store, which is never stale)."""
    return _wait(client, query, lambda ids: bool(ids) and ids[0] == product_id, seconds, mode)


def wait_for_gone(client: httpx.Client, query: str, product_id: str, seconds: float = 5.0) -> float:
    """Seconds until `/v1/search/text` no longer finds `product_id` for `query`."""
    return _wait(client, query, lambda ids: product_id not in ids, seconds, "hybrid")


def _wait(
    client: httpx.Client,
    query: str,
    done: Callable[[list[str]], bool],
    seconds: float,
    mode: str,
) -> float:
    started = time.monotonic()
    last: list[str] = []
    while time.monotonic() - started < seconds:
        last = ranked(client, query, mode)
        if done(last):
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"{query!r} still gives {last} after {seconds} s")


def catalogue(*products: tuple[str, str]) -> bytes:
    """A JSON catalogue of (id, title) products, as an admin would upload it."""
    rows = [
        {"id": pid, "title": title, "category": "tea", "description": f"{title} for the shop"}
        for pid, title in products
    ]
    return json.dumps(rows).encode()
