"""Text → product photos through a shared space, fused with text-only product search.

The projected image vectors live in an exact in-memory numpy matrix, not in a fourth Chroma
collection, because:
- they are derived data, a pure function of (stored image features, head weights): every
  retraining would otherwise rewrite a whole collection (~700 vectors/s here) and need
  versioning so that two heads' vectors never mix;
- exact search is affordable at catalogue sizes (a 100k × 384 float32 matrix is 150 MB and a
  query costs a few milliseconds) and has no HNSW recall loss (Chroma's defaults measured a
  recall@10 of 0.07 at 100k);
- the three-collection store stays unchanged.
The matrix is rebuilt incrementally: only images whose content hash changed are fetched and
projected again, and the store is re-listed when its generation (any writer's change) or its
image count changes, or the matrix ages.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, Field

from knowledge_base.store import KnowledgeStore, Where
from retrieval.encoders.image import ImageEncoder
from retrieval.encoders.text import TextEmbedder
from retrieval.heads.alignment import AlignmentHead, check_compatible, load_alignment_head
from retrieval.search.types import ProductMatch, product_from_metadata


@dataclass(frozen=True)
class StoredImage:
    """A product image record of the store, with the image features it was ingested with."""

    id: str
    product_id: str
    path: str
    features: np.ndarray


class ImageTextSpace(Protocol):
    """A space where text queries and product images can be compared by cosine similarity."""

    name: str

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def project_images(self, images: Sequence[StoredImage]) -> np.ndarray: ...


class HeadSpace:
    """The trained alignment head: queries through the text embedder, images through the head."""

    def __init__(self, head: AlignmentHead, text_embedder: TextEmbedder) -> None:
        check_compatible(head, text_embedder.name)
        self.head = head
        self.text_embedder = text_embedder
        self.image_encoder = head.image_encoder or ImageEncoder.name
        self.name = f"align-v1:{head.fingerprint}"

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.text_embedder.embed_texts(texts, kind="query")

    def project_images(self, images: Sequence[StoredImage]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.head.dim), dtype=np.float32)
        return self.head.image_to_text_space(np.stack([image.features for image in images]))


@dataclass(frozen=True)
class ImageHit:
    product_id: str
    image_id: str
    path: str
    score: float


@dataclass(frozen=True)
class _Snapshot:
    """One consistent state of the index, swapped in whole so readers never see a mix."""

    ids: list[str]
    hashes: list[str]
    products: np.ndarray
    paths: list[str]
    matrix: np.ndarray
    built_at: float
    generation: str = ""


_EMPTY = _Snapshot([], [], np.zeros(0, dtype=object), [], np.zeros((0, 0), np.float32), -1.0)


class ProjectedImageIndex:
    """Every stored product image projected into a space's query space, searched exactly."""

    def __init__(
        self,
        store: KnowledgeStore,
        space: ImageTextSpace,
        max_age_s: float = 30.0,
        page: int = 1000,
    ) -> None:
        self.store = store
        self.space = space
        self.max_age_s = max_age_s
        self.page = page
        self._lock = threading.Lock()
        self._snapshot = _EMPTY

    def __len__(self) -> int:
        return len(self._snapshot.ids)

    def refresh(self, force: bool = False) -> int:
        """Bring the matrix up to date with the store; returns how many images were projected."""
        with self._lock:
            if not force and not self._stale():
                return 0
            old = self._snapshot
            generation = self.store.generation()
            collection = self.store.collection("images")
            listing = self._list(collection)
            previous = {record_id: row for row, record_id in enumerate(old.ids)}
            todo = [
                record_id
                for record_id, (digest, _, _) in listing.items()
                if not digest
                or record_id not in previous
                or old.hashes[previous[record_id]] != digest
            ]
            projected = self._project(collection, todo)
            dim = projected.shape[1] if len(projected) else old.matrix.shape[1]
            matrix = np.zeros((len(listing), dim), dtype=np.float32)
            fresh = {record_id: row for row, record_id in enumerate(todo)}
            for row, record_id in enumerate(listing):
                if record_id in fresh:
                    matrix[row] = projected[fresh[record_id]]
                else:
                    matrix[row] = old.matrix[previous[record_id]]
            self._snapshot = _Snapshot(
                ids=list(listing),
                hashes=[digest for digest, _, _ in listing.values()],
                products=np.array([p for _, p, _ in listing.values()], dtype=object),
                paths=[path for _, _, path in listing.values()],
                matrix=matrix,
                built_at=time.monotonic(),
                generation=generation,
            )
            return len(todo)

    def _stale(self) -> bool:
        snapshot = self._snapshot
        if snapshot is _EMPTY or time.monotonic() - snapshot.built_at > self.max_age_s:
            return True
        if self.store.generation() != snapshot.generation:
            return True
        return self.store.count("images") != len(snapshot.ids)

    def _list(self, collection: Any) -> dict[str, tuple[str, str, str]]:
        """id → (content hash, product id, path) of every stored image, read page by page."""
        listing: dict[str, tuple[str, str, str]] = {}
        offset = 0
        while True:
            page = collection.get(include=["metadatas"], limit=self.page, offset=offset)
            for record_id, meta in zip(page["ids"], page["metadatas"] or [], strict=False):
                meta = meta or {}
                listing[record_id] = (
                    str(meta.get("content_hash", "")),
                    str(meta.get("product_id", record_id)),
                    str(meta.get("path", "")),
                )
            if len(page["ids"]) < self.page:
                return listing
            offset += self.page

    def _project(self, collection: Any, ids: list[str]) -> np.ndarray:
        rows: list[np.ndarray] = []
        for start in range(0, len(ids), self.page):
            batch = ids[start : start + self.page]
            found = collection.get(ids=batch, include=["embeddings", "metadatas"])
            by_id = {
                record_id: StoredImage(
                    record_id,
                    str((meta or {}).get("product_id", record_id)),
                    str((meta or {}).get("path", "")),
                    np.asarray(vector, dtype=np.float32),
                )
                for record_id, vector, meta in zip(
                    found["ids"], found["embeddings"], found["metadatas"] or [], strict=False
                )
            }
            rows.append(self.space.project_images([by_id[record_id] for record_id in batch]))
        return np.concatenate(rows) if rows else np.zeros((0, 0), dtype=np.float32)

    def search(
        self, query: np.ndarray, k: int, product_ids: set[str] | None = None
    ) -> list[ImageHit]:
        """Best image per product, best products first; `product_ids` restricts the products."""
        self.refresh()
        snapshot = self._snapshot
        if not snapshot.ids:
            return []
        scores = snapshot.matrix @ np.asarray(query, dtype=np.float32)
        if product_ids is not None:
            allowed = np.isin(snapshot.products, list(product_ids))
            scores = np.where(allowed, scores, -np.inf)
        return _best_per_product(snapshot, scores, k)


