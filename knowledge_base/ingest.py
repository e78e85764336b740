"""Idempotent, crash-safe ingestion of loaded records into the store.

Every record has a stable id and a content hash in its metadata. A batch is embedded only for the
records whose hash differs from the stored one, and written with `upsert`, so re-running after a
crash (even SIGKILL) finishes the job and never duplicates anything.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
from PIL import Image
from pydantic import BaseModel, Field
from tqdm import tqdm

from knowledge_base.chunking import chunk_article
from knowledge_base.images import ImageRejected, load_image
from knowledge_base.loaders import LoadResult
from knowledge_base.schema import Article, Chunk, Product, Rejection, dumps_attributes, file_hash, stable_hash
from knowledge_base.store import KnowledgeStore
from retrieval.embedders import TextEmbedder

T = TypeVar("T")


class ImageEmbedder(Protocol):
    name: str

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray: ...


class IngestReport(BaseModel):
    """What an ingest run did; `rejections` lists every input that was not used, and why."""

    products_embedded: int = 0
    products_unchanged: int = 0
    images_embedded: int = 0
    images_unchanged: int = 0
    chunks_embedded: int = 0
    chunks_unchanged: int = 0
    articles_embedded: int = 0
    articles_unchanged: int = 0
    seconds: float = 0.0
    rejections: list[Rejection] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.rejections


@dataclass(frozen=True)
class IngestOptions:
    batch_size: int = 32
    chunk_size: int = 600
    chunk_overlap: int = 80
    max_image_pixels: int = 40_000_000
    max_image_side: int = 1024
    progress: bool = True


class Ingestor:
    """Writes products, their images and article chunks into a `KnowledgeStore`."""

    def __init__(
        self,
        store: KnowledgeStore,
        text_embedder: TextEmbedder,
        image_embedder: Callable[[], ImageEmbedder],
        image_encoder_name: str,
        options: IngestOptions | None = None,
    ) -> None:
        self.store = store
        self.text_embedder = text_embedder
        self._image_embedder_factory = image_embedder
        self._image_embedder: ImageEmbedder | None = None
        self.image_encoder_name = image_encoder_name
        self.options = options or IngestOptions()

    @property
    def image_embedder(self) -> ImageEmbedder:
        """Loaded only when an image actually needs embedding, so text-only runs stay light."""
        if self._image_embedder is None:
            self._image_embedder = self._image_embedder_factory()
        return self._image_embedder

    def ingest(self, loaded: LoadResult) -> IngestReport:
        started = time.perf_counter()
        report = IngestReport(rejections=list(loaded.rejections))
        products = _unique(loaded.products, report, "product")
        articles = _unique(loaded.articles, report, "article")
        self.store.collection("products", encoder=self.text_embedder.name)
        self.store.collection("articles", encoder=self.text_embedder.name)
        self.store.collection("images", encoder=self.image_encoder_name)
        self._ingest_products(products, report)
        self._ingest_images(products, report)
        self._ingest_articles(articles, report)
        report.seconds = round(time.perf_counter() - started, 3)
        return report

    def _ingest_products(self, products: list[Product], report: IngestReport) -> None:
        for batch in self._batches(products, "product texts"):
            hashes = self.store.stored_hashes("products", [p.id for p in batch])
            changed = [p for p in batch if hashes.get(p.id) != p.content_hash()]
            report.products_unchanged += len(batch) - len(changed)
            if not changed:
                continue
            texts = [p.embedding_text() for p in changed]
            vectors = self.text_embedder.embed_texts(texts, kind="passage")
            self.store.upsert("products", [p.id for p in changed], vectors, texts, [_product_metadata(p) for p in changed])
            report.products_embedded += len(changed)

    def _ingest_images(self, products: list[Product], report: IngestReport) -> None:
        records: list[tuple[str, Path, Product, str]] = []
        for product in products:
            for index, path in enumerate(product.images):
                try:
                    digest = stable_hash(file_hash(path) + product.category + product.title)
                except OSError as exc:
                    report.rejections.append(
                        Rejection(source=str(path), reason=f"image of product {product.id!r} unreadable: {exc.strerror or exc}")
                    )
                    continue
                records.append((f"{product.id}#img{index}", path, product, digest))
        for batch in self._batches(records, "product images"):
            hashes = self.store.stored_hashes("images", [r[0] for r in batch])
            changed = [r for r in batch if hashes.get(r[0]) != r[3]]
            report.images_unchanged += len(batch) - len(changed)
            decoded: list[tuple[tuple[str, Path, Product, str], Image.Image]] = []
            for record in changed:
                try:
                    image = load_image(record[1], self.options.max_image_pixels, self.options.max_image_side)
                except ImageRejected as exc:
                    report.rejections.append(Rejection(source=str(record[1]), reason=str(exc).split(": ", 1)[-1]))
                    continue
                decoded.append((record, image))
            if not decoded:
                continue
            vectors = self.image_embedder.embed_images([image for _, image in decoded])
            self.store.upsert(
                "images",
                [r[0] for r, _ in decoded],
                vectors,
                [r[2].title for r, _ in decoded],
                [
                    {
                        "product_id": r[2].id,
                        "category": r[2].category,
                        "path": str(r[1]),
                        "content_hash": r[3],
                        "predicted_category": "category" in r[2].predicted,
                    }
                    for r, _ in decoded
                ],
            )
            report.images_embedded += len(decoded)

    def _ingest_articles(self, articles: list[Article], report: IngestReport) -> None:
        options = self.options
        pending: list[tuple[Article, list[Chunk]]] = []
        chunked = [(a, chunk_article(a, options.chunk_size, options.chunk_overlap)) for a in articles]
        for batch in _chunks_of(chunked, options.batch_size):
            ids = [chunk.id for _, chunks in batch for chunk in chunks]
            hashes = self.store.stored_hashes("articles", ids)
            for article, chunks in batch:
                digest = article.content_hash()
                if all(hashes.get(c.id) == digest for c in chunks):
                    report.articles_unchanged += 1
                    report.chunks_unchanged += len(chunks)
                else:
                    pending.append((article, chunks))
        for article, chunks in self._progress(pending, "articles"):
            # An edited article may have fewer chunks now: drop the old ones first.
            self.store.delete("articles", where={"article_id": article.id})
            texts = [f"{c.title}\n{c.text}" for c in chunks]
            vectors = self.text_embedder.embed_texts(texts, kind="passage")
            self.store.upsert(
                "articles",
                [c.id for c in chunks],
                vectors,
                [c.text for c in chunks],
                [_chunk_metadata(c, article.content_hash(), len(chunks)) for c in chunks],
            )
            report.articles_embedded += 1
            report.chunks_embedded += len(chunks)

    def _batches(self, items: list[T], label: str) -> Iterator[list[T]]:
        with tqdm(total=len(items), desc=label, unit="rec", disable=not self.options.progress or not items) as bar:
            for batch in _chunks_of(items, self.options.batch_size):
                yield batch
                bar.update(len(batch))

    def _progress(self, items: list[T], label: str) -> Iterator[T]:
        yield from tqdm(items, desc=label, unit="art", disable=not self.options.progress or not items)


def _chunks_of(items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _unique(records: list[Any], report: IngestReport, label: str) -> list[Any]:
    """Keep the last record of each id and say which earlier ones were overridden."""
    by_id: dict[str, Any] = {}
    for record in records:
        if record.id in by_id:
            report.rejections.append(
                Rejection(source=f"{label} {record.id}", reason="duplicate id; the later record wins")
            )
        by_id[record.id] = record
    return list(by_id.values())


def _product_metadata(product: Product) -> dict[str, Any]:
    return {
        "product_id": product.id,
        "title": product.title,
        "title_zh": product.title_zh or None,
        "category": product.category,
        "price": product.price,
        "currency": product.currency,
        "stock": product.stock,
        "in_stock": product.stock is None or product.stock > 0,
        "language": product.language,
        "attributes": dumps_attributes(product.attributes),
        "images": json.dumps([str(p) for p in product.images]),
        "tags": ", ".join(product.tags),
        "predicted": json.dumps(product.predicted) if product.predicted else None,
        "description": product.description,
        "description_zh": product.description_zh or None,
        "content_hash": product.content_hash(),
    }


def _chunk_metadata(chunk: Chunk, digest: str, total: int) -> dict[str, Any]:
    return {
        "article_id": chunk.article_id,
        "title": chunk.title,
        "language": chunk.language,
        "kind": chunk.kind,
        "tags": ", ".join(chunk.tags),
        "position": chunk.position,
        "chunk_count": total,
        "content_hash": digest,
    }
