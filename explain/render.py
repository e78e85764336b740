"""Heatmaps as pictures: a colour-mapped overlay on the photo, and the customer's photo beside the
catalogue image, as PNG bytes (the API and UI send them as they are)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

DEFAULT_COLOUR_MAP = "jet"
MAX_ALPHA = 0.6
PANEL_HEIGHT = 320
_GAP = 8
_CAPTION = 22


def colourise(heatmap: np.ndarray, colour_map: str = DEFAULT_COLOUR_MAP) -> np.ndarray:
    """H×W values in [0, 1] → H×W×3 uint8 colours of a matplotlib colour map."""
    from matplotlib import colormaps

    values = np.clip(np.asarray(heatmap, dtype=np.float32), 0.0, 1.0)
    rgba = colormaps[colour_map](values)
    return (rgba[..., :3] * 255).astype(np.uint8)


def overlay(
    image: Image.Image,
    heatmap: np.ndarray,
    max_alpha: float = MAX_ALPHA,
    colour_map: str = DEFAULT_COLOUR_MAP,
) -> Image.Image:
    """The photo with the heatmap blended in; the colour's weight follows the heat, so cold
    regions keep the photo as it was and stay readable."""
    photo = image.convert("RGB")
    heat = np.asarray(heatmap, dtype=np.float32)
    if heat.shape != (photo.height, photo.width):
        resized = Image.fromarray(heat).resize(photo.size, Image.Resampling.BILINEAR)
        heat = np.asarray(resized, dtype=np.float32)
    heat = np.clip(heat, 0.0, 1.0)
    weight = (max_alpha * heat)[..., None]
    pixels = np.asarray(photo, dtype=np.float32)
    blended = (1.0 - weight) * pixels + weight * colourise(heat, colour_map)
    return Image.fromarray(np.clip(blended, 0, 255).astype(np.uint8))


def side_by_side(
    photo: Image.Image,
    photo_heatmap: np.ndarray | None,
    catalogue: Image.Image,
    catalogue_heatmap: np.ndarray | None = None,
    captions: tuple[str, str] = ("your photo", "catalogue"),
    height: int = PANEL_HEIGHT,
) -> Image.Image:
    """Customer photo | catalogue image, each with its heatmap when given, at one height."""
    panels = []
    for image, heat in ((photo, photo_heatmap), (catalogue, catalogue_heatmap)):
        shown = overlay(image, heat) if heat is not None else image.convert("RGB")
        width = max(1, round(shown.width * height / shown.height))
        panels.append(shown.resize((width, height), Image.Resampling.BILINEAR))
    canvas = Image.new(
        "RGB", (panels[0].width + _GAP + panels[1].width, height + _CAPTION), "white"
    )
    draw = ImageDraw.Draw(canvas)
    left = 0
    for panel, caption in zip(panels, captions, strict=True):
        canvas.paste(panel, (left, _CAPTION))
        draw.text((left + 4, 4), caption, fill=(40, 40, 40))
        left += panel.width + _GAP
    return canvas


def to_png(image: Image.Image) -> bytes:
    """PNG bytes of `image` (no metadata is written, so nothing from the upload leaks)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
