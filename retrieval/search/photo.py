"""Photo → product search that survives real customer photos and says how sure it is.

A customer's photo differs from the catalogue image: cropped, tilted, other light and background,
recompressed. The matcher therefore

1. embeds several views of the photo (the whole photo and centred crops, which drop the
   customer's background) and scores each catalogue image by its best-agreeing view;
2. takes a generous candidate list from the index and re-scores it exactly;
3. predicts the photo's category (the trained category model when given, otherwise a vote of the
   nearest catalogue products) and can reward products that agree with it;
4. keeps the best image per product;
5. turns (top-1 similarity, margin to the runner-up, category agreement) into a calibrated
   probability that the top product is right (`retrieval.heads.photo_matcher`, fitted by
   `retrieval.training.photo_match`). Below the threshold the result is "not sure" and
   the assistant asks "is it one of these?" instead of asserting.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from PIL import Image
from pydantic import BaseModel, Field

from knowledge_base.store import KnowledgeStore, Where
from retrieval.encoders.text import l2_normalise
from retrieval.heads.photo_matcher import (
    DEFAULT_CALIBRATOR,
    MatchCalibrator,
    latest_calibrator_dir,
    load_calibrator,
)
from retrieval.search.dense import top_rows
from retrieval.search.types import ProductMatch, product_from_metadata

CategoryPredictor = Callable[[Sequence[Image.Image]], list[tuple[str, float]]]
"""images → one (label, confidence) per image, e.g. the trained category head."""


def centre_crop(share: float) -> Callable[[Image.Image], Image.Image]:
    """The centred `share` of width and height: customers tend to centre what they photograph."""

    def view(image: Image.Image) -> Image.Image:
        width, height = image.size
        crop_w, crop_h = max(1, round(width * share)), max(1, round(height * share))
        left, top = (width - crop_w) // 2, (height - crop_h) // 2
        return image.crop((left, top, left + crop_w, top + crop_h))

    return view


QUERY_VIEWS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "full": lambda image: image,
    "centre80": centre_crop(0.80),
    "centre65": centre_crop(0.65),
}
"""Named views of the customer photo; names are feature-cache keys, so never change a meaning."""


class ImageEmbedder(Protocol):
    name: str
    dim: int

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray: ...


@dataclass(frozen=True)
class ImageCandidate:
    """One catalogue image returned by an index, with its vector for exact re-scoring."""

    image_id: str
    product_id: str
    category: str
    path: str | None
    vector: np.ndarray


class ImageIndex(Protocol):
    """Where catalogue image vectors live: the Chroma store, or an exact in-memory array."""

    def nearest(
        self, vectors: np.ndarray, n: int, where: Where | None = None
    ) -> list[ImageCandidate]:
        """The union of about the `n` images nearest to each row of `vectors`."""
        ...

    def products(self, product_ids: Sequence[str]) -> dict[str, dict[str, Any]]: ...


class StoreImageIndex:
    """The store's `images` collection (HNSW); product facts come from `products`."""

    def __init__(self, store: KnowledgeStore, encoder_name: str) -> None:
        self.store = store
        self.encoder_name = encoder_name

    def nearest(
        self, vectors: np.ndarray, n: int, where: Where | None = None
    ) -> list[ImageCandidate]:
        collection = self.store.collection("images", encoder=self.encoder_name)
        # Chroma returns what it has when asked for more; count() would cost a scan.
        found = collection.query(
            query_embeddings=list(np.atleast_2d(np.asarray(vectors, dtype=np.float32))),
            n_results=n,
            where=dict(where) if where else None,
            include=["metadatas", "embeddings"],
        )
        metadata_rows = found["metadatas"]
        embedding_rows = found["embeddings"]
        if metadata_rows is None or embedding_rows is None:
            raise RuntimeError("the store returned no metadata or vectors for photo search")
        candidates: dict[str, ImageCandidate] = {}
        for ids, metadatas, embeddings in zip(
            found["ids"], metadata_rows, embedding_rows, strict=True
        ):
            for image_id, meta, embedding in zip(ids, metadatas, embeddings, strict=True):
                if image_id in candidates:
                    continue
                meta = meta or {}
                path = meta.get("path")
                candidates[image_id] = ImageCandidate(
                    image_id=image_id,
                    product_id=str(meta.get("product_id", image_id)),
                    category=str(meta.get("category", "")),
                    path=str(path) if path else None,
                    vector=np.asarray(embedding, dtype=np.float32),
                )
        return list(candidates.values())

    def products(self, product_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not product_ids:
            return {}
        return {hit.id: hit.metadata for hit in self.store.get("products", ids=list(product_ids))}


class ArrayImageIndex:
    """Exact cosine search over an in-memory matrix: evaluation, tests and, since exact search
    over 100k×1280 float32 takes ~9 ms here, catalogues where approximate recall is too low."""

    def __init__(
        self,
        vectors: np.ndarray,
        product_ids: Sequence[str],
        categories: Sequence[str],
        paths: Sequence[str | None] | None = None,
        titles: Sequence[str] | None = None,
    ) -> None:
        if not len(vectors) == len(product_ids) == len(categories):
            raise ValueError("vectors, product_ids and categories must have the same length")
        self.vectors = l2_normalise(vectors)
        self.columns = {"product_id": np.asarray(product_ids), "category": np.asarray(categories)}
        self.paths = list(paths) if paths is not None else [None] * len(product_ids)
        names = list(titles) if titles is not None else list(product_ids)
        self._facts = {
            pid: {"title": title, "category": category}
            for pid, title, category in zip(product_ids, names, categories, strict=True)
        }

    def nearest(
        self, vectors: np.ndarray, n: int, where: Where | None = None
    ) -> list[ImageCandidate]:
        """Top `n` by the best similarity to any row: one pass over the matrix for all rows."""
        allowed = self._mask(where)
        probes = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        similarity = (self.vectors @ probes.T).max(axis=1) if len(self.vectors) else np.zeros(0)
        scores = np.where(allowed, similarity, -np.inf)
        top = top_rows(scores, min(n, int(allowed.sum())))
        product_ids, categories = self.columns["product_id"], self.columns["category"]
        return [
            ImageCandidate(
                image_id=f"{product_ids[i]}#{i}",
                product_id=str(product_ids[i]),
                category=str(categories[i]),
                path=self.paths[i],
                vector=self.vectors[i],
            )
            for i in top
        ]

    def products(self, product_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        return {pid: self._facts[pid] for pid in product_ids if pid in self._facts}

    def _mask(self, where: Where | None) -> np.ndarray:
        """The part of Chroma's filter language the matcher uses: equality, $eq, $ne, $in, $nin,
        and $and of those."""
        allowed = np.ones(len(self.vectors), dtype=bool)
        for key, condition in (where or {}).items():
            if key == "$and":
                for part in condition:
                    allowed &= self._mask(part)
                continue
            if key not in self.columns:
                raise ValueError(
                    f"the in-memory index filters by {sorted(self.columns)}, not {key!r}"
                )
            column = self.columns[key]
            if not isinstance(condition, Mapping):
                condition = {"$eq": condition}
            for operator, value in condition.items():
                if operator == "$eq":
                    allowed &= column == value
                elif operator == "$ne":
                    allowed &= column != value
                elif operator in ("$in", "$nin"):
                    inside = np.isin(column, list(value))
                    allowed &= inside if operator == "$in" else ~inside
                else:
                    raise ValueError(f"unsupported filter operator {operator!r}")
        return allowed


class MirroredStoreIndex:
    """Exact search over an in-memory copy of the store's image vectors, for catalogues where
    HNSW recall is too low (see bench/search.py); facts still come from the store.

    The copy is reloaded on `refresh()` (the ingestor of this process calls it when images
    change) and when the store's generation (`KnowledgeStore.generation`: any writer's change)
    or the number of images changed; both are checked at most every `recheck_s` seconds,
    because counting costs a scan of the collection (~15 ms at 100k). A reload reads every
    vector, so during a long ingest by another writer it happens once per `recheck_s`.
    """

    def __init__(
        self, store: KnowledgeStore, encoder_name: str, page: int = 10_000, recheck_s: float = 2.0
    ) -> None:
        self.source = StoreImageIndex(store, encoder_name)
        self.page = page
        self.recheck_s = recheck_s
        self._copy: ArrayImageIndex | None = None
        self._count = -1
        self._generation: str | None = None
        self._checked_at = -math.inf
        self._lock = threading.Lock()

    def refresh(self) -> None:
        self._copy = None

    def nearest(
        self, vectors: np.ndarray, n: int, where: Where | None = None
    ) -> list[ImageCandidate]:
        return self._current().nearest(vectors, n, where)

    def products(self, product_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        return self.source.products(product_ids)

    def _current(self) -> ArrayImageIndex:
        with self._lock:
            now = time.monotonic()
            if self._copy is not None and now - self._checked_at < self.recheck_s:
                return self._copy
            self._checked_at = now
            return self._reload_if_changed()

    def _reload_if_changed(self) -> ArrayImageIndex:
        store = self.source.store
        collection = store.collection("images", encoder=self.source.encoder_name)
        generation = store.generation()
        count = collection.count()
        if self._copy is None or count != self._count or generation != self._generation:
            vectors, metadatas = [], []
            for offset in range(0, count, self.page):
                found = collection.get(
                    include=["embeddings", "metadatas"], limit=self.page, offset=offset
                )
                vectors.append(np.asarray(found["embeddings"], dtype=np.float32))
                metadatas += [meta or {} for meta in found["metadatas"] or []]
            matrix = np.concatenate(vectors) if vectors else np.zeros((0, 1), dtype=np.float32)
            self._copy = ArrayImageIndex(
                matrix,
                [str(m.get("product_id", "")) for m in metadatas],
                [str(m.get("category", "")) for m in metadatas],
                [str(m["path"]) if m.get("path") else None for m in metadatas],
            )
            self._count = count
            self._generation = generation
        return self._copy


class PhotoMatch(ProductMatch):
    """A product candidate for a customer photo, with why it ranks where it does."""

    confidence: float = Field(
        description="Calibrated P(this is the product shown), from its similarity, its margin "
        "over the best other product and category agreement."
    )
    similarity: float = Field(description="Best cosine similarity of a photo view and an image.")
    category_agrees: bool | None = Field(
        None, description="Product category equals the photo's predicted category (None: unknown)."
    )
    matched_view: str = Field("full", description="The view of the customer photo that matched.")


class PhotoSearchResult(BaseModel):
    """Ranked candidates and the decision: sure enough to name the product, or ask."""

    matches: list[PhotoMatch]
    confident: bool = Field(description="True when `confidence` reaches `threshold`.")
    confidence: float = Field(description="Calibrated P(the first match is the product shown).")
    threshold: float
    margin: float = Field(
        0.0,
        description="Score of the first match minus that of the best other product (listings "
        "of the very same photo under another id do not count as other).",
    )
    predicted_category: str | None = None
    category_confidence: float | None = None
    category_source: Literal["model", "catalogue", "none"] = "none"
    seconds: float = 0.0


@dataclass(frozen=True)
class MatcherConfig:
    """How the photo is embedded and candidates scored; defaults tuned on clothing-small/train."""

    views: tuple[str, ...] = ("full", "centre80", "centre65")
    candidates: int = 50
    category_bonus: float = 0.0
    vote_products: int = 10
    vote_temperature: float = 0.05


@dataclass
class _Scored:
    candidates: list[ImageCandidate]
    similarity: np.ndarray
    best_view: np.ndarray


class PhotoMatcher:
    """Customer photo → ranked products with a calibrated confidence and the evidence behind it."""

    def __init__(
        self,
        index: ImageIndex,
        encoder: ImageEmbedder,
        category_predictor: CategoryPredictor | None = None,
        calibrator: MatchCalibrator | None = None,
        config: MatcherConfig | None = None,
    ) -> None:
        self.config = config or MatcherConfig()
        unknown = set(self.config.views) - set(QUERY_VIEWS)
        if unknown or not self.config.views:
            raise ValueError(
                f"query views must be some of {sorted(QUERY_VIEWS)}, got {self.config.views}"
            )
        self.index = index
        self.encoder = encoder
        self.category_predictor = category_predictor
        self.calibrator = calibrator or DEFAULT_CALIBRATOR

    def embed_query(self, image: Image.Image) -> np.ndarray:
        """One L2-normalised row per configured view of the customer photo."""
        return self.encoder.embed_images([QUERY_VIEWS[name](image) for name in self.config.views])

    def search(
        self, image: Image.Image, k: int = 5, where: Where | None = None
    ) -> PhotoSearchResult:
        started = time.perf_counter()
        views = self.embed_query(image)
        category: tuple[str, float] | None = None
        if self.category_predictor is not None:
            category = self.category_predictor([image])[0]
        result = self.match(views, k, where, category)
        result.seconds = round(time.perf_counter() - started, 4)
        return result

    def match(
        self,
        views: np.ndarray,
        k: int = 5,
        where: Where | None = None,
        category: tuple[str, float] | None = None,
    ) -> PhotoSearchResult:
        """Rank products for precomputed view vectors; `category` is the model's prediction."""
        scored = self._score(np.atleast_2d(views), where)
        if scored is None:
            return PhotoSearchResult(
                matches=[], confident=False, confidence=0.0, threshold=self.calibrator.threshold
            )
        source: Literal["model", "catalogue"] = "model" if category else "catalogue"
        label, label_confidence = category or self._vote(scored)
        scores = scored.similarity + self.config.category_bonus * np.asarray(
            [c.category == label for c in scored.candidates], dtype=np.float32
        )
        ranked = _best_per_product(scored.candidates, scores)
        top = float(scores[ranked[0][1]])
        margins = [top - _runner_up(scored.candidates, scores, ranked)] + [
            float(scores[i]) - top for _, i in ranked[1:k]
        ]
        facts = self.index.products([pid for pid, _ in ranked[:k]])
        matches = []
        for (pid, i), margin in zip(ranked[:k], margins, strict=True):
            candidate = scored.candidates[i]
            agrees = candidate.category == label
            meta = facts.get(pid) or {"title": pid, "category": candidate.category}
            base = product_from_metadata(pid, float(scores[i]), meta, candidate.path)
            matches.append(
                PhotoMatch(
                    **base.model_dump(),
                    confidence=round(
                        self.calibrator.probability(
                            [float(scored.similarity[i]), margin, float(agrees)]
                        ),
                        4,
                    ),
                    similarity=round(float(scored.similarity[i]), 4),
                    category_agrees=agrees,
                    matched_view=self.config.views[int(scored.best_view[i])],
                )
            )
        confidence = matches[0].confidence
        return PhotoSearchResult(
            matches=matches,
            confident=confidence >= self.calibrator.threshold,
            confidence=confidence,
            threshold=self.calibrator.threshold,
            margin=round(margins[0], 4),
            predicted_category=label,
            category_confidence=round(label_confidence, 4),
            category_source=source,
        )

    def _score(self, views: np.ndarray, where: Where | None) -> _Scored | None:
        """Candidates near the views' mean direction (one index query, not one per view: a
        third of the time at 100k images), each scored by its best-agreeing view."""
        probe = l2_normalise(views.mean(axis=0, keepdims=True))
        candidates = self.index.nearest(probe, self.config.candidates, where)
        if not candidates:
            return None
        per_view = views @ np.stack([c.vector for c in candidates]).T
        return _Scored(candidates, per_view.max(axis=0), per_view.argmax(axis=0))

    def _vote(self, scored: _Scored) -> tuple[str, float]:
        """The category of the nearest products, softmax-weighted by similarity."""
        ranked = _best_per_product(scored.candidates, scored.similarity)[
            : self.config.vote_products
        ]
        sims = np.asarray([scored.similarity[i] for _, i in ranked])
        weights = np.exp((sims - sims.max()) / self.config.vote_temperature)
        totals: dict[str, float] = {}
        for (_, i), weight in zip(ranked, weights, strict=True):
            label = scored.candidates[i].category
            totals[label] = totals.get(label, 0.0) + float(weight)
        label = max(totals, key=lambda name: totals[name])
        return label, totals[label] / float(weights.sum())


RELISTED_SIMILARITY = 0.9999
"""Image vectors this close are the same photo: a product re-listed under another id."""


def _runner_up(
    candidates: Sequence[ImageCandidate], scores: np.ndarray, ranked: Sequence[tuple[str, int]]
) -> float:
    """Score of the best other product whose image is not the first one's photo re-listed
    (0 when there is none): two listings of one photo are not rivals, so they do not make the
    matcher unsure."""
    first = candidates[ranked[0][1]].vector
    for _, i in ranked[1:]:
        if float(np.dot(candidates[i].vector, first)) < RELISTED_SIMILARITY:
            return float(scores[i])
    return 0.0


def _best_per_product(
    candidates: Sequence[ImageCandidate], scores: np.ndarray
) -> list[tuple[str, int]]:
    """(product id, index of its best image), best product first."""
    best: dict[str, int] = {}
    for i, candidate in enumerate(candidates):
        if candidate.product_id not in best or scores[i] > scores[best[candidate.product_id]]:
            best[candidate.product_id] = i
    return sorted(best.items(), key=lambda item: -float(scores[item[1]]))


def load_artefact(artifacts_dir: Path) -> tuple[MatchCalibrator, MatcherConfig] | None:
    """The newest trained calibrator (`photo-match-vN/`) and the matcher config it was fitted
    with, or None when none exists."""
    folder = latest_calibrator_dir(artifacts_dir)
    if folder is None:
        return None
    calibrator, meta = load_calibrator(folder)
    config = meta.get("config", {})
    config["views"] = tuple(config.get("views", MatcherConfig.views))
    return calibrator, MatcherConfig(**config)
