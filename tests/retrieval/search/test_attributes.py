"""The attribute parser: shopper's words (English, Chinese, typos) → the store's own values."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from retrieval.search.attributes import (
    Catalogue,
    ProductQuery,
    edit_distance,
    normalise,
    parse_price,
    search_catalogue,
)
from retrieval.search.hybrid import SearchFilters
from retrieval.search.types import ProductMatch

pytestmark = pytest.mark.unit


def record(
    product_id: str,
    title: str,
    category: str,
    price: float,
    stock: int,
    **attributes: str,
) -> tuple[str, dict[str, object]]:
    """A product's metadata as the knowledge base stores it."""
    return product_id, {
        "product_id": product_id,
        "title": title,
        "category": category,
        "price": price,
        "stock": stock,
        "in_stock": stock > 0,
        "currency": "USD",
        "attributes": json.dumps(attributes),
    }


# A fashion shop whose titles start with the brand, then the gender ("Puma Men ...").
FASHION = [
    record("t1", "Puma Men Black T-shirt", "Tshirts", 25.0, 10, gender="Men", colour="Black"),
    record("t2", "Nike Men Black Tee", "Tshirts", 45.0, 0, gender="Men", colour="Black"),
    record("t3", "Nike Women Black T-shirt", "Tshirts", 30.0, 5, gender="Women", colour="Black"),
    record("t4", "Puma Unisex Navy T-shirt", "Tshirts", 20.0, 3, gender="Unisex", colour="Navy Blue"),
    record("t5", "Puma Men Blue T-shirt", "Tshirts", 60.0, 8, gender="Men", colour="Blue"),
    record("s1", "Red Tape Men Brown Shoes", "Casual Shoes", 80.0, 4, gender="Men", colour="Brown"),
    record("s2", "Red Tape Men Black Shoes", "Formal Shoes", 95.0, 2, gender="Men", colour="Black"),
    record("s3", "Nike Women White Sneakers", "Sports Shoes", 70.0, 9, gender="Women", colour="White"),
    record("h1", "Catwalk Women Red Heels", "Heels", 40.0, 1, gender="Women", colour="Red", sub_category="Shoes"),
    record("d1", "Nike Women Red Dress", "Dresses", 55.0, 6, gender="Women", colour="Red"),
    record("w1", "Titan Men Silver Watch", "Watches", 120.0, 7, gender="Men", colour="Silver"),
    record("w2", "Titan Women Gold Watch", "Watches", 110.0, 0, gender="Women", colour="Gold"),
    record("j1", "Levis Men Blue Jeans", "Jeans", 49.0, 12, gender="Men", colour="Blue"),
    record("j2", "Levis Women Off White Jeans", "Jeans", 52.0, 3, gender="Women", colour="Off White"),
]  # fmt: skip
# A shop whose categories are broad and whose `kind` attribute says what each item is.
DEMO = [
    record("tee-white", "Classic Crew Tee – White", "clothing", 19.99, 120, kind="t-shirt", color="white", sizes="XS, S, M, L"),
    record("tee-navy", "Classic Crew Tee – Navy", "clothing", 19.99, 85, kind="t-shirt", color="navy blue", sizes="S, M, L, XL"),
    record("jacket", "Classic Denim Jacket", "clothing", 89.0, 30, kind="jacket", color="denim blue"),
    record("runner", "CloudStep Running Sneaker – Black", "shoes", 89.0, 37, kind="running sneaker", color="black"),
    record("boot", "Leather Chelsea Boot – Brown", "shoes", 149.0, 0, kind="chelsea boot", color="brown"),
]  # fmt: skip


@pytest.fixture(scope="module")
def fashion() -> Catalogue:
    return Catalogue(FASHION)


@pytest.fixture(scope="module")
def demo() -> Catalogue:
    return Catalogue(DEMO)


def test_words_are_normalised_to_singular_without_hyphens() -> None:
    assert normalise("T-Shirts") == "tshirt"
    assert normalise("Casual Shoes") == "casual shoe"
    assert normalise("Dresses") == "dress"
    assert normalise("Watches") == "watch"
    assert normalise("Ties") == "tie"
    assert normalise("men's") == "men"


def test_edit_distance_counts_a_swap_once() -> None:
    assert edit_distance("blak", "black") == 1
    assert edit_distance("balck", "black") == 1
    assert edit_distance("shirt", "skirt") == 1
    assert edit_distance("watch", "jeans") == 3


