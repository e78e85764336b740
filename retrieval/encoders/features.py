"""Cached image features: training, evaluation and re-ingestion reuse one encoding per file.

Features are stored per file content hash (and per encoder and view), so moving or renaming a
photo costs nothing and an edited photo is re-encoded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image
from tqdm import tqdm

# The image-folder reader lives in knowledge_base.folders; this name stays importable from here.
from knowledge_base.folders import list_image_folder as list_image_folder
from knowledge_base.images import load_image
from knowledge_base.schema import file_hash

View = Callable[[Image.Image], Image.Image]


class Embedder(Protocol):
    """Any image model with a stable name (the cache key), a width and a batch call."""

    name: str
    dim: int

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray: ...


class FeatureCache:
    """`features(paths)` returns one L2-normalised row per path, encoding only what is new."""

    def __init__(
        self,
        root: Path,
        encoder: Embedder,
        max_pixels: int = 40_000_000,
        max_side: int = 512,
    ) -> None:
        self.root = root / "features" / encoder.name
        self.encoder = encoder
        self.max_pixels = max_pixels
        self.max_side = max_side

    def features(
        self,
        paths: Sequence[Path],
        view: View | None = None,
        view_name: str = "full",
        progress: bool = True,
        batch: int = 16,
    ) -> np.ndarray:
        """Features of `view(image)` for each path (the whole image when `view` is None)."""
        folder = self.root / view_name
        folder.mkdir(parents=True, exist_ok=True)
        keys = [file_hash(Path(p)) for p in paths]
        out = np.zeros((len(paths), self.encoder.dim), dtype=np.float32)
        missing: list[int] = []
        for index, key in enumerate(keys):
            cached = folder / f"{key}.npy"
            if cached.exists():
                out[index] = np.load(cached)
            else:
                missing.append(index)
        bar = tqdm(
            total=len(missing),
            desc=f"image features ({view_name})",
            unit="img",
            disable=not progress or not missing,
        )
        for start in range(0, len(missing), batch):
            indices = missing[start : start + batch]
            images = [load_image(Path(paths[i]), self.max_pixels, self.max_side) for i in indices]
            if view is not None:
                images = [view(image) for image in images]
            vectors = self.encoder.embed_images(images)
            for i, vector in zip(indices, vectors, strict=True):
                out[i] = vector
                save_atomically(folder / f"{keys[i]}.npy", vector)
            bar.update(len(indices))
        bar.close()
        return out


def save_atomically(path: Path, vector: np.ndarray) -> None:
    """Write then rename, so a killed run never leaves a half-written feature behind."""
    temporary = path.with_suffix(".tmp.npy")
    np.save(temporary, vector)
    temporary.replace(path)
