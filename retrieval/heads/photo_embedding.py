"""The photo embedding learned from the shop's own catalogue, run in NumPy at serving time.

A projection head over pooled EfficientNet stage features (`retrieval.encoders.stages`):
a linear map plus a small GELU network, added and L2-normalised. `retrieval.training.
photo_embedding` fits it contrastively on customer-photo-like views of the catalogue and saves
it with the confidence calibrated for it as `photo-embed-vN/`; `TrainedPhotoEncoder` is then a
drop-in `ImageEmbedder` whose name carries the version, so vectors of two models never mix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from retrieval import artifacts
from retrieval.encoders.features import FeatureCache, View
from retrieval.encoders.stages import STAGE_CHANNELS
from retrieval.encoders.text import l2_normalise
from retrieval.heads.photo_matcher import MatchCalibrator, load_calibrator

ARTEFACT = "photo-embed"
HEAD_FILE = "head.npz"


class StageFeatures(Protocol):
    name: str
    dim: int

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray: ...

    def stage_features(self, images: Sequence[Image.Image]) -> np.ndarray: ...


def gelu(values: np.ndarray) -> np.ndarray:
    """The tanh form of GELU, the one the head is trained with, so NumPy and torch agree."""
    return (
        0.5 * values * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (values + 0.044715 * values**3)))
    )


FROZEN_DIM = STAGE_CHANNELS[-1]
"""The last stage's pooled map: the frozen matcher's own feature, the tail of the stage features."""


@dataclass(frozen=True)
class PhotoEmbeddingHead:
    """`linear @ x + w2 @ gelu(w1 @ x + b1) + b2`, L2-normalised, and, when `frozen_share` is
    above 0, the frozen last-stage feature appended so that the dot product of two vectors is
    `(1 - share) * learned cosine + share * frozen cosine`.

    The learned part knows this shop's products as instances; the frozen part still knows what
    *kind* of thing a photo shows, which is what a photo of a product the shop does not sell
    (or one unlike its studio photos) needs to find the closest items of the right kind."""

    linear: np.ndarray
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray
    frozen_share: float = 0.0

    @property
    def dim(self) -> int:
        return int(self.linear.shape[0]) + (FROZEN_DIM if self.frozen_share > 0 else 0)

    def learned(self, features: np.ndarray) -> np.ndarray:
        """The learned embedding alone (what training optimises)."""
        x = np.asarray(features, dtype=np.float32)
        out = x @ self.linear.T + gelu(x @ self.w1.T + self.b1) @ self.w2.T + self.b2
        return l2_normalise(out.astype(np.float32))

    def __call__(self, features: np.ndarray) -> np.ndarray:
        learned = self.learned(features)
        if self.frozen_share <= 0:
            return learned
        frozen = l2_normalise(np.asarray(features, dtype=np.float32)[:, -FROZEN_DIM:])
        share = float(self.frozen_share)
        fused = np.concatenate([math.sqrt(1 - share) * learned, math.sqrt(share) * frozen], 1)
        return l2_normalise(fused.astype(np.float32))

    def save(self, path: Path) -> None:
        np.savez(
            path,
            linear=self.linear,
            w1=self.w1,
            b1=self.b1,
            w2=self.w2,
            b2=self.b2,
            frozen_share=np.float32(self.frozen_share),
        )

    @classmethod
    def untrained(
        cls, features: int, dim: int, hidden: int, frozen_share: float, seed: int
    ) -> PhotoEmbeddingHead:
        """A head of this shape with seeded random weights, for benchmarks and tests of what
        does not depend on what a head learned (latency, explanation plumbing)."""
        rng = np.random.default_rng(seed)

        def weights(rows: int, columns: int) -> np.ndarray:
            return (rng.standard_normal((rows, columns)) / np.sqrt(columns)).astype(np.float32)

        return cls(
            linear=weights(dim, features),
            w1=weights(hidden, features),
            b1=np.zeros(hidden, np.float32),
            w2=weights(dim, hidden),
            b2=np.zeros(dim, np.float32),
            frozen_share=frozen_share,
        )

    @classmethod
    def load(cls, path: Path) -> PhotoEmbeddingHead:
        """Weights saved by `save`; a head saved before fusion existed has no frozen share."""
        with np.load(path) as weights:
            arrays = {k: np.asarray(weights[k], dtype=np.float32) for k in weights.files}
        return cls(
            linear=arrays["linear"],
            w1=arrays["w1"],
            b1=arrays["b1"],
            w2=arrays["w2"],
            b2=arrays["b2"],
            frozen_share=float(arrays.get("frozen_share", 0.0)),
        )


class TrainedPhotoEncoder:
    """Stage features → the learned head: an `ImageEmbedder` named after its artefact version."""

    def __init__(self, stages: StageFeatures, head: PhotoEmbeddingHead, name: str) -> None:
        self.stages = stages
        self.head = head
        self.name = name
        self.dim = head.dim

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.head(self.stages.stage_features(images))


class TrainedFeatureCache(FeatureCache):
    """A trained encoder's features as its head over the cached stage features: a new model
    version reuses every stage feature already computed (the catalogue's, the simulated
    customer photos' of training and evaluation), so only the cheap head runs again."""

    def __init__(
        self,
        root: Path,
        encoder: TrainedPhotoEncoder,
        max_pixels: int = 40_000_000,
        max_side: int = 512,
    ) -> None:
        super().__init__(root, encoder.stages, max_pixels, max_side)
        self.trained = encoder

    def features(
        self,
        paths: Sequence[Path],
        view: View | None = None,
        view_name: str = "full",
        progress: bool = True,
        batch: int = 16,
    ) -> np.ndarray:
        return self.trained.head(super().features(paths, view, view_name, progress, batch))


@dataclass(frozen=True)
class TrainedMatcher:
    """What one `photo-embed-vN/` holds: the head, its calibrator, and its meta.json."""

    folder: Path
    head: PhotoEmbeddingHead
    calibrator: MatchCalibrator
    meta: dict[str, Any]

    @property
    def encoder_name(self) -> str:
        return f"{ARTEFACT}-{self.folder.name.rsplit('-', 1)[-1]}"

    def encoder(self, stages: StageFeatures) -> TrainedPhotoEncoder:
        return TrainedPhotoEncoder(stages, self.head, self.encoder_name)


def load_trained_matcher(artifacts_dir: Path) -> TrainedMatcher | None:
    """The newest complete `photo-embed-vN/`, or None (the frozen matcher is used then)."""
    folder = artifacts.latest(artifacts_dir, ARTEFACT)
    if folder is None or not (folder / HEAD_FILE).is_file():
        return None
    calibrator, meta = load_calibrator(folder)
    return TrainedMatcher(folder, PhotoEmbeddingHead.load(folder / HEAD_FILE), calibrator, meta)
