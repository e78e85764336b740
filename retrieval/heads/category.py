"""Category recognition: a head trained on the shop's own labelled photos over frozen CNN features.

This module predicts and loads; `retrieval.training.category` trains. The head is a small MLP
stored as plain numpy arrays, so predicting needs no torch autograd and loads in milliseconds.
Probabilities are calibrated with one temperature fitted on the held-out part of the training
data, and logits are averaged over a few fixed views of the photo (the photo, its mirror image).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
from PIL import Image, ImageOps
from pydantic import BaseModel

from retrieval import artifacts
from retrieval.calibration import softmax
from retrieval.encoders.features import FeatureCache
from retrieval.encoders.text import l2_normalise

FORMAT_VERSION = 1
ARTEFACT = "category"
_WEIGHTS = "head.npz"
# The Lite models were trained on (rgb/255 − 0.498)/0.502, as in retrieval.encoders.image.
_MEAN, _STD = 0.498, 0.502
_MAX_SIDE = 512


def _crop(
    left: float, top: float, right: float, bottom: float
) -> Callable[[Image.Image], Image.Image]:
    def view(image: Image.Image) -> Image.Image:
        width, height = image.size
        box = (
            round(left * width),
            round(top * height),
            round(right * width),
            round(bottom * height),
        )
        return image.crop(box)

    return view


def _pad_square(image: Image.Image) -> Image.Image:
    """Letterbox onto a square of the edge colour, so the 224×224 input keeps the aspect ratio."""
    side = max(image.size)
    corner = image.convert("RGB").getpixel((0, 0))
    return ImageOps.pad(image, (side, side), color=corner if isinstance(corner, tuple) else None)


# Fixed, named views: the feature cache stores each under its name, so the names must not change
# meaning. None is the whole photo.
VIEWS: dict[str, Callable[[Image.Image], Image.Image] | None] = {
    "full": None,
    "flip": ImageOps.mirror,
    "centre80": _crop(0.1, 0.1, 0.9, 0.9),
    "top85": _crop(0.0, 0.0, 1.0, 0.85),
    "bottom85": _crop(0.0, 0.15, 1.0, 1.0),
    "pad": _pad_square,
}


class CategoryPrediction(BaseModel):
    """The predicted category, its calibrated probability, and every class's probability."""

    label: str
    confidence: float
    probabilities: dict[str, float]


class ImageFeatures(Protocol):
    """What the classifier needs from an image encoder (`ImageEncoder` or a test double)."""

    name: str
    dim: int

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray: ...


@dataclass(frozen=True)
class FeatureSettings:
    """How photos become classifier inputs; stored in the artefact so prediction matches."""

    short_side: int = 256
    bands: int = 3


