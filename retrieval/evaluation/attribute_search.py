"""Precision@k of attribute search on a labelled query set.

A returned product is relevant when it satisfies every constraint labelled for its query
(category, colour, gender: any of a list; a price bound; in stock). Precision@k divides the
relevant results by k, or by the number of relevant products in the catalogue when there are
fewer, so a query with three right answers can still score 1.0.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from retrieval.search.attributes import Catalogue, CatalogueResult, Ranker, search_catalogue


class Expected(BaseModel):
    """The constraints a relevant product satisfies; unset ones are not checked."""

    model_config = ConfigDict(extra="forbid")

    category: list[str] | None = None
    colour: list[str] | None = None
    gender: list[str] | None = None
    min_price: float | None = None
    max_price: float | None = None
    in_stock: bool = False

    def satisfied_by(self, meta: Mapping[str, Any]) -> bool:
        try:
            attributes = json.loads(meta.get("attributes") or "{}")
        except (TypeError, json.JSONDecodeError):
            attributes = {}
        checks = (
            (self.category, meta.get("category")),
            (self.colour, attributes.get("colour") or attributes.get("color")),
            (self.gender, attributes.get("gender")),
        )
        if any(wanted is not None and value not in wanted for wanted, value in checks):
            return False
        price = meta.get("price")
        if self.min_price is not None and not (price is not None and price >= self.min_price):
            return False
        if self.max_price is not None and not (price is not None and price <= self.max_price):
            return False
        return not self.in_stock or bool((meta.get("stock") or 0) > 0)


class LabelledQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1)
    expect: Expected


class QueryScore(BaseModel):
    query: str
    precision: float
    returned: list[str]
    relevant_returned: int
    relevant_in_catalogue: int
    understood: str
    relaxed: str | None = None


class AttributeSearchReport(BaseModel):
    k: int
    queries: int
    precision_at_k: float
    scores: list[QueryScore]


def load_queries(path: Path) -> list[LabelledQuery]:
    """The labelled queries of a YAML list; a malformed entry names its position."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"{path}: expected a non-empty YAML list of {{query, expect}} entries")
    out = []
    for index, entry in enumerate(raw, 1):
        try:
            out.append(LabelledQuery.model_validate(entry))
        except ValueError as exc:
            raise ValueError(f"{path}: entry {index}: {exc}") from exc
    return out


def evaluate(
    catalogue: Catalogue,
    ranker: Ranker,
    queries: list[LabelledQuery],
    k: int = 5,
    attributes: bool = True,
) -> AttributeSearchReport:
    """Parse, filter and rank each query as the chat does, and score its first `k` results;
    `attributes=False` scores plain hybrid search of the message, the baseline."""
    scores = []
    for labelled in queries:
        query = catalogue.parse(labelled.query)
        if attributes:
            found = search_catalogue(catalogue, ranker, labelled.query, query, k=k)
        else:
            ranked = ranker.products(labelled.query, k=k)
            found = CatalogueResult(query, None, 0, list(ranked))
        relevant = {
            pid for pid, meta in catalogue.metadata.items() if labelled.expect.satisfied_by(meta)
        }
        if not relevant:
            raise ValueError(f"no product of the catalogue satisfies {labelled.query!r}'s labels")
        hits = sum(1 for pid in found.product_ids if pid in relevant)
        scores.append(
            QueryScore(
                query=labelled.query,
                precision=round(hits / min(k, len(relevant)), 4),
                returned=found.product_ids,
                relevant_returned=hits,
                relevant_in_catalogue=len(relevant),
                understood=query.describe("en", catalogue.vocabulary.currency),
                relaxed=found.relaxed,
            )
        )
    mean = sum(s.precision for s in scores) / len(scores)
    return AttributeSearchReport(
        k=k, queries=len(scores), precision_at_k=round(mean, 4), scores=scores
    )
