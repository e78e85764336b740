"""Wiring: builds the store, models and searchers from `Settings`, lazily and once."""

from __future__ import annotations

from functools import cached_property

from assistant.settings import Settings
from knowledge_base.ingest import IngestOptions, Ingestor
from knowledge_base.store import HnswSettings, KnowledgeStore
from retrieval.embedders import TextEmbedder
from retrieval.image_encoder import ImageEncoder
from retrieval.models import get_image_encoder, get_text_embedder
from retrieval.search import PhotoSearcher, TextSearcher


class Components:
    """Everything a command, the API or the UI needs, built on first use from one `Settings`."""

    def __init__(self, settings: Settings, progress: bool = True) -> None:
        self.settings = settings
        self.progress = progress

    @cached_property
    def store(self) -> KnowledgeStore:
        s = self.settings
        return KnowledgeStore(
            path=None if s.chroma_url else s.resolved_chroma_path,
            url=s.chroma_url,
            prefix=s.collection_prefix,
            hnsw=HnswSettings(s.hnsw_m, s.hnsw_construction_ef, s.hnsw_search_ef),
        )

    @cached_property
    def text_embedder(self) -> TextEmbedder:
        return get_text_embedder(self.settings.text_embedder)

    @property
    def image_encoder(self) -> ImageEncoder:
        return get_image_encoder()

    @cached_property
    def ingestor(self) -> Ingestor:
        s = self.settings
        options = IngestOptions(
            batch_size=s.ingest_batch_size,
            chunk_size=s.chunk_size,
            chunk_overlap=s.chunk_overlap,
            max_image_pixels=s.max_image_pixels,
            max_image_side=s.max_image_side,
            progress=self.progress,
        )
        return Ingestor(self.store, self.text_embedder, get_image_encoder, ImageEncoder.name, options)

    @cached_property
    def text_searcher(self) -> TextSearcher:
        return TextSearcher(self.store, self.text_embedder)

    @cached_property
    def photo_searcher(self) -> PhotoSearcher:
        return PhotoSearcher(self.store, self.image_encoder)
