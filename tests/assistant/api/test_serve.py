"""`shopsight serve` and `python app.py` start the service and say where it runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
LINE = re.compile(r"ShopSight is running at (http://127\.0\.0\.1:\d+) \(API docs at /docs\)")


def _serve_and_probe(command: list[str], tmp_path: Path, **env: str) -> None:
    environment = os.environ | {
        "SHOPSIGHT_DATA_DIR": str(tmp_path / "data"),
        "SHOPSIGHT_TEXT_EMBEDDER": "hash",
        "SHOPSIGHT_WARM_UP": "false",
        "PYTHONUNBUFFERED": "1",
        **env,
    }
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if match := LINE.search(line):
                break
        else:
            pytest.fail(f"no 'ShopSight is running at' line; exit status {process.wait()}")
        with httpx.Client(base_url=match.group(1), timeout=30) as client:
            assert client.get("/healthz").json() == {"status": "ok"}
            assert client.get("/docs").status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=60)


def test_shopsight_serve_takes_host_and_port(tmp_path: Path) -> None:
    shopsight = Path(sys.executable).parent / "shopsight"
    _serve_and_probe([str(shopsight), "serve", "--host", "127.0.0.1", "--port", "0"], tmp_path)


def test_python_app_py_serves_on_the_configured_port(tmp_path: Path) -> None:
    _serve_and_probe([sys.executable, "app.py"], tmp_path, SHOPSIGHT_PORT="0")
