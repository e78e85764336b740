"""A CLIP-style checkpoint from a local folder: texts and images into one shared space.

No CLIP weights install offline here, but a real deployment may have a checkpoint on disk
(`save_pretrained` output: config.json, weights, tokenizer files, optionally
preprocessor_config.json). Image preprocessing is done with Pillow and numpy, so neither
torchvision nor the transformers image processors are needed.

The tokenizer comes from the same folder; when the folder has none, pass any callable that
behaves like a Hugging Face tokenizer (`tokenizer(texts, padding=True, truncation=True,
max_length=n, return_tensors="pt")` → mapping with `input_ids` and `attention_mask`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from knowledge_base.images import ImageRejected, load_image
from knowledge_base.offline import enforce_offline, require
from retrieval.encoders.text import TextKind, l2_normalise

# OpenAI CLIP's normalisation, used when the folder has no preprocessor_config.json.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_RESAMPLE = {
    0: Image.Resampling.NEAREST,
    1: Image.Resampling.LANCZOS,
    2: Image.Resampling.BILINEAR,
    3: Image.Resampling.BICUBIC,
}
_TEXT_BATCH = 64
_IMAGE_BATCH = 8

Tokenizer = Callable[..., Mapping[str, Any]]


class ClipUnavailable(RuntimeError):
    """The folder does not hold a usable CLIP checkpoint; the message says what is missing."""


@dataclass(frozen=True)
class ClipPreprocessing:
    """Resize the shortest side, centre-crop, scale to [0, 1], normalise per channel."""

    size: int
    crop: int
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    resample: Image.Resampling = Image.Resampling.BICUBIC

    @classmethod
    def from_folder(cls, folder: Path, image_size: int) -> ClipPreprocessing:
        """Read preprocessor_config.json when present; CLIP's defaults otherwise."""
        config_path = folder / "preprocessor_config.json"
        if not config_path.is_file():
            return cls(image_size, image_size)
        config = json.loads(config_path.read_text("utf-8"))
        size = _side(config.get("size"), image_size)
        crop = _side(config.get("crop_size"), size) if config.get("do_center_crop", True) else size
        return cls(
            size=size,
            crop=crop,
            mean=tuple(config.get("image_mean", CLIP_MEAN)),
            std=tuple(config.get("image_std", CLIP_STD)),
            resample=_RESAMPLE.get(int(config.get("resample", 3)), Image.Resampling.BICUBIC),
        )

    def __call__(self, images: Sequence[Image.Image]) -> np.ndarray:
        """RGB images → float32 NCHW batch of crop×crop pixels."""
        batch = np.empty((len(images), 3, self.crop, self.crop), dtype=np.float32)
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        for index, image in enumerate(images):
            rgb = image.convert("RGB")
            scale = self.size / min(rgb.size)
            width = max(self.crop, round(rgb.width * scale))
            height = max(self.crop, round(rgb.height * scale))
            resized = rgb.resize((width, height), self.resample)
            left, top = (width - self.crop) // 2, (height - self.crop) // 2
            cropped = resized.crop((left, top, left + self.crop, top + self.crop))
            pixels = np.asarray(cropped, dtype=np.float32) / 255.0
            batch[index] = ((pixels - mean) / std).transpose(2, 0, 1)
        return batch


def _side(value: Any, default: int) -> int:
    """Hugging Face writes sizes as an int or as {shortest_edge} / {height, width}."""
    if isinstance(value, int):
        return value
    if isinstance(value, Mapping):
        return int(value.get("shortest_edge") or value.get("height") or default)
    return default


