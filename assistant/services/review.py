"""Review photo check: does a customer review's photo show the product it reviews?

The photo is compared by the same calibrated photo matcher as `/v1/search/image` (several views
of the photo, best image per product), so a review and a chat photo of the same product get the
same similarities and the same look-alikes.
"""

from __future__ import annotations

from PIL import Image
from pydantic import BaseModel, Field

from retrieval.search.photo import PhotoMatch, PhotoMatcher

DEFAULT_THRESHOLD = 0.55
"""Least similarity to the reviewed product's own images for the photo to count as showing it."""
CLOSER_BY = 0.05
"""How much closer another product must be before the photo is said to look like it instead."""


class ReviewCheck(BaseModel):
    product_id: str
    photo_matches_product: bool
    match_score: float = Field(
        description="Best cosine similarity between a view of the photo (whole or centre crop) "
        "and any image of the reviewed product; the photo matches when it reaches `threshold`."
    )
    threshold: float
    looks_like: list[PhotoMatch] = Field(
        description="The catalogue's closest products, with the matcher's calibrated confidence."
    )
    sentiment_score: float
    sentiment_label: str
    flag_for_moderator: bool
    reasons: list[str]


class UnknownProduct(LookupError):
    """The reviewed product has no images in the knowledge base to compare with."""


def check_review(
    product_id: str,
    sentiment: tuple[float, str],
    image: Image.Image,
    matcher: PhotoMatcher,
    threshold: float = DEFAULT_THRESHOLD,
) -> ReviewCheck:
    """Compare the photo with the product's own images and with the whole catalogue.

    The photo is flagged when it is far from every image of the reviewed product, or when another
    product is clearly closer: a sign of a wrong, stock or unrelated photo.
    """
    own = matcher.search(image, k=1, where={"product_id": product_id}).matches
    if not own:
        raise UnknownProduct(f"product {product_id!r} has no images in the knowledge base")
    own_score = own[0].similarity
    looks_like = matcher.search(image, k=3).matches
    best_other = next((m for m in looks_like if m.product_id != product_id), None)
    reasons = []
    matches = own_score >= threshold
    if not matches:
        reasons.append(
            f"photo similarity to the product's images is {own_score:.2f} < {threshold:.2f}"
        )
    if best_other is not None and best_other.similarity > own_score + CLOSER_BY:
        reasons.append(
            f"the photo looks more like {best_other.title} ({best_other.product_id}, "
            f"{best_other.similarity:.2f})"
        )
    score, label = sentiment
    return ReviewCheck(
        product_id=product_id,
        photo_matches_product=matches,
        match_score=round(own_score, 4),
        threshold=threshold,
        looks_like=looks_like,
        sentiment_score=round(score, 4),
        sentiment_label=label,
        flag_for_moderator=bool(reasons),
        reasons=reasons or ["the photo matches the reviewed product"],
    )
