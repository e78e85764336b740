"""Grad-CAM for photos: where in the customer's photo the CNN saw what drove a decision.

The maps come from EfficientNet-Lite0's last convolutional feature map (`_conv_head` → batch
norm → ReLU6: the 1280×7×7 map the image feature is GeM-pooled from), for two decisions:

- the category: one logit of a head mapping pooled features to class logits (the trained
  `retrieval.heads.category.Head`, rebuilt in torch, or any `torch.nn.Module`);
- photo↔product similarity: the cosine between the photo's embedding and the catalogue image's
  embedding, the catalogue side held fixed.

Two choices were measured with the deletion test of `explain.faithfulness` (hide the hottest
20% behind a blurred copy vs. a random 20%; mean margin) on 30 seeded *training* photos — the
reported margins use validation photos:

- `method="hirescam"` (default) weighs each location by its own gradient, Σ_k ∂y/∂A_k(x,y) ·
  A_k(x,y), where classic Grad-CAM averages the gradient over the map first. GeM pooling
  weighs locations unequally, which the average ignores: category 0.96 vs 0.84, similarity
  0.036 vs 0.026.
- The L2 normalisation's scale is held constant in the backward pass (the value is still the
  cosine). A cosine is scale-free, so its exact gradient sums to zero over the map; with the
  scale fixed, the map splits the score into per-location shares (as in similarity-network
  CAMs): similarity 0.036 vs 0.012, category 0.96 vs 0.77.

captum's `LayerGradCam` needs a module to hook; the ReLU6 module that produces this map is
shared with the stem, and the hookable layers before it (`_conv_head`, `_bn1`) gave similarity
margins of 0.002 (grey fill, same 30 photos), so the maps are computed directly: the CNN runs once without autograd and the
backward pass covers only pooling and the head.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

import numpy as np
from PIL import Image

from retrieval.encoders.image import INPUT_SIDE, ImageEncoder, gem_pool, preprocess

if TYPE_CHECKING:
    import torch

    from retrieval.heads.category import CategoryClassifier, Head

Method = Literal["hirescam", "gradcam"]
# Pooled, L2-normalised features (N×1280) → one score per image (N,).
Target = Callable[["torch.Tensor"], "torch.Tensor"]


@dataclass
class CamResult:
    """A heatmap (H×W, in [0, 1], at the photo's own resolution) and what it explains."""

    heatmap: np.ndarray
    score: float
    target: str
    class_index: int | None = None


def head_module(head: Head) -> torch.nn.Module:
    """The numpy category head as a torch module, so gradients can flow through it.

    The head standardises its input, (x − mean) / scale, before the first layer; that is affine,
    so it is folded into the first layer's weights and bias.
    """
    import torch

    mean = np.asarray(head.mean, dtype=np.float64)
    scale = np.asarray(head.scale, dtype=np.float64)
    layers: list[torch.nn.Module] = []
    for index, (weight, bias) in enumerate(head.layers):
        w = np.asarray(weight, dtype=np.float64)
        b = np.asarray(bias, dtype=np.float64)
        if index == 0:
            w, b = w / scale[:, None], b - (mean / scale) @ w
        linear = torch.nn.Linear(w.shape[0], w.shape[1])
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(w.T.astype(np.float32)))
            linear.bias.copy_(torch.from_numpy(b.astype(np.float32)))
        layers.append(linear)
        if index < len(head.layers) - 1:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers).eval()


