"""Which listed item a message points at: "the second one", "number 3", "#1", "第二个", "最后一个".

One reader for the photo carousel and the search results, so "the second one" means the same
after either.
"""

from __future__ import annotations

import re

_ORDINALS_EN = {
    "first": 1,
    "1st": 1,
    "second": 2,
    "2nd": 2,
    "third": 3,
    "3rd": 3,
    "fourth": 4,
    "4th": 4,
    "fifth": 5,
    "5th": 5,
    "sixth": 6,
    "6th": 6,
    "last": -1,
}
_ORDINAL_EN = re.compile(r"\b(" + "|".join(_ORDINALS_EN) + r")\b", re.IGNORECASE)
_NUMBERED_EN = re.compile(r"\b(?:number|no\.?|option)\s*([1-9])\b|#\s*([1-9])\b", re.IGNORECASE)
_BARE_NUMBER = re.compile(r"^\s*(?:#\s*)?([1-9])\s*[.)。]?\s*$")
_ZH_DIGITS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6}
_ORDINAL_ZH = re.compile(
    r"第\s*([一二三四五六1-9])|([一二两三四五六1-9])\s*号|(最后)一?[个款件种双条只]"
)


def position(text: str, bare_number: bool = False) -> int | None:
    """The 1-based position the message names (-1: the last), when it names exactly one.

    `bare_number` also reads a message that is only a digit ("3") as a position: right after
    a "which one?" question, not after a list the customer may answer with a quantity.
    """
    found: set[int] = set()
    found.update(_ORDINALS_EN[m.group(1).lower()] for m in _ORDINAL_EN.finditer(text))
    found.update(int(m.group(1) or m.group(2)) for m in _NUMBERED_EN.finditer(text))
    bare = _BARE_NUMBER.match(text) if bare_number else None
    if bare:
        found.add(int(bare.group(1)))
    for m in _ORDINAL_ZH.finditer(text):
        digit = m.group(1) or m.group(2)
        found.add(-1 if m.group(3) else _ZH_DIGITS.get(digit) or int(digit))
    return found.pop() if len(found) == 1 else None
