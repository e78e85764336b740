"""The FastAPI application: REST API under /v1, operations endpoints, and the Gradio UI at /.

Endpoints and who may call them:

| endpoint | caller |
|---|---|
| POST /v1/chat | anyone (rate-limited per session and client); agents get agent-only fields |
| POST /v1/search/text, /v1/search/image | anyone (rate-limited per client) |
| GET /v1/products/{id}/image, /v1/products/{id}/images/{n} | anyone (rate-limited per client) |
| GET /v1/sessions, GET /v1/sessions/{id}, POST /v1/sessions/{id}/replies | agent key |
| GET /v1/sessions/{id}/replies | agent key, or the customer holding the session id |
| DELETE /v1/sessions/{id} | agent key, or the customer holding the session id |
| GET /v1/evidence/{id}, .../heatmaps/{file} | agent key |
| POST /v1/kb/ingest, DELETE /v1/kb/records/{id}, GET /v1/kb/stats | admin key |
| GET /healthz, /readyz, /metrics | anyone (no personal data) |
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import Receive, Scope, Send

from assistant.api import (
    routes_chat,
    routes_evidence,
    routes_health,
    routes_kb,
    routes_products,
    routes_search,
    routes_sessions,
)
from assistant.api.auth import ApiKeys
from assistant.api.context import ApiContext
from assistant.api.errors import install_error_handlers
from assistant.api.readiness import Readiness
from assistant.api.uploads import BodySizeLimit, base64_length
from assistant.components import Components
from assistant.services.chat import TurnRunner
from assistant.services.metrics import Metrics
from assistant.settings import Settings
from knowledge_base.demo import DEMO_SHOP

API_PREFIX = "/v1"
# JSON bodies without a photo are small; photo routes get room for their uploads.
JSON_BODY_LIMIT = 1024 * 1024
MULTIPART_OVERHEAD = 64 * 1024
# A character of JSON text takes at most 12 bytes (an emoji escaped as a surrogate pair).
JSON_BYTES_PER_CHAR = 12


def create_app(
    settings: Settings | None = None,
    components: Components | None = None,
    ui: bool = True,
) -> FastAPI:
    """The whole service on one `Components`; models load lazily, warmed up at startup."""
    settings = settings or (components.settings if components else Settings())
    components = components or Components(settings, progress=False)
    metrics = Metrics()
    turns = TurnRunner.from_settings(settings, lambda: components.engine, metrics)
    context = ApiContext(
        settings=settings,
        components=components,
        keys=ApiKeys(settings.api_keys, settings.admin_api_keys),
        limits=turns.limits,
        metrics=metrics,
        readiness=Readiness(components, metrics, settings.warm_up),
        turns=turns,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # The service is the embedded store's one writer while it runs (knowledge_base.lock).
        with components.writing("server"):
            context.readiness.start()
            yield
            # Explanations still queued are dropped; they are rebuilt on demand when asked for.
            if "evidence" in vars(components):
                components.evidence.close()

    app = FastAPI(
        title="ShopSight",
        summary="Multimodal customer-service assistant: chat, search, evidence, knowledge base.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.context = context
    app.state.metrics = metrics
    install_error_handlers(app)
    for module in (
        routes_chat,
        routes_sessions,
        routes_search,
        routes_evidence,
        routes_kb,
        routes_products,
        routes_health,
    ):
        app.include_router(module.router)
    app.router.routes.append(ApiFallback(list(app.router.routes)))
    app.add_middleware(BodySizeLimit, limit_for=body_limits(settings))
    if ui:
        _mount_ui(app, components, context.turns)
    return app


def body_limits(settings: Settings) -> Callable[[str], tuple[int, str] | None]:
    """The body-size cap of each path and the setting behind it (None: not ours to cap)."""
    upload = int(settings.max_upload_mb * 1024 * 1024)
    # The larger of a multipart photo and a base64 one (with an escaped line break every 76
    # characters, as wrapped base64 has); the photo's own limit is checked on its bytes.
    photo = max(upload, base64_length(upload) + base64_length(upload) // 38)
    caps = {
        f"{API_PREFIX}/chat": (
            photo + settings.max_text_chars * JSON_BYTES_PER_CHAR + MULTIPART_OVERHEAD,
            "SHOPSIGHT_MAX_UPLOAD_MB for the photo",
        ),
        f"{API_PREFIX}/search/image": (photo + MULTIPART_OVERHEAD, "SHOPSIGHT_MAX_UPLOAD_MB"),
        f"{API_PREFIX}/kb/ingest": (
            int(settings.max_ingest_mb * 1024 * 1024) + MULTIPART_OVERHEAD,
            "SHOPSIGHT_MAX_INGEST_MB",
        ),
    }
    json_cap = (JSON_BODY_LIMIT, "JSON requests are small; send less")

    def limit_for(path: str) -> tuple[int, str] | None:
        if path in caps:
            return caps[path]
        return json_cap if path.startswith(API_PREFIX + "/") else None

    return limit_for


def _mount_ui(app: FastAPI, components: Components, turns: TurnRunner) -> None:
    """The Gradio UI at "/", after every API route so that those keep precedence; its chat
    turns go through the API's runner (same slots, session limits and metrics)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio

    from assistant.ui import build_ui

    settings = components.settings
    gradio.mount_gradio_app(
        app,
        build_ui(components, turns),
        path="/",
        # Product photos may be shown; the data folder (database, evidence) is not served.
        allowed_paths=[str(DEMO_SHOP / "images"), str((settings.data_dir / "uploads").resolve())],
        max_file_size=int(settings.max_upload_mb * 1024 * 1024),
    )


class ApiFallback(BaseRoute):
    """Answers, in the API's JSON error shape, what no API route took: 404 for unknown paths
    under /v1 and 405 for a known path with the wrong method. Without it the UI mounted at "/"
    would answer those requests with its own pages."""

    METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

    def __init__(self, api_routes: list[BaseRoute]) -> None:
        self.api_routes = api_routes

    def _allowed(self, scope: Scope) -> list[str]:
        """The methods some API route accepts on this path (asked through `matches`)."""
        return [
            method
            for method in self.METHODS
            if any(
                route.matches({**scope, "method": method})[0] == Match.FULL
                for route in self.api_routes
            )
        ]

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http":
            return Match.NONE, {}
        path = scope["path"]
        if path == API_PREFIX or path.startswith(API_PREFIX + "/") or self._allowed(scope):
            return Match.FULL, {}
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        allowed = self._allowed(scope)
        if allowed:
            raise StarletteHTTPException(405, headers={"Allow": ", ".join(allowed)})
        raise StarletteHTTPException(404)
