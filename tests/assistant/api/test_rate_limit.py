"""Rate limits on a server configured with tiny limits: per session, per client, keys exempt."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from assistant.api.server import BackgroundServer
from assistant.components import Components
from tests.assistant.api.conftest import AGENT, assert_error, assert_healthy, start
from tests.assistant.api.helpers import chat, session_id

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def limited(components: Components) -> Iterator[httpx.Client]:
    server: BackgroundServer = start(
        components, rate_limit_session_per_minute=2, rate_limit_client_per_minute=4, warm_up=False
    )
    try:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            yield client
    finally:
        server.stop()


def test_chat_is_limited_per_session_then_per_client_and_agents_are_exempt(
    limited: httpx.Client,
) -> None:
    first = session_id("limited")
    assert chat(limited, first, "Hello").status_code == 200
    assert chat(limited, first, "Do you ship abroad?").status_code == 200
    per_session = chat(limited, first, "Hello again")
    message = assert_error(per_session, 429, "rate_limited")
    assert "session" in message and "SHOPSIGHT_RATE_LIMIT_SESSION_PER_MINUTE" in message
    assert 1 <= int(per_session.headers["Retry-After"]) <= 60

    # The client has now made 3 requests; one more is allowed, from any session.
    assert chat(limited, session_id("limited"), "Hi").status_code == 200
    per_client = chat(limited, session_id("limited"), "Hi")
    assert "SHOPSIGHT_RATE_LIMIT_CLIENT_PER_MINUTE" in assert_error(per_client, 429, "rate_limited")
    assert_error(limited.post("/v1/search/text", json={"query": "boots"}), 429, "rate_limited")

    assert chat(limited, first, "An agent testing", headers=AGENT).status_code == 200
    assert limited.post("/v1/search/text", json={"query": "boots"}, headers=AGENT).is_success
    assert 'shopsight_errors_total{code="rate_limited"} 3.0' in limited.get("/metrics").text
    assert_healthy(limited)
