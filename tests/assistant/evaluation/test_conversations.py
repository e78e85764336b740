"""The conversation evaluation's checks and report, with a scripted double for the engine."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image

from assistant.evaluation.conversations import (
    PhotoMaker,
    ScriptError,
    TurnExpectation,
    check_turn,
    conversation_report,
    load_scripts,
    run_scripts,
)
from assistant.turn.schemas import (
    Action,
    Citation,
    Decision,
    IntentView,
    ProductCard,
    SentimentView,
    Ticket,
    TurnRequest,
    TurnResult,
)

pytestmark = pytest.mark.unit


def result(
    reply: str = "",
    action: Action = "answer",
    products: list[str] | None = None,
    cited: list[str] | None = None,
    ticket: Ticket | None = None,
    cards: list[ProductCard] | None = None,
) -> TurnResult:
    return TurnResult(
        session_id="s",
        turn_index=0,
        language="en",
        reply=reply,
        citations=[
            Citation(number=n, source_id=s, kind="article", title=s, snippet="")
            for n, s in enumerate(cited or [], start=1)
        ],
        products=cards or [ProductCard(product_id=p, title=p) for p in products or []],
        sentiment=SentimentView(score=0.0, label="neutral", trend=0.0),
        intent=IntentView(intent="other", confidence=1.0),
        decision=Decision(action=action),
        ticket=ticket,
    )


def expect(**fields: Any) -> TurnExpectation:
    return TurnExpectation.model_validate(fields)


def checks(expectation: TurnExpectation, turn: TurnResult) -> list[str]:
    return [failure.check for failure in check_turn(expectation, turn)]


def test_a_photo_turn_passes_only_with_the_right_product_and_only_its_price() -> None:
    wanted = expect(decision="answer", product="p1", price="31.62")
    right = result("That is the Pink Dress: 31.62 USD, 3 in stock [1].", products=["p1"])
    assert checks(wanted, right) == []
    wrong = result("That is the Red Dress: 12.00 USD [1].", products=["p2"])
    assert checks(wanted, wrong) == ["product", "price", "price"]
    two_prices = result("31.62 USD, or 29.99 USD on sale", products=["p1"])
    assert checks(wanted, two_prices) == ["price"]


def test_an_unsure_turn_asserts_nothing_and_states_no_price() -> None:
    wanted = expect(no_product_asserted=True, states_no_price=True)
    carousel = result("Is it one of these?", action="clarify", products=["p1", "p2", "p3"])
    assert checks(wanted, carousel) == []
    asserted = result("It costs 185.85 USD [1].", products=["p9"])
    assert checks(wanted, asserted) == ["no_product_asserted", "states_no_price"]
    # "Not sold here, but similar items are": an answer whose cards assert nothing.
    similar = [ProductCard(product_id="p9", title="p9", role="similar")]
    assert checks(wanted, result("We don't sell it; similar:", cards=similar)) == []


def test_ticket_fields_and_cited_articles_are_checked_field_by_field() -> None:
    ticket = Ticket(
        ticket_type="damaged_item",
        order_reference="A12345",
        issue="torn",
        policy_article_id="order-cancellation-en",
        evidence_id="e",
        missing=["photo"],
    )
    wanted = expect(
        ticket={
            "ticket_type": "damaged_item",
            "order_reference": "A12345",
            "policy_article_id": "damaged-or-wrong-item-en",
            "missing": ["photo"],
        },
        article="damaged-or-wrong-item-en",
    )
    turn = result(ticket=ticket, cited=["order-cancellation-en"])
    assert checks(wanted, turn) == ["article", "ticket.policy_article_id"]
    assert checks(wanted, result()) == [
        "article",
        "ticket.ticket_type",
        "ticket.order_reference",
        "ticket.missing",
        "ticket.policy_article_id",
    ]


def test_search_cards_must_be_enough_and_mostly_fit() -> None:
    def card(title: str, category: str = "Tshirts", price: float = 20.0) -> ProductCard:
        return ProductCard(product_id=title, title=title, category=category, price=price, stock=1)

    wanted = expect(cards={"category": "Tshirts", "title_has": ["black", "men"], "max_price": 30})
    good = [card(f"Nike Men Black Tshirt {n}") for n in range(4)] + [card("Puma Men Black Shirt")]
    assert checks(wanted, result(cards=good)) == []
    # "men" is a word of its own: a women's t-shirt does not fit a men's search.
    women = [card(f"Nike Women Black Tshirt {n}") for n in range(5)]
    assert checks(wanted, result(cards=women)) == ["cards"]
    assert checks(wanted, result(cards=good[:2])) == ["cards"]
    dear = [card(f"Nike Men Black Tshirt {n}", price=45.0) for n in range(5)]
    assert checks(wanted, result(cards=dear)) == ["cards"]


def write(folder: Path, name: str, script: object) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(script, allow_unicode=True), encoding="utf-8")
    return path


def test_malformed_scripts_are_refused_by_file_and_field(tmp_path: Path) -> None:
    with pytest.raises(ScriptError, match="no such folder"):
        load_scripts(tmp_path / "missing")
    with pytest.raises(ScriptError, match=r"no \*\.yaml"):
        load_scripts(tmp_path)
    write(tmp_path, "bad.yaml", {"kind": "faq", "turns": [{"text": "hi", "expect": {"x": 1}}]})
    with pytest.raises(ScriptError, match=r"bad.yaml: turns.0.expect.x"):
        load_scripts(tmp_path)
    write(tmp_path, "bad.yaml", {"kind": "faq", "turns": [{"expect": {}}]})
    with pytest.raises(ScriptError, match="needs `text`, `photo`"):
        load_scripts(tmp_path)


def test_a_run_reports_success_per_kind_and_the_shop_figures(tmp_path: Path) -> None:
    photos = tmp_path / "data"
    (photos / "shop").mkdir(parents=True)
    Image.new("RGB", (64, 64), (200, 30, 30)).save(photos / "shop" / "red.jpg")
    scripts = tmp_path / "scripts"
    photo_turn = {"text": "how much?", "photo": "shop/red.jpg"}
    write(
        scripts,
        "photo/1.yaml",
        {"kind": "photo", "lang": "en", "turns": [photo_turn | {"expect": {"product": "red"}}]},
    )
    write(
        scripts,
        "photo/2.yaml",
        {"kind": "photo", "lang": "zh", "turns": [photo_turn | {"expect": {"product": "blue"}}]},
    )
    write(
        scripts,
        "faq/1.yaml",
        {"kind": "faq", "turns": [{"text": "delivery?", "expect": {"article": "delivery-en"}}]},
    )
    sent: list[TurnRequest] = []

    def engine(request: TurnRequest) -> TurnResult:
        sent.append(request)
        if request.image is not None:
            with Image.open(io.BytesIO(request.image)) as photo:
                assert photo.format == "JPEG"
            return result("That is red: 10.00 USD", products=["red"])
        return result("Delivery takes 3 days [1].", cited=["delivery-en"])

    loaded = load_scripts(scripts)
    outcomes = run_scripts(loaded, engine, PhotoMaker(photos))
    report = conversation_report(loaded, outcomes, str(scripts), "double")
    metrics = report.metrics
    assert metrics["scripts"] == 3 and metrics["task_success"] == pytest.approx(2 / 3, abs=1e-4)
    assert metrics["success_faq"] == 1.0 and metrics["success_photo"] == 0.5
    assert metrics["success_photo/en"] == 1.0 and metrics["success_photo/zh"] == 0.0
    assert metrics["photo_right_product_stated"] == 0.5
    assert metrics["photo_wrong_product_asserted"] == 0.5
    assert metrics["photo_turns"] == 2 and metrics["text_turns"] == 1
    assert [f["script"] for f in report.details["failures"]] == ["photo/2.yaml"]
    # Two warm-up turns, then each script in its own session; the simulated photo is not the file.
    assert [request.session_id for request in sent[:2]] == ["eval-warm-up"] * 2
    assert len({request.session_id for request in sent[2:]}) == 3
    assert sent[3].image != (photos / "shop" / "red.jpg").read_bytes()
