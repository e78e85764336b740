"""Mixed English/Chinese tokenisation for BM25."""

from __future__ import annotations

import logging

import pytest

from retrieval.search import tokenize as tokenize_module
from retrieval.search.tokenize import Tokenizer, TokenizerOptions, tokenize

pytestmark = pytest.mark.unit


def test_english_is_lowercased_split_on_punctuation_and_loses_function_words() -> None:
    assert tokenize("How do I RETURN my order #A-1234?") == ["return", "order", "1234"]


def test_stopwords_can_be_kept() -> None:
    tokens = Tokenizer(TokenizerOptions(stopwords=False))("How do I return it?")
    assert tokens == ["how", "do", "i", "return", "it"]


def test_chinese_is_segmented_into_words_not_one_token_per_sentence() -> None:
    tokens = Tokenizer(TokenizerOptions(jieba_mode="default"))("退货政策是什么？")
    assert "退货" in tokens
    assert "政策" in tokens
    assert "退货政策是什么" not in tokens
    assert "？" not in tokens


def test_search_mode_adds_the_short_words_inside_long_ones() -> None:
    default = Tokenizer(TokenizerOptions(jieba_mode="default"))("中华人民共和国")
    search = Tokenizer(TokenizerOptions(jieba_mode="search"))("中华人民共和国")
    assert set(default) < set(search)
    assert "中华" in search


def test_mixed_text_keeps_both_scripts_in_order() -> None:
    tokens = Tokenizer(TokenizerOptions(stem=False))("iPhone 15 手机壳退货")
    assert tokens[:2] == ["iphone", "15"]
    assert "手机" in tokens
    assert "退货" in tokens


def test_chinese_function_words_are_dropped() -> None:
    assert "的" not in tokenize("我的订单在哪里")
    assert "订单" in tokenize("我的订单在哪里")


def test_stemming_merges_inflections_by_default_and_can_be_turned_off() -> None:
    assert tokenize("returns") == tokenize("returning") == ["return"]
    assert Tokenizer(TokenizerOptions(stem=False))("returns") == ["returns"]


def test_empty_and_symbol_only_text_gives_no_tokens() -> None:
    assert tokenize("") == []
    assert tokenize("?!… —— ，。") == []


def test_jieba_is_initialised_once_and_quietly(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        tokenize("配送时间")
        first = tokenize_module.jieba_segmenter()
        tokenize("退款")
    assert tokenize_module.jieba_segmenter() is first
    assert not [r for r in caplog.records if r.name == "jieba" and r.levelno < logging.WARNING]
