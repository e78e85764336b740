"""Hybrid text search: dense vectors and BM25, fused by reciprocal rank fusion (RRF).

Dense search finds paraphrases; BM25 finds exact words the embedder blurs (order numbers, product
codes, rare brand names). RRF needs no score calibration between the two: each list contributes
weight / (rrf_k + rank) per item. Every result keeps both ranks, so the "why" stays visible.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from knowledge_base.store import CollectionKind, Hit, KnowledgeStore, Where
from retrieval.encoders.text import TextEmbedder
from retrieval.search.bm25 import BM25Variant, CollectionCache
from retrieval.search.columns import MetadataColumns
from retrieval.search.tokenize import Tokenizer, TokenizerOptions
from retrieval.search.types import ArticleMatch, ProductMatch, product_from_metadata

SearchMode = Literal["hybrid", "dense", "bm25"]
SEARCH_MODES: tuple[SearchMode, ...] = ("hybrid", "dense", "bm25")


class SearchFilters(BaseModel):
    """Metadata filters, applied identically to the dense side (as a Chroma `where`) and to BM25.

    A record that lacks a filtered field never matches, as in Chroma. Articles carry only a
    language, so the product fields are refused for article searches instead of silently
    matching nothing.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    category: str | None = None
    min_price: float | None = Field(default=None, ge=0)
    max_price: float | None = Field(default=None, ge=0)
    in_stock: bool | None = None
    language: str | None = None
    product_id: str | None = None
    # One of several values: "shoes" is Casual, Sports and Formal Shoes in one shop; attribute
    # constraints (colour, gender inside the JSON `attributes`) arrive resolved to product ids.
    categories: frozenset[str] | None = None
    product_ids: frozenset[str] | None = None

    @model_validator(mode="after")
    def _price_range(self) -> SearchFilters:
        low, high = self.min_price, self.max_price
        if low is not None and high is not None and low > high:
            raise ValueError(f"min_price {low} is above max_price {high}")
        for name in ("categories", "product_ids"):
            if getattr(self, name) == frozenset():
                raise ValueError(f"{name} is empty and would match nothing: leave it unset")
        return self

    def conditions(self) -> list[dict[str, Any]]:
        """One Chroma condition per set field."""
        found: list[dict[str, Any]] = []
        for name in ("category", "in_stock", "language", "product_id"):
            value = getattr(self, name)
            if value is not None:
                found.append({name: value})
        if self.min_price is not None:
            found.append({"price": {"$gte": self.min_price}})
        if self.max_price is not None:
            found.append({"price": {"$lte": self.max_price}})
        for field_name, values in (("category", self.categories), ("product_id", self.product_ids)):
            if values is not None:
                found.append({field_name: {"$in": sorted(values)}})
        return found

    def to_where(self) -> Where | None:
        conditions = self.conditions()
        if not conditions:
            return None
        # Chroma refuses an `$and` with fewer than two operands.
        return conditions[0] if len(conditions) == 1 else {"$and": conditions}

    def matches(self, metadata: Mapping[str, Any]) -> bool:
        """The BM25 side's twin of `to_where`."""
        for name in ("category", "in_stock", "language", "product_id"):
            wanted = getattr(self, name)
            if wanted is not None and metadata.get(name) != wanted:
                return False
        if self.categories is not None and metadata.get("category") not in self.categories:
            return False
        if self.product_ids is not None and metadata.get("product_id") not in self.product_ids:
            return False
        if self.min_price is None and self.max_price is None:
            return True
        price = metadata.get("price")
        if not isinstance(price, (int, float)) or isinstance(price, bool):
            return False
        if self.min_price is not None and price < self.min_price:
            return False
        return self.max_price is None or price <= self.max_price

    def mask(self, columns: MetadataColumns) -> np.ndarray | None:
        """`matches` for every record at once (None when nothing is filtered)."""
        if not self.conditions():
            return None
        allowed = np.ones(columns.size, dtype=bool)
        for name in ("category", "in_stock", "language", "product_id"):
            wanted = getattr(self, name)
            if wanted is not None:
                allowed &= columns.values(name) == wanted
        if self.categories is not None:
            allowed &= columns.one_of("category", self.categories)
        if self.product_ids is not None:
            allowed &= columns.one_of("product_id", self.product_ids)
        with np.errstate(invalid="ignore"):
            if self.min_price is not None:
                allowed &= columns.numbers("price") >= self.min_price
            if self.max_price is not None:
                allowed &= columns.numbers("price") <= self.max_price
        return allowed

    def product_fields(self) -> list[str]:
        """Set fields that only products carry."""
        names = (
            "category",
            "min_price",
            "max_price",
            "in_stock",
            "product_id",
            "categories",
            "product_ids",
        )
        return [name for name in names if getattr(self, name) is not None]


