"""BM25 over the records of one store collection, rebuilt only when the collection changes.

Chroma has no lexical index, so the whole collection is read once, tokenised and kept in memory;
a fingerprint of (ids, content hashes) decides when it must be read again. Article chunks are
scored as whole articles (all chunks of one article joined under its title): on the demo FAQ
tuning questions this beat scoring chunk by chunk, whose short texts often miss the words of a
question that the rest of the article has.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from knowledge_base.offline import require
from knowledge_base.store import CollectionKind, KnowledgeStore
from retrieval.search.tokenize import Tokenizer

BM25Variant = Literal["okapi", "plus", "l"]
Predicate = Callable[[Mapping[str, Any]], bool]


@dataclass(frozen=True)
class BM25Record:
    """One stored record (a product text or an article chunk)."""

    id: str
    document: str
    metadata: dict[str, Any]


@dataclass(frozen=True)
class BM25Document:
    """What BM25 scores: one record, or every chunk of one article under its title."""

    title: str
    records: tuple[BM25Record, ...]

    @property
    def metadata(self) -> dict[str, Any]:
        """Filters look at the first record; chunks of one article share their filter fields."""
        return self.records[0].metadata


@dataclass(frozen=True)
class BM25Hit:
    """A scored document and its record that shares the most query tokens (the passage)."""

    document: BM25Document
    score: float
    record: BM25Record


class BM25Index:
    """rank-bm25 scoring plus a small inverted index, so only documents sharing a query token are
    scored (and so "no shared token" means "no hit", whatever the variant's IDF floor does)."""

    def __init__(
        self,
        documents: Sequence[BM25Document],
        tokenizer: Tokenizer,
        variant: BM25Variant = "okapi",
    ) -> None:
        self.documents = list(documents)
        self.tokenizer = tokenizer
        self.variant = variant
        self._record_tokens: list[list[frozenset[str]]] = []
        corpus: list[list[str]] = []
        for doc in self.documents:
            per_record = [tokenizer(record.document) for record in doc.records]
            self._record_tokens.append([frozenset(tokens) for tokens in per_record])
            corpus.append(tokenizer(doc.title) + [t for tokens in per_record for t in tokens])
        self._postings: dict[str, list[int]] = {}
        for index, tokens in enumerate(corpus):
            for token in set(tokens):
                self._postings.setdefault(token, []).append(index)
        # rank-bm25 divides by the corpus size and mean length: it cannot take an empty corpus.
        self._model = _make_model(corpus, variant) if any(corpus) else None

    def __len__(self) -> int:
        return len(self.documents)

    def search(self, query: str, k: int, predicate: Predicate | None = None) -> list[BM25Hit]:
        """The `k` best documents sharing at least one token with `query`, best first."""
        tokens = self.tokenizer(query)
        if self._model is None or not tokens or k <= 0:
            return []
        wanted = set(tokens)
        candidates = sorted({i for token in wanted for i in self._postings.get(token, ())})
        if predicate is not None:
            candidates = [i for i in candidates if predicate(self.documents[i].metadata)]
        if not candidates:
            return []
        scores = np.asarray(self._model.get_batch_scores(tokens, candidates), dtype=np.float64)
        # Stable sort on the negated score: equal scores keep collection order, so runs repeat.
        order = np.argsort(-scores, kind="stable")[:k]
        return [
            BM25Hit(
                self.documents[candidates[i]],
                float(scores[i]),
                self._passage(candidates[i], wanted),
            )
            for i in order
        ]

    def _passage(self, index: int, wanted: set[str]) -> BM25Record:
        overlaps = [len(wanted & tokens) for tokens in self._record_tokens[index]]
        return self.documents[index].records[overlaps.index(max(overlaps))]


def _make_model(corpus: list[list[str]], variant: BM25Variant) -> Any:
    rank_bm25 = require("rank_bm25", "rank-bm25")
    classes = {"okapi": rank_bm25.BM25Okapi, "plus": rank_bm25.BM25Plus, "l": rank_bm25.BM25L}
    return classes[variant](corpus)


def collection_documents(
    store: KnowledgeStore, kind: CollectionKind
) -> tuple[str, list[BM25Document]]:
    """The collection as BM25 documents (one per product, one per article) and its fingerprint."""
    records = sorted(store.get(kind), key=lambda hit: hit.id)
    digest = hashlib.sha256()
    for hit in records:
        digest.update(f"{hit.id}\0{hit.metadata.get('content_hash', hit.document)}\0".encode())
    fingerprint = f"{len(records)}:{digest.hexdigest()}"
    as_records = [BM25Record(hit.id, hit.document, hit.metadata) for hit in records]
    if kind != "articles":
        return fingerprint, [BM25Document("", (record,)) for record in as_records]
    articles: dict[str, list[BM25Record]] = {}
    for record in as_records:
        articles.setdefault(str(record.metadata.get("article_id", record.id)), []).append(record)
    documents = []
    for chunks in articles.values():
        chunks.sort(key=lambda record: _position(record.metadata))
        documents.append(BM25Document(str(chunks[0].metadata.get("title", "")), tuple(chunks)))
    return fingerprint, documents


def _position(metadata: Mapping[str, Any]) -> int:
    position = metadata.get("position", 0)
    return position if isinstance(position, int) else 0


class BM25Cache:
    """One BM25 index per collection of a store, rebuilt when the collection's content changes.

    Each call compares the store's generation (`KnowledgeStore.generation`, read at most once
    per `watch_seconds` of the store) and its record count with those the index was built at;
    when either moved, the fingerprint (a read of every record) decides whether to rebuild. So
    a write by this process shows at once and a write by another writer of the same store
    within a second. Writers that bypass `KnowledgeStore` bump no generation: for them the
    fingerprint is also taken every `recheck_seconds`. `invalidate()` forces a re-read.
    """

    def __init__(
        self,
        store: KnowledgeStore,
        tokenizer: Tokenizer,
        variant: BM25Variant = "okapi",
        recheck_seconds: float = 30.0,
    ) -> None:
        self.store = store
        self.tokenizer = tokenizer
        self.variant = variant
        self.recheck_seconds = recheck_seconds
        self.builds = 0
        self._entries: dict[CollectionKind, _Entry] = {}
        self._lock = threading.Lock()

    def index(self, kind: CollectionKind) -> BM25Index:
        with self._lock:
            generation = self.store.generation()
            count = self.store.count(kind)
            now = time.monotonic()
            entry = self._entries.get(kind)
            if (
                entry
                and entry.count == count
                and entry.generation == generation
                and now - entry.checked < self.recheck_seconds
            ):
                return entry.index
            fingerprint, documents = collection_documents(self.store, kind)
            if entry is None or entry.fingerprint != fingerprint:
                entry = _Entry(
                    fingerprint,
                    count,
                    now,
                    BM25Index(documents, self.tokenizer, self.variant),
                    generation,
                )
                self.builds += 1
            self._entries[kind] = _Entry(entry.fingerprint, count, now, entry.index, generation)
            return entry.index

    def invalidate(self, kind: CollectionKind | None = None) -> None:
        with self._lock:
            if kind is None:
                self._entries.clear()
            else:
                self._entries.pop(kind, None)


@dataclass(frozen=True)
class _Entry:
    fingerprint: str
    count: int
    checked: float
    index: BM25Index
    generation: str
