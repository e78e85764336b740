"""Pooled features of several EfficientNet-Lite0 stages: the input of the trained photo matcher.

The last feature map (1280×7×7) knows *what* a thing is; the middle stages (80, 112, 192 and
320 channels) still know its colours, prints and textures, which is what tells two look-alike
products apart. Each stage is GeM-pooled and L2-normalised on its own, so no stage dominates by
scale, and the five are concatenated (1,984 values). One ONNX graph with five outputs computes
them in a single pass, as fast as the last map alone.
"""

from __future__ import annotations

import io
import threading
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from retrieval.encoders.image import INPUT_SIDE, lite0_session, preprocess
from retrieval.encoders.text import l2_normalise

STAGE_BLOCKS = (7, 10, 14, 15)
"""Indices of the Lite0 blocks whose outputs are pooled (80, 112, 192, 320 channels)."""
STAGE_CHANNELS = (80, 112, 192, 320, 1280)
STAGE_DIM = sum(STAGE_CHANNELS)
GEM_P = 3.0
_BATCH = 8


def _onnx_stages(model: Any, torch: Any) -> bytes:
    """The chosen block outputs and the head's map, as one ONNX graph with free batch and size."""

    class Stages(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.network = model

        def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, ...]:
            net = self.network
            x = net._swish(net._bn0(net._conv_stem(pixels)))
            outputs = []
            for index, block in enumerate(net._blocks):
                x = block(x)
                if index in STAGE_BLOCKS:
                    outputs.append(x)
            outputs.append(net._swish(net._bn1(net._conv_head(x))))
            return tuple(outputs)

    buffer = io.BytesIO()
    names = [f"stage{i}" for i in range(len(STAGE_CHANNELS))]
    free = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Stages().eval(),
            (torch.zeros(1, 3, INPUT_SIDE, INPUT_SIDE),),
            buffer,
            input_names=["pixels"],
            output_names=names,
            dynamic_axes={"pixels": free, **{name: free for name in names}},
            opset_version=17,
            dynamo=False,
        )
    return buffer.getvalue()


def pool_stages(maps: Sequence[np.ndarray], p: float = GEM_P) -> np.ndarray:
    """GeM-pool each N×C×h×w map, L2-normalise it, and concatenate: N×`STAGE_DIM`."""
    pooled = []
    for feature_map in maps:
        clamped = np.maximum(feature_map, 1e-6).astype(np.float32)
        pooled.append(l2_normalise(np.power(np.power(clamped, p).mean(axis=(2, 3)), 1.0 / p)))
    return np.concatenate(pooled, axis=1).astype(np.float32)


class StageEncoder:
    """Loads EfficientNet-Lite0 once; `stage_features` gives N×1,984 pooled stage features."""

    name = "efficientnet-lite0-stages"
    dim = STAGE_DIM

    def __init__(self, threads: int | None = None) -> None:
        self._session = lite0_session(_onnx_stages, threads)
        self._lock = threading.Lock()

    def stage_maps(self, pixels: np.ndarray) -> list[np.ndarray]:
        """The five N×C×h×w maps of preprocessed pixels (Grad-CAM differentiates from here)."""
        with self._lock:
            maps = self._session.run(None, {"pixels": np.ascontiguousarray(pixels, np.float32)})
        return [np.asarray(feature_map) for feature_map in maps]

    def stage_features(self, images: Sequence[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        rows = [
            pool_stages(self.stage_maps(preprocess(images[start : start + _BATCH])))
            for start in range(0, len(images), _BATCH)
        ]
        return np.concatenate(rows)

    embed_images = stage_features
