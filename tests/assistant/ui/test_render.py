"""The UI's pure helpers: HTML of cards, cited replies and decisions, the key gate."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.api.auth import digest
from assistant.settings import Settings
from assistant.turn.schemas import (
    Citation,
    Decision,
    IntentView,
    ProductCard,
    SentimentView,
    SuggestedReply,
    Ticket,
    TurnResult,
)
from assistant.ui.agent import evidence_status, trend_frame
from assistant.ui.render import (
    citations_html,
    decision_html,
    image_data_url,
    label,
    product_card_html,
    product_cards_html,
    reply_message,
    suggestion_choices,
    ticket_html,
)
from tests.assistant.demo_shop import DEMO

pytestmark = pytest.mark.unit

HOSTILE = '<script>alert("x")</script>'


def card(**overrides: object) -> ProductCard:
    values: dict[str, object] = {
        "product_id": "tee-1",
        "title": "Classic Tee",
        "price": 19.5,
        "currency": "USD",
        "stock": 3,
        "confidence": 0.91,
    }
    return ProductCard.model_validate(values | overrides)


def test_product_card_shows_title_price_stock_and_match() -> None:
    html = product_card_html(card())
    assert "Classic Tee" in html and "19.50 USD" in html
    assert "In stock: 3" in html and "match 91%" in html


def test_product_card_escapes_catalogue_text() -> None:
    html = product_card_html(card(title=HOSTILE, product_id='x" onmouseover="y'))
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert 'onmouseover="y"' not in html


def test_product_card_says_out_of_stock_and_unlisted_price_in_chinese() -> None:
    html = product_card_html(card(stock=0, price=None), language="zh")
    assert label("zh", "out_of_stock") in html and label("zh", "no_price") in html


def test_card_image_is_an_inline_thumbnail_and_a_missing_file_is_no_image(tmp_path: Path) -> None:
    url = image_data_url(DEMO / "images" / "backpack-urban-black.png")
    assert url is not None and url.startswith("data:image/jpeg;base64,")
    assert image_data_url(tmp_path / "missing.png") is None
    assert image_data_url(None) is None
    (tmp_path / "not-an-image.png").write_text("hello")
    assert image_data_url(tmp_path / "not-an-image.png") is None
    assert "no image" in product_card_html(card(image=str(tmp_path / "missing.png")))


def test_candidate_cards_ask_is_it_one_of_these() -> None:
    html = product_cards_html([card(), card(product_id="tee-2")], question=True)
    assert "Is it one of these?" in html and html.count('class="ss-card"') == 2
    assert product_cards_html([]) == ""


def test_cited_reply_keeps_markers_and_puts_each_source_in_a_collapsed_details() -> None:
    citations = [
        Citation(
            number=1, source_id="returns-en", kind="article", title="Returns", snippet="30 days"
        ),
        Citation(number=2, source_id="p", kind="product", title=HOSTILE, snippet=HOSTILE),
    ]
    html = reply_message(f"You have 30 days [1]. {HOSTILE}", citations)
    assert "You have 30 days [1]." in html
    assert html.count("<details") == 2 and "<details open" not in html
    assert "<summary>[1] Returns</summary>" in html
    assert "<script>" not in html
    assert citations_html([]) == ""


def test_decision_lists_escalation_reasons_escaped() -> None:
    decision = Decision(action="escalate", reasons=["customer asked for a person", HOSTILE])
    html = decision_html(decision, "human_agent", 0.9, "negative", -0.7, "summary")
    assert "escalate" in html and "customer asked for a person" in html
    assert "<script>" not in html


def test_suggestions_are_offered_in_rank_order_with_their_citations() -> None:
    choices = suggestion_choices(
        [
            SuggestedReply(rank=2, text="Second"),
            SuggestedReply(rank=1, text="First", citations=[1]),
        ]
    )
    assert choices == [("1. [1] First", "First"), ("2. Second", "Second")]


def turn_result(score: float, trend: float) -> TurnResult:
    return TurnResult(
        session_id="s",
        turn_index=0,
        language="en",
        reply="r",
        sentiment=SentimentView(score=score, label="neutral", trend=trend),
        intent=IntentView(intent="other", confidence=1.0),
        decision=Decision(action="answer"),
    )


def test_trend_frame_has_message_and_trend_per_turn_in_turn_order() -> None:
    results = [turn_result(0.5, 0.5)] + [turn_result(-0.8, -0.1)] * 10
    frame = trend_frame(results)
    assert len(frame) == 22
    assert sorted(set(frame["turn"])) == [f"{n:02d}" for n in range(1, 12)]
    last = frame[frame["turn"] == "11"].set_index("series")["value"]
    assert last["message"] == -0.8 and last["trend"] == -0.1
    assert trend_frame([]).empty and list(trend_frame([]).columns) == ["turn", "value", "series"]
    assert evidence_status(None) == "No evidence for this turn."


def test_staff_tabs_are_open_without_keys_and_need_the_right_key_with_them(tmp_path: Path) -> None:
    from assistant.ui.access import StaffGate

    assert StaffGate(Settings(data_dir=tmp_path)).allows(None, "admin")
    gate = StaffGate(
        Settings(data_dir=tmp_path, api_keys=[digest("agent")], admin_api_keys=[digest("admin")])
    )
    assert not gate.allows(None, "agent") and not gate.allows("wrong", "agent")
    assert gate.allows("agent", "agent") and not gate.allows("agent", "admin")
    assert gate.allows("admin", "agent") and gate.allows("admin", "admin")


def test_candidate_cards_ask_and_similar_cards_say_they_are_not_the_photo() -> None:
    candidates = product_cards_html([card(role="candidate"), card(role="candidate")])
    assert "Is it one of these?" in candidates
    similar = product_cards_html([card(role="similar")], "zh")
    assert "我们在售的相似商品（并非照片中的商品）" in similar and "是其中之一吗" not in similar
    assert "Products" in product_cards_html([card()])


def test_the_ticket_says_what_is_still_needed() -> None:
    waiting = Ticket(
        ticket_type="exchange",
        issue="too small",
        evidence_id="e1",
        missing=["order_reference", "photo"],
    )
    assert "still needed: order number, photo" in ticket_html(waiting)
    assert "still needed" not in ticket_html(waiting.model_copy(update={"missing": []}))
