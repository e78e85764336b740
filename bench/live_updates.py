"""How long until a running server's search sees a catalogue change, and how fast a second
writer is turned away.

Usage: python bench/live_updates.py [--repeats 5] [--chroma-url URL] [--json]

Starts `shopsight serve` (hash text embedder, no warm-up) on an embedded store in a temporary
folder and measures, per repeat:
- `same server`: from the answer of `POST /v1/kb/ingest` (a product with a new, unique name) to
  `/v1/search/text` ranking it first on that server;
- `edit, same server`: the same for a product renamed (the record count does not change), in
  BM25 mode: the server's own index must have followed;
- `refused writer`: the wall time of `shopsight kb ingest` while the server holds the store,
  Python start included (it must fail, not wait).
With --chroma-url it also starts a second server on that Chroma server (own collection prefix)
and measures, in BM25 mode, `other replica` (ingest through one, first rank on the other) and
`edit, other replica` (a rename: only the store's generation, read at most once a second, tells
the other).
Prints medians and maxima in seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ADMIN_KEY = "bench-admin-key"
ADMIN = {"X-API-Key": ADMIN_KEY}
RUNNING = re.compile(r"ShopSight is running at (http://127\.0\.0\.1:\d+)")
SHOPSIGHT = [str(Path(sys.executable).parent / "shopsight")]


def environment(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "SHOPSIGHT_DATA_DIR": str(data_dir),
        "SHOPSIGHT_TEXT_EMBEDDER": "hash",
        "SHOPSIGHT_WARM_UP": "false",
        "SHOPSIGHT_ADMIN_API_KEYS": hashlib.sha256(ADMIN_KEY.encode()).hexdigest(),
        "SHOPSIGHT_RATE_LIMIT_CLIENT_PER_MINUTE": "0",
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("SHOPSIGHT_CHROMA_URL", None)
    return env | extra


@contextmanager
def served(env: dict[str, str]) -> Iterator[str]:
    process = subprocess.Popen(
        [*SHOPSIGHT, "serve", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if match := RUNNING.search(line):
                break
        else:
            raise SystemExit(f"shopsight serve exited with {process.wait()}")
        yield match.group(1)
    finally:
        process.kill()
        process.wait(timeout=30)


def catalogue(product_id: str, title: str) -> bytes:
    return json.dumps([{"id": product_id, "title": title, "category": "bench"}]).encode()


def ingest(client: httpx.Client, product_id: str, title: str) -> None:
    files = {"file": ("new.json", catalogue(product_id, title))}
    response = client.post("/v1/kb/ingest", files=files, headers=ADMIN)
    response.raise_for_status()


def until_first(
    client: httpx.Client, query: str, product_id: str, mode: str = "hybrid", limit: float = 30.0
) -> float:
    """Seconds until the search ranks `product_id` first; `bm25` watches the server's own index
    (dense search asks the store, which is never stale)."""
    started = time.perf_counter()
    body = {"query": query, "k": 3, "mode": mode}
    while time.perf_counter() - started < limit:
        found = client.post("/v1/search/text", json=body).json()["products"]
        if found and found[0]["product_id"] == product_id:
            return time.perf_counter() - started
        time.sleep(0.02)
    raise SystemExit(f"{product_id} was not found first within {limit} s")


def word() -> str:
    """A made-up word no catalogue has: the BM25 side can only find the new product by it."""
    return "zq" + uuid.uuid4().hex[:10]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--chroma-url", help="also measure two replicas on this Chroma server")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    timings: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as root:
        env = environment(Path(root) / "data")
        seed = Path(root) / "seed.json"
        seed.write_bytes(catalogue("seed", "Seed product"))
        subprocess.run(
            [*SHOPSIGHT, "kb", "ingest", str(seed)], env=env, check=True, capture_output=True
        )
        with served(env) as url, httpx.Client(base_url=url, timeout=60) as client:
            until_first(client, "seed product", "seed")
            for n in range(args.repeats):
                name = word()
                ingest(client, f"p{n}", f"{name} teapot")
                timings.setdefault("same server", []).append(until_first(client, name, f"p{n}"))
                renamed = word()
                ingest(client, "seed", f"{renamed} product")
                timings.setdefault("edit, same server", []).append(
                    until_first(client, renamed, "seed", "bm25")
                )
                started = time.perf_counter()
                refused = subprocess.run(
                    [*SHOPSIGHT, "kb", "ingest", str(seed)],
                    env=env,
                    capture_output=True,
                    timeout=120,
                )
                assert refused.returncode == 1, refused.stderr
                timings.setdefault("refused writer", []).append(time.perf_counter() - started)
        if args.chroma_url:
            shared = {
                "SHOPSIGHT_CHROMA_URL": args.chroma_url,
                "SHOPSIGHT_COLLECTION_PREFIX": f"bench{uuid.uuid4().hex[:8]}",
            }
            one = environment(Path(root) / "a", **shared)
            other = environment(Path(root) / "b", **shared)
            with (
                served(one) as url_a,
                served(other) as url_b,
                httpx.Client(base_url=url_a, timeout=60) as a,
                httpx.Client(base_url=url_b, timeout=60) as b,
            ):
                ingest(a, "seed", "Seed product")
                until_first(b, "seed product", "seed")
                for n in range(args.repeats):
                    name = word()
                    ingest(a, f"p{n}", f"{name} teapot")
                    timings.setdefault("other replica", []).append(
                        until_first(b, name, f"p{n}", "bm25")
                    )
                    renamed = word()
                    ingest(a, "seed", f"{renamed} product")
                    timings.setdefault("edit, other replica", []).append(
                        until_first(b, renamed, "seed", "bm25")
                    )
    summary = {
        label: {"median_s": round(statistics.median(values), 3), "max_s": round(max(values), 3)}
        for label, values in timings.items()
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for label, numbers in summary.items():
            print(f"{label:>20}: median {numbers['median_s']:.3f} s, max {numbers['max_s']:.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
