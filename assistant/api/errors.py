"""One JSON shape for every error the API returns: `{"error": {"code", "message", "details"?}}`.

`code` is stable and machine-readable; `message` says what was wrong and what to do. FastAPI's
own 404/405/422 responses, refused inputs, an unreachable store and unexpected failures all go
through `error_response`, which also counts each error in the metrics by its code.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from assistant.services.ratelimit import RateLimited
from assistant.turn.safety import InputRejected
from knowledge_base.store import EmbedderMismatch, StoreUnavailable

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any | None = None


class ErrorBody(BaseModel):
    """The body of every 4xx/5xx response."""

    error: ErrorDetail


class ApiError(StarletteHTTPException):
    """An error the API reports on purpose. It is an HTTPException so that one raised while the
    request body is being read (a size cap) passes through FastAPI's body parsing unchanged."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(status_code=status_code, detail=message, headers=headers)
        self.code = code
        self.message = message
        self.details = details


def error_response(
    request: Request,
    status_code: int,
    code: str,
    message: str,
    *,
    headers: dict[str, str] | None = None,
    details: Any = None,
) -> JSONResponse:
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.errors.labels(code=code).inc()
    body = ErrorBody(error=ErrorDetail(code=code, message=message, details=details))
    return JSONResponse(
        body.model_dump(mode="json", exclude_none=True), status_code=status_code, headers=headers
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(InputRejected, _input_rejected)
    app.add_exception_handler(RateLimited, _rate_limited)
    app.add_exception_handler(StoreUnavailable, _store_unavailable)
    app.add_exception_handler(EmbedderMismatch, _store_mismatch)
    app.add_exception_handler(Exception, _unexpected)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(
        request,
        exc.status_code,
        exc.code,
        exc.message,
        headers=dict(exc.headers or {}),
        details=exc.details,
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc, ApiError):
        return await _api_error(request, exc)
    status = exc.status_code
    code = _STATUS_CODES.get(status, "http_error")
    message = str(exc.detail)
    if status == 404 and message == "Not Found":
        message = f"nothing at {request.url.path}: the API is described at /docs"
    elif status == 405:
        allowed = (exc.headers or {}).get("Allow") or (exc.headers or {}).get("allow")
        message = f"{request.method} is not allowed on {request.url.path}" + (
            f"; use {allowed}" if allowed else ""
        )
    elif status == 413:
        message = "the request body is too large for this endpoint"
    elif status == 400 and message.startswith(("Part exceeded", "Field exceeded", "Too many")):
        message = f"the form is too large: {message}"
    return error_response(request, status, code, message, headers=dict(exc.headers or {}))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        {"field": ".".join(str(part) for part in error.get("loc", ())), "problem": error["msg"]}
        for error in exc.errors()
    ]
    if any(error.get("type") == "json_invalid" for error in exc.errors()):
        return error_response(
            request,
            400,
            "invalid_json",
            "the request body is not valid JSON; send a JSON object (see /docs)",
            details=problems,
        )
    summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems[:5])
    return error_response(
        request,
        422,
        "invalid_request",
        f"the request is invalid ({summary}); see /docs for the expected fields",
        details=problems,
    )


async def _input_rejected(request: Request, exc: Exception) -> JSONResponse:
    return error_response(request, 400, "input_rejected", str(exc))


async def _rate_limited(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RateLimited)
    return error_response(
        request,
        429,
        exc.code,
        exc.message,
        headers={"Retry-After": str(exc.retry_after_s)},
    )


async def _store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    return error_response(
        request,
        503,
        "store_unavailable",
        f"the knowledge base cannot be reached right now ({exc}); try again shortly",
        headers={"Retry-After": "5"},
    )


async def _store_mismatch(request: Request, exc: Exception) -> JSONResponse:
    return error_response(request, 503, "store_mismatch", str(exc))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Starlette re-raises the exception after this response, so the server logs the traceback.
    return error_response(
        request,
        500,
        "internal_error",
        "an unexpected error occurred and was logged; please try again, and report it if it "
        "persists",
    )