def test_the_black_t_shirts_for_men_question_becomes_three_constraints(fashion: Catalogue) -> None:
    query = fashion.parse("do you sell black t-shirts for men?")
    assert query.type_term == "tshirt"
    assert query.type_values == ("tshirt",)
    assert query.colour == "black"
    assert query.genders == ("men", "unisex")
    assert query.describe("en", "USD") == "Black t-shirts for men"
    assert query.describe("zh", "USD") == "男士黑色T恤"


@pytest.mark.parametrize(
    ("text", "type_term", "colour", "gender"),
    [
        ("男士黑色T恤", "tshirt", "black", "men"),
        ("有没有女士红色连衣裙", "dress", "red", "women"),
        ("白色运动鞋 女", "sport shoe", "white", "women"),
        ("男款手表", "watch", None, "men"),
        ("蓝色牛仔裤", "jean", "blue", None),
        ("女鞋", "shoe", None, "women"),
    ],
)
def test_chinese_type_colour_and_gender_words(
    fashion: Catalogue, text: str, type_term: str, colour: str | None, gender: str | None
) -> None:
    query = fashion.parse(text)
    assert (query.type_term, query.colour, query.gender_word) == (type_term, colour, gender)


@pytest.mark.parametrize(
    ("text", "type_term", "colour"),
    [
        ("blak tshrt", "tshirt", "black"),
        ("jeens for wmen", "jean", None),
        ("sneakrs in whte", "sneaker", "white"),
        ("red dresss", "dress", "red"),
        ("silver wach", "watch", "silver"),
    ],
)
def test_typos_one_edit_away_are_read_as_the_word(
    fashion: Catalogue, text: str, type_term: str, colour: str | None
) -> None:
    query = fashion.parse(text)
    assert (query.type_term, query.colour) == (type_term, colour)


def test_a_typo_of_women_is_not_read_as_men(fashion: Catalogue) -> None:
    assert fashion.parse("jeens for wmen").gender_word == "women"


def test_shoes_means_every_kind_of_shoe_and_sports_shoes_only_those(fashion: Catalogue) -> None:
    every = fashion.filters(fashion.parse("shoes"))
    assert selected(fashion, every) == {"s1", "s2", "s3", "h1"}
    sports = fashion.filters(fashion.parse("sports shoes"))
    assert sports is not None and sports.categories == {"Sports Shoes"}
    assert sports.product_ids is None


def test_synonyms_reach_the_store_values(fashion: Catalogue, demo: Catalogue) -> None:
    assert fashion.parse("any tees?").type_values == ("tshirt",)
    assert fashion.parse("sneakers").type_values == ("casual shoe", "sport shoe")
    # The demo shop files t-shirts under "clothing" with `kind: t-shirt`.
    assert demo.parse("t-shirts").type_values == ("tshirt",)
    assert set(demo.parse("sneakers").type_values) == {"running sneaker"}


def test_brands_come_from_the_titles_when_they_lead_with_brand_and_gender(
    fashion: Catalogue, demo: Catalogue
) -> None:
    assert fashion.parse("Puma t-shirts").brand == "Puma"
    # Two words, and "red" is part of the brand, not a colour.
    red_tape = fashion.parse("red tape shoes")
    assert (red_tape.brand, red_tape.colour) == ("Red Tape", None)
    # Demo titles have no brand-then-gender pattern: "Classic" is no brand.
    assert demo.parse("classic tee").brand is None


def test_a_brand_attribute_wins_over_titles() -> None:
    catalogue = Catalogue(
        [
            record("a", "Men Runner", "shoes", 50.0, 1, brand="Fleetfoot"),
            record("b", "Women Runner", "shoes", 50.0, 1, brand="Fleetfoot"),
        ]
    )
    assert catalogue.parse("fleetfoot shoes").brand == "Fleetfoot"


@pytest.mark.parametrize(
    ("text", "bounds"),
    [
        ("black t-shirts under 50", (None, 50.0)),
        ("below $30", (None, 30.0)),
        ("cheaper than 30", (None, 30.0)),
        ("between 20 and 40", (20.0, 40.0)),
        ("$20-$40", (20.0, 40.0)),
        ("20 to 40 dollars", (20.0, 40.0)),
        ("over 100", (100.0, None)),
        ("at least 25.5", (25.5, None)),
        ("around 50", (40.0, 60.0)),
        ("50元以下的鞋", (None, 50.0)),
        ("100以内", (None, 100.0)),
        ("不超过80块", (None, 80.0)),
        ("200元以上", (200.0, None)),
        ("20到40元", (20.0, 40.0)),
        ("size 42 shoes", (None, None)),
        ("3天内能到吗", (None, None)),
        ("20L backpack", (None, None)),
    ],
)
def test_price_phrases(text: str, bounds: tuple[float | None, float | None]) -> None:
    assert parse_price(text) == bounds