def _best_per_product(snapshot: _Snapshot, scores: np.ndarray, k: int) -> list[ImageHit]:
    """Top k products by best image; sorts a partitioned head, widening it only if needed."""
    limit = min(len(scores), max(8 * k, 64))
    while True:
        head = np.argpartition(-scores, limit - 1)[:limit]
        hits: list[ImageHit] = []
        seen: set[str] = set()
        for row in head[np.argsort(-scores[head], kind="stable")]:
            if not np.isfinite(scores[row]) or len(hits) == k:
                break
            product_id = str(snapshot.products[row])
            if product_id not in seen:
                seen.add(product_id)
                hits.append(
                    ImageHit(product_id, snapshot.ids[row], snapshot.paths[row], float(scores[row]))
                )
        if len(hits) == k or limit == len(scores) or not np.isfinite(scores[head]).all():
            return hits
        limit = min(len(scores), 4 * limit)


class Evidence(BaseModel):
    """Why a product was returned: its rank and score in one source."""

    source: Literal["text", "image"]
    rank: int
    score: float
    image: str | None = None


class CrossModalMatch(ProductMatch):
    """A product from fused search; `score` is the weighted reciprocal-rank-fusion score."""

    evidence: list[Evidence] = Field(default_factory=list)


TextRanking = Callable[[str, int, Where | None], Sequence[ProductMatch]]
Ranking = list[tuple[str, float, str | None]]

# Weight of the photo ranking against 1.0 for the text ranking (weighted RRF, k=60) in text search
# with photo evidence; `kb search`, `/v1/search/text` and the UI all default to it. Held-out
# products at catalogue scale: the 3,000 lowest ids of the product-catalogue-dev set as a CSV
# (category = articleType, the other columns as attributes, one photo each; each title is a
# query, the product's other text the text side), 3 folds, the head trained on the other folds:
#   shopsight eval text-to-image --data catalogue3000.csv --folds 3 --image-weight W
#   weight     0      0.05   0.1    0.25   0.5    1.0    (text only)
#   recall@1   0.236  0.327  0.352  0.375  0.378  0.380  (0.235)
#   recall@5   -      -      0.698  0.720  0.724  -      (0.577)
#   recall@10  0.734  0.803  0.810  0.831  0.857  0.836  (0.739)
# (recall@5: the same evaluation with ks=(1, 5, 10)). Gains flatten from 0.25: 0.5 and 1.0 add
# at most 0.005 at recall@1 and @5, below one standard error (about 0.009 for 3,000 queries), and
# 0.25 is the lightest weight of that plateau. Where the text says far more than the photos it
# costs: on the 59 demo products (drawings) fused recall@1 fell from 0.93 (text only) to 0.61 at
# 0.25 with 2 folds (0.97 to 0.90 with 5), and held up to 0.05.
DEFAULT_IMAGE_WEIGHT = 0.25


