"""Conversations: list and read them (agents), erase one (agents, or the customer who holds it)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from assistant.api.context import AgentDep, CallerDep, ContextDep
from assistant.api.errors import ApiError
from assistant.api.openapi import ERRORS
from assistant.api.routes_chat import valid_session_id
from assistant.memory import SessionState, TurnRecord

router = APIRouter(tags=["sessions"])


class SessionSummary(BaseModel):
    session_id: str
    updated_at: dt.datetime
    turns: int
    language: str
    escalated: bool
    last_intent: str | None


class SessionView(BaseModel):
    session_id: str
    state: SessionState
    turns: list[TurnRecord]


class Deleted(BaseModel):
    session_id: str
    deleted: bool


@router.get(
    "/v1/sessions",
    response_model=list[SessionSummary],
    summary="Recent conversations, most recently active first (agent key)",
    responses=ERRORS,
)
def list_sessions(
    context: ContextDep,
    _agent: AgentDep,
    limit: Annotated[int, Query(ge=1, le=500, description="How many sessions.")] = 50,
) -> list[SessionSummary]:
    return [
        SessionSummary(
            session_id=session_id,
            updated_at=updated_at,
            turns=state.turn_count,
            language=state.language,
            escalated=state.escalated,
            last_intent=state.last_intent,
        )
        for session_id, updated_at, state in context.components.memory.sessions(limit)
    ]


@router.get(
    "/v1/sessions/{session_id}",
    response_model=SessionView,
    summary="One conversation: its state and every turn (redacted text and result) (agent key)",
    responses=ERRORS | {404: ERRORS[400] | {"description": "No such session"}},
)
def get_session(session_id: str, context: ContextDep, _agent: AgentDep) -> SessionView:
    memory = context.components.memory
    turns = memory.history(valid_session_id(session_id))
    if not turns:
        raise _unknown(session_id)
    return SessionView(session_id=session_id, state=memory.load_state(session_id), turns=turns)


@router.delete(
    "/v1/sessions/{session_id}",
    response_model=Deleted,
    summary="Erase a conversation with its turns and evidence",
    description=(
        "Allowed with an agent key, or without a key to the customer who holds the session id: "
        "the id already lets its holder continue the conversation, so it also lets them erase "
        "it (rate-limited per client address like chat). Session history is never readable "
        "without an agent key."
    ),
    responses=ERRORS | {404: ERRORS[400] | {"description": "No such session"}},
)
def delete_session(session_id: str, context: ContextDep, caller: CallerDep) -> Deleted:
    if not caller.trusted:
        context.limits.check_client(caller.client)
    if not context.components.delete_session(valid_session_id(session_id)):
        raise _unknown(session_id)
    return Deleted(session_id=session_id, deleted=True)


def _unknown(session_id: str) -> ApiError:
    return ApiError(404, "session_not_found", f"no conversation with id {session_id!r}")
