"""The Gradio UI mounted on the same app: the page at /, while the API and its docs still work."""

from __future__ import annotations

import httpx
import pytest

from assistant.components import Components
from tests.assistant.api.conftest import assert_error, assert_healthy, start

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_ui_is_served_at_the_root_next_to_the_api(components: Components) -> None:
    server = start(components, ui=True, warm_up=False)
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            page = client.get("/")
            assert page.status_code == 200
            assert page.headers["content-type"].startswith("text/html")
            assert "gradio" in page.text.lower()
            assert client.get("/docs").status_code == 200
            assert "/v1/chat" in client.get("/openapi.json").json()["paths"]
            assert_healthy(client)
            assert_error(client.get("/v1/not-an-endpoint"), 404, "not_found")
            assert_error(client.post("/healthz"), 405, "method_not_allowed")
    finally:
        server.stop()
