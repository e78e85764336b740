"""Product search in conversation with doubles: the follow-up rules, the one-sentence reply, and
the engine's search turns over a dict-backed catalogue and a ranker that keeps catalogue order."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Sequence

import pytest
from PIL import Image

from assistant.perception.intent import IntentResult
from assistant.perception.intents import Intent
from assistant.perception.sentiment import SentimentResult
from assistant.turn.engine import Engine, PhotoEvidence, ProductHit
from assistant.turn.memory import ConversationMemory
from assistant.turn.ordinals import position
from assistant.turn.product_search import (
    CatalogueSearch,
    SearchMemory,
    SearchOutcome,
    refinement,
    summary_sentence,
)
from assistant.turn.schemas import TurnRequest, TurnResult
from knowledge_base.store import CollectionKind, Hit, Where
from retrieval.search.attributes import ProductQuery
from retrieval.search.hybrid import SearchFilters
from retrieval.search.types import ArticleMatch, ProductMatch

pytestmark = pytest.mark.unit


def product(
    title: str, category: str, price: float, stock: int, **attributes: str
) -> dict[str, object]:
    return {
        "title": title,
        "category": category,
        "price": price,
        "currency": "USD",
        "stock": stock,
        "in_stock": stock > 0,
        "attributes": json.dumps(attributes),
        "images": json.dumps([f"images/{title.lower().replace(' ', '-')}.jpg"]),
    }


PRODUCTS = {
    "t1": product("Puma Men Black T-shirt", "Tshirts", 25.0, 10, gender="Men", colour="Black"),
    "t2": product("Nike Men Black Tee", "Tshirts", 45.0, 0, gender="Men", colour="Black"),
    "t3": product("Puma Men Black Slim T-shirt", "Tshirts", 15.0, 4, gender="Men", colour="Black"),
    "t4": product("Nike Men Blue T-shirt", "Tshirts", 22.0, 8, gender="Men", colour="Blue"),
    "t5": product("Nike Women Black T-shirt", "Tshirts", 30.0, 5, gender="Women", colour="Black"),
    "t6": product("Puma Men Black Polo T-shirt", "Tshirts", 35.0, 3, gender="Men", colour="Black"),
    "t7": product(
        "Puma Men Black V-neck T-shirt", "Tshirts", 12.0, 6, gender="Men", colour="Black"
    ),
    "t8": product("Nike Men Black Dri T-shirt", "Tshirts", 28.0, 2, gender="Men", colour="Black"),
    "s1": product("Nike Men Black Shirt", "Shirts", 40.0, 5, gender="Men", colour="Black"),
    "w1": product("Titan Men Silver Watch", "Watches", 120.0, 7, gender="Men", colour="Silver"),
    "w2": product("Titan Women Gold Watch", "Watches", 110.0, 2, gender="Women", colour="Gold"),
}
for _pid, _meta in PRODUCTS.items():
    _meta["product_id"] = _pid


class FakeStore:
    """`KnowledgeStore.get`, `scan` and `count` over `PRODUCTS`; no articles."""

    def __init__(self) -> None:
        self.reads = 0

    def count(self, kind: CollectionKind) -> int:
        return len(PRODUCTS) if kind == "products" else 0

    def get(
        self, kind: CollectionKind, ids: Sequence[str] | None = None, where: Where | None = None
    ) -> list[Hit]:
        if kind != "products":
            return []
        if ids is None:
            self.reads += 1
        chosen = ids if ids is not None else list(PRODUCTS)
        return [Hit(pid, 0.0, "", dict(PRODUCTS[pid])) for pid in chosen if pid in PRODUCTS]

    def scan(self, kind: CollectionKind) -> Iterator[Hit]:
        return iter(self.get(kind))


class CatalogueOrderRanker:
    """Ranks by catalogue order, honouring the filters as the hybrid searcher does."""

    def __init__(self) -> None:
        self.queries: list[str] = []

    def products(
        self, query: str, k: int = 5, filters: SearchFilters | None = None
    ) -> Sequence[ProductMatch]:
        self.queries.append(query)
        found = [
            ProductMatch(product_id=pid, title=str(meta["title"]), score=1.0, metadata=dict(meta))
            for pid, meta in PRODUCTS.items()
            if filters is None or filters.matches(meta)
        ]
        return found[:k]


class Perception:
    """The intent model misroutes product searches to `order_status`, as a real one may."""

    def sentiment(self, text: str, language: str) -> SentimentResult:
        return SentimentResult(score=0.0, label="neutral", language="en", model="fake")

    def intent(self, text: str, language: str) -> IntentResult:
        found = Intent.ORDER_STATUS if "sell" in text or "order" in text else Intent.OTHER
        return IntentResult(
            intent=found,
            confidence=0.9,
            alternatives=[(found.value, 0.9)],
            model="fake",
            label=found.value,
        )

    def photo(self, image: Image.Image, k: int) -> PhotoEvidence:
        return PhotoEvidence()

    def articles(self, query: str, k: int, language: str | None) -> list[ArticleMatch]:
        return []

    def products(self, query: str, k: int) -> list[ProductHit]:
        return []


@pytest.fixture
def ranker() -> CatalogueOrderRanker:
    return CatalogueOrderRanker()


@pytest.fixture
def engine(ranker: CatalogueOrderRanker) -> Engine:
    store = FakeStore()
    search = CatalogueSearch(ranker, store)
    return Engine(Perception(), store, ConversationMemory("sqlite://"), catalogue=search)


def turn(engine: Engine, text: str, session: str = "s1", **kwargs: object) -> TurnResult:
    return engine.handle_turn(TurnRequest(session_id=session, text=text, **kwargs))


def shown(result: TurnResult) -> list[str]:
    return [card.product_id for card in result.products]


BLACK_TEES = ProductQuery(
    type_term="tshirt",
    type_values=("tshirt",),
    colour="black",
    genders=("men", "unisex"),
    gender_word="men",
)
LAST = SearchMemory(query=BLACK_TEES, shown=["t1", "t2", "t3"], shown_prices=[25.0, 45.0, 15.0])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("the second one", 2),
        ("How much is the 2nd?", 2),
        ("number 3 please", 3),
        ("第二个多少钱", 2),
        ("第3款有货吗", 3),
        ("the last one", -1),
        ("show me more", None),
    ],
)
def test_position_of_a_card(text: str, expected: int | None) -> None:
    assert position(text) == expected


def test_cheaper_lowers_the_price_bound_below_every_item_shown() -> None:
    follow = refinement("any cheaper ones?", ProductQuery(), LAST)
    assert follow is not None and follow.kind == "cheaper"
    assert follow.query.max_price == 14.99 and follow.query.colour == "black"
    assert refinement("更便宜的有吗", ProductQuery(), LAST) is not None


def test_a_price_phrase_replaces_the_bound_instead_of_cheaper() -> None:
    follow = refinement("cheaper than 30?", ProductQuery(max_price=30.0), LAST)
    assert follow is not None and follow.kind == "refine" and follow.query.max_price == 30.0


def test_a_colour_replaces_the_colour_and_keeps_the_rest() -> None:
    follow = refinement("in blue?", ProductQuery(colour="blue"), LAST)
    assert follow is not None and follow.kind == "refine"
    assert follow.query.colour == "blue" and follow.query.type_term == "tshirt"
    assert follow.query.genders == ("men", "unisex")


def test_only_in_stock_and_show_more_and_select() -> None:
    stock = refinement("only in stock", ProductQuery(in_stock=True), LAST)
    assert stock is not None and stock.query.in_stock
    more = refinement("show me more", ProductQuery(), LAST)
    assert more is not None and more.kind == "more"
    picked = refinement("第二个多少钱", ProductQuery(), LAST)
    assert picked is not None and (picked.kind, picked.index) == ("select", 1)
    assert refinement("the 5th one", ProductQuery(), LAST) is None  # only three were shown


def test_card_numbers_run_on_across_pages() -> None:
    page_two = SearchMemory(query=BLACK_TEES, shown=["t8", "t9"], offset=5)
    absolute = refinement("number 6", ProductQuery(), page_two)
    assert absolute is not None and absolute.index == 0
    relative = refinement("the second one", ProductQuery(), page_two)
    assert relative is not None and relative.index == 1


def test_a_new_product_type_is_a_new_search_not_a_follow_up() -> None:
    watches = ProductQuery(type_term="watch", type_values=("watch",), colour="blue")
    assert refinement("blue watches?", watches, LAST) is None
    assert refinement("what is your return policy?", ProductQuery(), LAST) is None


def outcome(total: int, shown_count: int, relaxed: str | None = None) -> SearchOutcome:
    query = BLACK_TEES.model_copy(update={"max_price": 50.0, "in_stock": True})
    facts = CatalogueSearch(CatalogueOrderRanker(), FakeStore()).search("x", query).products
    return SearchOutcome(
        asked=query,
        searched=query,
        relaxed=relaxed,  # type: ignore[arg-type]
        total=total,
        offset=0,
        products=facts[:shown_count],
    )


def test_the_one_sentence_says_what_was_understood_and_found() -> None:
    assert summary_sentence(outcome(12, 5), "en") == (
        "Black t-shirts for men under 50 USD, in stock: 12 found, here are the top 5."
    )
    assert summary_sentence(outcome(12, 5), "zh") == (
        "男士黑色T恤，50 USD以下，有货：共找到 12 件，以下是前 5 件。"
    )
    assert summary_sentence(outcome(0, 0), "en") == (
        "Sorry, we have no black t-shirts for men under 50 USD, in stock."
    )
    relaxed = summary_sentence(outcome(7, 5, "price"), "en")
    assert relaxed.startswith("No black t-shirts for men under 50 USD, in stock found;")
    assert "without the price limit, 7 match" in relaxed


def test_the_catalogue_is_read_again_only_when_the_product_count_changes(
    ranker: CatalogueOrderRanker, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FakeStore()
    search = CatalogueSearch(ranker, store, count_seconds=0)
    search.catalogue()
    search.catalogue()
    assert store.reads == 1
    monkeypatch.setitem(PRODUCTS, "t9", {**PRODUCTS["t1"], "product_id": "t9"})
    assert "t9" in search.catalogue().metadata
    assert store.reads == 2


def test_shown_prices_are_the_stores_not_the_cached_catalogues(
    ranker: CatalogueOrderRanker, monkeypatch: pytest.MonkeyPatch
) -> None:
    search = CatalogueSearch(ranker, FakeStore())
    search.catalogue()
    monkeypatch.setitem(PRODUCTS, "t1", {**PRODUCTS["t1"], "price": 19.0})
    found = search.search("black t-shirts", search.catalogue().parse("black t-shirts"))
    assert found.products[0].product_id == "t1" and found.products[0].price == 19.0


def test_a_misrouted_product_search_lists_matching_products(
    engine: Engine, ranker: CatalogueOrderRanker
) -> None:
    result = turn(engine, "do you sell black t-shirts for men?")
    assert result.intent.intent == Intent.PRODUCT_QUESTION
    assert shown(result) == ["t1", "t2", "t3", "t6", "t7"]
    assert all(card.role == "result" for card in result.products)
    assert result.products[0].image == "images/puma-men-black-t-shirt.jpg"
    assert result.reply.startswith("Black t-shirts for men: 6 found, here are the top 5.")
    assert "This looks like" not in result.reply
    assert result.decision.action == "answer"
    assert result.decision.reasons == [
        "product search: listed the catalogue products that match the request"
    ]
    assert result.search is not None and result.search.total == 6
    assert ranker.queries == ["do you sell black t-shirts for men? black t-shirts men"]


def test_follow_ups_refine_page_and_pick_from_the_last_search(engine: Engine) -> None:
    turn(engine, "do you sell black t-shirts for men?")
    cheaper = turn(engine, "cheaper?")
    # Nothing is below the cheapest shown (12 USD): the price limit is dropped, and said so.
    assert cheaper.search is not None and cheaper.search.relaxed == "price"
    blue = turn(engine, "in blue?")
    assert shown(blue) == ["t4"]
    assert blue.reply.startswith("Blue t-shirts for men: 1 found. 1. Nike Men Blue T-shirt")
    black = turn(engine, "有黑色的吗", lang="en")
    assert shown(black)[0] == "t1"
    more = turn(engine, "show me more")
    assert shown(more) == ["t8"]
    assert "here is number 6" in more.reply
    stock = turn(engine, "only in stock")
    assert "t2" not in shown(stock)
    picked = turn(engine, "the second one")
    assert picked.context_product_id == "t3"
    assert "15.00 USD" in picked.reply and "4 in stock" in picked.reply
    price = turn(engine, "第二个多少钱", lang="zh")
    assert "15.00 USD" in price.reply


def test_order_words_keep_a_message_out_of_product_search(engine: Engine) -> None:
    result = turn(engine, "where is my order of black t-shirts?")
    assert result.search is None and result.products == []


def test_without_a_product_ranker_the_engine_does_not_search() -> None:
    engine = Engine(Perception(), FakeStore(), ConversationMemory("sqlite://"))
    result = turn(engine, "do you sell black t-shirts for men?")
    assert result.search is None


def test_the_last_search_survives_in_the_stored_session() -> None:
    memory = ConversationMemory("sqlite://")
    store = FakeStore()
    engine = Engine(
        Perception(), store, memory, catalogue=CatalogueSearch(CatalogueOrderRanker(), store)
    )
    turn(engine, "do you sell black t-shirts for men?")
    stored = memory.load_state("s1").product_search
    assert stored is not None
    assert stored.query.colour == "black" and stored.query.genders == ("men",)
    assert stored.shown == ["t1", "t2", "t3", "t6", "t7"]
    assert stored.text == "do you sell black t-shirts for men?"


def test_a_photo_turn_ends_the_last_search(engine: Engine) -> None:
    turn(engine, "do you sell black t-shirts for men?")
    photo = io.BytesIO()
    Image.new("RGB", (32, 32), (20, 20, 20)).save(photo, format="PNG")
    turn(engine, "what is this?", image=photo.getvalue())
    assert turn(engine, "the second one").search is None
