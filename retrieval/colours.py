"""Dominant colour names of a product photo, ignoring a plain background.

Shoppers search by colour words ("the blue dress"), so colours are named, not given as RGB. A
photo's border tells the background: when most border pixels share one colour, pixels near that
colour are dropped; otherwise the centre of the photo, where the product usually is, is used.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from pydantic import BaseModel

_SIDE = 96
_BORDER = 0.06
# Background: most of the border within this RGB distance of the border's median colour.
_PLAIN_SHARE = 0.6
_PLAIN_DISTANCE = 40.0
_BACKGROUND_DISTANCE = 45.0
_MIN_FOREGROUND = 0.05
_CENTRE = 0.6


class ColourShare(BaseModel):
    """A colour name and the share of the product's pixels that carry it."""

    name: str
    share: float


def dominant_colours(
    image: Image.Image, max_colours: int = 3, min_share: float = 0.15
) -> list[ColourShare]:
    """The product's colour names with at least `min_share` of its pixels, largest first."""
    pixels = _product_pixels(_small_rgb(image))
    if len(pixels) == 0:
        return []
    names = colour_names(pixels)
    values, counts = np.unique(names, return_counts=True)
    shares = counts / counts.sum()
    order = np.argsort(-shares, kind="stable")
    return [
        ColourShare(name=str(values[i]), share=round(float(shares[i]), 4))
        for i in order[:max_colours]
        if shares[i] >= min_share
    ]


def _small_rgb(image: Image.Image) -> np.ndarray:
    small = image.convert("RGB")
    small.thumbnail((_SIDE, _SIDE), Image.Resampling.BILINEAR)
    return np.asarray(small, dtype=np.float32)


def _product_pixels(rgb: np.ndarray) -> np.ndarray:
    """Pixels (n×3) of the product: the background removed when it is plain, else the centre."""
    height, width, _ = rgb.shape
    band_h, band_w = max(1, round(height * _BORDER)), max(1, round(width * _BORDER))
    mask = np.zeros((height, width), dtype=bool)
    mask[:band_h], mask[-band_h:], mask[:, :band_w], mask[:, -band_w:] = True, True, True, True
    border = rgb[mask]
    background = np.median(border, axis=0)
    plain = np.mean(np.linalg.norm(border - background, axis=1) < _PLAIN_DISTANCE) >= _PLAIN_SHARE
    if plain:
        foreground = np.linalg.norm(rgb - background, axis=2) >= _BACKGROUND_DISTANCE
        if foreground.mean() >= _MIN_FOREGROUND:
            return rgb[foreground]
    top, left = round(height * (1 - _CENTRE) / 2), round(width * (1 - _CENTRE) / 2)
    return rgb[top : height - top, left : width - left].reshape(-1, 3)


def colour_names(pixels: np.ndarray) -> np.ndarray:
    """Name each RGB pixel (n×3, 0-255) with one of a shopper's basic colour words."""
    rgb = pixels.astype(np.float32) / 255.0
    high, low = rgb.max(axis=1), rgb.min(axis=1)
    value = high
    saturation = np.where(high > 0, (high - low) / np.maximum(high, 1e-6), 0.0)
    hue = _hue_degrees(rgb, high, low)
    names = np.full(len(rgb), "grey", dtype=object)
    chromatic = saturation >= 0.2
    hue_names = np.select(
        [
            (hue < 15) | (hue >= 345),
            hue < 40,
            hue < 70,
            hue < 165,
            hue < 195,
            hue < 255,
            hue < 290,
        ],
        ["red", "orange", "yellow", "green", "teal", "blue", "purple"],
        default="pink",
    )
    names[chromatic] = hue_names[chromatic]
    warm = (hue >= 10) & (hue < 45)
    names[chromatic & warm & (value < 0.6)] = "brown"
    names[(saturation >= 0.12) & (saturation < 0.4) & warm & (value >= 0.7)] = "beige"
    names[chromatic & ((hue < 15) | (hue >= 330)) & (saturation < 0.5) & (value >= 0.75)] = "pink"
    names[chromatic & (hue >= 195) & (hue < 255) & (value < 0.45)] = "navy"
    names[~chromatic & (value >= 0.85)] = "white"
    names[value < 0.2] = "black"
    return names


def _hue_degrees(rgb: np.ndarray, high: np.ndarray, low: np.ndarray) -> np.ndarray:
    red, green, blue = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    spread = np.maximum(high - low, 1e-6)
    hue = np.where(
        high == red,
        ((green - blue) / spread) % 6,
        np.where(high == green, (blue - red) / spread + 2, (red - green) / spread + 4),
    )
    return hue * 60.0
