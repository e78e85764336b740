"""The photo's verdict and the customer's pick from the offered products, on plain facts."""

from __future__ import annotations

import pytest

from assistant.turn.candidates import ABSENT_BELOW, photo_verdict, pick
from assistant.turn.responder import ProductFacts

pytestmark = pytest.mark.unit

OFFERED = [
    ProductFacts(
        "backpack-black",
        "Urban Backpack",
        "城市背包",
        attributes={"color": "black"},
    ),
    ProductFacts(
        "backpack-blue",
        "Urban Backpack Blue",
        "城市背包（蓝色）",
        attributes={"color": "blue"},
    ),
    ProductFacts("lamp-arc", "Arc LED Desk Lamp", "弧形台灯", attributes={"color": "black"}),
]


@pytest.mark.parametrize(
    ("top", "confident", "expected"),
    [
        (0.93, True, "match"),
        (0.25, False, "unsure"),
        (ABSENT_BELOW, False, "unsure"),
        (ABSENT_BELOW / 2, False, "absent"),
        (None, False, "absent"),
    ],
)
def test_the_photo_verdict_follows_the_calibrated_confidence(
    top: float | None, confident: bool, expected: str
) -> None:
    assert photo_verdict(top, confident, ABSENT_BELOW) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("the second one", "backpack-blue"),
        ("The 2nd one please", "backpack-blue"),
        ("number 3", "lamp-arc"),
        ("#1", "backpack-black"),
        ("3", "lamp-arc"),
        ("the last one", "lamp-arc"),
        ("how much is the first one?", "backpack-black"),
        ("第二个", "backpack-blue"),
        ("第3个多少钱？", "lamp-arc"),
        ("1号", "backpack-black"),
        ("最后一个", "lamp-arc"),
    ],
)
def test_an_ordinal_or_number_picks_that_position(text: str, expected: str) -> None:
    assert pick(text, OFFERED) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # The longest whole name wins over the name it contains.
        ("It's the Urban Backpack Blue", "backpack-blue"),
        ("the urban backpack", "backpack-black"),
        ("是城市背包（蓝色）", "backpack-blue"),
        ("the blue one", "backpack-blue"),
        ("the lamp", "lamp-arc"),
        ("台灯", "lamp-arc"),
    ],
)
def test_a_name_a_colour_or_a_word_only_one_name_has_picks_that_product(
    text: str, expected: str
) -> None:
    assert pick(text, OFFERED) == expected


@pytest.mark.parametrize(
    "text",
    [
        "the black one",  # two of them are black
        "the sixth one",
        "5",
        "the first or the second?",
        "what about shipping?",
        "",
    ],
)
def test_an_ambiguous_or_unrelated_message_picks_nothing(text: str) -> None:
    assert pick(text, OFFERED) is None


def test_nothing_offered_means_nothing_to_pick() -> None:
    assert pick("the second one", []) is None
