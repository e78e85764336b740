"""`shopsight serve`: the REST API and the web UI in one process."""

from __future__ import annotations

from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        host: Annotated[
            str | None,
            typer.Option(help="Address to listen on (default SHOPSIGHT_HOST, 127.0.0.1)."),
        ] = None,
        port: Annotated[
            int | None,
            typer.Option(min=0, max=65535, help="Port (default SHOPSIGHT_PORT, 7860)."),
        ] = None,
    ) -> None:
        """Start the web service: REST API under /v1, API docs at /docs, the UI at /."""
        from assistant.api.server import serve as run_server

        run_server(host=host, port=port)
