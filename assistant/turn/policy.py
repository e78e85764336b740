"""Decide: answer, ask to clarify, or hand over to a human — always with reasons in plain words."""

from __future__ import annotations

import re
from dataclasses import dataclass

from assistant.perception.intents import Intent
from assistant.turn.schemas import Decision

# Words that always need a person: legal threats, safety, fraud (English and Chinese).
_RISK = re.compile(
    r"\b(lawyer|attorney|sue|suing|lawsuit|legal action|court|police|fraud|scam|injur\w*|hurt|burn\w*|"
    r"fire|smoke|explod\w*|electric shock|poison\w*|chargeback|consumer protection)\b"
    r"|律师|起诉|法院|报警|警察|诈骗|欺诈|受伤|烧伤|着火|起火|冒烟|爆炸|触电|中毒|投诉到|消费者协会|12315",
    re.IGNORECASE,
)
_HUMAN = re.compile(
    r"\b(human|real person|a person|someone real|an agent|live agent|representative|operator|manager|"
    r"supervisor|speak to (?:someone|somebody)|talk to (?:someone|somebody))\b|人工|真人|客服人员|转人工|经理|主管",
    re.IGNORECASE,
)


# Words of an order, a delivery or an after-sales case: a message with them is about an order,
# even when it names a product ("my black t-shirt arrived torn").
_ORDER_WORDS = re.compile(
    r"\b(orders?|ordered|refunds?|return\w*|exchang\w*|deliver\w*|shipping|shipped|track\w*|"
    r"parcel|package|cancel\w*|broken|damaged|torn|ripped|defect\w*|faulty|warranty|invoice|"
    r"receipt|payment|paid|charged|arrived|received|bought|purchased)\b"
    r"|订单|退货|退款|换货|物流|快递|包裹|发货|到货|收到|破损|坏了|损坏|取消|保修|发票|付款|支付|买了|买的",
    re.IGNORECASE,
)
# Words that ask for a list rather than about one product ("do you sell", "有没有").
_SEARCH_CUES = re.compile(
    r"\b(do you (?:sell|have|carry|stock)|have you got|show me|look(?:ing)? for|"
    r"search|find me|any|recommend\w*|options|suggest\w*|i (?:want|need) (?:a|some)|sell)\b"
    r"|有没有|有.{0,12}吗|卖不卖|推荐|想买|想要|找|看看",
    re.IGNORECASE,
)


# How-to and policy questions ("how do I wash jeans?") are for the help centre, not a listing.
_HOW_QUESTION = re.compile(
    r"^\W*(?:how (?:do|can|should|to|long|often|does)|why|what(?: is|'s) your|can i|is it possible)\b"
    r"|怎么|如何|为什么",
    re.IGNORECASE,
)


def mentions_order(text: str) -> bool:
    """Order, delivery or after-sales words: the message is about an order, not a search."""
    return bool(_ORDER_WORDS.search(text))


def routes_to_product_search(
    text: str, names_product: bool, narrowed: bool, asks_facts: bool, photo: bool
) -> bool:
    """A message that names a product type or brand searches the catalogue, whatever the intent
    model said, unless it speaks of an order or a case, or comes with a photo. A list cue ("do
    you sell", "有没有") always makes it a search; a how-to question ("how do I wash jeans?")
    never does; a question about one product's facts with nothing but its type ("how much is
    the backpack?") stays a question about that product unless a further constraint (colour,
    price, gender) narrows it to a choice."""
    if not names_product or photo or mentions_order(text):
        return False
    if _SEARCH_CUES.search(text):
        return True
    return not _HOW_QUESTION.search(text) and (narrowed or not asks_facts)


@dataclass(frozen=True)
class PolicyThresholds:
    """Escalation and clarification thresholds (Settings passes its values here)."""

    angry_trend: float = -0.35
    angry_streak: int = 2
    unresolved_repeats: int = 2
    human_intent_confidence: float = 0.5
    escalation_score: float = 0.6


