"""Grad-CAM of the trained photo matcher: where the photo looks like the product it matched.

Once `shopsight train photo-match` has run, photo search ranks by the trained embedding (a head
over GeM-pooled maps of five EfficientNet-Lite0 stages, `retrieval.heads.photo_embedding`), not
by the frozen 1280-d feature, so explaining a match with the frozen encoder would explain a
decision nobody made. This map explains the trained similarity itself:

- the CNN runs once in onnxruntime (`StageEncoder.stage_maps`) without autograd; the five maps
  become leaves, and only the pooling, the head and the cosine are rebuilt in torch;
- each stage's map gets HiResCAM weights (gradient × activation summed over channels, as
  `explain.gradcam` does for the frozen encoder) with every L2 norm held fixed in the backward
  pass, so a location's value is its share of the cosine;
- the stages have different grids (14×14 and 7×7 at 224 pixels): each is spread over the
  pixels its cells cover (a cell's share divided by its area), summed, and only then clipped
  at zero, so a region one stage counts against is not counted for by another.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np
from PIL import Image

from explain.gradcam import CamResult, Method, Target, similarity_target, upsample_heatmap
from retrieval.encoders.image import INPUT_SIDE, gem_pool, preprocess
from retrieval.heads.photo_embedding import FROZEN_DIM, PhotoEmbeddingHead

if TYPE_CHECKING:
    import torch


class StageMaps(Protocol):
    def stage_maps(self, pixels: np.ndarray) -> list[np.ndarray]: ...


class MatcherCam:
    """Heatmaps of the trained matcher's photo↔product cosine (same interface as `GradCam`'s
    similarity methods, so the evidence pack takes either)."""

    def __init__(
        self, stages: StageMaps, head: PhotoEmbeddingHead, method: Method = "hirescam"
    ) -> None:
        import torch

        if method not in ("hirescam", "gradcam"):
            raise ValueError(f"unknown method {method!r}; use 'hirescam' or 'gradcam'")
        self.stages = stages
        self.head = head
        self.method = method
        self._torch = torch
        self._weights = {
            name: torch.from_numpy(np.ascontiguousarray(getattr(head, name), np.float32))
            for name in ("linear", "w1", "b1", "w2", "b2")
        }

    def embedding(self, maps: Sequence[torch.Tensor], fixed_scale: bool = False) -> torch.Tensor:
        """The head's embedding of stage maps, in torch: equal to `head(pool_stages(maps))`."""
        torch = self._torch
        features = torch.cat([_unit(gem_pool(m), fixed_scale) for m in maps], dim=1)
        w = self._weights
        hidden = features @ w["w1"].T + w["b1"]
        gelu = torch.nn.functional.gelu(hidden, approximate="tanh")
        learned = _unit(features @ w["linear"].T + gelu @ w["w2"].T + w["b2"], fixed_scale)
        share = float(self.head.frozen_share)
        if share <= 0:
            return learned
        frozen = features[:, -FROZEN_DIM:]
        fused = torch.cat([math.sqrt(1 - share) * learned, math.sqrt(share) * frozen], dim=1)
        return _unit(fused, fixed_scale)

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        with self._torch.no_grad():
            rows = [
                self.embedding(self._maps(preprocess(images[start : start + 8]))).numpy()
                for start in range(0, len(images), 8)
            ]
        return np.concatenate(rows) if rows else np.zeros((0, self.head.dim), np.float32)

    def reference(self, catalogue: Image.Image | np.ndarray) -> torch.Tensor:
        """A fixed 1×dim catalogue embedding from an image or a stored trained vector."""
        vector = (
            self.embed_images([catalogue])[0]
            if isinstance(catalogue, Image.Image)
            else np.asarray(catalogue, dtype=np.float32).reshape(-1)
        )
        return self._torch.from_numpy(np.ascontiguousarray(vector, dtype=np.float32))[None]

    def similarity(self, photo: Image.Image, catalogue: Image.Image | np.ndarray) -> CamResult:
        """Which parts of `photo` make it look like the catalogue image (or stored vector)."""
        return self.explain(photo, similarity_target(self.reference(catalogue)), "similarity")

    def similarity_pair(
        self, photo: Image.Image, catalogue: Image.Image
    ) -> tuple[CamResult, CamResult]:
        """Both sides of a match: the photo against the catalogue image, and back."""
        photo_embedding, catalogue_embedding = self.embed_images([photo, catalogue])
        return (
            self.explain(
                photo, similarity_target(self.reference(catalogue_embedding)), "similarity"
            ),
            self.explain(
                catalogue, similarity_target(self.reference(photo_embedding)), "similarity"
            ),
        )

    def explain(self, image: Image.Image, target: Target, name: str) -> CamResult:
        """The heatmap of `target` (a score of the trained embedding) for `image`."""
        torch = self._torch
        maps = self._maps(preprocess([image]))
        leaves = [m.clone().requires_grad_(True) for m in maps]
        with torch.enable_grad():
            score = target(self.embedding(leaves, fixed_scale=True)).sum()
            gradients = torch.autograd.grad(score, leaves)
        density = torch.zeros(1, 1, INPUT_SIDE, INPUT_SIDE)
        for feature_map, gradient in zip(maps, gradients, strict=True):
            if self.method == "gradcam":
                gradient = gradient.mean(dim=(2, 3), keepdim=True)
            cells = (gradient * feature_map).sum(dim=1, keepdim=True)
            spread = torch.nn.functional.interpolate(
                cells, size=(INPUT_SIDE, INPUT_SIDE), mode="bilinear", align_corners=False
            )
            density += spread * (cells.shape[-2] * cells.shape[-1]) / INPUT_SIDE**2
        return CamResult(
            upsample_heatmap(torch.relu(density), image.size), float(score.detach()), name
        )

    def scores(self, batch: np.ndarray, target: Target, batch_size: int = 4) -> np.ndarray:
        """`target` for preprocessed inputs (the deletion test's masked variants)."""
        out = []
        with self._torch.no_grad():
            for start in range(0, len(batch), batch_size):
                out.append(target(self.embedding(self._maps(batch[start : start + batch_size]))))
        return np.concatenate([o.numpy() for o in out]).astype(np.float64)

    def _maps(self, pixels: np.ndarray) -> list[torch.Tensor]:
        return [self._torch.from_numpy(m) for m in self.stages.stage_maps(pixels)]


def _unit(values: torch.Tensor, fixed_scale: bool) -> torch.Tensor:
    """L2-normalised rows; with `fixed_scale` the norm is a constant for gradients."""
    norm = values.norm(dim=1, keepdim=True).clamp(min=1e-12)
    return values / (norm.detach() if fixed_scale else norm)
