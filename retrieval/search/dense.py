"""Exact dense search over an in-memory copy of one collection's text vectors.

Chroma's HNSW graph answered only 57 % of the true top 10 for product texts at 100,000 records
(bench/search.py, ef 200), and raising ef far enough costs more than scanning: a 100k×384
float32 matrix is 154 MB and one matrix-vector product over it takes a few milliseconds here.
The BM25 side already keeps every record of the collection in memory, so the copy rides on the
same cache entry and is rebuilt exactly when BM25 is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from knowledge_base.store import CollectionKind, Hit, KnowledgeStore
from retrieval.encoders.text import l2_normalise
from retrieval.search.columns import MetadataColumns

_PAGE = 10_000


class ExactDenseIndex:
    """Cosine top-k over a float32 matrix, filtered by a mask over its rows."""

    def __init__(
        self,
        vectors: np.ndarray,
        ids: Sequence[str],
        documents: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]],
    ) -> None:
        if not len(vectors) == len(ids) == len(documents) == len(metadatas):
            raise ValueError("vectors, ids, documents and metadatas must have the same length")
        self.vectors = l2_normalise(vectors) if len(vectors) else np.zeros((0, 1), np.float32)
        self.ids = list(ids)
        self.documents = list(documents)
        self.metadatas = list(metadatas)
        self.columns = MetadataColumns(self.metadatas)

    def __len__(self) -> int:
        return len(self.ids)

    def search(self, vector: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[Hit]:
        """The `k` most similar records, best first; only those `allowed` (a mask over the
        rows, from `SearchFilters.mask(self.columns)`)."""
        scores = self.vectors @ np.asarray(vector, dtype=np.float32) if self.ids else None
        if scores is None or k <= 0:
            return []
        available = len(scores)
        if allowed is not None:
            scores = np.where(allowed, scores, -np.inf)
            available = int(allowed.sum())
        return [
            Hit(self.ids[row], float(scores[row]), self.documents[row], dict(self.metadatas[row]))
            for row in top_rows(scores, min(k, available)).tolist()
        ]


def top_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """Rows of the `k` highest scores, best first (ties in a fixed order): a partition, then a sort
    of only those rows, so a scan of 100k rows does not sort them all."""
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    return top[np.argsort(-scores[top], kind="stable")]


def load_dense_index(
    store: KnowledgeStore,
    kind: CollectionKind,
    known: Mapping[str, tuple[str, Mapping[str, Any]]] | None = None,
    page: int = _PAGE,
) -> ExactDenseIndex:
    """Every vector of the collection, read a page at a time, with its document and metadata.

    With `known` (id → document, metadata, as the BM25 side already holds them) only the
    vectors are read, which halves the load at 100k; a record written since `known` was read
    waits for the next rebuild.
    """
    collection = store.collection(kind)
    include = ["embeddings"] if known is not None else ["embeddings", "documents", "metadatas"]
    vectors: list[np.ndarray] = []
    ids: list[str] = []
    documents: list[str] = []
    metadatas: list[Mapping[str, Any]] = []
    offset = 0
    while True:
        found = collection.get(include=include, limit=page, offset=offset)
        if not found["ids"]:
            break
        offset += len(found["ids"])
        rows = np.asarray(found["embeddings"], dtype=np.float32)
        if known is None:
            ids += found["ids"]
            vectors.append(rows)
            documents += [document or "" for document in found["documents"] or []]
            metadatas += [meta or {} for meta in found["metadatas"] or []]
            continue
        kept = [row for row, record_id in enumerate(found["ids"]) if record_id in known]
        vectors.append(rows[kept])
        for row in kept:
            record_id = found["ids"][row]
            ids.append(record_id)
            documents.append(known[record_id][0])
            metadatas.append(known[record_id][1])
    matrix = np.concatenate(vectors) if vectors else np.zeros((0, 1), dtype=np.float32)
    return ExactDenseIndex(matrix, ids, documents, metadatas)
