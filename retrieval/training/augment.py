"""Training views of a catalogue image that look like customer photos, broader than the
evaluation protocol (`retrieval.simulate`) so the matcher learns invariances, not one recipe.

Each view draws, from its own seeded generator: a random resized crop (area 0.35-1.0), a
horizontal flip, a rotation of up to ±25° and a mild perspective warp, a paste at 55-95 % of the
frame on a plain, gradient or cluttered background (noise blobs or a piece of another catalogue
image), light and colour cast (brightness, contrast, saturation, a small per-channel gain),
sometimes a partial occlusion, blur and JPEG at quality 35-90. The generator is seeded with
SHA-256 of the training seed, the view number and the pixels, so training is reproducible and
never shares draws with the evaluation's seed.
"""

from __future__ import annotations

import hashlib
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

DEFAULT_TRAINING_SEED = 7


@dataclass(frozen=True)
class TrainingAugmenter:
    """`views(image, n)` → `n` customer-photo-like views; the same input always gives the same."""

    seed: int = DEFAULT_TRAINING_SEED
    crop_area: tuple[float, float] = (0.35, 1.0)
    max_rotation: float = 25.0
    paste_scale: tuple[float, float] = (0.55, 0.95)
    jpeg_quality: tuple[int, int] = (35, 90)

    def views(
        self, image: Image.Image, count: int, clutter: Sequence[Image.Image] = ()
    ) -> list[Image.Image]:
        return [self.view(image, index, clutter) for index in range(count)]

    def view(
        self, image: Image.Image, index: int, clutter: Sequence[Image.Image] = ()
    ) -> Image.Image:
        """View number `index` of `image`: its own generator, whatever else is drawn."""
        source = image.convert("RGB")
        digest = hashlib.sha256(f"{self.seed}:{source.size}".encode())
        digest.update(source.tobytes())
        base = int.from_bytes(digest.digest()[:8], "little")
        return self._view(source, np.random.default_rng([base, index]), clutter)

    @property
    def cache_name(self) -> str:
        """Feature-cache view prefix: another seed or setting never reuses stale features."""
        digest = hashlib.sha256(repr(self).encode("utf-8")).hexdigest()[:8]
        return f"train-seed{self.seed}-{digest}"

    def _view(
        self, source: Image.Image, rng: np.random.Generator, clutter: Sequence[Image.Image]
    ) -> Image.Image:
        width, height = source.size
        crop = _crop(source, rng, self.crop_area)
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        tilted = _perspective(crop.convert("RGBA"), rng)
        angle = float(rng.uniform(-self.max_rotation, self.max_rotation))
        tilted = tilted.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True)
        share = float(rng.uniform(*self.paste_scale))
        fit = min(share * width / tilted.width, share * height / tilted.height)
        size = (max(1, round(tilted.width * fit)), max(1, round(tilted.height * fit)))
        tilted = tilted.resize(size, Image.Resampling.BILINEAR)
        canvas = _background(rng, (width, height), clutter)
        left = int(rng.integers(0, width - size[0] + 1))
        top = int(rng.integers(0, height - size[1] + 1))
        canvas.paste(tilted, (left, top), mask=tilted.getchannel("A"))
        canvas = _light(canvas, rng)
        if rng.random() < 0.3:
            canvas = _occlude(canvas, rng)
        canvas = canvas.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.0, 1.4))))
        buffer = io.BytesIO()
        canvas.save(buffer, format="JPEG", quality=int(rng.integers(*self.jpeg_quality)))
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            return decoded.convert("RGB")


def _crop(image: Image.Image, rng: np.random.Generator, area: tuple[float, float]) -> Image.Image:
    width, height = image.size
    fraction = float(rng.uniform(*area))
    ratio = math.exp(float(rng.uniform(math.log(3 / 4), math.log(4 / 3))))
    crop_w = min(width, max(1, round(width * math.sqrt(fraction * ratio))))
    crop_h = min(height, max(1, round(height * math.sqrt(fraction / ratio))))
    left = int(rng.integers(0, width - crop_w + 1))
    top = int(rng.integers(0, height - crop_h + 1))
    return image.crop((left, top, left + crop_w, top + crop_h))


