"""Optional generative drafting: a LangChain chat model rewrites the grounded reply.

Small and large models alike invent prices, stock levels and policy periods. Every draft is
therefore checked against the retrieved sources: each number it states (a price, a count of
days, a percentage) must appear in them, and it must cite at least one of the numbered sources
when the grounded reply did. A draft that fails is replaced by the grounded reply, and the
reasons are recorded with the turn.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

log = structlog.get_logger(__name__)

# Numbers as a customer would read them: 59, 59.00, 1,299.50, 30 (days), 15 (%).
_NUMBER = re.compile(r"(?<![\w.])\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?")
_MARKER = re.compile(r"\[(\d{1,2})\]")

SYSTEM_PROMPT = {
    "en": (
        "You are a customer-service agent of an online shop. Rewrite the draft answer for the "
        "customer in a warm, concise way (at most 3 sentences). Use ONLY facts from the sources "
        "and the draft; never add a price, number, date, stock level or policy term that is not "
        "in them. Keep the source markers like [1]. {tone}"
    ),
    "zh": (
        "你是网店的客服。请把草稿答案改写得亲切简洁（最多3句）。只能使用资料和草稿中的事实，"
        "不要添加资料中没有的价格、数字、日期、库存或政策条款。保留 [1] 这样的来源标记。{tone}"
    ),
}
TONE = {
    ("en", True): "The customer is upset: apologise first and say it is a priority.",
    ("en", False): "Be friendly.",
    ("zh", True): "顾客很不满意：先道歉，并说明会优先处理。",
    ("zh", False): "语气友好。",
}


@dataclass
class DraftCheck:
    """Whether a draft may be sent, and why not."""

    accepted: bool
    reasons: list[str] = field(default_factory=list)


def _numbers(text: str) -> set[float]:
    return {float(m.group(0).replace(",", "")) for m in _NUMBER.finditer(text)}


def check_draft(draft: str, sources: str, citation_numbers: set[int]) -> DraftCheck:
    """Every number in `draft` must occur in `sources`; its markers must name real sources."""
    reasons = []
    if not draft.strip():
        reasons.append("the model returned an empty draft")
    invented = sorted(_numbers(draft) - _numbers(sources))
    if invented:
        shown = ", ".join(f"{n:g}" for n in invented)
        reasons.append(f"states numbers no source contains: {shown}")
    markers = {int(m) for m in _MARKER.findall(draft)}
    if markers - citation_numbers:
        reasons.append(f"cites sources that do not exist: {sorted(markers - citation_numbers)}")
    if citation_numbers and not markers & citation_numbers:
        reasons.append("cites none of the sources")
    return DraftCheck(accepted=not reasons, reasons=reasons)


class Drafter:
    """Drafts a reply with a chat model and keeps it only when it passes `check_draft`."""

    def __init__(self, model: BaseChatModel, name: str) -> None:
        self.model = model
        self.name = name

    def rewrite(
        self,
        grounded: str,
        sources: str,
        citation_numbers: set[int],
        question: str,
        language: str,
        upset: bool,
    ) -> tuple[str, DraftCheck]:
        """The text to send (the draft or the grounded reply) and the check's verdict."""
        from langchain_core.messages import HumanMessage, SystemMessage

        lang = "zh" if language == "zh" else "en"
        system = SYSTEM_PROMPT[lang].format(tone=TONE[(lang, upset)])
        prompt = f"Sources:\n{sources}\n\nCustomer: {question}\n\nDraft answer: {grounded}"
        try:
            message = self.model.invoke([SystemMessage(system), HumanMessage(prompt)])
        except Exception as exc:  # an unreachable endpoint must not cost the customer a reply
            log.warning("draft_failed", model=self.name, error=str(exc))
            return grounded, DraftCheck(False, [f"the chat model failed: {exc}"])
        draft = _text(message.content).strip()
        check = check_draft(draft, f"{sources}\n{grounded}", citation_numbers)
        if not check.accepted:
            log.info("draft_replaced", model=self.name, reasons=check.reasons)
        return (draft if check.accepted else grounded), check


def _text(content: object) -> str:
    """A message's text, whether the model returned a string or a list of content blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part if isinstance(part, str) else str(part.get("text", ""))
            for part in content
            if isinstance(part, str | dict)
        )
    return str(content)