class CrossModalSearcher:
    """Text query → products, fusing a text ranking of products with text→image search.

    The text ranking is dense product search by default; pass `text_search` to fuse another
    (e.g. hybrid dense + BM25). Reciprocal-rank fusion (weighted) rather than score blending:
    cosine scores of the text space and of projected images have uncalibrated scales.
    """

    def __init__(
        self,
        store: KnowledgeStore,
        text_embedder: TextEmbedder,
        space: ImageTextSpace,
        text_weight: float = 1.0,
        image_weight: float = 1.0,
        rrf_k: int = 60,
        candidates: int = 50,
        max_age_s: float = 30.0,
        text_search: TextRanking | None = None,
    ) -> None:
        self.store = store
        self.text_embedder = text_embedder
        self.space = space
        self.text_weight = text_weight
        self.image_weight = image_weight
        self.rrf_k = rrf_k
        self.candidates = candidates
        self.text_search: TextRanking = text_search or self._dense_products
        self.index = ProjectedImageIndex(store, space, max_age_s)
        # Both sides of a head space embed the same query with the same model: embed it once.
        self._text_query: Callable[[str], np.ndarray] = lru_cache(256)(self._embed_text_query)
        shares_queries = isinstance(space, HeadSpace) and space.text_embedder is text_embedder
        self._image_query: Callable[[str], np.ndarray] = (
            self._text_query if shares_queries else lru_cache(256)(self._embed_image_query)
        )

    def search(self, query: str, k: int = 5, where: Where | None = None) -> list[CrossModalMatch]:
        """Fused results with per-source evidence, best first."""
        depth = max(k, self.candidates)
        text_matches = {m.product_id: m for m in self.text_search(query, depth, where)}
        image_hits = self.image_hits(query, depth, where)
        evidence: dict[str, list[Evidence]] = {}
        fused: dict[str, float] = {}
        sources: list[tuple[Literal["text", "image"], float, Ranking]] = [
            ("text", self.text_weight, [(pid, m.score, None) for pid, m in text_matches.items()]),
            ("image", self.image_weight, [(h.product_id, h.score, h.path) for h in image_hits]),
        ]
        for source, weight, ranking in sources:
            for rank, (product_id, score, image) in enumerate(ranking, start=1):
                evidence.setdefault(product_id, []).append(
                    Evidence(source=source, rank=rank, score=round(score, 4), image=image)
                )
                fused[product_id] = fused.get(product_id, 0.0) + weight / (self.rrf_k + rank)
        ranked = sorted(fused, key=lambda pid: (-fused[pid], pid))[:k]
        missing = [pid for pid in ranked if pid not in text_matches]
        stored = (
            {h.id: h.metadata for h in self.store.get("products", ids=missing)} if missing else {}
        )
        matches = []
        for product_id in ranked:
            base = text_matches.get(product_id) or product_from_metadata(
                product_id, 0.0, stored.get(product_id) or {"title": product_id}
            )
            image = next((e.image for e in evidence[product_id] if e.image), None)
            fields = {**base.model_dump(), "score": round(fused[product_id], 6)}
            fields["matched_image"] = image or fields.get("matched_image")
            matches.append(CrossModalMatch(**fields, evidence=evidence[product_id]))
        return matches

    def image_hits(self, query: str, k: int, where: Where | None = None) -> list[ImageHit]:
        """Text → image search alone: products by their best projected image."""
        allowed = None
        if where:
            found = self.store.collection("products").get(where=dict(where), include=[])
            allowed = set(found["ids"])
        return self.index.search(self._image_query(query), k, allowed)

    def _embed_text_query(self, query: str) -> np.ndarray:
        return self.text_embedder.embed_texts([query], kind="query")[0]

    def _embed_image_query(self, query: str) -> np.ndarray:
        return self.space.embed_queries([query])[0]

    def _dense_products(self, query: str, k: int, where: Where | None) -> list[ProductMatch]:
        vector = self._text_query(query)
        self.store.collection("products", encoder=self.text_embedder.name)
        hits = self.store.query("products", vector, k, where)
        return [product_from_metadata(hit.id, hit.score, hit.metadata) for hit in hits]


def build_cross_modal_searcher(
    store: KnowledgeStore,
    text_embedder: TextEmbedder,
    artifacts_dir: Path,
    clip_path: Path | None = None,
    image_weight: float = DEFAULT_IMAGE_WEIGHT,
    max_image_pixels: int = 40_000_000,
    max_image_side: int = 1024,
    text_search: TextRanking | None = None,
) -> CrossModalSearcher | None:
    """The fused searcher for the configured space, or None when there is none.

    A local CLIP checkpoint (`clip_path`) wins; otherwise the trained head under
    `artifacts_dir/align-vN` (the newest) is used when present. Raises `AlignmentMismatch` when that head
    was trained for another text embedder.
    """
    space: ImageTextSpace
    if clip_path is not None:
        from retrieval.encoders.clip_local import ClipSpace, LocalClipEncoder

        space = ClipSpace(LocalClipEncoder(clip_path), max_image_pixels, max_image_side)
    else:
        head = load_alignment_head(artifacts_dir, text_embedder.name)
        if head is None:
            return None
        head_space = HeadSpace(head, text_embedder)
        store.collection("images", encoder=head_space.image_encoder)
        space = head_space
    return CrossModalSearcher(
        store, text_embedder, space, image_weight=image_weight, text_search=text_search
    )
