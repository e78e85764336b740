"""The grounded responder: what it says, what it cites, and that it never states a figure its
sources do not contain."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import pytest

from assistant.perception.intents import Intent
from assistant.turn.responder import (
    ProductFacts,
    Reply,
    ResponderInput,
    best_sentences,
    compose,
    product_asks,
    requested_colour,
)
from assistant.turn.schemas import Action, Decision
from retrieval.search.types import ArticleMatch

pytestmark = pytest.mark.unit

BACKPACK = ProductFacts(
    product_id="backpack-black",
    title="Urban Backpack",
    title_zh="城市背包",
    category="bags",
    price=79.0,
    stock=12,
    attributes={"kind": "backpack", "color": "black", "sizes": "S, M, L"},
)
BLUE_BACKPACK = ProductFacts(
    product_id="backpack-blue",
    title="Urban Backpack Blue",
    title_zh="城市背包（蓝色）",
    category="bags",
    price=81.5,
    stock=0,
    attributes={"kind": "backpack", "color": "blue"},
)
RETURNS = ArticleMatch(
    chunk_id="returns-en#0",
    article_id="returns-en",
    title="Returns",
    text="# Returns\nYou can return any item within 30 days of delivery. "
    "Refunds reach your card within 5 business days. We love hearing from you.",
    score=0.9,
)
RETURNS_ZH = ArticleMatch(
    chunk_id="returns-zh#0",
    article_id="returns-zh",
    title="退货政策",
    text="签收后30天内可以无理由退货。退款将在5个工作日内退回原支付账户。",
    score=0.9,
    language="zh",
)


def reply(
    question: str,
    action: Action = "answer",
    intent: Intent = Intent.PRODUCT_QUESTION,
    language: str = "en",
    *,
    upset: bool = False,
    product: ProductFacts | None = None,
    variants: Sequence[ProductFacts] = (),
    candidates: Sequence[ProductFacts] = (),
    articles: Sequence[ArticleMatch] = (),
) -> Reply:
    """The reply to `question` under a decision of `action` (its one reason: "because")."""
    return compose(
        ResponderInput(
            language=language,
            intent=intent,
            question=question,
            decision=Decision(action=action, reasons=["because"]),
            upset=upset,
            product=product,
            variants=list(variants),
            candidates=list(candidates),
            articles=list(articles),
        )
    )


def test_a_product_answer_states_the_catalogue_price_and_cites_it() -> None:
    result = reply("How much is it?", product=BACKPACK)
    assert result.text == "It costs 79.00 USD [1]."
    [citation] = result.citations
    assert (citation.number, citation.source_id, citation.kind) == (1, "backpack-black", "product")
    assert "price 79.00 USD" in citation.snippet


def test_a_photo_match_is_named_with_its_price_and_stock() -> None:
    result = reply("", intent=Intent.FIND_BY_PHOTO, product=BACKPACK)
    assert result.text == (
        "This looks like the Urban Backpack [1]. It costs 79.00 USD [1]. "
        "It is in stock (12 available) [1]."
    )


def test_a_missing_catalogue_field_is_said_to_be_missing() -> None:
    unpriced = ProductFacts(product_id="p", title="Plain Tee")
    result = reply("How much is it, and is it in stock? What material?", product=unpriced)
    assert "Its price is not listed in our catalogue." in result.text
    assert "Its stock level is not listed." in result.text
    assert "Our catalogue doesn't list its material." in result.text


def test_an_out_of_stock_product_says_so() -> None:
    assert "currently out of stock [1]" in reply("Is it available?", product=BLUE_BACKPACK).text


def test_sizes_come_from_the_catalogue_attributes() -> None:
    assert "Sizes: S, M, L [1]." in reply("What sizes does it come in?", product=BACKPACK).text


def test_clarify_lists_the_candidates_and_states_no_price() -> None:
    result = reply("What is this?", action="clarify", candidates=[BACKPACK, BLUE_BACKPACK])
    assert result.text == (
        "I'm not completely sure which product is in your photo. Is it one of these? "
        "1. Urban Backpack; 2. Urban Backpack Blue. "
        "Reply with its number or name and I'll tell you its details."
    )
    assert result.citations == []
    assert not re.search(r"\d+\.\d\d", result.text)


def test_clarify_without_candidates_asks_which_product_or_order() -> None:
    result = reply("hmm", action="clarify")
    assert result.text == "To answer precisely: which product or order do you mean?"


def test_a_colour_question_offers_a_variant_with_its_own_citation() -> None:
    result = reply("Do you have it in blue?", product=BACKPACK, variants=[BLUE_BACKPACK])
    assert result.text == "Yes: the Urban Backpack Blue comes in blue, 81.50 USD [2]."
    assert [c.source_id for c in result.citations] == ["backpack-black", "backpack-blue"]


def test_a_colour_the_catalogue_lacks_is_said_to_be_missing() -> None:
    result = reply("Do you have it in red?", product=BACKPACK, variants=[BLUE_BACKPACK])
    assert result.text == "Sorry, I can't find it in red in our catalogue; this one is black [1]."


def test_an_article_answer_quotes_the_sentences_that_match_the_question() -> None:
    result = reply(
        "How many days do I have to return an item?",
        intent=Intent.RETURN_REFUND,
        articles=[RETURNS],
    )
    assert result.text.startswith("According to our policy: ")
    assert "within 30 days of delivery" in result.text and result.text.endswith("[1]")
    assert "We love hearing from you" not in result.text
    assert result.citations[0].source_id == "returns-en"


def test_nothing_retrieved_says_so_and_offers_a_person() -> None:
    result = reply("Do you ship to Mars?", intent=Intent.OTHER)
    assert result.text.startswith("I'm sorry, I couldn't find the answer to that")
    assert "connect you with a colleague" in result.text
    assert result.citations == []


def test_an_upset_customer_gets_an_apology_first() -> None:
    result = reply("How much is it?", product=BACKPACK, upset=True)
    assert result.text == "I'm sorry about the trouble. It costs 79.00 USD [1]."


def test_an_escalation_says_a_person_takes_over() -> None:
    result = reply("I want a person now", action="escalate", intent=Intent.HUMAN_AGENT)
    assert result.text == (
        "I'm sorry about this. I'm handing your conversation to a colleague now, with priority."
    )
    assert result.suggestions[2].rationale == "take over: because"


def test_chinese_product_replies_use_the_chinese_title() -> None:
    result = reply("", intent=Intent.FIND_BY_PHOTO, language="zh", product=BACKPACK)
    assert (
        result.text
        == "这看起来是「城市背包」[1]。售价为 79.00 USD [1]。目前有货（库存 12 件）[1]。"
    )


def test_chinese_clarify_and_policy_answers() -> None:
    clarify = reply(
        "这是什么？", action="clarify", language="zh", candidates=[BACKPACK, BLUE_BACKPACK]
    )
    assert clarify.text == (
        "我不太确定照片里是哪件商品，是以下其中之一吗？1. 城市背包；2. 城市背包（蓝色）。"
        "请回复序号或商品名称，我再告诉您它的详细信息。"
    )
    policy = reply(
        "退货要多少天？", intent=Intent.RETURN_REFUND, language="zh", articles=[RETURNS_ZH]
    )
    assert policy.text.startswith("根据我们的政策：")
    assert "30天内可以无理由退货" in policy.text


def test_chinese_upset_and_unanswered_replies() -> None:
    result = reply("你们怎么这样", intent=Intent.COMPLAINT, language="zh", upset=True)
    assert result.text.startswith("非常抱歉给您带来不便。抱歉，我在我们的帮助中心里没有找到")


def test_the_three_suggestions_are_the_reply_a_warmer_one_and_a_next_step() -> None:
    result = reply("Can I return it?", intent=Intent.RETURN_REFUND, articles=[RETURNS])
    first, warmer, next_step = result.suggestions
    assert [s.rank for s in result.suggestions] == [1, 2, 3]
    assert first.text == result.text and first.citations == [1]
    assert warmer.text == "Thanks for your patience! " + result.text
    assert "order number" in next_step.text and next_step.citations == []


def test_other_intents_close_the_loop() -> None:
    result = reply("How much is it?", product=BACKPACK)
    assert result.suggestions[2].text == "Is there anything else I can help you with?"


NUMBER = re.compile(r"\d+(?:\.\d+)?")


@pytest.mark.parametrize(
    ("question", "fields"),
    [
        ("How much is it? Is it in stock?", {"product": BACKPACK}),
        ("Do you have it in blue?", {"product": BACKPACK, "variants": [BLUE_BACKPACK]}),
        ("What sizes are there?", {"product": BACKPACK}),
        ("How long do refunds take after I return it?", {"articles": [RETURNS]}),
        ("退款多久到账？", {"articles": [RETURNS_ZH]}),
        ("How much is the delivery to Norway, 3 or 5 days?", {}),
    ],
)
def test_every_figure_in_a_reply_comes_from_a_source(question: str, fields: dict[str, Any]) -> None:
    result = reply(question, language="zh" if "退" in question else "en", **fields)
    without_markers = re.sub(r"\[\d+\]", "", result.text)
    sources = " ".join(c.snippet for c in result.citations)
    for figure in NUMBER.findall(without_markers):
        assert figure in sources, f"{figure!r} in {result.text!r} is not in {sources!r}"


def test_product_asks_and_requested_colour_read_the_question() -> None:
    assert product_asks("How much is it and do you have it in blue?") == ["price", "colour"]
    assert product_asks("有货吗？什么材质？") == ["stock", "material"]
    assert requested_colour("do you have it in navy?") == "navy"
    assert requested_colour("有蓝色的吗") == "blue"
    assert requested_colour("any other colours?") is None


def test_best_sentences_skip_headings_and_prefer_figures_on_a_tie() -> None:
    text = "# Shipping\nWe ship worldwide from our warehouse. We ship in 3 days from our warehouse."
    assert best_sentences(text, "ship from warehouse", limit=1) == [
        "We ship in 3 days from our warehouse."
    ]
    assert best_sentences("short.", "anything") == []
