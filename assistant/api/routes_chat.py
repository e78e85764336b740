"""`POST /v1/chat`: one customer message (text and/or photo) in, one `TurnResult` out.

The message comes as JSON (photo base64-encoded) or as a multipart form (photo as a file); both
are read into one `ChatMessage` and go through the same limits and checks from there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from assistant.api.context import ApiContext, CallerDep, ContextDep
from assistant.api.errors import ApiError
from assistant.api.openapi import ERRORS, multipart_body
from assistant.api.public import public_turn
from assistant.api.uploads import (
    body_kind,
    decode_base64_image,
    image_rule,
    read_json,
    read_multipart,
    sniff_image,
)
from assistant.turn.safety import InputRejected, Limits, check_text
from assistant.turn.schemas import TurnRequest, TurnResult

router = APIRouter(tags=["chat"])

SESSION_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
CHAT_FIELDS = {
    "session_id": "the conversation's id (1-128 letters, digits, '.', '_', ':' or '-'); "
    "use a random id such as a UUID, since it identifies the conversation",
    "text": "the customer's message",
    "lang": "optional language hint: en or zh",
    "chosen_product_id": "optional: the product picked from an 'is it one of these?' reply",
}


class ChatBody(BaseModel):
    """`POST /v1/chat` as JSON: the fields of the multipart form, the photo base64-encoded."""

    model_config = ConfigDict(extra="forbid", strict=True)

    session_id: str = Field(description=CHAT_FIELDS["session_id"])
    text: str = Field("", description=CHAT_FIELDS["text"])
    image: str | None = Field(
        None,
        description="optional photo, base64-encoded (a data:image/...;base64, URL also works); "
        "the same size limit as a multipart photo (SHOPSIGHT_MAX_UPLOAD_MB, decoded)",
        json_schema_extra={"contentEncoding": "base64"},
    )
    lang: Literal["en", "zh"] | None = Field(None, description=CHAT_FIELDS["lang"])
    chosen_product_id: str | None = Field(None, description=CHAT_FIELDS["chosen_product_id"])


@dataclass
class ChatMessage:
    """One message as read from either body kind, before any check."""

    session_id: str
    text: str
    image: bytes | None
    image_name: str
    lang: str | None
    chosen_product_id: str | None


def for_customer(result: TurnResult) -> TurnResult:
    """Without the fields meant for agents (suggested replies, summary, debug details)."""
    return result.model_copy(update={"suggested_replies": [], "summary": "", "debug": {}})


def valid_session_id(session_id: str) -> str:
    if not SESSION_ID.fullmatch(session_id):
        raise ApiError(
            422,
            "invalid_field",
            "session_id must be 1-128 letters, digits, '.', '_', ':' or '-' (a UUID is ideal)",
        )
    return session_id


@router.post(
    "/v1/chat",
    response_model=TurnResult,
    summary="Send one chat message (text, photo or both)",
    description=(
        "JSON (the photo base64-encoded in `image`) or a multipart form (the photo as a file); "
        "the same limits apply to both. Public and rate-limited per session and per client "
        "address; with an agent key (X-API-Key) it is not rate-limited and the result includes "
        "the suggested replies, summary and debug fields. Errors use the shared JSON error shape."
    ),
    responses=ERRORS,
    openapi_extra=multipart_body(
        {name: {"type": "string", "description": text} for name, text in CHAT_FIELDS.items()}
        | {"image": {"type": "string", "format": "binary", "description": "optional photo"}},
        required=["session_id"],
        json_model=ChatBody,
    ),
)
async def chat(request: Request, context: ContextDep, caller: CallerDep) -> TurnResult:
    if not caller.trusted:
        context.limits.check_client(caller.client)
    fields = ", ".join([*CHAT_FIELDS, "image"])
    if body_kind(request, fields) == "json":
        message = await _from_json(request, context)
    else:
        message = await _from_multipart(request, context)
    turn = _turn_request(context, message, caller.trusted)
    result = public_turn(await context.turns.run_async(turn))
    return result if caller.trusted else for_customer(result)


async def _from_json(request: Request, context: ApiContext) -> ChatMessage:
    body = await read_json(request, ChatBody)
    image = None
    if body.image is not None:
        image = decode_base64_image(body.image, image_rule(context.max_upload_bytes))
    return ChatMessage(
        body.session_id, body.text, image, "image", body.lang, body.chosen_product_id
    )


async def _from_multipart(request: Request, context: ApiContext) -> ChatMessage:
    # Room for the longest message in UTF-8 (4 bytes per character at most) and the small fields.
    form = await read_multipart(
        request,
        text_fields=CHAT_FIELDS,
        file_fields={"image": image_rule(context.max_upload_bytes)},
        max_field_bytes=context.settings.max_text_chars * 4 + 1024,
    )
    try:
        session_id = form.required_text("session_id", CHAT_FIELDS["session_id"])
        image, name = None, "image"
        if (part := form.files.get("image")) is not None:
            data = part.read()
            if data or part.filename:  # browsers send an empty, nameless part for "no file"
                image, name = data, part.filename or "image"
    finally:
        form.close()
    return ChatMessage(
        session_id,
        form.text("text") or "",
        image,
        name,
        form.text("lang"),
        form.text("chosen_product_id"),
    )


def _turn_request(context: ApiContext, message: ChatMessage, trusted: bool) -> TurnRequest:
    """The checks every message gets, whichever body it came in, then the engine's request."""
    session_id = valid_session_id(message.session_id)
    context.turns.admit(session_id, trusted)
    try:
        check_text(message.text, Limits(max_text_chars=context.settings.max_text_chars))
    except InputRejected as exc:
        raise ApiError(413, "text_too_long", str(exc)) from exc
    if message.image is not None:
        sniff_image(message.image, message.image_name, context.settings.max_image_pixels)
    values: dict[str, Any] = {
        "session_id": session_id,
        "text": message.text,
        "image": message.image,
    }
    if message.lang:
        values["lang"] = message.lang
    if message.chosen_product_id:
        values["chosen_product_id"] = message.chosen_product_id
    try:
        return TurnRequest(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ApiError(422, "invalid_field", f"invalid chat fields: {problems}") from exc
