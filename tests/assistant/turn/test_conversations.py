"""Scripted conversations on the demo shop, through the real engine, models and Chroma store."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from assistant.components import Components
from assistant.settings import Settings
from assistant.turn.engine import Engine
from assistant.turn.schemas import TurnRequest, TurnResult
from tests.assistant.demo_shop import DEMO, customer_photo

pytestmark = pytest.mark.integration


def ambiguous_photo(first: str, second: str) -> bytes:
    """Half one product, half another: no single product should match it confidently."""
    a = Image.open(DEMO / "images" / f"{first}.png").convert("RGB")
    b = Image.open(DEMO / "images" / f"{second}.png").convert("RGB").resize(a.size)
    buffer = io.BytesIO()
    Image.blend(a, b, 0.5).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def turn(engine: Engine, session: str, text: str = "", **kwargs: object) -> TurnResult:
    return engine.handle_turn(TurnRequest(session_id=session, text=text, **kwargs))


def cited(result: TurnResult) -> list[str]:
    return [c.source_id for c in result.citations]


def test_photo_then_price_then_return_policy_in_english(engine: Engine) -> None:
    first = turn(
        engine, "en-photo", "Hi, what is this?", image=customer_photo("backpack-urban-black")
    )
    assert first.decision.action == "answer"
    assert first.products[0].product_id == "backpack-urban-black"
    assert "backpack-urban-black" in cited(first)

    price = turn(engine, "en-photo", "How much is it?")
    assert "79.00" in price.reply and "backpack-urban-black" in cited(price)

    policy = turn(engine, "en-photo", "And what is your return policy?")
    assert policy.decision.action == "answer"
    assert "returns-policy-en" in cited(policy)
    assert "30" in policy.reply


def test_photo_then_price_then_return_policy_in_chinese(engine: Engine) -> None:
    first = turn(engine, "zh-photo", "你好，这是什么？", image=customer_photo("mug-stoneware-blue"))
    assert first.language == "zh"
    assert first.products[0].product_id == "mug-stoneware-blue"
    price = turn(engine, "zh-photo", "这个多少钱？")
    assert "14.00" in price.reply
    policy = turn(engine, "zh-photo", "退货政策是什么？")
    assert any(source.endswith("-zh") for source in cited(policy))
    assert "30" in policy.reply


def test_unsure_photo_asks_which_product_then_answers_the_pick(engine: Engine) -> None:
    unsure = turn(
        engine,
        "carousel",
        "Do you have this?",
        image=ambiguous_photo("lamp-desk-arc-black", "cushion-velvet-mustard"),
    )
    assert unsure.decision.action == "clarify"
    assert 3 <= len(unsure.products) <= 5
    assert "one of these" in unsure.reply
    picked = unsure.products[0].product_id
    answer = turn(engine, "carousel", "", chosen_product_id=picked)
    assert answer.decision.action == "answer"
    assert picked in cited(answer)


def test_angry_trend_escalates_with_reasons(engine: Engine) -> None:
    turn(engine, "angry", "My order is late and this is really annoying.")
    turn(engine, "angry", "This is terrible service, I'm very disappointed and angry.")
    last = turn(engine, "angry", "Awful. Worst shop ever, I hate this, nothing works!")
    assert last.decision.action == "escalate"
    assert any("negative" in reason for reason in last.decision.reasons)
    assert last.sentiment.trend < 0


def test_explicit_request_for_a_human_escalates(engine: Engine) -> None:
    result = turn(engine, "human", "I want to talk to a human, please.")
    assert result.decision.action == "escalate"
    assert any("person" in reason for reason in result.decision.reasons)
    chinese = turn(engine, "human-zh", "我要转人工客服")
    assert chinese.decision.action == "escalate"


def test_faq_answer_cites_its_article(engine: Engine) -> None:
    result = turn(engine, "faq", "Which payment methods do you accept?")
    assert result.decision.action == "answer"
    assert "payment-methods-en" in cited(result)
    assert result.citations[0].snippet


def test_unanswerable_question_says_it_does_not_know_and_offers_a_human(engine: Engine) -> None:
    result = turn(
        engine, "unknown", "Can you deliver my parcel to the International Space Station by drone?"
    )
    assert result.citations == []
    assert "couldn't find" in result.reply and "colleague" in result.reply
    assert any("no source" in reason for reason in result.decision.reasons)


def test_follow_up_about_colour_resolves_to_the_product_in_context(engine: Engine) -> None:
    turn(engine, "follow", "", image=customer_photo("backpack-urban-black"))
    english = turn(engine, "follow", "Do you have it in blue?")
    assert "backpack-urban-blue" in cited(english)
    turn(engine, "follow-zh", "", image=customer_photo("backpack-urban-black"))
    chinese = turn(engine, "follow-zh", "这个有蓝色的吗？")
    assert "backpack-urban-blue" in cited(chinese)


def test_damaged_item_photo_prefills_a_ticket(engine: Engine) -> None:
    result = turn(
        engine,
        "damaged",
        "The zipper arrived broken, order #A12345. Contact me at jane@example.com",
        image=customer_photo("backpack-urban-black"),
    )
    assert result.ticket is not None
    assert result.ticket.product_id == "backpack-urban-black"
    assert result.ticket.order_reference == "A12345"
    assert result.ticket.policy_article_id == "damaged-or-wrong-item-en"
    assert "jane@example.com" not in result.ticket.issue
    assert result.ticket.evidence_id == result.evidence_id


def test_sessions_survive_a_restart_and_can_be_deleted(
    components: Components, data_dir: Path
) -> None:
    turn(components.engine, "restart", "", image=customer_photo("mug-stoneware-white"))
    fresh = Components(Settings(data_dir=data_dir, text_embedder="e5"), progress=False)
    price = turn(fresh.engine, "restart", "how much is it?")
    assert "14.00" in price.reply
    assert fresh.memory.delete("restart")
    assert fresh.memory.history("restart") == []


def test_agent_gets_three_ranked_suggestions_and_a_summary(engine: Engine) -> None:
    result = turn(engine, "assist", "How long does delivery take to Germany?")
    assert [s.rank for s in result.suggested_replies] == [1, 2, 3]
    assert result.summary.startswith("Turn 1:")


def test_chat_script_prints_each_turn_as_json(
    components: Components, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from assistant.cli import build_app

    app = build_app()

    (tmp_path / "photo.jpg").write_bytes(customer_photo("sneaker-canvas-red"))
    script = tmp_path / "script.yaml"
    script.write_text(
        yaml.safe_dump(
            {
                "session": "scripted",
                "turns": [
                    {"text": "what is this?", "image": "photo.jpg"},
                    {"text": "how much is it?"},
                ],
            }
        ),
        encoding="utf-8",
    )
    monkeypatch.setenv("SHOPSIGHT_DATA_DIR", str(data_dir))
    result = CliRunner().invoke(app, ["chat", "--script", str(script)])
    assert result.exit_code == 0, result.output
    turns = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(turns) == 2
    assert turns[0]["products"][0]["product_id"] == "sneaker-canvas-red"
    assert "59.00" in turns[1]["reply"]


@pytest.mark.parametrize(
    ("session", "text", "lang", "article"),
    [
        (
            "torn-en",
            "My order arrived today and it is torn. Order #A12345. I want a refund.",
            "en",
            "damaged-or-wrong-item-en",
        ),
        (
            "torn-zh",
            "今天收到的背包破了，订单号：A12345，我要退款。",
            "zh",
            "damaged-or-wrong-item-zh",
        ),
    ],
)
def test_a_damage_report_cites_the_damage_policy_not_a_neighbouring_article(
    engine: Engine, session: str, text: str, lang: str, article: str
) -> None:
    result = turn(engine, session, text, image=customer_photo("backpack-urban-black"), lang=lang)
    assert result.ticket is not None and result.ticket.ticket_type == "damaged_item"
    assert result.ticket.order_reference == "A12345"
    assert result.ticket.policy_article_id == article
    assert article in cited(result)
    assert not any(source.startswith("order-cancellation") for source in cited(result))
