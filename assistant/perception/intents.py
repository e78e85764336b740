"""The shop intents every model's answer is expressed in, whatever labels it was trained on."""

from __future__ import annotations

from enum import StrEnum


class Intent(StrEnum):
    """What a customer message asks for; `OTHER` is the safe answer when nothing fits."""

    PRODUCT_QUESTION = "product_question"
    FIND_BY_PHOTO = "find_by_photo"
    ORDER_STATUS = "order_status"
    RETURN_REFUND = "return_refund"
    EXCHANGE = "exchange"
    SHIPPING_DELIVERY = "shipping_delivery"
    DAMAGED_WRONG_ITEM = "damaged_wrong_item"
    WARRANTY = "warranty"
    CANCEL_ORDER = "cancel_order"
    PAYMENT = "payment"
    COMPLAINT = "complaint"
    HUMAN_AGENT = "human_agent"
    GREETING = "greeting"
    OTHER = "other"


SHOP_INTENTS: tuple[str, ...] = tuple(intent.value for intent in Intent)


def to_intent(label: str, mapping: dict[str, str] | None = None) -> Intent:
    """The shop intent of a model label: through `mapping` when given, else the label itself
    when it names a shop intent, else `OTHER` (an unknown label never crashes the engine)."""
    name = (mapping or {}).get(label, label)
    return Intent(name) if name in SHOP_INTENTS else Intent.OTHER
