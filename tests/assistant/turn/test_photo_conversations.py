"""Photo turns on the demo shop through the real engine, models and Chroma store: a sure photo
names the product with its price, an unsure one offers candidates and states no price until
the customer says which, and a photo of something the shop does not sell says so."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image, ImageDraw

from assistant.turn.engine import Engine
from assistant.turn.schemas import TurnRequest, TurnResult
from tests.assistant.demo_shop import customer_photo
from tests.assistant.turn.test_conversations import ambiguous_photo

pytestmark = pytest.mark.integration

# Any price, or a stock figure, in a reply.
FACTS = re.compile(r"\d+\.\d\d|USD|in stock|库存|售价")


def turn(engine: Engine, session: str, text: str = "", **kwargs: object) -> TurnResult:
    return engine.handle_turn(TurnRequest(session_id=session, text=text, **kwargs))


def drawn_apple() -> bytes:
    """A green apple on white: nothing the demo shop sells (its best match scores 0.0008)."""
    image = Image.new("RGB", (256, 256), "white")
    draw = ImageDraw.Draw(image)
    draw.ellipse((40, 40, 216, 216), fill=(30, 120, 30))
    draw.rectangle((120, 10, 136, 60), fill=(90, 60, 20))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def test_a_confident_photo_names_the_product_and_its_price(engine: Engine) -> None:
    english = turn(
        engine, "named-en", "How much is this?", image=customer_photo("backpack-urban-black")
    )
    assert english.decision.action == "answer"
    assert english.reply.startswith("That is the Urban Commuter Backpack 20L – Black: 79.00 USD, ")
    assert [c.source_id for c in english.citations] == ["backpack-urban-black"]
    chinese = turn(engine, "named-zh", "这个多少钱？", image=customer_photo("mug-stoneware-blue"))
    assert chinese.reply.startswith("这是「斑点粗陶马克杯 350ml – 蓝色」：售价 14.00 USD，")


@pytest.mark.parametrize(
    ("session", "question", "pick", "lang"),
    [
        ("unsure-en", "How much is this?", "the second one", "en"),
        ("unsure-zh", "这个多少钱？", "第二个", "zh"),
    ],
)
def test_an_unsure_photo_offers_candidates_without_prices_and_answers_the_pick(
    engine: Engine, session: str, question: str, pick: str, lang: str
) -> None:
    photo = ambiguous_photo("lamp-desk-arc-black", "cushion-velvet-mustard")
    unsure = turn(engine, session, question, image=photo)
    assert unsure.language == lang
    assert unsure.decision.action == "clarify"
    assert 3 <= len(unsure.products) <= 5
    assert {c.role for c in unsure.products} == {"candidate"}
    assert all(c.image for c in unsure.products)
    assert unsure.citations == [] and not FACTS.search(unsure.reply)

    second = unsure.products[1]
    assert second.price is not None
    answer = turn(engine, session, pick)
    assert answer.decision.action == "answer"
    assert [c.source_id for c in answer.citations] == [second.product_id]
    assert f"{second.price:.2f} {second.currency}" in answer.reply
    assert second.name(lang) in answer.reply


@pytest.mark.parametrize(
    ("session", "question", "says"),
    [
        ("absent-en", "How much is this?", "I couldn't find this product in our shop"),
        ("absent-zh", "这个多少钱？", "我们店里没有找到照片中的这件商品"),
    ],
)
def test_a_product_not_sold_here_is_said_so_with_similar_items(
    engine: Engine, session: str, question: str, says: str
) -> None:
    result = turn(engine, session, question, image=drawn_apple())
    assert result.decision.action == "answer"
    assert says in result.reply
    assert result.products and {c.role for c in result.products} == {"similar"}
    assert result.citations == [] and not FACTS.search(result.reply)


@pytest.mark.parametrize(
    ("session", "opening", "number", "lang"),
    [
        (
            "exchange-en",
            "I want to exchange my Urban Commuter Backpack for another colour",
            "A12345",
            "en",
        ),
        ("exchange-zh", "我想换货，城市通勤双肩包换个颜色", "订单号 A12345", "zh"),
    ],
)
def test_a_waiting_exchange_stays_an_exchange_when_the_order_number_arrives(
    engine: Engine, session: str, opening: str, number: str, lang: str
) -> None:
    first = turn(engine, session, opening, lang=lang)
    assert first.ticket is not None and first.ticket.ticket_type == "exchange"
    assert "order_reference" in first.ticket.missing
    answer = turn(engine, session, number, lang=lang)
    assert answer.ticket is not None and answer.ticket.ticket_type == "exchange"
    assert answer.ticket.order_reference == "A12345"
    assert any(c.source_id.startswith("exchanges-") for c in answer.citations)
