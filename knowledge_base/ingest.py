"""Idempotent, crash-safe ingestion of loaded records into the store.

Every record has a stable id and two hashes in its metadata: `vector_hash`, of what its vector is
made from, and `content_hash`, of everything stored (document, metadata and vector source). A
record whose `content_hash` is unchanged is skipped; one whose `vector_hash` is unchanged gets
its document and metadata refreshed without embedding anything; only the rest is embedded. Writes
are `upsert`s in batches, so re-running after a crash (even SIGKILL) finishes the job and never
duplicates anything. Records of a re-ingested product or article that no longer exist (an image
taken away, the tail of an article that got shorter) are deleted.

With an `autotagger`, products that have photos but no category are tagged before anything is
written: a predicted category and colour names, stored with their confidence and marked as
predicted (`category_source`, `category_confidence`, `colour_tags` in the product metadata), so
the assistant can tell a model's guess from the merchant's own data.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

import numpy as np
from PIL import Image
from pydantic import BaseModel, Field
from tqdm import tqdm

from knowledge_base.chunking import chunk_article
from knowledge_base.images import ImageRejected, load_image
from knowledge_base.loaders import LoadResult, Origin
from knowledge_base.schema import (
    Article,
    Chunk,
    Product,
    Rejection,
    dumps_attributes,
    file_hash,
    stable_hash,
)
from knowledge_base.store import CollectionKind, KnowledgeStore

T = TypeVar("T")
Counted = Literal["products", "images", "chunks"]
# Chroma's `$in` filters get slow with very long lists.
_OWNER_GROUP = 256


# The ingestor's seams are declared here, not imported: the encoders and the auto-tagger live in
# `retrieval`, a higher layer, and satisfy these protocols structurally.


class TextEmbedder(Protocol):
    """Turns texts into L2-normalised float32 rows (`retrieval.encoders.text`); its `name` is
    recorded on the collections so a store is never queried with another encoder's vectors."""

    name: str

    def embed_texts(
        self, texts: Sequence[str], kind: Literal["query", "passage"] = "passage"
    ) -> np.ndarray: ...


class ImageEmbedder(Protocol):
    name: str

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray: ...


class AutotagResult(Protocol):
    """What an auto-tagging run reports back (`retrieval.autotag.AutotagReport`)."""

    @property
    def categorised(self) -> int:
        """Products given a predicted category."""
        ...

    @property
    def below_confidence(self) -> int:
        """Products left without one: the classifier was not sure enough."""
        ...


class Autotagger(Protocol):
    """Fills in, in place, the category and colour tags of products with photos but no category
    (`retrieval.autotag.autotag` with or without a trained category classifier)."""

    def __call__(self, loaded: LoadResult) -> AutotagResult: ...


class IngestReport(BaseModel):
    """What an ingest run did; `rejections` lists every input that was not used, and why.

    `*_embedded` records got a new vector, `*_updated` ones only new metadata (their vector source
    was unchanged), `*_unchanged` ones were left alone; `stale_removed` counts records of the
    ingested products and articles that no longer exist (a removed image, a shortened article).
    """

    products_embedded: int = 0
    products_updated: int = 0
    products_unchanged: int = 0
    images_embedded: int = 0
    images_updated: int = 0
    images_unchanged: int = 0
    chunks_embedded: int = 0
    chunks_updated: int = 0
    chunks_unchanged: int = 0
    articles_embedded: int = 0
    articles_unchanged: int = 0
    stale_removed: int = 0
    autotagged: int = Field(
        0, description="Products without a category that got predicted tags from their photo."
    )
    categories_predicted: int = Field(0, description="Of those, products given a category.")
    categories_unsure: int = Field(
        0, description="Of those, products left without one: the classifier was not sure enough."
    )
    seconds: float = 0.0
    rejections: list[Rejection] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.rejections

    def count(self, kind: Counted, outcome: str, amount: int = 1) -> None:
        name = f"{kind}_{outcome}"
        setattr(self, name, getattr(self, name) + amount)