def _perspective(
    image: Image.Image, rng: np.random.Generator, strength: float = 0.12
) -> Image.Image:
    """A mild keystone: each corner moves inwards by up to `strength` of the side."""
    width, height = image.size
    dx, dy = strength * width, strength * height
    corners = [
        (rng.uniform(0, dx), rng.uniform(0, dy)),
        (width - rng.uniform(0, dx), rng.uniform(0, dy)),
        (width - rng.uniform(0, dx), height - rng.uniform(0, dy)),
        (rng.uniform(0, dx), height - rng.uniform(0, dy)),
    ]
    target = [(0, 0), (width, 0), (width, height), (0, height)]
    coefficients = _perspective_coefficients(target, corners)
    return image.transform(
        image.size, Image.Transform.PERSPECTIVE, coefficients, Image.Resampling.BILINEAR
    )


def _perspective_coefficients(
    target: Sequence[tuple[float, float]], source: Sequence[tuple[float, float]]
) -> tuple[float, ...]:
    """Pillow's 8 coefficients mapping output corners `target` to input corners `source`."""
    rows = []
    for (x, y), (u, v) in zip(target, source, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    solution = np.linalg.solve(np.asarray(rows, dtype=np.float64), np.ravel(source))
    return tuple(float(c) for c in solution)


def _background(
    rng: np.random.Generator, size: tuple[int, int], clutter: Sequence[Image.Image]
) -> Image.Image:
    """Plain (light or any colour), a two-colour gradient, noise blobs, or another image."""
    width, height = size
    kind = rng.random()
    if kind < 0.35:
        light = rng.random() < 0.6
        low = 180 if light else 0
        colour = tuple(int(c) for c in rng.integers(low, 256, size=3))
        return Image.new("RGB", size, colour)
    if kind < 0.55:
        start, end = rng.integers(0, 256, size=(2, 3)).astype(np.float32)
        ramp = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
        pixels = np.broadcast_to(start + (end - start) * ramp, (height, width, 3))
        return Image.fromarray(pixels.astype(np.uint8))
    if kind < 0.8 or not clutter:
        coarse = rng.integers(0, 256, size=(int(rng.integers(2, 9)), int(rng.integers(2, 9)), 3))
        blobs = Image.fromarray(coarse.astype(np.uint8)).resize(size, Image.Resampling.BICUBIC)
        return blobs.filter(ImageFilter.GaussianBlur(2))
    other = clutter[int(rng.integers(0, len(clutter)))].convert("RGB")
    return other.resize(size, Image.Resampling.BILINEAR).filter(ImageFilter.GaussianBlur(3))


def _light(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    image = ImageEnhance.Brightness(image).enhance(float(rng.uniform(0.65, 1.35)))
    image = ImageEnhance.Contrast(image).enhance(float(rng.uniform(0.65, 1.35)))
    image = ImageEnhance.Color(image).enhance(float(rng.uniform(0.7, 1.3)))
    gains = rng.uniform(0.9, 1.1, size=3).astype(np.float32)
    pixels = np.asarray(image, dtype=np.float32) * gains
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _occlude(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A hand or a sticker: a grey-ish rectangle over up to a sixth of the frame, at an edge."""
    width, height = image.size
    w, h = int(width * rng.uniform(0.15, 0.4)), int(height * rng.uniform(0.15, 0.4))
    left = int(rng.choice([0, width - w]))
    top = int(rng.integers(0, height - h + 1))
    colour = tuple(int(c) for c in rng.integers(60, 220, size=3))
    out = image.copy()
    out.paste(Image.new("RGB", (w, h), colour), (left, top))
    return out
