"""The Chroma store: three collections (product texts, product images, article chunks).

Embedded `PersistentClient` by default, `HttpClient` when a server URL is configured. Vectors are
always supplied by ShopSight's own encoders: no collection has an embedding function, so Chroma
never tries to download its default model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import numpy as np

from retrieval.offline import enforce_offline, require

CollectionKind = Literal["products", "images", "articles"]
COLLECTION_KINDS: tuple[CollectionKind, ...] = ("products", "images", "articles")
Where = Mapping[str, Any]


class StoreUnavailable(RuntimeError):
    """The Chroma store cannot be reached or opened; the message says what to check."""


class EmbedderMismatch(RuntimeError):
    """The store was built with another encoder; mixing vectors would give nonsense results."""


@dataclass(frozen=True)
class HnswSettings:
    """HNSW graph settings; Chroma ignores later changes, so they apply when a collection is made."""

    max_neighbors: int = 32
    ef_construction: int = 200
    ef_search: int = 200


@dataclass
class Hit:
    """One search result: a record id, its cosine similarity, its document and metadata."""

    id: str
    score: float
    document: str
    metadata: dict[str, Any]


class KnowledgeStore:
    """Thin, typed access to the three collections; knows nothing about how vectors are made."""

    def __init__(
        self,
        path: Path | None = None,
        url: str | None = None,
        prefix: str = "shopsight",
        hnsw: HnswSettings | None = None,
    ) -> None:
        enforce_offline()
        chromadb = require("chromadb", "chromadb")
        from chromadb.config import Settings as ChromaSettings

        chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=True)
        self.location = url or str(path)
        try:
            if url:
                parsed = urlparse(url)
                self.client = chromadb.HttpClient(
                    host=parsed.hostname or "127.0.0.1",
                    port=parsed.port or (443 if parsed.scheme == "https" else 8000),
                    ssl=parsed.scheme == "https",
                    settings=chroma_settings,
                )
                self.client.heartbeat()
            else:
                if path is None:
                    raise StoreUnavailable("give either a store path or a server URL")
                path.mkdir(parents=True, exist_ok=True)
                self.client = chromadb.PersistentClient(path=str(path), settings=chroma_settings)
        except StoreUnavailable:
            raise
        except Exception as exc:
            raise StoreUnavailable(
                f"cannot open the Chroma store at {self.location}: {exc}. Check that the server is "
                "running (SHOPSIGHT_CHROMA_URL) or that the folder is writable (SHOPSIGHT_CHROMA_PATH)."
            ) from exc
        self.prefix = prefix
        self.hnsw = hnsw or HnswSettings()
        self._collections: dict[CollectionKind, Any] = {}

    def collection(self, kind: CollectionKind, encoder: str | None = None) -> Any:
        """The collection of `kind`; created with cosine HNSW on first use, checked for its encoder."""
        cached = self._collections.get(kind)
        if cached is not None:
            self._check_encoder(cached, kind, encoder)
            return cached
        name = f"{self.prefix}_{kind}"
        metadata = {"encoder": encoder} if encoder else None
        collection = self.client.get_or_create_collection(
            name=name,
            embedding_function=None,
            metadata=metadata,
            configuration={
                "hnsw": {
                    "space": "cosine",
                    "max_neighbors": self.hnsw.max_neighbors,
                    "ef_construction": self.hnsw.ef_construction,
                    "ef_search": self.hnsw.ef_search,
                }
            },
        )
        self._check_encoder(collection, kind, encoder)
        self._collections[kind] = collection
        return collection

    def _check_encoder(self, collection: Any, kind: str, encoder: str | None) -> None:
        stored = (collection.metadata or {}).get("encoder")
        if encoder and stored and stored != encoder:
            raise EmbedderMismatch(
                f"the {kind} collection was built with encoder {stored!r}, not {encoder!r}: "
                "set SHOPSIGHT_TEXT_EMBEDDER back, or run `shopsight kb reset` and ingest again"
            )

    def stored_hashes(self, kind: CollectionKind, ids: Sequence[str]) -> dict[str, str]:
        """Content hashes of the records among `ids` that exist already."""
        if not ids:
            return {}
        found = self.collection(kind).get(ids=list(ids), include=["metadatas"])
        return {
            record_id: str((meta or {}).get("content_hash", ""))
            for record_id, meta in zip(found["ids"], found["metadatas"] or [], strict=False)
        }

    def upsert(
        self,
        kind: CollectionKind,
        ids: Sequence[str],
        vectors: np.ndarray,
        documents: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]],
    ) -> None:
        if not ids:
            return
        self.collection(kind).upsert(
            ids=list(ids),
            embeddings=np.asarray(vectors, dtype=np.float32),
            documents=list(documents),
            metadatas=[_clean_metadata(m) for m in metadatas],
        )

    def delete(self, kind: CollectionKind, ids: Sequence[str] | None = None, where: Where | None = None) -> int:
        """Delete by ids or by a metadata filter; returns how many records went."""
        collection = self.collection(kind)
        if ids is not None:
            doomed = collection.get(ids=list(ids), include=[])["ids"]
        elif where is not None:
            doomed = collection.get(where=dict(where), include=[])["ids"]
        else:
            raise ValueError("delete needs ids or a where filter")
        if doomed:
            collection.delete(ids=doomed)
        return len(doomed)

    def query(
        self, kind: CollectionKind, vector: np.ndarray, k: int, where: Where | None = None
    ) -> list[Hit]:
        """Nearest records by cosine similarity (1 - Chroma's cosine distance), best first."""
        collection = self.collection(kind)
        total = collection.count()
        if total == 0:
            return []
        result = collection.query(
            query_embeddings=[np.asarray(vector, dtype=np.float32)],
            n_results=min(k, total),
            where=dict(where) if where else None,
            include=["documents", "metadatas", "distances"],
        )
        return [
            Hit(id=record_id, score=1.0 - float(distance), document=document or "", metadata=dict(meta or {}))
            for record_id, distance, document, meta in zip(
                result["ids"][0],
                result["distances"][0],
                result["documents"][0],
                result["metadatas"][0],
                strict=True,
            )
        ]

    def get(self, kind: CollectionKind, ids: Sequence[str] | None = None, where: Where | None = None) -> list[Hit]:
        """Records by id or filter, without similarity (score 0)."""
        found = self.collection(kind).get(
            ids=list(ids) if ids is not None else None,
            where=dict(where) if where else None,
            include=["documents", "metadatas"],
        )
        return [
            Hit(id=record_id, score=0.0, document=document or "", metadata=dict(meta or {}))
            for record_id, document, meta in zip(
                found["ids"], found["documents"] or [], found["metadatas"] or [], strict=False
            )
        ]

    def count(self, kind: CollectionKind) -> int:
        return int(self.collection(kind).count())

    def reset(self) -> None:
        """Drop the three collections (and nothing else on a shared server)."""
        for kind in COLLECTION_KINDS:
            name = f"{self.prefix}_{kind}"
            if name in {c.name for c in self.client.list_collections()}:
                self.client.delete_collection(name)
        self._collections.clear()


def _clean_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Chroma metadata holds str/int/float/bool only: drop None, stringify the rest."""
    clean: dict[str, Any] = {}
    for key, value in metadata.items():
        if value is None:
            continue
        clean[key] = value if isinstance(value, (str, int, float, bool)) else str(value)
    return clean
