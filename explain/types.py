"""What explanations are made of and handed back as: attribution and heatmap views, and the
seam through which the caller's escalation policy is explained.

These live here rather than beside the turn schemas so that `explain` never imports the
assistant; the assistant's evidence pack embeds these views as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field


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


@dataclass(frozen=True)
class EscalationSignals:
    """Everything the escalation score of one (masked) message depends on: its text, the scores
    the models give it, and the session's terms, which are held fixed while it is explained."""

    text: str
    sentiment: float
    intent: str | None = None
    intent_confidence: float = 0.0
    probabilities: Mapping[str, float] = field(default_factory=dict)
    trend: float = 0.0
    unresolved: int = 0


EscalationPolicy = Callable[[EscalationSignals], float]
"""The caller's escalation score of one message: built from the policy and thresholds that
actually decide, so an explanation can never drift from the decision it explains."""
