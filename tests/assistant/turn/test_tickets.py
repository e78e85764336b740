"""Ticket rules: which messages report a case, what each case still needs, and which policy
article governs it, checked against the demo shop's own articles."""

from __future__ import annotations

import pytest

from assistant.perception.intents import Intent
from assistant.turn.schemas import Ticket, TicketType
from assistant.turn.tickets import answers, fill, policy_article, report_type
from knowledge_base.chunking import chunk_article
from knowledge_base.demo import DEMO_SHOP
from knowledge_base.loaders import load_paths
from knowledge_base.store import Hit

pytestmark = pytest.mark.unit


def demo_article_heads() -> list[Hit]:
    """The first chunk of every demo shop article, with the metadata ingestion stores."""
    loaded = load_paths([DEMO_SHOP / "articles"])
    assert not loaded.rejections
    heads = [chunk_article(article, 600, 80)[0] for article in loaded.articles]
    return [
        Hit(
            id=chunk.id,
            score=0.0,
            document=chunk.text,
            metadata={
                "article_id": chunk.article_id,
                "language": chunk.language,
                "kind": chunk.kind,
                "tags": ", ".join(chunk.tags),
                "position": chunk.position,
            },
        )
        for chunk in heads
    ]


@pytest.mark.parametrize(
    ("ticket_type", "language", "article"),
    [
        ("damaged_item", "en", "damaged-or-wrong-item-en"),
        ("damaged_item", "zh", "damaged-or-wrong-item-zh"),
        ("wrong_item", "en", "damaged-or-wrong-item-en"),
        ("wrong_item", "zh", "damaged-or-wrong-item-zh"),
        ("return", "en", "returns-policy-en"),
        ("return", "zh", "returns-policy-zh"),
        ("exchange", "en", "exchanges-en"),
        ("exchange", "zh", "exchanges-zh"),
        ("warranty", "en", "warranty-en"),
        ("warranty", "zh", "warranty-zh"),
    ],
)
def test_each_case_cites_the_demo_shop_article_of_its_policy(
    ticket_type: TicketType, language: str, article: str
) -> None:
    found = policy_article(demo_article_heads(), ticket_type, language)
    assert found is not None and found.metadata["article_id"] == article


def test_an_article_in_another_language_stands_in_when_the_customers_is_missing() -> None:
    english_only = [h for h in demo_article_heads() if h.metadata["language"] == "en"]
    found = policy_article(english_only, "warranty", "zh")
    assert found is not None and found.metadata["article_id"] == "warranty-en"


def test_no_tagged_article_means_no_policy_rather_than_a_neighbour() -> None:
    untagged = [h for h in demo_article_heads() if "warranty" not in h.metadata["article_id"]]
    assert policy_article(untagged, "warranty", "en") is None


@pytest.mark.parametrize(
    ("intent", "text", "photo", "expected"),
    [
        (Intent.DAMAGED_WRONG_ITEM, "The mug arrived cracked", False, "damaged_item"),
        (Intent.DAMAGED_WRONG_ITEM, "You sent me the wrong item", False, "wrong_item"),
        (Intent.ORDER_STATUS, "My order arrived and it is torn", True, "damaged_item"),
        (Intent.RETURN_REFUND, "It arrived broken, I want a refund", False, "damaged_item"),
        (Intent.RETURN_REFUND, "I want a refund", False, "return"),
        (Intent.RETURN_REFUND, "Can I return these shoes?", False, "return"),
        (Intent.RETURN_REFUND, "我要退货", False, "return"),
        (Intent.EXCHANGE, "I'd like to exchange it for a bigger size", False, "exchange"),
        (Intent.EXCHANGE, "我想换货", False, "exchange"),
        (Intent.WARRANTY, "My headphones stopped working", False, "warranty"),
        (Intent.WARRANTY, "耳机开不了机，申请保修", False, "warranty"),
        (Intent.RETURN_REFUND, "What is your return policy?", False, None),
        (Intent.RETURN_REFUND, "退货政策是什么？", False, None),
        (Intent.WARRANTY, "How long is the warranty on watches?", False, None),
        (Intent.ORDER_STATUS, "The zipper is broken, where is my order?", False, None),
        (Intent.HUMAN_AGENT, "It's broken, get me a person", True, None),
    ],
)
def test_reports_open_a_ticket_and_policy_questions_do_not(
    intent: Intent, text: str, photo: bool, expected: TicketType | None
) -> None:
    assert report_type(intent, text, photo, None) == expected


def test_an_order_number_makes_a_return_question_a_report() -> None:
    assert (
        report_type(Intent.RETURN_REFUND, "return for order #A12345", False, "A12345") == "return"
    )


def test_a_ticket_lists_what_its_kind_still_needs_and_fills_over_turns() -> None:
    opened = fill(
        Ticket(ticket_type="damaged_item", issue="torn", evidence_id=""), evidence_id="e1"
    )
    assert opened.missing == ["order_reference", "photo", "product"]
    assert answers(opened, "A12345", photo=False, product=False)
    assert not answers(opened, None, photo=False, product=False)
    with_order = fill(opened, evidence_id="e2", order_reference="A12345")
    assert with_order.missing == ["photo", "product"]
    done = fill(
        with_order, evidence_id="e3", photo=True, product_id="mug-blue", product_title="Mug"
    )
    assert done.missing == []
    assert (done.order_reference, done.product_id, done.photo_attached) == (
        "A12345",
        "mug-blue",
        True,
    )
    assert done.evidence_id == "e3" and done.issue == "torn"


def test_a_return_needs_no_photo() -> None:
    ticket = fill(
        Ticket(ticket_type="return", issue="refund", evidence_id=""),
        evidence_id="e1",
        product_id="mug-blue",
    )
    assert ticket.missing == ["order_reference"]
    assert not answers(ticket, None, photo=False, product=True)


@pytest.mark.parametrize(
    ("intent", "text", "order", "expected"),
    [
        (Intent.OTHER, "I want to return my order, it doesn't fit", None, "return"),
        (Intent.OTHER, "I'd like to swap it for another colour", None, "exchange"),
        (Intent.ORDER_STATUS, "我要换货，订单号 E50003", "E50003", "exchange"),
        (Intent.OTHER, "The watch is faulty, order #W5678, repair please", "W5678", "warranty"),
        (Intent.OTHER, "不想要了，能退货吗？订单号：R30003", "R30003", "return"),
        (Intent.ORDER_STATUS, "Where is my refund for order #A12345?", "A12345", None),
        (Intent.OTHER, "What is your return policy?", None, None),
        (Intent.OTHER, "hello, order #A12345", "A12345", None),
        (Intent.OTHER, "My parcel arrived and the shoes are damaged.", None, "damaged_item"),
    ],
)
def test_a_case_filed_under_another_intent_is_named_by_its_words(
    intent: Intent, text: str, order: str | None, expected: TicketType | None
) -> None:
    assert report_type(intent, text, False, order) == expected
