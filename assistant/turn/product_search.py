"""Product search in conversation: "do you sell black t-shirts for men?" → a ranked list.

The message's attributes (`retrieval.search.attributes`) become store filters, hybrid search
ranks what passes them, and the session remembers the search so that "cheaper", "in blue",
"only in stock", "show me more" and "the second one" refine or pick from it. Nothing matching
all constraints: the least important one is dropped and the reply says which.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from assistant.turn.ordinals import position
from assistant.turn.policy import mentions_order, routes_to_product_search
from assistant.turn.responder import Listing, ProductFacts
from assistant.turn.schemas import ProductCard, SearchView
from knowledge_base.store import CollectionKind, Hit, Where
from retrieval.search.attributes import (
    RELAX_ORDER,
    Catalogue,
    ProductQuery,
    Ranker,
    Relaxable,
    search_catalogue,
)

# How many cards a search reply shows: enough to choose from, few enough to read on a phone.
SHOWN = 5
# The catalogue's facets are re-read when the store's product count changes (looked at most
# every COUNT_SECONDS) and at least every REREAD_SECONDS. Reading 3,000 products takes 1.2 s
# (measured on the evaluation catalogue), counting them a few ms. Prices and stock are
# filtered by the store at query time and shown from the ranked records, so they are never
# stale; only a product's new words and its place in the counts wait for the next read.
COUNT_SECONDS = 5.0
REREAD_SECONDS = 300.0


class ProductRecords(Protocol):
    """The store reads the catalogue is built from (`KnowledgeStore.get`, `scan`, `count`)."""

    def get(
        self, kind: CollectionKind, ids: Sequence[str] | None = None, where: Where | None = None
    ) -> list[Hit]: ...

    def scan(self, kind: CollectionKind) -> Iterator[Hit]: ...

    def count(self, kind: CollectionKind) -> int: ...


class SearchMemory(BaseModel):
    """The last search of a session, for the follow-ups that refine it."""

    query: ProductQuery
    text: str = Field("", description="The redacted message that started the search; it ranks.")
    shown: list[str] = Field(default_factory=list)
    shown_prices: list[float] = Field(default_factory=list)
    offset: int = 0


RefinementKind = Literal["refine", "cheaper", "more", "select"]


@dataclass(frozen=True)
class Refinement:
    """A follow-up to the last search: a changed query, the next page, or a picked card."""

    kind: RefinementKind
    query: ProductQuery
    index: int | None = None


@dataclass
class SearchOutcome:
    """One search as the reply tells it: what was asked, what was searched (after relaxing
    `relaxed`), how many products match and the ones shown."""

    asked: ProductQuery
    searched: ProductQuery
    relaxed: Relaxable | None
    total: int
    offset: int
    products: list[ProductFacts] = field(default_factory=list)
    currency: str = "USD"

    def cards(self) -> list[ProductCard]:
        return [
            p.card(reason=f"search result {self.offset + i}").model_copy(update={"role": "result"})
            for i, p in enumerate(self.products, 1)
        ]

    def view(self) -> SearchView:
        return SearchView(
            understood=self.asked.describe("en", self.currency),
            constraints=self.searched.constraints(),
            relaxed=self.relaxed,
            total=self.total,
            offset=self.offset,
        )

    def listing(self, language: str) -> Listing:
        return Listing(summary_sentence(self, language), list(self.products), self.offset + 1)

    def memory(self, text: str) -> SearchMemory:
        return SearchMemory(
            query=self.searched,
            text=text,
            shown=[p.product_id for p in self.products],
            shown_prices=[p.price for p in self.products if p.price is not None],
            offset=self.offset,
        )


@dataclass
class SearchTurn:
    """What a search turn produced: a list to show, or the card the customer picked, and the
    search to remember for the next follow-up."""

    memory: SearchMemory
    outcome: SearchOutcome | None = None
    selected: ProductFacts | None = None


def narrowed(query: ProductQuery) -> bool:
    """Constraints beyond the product type: the customer is choosing among many."""
    return any(query.has(facet) for facet in RELAX_ORDER)


_CHEAPER = re.compile(
    r"\bcheaper\b(?!\s+than)|\bless expensive\b|\blower price|\bmore affordable\b|\btoo expensive\b"
    r"|更便宜|便宜[一]?[点些]|再便宜|太贵|便宜的",
    re.IGNORECASE,
)
_MORE = re.compile(
    r"\b(?:show|see|give)\s+(?:me\s+)?(?:some\s+)?more\b|\bmore (?:options|results|items|please)\b"
    r"|\bany (?:others|more)\b|\bnext (?:page|ones?)\b|^\s*more\W*$"
    r"|更多|再来[几一]|还有别的|其他的|别的款|换一批|再看看|下一页",
    re.IGNORECASE,
)


def refinement(text: str, parsed: ProductQuery, last: SearchMemory) -> Refinement | None:
    """How `text` follows the last search, or None when it starts something else.

    A message naming a product type or a brand is a new search; otherwise a card number picks
    a card, "show me more" pages on, "cheaper" lowers the price bound below every item shown,
    and any colour, gender, size, price or stock words replace those of the last search.
    """
    if parsed.names_product():
        return None
    picked = position(text)
    if picked is not None and last.shown:
        # Cards are numbered on from the last page ("6. …"); "the second one" is of this page.
        absolute = last.offset < picked <= last.offset + len(last.shown)
        index = (
            len(last.shown) - 1
            if picked == -1
            else (picked - last.offset - 1 if absolute else picked - 1)
        )
        if 0 <= index < len(last.shown):
            return Refinement("select", last.query, index)
    if _MORE.search(text):
        return Refinement("more", last.query)
    changes: dict[str, object] = {}
    if parsed.colour:
        changes["colour"] = parsed.colour
    if parsed.genders:
        changes.update(genders=parsed.genders, gender_word=parsed.gender_word)
    if parsed.size:
        changes["size"] = parsed.size
    if parsed.in_stock:
        changes["in_stock"] = True
    if parsed.min_price is not None or parsed.max_price is not None:
        changes.update(min_price=parsed.min_price, max_price=parsed.max_price)
    elif _CHEAPER.search(text) and last.shown_prices:
        below = round(min(last.shown_prices) - 0.01, 2)
        low = last.query.min_price
        changes.update(max_price=max(below, 0.0), min_price=low if low and low <= below else None)
        return Refinement("cheaper", last.query.model_copy(update=changes))
    if not changes:
        return None
    return Refinement("refine", last.query.model_copy(update=changes))


def summary_sentence(outcome: SearchOutcome, language: str) -> str:
    """The one sentence that says what was understood and what was found."""
    zh = language == "zh"
    asked = outcome.asked.describe(language, outcome.currency)
    shown = len(outcome.products)
    if not outcome.total:
        return f"抱歉，没有找到{asked}。" if zh else f"Sorry, we have no {_lower(asked)}."
    if outcome.offset and not shown:
        return (
            f"{asked}：共 {outcome.total} 件，已经全部为您展示过了。"
            if zh
            else f"{asked}: all {outcome.total} have been shown already."
        )
    page = _page(outcome.offset, shown, outcome.total, zh)
    if outcome.relaxed is None:
        return (
            f"{asked}：共找到 {outcome.total} 件{page}。"
            if zh
            else f"{asked}: {outcome.total} found{page}."
        )
    dropped = _RELAXED_NAMES[outcome.relaxed][1 if zh else 0]
    return (
        f"没有完全符合的{asked}；{dropped}后找到 {outcome.total} 件{page}。"
        if zh
        else f"No {_lower(asked)} found; {dropped}, {outcome.total} match{page}."
    )


def _page(offset: int, shown: int, total: int, zh: bool) -> str:
    """Which of the matches follow: ", here are the top 5" (nothing when all of them do)."""
    last = offset + shown
    if not offset and shown == total:
        return ""
    if zh:
        if offset:
            return (
                f"，以下是第 {offset + 1} 件"
                if shown == 1
                else f"，以下是第 {offset + 1}–{last} 件"
            )
        return f"，以下是前 {shown} 件"
    if offset:
        return f", here is number {last}" if shown == 1 else f", here are {offset + 1} to {last}"
    return f", here are the top {shown}"


_RELAXED_NAMES: dict[Relaxable, tuple[str, str]] = {
    "size": ("without the size", "不限尺码"),
    "in_stock": ("including items out of stock", "包括缺货商品"),
    "price": ("without the price limit", "不限价格"),
    "colour": ("in other colours", "不限颜色"),
    "gender": ("for anyone", "不限性别"),
    "brand": ("from other brands", "不限品牌"),
}


def _lower(text: str) -> str:
    return text[:1].lower() + text[1:]


class CatalogueSearch:
    """Searches the store's catalogue with the attributes of a message; thread-safe."""

    def __init__(
        self,
        ranker: Ranker,
        records: ProductRecords,
        shown: int = SHOWN,
        count_seconds: float = COUNT_SECONDS,
        reread_seconds: float = REREAD_SECONDS,
    ) -> None:
        self.ranker = ranker
        self.records = records
        self.shown = shown
        self.count_seconds = count_seconds
        self.reread_seconds = reread_seconds
        self._lock = threading.Lock()
        self._catalogue: Catalogue | None = None
        self._count = -1
        self._read_at = 0.0
        self._counted_at = 0.0

    def catalogue(self) -> Catalogue:
        with self._lock:
            now = time.monotonic()
            stale = self._catalogue is None or now - self._read_at > self.reread_seconds
            if not stale and now - self._counted_at > self.count_seconds:
                self._counted_at = now
                stale = self.records.count("products") != self._count
            if stale or self._catalogue is None:
                hits = list(self.records.scan("products"))
                self._catalogue = Catalogue((hit.id, hit.metadata) for hit in hits)
                self._count = len(hits)
                self._read_at = self._counted_at = now
            return self._catalogue

    def search(self, text: str, query: ProductQuery, offset: int = 0) -> SearchOutcome:
        """The `shown` best products from `offset` that satisfy `query` (or, when none does,
        `query` less its least important constraint), ranked by the message and the words
        understood."""
        catalogue = self.catalogue()
        found = search_catalogue(catalogue, self.ranker, text, query, offset, self.shown)
        return SearchOutcome(
            asked=query,
            searched=found.searched,
            relaxed=found.relaxed,
            total=found.total,
            offset=offset,
            products=[ProductFacts.from_metadata(m.product_id, m.metadata) for m in found.matches],
            currency=catalogue.vocabulary.currency,
        )

    def turn(
        self, text: str, last: SearchMemory | None, asks_facts: bool, redacted: str
    ) -> SearchTurn | None:
        """The search this message asks for: a follow-up of `last`, a new search (the policy's
        routing rule), or None when it is not a product search."""
        if mentions_order(text):
            return None
        catalogue = self.catalogue()
        parsed = catalogue.parse(text)
        follow = refinement(text, parsed, last) if last is not None else None
        if last is not None and follow is not None:
            if follow.kind == "select":
                assert follow.index is not None
                hits = self.records.get("products", ids=[last.shown[follow.index]])
                if not hits:
                    return None
                return SearchTurn(
                    memory=last, selected=ProductFacts.from_metadata(hits[0].id, hits[0].metadata)
                )
            offset = last.offset + len(last.shown) if follow.kind == "more" else 0
            outcome = self.search(last.text, follow.query, offset)
            return SearchTurn(memory=outcome.memory(last.text), outcome=outcome)
        if not routes_to_product_search(
            text, parsed.names_product(), narrowed(parsed), asks_facts, photo=False
        ):
            return None
        outcome = self.search(redacted, parsed)
        return SearchTurn(memory=outcome.memory(redacted), outcome=outcome)
