"""Photo turns with the engine's doubles: a sure photo names the product with its facts, an
unsure one asks which of the candidates it is and states none of their facts until the customer
says, and a photo of something the shop does not sell says so and offers similar items."""

from __future__ import annotations

import re

import pytest
from PIL import Image

from assistant.perception.intents import Intent
from assistant.turn.engine import Engine, PhotoCandidate, PhotoEvidence
from assistant.turn.memory import ConversationMemory
from assistant.turn.schemas import TurnResult
from tests.assistant.turn.test_engine import (
    CONFIDENT,
    FakePerception,
    FakeStore,
    cited,
    photo_bytes,
    turn,
)

pytestmark = pytest.mark.unit

UNSURE_THREE = PhotoEvidence(
    (
        PhotoCandidate("backpack-black", 0.41),
        PhotoCandidate("backpack-blue", 0.39),
        PhotoCandidate("mug-blue", 0.35),
    ),
    confident=False,
)
# Below the engine's 0.02 floor: nothing in the catalogue is the product in the photo.
ABSENT = PhotoEvidence(
    (
        PhotoCandidate("mug-blue", 0.004),
        PhotoCandidate("backpack-blue", 0.52),
        PhotoCandidate("backpack-black", 0.5),
    ),
    confident=False,
)
PRICES = re.compile(r"79\.00|81\.50|12\.50|USD|in stock|库存|售价")


@pytest.fixture
def perception() -> FakePerception:
    return FakePerception()


@pytest.fixture
def memory() -> ConversationMemory:
    return ConversationMemory("sqlite://")


@pytest.fixture
def engine(perception: FakePerception, memory: ConversationMemory) -> Engine:
    return Engine(perception, FakeStore(), memory)


def photo_turn(
    engine: Engine,
    perception: FakePerception,
    seen: PhotoEvidence,
    text: str = "",
    lang: str | None = None,
) -> TurnResult:
    perception.photo_result = seen
    return turn(engine, text, image=photo_bytes(), lang=lang)


@pytest.mark.parametrize(
    ("text", "lang", "expected"),
    [
        ("How much is this?", None, "That is the Urban Backpack: 79.00 USD, 12 in stock [1]."),
        ("Is this in stock?", None, "That is the Urban Backpack: 12 in stock, 79.00 USD [1]."),
        ("", None, "That is the Urban Backpack: 79.00 USD, 12 in stock [1]."),
        ("这个多少钱？", "zh", "这是「城市背包」：售价 79.00 USD，目前有货（库存 12 件）[1]。"),
        ("这个有货吗？", "zh", "这是「城市背包」：目前有货（库存 12 件），售价 79.00 USD [1]。"),
    ],
)
def test_a_confident_photo_names_the_product_and_leads_with_the_fact_asked(
    engine: Engine, perception: FakePerception, text: str, lang: str | None, expected: str
) -> None:
    result = photo_turn(engine, perception, CONFIDENT, text, lang=lang)
    assert result.decision.action == "answer"
    assert result.reply == expected
    assert cited(result) == ["backpack-black"]
    assert [(c.product_id, c.role) for c in result.products] == [("backpack-black", "product")]


def test_an_unsure_photo_offers_the_candidates_and_states_none_of_their_facts(
    engine: Engine, perception: FakePerception, memory: ConversationMemory
) -> None:
    result = photo_turn(engine, perception, UNSURE_THREE, "How much is this?")
    assert result.decision.action == "clarify"
    assert [(c.product_id, c.role) for c in result.products] == [
        ("backpack-black", "candidate"),
        ("backpack-blue", "candidate"),
        ("mug-blue", "candidate"),
    ]
    assert "1. Urban Backpack; 2. Urban Backpack Blue; 3. Stoneware Mug" in result.reply
    assert "I'll tell you its price" in result.reply
    assert not PRICES.search(result.reply) and result.citations == []
    assert result.context_product_id is None
    state = memory.load_state("s1")
    assert state.pending_asks == ["price"]
    assert state.candidate_product_ids == ["backpack-black", "backpack-blue", "mug-blue"]


class CountingPerception(FakePerception):
    """Records how many photo matches the engine asks for."""

    asked: list[int]

    def photo(self, image: Image.Image, k: int) -> PhotoEvidence:
        self.asked.append(k)
        return super().photo(image, k)


def test_the_engine_asks_perception_for_five_candidates(memory: ConversationMemory) -> None:
    perception = CountingPerception()
    perception.asked = []
    engine = Engine(perception, FakeStore(), memory)
    photo_turn(engine, perception, UNSURE_THREE, "What is this?")
    assert perception.asked == [5]


@pytest.mark.parametrize(
    ("follow_up", "lang", "expected"),
    [
        ("the second one", None, "That is the Urban Backpack Blue: 81.50 USD, 3 in stock [1]."),
        ("It's the Stoneware Mug", None, "That is the Stoneware Mug: 12.50 USD, out of stock [1]."),
        ("第二个", "zh", "这是「城市背包（蓝色）」：售价 81.50 USD，目前有货（库存 3 件）[1]。"),
    ],
)
def test_a_confirmed_candidate_gets_the_question_asked_with_the_photo(
    engine: Engine, perception: FakePerception, follow_up: str, lang: str | None, expected: str
) -> None:
    photo_turn(engine, perception, UNSURE_THREE, "How much is this?", lang=lang)
    answer = turn(engine, follow_up, lang=lang)
    assert answer.decision.action == "answer"
    assert answer.intent.intent is Intent.FIND_BY_PHOTO
    assert answer.reply == expected
    assert [c.role for c in answer.products] == ["product"]
    assert answer.context_product_id == answer.products[0].product_id


