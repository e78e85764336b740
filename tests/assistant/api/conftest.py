"""Real servers for the API tests: uvicorn on a loopback port, the demo shop ingested once.

One `Components` (real E5 embedder, EfficientNet, Chroma, SQLite) over a copy of the session's
demo store serves every server of the session; the servers differ only in their settings
(keys, rate limits, UI on or off).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from assistant.api import create_app
from assistant.api.auth import digest
from assistant.api.server import BackgroundServer
from assistant.components import Components
from assistant.settings import Settings
from tests.assistant.demo_shop import demo_components

AGENT_KEY = "agent-key-for-tests"
ADMIN_KEY = "admin-key-for-tests"
AGENT = {"X-API-Key": AGENT_KEY}
ADMIN = {"X-API-Key": ADMIN_KEY}
MAX_TEXT_CHARS = 1000


def api_settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "text_embedder": "e5",
        "api_keys": [digest(AGENT_KEY)],
        "admin_api_keys": [digest(ADMIN_KEY)],
        "max_upload_mb": 1.0,
        "max_text_chars": MAX_TEXT_CHARS,
        "max_ingest_mb": 2.0,
        "max_ingest_unzipped_mb": 4.0,
        "rate_limit_session_per_minute": 0,
        "rate_limit_client_per_minute": 0,
        # Tests that need a pack ask for it; nothing is explained in the background meanwhile.
        "evidence_mode": "on_demand",
    }
    return Settings(**(values | overrides))


@pytest.fixture(scope="session")
def components(demo_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Components]:
    data_dir = tmp_path_factory.mktemp("api") / "data"
    components = demo_components(
        demo_store, data_dir, **api_settings(data_dir).model_dump(exclude={"data_dir"})
    )
    yield components
    if "evidence" in vars(components):
        components.evidence.close()


def start(components: Components, ui: bool = False, **overrides: Any) -> BackgroundServer:
    settings = api_settings(components.settings.data_dir, **overrides)
    return BackgroundServer(create_app(settings, components, ui=ui)).start()


def wait_ready(url: str) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(600):
            if client.get("/readyz").status_code == 200:
                return
            time.sleep(0.5)
    raise AssertionError("the service never became ready")


@pytest.fixture(scope="session")
def server(components: Components) -> Iterator[BackgroundServer]:
    running = start(components)
    wait_ready(running.url)
    yield running
    running.stop()


@pytest.fixture
def client(server: BackgroundServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=120) as http:
        yield http


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> str:
    """The response is the API's JSON error shape with this status (and code); its message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.text
    error = response.json()["error"]
    assert set(error) <= {"code", "message", "details"}
    assert isinstance(error["message"], str) and len(error["message"]) > 10
    if code is not None:
        assert error["code"] == code, error
    return str(error["message"])


def assert_healthy(client: httpx.Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
