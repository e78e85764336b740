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
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import structlog

from knowledge_base.offline import require
from knowledge_base.store import CollectionKind, KnowledgeStore
from retrieval.search.columns import MetadataColumns
from retrieval.search.dense import ExactDenseIndex, load_dense_index
from retrieval.search.tokenize import Tokenizer

BM25Variant = Literal["okapi", "plus", "l"]
COUNT_SECONDS = 1.0
log = structlog.get_logger(__name__)


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
        rows: dict[str, list[int]] = {}
        counts: dict[str, list[int]] = {}
        for index, tokens in enumerate(corpus):
            for token, count in Counter(tokens).items():
                rows.setdefault(token, []).append(index)
                counts.setdefault(token, []).append(count)
        # Per token: the documents holding it (ascending) and how often, for vectorised scoring.
        self._postings = {
            token: (np.asarray(found, dtype=np.int64), np.asarray(counts[token], dtype=np.float64))
            for token, found in rows.items()
        }
        self.columns = MetadataColumns([doc.metadata for doc in self.documents])
        self._doc_len = np.asarray([len(tokens) for tokens in corpus], dtype=np.float64)
        # rank-bm25 divides by the corpus size and mean length: it cannot take an empty corpus.
        self._model = _make_model(corpus, variant) if any(corpus) else None

    def __len__(self) -> int:
        return len(self.documents)

    def search(self, query: str, k: int, allowed: np.ndarray | None = None) -> list[BM25Hit]:
        """The `k` best documents sharing at least one token with `query`, best first; only
        those `allowed` (a mask over `documents`, from `SearchFilters.mask(self.columns)`)."""
        tokens = self.tokenizer(query)
        if self._model is None or not tokens or k <= 0:
            return []
        wanted = set(tokens)
        found = [self._postings[token][0] for token in wanted if token in self._postings]
        if not found:
            return []
        holders = np.zeros(len(self.documents), dtype=bool)
        for rows in found:
            holders[rows] = True
        candidates = np.flatnonzero(holders)
        if allowed is not None:
            candidates = candidates[allowed[candidates]]
        if not len(candidates):
            return []
        scores = self._scores(tokens, candidates)
        # Stable sort on the negated score: equal scores keep collection order, so runs repeat.
        order = np.argsort(-scores, kind="stable")[:k]
        return [
            BM25Hit(
                self.documents[int(candidates[i])],
                float(scores[i]),
                self._passage(int(candidates[i]), wanted),
            )
            for i in order
        ]

    def _scores(self, tokens: list[str], rows: np.ndarray) -> np.ndarray:
        """rank-bm25's `get_batch_scores` for `rows`, with term counts from the postings
        instead of a dictionary lookup per document and token (80 ms → a few at 100k)."""
        model = self._model
        assert model is not None
        k1, b = model.k1, model.b
        norm = 1 - b + b * self._doc_len[rows] / model.avgdl
        score = np.zeros(len(rows))
        for token in tokens:
            tf = np.zeros(len(rows))
            if token in self._postings:
                holders, counts = self._postings[token]
                at = np.searchsorted(rows, holders)
                inside = (at < len(rows)) & (rows[np.minimum(at, len(rows) - 1)] == holders)
                tf[at[inside]] = counts[inside]
            idf = model.idf.get(token) or 0
            if self.variant == "okapi":
                score += idf * (tf * (k1 + 1) / (tf + k1 * norm))
            elif self.variant == "l":
                ctd = tf / norm
                score += idf * tf * (k1 + 1) * (ctd + model.delta) / (k1 + ctd + model.delta)
            else:
                score += idf * (model.delta + (tf * (k1 + 1)) / (k1 * norm + tf))
        return score

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
    # Paged: one get() of a 100k collection overflows SQLite's variable limit.
    records = sorted(store.scan(kind), key=lambda hit: hit.id)
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