class LocalClipEncoder:
    """CLIPModel from a local folder; `embed_texts` and `embed_images` give unit rows."""

    def __init__(
        self, path: Path, tokenizer: Tokenizer | None = None, threads: int | None = None
    ) -> None:
        enforce_offline()
        torch = require("torch", "torch==2.13.0")
        transformers = require("transformers", "transformers")
        path = Path(path)
        if not (path / "config.json").is_file():
            raise ClipUnavailable(
                f"{path}: no config.json; SHOPSIGHT_CLIP_PATH must name a folder written by "
                "CLIPModel.save_pretrained"
            )
        if threads:
            torch.set_num_threads(threads)
        try:
            self.model: Any = transformers.CLIPModel.from_pretrained(
                str(path), local_files_only=True
            )
        except (OSError, ValueError) as exc:
            raise ClipUnavailable(f"{path}: cannot load a CLIP model ({exc})") from exc
        self.model.eval()
        self.tokenizer = tokenizer or _folder_tokenizer(transformers, path)
        config = self.model.config
        self.max_length = int(config.text_config.max_position_embeddings)
        self.preprocess = ClipPreprocessing.from_folder(path, int(config.vision_config.image_size))
        self.dim = int(config.projection_dim)
        self.name = f"clip:{path.name}"
        self._torch = torch
        self._lock = threading.Lock()

    def embed_texts(self, texts: Sequence[str], kind: TextKind = "passage") -> np.ndarray:
        """Text rows; CLIP treats queries and passages alike, so `kind` is accepted and unused."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        rows = []
        with self._lock, self._torch.inference_mode():
            for start in range(0, len(texts), _TEXT_BATCH):
                encoded = self.tokenizer(
                    list(texts[start : start + _TEXT_BATCH]),
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                output = self.model.get_text_features(
                    input_ids=encoded["input_ids"], attention_mask=encoded.get("attention_mask")
                )
                rows.append(_pooled(output).float().numpy())
        return l2_normalise(np.concatenate(rows))

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        rows = []
        with self._lock, self._torch.inference_mode():
            for start in range(0, len(images), _IMAGE_BATCH):
                pixels = self._torch.from_numpy(
                    self.preprocess(images[start : start + _IMAGE_BATCH])
                )
                rows.append(_pooled(self.model.get_image_features(pixel_values=pixels)).numpy())
        return l2_normalise(np.concatenate(rows))


def _folder_tokenizer(transformers: Any, path: Path) -> Tokenizer:
    """The folder's own tokenizer, whose files are checked first.

    Without them transformers 5 quietly builds an empty vocabulary that maps every word to the
    unknown token: every text would get the same vector.
    """
    has_files = (path / "tokenizer.json").is_file() or (
        (path / "vocab.json").is_file() and (path / "merges.txt").is_file()
    )
    if not has_files:
        raise ClipUnavailable(
            f"{path}: no tokenizer files (tokenizer.json, or vocab.json + merges.txt); add them "
            "to the folder or pass tokenizer= to LocalClipEncoder"
        )
    try:
        tokenizer: Tokenizer = transformers.AutoTokenizer.from_pretrained(
            str(path), local_files_only=True
        )
    except (OSError, ValueError) as exc:
        raise ClipUnavailable(f"{path}: cannot load its tokenizer ({exc})") from exc
    return tokenizer


def _pooled(output: Any) -> Any:
    """transformers 5 returns a model output whose pooler_output is projected; 4.x a tensor."""
    return getattr(output, "pooler_output", output)


class ClipSpace:
    """Cross-modal space of a local CLIP: images are re-encoded from their stored paths."""

    def __init__(self, encoder: LocalClipEncoder, max_pixels: int, max_side: int) -> None:
        self.encoder = encoder
        self.name = encoder.name
        self.max_pixels = max_pixels
        self.max_side = max_side

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.encoder.embed_texts(texts, kind="query")

    def project_images(self, images: Sequence[Any]) -> np.ndarray:
        """CLIP vectors of the images; an unreadable file gets a zero row and never matches."""
        out = np.zeros((len(images), self.encoder.dim), dtype=np.float32)
        decoded: list[tuple[int, Image.Image]] = []
        for row, image in enumerate(images):
            try:
                decoded.append((row, load_image(Path(image.path), self.max_pixels, self.max_side)))
            except (ImageRejected, OSError):
                continue
        if decoded:
            vectors = self.encoder.embed_images([image for _, image in decoded])
            out[[row for row, _ in decoded]] = vectors
        return out
