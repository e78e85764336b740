"""Typed data that crosses the engine's boundary: what a turn receives and what it returns."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, Field

Action = Literal["answer", "clarify", "escalate"]


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


class SentimentView(BaseModel):
    score: float
    label: str
    trend: float
    consecutive_negative: int = 0
    model: str = ""


class IntentView(BaseModel):
    intent: str
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
    """A prefilled damaged-item / return ticket the agent only has to confirm."""

    ticket_type: Literal["damaged_item", "wrong_item", "return", "warranty"]
    product_id: str | None = None
    product_title: str | None = None
    order_reference: str | None = None
    issue: str
    policy_article_id: str | None = None
    policy_excerpt: str | None = None
    evidence_id: str
    photo_attached: bool = False


class TurnResult(BaseModel):
    """Everything one turn produced; the customer sees `reply`, the agent sees all of it."""

    session_id: str
    turn_index: int
    language: Literal["en", "zh"]
    reply: str
    citations: list[Citation] = Field(default_factory=list)
    products: list[ProductCard] = Field(default_factory=list)
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


class TextAttribution(BaseModel):
    """SHAP word attributions of one text decision (sentiment, intent or escalation)."""

    target: Literal["sentiment", "intent", "escalation"]
    model: str = ""
    output_name: str
    output: float
    base_value: float
    tokens: list[str]
    values: list[float]
    html: str = Field("", description="The message with each word highlighted by its weight.")


class HeatmapView(BaseModel):
    """A Grad-CAM overlay saved as a PNG beside the evidence pack."""

    kind: Literal["similarity", "category"]
    title: str
    score: float
    file: str = Field(description="PNG file name inside the pack's folder.")


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
