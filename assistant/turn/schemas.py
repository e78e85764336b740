"""Typed data that crosses the engine's boundary: what a turn receives and what it returns."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, Field

from assistant.perception.intents import Intent

# The explanation views are defined by `explain` (a lower layer) and embedded in the evidence pack.
from explain.types import HeatmapView, TextAttribution

Action = Literal["answer", "clarify", "escalate"]
TicketType = Literal["damaged_item", "wrong_item", "return", "exchange", "warranty"]
# What a ticket may still need from the customer before an agent can act on it.
Slot = Literal["order_reference", "photo", "product"]
# What a card stands for: the product the turn is about, a possible match of an unsure photo
# (the customer is asked which one it is), or an item we sell that resembles a photographed
# product this shop does not sell; or one result of a product search.
CardRole = Literal["product", "candidate", "similar", "result"]


class TurnRequest(BaseModel):
    """One customer message: text, an optional photo (raw bytes), an optional language hint."""

    session_id: str = Field(min_length=1, max_length=128)
    text: str = ""
    image: bytes | None = Field(None, repr=False)
    lang: Literal["en", "zh"] | None = None
    chosen_product_id: str | None = Field(
        None, description="The product the customer picked from an 'is it one of these?' carousel."
    )


class Citation(BaseModel):
    """A numbered source the reply relies on."""

    number: int
    source_id: str
    kind: Literal["article", "product"]
    title: str
    snippet: str
    score: float = 0.0


class ProductCard(BaseModel):
    product_id: str
    title: str
    title_zh: str = ""

    def name(self, language: str) -> str:
        """The title in the customer's language when the catalogue has one."""
        return self.title_zh if language == "zh" and self.title_zh else self.title

    category: str = ""
    price: float | None = None
    currency: str | None = None
    stock: int | None = None
    image: str | None = None
    confidence: float = 0.0
    reason: str = ""
    role: CardRole = "product"


class SearchView(BaseModel):
    """A product search as understood: the agent sees the constraints behind the result cards."""

    understood: str = Field(description='e.g. "Black t-shirts for men under 50 USD".')
    constraints: dict[str, Any] = Field(default_factory=dict)
    relaxed: str | None = Field(None, description="The constraint dropped when none matched.")
    total: int = 0
    offset: int = 0


class SentimentView(BaseModel):
    score: float
    label: str
    trend: float
    consecutive_negative: int = 0
    model: str = ""


class IntentView(BaseModel):
    """The intent the engine acted on; it serialises as its plain value (`"find_by_photo"`), so
    stored turns and API responses read the same as a string field did."""

    intent: Intent
    confidence: float
    model: str = ""


class Decision(BaseModel):
    action: Action
    reasons: list[str] = Field(default_factory=list)
    escalation_score: float = 0.0


class SuggestedReply(BaseModel):
    rank: int
    text: str
    citations: list[int] = Field(default_factory=list)
    rationale: str = ""


class Ticket(BaseModel):
    """A prefilled damaged-item / return / exchange / warranty ticket the agent only has to
    confirm; it is filled over several turns, and `missing` says what the customer still owes."""

    ticket_type: TicketType
    product_id: str | None = None
    product_title: str | None = None
    order_reference: str | None = None
    issue: str
    policy_article_id: str | None = None
    policy_excerpt: str | None = None
    evidence_id: str = Field(description="The turn that last filled the ticket.")
    photo_attached: bool = False
    missing: list[Slot] = Field(default_factory=list)


class TurnResult(BaseModel):
    """Everything one turn produced; the customer sees `reply`, the agent sees all of it."""

    session_id: str
    turn_index: int
    language: Literal["en", "zh"]
    reply: str
    citations: list[Citation] = Field(default_factory=list)
    products: list[ProductCard] = Field(default_factory=list)
    search: SearchView | None = None
    sentiment: SentimentView
    intent: IntentView
    decision: Decision
    suggested_replies: list[SuggestedReply] = Field(default_factory=list)
    summary: str = ""
    ticket: Ticket | None = None
    context_product_id: str | None = None
    evidence_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    latency_ms: float = 0.0
    debug: dict[str, Any] = Field(default_factory=dict)


EvidenceStatus = Literal["pending", "ready", "failed"]


class EvidencePack(BaseModel):
    """Why one turn came out as it did; computed after the reply, cached by evidence id."""

    evidence_id: str
    status: EvidenceStatus
    error: str | None = None
    session_id: str | None = None
    turn_index: int | None = None
    language: str = "en"
    text: str = Field("", description="The customer's message, redacted.")
    reply: str = ""
    decision: Decision | None = None
    citations: list[Citation] = Field(default_factory=list)
    products: list[ProductCard] = Field(default_factory=list)
    sentiment: SentimentView | None = None
    sentiment_trend: list[float] = Field(
        default_factory=list, description="The session's sentiment trend after each turn so far."
    )
    intent: IntentView | None = None
    ticket: Ticket | None = None
    attributions: list[TextAttribution] = Field(default_factory=list)
    heatmaps: list[HeatmapView] = Field(default_factory=list)
    seconds: float = 0.0
