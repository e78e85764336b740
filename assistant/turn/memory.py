"""Conversation memory: sessions and turns in SQL (SQLite file by default, PostgreSQL by URL).

Only redacted text is stored. Deleting a session erases its turns, its agent replies and its
evidence with it.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    create_engine,
    delete,
    event,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from assistant.turn.product_search import SearchMemory
from assistant.turn.schemas import Ticket


class SessionState(BaseModel):
    """What the engine remembers between turns of one conversation."""

    language: str = "en"
    context_product_id: str | None = None
    candidate_product_ids: list[str] = Field(
        default_factory=list, description="The products last offered, in the order shown."
    )
    candidates_similar: bool = Field(
        False, description="They were offered as similar items, not as possible matches."
    )
    pending_asks: list[str] = Field(
        default_factory=list,
        description="The facts asked with the photo (price, stock...), answered once the "
        "customer says which offered product they mean.",
    )
    sentiment: dict[str, Any] = Field(default_factory=dict)
    unresolved: dict[str, int] = Field(default_factory=dict)
    last_intent: str | None = None
    escalated: bool = False
    turn_count: int = 0
    ticket: Ticket | None = Field(
        None, description="The ticket still waiting for an order number, a photo or the item."
    )
    product_search: SearchMemory | None = Field(
        None, description="The last product search, which follow-ups refine or pick from."
    )


class TurnRecord(BaseModel):
    index: int
    created_at: dt.datetime
    text: str
    evidence_id: str
    result: dict[str, Any]


class AgentReply(BaseModel):
    """A message a human agent sent into the conversation."""

    text: str
    after_turn: int = Field(description="Turns the conversation had when it was sent.")
    created_at: dt.datetime


class _Base(DeclarativeBase):
    pass


class _SessionRow(_Base):
    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    turns: Mapped[list[_TurnRow]] = relationship(
        back_populates="session", cascade="all, delete-orphan", order_by="_TurnRow.index"
    )


class _TurnRow(_Base):
    __tablename__ = "turns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    index: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    text: Mapped[str] = mapped_column(Text)
    evidence_id: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    session: Mapped[_SessionRow] = relationship(back_populates="turns")


class _AgentReplyRow(_Base):
    __tablename__ = "agent_replies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    after_turn: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    text: Mapped[str] = mapped_column(Text)


def _record(row: _TurnRow) -> TurnRecord:
    return TurnRecord(
        index=row.index,
        created_at=row.created_at,
        text=row.text,
        evidence_id=row.evidence_id,
        result=row.result,
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ConversationMemory:
    """Persistent sessions; safe to share between threads (one short transaction per call)."""

    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(url, future=True)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        _Base.metadata.create_all(self.engine)
        self._lock = threading.Lock()

    def load_state(self, session_id: str) -> SessionState:
        with Session(self.engine) as db:
            row = db.get(_SessionRow, session_id)
            return SessionState.model_validate(row.state) if row else SessionState()

    def save_turn(
        self,
        session_id: str,
        state: SessionState,
        text: str,
        evidence_id: str,
        result: dict[str, Any],
    ) -> int:
        """Store the turn and the new state atomically; returns the turn's index."""
        with self._lock, Session(self.engine) as db, db.begin():
            row = db.get(_SessionRow, session_id)
            now = _now()
            if row is None:
                row = _SessionRow(id=session_id, created_at=now, updated_at=now, state={})
                db.add(row)
            row.state = json.loads(state.model_dump_json())
            row.updated_at = now
            index = len(row.turns)
            row.turns.append(
                _TurnRow(
                    index=index, created_at=now, text=text, evidence_id=evidence_id, result=result
                )
            )
            return index

    def history(self, session_id: str) -> list[TurnRecord]:
        with Session(self.engine) as db:
            rows = db.scalars(
                select(_TurnRow).where(_TurnRow.session_id == session_id).order_by(_TurnRow.index)
            )
            return [_record(r) for r in rows]

    def turn_by_evidence(self, evidence_id: str) -> tuple[str, TurnRecord] | None:
        with Session(self.engine) as db:
            row = db.scalars(select(_TurnRow).where(_TurnRow.evidence_id == evidence_id)).first()
            if row is None:
                return None
            return row.session_id, _record(row)

    def sessions(self, limit: int = 50) -> list[tuple[str, dt.datetime, SessionState]]:
        """Most recently active sessions first (the agent console lists these)."""
        with Session(self.engine) as db:
            rows = db.scalars(
                select(_SessionRow).order_by(_SessionRow.updated_at.desc()).limit(limit)
            )
            return [(r.id, r.updated_at, SessionState.model_validate(r.state)) for r in rows]

    def add_agent_reply(self, session_id: str, text: str) -> AgentReply | None:
        """Store a human agent's message after the turns so far; None for an unknown session."""
        with self._lock, Session(self.engine) as db, db.begin():
            row = db.get(_SessionRow, session_id)
            if row is None:
                return None
            now = _now()
            reply = _AgentReplyRow(
                session_id=session_id, after_turn=len(row.turns), created_at=now, text=text
            )
            db.add(reply)
            row.updated_at = now
            return AgentReply(text=text, after_turn=reply.after_turn, created_at=now)

    def agent_replies(self, session_id: str) -> list[AgentReply]:
        with Session(self.engine) as db:
            rows = db.scalars(
                select(_AgentReplyRow)
                .where(_AgentReplyRow.session_id == session_id)
                .order_by(_AgentReplyRow.id)
            )
            return [
                AgentReply(text=r.text, after_turn=r.after_turn, created_at=r.created_at)
                for r in rows
            ]

    def delete(self, session_id: str) -> bool:
        """Erase a session, its turns and its agent replies; returns whether it existed."""
        with self._lock, Session(self.engine) as db, db.begin():
            db.execute(delete(_TurnRow).where(_TurnRow.session_id == session_id))
            db.execute(delete(_AgentReplyRow).where(_AgentReplyRow.session_id == session_id))
            existed = db.get(_SessionRow, session_id) is not None
            db.execute(delete(_SessionRow).where(_SessionRow.id == session_id))
            return existed


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    """WAL lets readers run during a write; foreign keys make deletes cascade."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
