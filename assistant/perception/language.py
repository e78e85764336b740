"""Per-message language: English or Chinese, by the share of Han characters.

Sentiment and intent models are per language (VADER scores every Chinese text 0.0 and SnowNLP
is meaningless on English), so each message is routed by its dominant script. Dependency-free
and cheap enough to run on every masked variant SHAP produces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Language = Literal["en", "zh"]
LANGUAGES: tuple[Language, ...] = ("en", "zh")

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f]")
_WORD = re.compile(r"[^\W\d_]+")


@dataclass(frozen=True)
class LanguageGuess:
    """The dominant language and the share of Han characters behind the decision.

    `han_share` counts each Han character and each run of other letters (a word) as one token,
    so a brand name inside a Chinese sentence ("我的iPhone坏了") does not outweigh it.
    """

    language: Language
    han_share: float


def han_share(text: str) -> float:
    """Han characters among Han characters plus words of other letters; 0.0 for no letters."""
    han = len(_HAN.findall(text))
    words = len(_WORD.findall(_HAN.sub(" ", text)))
    return han / (han + words) if han + words else 0.0


def detect_language(text: str, default: Language = "en") -> LanguageGuess:
    """`zh` when Han tokens are the majority, `en` when other words are, `default` when neither
    is (no letters at all, or an exact tie)."""
    share = han_share(text)
    has_letters = bool(_HAN.search(text) or _WORD.search(text))
    if not has_letters or share == 0.5:
        return LanguageGuess(language=default, han_share=round(share, 4))
    return LanguageGuess(language="zh" if share > 0.5 else "en", han_share=round(share, 4))
