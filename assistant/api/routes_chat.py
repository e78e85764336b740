"""`POST /v1/chat`: one customer message (text and/or photo) in, one `TurnResult` out."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError

from assistant.api.context import CallerDep, ContextDep
from assistant.api.errors import ApiError
from assistant.api.openapi import ERRORS, multipart_body
from assistant.api.routes_products import public_images
from assistant.api.uploads import image_rule, read_multipart, sniff_image
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
        "Multipart form. Public and rate-limited per session and per client address; with an "
        "agent key (X-API-Key) it is not rate-limited and the result includes the suggested "
        "replies, summary and debug fields. Errors use the shared JSON error shape."
    ),
    responses=ERRORS,
    openapi_extra=multipart_body(
        {name: {"type": "string", "description": text} for name, text in CHAT_FIELDS.items()}
        | {"image": {"type": "string", "format": "binary", "description": "optional photo"}},
        required=["session_id"],
    ),
)
async def chat(request: Request, context: ContextDep, caller: CallerDep) -> TurnResult:
    settings = context.settings
    if not caller.trusted:
        context.limits.check_client(caller.client)
    # Room for the longest message in UTF-8 (4 bytes per character at most) and the small fields.
    max_field = settings.max_text_chars * 4 + 1024
    form = await read_multipart(
        request,
        text_fields=CHAT_FIELDS,
        file_fields={"image": image_rule(context.max_upload_bytes)},
        max_field_bytes=max_field,
    )
    try:
        session_id = valid_session_id(form.required_text("session_id", CHAT_FIELDS["session_id"]))
        context.turns.admit(session_id, caller.trusted)
        text = form.text("text") or ""
        try:
            check_text(text, Limits(max_text_chars=settings.max_text_chars))
        except InputRejected as exc:
            raise ApiError(413, "text_too_long", str(exc)) from exc
        image = None
        if (part := form.files.get("image")) is not None:
            image = part.read()
            if image or part.filename:  # browsers send an empty, nameless part for "no file"
                sniff_image(image, part.filename or "image", settings.max_image_pixels)
            else:
                image = None
        turn = _turn_request(
            session_id, text, image, form.text("lang"), form.text("chosen_product_id")
        )
    finally:
        form.close()
    result = public_images(await context.turns.run_async(turn))
    return result if caller.trusted else for_customer(result)


def _turn_request(
    session_id: str, text: str, image: bytes | None, lang: str | None, chosen: str | None
) -> TurnRequest:
    values: dict[str, Any] = {"session_id": session_id, "text": text, "image": image}
    if lang:
        values["lang"] = lang
    if chosen:
        values["chosen_product_id"] = chosen
    try:
        return TurnRequest(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ApiError(422, "invalid_field", f"invalid chat fields: {problems}") from exc
