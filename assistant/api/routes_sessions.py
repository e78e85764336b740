"""Conversations: list and read them (agents), erase one (agents, or the customer who holds it)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from assistant.api.context import AgentDep, CallerDep, ContextDep
from assistant.api.errors import ApiError
from assistant.api.openapi import ERRORS
from assistant.api.public import public_record
from assistant.api.routes_chat import valid_session_id
from assistant.turn.memory import AgentReply, SessionState, TurnRecord

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
    agent_replies: list[AgentReply] = Field(default_factory=list)


class ReplyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(
        min_length=1, max_length=4000, description="What the agent tells the customer."
    )


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
    return SessionView(
        session_id=session_id,
        state=memory.load_state(session_id),
        turns=[public_record(turn) for turn in turns],
        agent_replies=memory.agent_replies(session_id),
    )


@router.post(
    "/v1/sessions/{session_id}/replies",
    response_model=AgentReply,
    status_code=201,
    summary="Send a human agent's message into the conversation (agent key)",
    responses=ERRORS | {404: ERRORS[400] | {"description": "No such session"}},
)
def send_reply(
    session_id: str, body: ReplyBody, context: ContextDep, _agent: AgentDep
) -> AgentReply:
    text = body.text.strip()
    if not text:
        raise ApiError(422, "invalid_field", "text is empty: write the message to send")
    reply = context.components.memory.add_agent_reply(valid_session_id(session_id), text)
    if reply is None:
        raise _unknown(session_id)
    return reply


@router.get(
    "/v1/sessions/{session_id}/replies",
    response_model=list[AgentReply],
    summary="The messages human agents sent into a conversation",
    description="Allowed with an agent key, or without one to the customer holding the session "
    "id (the chat client polls it).",
    responses=ERRORS,
)
def list_replies(session_id: str, context: ContextDep, caller: CallerDep) -> list[AgentReply]:
    if not caller.trusted:
        context.limits.check_client(caller.client)
    return context.components.memory.agent_replies(valid_session_id(session_id))


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
