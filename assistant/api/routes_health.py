"""Liveness, readiness and Prometheus metrics: public, and free of any personal data."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from assistant.api.context import ContextDep
from assistant.api.errors import error_response

router = APIRouter(tags=["operations"])


@router.head("/healthz", include_in_schema=False)
@router.get("/healthz", summary="Liveness: the process serves requests")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: the store answers and the models are loaded (503 until then)",
    responses={503: {"description": "Not ready yet; `details` says what is missing"}},
)
def readyz(request: Request, context: ContextDep) -> Any:
    ready, checks = context.readiness.check()
    if ready:
        return JSONResponse({"status": "ready", "checks": checks})
    return error_response(
        request,
        503,
        "not_ready",
        "the service is starting or cannot reach its store; see details",
        headers={"Retry-After": "5"},
        details=checks,
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(context: ContextDep) -> Response:
    return Response(context.metrics.render(), media_type=context.metrics.content_type)