def test_in_stock_and_size(demo: Catalogue) -> None:
    query = demo.parse("white tee in size XL, in stock")
    assert query.in_stock and query.size == "XL" and query.colour == "white"
    assert demo.parse("有货的T恤").in_stock
    assert demo.parse("T恤 L码").size == "L"
    assert demo.parse("what sizes do you have?").size is None


def test_sizes_filter_only_products_that_list_sizes(demo: Catalogue) -> None:
    assert selected(demo, demo.filters(demo.parse("t-shirts in size XS"))) == {"tee-white"}


def selected(catalogue: Catalogue, filters: SearchFilters | None) -> set[str]:
    assert filters is not None
    return {pid for pid, meta in catalogue.metadata.items() if filters.matches(meta)}


def test_unisex_items_suit_men_but_not_boys(fashion: Catalogue) -> None:
    filters = fashion.filters(fashion.parse("t-shirts for men"))
    assert selected(fashion, filters) == {"t1", "t2", "t4", "t5"}


def test_filters_are_the_predicate_both_search_sides_apply(fashion: Catalogue) -> None:
    query = fashion.parse("black t-shirts for men under 50 in stock")
    filters = fashion.filters(query)
    assert filters is not None
    assert filters.max_price == 50.0 and filters.in_stock is True
    assert fashion.count(filters) == 1  # t2 is sold out, t3 is for women, t4 is navy
    assert filters.matches(dict(FASHION[0][1]))


def test_a_colour_word_matches_the_store_colours_it_ends(fashion: Catalogue) -> None:
    assert selected(fashion, fashion.filters(fashion.parse("blue t-shirts"))) == {"t4", "t5"}
    # "off" only qualifies "off white": "30% off" names no colour.
    assert fashion.parse("30% off jeans").colour is None


def test_nothing_matching_relaxes_the_least_important_constraint(fashion: Catalogue) -> None:
    query = fashion.parse("black t-shirts for men under 10")
    assert fashion.filters(query) is None
    relaxed, searched, filters = fashion.relaxed(query)
    assert relaxed == "price" and searched.max_price is None
    assert filters is not None and fashion.count(filters) == 2


def test_a_shop_without_genders_ignores_gender_words(demo: Catalogue) -> None:
    query = demo.parse("t-shirts for men")
    assert query.genders == () and query.gender_word is None
    assert query.names_product()


def test_a_message_without_product_words_names_no_product(fashion: Catalogue) -> None:
    for text in (
        "where is my order 12345?",
        "我的包裹到哪了",
        "hello",
        "what is your return policy",
    ):
        assert not fashion.parse(text).names_product(), text


def test_describe_reads_back_price_stock_and_brand() -> None:
    query = ProductQuery(
        type_term="tshirt",
        type_values=("tshirt",),
        colour="black",
        genders=("men", "unisex"),
        gender_word="men",
        brand="Nike",
        max_price=50.0,
        in_stock=True,
    )
    assert query.describe("en", "USD") == "Nike black t-shirts for men under 50 USD, in stock"
    assert query.describe("zh", "USD") == "Nike男士黑色T恤，50 USD以下，有货"


class ListRanker:
    """Ranks by catalogue order, honouring the filters as the hybrid searcher does."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self.queries: list[str] = []

    def products(
        self, query: str, k: int = 5, filters: SearchFilters | None = None
    ) -> Sequence[ProductMatch]:
        self.queries.append(query)
        return [
            ProductMatch(product_id=pid, title=str(meta["title"]), score=1.0)
            for pid, meta in self.catalogue.metadata.items()
            if filters is None or filters.matches(meta)
        ][:k]


def test_search_ranks_with_the_english_words_understood(fashion: Catalogue) -> None:
    ranker = ListRanker(fashion)
    result = search_catalogue(fashion, ranker, "男士黑色T恤", fashion.parse("男士黑色T恤"), k=5)
    assert result.product_ids == ["t1", "t2"] and result.total == 2
    assert ranker.queries == ["男士黑色T恤 black t-shirts men"]
    second_page = search_catalogue(fashion, ranker, "shoes", fashion.parse("shoes"), offset=2, k=2)
    assert second_page.product_ids == ["s3", "h1"]
