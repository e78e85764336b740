"""Review photo check: does a customer review's photo show the product it reviews?"""

from __future__ import annotations

import numpy as np
from PIL import Image
from pydantic import BaseModel

from knowledge_base.store import KnowledgeStore
from retrieval.encoders.image import ImageEncoder
from retrieval.search.types import PhotoSearcher, ProductMatch


class ReviewCheck(BaseModel):
    product_id: str
    photo_matches_product: bool
    match_score: float
    threshold: float
    looks_like: list[ProductMatch]
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
    store: KnowledgeStore,
    encoder: ImageEncoder,
    threshold: float = 0.55,
) -> ReviewCheck:
    """Compare the photo with the product's own images and with the whole catalogue.

    The photo is flagged when it is far from every image of the reviewed product, or when another
    product is clearly closer: a sign of a wrong, stock or unrelated photo.
    """
    own = store.collection("images").get(where={"product_id": product_id}, include=["embeddings"])
    if not own["ids"]:
        raise UnknownProduct(f"product {product_id!r} has no images in the knowledge base")
    vector = encoder.embed_images([image])[0]
    own_vectors = np.asarray(own["embeddings"], dtype=np.float32)
    own_score = float(np.max(own_vectors @ vector))
    looks_like = PhotoSearcher(store, encoder).search_vector(vector, k=3)
    best_other = next((m for m in looks_like if m.product_id != product_id), None)
    reasons = []
    matches = own_score >= threshold
    if not matches:
        reasons.append(
            f"photo similarity to the product's images is {own_score:.2f} < {threshold:.2f}"
        )
    if best_other is not None and best_other.score > own_score + 0.05:
        reasons.append(
            f"the photo looks more like {best_other.title} ({best_other.product_id}, {best_other.score:.2f})"
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