@dataclass(frozen=True)
class PolicyInput:
    text: str
    intent: Intent
    intent_confidence: float
    sentiment_score: float
    sentiment_trend: float
    consecutive_negative: int
    unresolved_count: int
    photo_given: bool
    photo_confident: bool
    has_answer: bool
    ambiguous: bool
    p_human: float = 0.0
    p_complaint: float = 0.0
    photo_absent: bool = False
    product_search: bool = False


def risk_terms(text: str) -> list[str]:
    """The legal/safety/fraud words found in `text`."""
    return sorted({m.group(0).lower() for m in _RISK.finditer(text)})


def asks_for_human(text: str) -> bool:
    return bool(_HUMAN.search(text))


def escalation_score(
    sentiment_score: float,
    p_human: float,
    p_complaint: float,
    risk: bool,
    trend: float = 0.0,
    unresolved: int = 0,
) -> float:
    """A 0..1 urgency score: what SHAP explains for the escalation decision.

    Weights are set so any single strong signal (an explicit ask, a risk word, a very angry
    trend) crosses the 0.6 threshold on its own, and weaker ones must combine.
    """
    score = (
        0.35 * max(0.0, -sentiment_score)
        + 0.65 * p_human
        + 0.25 * p_complaint
        + (0.7 if risk else 0.0)
        + 0.5 * max(0.0, -trend)
        + 0.2 * min(unresolved, 3)
    )
    return float(min(1.0, score))


def decide(data: PolicyInput, thresholds: PolicyThresholds | None = None) -> Decision:
    """Apply the rules in order of urgency; every rule that fires adds its reason."""
    t = thresholds or PolicyThresholds()
    reasons: list[str] = []
    risks = risk_terms(data.text)
    explicit = asks_for_human(data.text) or (
        data.intent == Intent.HUMAN_AGENT and data.intent_confidence >= t.human_intent_confidence
    )
    if explicit:
        reasons.append("the customer asked to talk to a person")
    if risks:
        reasons.append(f"legal, safety or fraud words: {', '.join(risks)}")
    if data.sentiment_trend <= t.angry_trend and data.consecutive_negative >= t.angry_streak:
        reasons.append(
            f"sentiment has been negative for {data.consecutive_negative} turns "
            f"(trend {data.sentiment_trend:+.2f} ≤ {t.angry_trend:+.2f})"
        )
    if data.unresolved_count >= t.unresolved_repeats:
        reasons.append(
            f"the same request ({data.intent.value}) is still unresolved after {data.unresolved_count} tries"
        )
    score = escalation_score(
        data.sentiment_score,
        max(data.p_human, 1.0 if explicit else 0.0),
        data.p_complaint,
        bool(risks),
        data.sentiment_trend,
        data.unresolved_count,
    )
    if reasons:
        return Decision(action="escalate", reasons=reasons, escalation_score=round(score, 3))
    if data.photo_given and data.photo_absent:
        return Decision(
            action="answer",
            reasons=[
                "the photo matches nothing this shop sells: said so, offered the closest items "
                "as similar ones and a human agent"
            ],
            escalation_score=round(score, 3),
        )
    if data.photo_given and not data.photo_confident:
        return Decision(
            action="clarify",
            reasons=[
                "the photo matches several products and none clearly enough: asking which one"
            ],
            escalation_score=round(score, 3),
        )
    if data.ambiguous:
        return Decision(
            action="clarify",
            reasons=[
                "the question is too vague to answer from the knowledge base: asking one question"
            ],
            escalation_score=round(score, 3),
        )
    if data.product_search:
        return Decision(
            action="answer",
            reasons=["product search: listed the catalogue products that match the request"],
            escalation_score=round(score, 3),
        )
    if not data.has_answer:
        return Decision(
            action="answer",
            reasons=[
                "no source in the knowledge base answers this: said so and offered a human agent"
            ],
            escalation_score=round(score, 3),
        )
    return Decision(
        action="answer",
        reasons=["grounded answer from the cited sources"],
        escalation_score=round(score, 3),
    )
