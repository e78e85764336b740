"""The Chroma store: three collections (product texts, product images, article chunks).

Embedded `PersistentClient` by default, `HttpClient` when a server URL is configured. Vectors are
always supplied by ShopSight's own encoders: no collection has an embedding function, so Chroma
never tries to download its default model.

Every write replaces a random token in the metadata of a fourth, empty collection
(`{prefix}_state`): the store's generation (a metadata update costs ~5 ms embedded, a record
upsert ~17 ms). Caches built from the store (BM25, exact photo copies, projected photos)
compare it with the one they were built at, so a change made by any writer that shares the
store (another API replica on one Chroma server, say) reaches them; `generation()` reads it at
most once per `watch_seconds`, and this process's own writes are seen at once. An embedded
folder has one writer at a time (`knowledge_base.lock`): the first write takes the lock.
"""

from __future__ import annotations

import copy
import functools
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, Literal, ParamSpec, TypeVar
from urllib.parse import urlparse

import numpy as np

from knowledge_base.offline import enforce_offline, require

if TYPE_CHECKING:
    from knowledge_base.lock import StoreLock

CollectionKind = Literal["products", "images", "articles"]
COLLECTION_KINDS: tuple[CollectionKind, ...] = ("products", "images", "articles")
MIRROR_SEPARATOR = "__"
"""`{prefix}__{space}_images` holds the image vectors of another model (see `mirror`)."""
STATE_SUFFIX = "_state"
GENERATION_KEY = "generation"
WATCH_SECONDS = 1.0
"""How stale another writer's change may look here: one small read per second at most."""
Where = Mapping[str, Any]


class StoreUnavailable(RuntimeError):
    """The Chroma store cannot be reached or opened; the message says what to check."""


class EmbedderMismatch(RuntimeError):
    """The store was built with another encoder; mixing vectors would give nonsense results."""


@dataclass(frozen=True)
class HnswSettings:
    """HNSW graph settings; Chroma ignores later changes: they apply when a collection is made."""

    max_neighbors: int = 32
    ef_construction: int = 200
    ef_search: int = 200


@dataclass
class _Generation:
    """The last generation token seen and when; shared by a store and its mirrors."""

    token: str = ""
    checked: float = -1e18
    lock: threading.Lock = field(default_factory=threading.Lock)
    writer_held: bool = False


@dataclass
class Hit:
    """One search result: a record id, its cosine similarity, its document and metadata."""

    id: str
    score: float
    document: str
    metadata: dict[str, Any]


P = ParamSpec("P")
R = TypeVar("R")


