"""Run the service with uvicorn and say where it listens once it does."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import uvicorn

from assistant.api.app import create_app
from assistant.logging import configure_logging
from assistant.settings import Settings
from knowledge_base.lock import StoreLock, StoreLocked, publish_url


def public_url(host: str, port: int) -> str:
    """The URL to open: a wildcard address is reached through loopback on this machine."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


class AnnouncingServer(uvicorn.Server):
    """A uvicorn server that prints one line with the address once the socket is listening."""

    def __init__(self, config: uvicorn.Config, announce: Callable[[str], None]) -> None:
        super().__init__(config)
        self.announce = announce
        self.url: str | None = None

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        if not self.started:
            return
        port = self.config.port
        for server in self.servers:
            for sock in server.sockets:
                port = sock.getsockname()[1]
                break
        self.url = public_url(self.config.host, port)
        publish_url(self.url)
        self.announce(f"ShopSight is running at {self.url} (API docs at /docs)")


def build_server(
    settings: Settings,
    host: str | None = None,
    port: int | None = None,
    ui: bool = True,
    announce: Callable[[str], None] | None = None,
    log_level: str = "info",
) -> AnnouncingServer:
    config = uvicorn.Config(
        create_app(settings, ui=ui),
        host=host or settings.host,
        port=settings.port if port is None else port,
        log_level=log_level,
        # Gradio's queue keeps long requests open; a shutdown waits this long for them.
        timeout_graceful_shutdown=5,
    )
    return AnnouncingServer(config, announce or _print)


def serve(
    settings: Settings | None = None, host: str | None = None, port: int | None = None
) -> None:
    settings = settings or Settings()
    configure_logging(settings.log_level, settings.log_json)
    if not settings.chroma_url:
        holder = StoreLock(settings.resolved_chroma_path).holder()
        if holder is not None:
            # Said in one line here; the startup would take the lock and fail with a traceback.
            sys.stderr.write(f"error: {StoreLocked(settings.resolved_chroma_path, holder)}\n")
            raise SystemExit(1)
    build_server(settings, host, port).run()


def _print(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class BackgroundServer:
    """A real uvicorn server on a loopback port, in a thread: for tests and the load benchmark."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5
        )
        self.server = AnnouncingServer(config, announce=lambda _line: None)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    @property
    def url(self) -> str:
        assert self.server.url is not None, "the server has not started"
        return self.server.url

    def start(self, timeout_s: float = 120.0) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the web service did not start (see the log above)")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
