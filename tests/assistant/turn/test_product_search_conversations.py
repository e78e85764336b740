"""Product search conversations on the demo shop, through the real engine, models and store."""

from __future__ import annotations

import pytest

from assistant.turn.engine import Engine
from assistant.turn.schemas import TurnRequest, TurnResult

pytestmark = pytest.mark.integration


def turn(engine: Engine, session: str, text: str, **kwargs: object) -> TurnResult:
    return engine.handle_turn(TurnRequest(session_id=session, text=text, **kwargs))


def shown(result: TurnResult) -> list[str]:
    return [card.product_id for card in result.products]


def test_do_you_sell_t_shirts_lists_the_t_shirts(engine: Engine) -> None:
    result = turn(engine, "tees", "do you sell t-shirts?")
    assert set(shown(result)) == {"tee-classic-white", "tee-classic-navy", "tee-breton-stripe"}
    assert result.reply.startswith("T-shirts: 3 found.")
    assert result.search is not None and result.search.total == 3
    assert all(card.image for card in result.products)
    assert result.decision.action == "answer"


def test_sneakers_with_colour_and_price_then_a_colour_and_a_pick(engine: Engine) -> None:
    first = turn(engine, "sneakers", "Do you have black sneakers under 100?")
    assert shown(first) == ["sneaker-runner-black"]
    assert first.reply.startswith("Black sneakers under 100 USD: 1 found.")
    white = turn(engine, "sneakers", "in white?")
    assert shown(white) == ["sneaker-runner-white"]
    picked = turn(engine, "sneakers", "the first one")
    assert picked.context_product_id == "sneaker-runner-white"
    assert "89.00 USD" in picked.reply and "48 in stock" in picked.reply
    stock = turn(engine, "sneakers", "Is it in stock?")
    assert "48" in stock.reply


def test_chinese_search_then_another_colour(engine: Engine) -> None:
    first = turn(engine, "bags-zh", "有没有黑色的背包？")
    assert first.language == "zh"
    assert shown(first) == ["backpack-urban-black"]
    assert first.reply.startswith("黑色背包：共找到 1 件。")
    blue = turn(engine, "bags-zh", "有蓝色的吗")
    assert shown(blue) == ["backpack-urban-blue"]
    price = turn(engine, "bags-zh", "第一个多少钱")
    assert "79.00" in price.reply


def test_no_match_offers_the_nearest_and_says_what_was_relaxed(engine: Engine) -> None:
    result = turn(engine, "cheap-jackets", "jackets under 20 dollars")
    assert result.search is not None and result.search.relaxed == "price"
    assert result.reply.startswith("No jackets under 20 USD found; without the price limit")
    assert {"jacket-denim-classic", "jacket-puffer-black"} <= set(shown(result))
