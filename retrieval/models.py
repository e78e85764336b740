"""Process-wide model registry: each model loads lazily, once, even under concurrent first use."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from retrieval.embedders import E5Embedder, HashEmbedder, MiniLMEmbedder, TextEmbedder
from retrieval.image_encoder import ImageEncoder

T = TypeVar("T")

_TEXT_FACTORIES: dict[str, Callable[[], TextEmbedder]] = {
    "e5": E5Embedder,
    "minilm": MiniLMEmbedder,
    "hash": HashEmbedder,
}
_cache: dict[str, object] = {}
_lock = threading.Lock()


def _once(key: str, factory: Callable[[], T]) -> T:
    instance = _cache.get(key)
    if instance is None:
        with _lock:
            instance = _cache.get(key)
            if instance is None:
                instance = factory()
                _cache[key] = instance
    return instance  # type: ignore[return-value]


def get_text_embedder(name: str) -> TextEmbedder:
    """The named text embedder (`e5`, `minilm` or `hash`), loaded on first use."""
    if name not in _TEXT_FACTORIES:
        raise ValueError(f"unknown text embedder {name!r}; choose one of {sorted(_TEXT_FACTORIES)}")
    return _once(f"text:{name}", _TEXT_FACTORIES[name])


def get_image_encoder() -> ImageEncoder:
    """The EfficientNet-Lite0 encoder, loaded on first use."""
    return _once("image", ImageEncoder)
