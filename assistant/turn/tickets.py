"""Damage, return, exchange and warranty tickets: when a message reports a case, what each kind
of case needs before an agent can act, and which policy article governs it.

A ticket is filled over several turns; the engine keeps the unfinished one in the session state
and this module stays free of I/O so its rules are tested on their own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from assistant.perception.intents import Intent
from assistant.turn.schemas import Slot, Ticket, TicketType
from knowledge_base.store import Hit

TICKET_INTENTS: dict[Intent, TicketType] = {
    Intent.DAMAGED_WRONG_ITEM: "damaged_item",
    Intent.WARRANTY: "warranty",
    Intent.RETURN_REFUND: "return",
    Intent.EXCHANGE: "exchange",
}
INTENT_OF: dict[TicketType, Intent] = {
    "damaged_item": Intent.DAMAGED_WRONG_ITEM,
    "wrong_item": Intent.DAMAGED_WRONG_ITEM,
    "warranty": Intent.WARRANTY,
    "return": Intent.RETURN_REFUND,
    "exchange": Intent.EXCHANGE,
}
# A damage or fault is judged from a photo; a change-of-mind return or exchange is not.
REQUIRED: dict[TicketType, tuple[Slot, ...]] = {
    "damaged_item": ("order_reference", "photo", "product"),
    "wrong_item": ("order_reference", "photo", "product"),
    "warranty": ("order_reference", "photo", "product"),
    "return": ("order_reference", "product"),
    "exchange": ("order_reference", "product"),
}
# The tags that mark each case's policy article, English and Chinese. Several articles share a
# tag (the returns policy is also tagged "exchange"), so the article that lists it earliest,
# the one whose topic it is, wins.
POLICY_TAGS: dict[TicketType, tuple[str, ...]] = {
    "damaged_item": ("damaged", "破损"),
    "wrong_item": ("wrong item", "发错货", "damaged", "破损"),
    "warranty": ("warranty", "保修"),
    "return": ("returns", "return policy", "退货", "退货政策"),
    "exchange": ("exchange", "换货"),
}

DAMAGE = re.compile(
    r"\b(broken|broke|damaged|cracked|torn|ripped|smashed|dented|defective|faulty|wrong item|stain\w*)\b"
    r"|坏了|破了|破损|损坏|裂|碎了|发错|错发|有瑕疵|质量问题",
    re.IGNORECASE,
)
_WRONG = re.compile(
    r"\bwrong (?:item|product|size|colou?r)\b|\bnot what i ordered\b|发错|错发", re.IGNORECASE
)
# "I want a refund", "can I return it", "我要退货": a request to act, not a policy question.
_REQUEST = re.compile(
    r"\b(?:want|wanna|would like|'d like|need|wish)\s+(?:to\s+)?(?:a\s+|an\s+|my\s+)?"
    r"(?:return|refund|exchange|swap|replace|replacement|repair|send \w+ back|money back)"
    r"|\b(?:please|can i|could i|can you|could you)\s+(?:\w+\s+){0,2}?"
    r"(?:return|refund|exchange|swap|replace|repair)\b"
    r"|(?:想|要|需要|申请|帮我|请)(?:办理?)?(?:退货|退款|换货|退掉|退了|换一|保修|维修)",
    re.IGNORECASE,
)
_FAULT = re.compile(
    r"\b(?:stopped working|not working|isn't working|doesn't work|does not work"
    r"|won't (?:turn|switch) on|won't charge)\b|不工作|开不了机|没反应|不能用",
    re.IGNORECASE,
)


# The case a message names in words, for when the intent model filed it elsewhere ("I want to
# return my order #R20001, it doesn't fit" read as `other`): first match wins, so "exchange it
# instead of a refund" is an exchange.
_KIND_WORDS: tuple[tuple[TicketType, re.Pattern[str]], ...] = (
    ("exchange", re.compile(r"\b(?:exchange|swap)\b|换货|换一|换个|换成", re.IGNORECASE)),
    ("warranty", re.compile(r"\b(?:warranty|guarantee|repair)\b|保修|维修", re.IGNORECASE)),
    (
        "return",
        re.compile(
            r"\b(?:return|refund|send \w+ back|money back)\b|退货|退款|退掉|退了", re.IGNORECASE
        ),
    ),
)


def named_kind(text: str) -> TicketType | None:
    """The ticket kind the message names in words, if any."""
    return next((kind for kind, words in _KIND_WORDS if words.search(text)), None)


def report_type(
    intent: Intent, text: str, photo: bool, order_reference: str | None
) -> TicketType | None:
    """The kind of case this message reports, or None when it only asks about a policy."""
    if intent == Intent.HUMAN_AGENT:
        return None
    damaged = DAMAGE.search(text) is not None
    # A fault named with its warranty ("faulty, I want a warranty repair") is a warranty claim.
    warranty_named = intent != Intent.DAMAGED_WRONG_ITEM and named_kind(text) == "warranty"
    if not warranty_named and (
        intent == Intent.DAMAGED_WRONG_ITEM
        or (damaged and (photo or intent in (Intent.RETURN_REFUND, Intent.EXCHANGE, Intent.OTHER)))
    ):
        return "wrong_item" if _WRONG.search(text) else "damaged_item"
    acting = photo or order_reference or _REQUEST.search(text) or _FAULT.search(text)
    kind = TICKET_INTENTS.get(intent)
    if kind is None and (_REQUEST.search(text) or (order_reference and intent == Intent.OTHER)):
        # A request to act names its case whatever the intent; so does an order number given
        # with a message no intent fits. "Where is my refund for #A123?" stays a status question.
        kind = named_kind(text)
    return kind if kind is not None and acting else None


def answers(ticket: Ticket, order_reference: str | None, photo: bool, product: bool) -> bool:
    """Whether a turn brings something the waiting ticket asked for."""
    return bool(
        (order_reference and "order_reference" in ticket.missing)
        or (photo and ("photo" in ticket.missing or "product" in ticket.missing))
        or (product and "product" in ticket.missing)
    )


def fill(
    ticket: Ticket,
    *,
    evidence_id: str,
    order_reference: str | None = None,
    product_id: str | None = None,
    product_title: str | None = None,
    photo: bool = False,
) -> Ticket:
    """The ticket with this turn's answers; a later answer corrects an earlier one."""
    filled = ticket.model_copy(
        update={
            "evidence_id": evidence_id,
            "order_reference": order_reference or ticket.order_reference,
            "product_id": product_id or ticket.product_id,
            "product_title": product_title if product_id else ticket.product_title,
            "photo_attached": ticket.photo_attached or photo,
        }
    )
    have = {
        "order_reference": filled.order_reference is not None,
        "photo": filled.photo_attached,
        "product": filled.product_id is not None,
    }
    return filled.model_copy(
        update={"missing": [slot for slot in REQUIRED[filled.ticket_type] if not have[slot]]}
    )


def policy_article(heads: Sequence[Hit], ticket_type: TicketType, language: str) -> Hit | None:
    """The first chunk of the article tagged for this case, in `language` when there is one.

    `heads` are the first chunks of the articles (metadata `article_id`, `language`, `tags`);
    an article of kind "policy" wins a tie over an FAQ.
    """
    wanted = POLICY_TAGS[ticket_type]
    ranked: list[tuple[bool, int, bool, str, Hit]] = []
    for hit in heads:
        tags = [t.strip().lower() for t in str(hit.metadata.get("tags") or "").split(",")]
        places = [tags.index(tag) for tag in wanted if tag in tags]
        if places:
            ranked.append(
                (
                    hit.metadata.get("language") != language,
                    min(places),
                    hit.metadata.get("kind") != "policy",
                    str(hit.metadata.get("article_id", hit.id)),
                    hit,
                )
            )
    return min(ranked, key=lambda row: row[:4])[4] if ranked else None