class GradCam:
    """Heatmaps over one image encoder (default: the shared EfficientNet-Lite0)."""

    def __init__(self, encoder: ImageEncoder | None = None, method: Method = "hirescam") -> None:
        import torch

        if encoder is None:
            from retrieval.encoders.registry import get_image_encoder

            encoder = get_image_encoder()
        if method not in ("hirescam", "gradcam"):
            raise ValueError(f"unknown method {method!r}; use 'hirescam' or 'gradcam'")
        self.encoder = encoder
        self.method = method
        self._torch = torch

    def feature_maps(self, batch: np.ndarray) -> torch.Tensor:
        """N×1280×7×7 maps of preprocessed inputs, without autograd."""
        with self._torch.no_grad():
            return self.encoder.feature_map(self._torch.from_numpy(np.ascontiguousarray(batch)))

    def explain(self, image: Image.Image, target: Target, name: str) -> CamResult:
        """The heatmap of `target` for `image`, upsampled to the image's size."""
        return self._explain_maps(self.feature_maps(preprocess([image])), image.size, target, name)

    def _explain_maps(
        self,
        maps: torch.Tensor,
        size: tuple[int, int],
        target: Target,
        name: str,
        features: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> CamResult:
        """`features` turns the map into what `target` scores (default: the GeM embedding)."""
        torch = self._torch
        leaf = maps.clone().requires_grad_(True)
        pool = features or (lambda m: pooled(m, fixed_scale=True))
        with torch.enable_grad():
            score = target(pool(leaf)).sum()
            (gradients,) = torch.autograd.grad(score, leaf)
        if self.method == "gradcam":
            gradients = gradients.mean(dim=(2, 3), keepdim=True)
        cam = torch.relu((gradients * maps).sum(dim=1, keepdim=True))
        return CamResult(upsample_heatmap(cam, size), float(score.detach()), name)

    def category(
        self,
        image: Image.Image,
        head: torch.nn.Module | Head,
        classes: Sequence[str] | None = None,
        class_index: int | None = None,
    ) -> CamResult:
        """Where the photo shows its category: the predicted class's logit unless
        `class_index` names another."""
        module = as_module(head)
        maps = self.feature_maps(preprocess([image]))
        if class_index is None:
            with self._torch.no_grad():
                class_index = int(module(pooled(maps)).argmax(dim=1)[0])
        label = classes[class_index] if classes else str(class_index)
        target = category_target(module, class_index)
        result = self._explain_maps(maps, image.size, target, f"category:{label}")
        return replace(result, class_index=class_index)

    def classifier(self, image: Image.Image, classifier: CategoryClassifier) -> CamResult:
        """Grad-CAM of a trained `CategoryClassifier`'s prediction for the (unflipped) photo,
        on the features it was trained on: the photo at its own aspect ratio, the GeM of the
        whole map and of its horizontal bands (`retrieval.heads.category.BandedFeatures`)."""
        from retrieval.heads.category import BandedFeatures

        bands = classifier.features.bands
        module = as_module(classifier.head)
        maps = self.feature_maps(BandedFeatures(self.encoder, classifier.features).pixels(image))
        with self._torch.no_grad():
            class_index = int(module(banded(maps, bands)).argmax(dim=1)[0])
        result = self._explain_maps(
            maps,
            image.size,
            category_target(module, class_index),
            f"category:{classifier.classes[class_index]}",
            features=lambda m: banded(m, bands, fixed_scale=True),
        )
        return replace(result, class_index=class_index)

    def similarity(self, photo: Image.Image, catalogue: Image.Image | np.ndarray) -> CamResult:
        """Which parts of `photo` make it look like the catalogue image (or a stored catalogue
        embedding, 1280-d, L2-normalised)."""
        reference = self.reference(catalogue)
        return self.explain(photo, similarity_target(reference), "similarity")

    def similarity_pair(
        self, photo: Image.Image, catalogue: Image.Image
    ) -> tuple[CamResult, CamResult]:
        """Heatmaps on both sides of a match: the photo against the catalogue image, and the
        catalogue image against the photo."""
        photo_embedding, catalogue_embedding = self.encoder.embed_images([photo, catalogue])
        return (
            self.explain(
                photo, similarity_target(self.reference(catalogue_embedding)), "similarity"
            ),
            self.explain(
                catalogue, similarity_target(self.reference(photo_embedding)), "similarity"
            ),
        )

    def reference(self, catalogue: Image.Image | np.ndarray) -> torch.Tensor:
        """A fixed 1×1280 catalogue embedding from an image or a stored vector."""
        vector = (
            self.encoder.embed_images([catalogue])[0]
            if isinstance(catalogue, Image.Image)
            else np.asarray(catalogue, dtype=np.float32).reshape(-1)
        )
        return self._torch.from_numpy(np.ascontiguousarray(vector, dtype=np.float32))[None]

    def scores(self, batch: np.ndarray, target: Target, batch_size: int = 4) -> np.ndarray:
        """`target` for preprocessed inputs (N×3×224×224), e.g. masked variants of a photo."""
        out = []
        with self._torch.no_grad():
            for start in range(0, len(batch), batch_size):
                maps = self.feature_maps(batch[start : start + batch_size])
                out.append(target(pooled(maps)).numpy())
        return np.concatenate(out).astype(np.float64)


def pooled(maps: torch.Tensor, fixed_scale: bool = False) -> torch.Tensor:
    """GeM-pooled, L2-normalised features: exactly what `ImageEncoder.embed_images` returns.

    `fixed_scale` keeps the value but holds the norm constant for gradients (see the module
    docstring for why the heatmaps need that)."""
    features = gem_pool(maps)
    norm = features.norm(dim=1, keepdim=True).clamp(min=1e-12)
    return features / (norm.detach() if fixed_scale else norm)


def banded(maps: torch.Tensor, bands: int, fixed_scale: bool = False) -> torch.Tensor:
    """`pooled` of the whole map and of `bands` horizontal bands, side by side: exactly the
    rows `retrieval.heads.category.BandedFeatures.embed_images` gives."""
    import torch

    edges = np.linspace(0, maps.shape[-2], bands + 1)
    parts = [maps] + [
        maps[..., int(np.floor(low)) : int(np.ceil(high)), :]
        for low, high in itertools.pairwise(edges)
    ]
    return torch.cat([pooled(part, fixed_scale) for part in parts], dim=1)


def as_module(head: torch.nn.Module | Head) -> torch.nn.Module:
    """A torch module mapping pooled features to logits, from either kind of head."""
    import torch

    return head if isinstance(head, torch.nn.Module) else head_module(head)


def category_target(module: torch.nn.Module, class_index: int) -> Target:
    """One class's logit."""
    return lambda features: module(features)[:, class_index]


def similarity_target(reference: torch.Tensor) -> Target:
    """Cosine with a fixed L2-normalised embedding (both sides are unit vectors)."""
    return lambda features: (features * reference).sum(dim=1)


def upsample_heatmap(cam: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """A heatmap grid of any size (7×7, 14×14, 224×224) → H×W in [0, 1] (bilinear, via the
    224-pixel input grid)."""
    import torch

    width, height = size
    grid = torch.nn.functional.interpolate(
        cam, size=(INPUT_SIDE, INPUT_SIDE), mode="bilinear", align_corners=False
    )
    full = torch.nn.functional.interpolate(
        grid, size=(height, width), mode="bilinear", align_corners=False
    )
    heat = full[0, 0].detach().numpy().astype(np.float32)
    peak = float(heat.max())
    return heat / peak if peak > 0 else np.zeros_like(heat)
