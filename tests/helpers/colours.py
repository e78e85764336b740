"""A colour-only photo world: products that are solid colours and an encoder that sees colour."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from retrieval.encoders.text import l2_normalise

COLOURS = {"red-scarf": (220, 20, 20), "green-hat": (20, 200, 40), "blue-coat": (30, 40, 210)}


class MeanColourEncoder:
    """Image test double: the mean RGB colour as a unit vector, so colours find each other."""

    name = "mean-colour"
    dim = 3

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        rows = [
            np.asarray(image.convert("RGB"), dtype=np.float32).mean(axis=(0, 1)) for image in images
        ]
        return l2_normalise(np.stack(rows))


def solid(colour: tuple[int, int, int]) -> Image.Image:
    """A 32×32 photo of one colour."""
    return Image.new("RGB", (32, 32), colour)
