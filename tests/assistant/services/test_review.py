"""The review photo check, over the same photo matcher as the API's image search."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.services.review import UnknownProduct, check_review
from retrieval.search.photo import ArrayImageIndex, PhotoMatcher
from tests.helpers.colours import COLOURS, MeanColourEncoder, solid

pytestmark = pytest.mark.unit


@pytest.fixture()
def matcher() -> PhotoMatcher:
    index = ArrayImageIndex(
        np.asarray(list(COLOURS.values()), dtype=np.float32),
        list(COLOURS),
        ["clothing", "hats", "clothing"],
        [f"{product_id}.png" for product_id in COLOURS],
        [product_id.replace("-", " ").title() for product_id in COLOURS],
    )
    return PhotoMatcher(index, MeanColourEncoder())


def test_a_photo_of_the_reviewed_product_passes(matcher: PhotoMatcher) -> None:
    check = check_review("red-scarf", (0.6, "positive"), solid((200, 30, 25)), matcher)
    assert check.photo_matches_product and not check.flag_for_moderator
    assert check.match_score > check.threshold
    assert check.looks_like[0].product_id == "red-scarf"
    assert check.reasons == ["the photo matches the reviewed product"]


def test_a_photo_of_another_product_is_flagged_with_both_reasons(matcher: PhotoMatcher) -> None:
    check = check_review("blue-coat", (-0.2, "negative"), solid((200, 30, 25)), matcher)
    assert check.flag_for_moderator and not check.photo_matches_product
    assert check.match_score < check.threshold
    assert check.reasons[0].startswith("photo similarity to the product's images is")
    assert "looks more like Red Scarf (red-scarf" in check.reasons[1]


def test_the_match_score_is_the_matchers_similarity_to_the_products_images(
    matcher: PhotoMatcher,
) -> None:
    image = solid((90, 60, 150))
    check = check_review("blue-coat", (0.0, "neutral"), image, matcher)
    own = matcher.search(image, k=1, where={"product_id": "blue-coat"}).matches[0]
    assert check.match_score == own.similarity
    assert [m.product_id for m in check.looks_like] == [
        m.product_id for m in matcher.search(image, k=3).matches
    ]


def test_a_product_without_images_cannot_be_checked(matcher: PhotoMatcher) -> None:
    with pytest.raises(UnknownProduct, match="no images"):
        check_review("socks", (0.0, "neutral"), solid((1, 2, 3)), matcher)