def test_a_stock_question_waits_for_the_pick_and_is_answered_stock_first(
    engine: Engine, perception: FakePerception
) -> None:
    photo_turn(engine, perception, UNSURE_THREE, "Is this in stock?")
    answer = turn(engine, "number 1")
    assert answer.reply == "That is the Urban Backpack: 12 in stock, 79.00 USD [1]."


def test_a_click_on_a_carousel_card_answers_the_waiting_question(
    engine: Engine, perception: FakePerception
) -> None:
    photo_turn(engine, perception, UNSURE_THREE, "How much is this?")
    answer = turn(engine, chosen_product_id="mug-blue")
    assert answer.reply == "That is the Stoneware Mug: 12.50 USD, out of stock [1]."


def test_a_message_that_points_at_no_candidate_confirms_nothing(
    engine: Engine, perception: FakePerception
) -> None:
    photo_turn(engine, perception, UNSURE_THREE, "How much is this?")
    answer = turn(engine, "What is your return policy?")
    assert cited(answer) == ["returns-en"]
    assert not re.search(r"79\.00|81\.50|12\.50", answer.reply)


def test_a_photo_of_something_not_sold_here_says_so_and_offers_similar_items(
    engine: Engine, perception: FakePerception, memory: ConversationMemory
) -> None:
    result = photo_turn(engine, perception, ABSENT, "How much is this?")
    assert result.decision.action == "answer"
    assert result.decision.reasons == [
        "the photo matches nothing this shop sells: said so, offered the closest items as "
        "similar ones and a human agent"
    ]
    assert result.reply.startswith("I'm sorry, I couldn't find this product in our shop.")
    assert "Similar items we do sell (not the one in your photo): 1. Stoneware Mug;" in (
        result.reply
    )
    assert "colleague" in result.reply
    assert not PRICES.search(result.reply) and result.citations == []
    assert {c.role for c in result.products} == {"similar"}
    assert len(result.products) == 3
    assert memory.load_state("s1").candidates_similar


def test_a_similar_item_picked_after_a_photo_not_sold_here_is_not_called_the_photo(
    engine: Engine, perception: FakePerception
) -> None:
    photo_turn(engine, perception, ABSENT, "How much is this?")
    answer = turn(engine, "the second one")
    assert answer.reply == "The Urban Backpack Blue: 81.50 USD, 3 in stock [1]."


def test_a_photo_not_sold_here_in_chinese(engine: Engine, perception: FakePerception) -> None:
    result = photo_turn(engine, perception, ABSENT, "这个多少钱？", lang="zh")
    assert result.reply.startswith("抱歉，我们店里没有找到照片中的这件商品。")
    assert "（并非照片中的商品）：1. 陶瓷杯；2. 城市背包（蓝色）" in result.reply
    assert "人工客服" in result.reply and not PRICES.search(result.reply)


def test_an_unsure_or_absent_photo_drops_the_earlier_product_from_context(
    engine: Engine, perception: FakePerception
) -> None:
    turn(engine, "How much is the backpack?")
    result = photo_turn(engine, perception, ABSENT, "What is this?")
    assert result.context_product_id is None
    follow_up = turn(engine, "How much is it?")
    assert "79.00" not in follow_up.reply


def test_a_damage_photo_unlike_the_catalogue_asks_which_item_not_that_it_is_not_sold(
    engine: Engine, perception: FakePerception
) -> None:
    result = photo_turn(engine, perception, ABSENT, "It arrived broken, order #A12345")
    assert result.ticket is not None and result.ticket.missing == ["product"]
    assert result.decision.action == "clarify"
    assert {c.role for c in result.products} == {"candidate"}
    assert "couldn't find this product" not in result.reply


def exchange_intents(perception: FakePerception) -> None:
    perception.intents = {"exchange": Intent.EXCHANGE, **perception.intents}


def test_a_waiting_exchange_stays_an_exchange_when_the_order_number_arrives(
    engine: Engine, perception: FakePerception
) -> None:
    exchange_intents(perception)
    first = turn(engine, "I'd like to exchange the backpack for a bigger one")
    assert first.ticket is not None and first.ticket.ticket_type == "exchange"
    # The number comes with words the text model reads as a return.
    answer = turn(engine, "I want to return it, order A12345")
    assert answer.ticket is not None and answer.ticket.ticket_type == "exchange"
    assert answer.intent.intent is Intent.EXCHANGE
    assert answer.ticket.missing == [] and answer.ticket.order_reference == "A12345"
    assert "Your exchange request is complete" in answer.reply
    assert "exchanges-en" in cited(answer)


def test_the_item_named_in_the_next_message_fills_the_waiting_exchange(
    engine: Engine, perception: FakePerception, memory: ConversationMemory
) -> None:
    exchange_intents(perception)
    turn(engine, "I'd like to exchange my order")
    order = turn(engine, "order A12345")
    assert order.ticket is not None and order.ticket.missing == ["product"]
    item = turn(engine, "the backpack")
    assert item.ticket is not None and item.ticket.ticket_type == "exchange"
    assert item.ticket.product_id == "backpack-black" and item.ticket.missing == []
    assert memory.load_state("s1").ticket is None


def test_the_agent_next_step_offers_the_case_of_its_own_kind(
    engine: Engine, perception: FakePerception
) -> None:
    exchange_intents(perception)
    result = turn(engine, "I'd like to exchange the backpack for a bigger one")
    next_step = result.suggested_replies[2].text
    assert next_step.startswith("I can open an exchange request for you right away")
