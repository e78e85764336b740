"""Every path of `decide`: answer, clarify or escalate, each with the reason it gives."""

from __future__ import annotations

from dataclasses import replace

import pytest

from assistant.perception.intents import Intent
from assistant.turn.policy import (
    PolicyInput,
    PolicyThresholds,
    asks_for_human,
    decide,
    escalation_score,
    mentions_order,
    risk_terms,
    routes_to_product_search,
)

pytestmark = pytest.mark.unit

CALM = PolicyInput(
    text="How long does delivery take?",
    intent=Intent.SHIPPING_DELIVERY,
    intent_confidence=0.9,
    sentiment_score=0.0,
    sentiment_trend=0.0,
    consecutive_negative=0,
    unresolved_count=0,
    photo_given=False,
    photo_confident=False,
    has_answer=True,
    ambiguous=False,
)
THRESHOLD = PolicyThresholds().escalation_score


def test_a_calm_answered_question_gets_a_grounded_answer() -> None:
    decision = decide(CALM)
    assert decision.action == "answer"
    assert decision.reasons == ["grounded answer from the cited sources"]
    assert decision.escalation_score == 0.0


def test_a_question_nothing_answers_says_so_and_offers_a_person() -> None:
    decision = decide(replace(CALM, has_answer=False))
    assert decision.action == "answer"
    assert decision.reasons == [
        "no source in the knowledge base answers this: said so and offered a human agent"
    ]


def test_an_unsure_photo_asks_which_product() -> None:
    decision = decide(replace(CALM, photo_given=True, photo_confident=False))
    assert decision.action == "clarify"
    assert decision.reasons == [
        "the photo matches several products and none clearly enough: asking which one"
    ]


def test_a_confident_photo_is_answered() -> None:
    assert decide(replace(CALM, photo_given=True, photo_confident=True)).action == "answer"


def test_a_vague_question_asks_one_question() -> None:
    decision = decide(replace(CALM, text="hmm", ambiguous=True, has_answer=False))
    assert decision.action == "clarify"
    assert decision.reasons == [
        "the question is too vague to answer from the knowledge base: asking one question"
    ]


@pytest.mark.parametrize(
    "text",
    [
        "Can I speak to someone?",
        "I want a real person",
        "get me your manager",
        "转人工",
        "我要找真人",
    ],
)
def test_asking_for_a_person_in_words_escalates(text: str) -> None:
    assert asks_for_human(text)
    decision = decide(replace(CALM, text=text))
    assert decision.action == "escalate"
    assert decision.reasons == ["the customer asked to talk to a person"]
    assert decision.escalation_score >= THRESHOLD


def test_ordinary_questions_do_not_ask_for_a_person() -> None:
    assert not asks_for_human("How long does delivery take?")
    assert not asks_for_human("这个多少钱？")


def test_the_human_intent_escalates_only_above_its_confidence() -> None:
    sure = replace(CALM, text="please transfer me", intent=Intent.HUMAN_AGENT)
    assert decide(replace(sure, intent_confidence=0.5)).action == "escalate"
    assert decide(replace(sure, intent_confidence=0.49)).action == "answer"
    strict = PolicyThresholds(human_intent_confidence=0.8)
    assert decide(replace(sure, intent_confidence=0.7), strict).action == "answer"


def test_risk_words_escalate_and_are_named_in_the_reason() -> None:
    decision = decide(replace(CALM, text="This is a SCAM, my lawyer will hear about it"))
    assert decision.action == "escalate"
    assert decision.reasons == ["legal, safety or fraud words: lawyer, scam"]
    assert decision.escalation_score >= THRESHOLD


def test_risk_terms_are_found_in_english_and_chinese() -> None:
    assert risk_terms("The charger caught fire and I got burned") == ["burned", "fire"]
    assert risk_terms("充电器冒烟了，我要报警") == ["冒烟", "报警"]
    assert risk_terms("Where is my parcel?") == []


def test_a_negative_trend_escalates_only_with_a_streak() -> None:
    angry = replace(CALM, sentiment_score=-0.9, sentiment_trend=-0.5)
    decision = decide(replace(angry, consecutive_negative=2))
    assert decision.action == "escalate"
    assert decision.reasons == ["sentiment has been negative for 2 turns (trend -0.50 ≤ -0.35)"]
    assert decide(replace(angry, consecutive_negative=1)).action == "answer"
    assert decide(replace(angry, sentiment_trend=-0.3, consecutive_negative=3)).action == "answer"


def test_a_request_still_unresolved_after_repeats_escalates() -> None:
    decision = decide(replace(CALM, intent=Intent.ORDER_STATUS, unresolved_count=2))
    assert decision.action == "escalate"
    assert decision.reasons == ["the same request (order_status) is still unresolved after 2 tries"]
    assert decide(replace(CALM, unresolved_count=1)).action == "answer"


