"""What searches return: product and article matches, and how store metadata becomes them.

The searchers themselves are `retrieval.search.hybrid` (text) and `retrieval.search.photo`
(photo); every front end uses those, so results never depend on the caller.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field


class ProductMatch(BaseModel):
    """A product found by a search, with the evidence behind its score."""

    product_id: str
    title: str
    category: str = ""
    score: float
    price: float | None = None
    currency: str | None = None
    stock: int | None = None
    matched_image: str | None = Field(
        None, description="Path of the product image that matched best."
    )
    metadata: dict[str, Any] = Field(default_factory=dict)


class ArticleMatch(BaseModel):
    """A passage from an FAQ/policy article."""

    chunk_id: str
    article_id: str
    title: str
    text: str
    score: float
    language: str = "en"


def product_from_metadata(
    product_id: str, score: float, meta: dict[str, Any], matched_image: str | None = None
) -> ProductMatch:
    return ProductMatch(
        product_id=product_id,
        title=str(meta.get("title", product_id)),
        category=str(meta.get("category", "")),
        score=round(score, 4),
        price=meta.get("price"),
        currency=meta.get("currency"),
        stock=meta.get("stock"),
        matched_image=matched_image,
        metadata={k: v for k, v in meta.items() if k not in {"content_hash"}},
    )


def parse_json_list(value: Any) -> list[str]:
    """Product image paths travel as a JSON string in Chroma metadata."""
    if not value:
        return []
    try:
        parsed = json.loads(value)
    except (TypeError, json.JSONDecodeError):
        return []
    return [str(item) for item in parsed] if isinstance(parsed, list) else []
