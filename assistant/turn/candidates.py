"""Which product a photo turn is about: the photo's verdict, and the customer's pick from the
products offered when the photo was not clear ("the second one", "第二个", a product name).

Pure rules over catalogue facts, so they are tested without a store or a model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from assistant.turn.ordinals import position as ordinal_position
from assistant.turn.responder import ProductFacts, requested_colour

# match: name the product; unsure: ask which of the candidates it is; absent: the shop does not
# sell it, offer the closest items.
PhotoVerdict = Literal["match", "unsure", "absent"]

# Below this calibrated P(the first match is right) the photo's product is judged not sold here.
# Demo shop, built-in calibrator, simulated customer photos: none of the 59 listed products'
# photos falls below it (lowest 0.31), 16 of the same 59 asked with their own product removed
# do, and 2 of 30 half-and-half blends of two products (the blend that tests the "which one?"
# question scores 0.091).
ABSENT_BELOW = 0.02

_WORD = re.compile(r"[a-z0-9]+", re.IGNORECASE)
_HAN = re.compile(r"[\u4e00-\u9fff]+")
# Words of a short confirmation that say nothing about which product it is.
_FILLER = frozenset(
    [
        "the",
        "one",
        "this",
        "that",
        "its",
        "it's",
        "yes",
        "yeah",
        "yep",
        "please",
        "how",
        "much",
        "what",
        "about",
        "which",
        "is",
        "are",
    ]
)


def photo_verdict(
    top_confidence: float | None, confident: bool, absent_below: float
) -> PhotoVerdict:
    """The photo's verdict from the first match's calibrated confidence (None: no match)."""
    if confident and top_confidence is not None:
        return "match"
    if top_confidence is None or top_confidence < absent_below:
        return "absent"
    return "unsure"


def pick(text: str, offered: Sequence[ProductFacts]) -> str | None:
    """The id of the one offered product the message points at, or None when it points at none
    or is ambiguous. An ordinal or number wins, then a whole product name (the longest, so
    "Urban Backpack Blue" beats "Urban Backpack"), then a colour, then words only one of the
    offered names contains."""
    if not offered or not text.strip():
        return None
    position = ordinal_position(text, bare_number=True)
    if position is not None:
        index = len(offered) - 1 if position == -1 else position - 1
        return offered[index].product_id if 0 <= index < len(offered) else None
    return (
        _whole_name(text, offered) or _by_colour(text, offered) or _by_distinct_words(text, offered)
    )


def _normalise(text: str) -> str:
    return " ".join(_WORD.findall(text.lower())) + " " + "".join(_HAN.findall(text))


def _whole_name(text: str, offered: Sequence[ProductFacts]) -> str | None:
    said = _normalise(text)
    named = [
        (len(name), facts.product_id)
        for facts in offered
        for name in {
            " ".join(_WORD.findall(facts.title.lower())),
            "".join(_HAN.findall(facts.title_zh)),
        }
        if name and name in said
    ]
    if not named:
        return None
    longest = max(length for length, _ in named)
    ids = {pid for length, pid in named if length == longest}
    return ids.pop() if len(ids) == 1 else None


def _by_colour(text: str, offered: Sequence[ProductFacts]) -> str | None:
    colour = requested_colour(text)
    if colour is None:
        return None
    matching = [
        facts.product_id
        for facts in offered
        if colour in (facts.attributes.get("color") or facts.attributes.get("colour", "")).lower()
    ]
    return matching[0] if len(matching) == 1 else None


def _terms(text: str) -> set[str]:
    """English words of three letters or more, and pairs of adjacent Chinese characters."""
    words = {w for w in _WORD.findall(text.lower()) if len(w) >= 3 and w not in _FILLER}
    pairs = {run[i : i + 2] for run in _HAN.findall(text) for i in range(len(run) - 1)}
    return words | pairs


def _by_distinct_words(text: str, offered: Sequence[ProductFacts]) -> str | None:
    said = _terms(text)
    names = [_terms(f"{facts.title} {facts.title_zh}") for facts in offered]
    scores = [
        len({t for t in said & own if not any(t in other for other in names if other is not own)})
        for own in names
    ]
    best = max(scores)
    if best == 0 or scores.count(best) > 1:
        return None
    return offered[scores.index(best)].product_id
