"""Image→text alignment head at inference: maps frozen image features into the text space.

No CLIP weights are installable offline, so text→image search needs a bridge trained on the
shop's own (image, title) pairs (`retrieval.training.align`): a small head from 1280-d GeM
features to the 384-d text space. Inference runs in numpy, so searching with a trained head
never imports torch. Heads are saved as `align-vN/` (`retrieval.artifacts`); the newest loads.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from retrieval import artifacts
from retrieval.encoders.text import l2_normalise

ARTEFACT = "align"
_WEIGHTS = "weights.npz"
_GELU_C = math.sqrt(2.0 / math.pi)


class AlignmentMismatch(RuntimeError):
    """A head was trained for another text embedder or image encoder: its space would not match."""


@dataclass
class AlignmentHead:
    """Numpy weights of the trained head plus the meta data that says what space it maps into."""

    weights: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def text_embedder(self) -> str:
        return str(self.meta.get("text_embedder", ""))

    @property
    def image_encoder(self) -> str:
        return str(self.meta.get("image_encoder", ""))

    @property
    def dim(self) -> int:
        return int(self.weights["w_out"].shape[0])

    @property
    def fingerprint(self) -> str:
        """Content hash of the weights: caches of projected vectors are keyed by it."""
        digest = hashlib.sha256()
        for name in sorted(self.weights):
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(self.weights[name]).tobytes())
        return digest.hexdigest()[:16]

    def image_to_text_space(self, image_features: np.ndarray) -> np.ndarray:
        """(n, 1280) image features → (n, text dim) L2-normalised rows in the text space."""
        x = np.asarray(image_features, dtype=np.float32).reshape(-1, self.weights["mean"].shape[0])
        x = x - self.weights["mean"]
        if "w_hidden" in self.weights:
            x = _gelu(x @ self.weights["w_hidden"].T + self.weights["b_hidden"])
        return l2_normalise(x @ self.weights["w_out"].T + self.weights["b_out"])

    def save(self, folder: Path) -> Path:
        """Write `weights.npz` + `meta.json` into `folder` (e.g. `artifact_dir(...)`); the folder
        is swapped in whole, never half-written."""
        # numpy's stub types **kwds as its own keyword options, not as array names.
        savez: Callable[..., None] = np.savez
        meta = {**self.meta, "fingerprint": self.fingerprint}
        artifacts.write(
            folder, ARTEFACT, lambda staging: savez(staging / _WEIGHTS, **self.weights), meta
        )
        self.meta = meta
        return folder

    @classmethod
    def load(cls, folder: Path) -> AlignmentHead:
        with np.load(folder / _WEIGHTS) as archive:
            weights = {name: archive[name].astype(np.float32) for name in archive.files}
        return cls(weights, artifacts.read_meta(folder))


def _gelu(x: np.ndarray) -> np.ndarray:
    """The tanh approximation, identical to the torch layer used in training."""
    return (0.5 * x * (1.0 + np.tanh(_GELU_C * (x + 0.044715 * x**3)))).astype(np.float32)


def artifact_dir(artifacts_dir: Path) -> Path:
    """Where a newly trained head goes: the next `align-vN/` under `artifacts_dir`."""
    return artifacts.next_folder(artifacts_dir, ARTEFACT)


def latest_head_dir(artifacts_dir: Path) -> Path | None:
    """The newest complete `align-vN/` under `artifacts_dir`, or None when none was trained."""
    folder = artifacts.latest(artifacts_dir, ARTEFACT)
    return folder if folder is not None and (folder / _WEIGHTS).is_file() else None


def load_alignment_head(
    artifacts_dir: Path, text_embedder: str | None = None, image_encoder: str | None = None
) -> AlignmentHead | None:
    """The newest saved head under `artifacts_dir` (`align-vN/`), or None when none was trained.

    Raises `AlignmentMismatch` when the head maps into another embedder's space.
    """
    folder = latest_head_dir(artifacts_dir)
    if folder is None:
        return None
    head = AlignmentHead.load(folder)
    check_compatible(head, text_embedder, image_encoder)
    return head


def check_compatible(
    head: AlignmentHead, text_embedder: str | None, image_encoder: str | None = None
) -> None:
    if text_embedder and head.text_embedder != text_embedder:
        raise AlignmentMismatch(
            f"the alignment head was trained for text embedder {head.text_embedder!r}, not "
            f"{text_embedder!r}: run `shopsight train align --data CATALOGUE` again"
        )
    if image_encoder and head.image_encoder != image_encoder:
        raise AlignmentMismatch(
            f"the alignment head was trained on {head.image_encoder!r} features, not "
            f"{image_encoder!r}: run `shopsight train align --data CATALOGUE` again"
        )
