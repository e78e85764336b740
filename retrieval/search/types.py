"""Search over the knowledge base: text → articles/products, photo → products."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image
from pydantic import BaseModel, Field

from knowledge_base.store import Hit, KnowledgeStore, Where
from retrieval.encoders.image import ImageEncoder
from retrieval.encoders.text import TextEmbedder


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


class TextSearcher:
    """Dense search over article chunks and product texts with the configured embedder."""

    def __init__(self, store: KnowledgeStore, embedder: TextEmbedder) -> None:
        self.store = store
        self.embedder = embedder

    def articles(self, query: str, k: int = 5, where: Where | None = None) -> list[ArticleMatch]:
        vector = self.embedder.embed_texts([query], kind="query")[0]
        self.store.collection("articles", encoder=self.embedder.name)
        hits = self.store.query("articles", vector, k * 3, where)
        return _dedup_articles(hits, k)

    def products(self, query: str, k: int = 5, where: Where | None = None) -> list[ProductMatch]:
        vector = self.embedder.embed_texts([query], kind="query")[0]
        self.store.collection("products", encoder=self.embedder.name)
        return [
            product_from_metadata(h.id, h.score, h.metadata)
            for h in self.store.query("products", vector, k, where)
        ]


def _dedup_articles(hits: Sequence[Hit], k: int) -> list[ArticleMatch]:
    """Keep the best chunk of each article so one long article cannot fill the whole list."""
    seen: set[str] = set()
    matches: list[ArticleMatch] = []
    for hit in hits:
        article_id = str(hit.metadata.get("article_id", hit.id))
        if article_id in seen:
            continue
        seen.add(article_id)
        matches.append(
            ArticleMatch(
                chunk_id=hit.id,
                article_id=article_id,
                title=str(hit.metadata.get("title", "")),
                text=hit.document,
                score=round(hit.score, 4),
                language=str(hit.metadata.get("language", "en")),
            )
        )
        if len(matches) == k:
            break
    return matches


class PhotoSearcher:
    """Photo → products: nearest product images, aggregated per product (best image wins)."""

    def __init__(self, store: KnowledgeStore, encoder: ImageEncoder) -> None:
        self.store = store
        self.encoder = encoder

    def search(
        self, image: Image.Image, k: int = 5, where: Where | None = None
    ) -> list[ProductMatch]:
        vector = self.encoder.embed_images([image])[0]
        return self.search_vector(vector, k, where)

    def search_vector(
        self, vector: np.ndarray, k: int = 5, where: Where | None = None
    ) -> list[ProductMatch]:
        hits = self.store.query("images", vector, k * 4, where)
        best: dict[str, Hit] = {}
        for hit in hits:
            product_id = str(hit.metadata.get("product_id", hit.id))
            if product_id not in best or hit.score > best[product_id].score:
                best[product_id] = hit
        ranked = sorted(best.items(), key=lambda item: item[1].score, reverse=True)[:k]
        details = {
            h.id: h.metadata for h in self.store.get("products", ids=[pid for pid, _ in ranked])
        }
        return [
            product_from_metadata(
                pid,
                hit.score,
                details.get(
                    pid, {"title": hit.document, "category": hit.metadata.get("category", "")}
                ),
                str(hit.metadata.get("path")),
            )
            for pid, hit in ranked
        ]


def parse_json_list(value: Any) -> list[str]:
    """Product image paths travel as a JSON string in Chroma metadata."""
    if not value:
        return []
    try:
        parsed = json.loads(value)
    except (TypeError, json.JSONDecodeError):
        return []
    return [str(item) for item in parsed] if isinstance(parsed, list) else []
