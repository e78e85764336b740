"""Request builders shared by the API tests."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from typing import Any

import httpx


def session_id(prefix: str = "test") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def multipart(
    fields: Mapping[str, str | bytes], files: Mapping[str, tuple[str, bytes]] | None = None
) -> Any:
    """httpx `files=` for a multipart body: plain fields as (None, value) parts, files named."""
    parts: list[tuple[str, Any]] = [(name, (None, value)) for name, value in fields.items()]
    for name, (filename, data) in (files or {}).items():
        parts.append((name, (filename, data, "application/octet-stream")))
    return parts


def chat(
    client: httpx.Client,
    session: str,
    text: str = "",
    image: bytes | None = None,
    headers: dict[str, str] | None = None,
    **fields: str,
) -> httpx.Response:
    files = {"image": ("photo.jpg", image)} if image is not None else None
    return client.post(
        "/v1/chat",
        files=multipart({"session_id": session, "text": text, **fields}, files),
        headers=headers,
    )


def chat_json(
    client: httpx.Client,
    session: str,
    text: str = "",
    image: bytes | None = None,
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> httpx.Response:
    """`chat` with a JSON body, the photo base64-encoded."""
    body: dict[str, Any] = {"session_id": session, "text": text, **fields}
    if image is not None:
        body["image"] = base64.b64encode(image).decode("ascii")
    return client.post("/v1/chat", json=body, headers=headers)
