"""Per-message language detection: English vs Chinese by the share of Han characters."""

from __future__ import annotations

import pytest

from assistant.perception.language import detect_language, han_share

pytestmark = pytest.mark.unit


def test_english_message_is_english_with_no_han_share() -> None:
    guess = detect_language("Where is my parcel? It was due on Monday.")
    assert guess.language == "en"
    assert guess.han_share == 0.0


def test_chinese_message_is_chinese_with_full_han_share() -> None:
    guess = detect_language("我的包裹到哪里了？周一就应该到了。")
    assert guess.language == "zh"
    assert guess.han_share == 1.0


def test_brand_name_inside_chinese_does_not_outweigh_it() -> None:
    guess = detect_language("我买的iPhone充电器坏了")
    assert guess.language == "zh"
    assert 0.5 < guess.han_share < 1.0


def test_chinese_word_inside_english_sentence_stays_english() -> None:
    guess = detect_language("the colour called 红色 looks different from the photo")
    assert guess.language == "en"
    assert 0.0 < guess.han_share < 0.5


@pytest.mark.parametrize("text", ["", "12345 !!!", "😀👍"])
def test_text_without_letters_gets_the_default_language(text: str) -> None:
    assert detect_language(text).language == "en"
    assert detect_language(text, default="zh").language == "zh"
    assert detect_language(text).han_share == 0.0


def test_exact_tie_gets_the_default_language() -> None:
    assert han_share("good 好") == 0.5
    assert detect_language("good 好", default="zh").language == "zh"
    assert detect_language("good 好", default="en").language == "en"


def test_han_share_counts_each_character_against_each_word() -> None:
    assert han_share("好 very nice") == pytest.approx(1 / 3)
    assert han_share("非常好 nice") == pytest.approx(3 / 4)