@dataclass(frozen=True)
class IngestOptions:
    batch_size: int = 32
    chunk_size: int = 600
    chunk_overlap: int = 80
    max_image_pixels: int = 40_000_000
    max_image_side: int = 1024
    progress: bool = True


@dataclass
class _Record:
    """One row to write: its id, owner (product or article id), document, metadata and source."""

    id: str
    owner: str
    document: str
    metadata: dict[str, Any]
    vector_hash: str
    source: Any  # the text to embed, or the image path
    content_hash: str = field(init=False)

    def __post_init__(self) -> None:
        payload = json.dumps([self.document, self.metadata], sort_keys=True, default=str)
        self.content_hash = stable_hash(payload + self.vector_hash)

    def stored_metadata(self) -> dict[str, Any]:
        return {**self.metadata, "vector_hash": self.vector_hash, "content_hash": self.content_hash}


class Ingestor:
    """Writes products, their images and article chunks into a `KnowledgeStore`."""

    def __init__(
        self,
        store: KnowledgeStore,
        text_embedder: TextEmbedder,
        image_embedder: Callable[[], ImageEmbedder],
        image_encoder_name: str,
        options: IngestOptions | None = None,
        autotagger: Autotagger | None = None,
        on_images_changed: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.text_embedder = text_embedder
        self._image_embedder_factory = image_embedder
        self._image_embedder: ImageEmbedder | None = None
        self.image_encoder_name = image_encoder_name
        self.options = options or IngestOptions()
        self.autotagger = autotagger
        self.on_images_changed = on_images_changed

    @property
    def image_embedder(self) -> ImageEmbedder:
        """Loaded only when an image actually needs embedding, so text-only runs stay light."""
        if self._image_embedder is None:
            self._image_embedder = self._image_embedder_factory()
        return self._image_embedder

    def ingest(self, loaded: LoadResult) -> IngestReport:
        started = time.perf_counter()
        report = IngestReport(rejections=list(loaded.rejections))
        if self.autotagger is not None:
            before = list(loaded.products)
            # Unreadable photos are not rejected here: the image step below reports them once.
            tagged = self.autotagger(loaded)
            report.autotagged = sum(
                old != new for old, new in zip(before, loaded.products, strict=True)
            )
            report.categories_predicted = tagged.categorised
            report.categories_unsure = tagged.below_confidence
        products = _unique(loaded.products, "product", loaded.origins, report)
        articles = _unique(loaded.articles, "article", loaded.origins, report)
        self.store.collection("products", encoder=self.text_embedder.name)
        self.store.collection("articles", encoder=self.text_embedder.name)
        self.store.collection("images", encoder=self.image_encoder_name)
        images_before = (report.images_embedded, report.images_updated, report.stale_removed)
        # Product texts (E5) and images (ONNX) are embedded side by side: each engine leaves
        # gaps the other fills (600 catalogue products: 11.7 s one after the other, 11.0 s so).
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-texts") as side:
            texts = side.submit(self._ingest_products, products, report)
            self._ingest_images(products, loaded.origins, report)
            texts.result()
        images_after = (report.images_embedded, report.images_updated, report.stale_removed)
        if self.on_images_changed is not None and images_after != images_before:
            self.on_images_changed()
        self._ingest_articles(articles, report)
        report.seconds = round(time.perf_counter() - started, 3)
        return report

    # --- the three kinds of record ------------------------------------------------------------

    def _ingest_products(self, products: list[Product], report: IngestReport) -> None:
        records = [
            _Record(
                id=p.id,
                owner=p.id,
                document=p.document_text(),
                metadata=_product_metadata(p),
                vector_hash=stable_hash(p.dense_text()),
                source=p.dense_text(),
            )
            for p in products
        ]
        self._sync("products", records, "products", self._embed_texts, report, "product texts")

    def _ingest_images(
        self, products: list[Product], origins: dict[str, list[Origin]], report: IngestReport
    ) -> None:
        records: list[_Record] = []
        for product in products:
            for index, path in enumerate(product.images):
                try:
                    digest = file_hash(path)
                except OSError as exc:
                    report.rejections.append(
                        Rejection(
                            source=str(path),
                            reason=f"{_product_label(product, origins)}: image unreadable: "
                            f"{exc.strerror or exc}",
                        )
                    )
                    continue
                records.append(
                    _Record(
                        id=f"{product.id}#img{index}",
                        owner=product.id,
                        document=product.title,
                        metadata={
                            "product_id": product.id,
                            "category": product.category,
                            "path": str(path),
                            "predicted_category": "category" in product.predicted,
                        },
                        vector_hash=stable_hash(f"{digest}:{self.options.max_image_side}"),
                        source=path,
                    )
                )

        by_id = {product.id: product for product in products}

        def embed(batch: list[_Record]) -> tuple[list[_Record], np.ndarray]:
            decoded: list[tuple[_Record, Image.Image]] = []
            for record in batch:
                try:
                    image = load_image(
                        record.source, self.options.max_image_pixels, self.options.max_image_side
                    )
                except ImageRejected as exc:
                    product = by_id[record.owner]
                    reason = str(exc).split(": ", 1)[-1]
                    report.rejections.append(
                        Rejection(
                            source=str(record.source),
                            reason=f"{_product_label(product, origins)}: {reason}",
                        )
                    )
                    continue
                decoded.append((record, image))
            if not decoded:
                return [], np.zeros((0, 0), dtype=np.float32)
            vectors = self.image_embedder.embed_images([image for _, image in decoded])
            return [record for record, _ in decoded], vectors

        current = self._sync("images", records, "images", embed, report, "product images")
        self._prune("images", "product_id", [p.id for p in products], current, report)

    def _ingest_articles(self, articles: list[Article], report: IngestReport) -> None:
        options = self.options
        records: list[_Record] = []
        for article in articles:
            chunks = chunk_article(article, options.chunk_size, options.chunk_overlap)
            for chunk in chunks:
                text = f"{chunk.title}\n{chunk.text}"
                records.append(
                    _Record(
                        id=chunk.id,
                        owner=article.id,
                        document=chunk.text,
                        metadata=_chunk_metadata(chunk, len(chunks)),
                        vector_hash=stable_hash(text),
                        source=text,
                    )
                )
        changed: set[str] = set()
        current = self._sync(
            "articles", records, "chunks", self._embed_texts, report, "article chunks", changed
        )
        changed |= self._prune("articles", "article_id", [a.id for a in articles], current, report)
        report.articles_embedded += len(changed)
        report.articles_unchanged += len(articles) - len(changed)

    # --- the shared machinery -----------------------------------------------------------------

    def _embed_texts(self, batch: list[_Record]) -> tuple[list[_Record], np.ndarray]:
        return batch, self.text_embedder.embed_texts([r.source for r in batch], kind="passage")

    def _sync(
        self,
        kind: CollectionKind,
        records: list[_Record],
        counted: Counted,
        embed: Callable[[list[_Record]], tuple[list[_Record], np.ndarray]],
        report: IngestReport,
        label: str,
        changed_owners: set[str] | None = None,
    ) -> set[str]:
        """Write `records` in batches, embedding only what changed; returns the ids now stored.

        A batch's vectors are written by a writer thread while the next batch is embedded: the
        encoders run in C with the GIL released, so Chroma's write (~1 ms per record here, a
        tenth of an ingest) overlaps them. One write is in flight at a time, in order.
        """
        current: set[str] = set()
        changed = changed_owners if changed_owners is not None else set()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-write") as writer:
            writing: Future[None] | None = None
            for batch in self._batches(records, label):
                stored = self.store.stored_metadata(kind, [r.id for r in batch])
                fresh: list[_Record] = []
                refresh: list[_Record] = []
                for record in batch:
                    meta = stored.get(record.id)
                    if meta is not None and meta.get("content_hash") == record.content_hash:
                        current.add(record.id)
                    elif meta is not None and meta.get("vector_hash") == record.vector_hash:
                        refresh.append(record)
                    else:
                        fresh.append(record)
                report.count(counted, "unchanged", len(batch) - len(fresh) - len(refresh))
                if refresh:
                    self.store.refresh(
                        kind,
                        [r.id for r in refresh],
                        [r.document for r in refresh],
                        [r.stored_metadata() for r in refresh],
                    )
                    report.count(counted, "updated", len(refresh))
                    current.update(r.id for r in refresh)
                    changed.update(r.owner for r in refresh)
                if fresh:
                    done, vectors = embed(fresh)
                    if writing is not None:
                        writing.result()
                    writing = writer.submit(
                        self.store.upsert,
                        kind,
                        [r.id for r in done],
                        vectors,
                        [r.document for r in done],
                        [r.stored_metadata() for r in done],
                    )
                    report.count(counted, "embedded", len(done))
                    current.update(r.id for r in done)
                    changed.update(r.owner for r in done)
            if writing is not None:
                writing.result()
        return current

    def _prune(
        self,
        kind: CollectionKind,
        owner_key: str,
        owners: list[str],
        current: set[str],
        report: IngestReport,
    ) -> set[str]:
        """Delete records of `owners` that this run did not write; returns the owners touched."""
        touched: set[str] = set()
        for group in _chunks_of(owners, _OWNER_GROUP):
            hits = self.store.get(kind, where={owner_key: {"$in": group}})
            stale = [hit for hit in hits if hit.id not in current]
            if stale:
                touched.update(str(hit.metadata.get(owner_key)) for hit in stale)
                report.stale_removed += self.store.delete(kind, ids=[hit.id for hit in stale])
        return touched

    def _batches(self, items: list[T], label: str) -> Iterator[list[T]]:
        disable = not self.options.progress or not items
        with tqdm(total=len(items), desc=label, unit="rec", disable=disable) as bar:
            for batch in _chunks_of(items, self.options.batch_size):
                yield batch
                bar.update(len(batch))


def _chunks_of(items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _unique(
    records: list[Any], label: str, origins: dict[str, list[Origin]], report: IngestReport
) -> list[Any]:
    """Keep the last record of each id and reject the earlier ones, saying where each one was."""
    totals = Counter(record.id for record in records)
    seen: Counter[str] = Counter()
    by_id: dict[str, Any] = {}
    for record in records:
        record_id = record.id
        where = origins.get(f"{label}:{record_id}", [])
        position = seen[record_id]
        seen[record_id] += 1
        if position < totals[record_id] - 1:
            mine = where[position] if position < len(where) else Origin(f"{label} {record_id}")
            last = where[-1] if len(where) == totals[record_id] else None
            winner = f" (the one at {last} is kept)" if last else " (the last one is kept)"
            report.rejections.append(
                Rejection(
                    source=mine.source,
                    line=mine.line,
                    reason=f"duplicate {label} id {record_id!r}{winner}",
                )
            )
        by_id[record_id] = record
    return list(by_id.values())


def _product_label(product: Product, origins: dict[str, list[Origin]]) -> str:
    where = origins.get(f"product:{product.id}")
    return f"image of product {product.id!r}" + (f" ({where[-1]})" if where else "")


def _product_metadata(product: Product) -> dict[str, Any]:
    predicted_category = "category" in product.predicted
    colours = [
        name.removeprefix("colour:") for name in product.predicted if name.startswith("colour:")
    ]
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
        "category_source": ("predicted" if predicted_category else "catalogue")
        if product.category
        else None,
        "category_confidence": product.predicted["category"] if predicted_category else None,
        "colour_tags": ", ".join(colours) or None,
        "description": product.description,
        "description_zh": product.description_zh or None,
    }


def _chunk_metadata(chunk: Chunk, total: int) -> dict[str, Any]:
    return {
        "article_id": chunk.article_id,
        "title": chunk.title,
        "language": chunk.language,
        "kind": chunk.kind,
        "tags": ", ".join(chunk.tags),
        "position": chunk.position,
        "chunk_count": total,
    }
