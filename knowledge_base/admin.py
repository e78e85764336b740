"""Inspection and removal of knowledge-base records (used by `shopsight kb` and the admin API)."""

from __future__ import annotations

from collections import Counter

from pydantic import BaseModel

from knowledge_base.store import COLLECTION_KINDS, KnowledgeStore


class KbCounts(BaseModel):
    """What the store holds, without where: the shape the public API shows."""

    products: int
    images: int
    article_chunks: int
    articles: int
    categories: dict[str, int]
    languages: dict[str, int]


class KbStats(KbCounts):
    location: str


class Deletion(BaseModel):
    id: str
    products: int = 0
    images: int = 0
    article_chunks: int = 0

    @property
    def found(self) -> bool:
        return bool(self.products or self.images or self.article_chunks)


def kb_stats(store: KnowledgeStore) -> KbStats:
    """Counts per collection, products per category and article chunks per language."""
    products = [hit.metadata for hit in store.scan("products")]
    chunks = [hit.metadata for hit in store.scan("articles")]
    return KbStats(
        location=store.location,
        products=len(products),
        images=store.count("images"),
        article_chunks=len(chunks),
        articles=len({str(m.get("article_id")) for m in chunks}),
        categories=dict(
            Counter(str(m.get("category") or "(none)") for m in products).most_common()
        ),
        languages=dict(Counter(str(m.get("language") or "en") for m in chunks).most_common()),
    )


def delete_record(store: KnowledgeStore, record_id: str) -> Deletion:
    """Delete a product (its text and all its images) or an article (all its chunks) by id."""
    for kind in COLLECTION_KINDS:
        store.collection(kind)
    return Deletion(
        id=record_id,
        products=store.delete("products", ids=[record_id]),
        images=store.delete("images", where={"product_id": record_id}),
        article_chunks=store.delete("articles", where={"article_id": record_id}),
    )
