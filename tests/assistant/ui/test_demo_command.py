"""`shopsight demo`: ingest the demo shop if needed, then serve the app and say where."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from starlette.routing import Mount
from typer.testing import CliRunner

from assistant.components import Components

pytestmark = pytest.mark.integration

LINE = "ShopSight demo is running at http://127.0.0.1:{port} — press Ctrl+C to stop"


@pytest.fixture
def demo_run(monkeypatch: pytest.MonkeyPatch, components: Components) -> list[Any]:
    """Runs `shopsight demo` on the already ingested store; the server only pretends to listen
    and records its configuration."""
    import assistant.cli.demo
    from assistant.api.server import AnnouncingServer

    served: list[Any] = []

    def pretend_to_run(server: AnnouncingServer) -> None:
        served.append(server.config)
        server.url = f"http://{server.config.host}:{server.config.port}"
        server.announce("listening")

    monkeypatch.setattr(assistant.cli.demo, "build_components", lambda: components)
    monkeypatch.setattr(AnnouncingServer, "run", pretend_to_run)
    return served


def test_demo_serves_the_app_with_its_ui_and_says_where(demo_run: list[Any]) -> None:
    from assistant.cli import build_app

    app = build_app()

    result = CliRunner().invoke(app, ["demo", "--port", "7999"])
    assert result.exit_code == 0, result.output
    assert "59 products unchanged" in result.output
    assert LINE.format(port=7999) in result.output
    assert result.output.rstrip().endswith("press Ctrl+C to stop")
    (config,) = demo_run
    assert config.host == "127.0.0.1" and config.port == 7999
    assert isinstance(config.app, FastAPI)
    ui = [r for r in config.app.routes if isinstance(r, Mount) and hasattr(r.app, "blocks")]
    assert len(ui) == 1 and ui[0].path == "", "the Gradio UI is not mounted at /"


def test_demo_no_serve_only_ingests_and_shows_examples(demo_run: list[Any]) -> None:
    from assistant.cli import build_app

    app = build_app()

    result = CliRunner().invoke(app, ["demo", "--no-serve"])
    assert result.exit_code == 0, result.output
    assert "> how long does delivery take?" in result.output
    assert "running at" not in result.output and demo_run == []