class RankEvidence(BaseModel):
    """Where a result stood in each list before fusion (1-based; None = not retrieved there)."""

    dense_rank: int | None = None
    bm25_rank: int | None = None
    dense_score: float | None = None
    bm25_score: float | None = None
    fused_score: float = 0.0


class HybridArticleMatch(ArticleMatch, RankEvidence):
    """An article passage with the evidence of both retrievers; `score` is what ranked it."""


class HybridProductMatch(ProductMatch, RankEvidence):
    """A product with the evidence of both retrievers; `score` is what ranked it."""


@dataclass(frozen=True)
class HybridOptions:
    """Fusion settings. BM25L, stemming and whole-article BM25 won on the tuning half of the demo
    FAQ set; rrf_k=60 (the value of the RRF paper) and equal weights did as well there as the
    alternatives tried (k 1-60, BM25 weight 0.5-1.5)."""

    rrf_k: int = 60
    candidates: int = 50
    dense_weight: float = 1.0
    bm25_weight: float = 1.0
    bm25_variant: BM25Variant = "l"
    tokenizer: TokenizerOptions = field(default_factory=TokenizerOptions)
    recheck_seconds: float = 30.0
    query_cache: int = 256
    # Exact search over an in-memory copy of the vectors instead of Chroma's HNSW graph.
    exact_dense: bool = True


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[str]], weights: Sequence[float], k: int
) -> list[tuple[str, float]]:
    """Fuse ranked id lists: score(id) = Σ weight / (k + rank); ties keep first-seen order."""
    scores: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda pair: pair[1], reverse=True)


@dataclass
class _Ranked:
    """One side's result list, already collapsed to one entry per article or product."""

    order: list[str]
    hits: dict[str, Hit]