class CollectionCache:
    """One BM25 index per collection of a store, and on demand an exact in-memory copy of its
    vectors (`dense`), both rebuilt when the collection's content changes.

    Each call compares the store's generation (`KnowledgeStore.generation`, read at most once
    per `watch_seconds` of the store) and its record count with those the index was built at;
    when either moved, the fingerprint (a read of every record) decides whether to rebuild. So
    a write by this process shows at once and a write by another writer of the same store
    within a second. Writers that bypass `KnowledgeStore` bump no generation: for them the
    fingerprint is also taken every `recheck_seconds`. `invalidate()` forces a re-read.

    Rebuilding takes ~0.3 s at 3,000 products but ~10 s at 100,000 (reading every record and
    vector again); from `background_from` records on, searches keep the old index while a
    thread builds the new one, so a stock change does not stall every turn for seconds.
    """

    def __init__(
        self,
        store: KnowledgeStore,
        tokenizer: Tokenizer,
        variant: BM25Variant = "okapi",
        recheck_seconds: float = 30.0,
        background_from: int = 20_000,
    ) -> None:
        self.store = store
        self.tokenizer = tokenizer
        self.variant = variant
        self.recheck_seconds = recheck_seconds
        self.background_from = background_from
        self.builds = 0
        self._entries: dict[CollectionKind, _Entry] = {}
        self._rebuilding: dict[CollectionKind, threading.Thread] = {}
        self._lock = threading.Lock()

    def index(self, kind: CollectionKind) -> BM25Index:
        with self._lock:
            return self._current(kind).index

    def dense(self, kind: CollectionKind) -> ExactDenseIndex:
        """The collection's vectors, read the first time they are asked for after a rebuild."""
        with self._lock:
            entry = self._current(kind)
            if entry.dense is None:
                dense = load_dense_index(self.store, kind, _known(entry.index))
                entry = replace(entry, dense=dense)
                self._entries[kind] = entry
            assert entry.dense is not None
            return entry.dense

    def _current(self, kind: CollectionKind) -> _Entry:
        generation = self.store.generation()
        now = time.monotonic()
        entry = self._entries.get(kind)
        fresh = entry is not None and entry.generation == generation
        if entry is not None and fresh and now - entry.checked < self.recheck_seconds:
            # Counting scans the collection (~10 ms at 100k): once a second is enough to
            # notice writers that bypass the store's generation.
            if now - entry.counted < COUNT_SECONDS:
                return entry
            count = self.store.count(kind)
            if entry.count == count:
                entry = replace(entry, counted=now)
                self._entries[kind] = entry
                return entry
        elif entry is not None and kind in self._rebuilding:
            return entry
        else:
            count = self.store.count(kind)
        if entry is not None and max(count, entry.count) >= self.background_from:
            if kind not in self._rebuilding:
                worker = threading.Thread(
                    target=self._rebuild_later,
                    args=(kind, entry, count, generation),
                    name=f"rebuild-{kind}",
                    daemon=True,
                )
                self._rebuilding[kind] = worker
                worker.start()
            return entry
        entry = self._rebuilt(kind, entry, count, generation)
        self._entries[kind] = entry
        return entry

    def _rebuilt(
        self, kind: CollectionKind, old: _Entry | None, count: int, generation: str
    ) -> _Entry:
        """The entry for the collection as it is now; the old one when its content is the
        same. A new entry gets its dense copy at once when the old one had one."""
        now = time.monotonic()
        fingerprint, documents = collection_documents(self.store, kind)
        if old is not None and old.fingerprint == fingerprint:
            return replace(old, count=count, checked=now, counted=now, generation=generation)
        index = BM25Index(documents, self.tokenizer, self.variant)
        entry = _Entry(fingerprint, count, now, index, generation, counted=now)
        self.builds += 1
        if old is not None and old.dense is not None:
            entry = replace(entry, dense=load_dense_index(self.store, kind, _known(index)))
        return entry

    def _rebuild_later(
        self, kind: CollectionKind, old: _Entry, count: int, generation: str
    ) -> None:
        try:
            entry = self._rebuilt(kind, old, count, generation)
            with self._lock:
                latest = self._entries.get(kind)
                if latest is not None and latest.index is entry.index and entry.dense is None:
                    entry = replace(entry, dense=latest.dense)  # copied while this ran
                self._entries[kind] = entry
        except Exception:  # the old index keeps serving; the next search tries again
            log.exception("index_rebuild_failed", kind=kind)
        finally:
            with self._lock:
                self._rebuilding.pop(kind, None)

    def wait_for_rebuilds(self) -> None:
        """Block until background rebuilds started so far are done (tests, benchmarks)."""
        with self._lock:
            workers = list(self._rebuilding.values())
        for worker in workers:
            worker.join()

    def invalidate(self, kind: CollectionKind | None = None) -> None:
        with self._lock:
            if kind is None:
                self._entries.clear()
            else:
                self._entries.pop(kind, None)


def _known(index: BM25Index) -> dict[str, tuple[str, dict[str, Any]]]:
    """id → (document, metadata) of every record BM25 holds, for the dense copy to share."""
    return {
        record.id: (record.document, record.metadata)
        for document in index.documents
        for record in document.records
    }


@dataclass(frozen=True)
class _Entry:
    fingerprint: str
    count: int
    checked: float
    index: BM25Index
    generation: str
    counted: float = -1e18
    dense: ExactDenseIndex | None = None