def test_every_escalation_rule_that_fires_adds_its_reason_in_order() -> None:
    decision = decide(
        replace(
            CALM,
            text="Get me a manager or I call the police",
            sentiment_score=-0.9,
            sentiment_trend=-0.6,
            consecutive_negative=3,
            unresolved_count=2,
        )
    )
    assert [reason.split(" ")[0] for reason in decision.reasons] == [
        "the",
        "legal,",
        "sentiment",
        "the",
    ]
    assert decision.reasons[0] == "the customer asked to talk to a person"
    assert decision.escalation_score == 1.0


def test_escalation_wins_over_asking_about_an_unsure_photo() -> None:
    decision = decide(
        replace(
            CALM, text="I want a refund, this is fraud", photo_given=True, photo_confident=False
        )
    )
    assert decision.action == "escalate"


def test_custom_thresholds_change_when_a_streak_escalates() -> None:
    lenient = PolicyThresholds(angry_trend=-0.8, angry_streak=4, unresolved_repeats=5)
    angry = replace(CALM, sentiment_trend=-0.6, consecutive_negative=3, unresolved_count=4)
    assert decide(angry, lenient).action == "answer"
    assert decide(angry).action == "escalate"


@pytest.mark.parametrize(
    ("signals", "crosses"),
    [
        ({"p_human": 1.0}, True),
        ({"risk": True}, True),
        ({"sentiment_score": -1.0, "trend": -0.6}, True),
        ({"unresolved": 3}, True),
        ({"sentiment_score": -1.0}, False),
        ({"p_complaint": 1.0}, False),
        ({"trend": -1.0}, False),
        ({"p_human": 0.5, "p_complaint": 0.5}, False),
    ],
)
def test_one_strong_signal_crosses_the_escalation_threshold_and_weak_ones_do_not(
    signals: dict[str, float], crosses: bool
) -> None:
    values: dict[str, float] = {"sentiment_score": 0.0, "p_human": 0.0, "p_complaint": 0.0}
    values.update(signals)
    score = escalation_score(
        values["sentiment_score"],
        values["p_human"],
        values["p_complaint"],
        bool(values.get("risk", False)),
        values.get("trend", 0.0),
        int(values.get("unresolved", 0)),
    )
    assert (score >= THRESHOLD) is crosses


def test_the_escalation_score_weighs_its_signals_and_stays_in_zero_to_one() -> None:
    assert escalation_score(-0.4, 0.0, 0.8, False, -0.2, 1) == pytest.approx(0.64)
    assert escalation_score(-1.0, 1.0, 1.0, True, -1.0, 3) == 1.0
    assert escalation_score(1.0, 0.0, 0.0, False, 1.0, 0) == 0.0
    assert escalation_score(0.0, 0.0, 0.0, False, 0.0, 10) == escalation_score(
        0.0, 0.0, 0.0, False, 0.0, 3
    )


def test_a_decision_reports_its_escalation_score_to_three_decimals() -> None:
    decision = decide(replace(CALM, sentiment_score=-0.123456, p_complaint=0.1))
    assert decision.escalation_score == round(0.35 * 0.123456 + 0.25 * 0.1, 3)


@pytest.mark.parametrize(
    ("text", "names_product", "narrowed", "asks_facts", "expected"),
    [
        # The intent model may call this order_status; the parsed type makes it a search.
        ("do you sell black t-shirts for men?", True, True, False, True),
        ("有没有男士黑色T恤", True, True, False, True),
        ("t-shirts", True, False, False, True),
        ("any backpacks under 50?", True, True, True, True),
        ("do you have jeans, how much are they?", True, False, True, True),
        # One product's facts, nothing but its type: stays a question about that product.
        ("How much is the backpack?", True, False, True, False),
        # Order and case words win over product words.
        ("where is my order of black t-shirts?", True, True, False, False),
        ("my t-shirt arrived torn", True, False, False, False),
        ("我的T恤订单到哪了", True, False, False, False),
        ("I bought black jeans last week and they shrank", True, True, False, False),
        # How-to questions belong to the help centre.
        ("How do I wash my jeans?", True, False, False, False),
        ("牛仔裤怎么洗", True, False, False, False),
        ("what is your return policy?", False, False, False, False),
    ],
)
def test_product_search_routing(
    text: str, names_product: bool, narrowed: bool, asks_facts: bool, expected: bool
) -> None:
    assert routes_to_product_search(text, names_product, narrowed, asks_facts, False) is expected


def test_a_photo_is_never_routed_to_text_product_search() -> None:
    assert not routes_to_product_search("black t-shirts?", True, True, False, photo=True)


def test_order_words_in_both_languages() -> None:
    assert mentions_order("I want a refund") and mentions_order("快递到哪了")
    assert not mentions_order("do you sell shoes?")


def test_a_product_search_answers_with_its_own_reason() -> None:
    decision = decide(replace(CALM, has_answer=True, product_search=True))
    assert decision.action == "answer"
    assert decision.reasons == [
        "product search: listed the catalogue products that match the request"
    ]