def _reachable(
    method: Callable[Concatenate[KnowledgeStore, P], R],
) -> Callable[Concatenate[KnowledgeStore, P], R]:
    """Turn a lost connection to a Chroma server into `StoreUnavailable` (one clear line)."""

    @functools.wraps(method)
    def wrapper(self: KnowledgeStore, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except (StoreUnavailable, EmbedderMismatch):
            raise
        except Exception as exc:
            if not _is_connection_error(exc):
                raise
            raise StoreUnavailable(
                f"lost the Chroma store at {self.location}: {_one_line(exc)}; check that the "
                "server is running and SHOPSIGHT_CHROMA_URL points to it"
            ) from exc

    return wrapper


def _is_connection_error(exc: BaseException) -> bool:
    """Socket and httpx transport errors, and Chroma's own "could not connect" errors."""
    try:
        import httpx

        transport: tuple[type[BaseException], ...] = (ConnectionError, httpx.TransportError)
    except ImportError:  # pragma: no cover - httpx comes with chromadb
        transport = (ConnectionError,)
    for error in (exc, exc.__cause__, exc.__context__):
        if isinstance(error, transport):
            return True
        if error is not None and "could not connect" in str(error).lower():
            return True
    return False


class KnowledgeStore:
    """Thin, typed access to the three collections; knows nothing about how vectors are made."""

    def __init__(
        self,
        path: Path | None = None,
        url: str | None = None,
        prefix: str = "shopsight",
        hnsw: HnswSettings | None = None,
        watch_seconds: float = WATCH_SECONDS,
    ) -> None:
        enforce_offline()
        chromadb = require("chromadb", "chromadb")
        from chromadb.config import Settings as ChromaSettings

        chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=True)
        if url and "://" not in url:
            url = f"http://{url}"
        self.location = url or str(path)
        self.path = None if url else path
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
            hint = (
                "check that the server is running and SHOPSIGHT_CHROMA_URL points to it"
                if url
                else "check that the folder is writable (SHOPSIGHT_CHROMA_PATH)"
            )
            raise StoreUnavailable(
                f"cannot open the Chroma store at {self.location}: {_one_line(exc)}; {hint}"
            ) from exc
        self.prefix = prefix
        self.hnsw = hnsw or HnswSettings()
        self.watch_seconds = watch_seconds
        self._collections: dict[CollectionKind, Any] = {}
        self._state_prefix = prefix
        self._generation = _Generation()
        self._state: Any = None

    # --- one writer, and the generation every write changes -----------------------------------

    def writer_lock(self) -> StoreLock | None:
        """The writer lock of an embedded folder; None for a Chroma server (it orders writes)."""
        if self.path is None:
            return None
        from knowledge_base.lock import StoreLock

        return StoreLock(self.path)

    def _writing(self) -> None:
        """Before a write: this process must be the folder's one writer (taken once, kept)."""
        watch = self._generation
        if watch.writer_held or self.path is None:
            return
        lock = self.writer_lock()
        assert lock is not None
        lock.acquire()
        watch.writer_held = True

    def _wrote(self) -> None:
        """After a write: a new generation, seen at once here and within a poll elsewhere."""
        token = secrets.token_hex(8)
        if self._state is None:
            name = f"{self._state_prefix}{STATE_SUFFIX}"
            self._state = self.client.get_or_create_collection(name=name, embedding_function=None)
        self._state.modify(
            metadata={GENERATION_KEY: token, "written_at": time.time(), "pid": os.getpid()}
        )
        watch = self._generation
        with watch.lock:
            watch.token, watch.checked = token, time.monotonic()

    @_reachable
    def generation(self) -> str:
        """A token that changes with every write to the store ("" before the first)."""
        watch = self._generation
        with watch.lock:
            if time.monotonic() - watch.checked < self.watch_seconds:
                return watch.token
            from chromadb.errors import NotFoundError

            try:
                # Fetched afresh: a collection object keeps the metadata it was fetched with.
                state = self.client.get_collection(f"{self._state_prefix}{STATE_SUFFIX}")
                watch.token = str((state.metadata or {}).get(GENERATION_KEY, ""))
            except NotFoundError:
                watch.token = ""
            watch.checked = time.monotonic()
            return watch.token

    @_reachable
    def collection(self, kind: CollectionKind, encoder: str | None = None) -> Any:
        """The collection of `kind`; created with cosine HNSW on first use, checked for its encoder.

        A collection made before any encoder was known (say by `kb stats` on an empty store) is
        labelled with the first encoder that writes to it, so a later mix-up is still caught.
        """
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
        if encoder and not stored:
            collection.modify(metadata={**(collection.metadata or {}), "encoder": encoder})

    def encoder_of(self, kind: CollectionKind) -> str | None:
        """The encoder a collection was built with, if it says."""
        return (self.collection(kind).metadata or {}).get("encoder")

    @_reachable
    def mark(self, kind: CollectionKind, values: Mapping[str, str | int | float | bool]) -> None:
        """Add `values` to a collection's own metadata (say, that a rebuild finished)."""
        self._writing()
        collection = self.collection(kind)
        collection.modify(metadata={**(collection.metadata or {}), **values})
        self._wrote()

    def marks(self, kind: CollectionKind) -> dict[str, Any]:
        """A collection's own metadata: its encoder and what `mark` added."""
        return dict(self.collection(kind).metadata or {})

    # --- mirrors: the image vectors of a second model, kept beside the originals -------------

    def mirror(self, space: str) -> KnowledgeStore:
        """The same client with collections named `{prefix}__{space}_*`.

        The trained photo matcher keeps its own vectors of the stored images here, so the
        originals (which Grad-CAM and a catalogue without a trained model use) stay as they are.
        Deleting images from this store deletes them from every mirror too, and `reset` drops
        the mirrors; what is added is copied by whoever owns the mirror's model.
        """
        if not space or MIRROR_SEPARATOR in space:
            raise ValueError(f"a mirror space is a name without {MIRROR_SEPARATOR!r}: {space!r}")
        other = copy.copy(self)
        other.prefix = f"{self.prefix}{MIRROR_SEPARATOR}{space}"
        other._collections = {}
        return other

    @_reachable
    def mirror_spaces(self) -> list[str]:
        """The spaces of the image mirrors of this store that exist."""
        lead, tail = f"{self.prefix}{MIRROR_SEPARATOR}", "_images"
        return sorted(
            name[len(lead) : -len(tail)]
            for name in (c.name for c in self.client.list_collections())
            if name.startswith(lead) and name.endswith(tail) and len(name) > len(lead + tail)
        )

    @_reachable
    def drop_mirror(self, space: str) -> None:
        """Delete one mirror's collections."""
        self._writing()
        mirror = self.mirror(space)
        existing = {c.name for c in self.client.list_collections()}
        for kind in COLLECTION_KINDS:
            if f"{mirror.prefix}_{kind}" in existing:
                self.client.delete_collection(f"{mirror.prefix}_{kind}")
        self._wrote()

    @_reachable
    def stored_hashes(self, kind: CollectionKind, ids: Sequence[str]) -> dict[str, str]:
        """Content hashes of the records among `ids` that exist already."""
        return {
            record_id: str(meta.get("content_hash", ""))
            for record_id, meta in self.stored_metadata(kind, ids).items()
        }

    @_reachable
    def stored_metadata(
        self, kind: CollectionKind, ids: Sequence[str]
    ) -> dict[str, dict[str, Any]]:
        """Metadata of the records among `ids` that exist already."""
        if not ids:
            return {}
        found = self.collection(kind).get(ids=list(dict.fromkeys(ids)), include=["metadatas"])
        return {
            record_id: dict(meta or {})
            for record_id, meta in zip(found["ids"], found["metadatas"] or [], strict=False)
        }

    @_reachable
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
        self._writing()
        self.collection(kind).upsert(
            ids=list(ids),
            embeddings=np.asarray(vectors, dtype=np.float32),
            documents=list(documents),
            metadatas=[_clean_metadata(m) for m in metadatas],
        )
        self._wrote()

    @_reachable
    def refresh(
        self,
        kind: CollectionKind,
        ids: Sequence[str],
        documents: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]],
    ) -> None:
        """Replace documents and metadata but keep the stored vectors (nothing is re-embedded)."""
        if not ids:
            return
        collection = self.collection(kind)
        found = collection.get(ids=list(ids), include=["embeddings"])
        vectors = dict(zip(found["ids"], found["embeddings"], strict=True))
        missing = [record_id for record_id in ids if record_id not in vectors]
        if missing:
            raise KeyError(f"cannot refresh records that are not stored: {missing[:5]}")
        self.upsert(kind, ids, np.asarray([vectors[i] for i in ids]), documents, metadatas)

    @_reachable
    def ids(self, kind: CollectionKind, where: Where | None = None) -> list[str]:
        """Ids of all records, or of those matching a metadata filter."""
        found = self.collection(kind).get(where=dict(where) if where else None, include=[])
        return list(found["ids"])

    @_reachable
    def delete(
        self, kind: CollectionKind, ids: Sequence[str] | None = None, where: Where | None = None
    ) -> int:
        """Delete by ids or by a metadata filter; returns how many records went."""
        collection = self.collection(kind)
        if ids is not None:
            doomed = collection.get(ids=list(ids), include=[])["ids"] if ids else []
        elif where is not None:
            doomed = collection.get(where=dict(where), include=[])["ids"]
        else:
            raise ValueError("delete needs ids or a where filter")
        if doomed:
            self._writing()
            collection.delete(ids=doomed)
            if kind == "images" and MIRROR_SEPARATOR not in self.prefix:
                for space in self.mirror_spaces():
                    self.mirror(space).collection("images").delete(ids=doomed)
            self._wrote()
        return len(doomed)

    @_reachable
    def scan(self, kind: CollectionKind, page: int = 5_000) -> Iterator[Hit]:
        """Every record with its document and metadata, a page at a time (score 0)."""
        collection = self.collection(kind)
        offset = 0
        while True:
            found = collection.get(include=["documents", "metadatas"], limit=page, offset=offset)
            if not found["ids"]:
                return
            for record_id, document, meta in zip(
                found["ids"], found["documents"] or [], found["metadatas"] or [], strict=False
            ):
                yield Hit(
                    id=record_id, score=0.0, document=document or "", metadata=dict(meta or {})
                )
            offset += len(found["ids"])

    @_reachable
    def query(
        self, kind: CollectionKind, vector: np.ndarray, k: int, where: Where | None = None
    ) -> list[Hit]:
        """Nearest records by cosine similarity (1 - Chroma's cosine distance), best first."""
        if k <= 0:
            return []
        # Chroma returns what it has when asked for more; count() would cost a scan (17 ms at 100k).
        result = self.collection(kind).query(
            query_embeddings=[np.asarray(vector, dtype=np.float32)],
            n_results=k,
            where=dict(where) if where else None,
            include=["documents", "metadatas", "distances"],
        )
        return [
            Hit(
                id=record_id,
                score=1.0 - float(distance),
                document=document or "",
                metadata=dict(meta or {}),
            )
            for record_id, distance, document, meta in zip(
                result["ids"][0],
                result["distances"][0],
                result["documents"][0],
                result["metadatas"][0],
                strict=True,
            )
        ]

    @_reachable
    def get(
        self, kind: CollectionKind, ids: Sequence[str] | None = None, where: Where | None = None
    ) -> list[Hit]:
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

    @_reachable
    def count(self, kind: CollectionKind) -> int:
        return int(self.collection(kind).count())

    @_reachable
    def reset(self) -> None:
        """Drop the three collections and their mirrors (and nothing else on a shared server)."""
        self._writing()
        for space in self.mirror_spaces():
            self.drop_mirror(space)
        existing = {c.name for c in self.client.list_collections()}
        for kind in COLLECTION_KINDS:
            name = f"{self.prefix}_{kind}"
            if name in existing:
                self.client.delete_collection(name)
        self._collections.clear()
        self._wrote()


def _clean_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Chroma metadata holds str/int/float/bool only: drop None, stringify the rest."""
    clean: dict[str, Any] = {}
    for key, value in metadata.items():
        if value is None:
            continue
        clean[key] = value if isinstance(value, (str, int, float, bool)) else str(value)
    return clean


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text.rstrip(".")
