"""OpenAPI pieces shared by the routes: the error responses and the bodies routes read themselves."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from assistant.api.errors import ErrorBody

_ERROR = {"model": ErrorBody}
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {**_ERROR, "description": "Bad input (the message says what and how to fix it)"},
    401: {**_ERROR, "description": "An API key is required (X-API-Key)"},
    403: {**_ERROR, "description": "The API key is not valid or lacks the role"},
    413: {**_ERROR, "description": "Too large (upload, text or body)"},
    415: {**_ERROR, "description": "Unsupported content type (sniffed from the bytes)"},
    422: {**_ERROR, "description": "Missing or invalid fields"},
    429: {**_ERROR, "description": "Rate limited; see Retry-After"},
}


def multipart_body(
    properties: dict[str, dict[str, Any]],
    required: list[str],
    json_model: type[BaseModel] | None = None,
) -> dict[str, Any]:
    """Document a multipart body the route reads itself (strictly) instead of through FastAPI,
    and the JSON body it takes instead when `json_model` is given."""
    content: dict[str, Any] = {
        "multipart/form-data": {
            "schema": {"type": "object", "properties": properties, "required": required}
        }
    }
    if json_model is not None:
        content["application/json"] = {"schema": json_model.model_json_schema()}
    return {"requestBody": {"required": True, "content": content}}