class BandedFeatures:
    """EfficientNet-Lite0 features made for telling garments apart.

    The photo keeps its aspect ratio and is scaled to `short_side` (256 beat the 224×224 squash
    by ~2.4 points of held-out accuracy with a linear head), and besides the GeM of the whole
    feature map it GeM-pools `bands` horizontal bands, because *where* things are (sleeves, hem,
    a shoe's sole) tells categories apart: +1-3 points more. Each part is L2-normalised.
    """

    def __init__(self, base: Any, settings: FeatureSettings | None = None) -> None:
        self.base = base
        self.settings = settings or FeatureSettings()
        self.name = f"{base.name}-s{self.settings.short_side}-b{self.settings.bands}"
        self.dim = base.dim * (1 + self.settings.bands)

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        import torch

        from retrieval.encoders.image import gem_pool

        rows = []
        with torch.inference_mode():
            for image in images:
                feature_map = self.base.feature_map(torch.from_numpy(self.pixels(image)))
                edges = np.linspace(0, feature_map.shape[-2], self.settings.bands + 1)
                parts = [gem_pool(feature_map)] + [
                    gem_pool(feature_map[..., int(np.floor(low)) : int(np.ceil(high)), :])
                    for low, high in itertools.pairwise(edges)
                ]
                rows.append(np.concatenate([l2_normalise(p.numpy()) for p in parts], axis=1))
        return np.concatenate(rows) if rows else np.zeros((0, self.dim), dtype=np.float32)

    def pixels(self, image: Image.Image) -> np.ndarray:
        """1×3×H×W input, aspect kept; the long side is capped so a panorama stays cheap."""
        rgb = image.convert("RGB")
        width, height = rgb.size
        scale = min(self.settings.short_side / min(width, height), _MAX_SIDE / max(width, height))
        size = (max(32, round(width * scale)), max(32, round(height * scale)))
        pixels = np.asarray(rgb.resize(size, Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
        return np.ascontiguousarray(((pixels - _MEAN) / _STD).transpose(2, 0, 1)[None])


def banded_encoder(settings: FeatureSettings | None = None) -> BandedFeatures:
    """`BandedFeatures` over the process-wide EfficientNet-Lite0 (loaded on first use)."""
    from retrieval.encoders.registry import get_image_encoder

    return BandedFeatures(get_image_encoder(), settings)


@dataclass
class Head:
    """Standardise → (ReLU MLP layer) → linear logits, as numpy arrays."""

    mean: np.ndarray
    scale: np.ndarray
    layers: list[tuple[np.ndarray, np.ndarray]]

    def logits(self, features: np.ndarray) -> np.ndarray:
        hidden = (np.asarray(features, dtype=np.float32) - self.mean) / self.scale
        for index, (weight, bias) in enumerate(self.layers):
            hidden = hidden @ weight + bias
            if index < len(self.layers) - 1:
                hidden = np.maximum(hidden, 0.0)
        return hidden

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"mean": self.mean, "scale": self.scale}
        for index, (weight, bias) in enumerate(self.layers):
            out[f"w{index}"], out[f"b{index}"] = weight, bias
        return out

    @classmethod
    def from_arrays(cls, arrays: Any) -> Head:
        count = sum(1 for key in arrays if str(key).startswith("w"))
        layers = [(arrays[f"w{i}"], arrays[f"b{i}"]) for i in range(count)]
        return cls(arrays["mean"], arrays["scale"], layers)


class CategoryClassifier:
    """A trained head plus what it needs to be used: classes, temperature and feature views.

    Logits are averaged over `views` (test-time augmentation, e.g. the photo and its mirror
    image) before the temperature is applied.
    """

    def __init__(
        self,
        classes: Sequence[str],
        head: Head,
        temperature: float,
        views: Sequence[str],
        encoder_name: str,
        features: FeatureSettings | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        unknown = [v for v in views if v not in VIEWS]
        if unknown:
            raise ValueError(f"unknown feature views {unknown}; known: {sorted(VIEWS)}")
        self.classes = list(classes)
        self.head = head
        self.temperature = temperature
        self.views = tuple(views)
        self.encoder_name = encoder_name
        self.features = features or FeatureSettings()
        self.meta = meta or {}

    def encoder(self) -> ImageFeatures:
        """The feature extractor this model was trained on, over the shared EfficientNet."""
        return banded_encoder(self.features)

    def feature_cache(self, root: Path) -> FeatureCache:
        """A feature cache under `root` (e.g. SHOPSIGHT_DATA_DIR/cache) for this model's inputs."""
        return FeatureCache(root, cast(Any, self.encoder()))

    def probabilities(self, view_features: Sequence[np.ndarray]) -> np.ndarray:
        """Calibrated class probabilities (n×classes) from one feature matrix per view."""
        logits = np.mean([self.head.logits(f) for f in view_features], axis=0)
        return softmax(logits, self.temperature)

    def predict(
        self, images: Sequence[Image.Image], encoder: ImageFeatures | None = None
    ) -> list[CategoryPrediction]:
        """Category of each photo, encoding every view with `encoder` (default: `self.encoder()`)."""
        if not images:
            return []
        encoder = encoder or self.encoder()
        self._check_encoder(encoder.name)
        features = [
            encoder.embed_images([_apply(view, image) for image in images]) for view in self.views
        ]
        return self.to_predictions(self.probabilities(features))

    def predict_paths(
        self, paths: Sequence[Path], cache: FeatureCache, progress: bool = False
    ) -> list[CategoryPrediction]:
        """Category of each image file, reusing (and filling) the feature cache."""
        return self.to_predictions(self.probabilities(self.path_features(paths, cache, progress)))

    def path_features(
        self, paths: Sequence[Path], cache: FeatureCache, progress: bool = False
    ) -> list[np.ndarray]:
        self._check_encoder(cache.encoder.name)
        return [
            cache.features(paths, view=VIEWS[v], view_name=v, progress=progress) for v in self.views
        ]

    def to_predictions(self, probabilities: np.ndarray) -> list[CategoryPrediction]:
        predictions = []
        for row in probabilities:
            best = int(row.argmax())
            predictions.append(
                CategoryPrediction(
                    label=self.classes[best],
                    confidence=round(float(row[best]), 4),
                    probabilities={
                        c: round(float(p), 4) for c, p in zip(self.classes, row, strict=True)
                    },
                )
            )
        return predictions

    def _check_encoder(self, name: str) -> None:
        if name != self.encoder_name:
            raise ValueError(
                f"the category model was trained on {self.encoder_name!r} features, not {name!r}: "
                "retrain it with `shopsight train category --data ...`"
            )

    def save(self, artifacts_dir: Path) -> Path:
        """Write a new version `category-vN/` (weights + meta.json) and return its folder."""
        arrays: dict[str, Any] = self.head.arrays()
        meta = {
            **self.meta,
            "format_version": FORMAT_VERSION,
            "classes": self.classes,
            "temperature": self.temperature,
            "views": list(self.views),
            "encoder": self.encoder_name,
            "features": asdict(self.features),
        }
        folder = artifacts.save(
            artifacts_dir, ARTEFACT, lambda staging: np.savez(staging / _WEIGHTS, **arrays), meta
        )
        self.meta = meta
        return folder

    @classmethod
    def load(cls, folder: Path) -> CategoryClassifier:
        meta = artifacts.read_model_meta(folder, "category model", FORMAT_VERSION)
        with np.load(folder / _WEIGHTS) as arrays:
            head = Head.from_arrays({key: arrays[key] for key in arrays.files})
        features = FeatureSettings(**meta.get("features", {}))
        return cls(
            meta["classes"],
            head,
            float(meta["temperature"]),
            meta["views"],
            meta["encoder"],
            features,
            meta,
        )


def latest_model_dir(artifacts_dir: Path) -> Path | None:
    """The newest complete `category-vN/` under `artifacts_dir`, or None when none was trained."""
    return artifacts.latest(artifacts_dir, ARTEFACT)


def load_latest(artifacts_dir: Path) -> CategoryClassifier | None:
    """The newest trained classifier, loaded automatically when one is present."""
    folder = latest_model_dir(artifacts_dir)
    return CategoryClassifier.load(folder) if folder else None


def _apply(view: str, image: Image.Image) -> Image.Image:
    transform = VIEWS[view]
    return image if transform is None else transform(image)
