"""Process-wide model registry: each model loads lazily, once, even under concurrent first use."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from retrieval.encoders.image import ImageEncoder
from retrieval.encoders.stages import StageEncoder
from retrieval.encoders.static import StaticMiniLMEmbedder
from retrieval.encoders.text import E5Embedder, HashEmbedder, MiniLMEmbedder, TextEmbedder

T = TypeVar("T")

_TEXT_FACTORIES: dict[str, Callable[[Path | None], TextEmbedder]] = {
    "e5": lambda _: E5Embedder(),
    "minilm": lambda _: MiniLMEmbedder(),
    "minilm-static": StaticMiniLMEmbedder,
    "hash": lambda _: HashEmbedder(),
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


def get_text_embedder(name: str, cache_dir: Path | None = None) -> TextEmbedder:
    """The named text embedder (`e5`, `minilm`, `minilm-static` or `hash`), loaded on first use.

    `cache_dir` keeps what an embedder derives once (the distilled static table); without it
    that is derived again in each process.
    """
    if name not in _TEXT_FACTORIES:
        raise ValueError(f"unknown text embedder {name!r}; choose one of {sorted(_TEXT_FACTORIES)}")
    factory = _TEXT_FACTORIES[name]
    return _once(f"text:{name}", lambda: factory(cache_dir))


def get_image_encoder() -> ImageEncoder:
    """The EfficientNet-Lite0 encoder, loaded on first use."""
    return _once("image", ImageEncoder)


def get_stage_encoder() -> StageEncoder:
    """The multi-stage EfficientNet-Lite0 features the trained photo matcher reads."""
    return _once("image-stages", StageEncoder)
