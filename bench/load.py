"""Load test of the running service: concurrent chat sessions mixing text and photo turns.

Usage: python bench/load.py [--sessions 20] [--turns 10] [--url URL --api-key KEY] [--json]

Without --url it ingests the demo shop into its own data folder (data/bench/load; the trained
heads of data/artifacts are linked in), starts `python app.py` on a free loopback port with the
rate limits off (every session comes from one address), waits for /readyz, and stops the server
afterwards. Each session is one thread sending its turns one after another (a customer waits for
each reply). Photos are simulated customer photos of demo products, made before the clock
starts. Reports errors, p50/p95 turn latency (client-side), throughput and the load average;
writes data/reports/load-bench.json. Exit status 1 if any turn failed.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from PIL import Image
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from retrieval.simulate import simulate_customer_photo

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "knowledge_base" / "demo_shop"
RUNNING = re.compile(r"ShopSight is running at (\S+)")
QUESTIONS = [
    "How much is it?",
    "Is it in stock?",
    "What is your return policy?",
    "How long does delivery take?",
    "Do you have it in another colour?",
    "Can I pay with a credit card?",
    "这个多少钱？",
    "退货政策是什么？",
    "My parcel arrived damaged, what can I do?",
    "Thanks, that helps!",
]
PHOTO_TEXTS = ["Hi, what is this?", "Do you sell this?", "", "这是什么？"]
console = Console(stderr=True)


@dataclass
class Turn:
    session: int
    index: int
    kind: str
    status: int
    seconds: float
    server_ms: float | None
    error: str | None


def plan(
    sessions: int, turns: int, photo_every: int, seed: int
) -> list[list[tuple[str, bytes | None]]]:
    """Per session, (text, photo) for each turn: a photo on the first turn and every
    `photo_every` turns after it, text questions in between."""
    rng = random.Random(seed)
    products = sorted(path.stem for path in (DEMO / "images").glob("*.png"))
    photos: dict[str, bytes] = {}

    def photo(product: str) -> bytes:
        if product not in photos:
            image = Image.open(DEMO / "images" / f"{product}.png").convert("RGB")
            buffer = io.BytesIO()
            simulate_customer_photo(image).save(buffer, format="JPEG", quality=85)
            photos[product] = buffer.getvalue()
        return photos[product]

    scripts = []
    for _ in range(sessions):
        script: list[tuple[str, bytes | None]] = []
        for index in range(turns):
            if index % photo_every == 0:
                script.append((rng.choice(PHOTO_TEXTS), photo(rng.choice(products))))
            else:
                script.append((rng.choice(QUESTIONS), None))
        scripts.append(script)
    return scripts


def run_session(
    url: str,
    number: int,
    script: list[tuple[str, bytes | None]],
    headers: dict[str, str],
    tick: Any,
) -> list[Turn]:
    session_id = f"load-{number}-{os.urandom(4).hex()}"
    results = []
    with httpx.Client(base_url=url, timeout=300, headers=headers) as client:
        for index, (text, photo) in enumerate(script):
            files: list[tuple[str, Any]] = [
                ("session_id", (None, session_id)),
                ("text", (None, text)),
            ]
            if photo is not None:
                files.append(("image", ("photo.jpg", photo, "image/jpeg")))
            kind = "photo" if photo is not None else "text"
            started = time.perf_counter()
            try:
                response = client.post("/v1/chat", files=files)
                seconds = time.perf_counter() - started
                ok = response.status_code == 200
                results.append(
                    Turn(
                        number,
                        index,
                        kind,
                        response.status_code,
                        seconds,
                        response.json().get("latency_ms") if ok else None,
                        None if ok else response.text[:300],
                    )
                )
            except httpx.HTTPError as exc:
                seconds = time.perf_counter() - started
                results.append(Turn(number, index, kind, 0, seconds, None, repr(exc)))
            tick()
    return results


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {
        "n": len(ordered),
        "p50": round(at(0.50) * 1000, 1),
        "p95": round(at(0.95) * 1000, 1),
        "p99": round(at(0.99) * 1000, 1),
        "max": round(ordered[-1] * 1000, 1),
        "mean": round(statistics.fmean(ordered) * 1000, 1),
    }


@contextmanager
def own_server(data_dir: Path, evidence_mode: str, skip_ingest: bool) -> Iterator[str]:
    """Start `python app.py` on the demo shop in `data_dir`; yields its URL."""
    data_dir.mkdir(parents=True, exist_ok=True)
    # Each run starts with no conversations and no evidence packs.
    for stale in data_dir.glob("sessions.db*"):
        stale.unlink()
    shutil.rmtree(data_dir / "evidence", ignore_errors=True)
    artifacts = ROOT / "data" / "artifacts"
    link = data_dir / "artifacts"
    if artifacts.is_dir() and not link.exists():
        link.symlink_to(artifacts.resolve(), target_is_directory=True)
    env = os.environ | {
        "SHOPSIGHT_DATA_DIR": str(data_dir),
        "SHOPSIGHT_HOST": "127.0.0.1",
        "SHOPSIGHT_PORT": "0",
        "SHOPSIGHT_RATE_LIMIT_CLIENT_PER_MINUTE": "0",
        "SHOPSIGHT_RATE_LIMIT_SESSION_PER_MINUTE": "0",
        "SHOPSIGHT_EVIDENCE_MODE": evidence_mode,
        "PYTHONUNBUFFERED": "1",
    }
    if not skip_ingest:
        console.print(f"Ingesting the demo shop into {data_dir} (unchanged records are skipped)…")
        subprocess.run(
            [
                *(sys.executable, "-m", "assistant.cli", "kb", "ingest", "--json"),
                *(str(DEMO / "products.json"), str(DEMO / "articles")),
            ],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    log_path = data_dir / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "app.py"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        try:
            assert process.stdout is not None
            url = None
            for line in process.stdout:
                if match := RUNNING.search(line):
                    url = match.group(1)
                    break
            if url is None:
                raise SystemExit(f"the server did not start; see its log {log_path}")
            # Keep reading stdout so the server never blocks on a full pipe.
            threading.Thread(target=process.stdout.read, daemon=True).start()
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()


def wait_ready(url: str, timeout_s: float = 600) -> float:
    started = time.perf_counter()
    with httpx.Client(base_url=url, timeout=30) as client:
        while time.perf_counter() - started < timeout_s:
            try:
                if client.get("/readyz").status_code == 200:
                    return time.perf_counter() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
    raise SystemExit(f"{url} did not become ready in {timeout_s:.0f} s (see /readyz)")


def bench(url: str, args: argparse.Namespace, started_by_bench: bool) -> dict[str, Any]:
    ready_s = wait_ready(url)
    scripts = plan(args.sessions, args.turns, args.photo_every, args.seed)
    headers = {"X-API-Key": args.api_key} if args.api_key else {}
    total = args.sessions * args.turns
    load_before = os.getloadavg()
    progress = tqdm(total=total, desc="turns", unit="turn", file=sys.stderr)
    lock = threading.Lock()

    def tick() -> None:
        with lock:
            progress.update()

    results: list[Turn] = []
    threads_out: list[list[Turn]] = [[] for _ in scripts]

    def worker(number: int) -> None:
        threads_out[number] = run_session(url, number, scripts[number], headers, tick)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(len(scripts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    progress.close()
    load_after = os.getloadavg()
    for session in threads_out:
        results.extend(session)

    ok = [t for t in results if t.status == 200]
    errors = [t for t in results if t.status != 200]
    with httpx.Client(base_url=url, timeout=30) as client:
        healthy = client.get("/healthz").status_code == 200
    return {
        "url": url,
        "server_started_by_bench": started_by_bench,
        "evidence_mode": args.evidence_mode if started_by_bench else "as configured",
        "sessions": args.sessions,
        "turns_per_session": args.turns,
        "turns": len(results),
        "photo_turns": sum(t.kind == "photo" for t in results),
        "errors": len(errors),
        "error_samples": [asdict(t) for t in errors[:5]],
        "healthy_after": healthy,
        "ready_after_s": round(ready_s, 1),
        "wall_s": round(wall, 2),
        "throughput_turns_per_s": round(len(ok) / wall, 2) if wall else 0.0,
        "latency_ms": {
            "all": percentiles([t.seconds for t in ok]),
            "text": percentiles([t.seconds for t in ok if t.kind == "text"]),
            "photo": percentiles([t.seconds for t in ok if t.kind == "photo"]),
        },
        "server_latency_ms": percentiles(
            [t.server_ms / 1000 for t in ok if t.server_ms is not None]
        ),
        "cpu_count": os.cpu_count(),
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in load_after],
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def print_table(report: dict[str, Any]) -> None:
    table = Table(
        "turns",
        "n",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        title=f"{report['sessions']} sessions × {report['turns_per_session']} turns against "
        f"{report['url']}",
    )
    for kind, stats in report["latency_ms"].items():
        if stats:
            table.add_row(
                kind, str(stats["n"]), *(f"{stats[k]:.0f}" for k in ("p50", "p95", "p99", "max"))
            )
    server = report["server_latency_ms"]
    if server:
        table.add_row(
            "engine only",
            str(server["n"]),
            *(f"{server[k]:.0f}" for k in ("p50", "p95", "p99", "max")),
        )
    out = Console()
    out.print(table)
    out.print(
        f"errors: {report['errors']}  throughput: {report['throughput_turns_per_s']} turns/s  "
        f"wall: {report['wall_s']} s  load average before/after: "
        f"{report['load_average_before'][0]} / {report['load_average_after'][0]} "
        f"({report['cpu_count']} CPUs)  healthy after: {report['healthy_after']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--turns", type=int, default=10, help="Turns per session.")
    parser.add_argument(
        "--photo-every", type=int, default=3, help="A photo every N turns (first turn included)."
    )
    parser.add_argument("--url", help="Target a running service instead of starting one.")
    parser.add_argument("--api-key", help="Agent key to send (a keyed caller is not rate-limited).")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data" / "bench" / "load")
    parser.add_argument(
        "--evidence-mode",
        choices=["background", "on_demand", "off"],
        default="background",
        help="Explanations in the server started by the bench (default: the app's default).",
    )
    parser.add_argument("--skip-ingest", action="store_true", help="The data folder is ready.")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--output", type=Path, default=ROOT / "data" / "reports" / "load-bench.json"
    )
    parser.add_argument("--json", action="store_true", help="Print the report as JSON.")
    args = parser.parse_args(argv)

    if args.url:
        report = bench(args.url.rstrip("/"), args, started_by_bench=False)
    else:
        with own_server(args.data_dir, args.evidence_mode, args.skip_ingest) as url:
            report = bench(url, args, started_by_bench=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    if args.json:
        sys.stdout.write(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    else:
        print_table(report)
        console.print(f"Report written to {args.output}")
    return 1 if report["errors"] or not report["healthy_after"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
