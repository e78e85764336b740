"""Mixed English/Chinese tokenisation for BM25.

Chinese has no spaces, so whitespace splitting turns a whole Chinese sentence into one useless
token: Han runs go through jieba, everything else is split into lowercase letter/digit words.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType
from typing import Literal

from knowledge_base.offline import require

JiebaMode = Literal["default", "search"]

_HAN_RUN = re.compile(r"([\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+)")
_WORD = re.compile(r"[^\W_]+")

# Function words that match nearly every FAQ question; BM25's IDF alone does not tame them in a
# small article collection (measured on the demo shop's tuning questions).
# fmt: off
ENGLISH_STOPWORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "how",
    "i", "if", "in", "is", "it", "me", "my", "of", "on", "or", "our", "so", "that", "the", "this",
    "to", "was", "what", "when", "where", "which", "who", "will", "with", "you", "your",
})
CHINESE_STOPWORDS = frozenset({
    "的", "了", "吗", "呢", "吧", "啊", "是", "我", "你", "们", "我们", "在", "和", "有", "要",
    "怎么", "什么", "如何", "可以", "能",
})
# fmt: on

_jieba: ModuleType | None = None
_jieba_lock = threading.Lock()


def jieba_segmenter() -> ModuleType:
    """jieba, quiet and with its dictionary loaded exactly once per process."""
    global _jieba
    if _jieba is None:
        with _jieba_lock:
            if _jieba is None:
                jieba = require("jieba", "jieba")
                jieba.setLogLevel(logging.WARNING)
                jieba.initialize()
                _jieba = jieba
    return _jieba


@dataclass(frozen=True)
class TokenizerOptions:
    """How BM25 sees text. The defaults won on the tuning half of the demo FAQ set: function
    words dropped, Snowball stemming on, jieba's search mode (adds the words inside long ones)."""

    stem: bool = True
    stopwords: bool = True
    jieba_mode: JiebaMode = "search"


class Tokenizer:
    """Callable text → tokens for both languages, configured by `TokenizerOptions`."""

    def __init__(self, options: TokenizerOptions | None = None) -> None:
        self.options = options or TokenizerOptions()
        self._stem: Callable[[str], str] | None = None
        if self.options.stem:
            snowball = require("snowballstemmer", "snowballstemmer")
            # A shop's vocabulary is small and Snowball is pure Python: stemming each distinct
            # word once made tokenising 100,000 product texts ~N× faster.
            self._stem = lru_cache(maxsize=1 << 18)(snowball.stemmer("english").stemWord)

    def __call__(self, text: str) -> list[str]:
        tokens: list[str] = []
        for index, part in enumerate(_HAN_RUN.split(text)):
            if not part:
                continue
            # re.split with one capture group puts the Han runs at the odd positions.
            tokens += self._chinese(part) if index % 2 else self._english(part)
        return tokens

    def _english(self, text: str) -> list[str]:
        words = _WORD.findall(text.lower())
        if self.options.stopwords:
            words = [w for w in words if w not in ENGLISH_STOPWORDS]
        stem = self._stem
        return [stem(word) for word in words] if stem else words

    def _chinese(self, text: str) -> list[str]:
        jieba = jieba_segmenter()
        cut = jieba.lcut_for_search if self.options.jieba_mode == "search" else jieba.lcut
        words = [w for w in cut(text) if w.strip()]
        if self.options.stopwords:
            words = [w for w in words if w not in CHINESE_STOPWORDS]
        return words


def tokenize(text: str) -> list[str]:
    """Tokens with the default options (what BM25 uses unless configured otherwise)."""
    return _default_tokenizer(text)


_default_tokenizer = Tokenizer()