class HybridSearcher:
    """`articles()` and `products()` in three modes: hybrid (default), dense only, BM25 only."""

    def __init__(
        self,
        store: KnowledgeStore,
        embedder: TextEmbedder,
        options: HybridOptions | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.options = options or HybridOptions()
        self.collections = CollectionCache(
            store,
            Tokenizer(self.options.tokenizer),
            self.options.bm25_variant,
            self.options.recheck_seconds,
        )
        # Repeated questions (and the dense + hybrid runs of one question) embed once.
        self._query_vector: Callable[[str], np.ndarray] = lru_cache(self.options.query_cache)(
            self._embed_query
        )

    def articles(
        self,
        query: str,
        k: int = 5,
        filters: SearchFilters | None = None,
        mode: SearchMode = "hybrid",
    ) -> list[HybridArticleMatch]:
        """Best passage per article (chunks of one article never crowd out other articles)."""
        filters = filters or SearchFilters()
        if refused := filters.product_fields():
            raise ValueError(
                f"articles can be filtered by language only, not by {', '.join(refused)}"
            )
        ranked = self._ranked("articles", query, k, filters, mode, group_by="article_id")
        return [
            HybridArticleMatch(
                chunk_id=hit.id,
                article_id=str(hit.metadata.get("article_id", hit.id)),
                title=str(hit.metadata.get("title", "")),
                text=hit.document,
                score=round(score, 6),
                language=str(hit.metadata.get("language", "en")),
                **evidence.model_dump(),
            )
            for hit, score, evidence in ranked
        ]

    def products(
        self,
        query: str,
        k: int = 5,
        filters: SearchFilters | None = None,
        mode: SearchMode = "hybrid",
    ) -> list[HybridProductMatch]:
        ranked = self._ranked("products", query, k, filters or SearchFilters(), mode, None)
        return [
            HybridProductMatch(
                **product_from_metadata(hit.id, 0.0, hit.metadata).model_dump(exclude={"score"}),
                score=round(score, 6),
                **evidence.model_dump(),
            )
            for hit, score, evidence in ranked
        ]

    def _ranked(
        self,
        kind: CollectionKind,
        query: str,
        k: int,
        filters: SearchFilters,
        mode: SearchMode,
        group_by: str | None,
    ) -> list[tuple[Hit, float, RankEvidence]]:
        if not query.strip() or k <= 0:
            return []
        self.store.collection(kind, encoder=self.embedder.name)
        depth = max(self.options.candidates, k * 3)
        dense = self._dense(kind, query, depth, filters, group_by) if mode != "bm25" else None
        lexical = self._lexical(kind, query, depth, filters, group_by) if mode != "dense" else None
        weighted = ((dense, self.options.dense_weight), (lexical, self.options.bm25_weight))
        sides = [(side, weight) for side, weight in weighted if side is not None]
        fused = reciprocal_rank_fusion(
            [side.order for side, _ in sides], [weight for _, weight in sides], self.options.rrf_k
        )
        results: list[tuple[Hit, float, RankEvidence]] = []
        for key, fused_score in fused[:k]:
            evidence = RankEvidence(fused_score=round(fused_score, 6))
            if dense is not None and key in dense.hits:
                evidence.dense_rank = dense.order.index(key) + 1
                evidence.dense_score = round(dense.hits[key].score, 4)
            if lexical is not None and key in lexical.hits:
                evidence.bm25_rank = lexical.order.index(key) + 1
                evidence.bm25_score = round(lexical.hits[key].score, 4)
            score = fused_score
            if mode == "dense" and dense is not None:
                score = dense.hits[key].score
            elif mode == "bm25" and lexical is not None:
                score = lexical.hits[key].score
            results.append((self._passage(key, dense, lexical), score, evidence))
        return results

    def _dense(
        self,
        kind: CollectionKind,
        query: str,
        depth: int,
        filters: SearchFilters,
        group_by: str | None,
    ) -> _Ranked:
        vector = self._query_vector(query)
        if self.options.exact_dense:
            index = self.collections.dense(kind)
            hits = index.search(vector, depth, filters.mask(index.columns))
        else:
            hits = self.store.query(kind, vector, depth, filters.to_where())
        return _collapse(hits, group_by)

    def _lexical(
        self,
        kind: CollectionKind,
        query: str,
        depth: int,
        filters: SearchFilters,
        group_by: str | None,
    ) -> _Ranked:
        index = self.collections.index(kind)
        hits = index.search(query, depth, filters.mask(index.columns))
        return _collapse(
            [Hit(h.record.id, h.score, h.record.document, h.record.metadata) for h in hits],
            group_by,
        )

    def _embed_query(self, query: str) -> np.ndarray:
        return self.embedder.embed_texts([query], kind="query")[0]

    @staticmethod
    def _passage(key: str, dense: _Ranked | None, lexical: _Ranked | None) -> Hit:
        """The chunk shown for an article: the one the dense side liked best, else BM25's."""
        if dense is not None and key in dense.hits:
            return dense.hits[key]
        assert lexical is not None
        return lexical.hits[key]


def _collapse(hits: Sequence[Hit], group_by: str | None) -> _Ranked:
    """Keep the first (best) hit per group, in order; one group per record when not grouping."""
    ranked = _Ranked(order=[], hits={})
    for hit in hits:
        key = str(hit.metadata.get(group_by, hit.id)) if group_by else hit.id
        if key not in ranked.hits:
            ranked.order.append(key)
            ranked.hits[key] = hit
    return ranked
