"""Simulated customer photos: the documented, seeded protocol behind the photo-search evaluation.

A real customer photographs the product they received: off-centre, tilted, under other light,
a little blurred, on their own table, then the phone recompresses the picture. The protocol
below (version `PROTOCOL_VERSION`) applies those changes to a catalogue image, in this order:

1. random resized crop: area fraction uniform in [0.60, 0.90] of the image, aspect ratio
   log-uniform in [3/4, 4/3] times the image's own, position uniform over the valid range;
2. rotation by an angle uniform in [-15°, +15°] (the canvas grows; corners stay transparent);
3. paste, scaled so the rotated crop fits 80 % of the original width and height (aspect kept),
   at a uniform position, on a light background of the original size whose colour is uniform
   in [215, 255] per RGB channel;
4. brightness and contrast of the whole picture, each scaled by a factor uniform in [0.8, 1.2];
5. Gaussian blur, radius uniform in [0.3, 1.0] px;
6. JPEG encoding at quality 60 and decoding back to RGB.

Every random draw comes from a NumPy generator seeded with SHA-256 of the protocol seed and the
decoded pixels of the source image, so one image always yields the same customer photo, whatever
its file name, its position in the catalogue or the other images alongside it. Pillow and NumPy
only (no torchvision), so the protocol runs wherever ShopSight does.
"""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

PROTOCOL_VERSION = "v1"
DEFAULT_SEED = 20240617


@dataclass(frozen=True)
class SimulationProtocol:
    """The parameters of the customer-photo protocol; the defaults are the documented ones."""

    seed: int = DEFAULT_SEED
    crop_area: tuple[float, float] = (0.60, 0.90)
    crop_aspect: tuple[float, float] = (3 / 4, 4 / 3)
    max_rotation: float = 15.0
    paste_scale: float = 0.80
    background: tuple[int, int] = (215, 255)
    brightness: tuple[float, float] = (0.8, 1.2)
    contrast: tuple[float, float] = (0.8, 1.2)
    blur_radius: tuple[float, float] = (0.3, 1.0)
    jpeg_quality: int = 60

    @property
    def view_name(self) -> str:
        """Feature-cache view name: a changed parameter or seed never reuses stale features."""
        digest = hashlib.sha256(repr(asdict(self)).encode("utf-8")).hexdigest()[:8]
        return f"customer-{PROTOCOL_VERSION}-seed{self.seed}-{digest}"

    def describe(self) -> dict[str, object]:
        """The protocol as plain data, for evaluation reports."""
        return {"version": PROTOCOL_VERSION, **asdict(self)}

    def __call__(self, image: Image.Image) -> Image.Image:
        return simulate_customer_photo(image, self)


def image_rng(image: Image.Image, seed: int) -> np.random.Generator:
    """A generator that depends only on the seed and the pixels, never on names or order."""
    digest = hashlib.sha256()
    digest.update(f"{seed}:{image.mode}:{image.size}".encode())
    digest.update(image.tobytes())
    return np.random.default_rng(int.from_bytes(digest.digest()[:8], "little"))


def simulate_customer_photo(
    image: Image.Image, protocol: SimulationProtocol | None = None
) -> Image.Image:
    """One simulated customer photo of `image` (RGB in, RGB out, same size as the input)."""
    p = protocol or SimulationProtocol()
    source = image.convert("RGB")
    rng = image_rng(source, p.seed)
    width, height = source.size

    crop = _random_resized_crop(source, rng, p.crop_area, p.crop_aspect)
    angle = float(rng.uniform(-p.max_rotation, p.max_rotation))
    tilted = crop.convert("RGBA").rotate(angle, resample=Image.Resampling.BILINEAR, expand=True)

    fit = min(p.paste_scale * width / tilted.width, p.paste_scale * height / tilted.height)
    size = (max(1, round(tilted.width * fit)), max(1, round(tilted.height * fit)))
    tilted = tilted.resize(size, Image.Resampling.BILINEAR)
    colour = tuple(int(c) for c in rng.integers(p.background[0], p.background[1] + 1, size=3))
    canvas = Image.new("RGB", (width, height), colour)
    left = int(rng.integers(0, width - size[0] + 1))
    top = int(rng.integers(0, height - size[1] + 1))
    canvas.paste(tilted, (left, top), mask=tilted.getchannel("A"))

    canvas = ImageEnhance.Brightness(canvas).enhance(float(rng.uniform(*p.brightness)))
    canvas = ImageEnhance.Contrast(canvas).enhance(float(rng.uniform(*p.contrast)))
    canvas = canvas.filter(ImageFilter.GaussianBlur(float(rng.uniform(*p.blur_radius))))

    buffer = io.BytesIO()
    canvas.save(buffer, format="JPEG", quality=p.jpeg_quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


def _random_resized_crop(
    image: Image.Image,
    rng: np.random.Generator,
    area: tuple[float, float],
    aspect: tuple[float, float],
) -> Image.Image:
    """A crop of a random share of the area; the aspect is clipped so the crop always fits."""
    width, height = image.size
    fraction = float(rng.uniform(*area))
    ratio = math.exp(float(rng.uniform(math.log(aspect[0]), math.log(aspect[1]))))
    crop_w = min(width, max(1, round(width * math.sqrt(fraction * ratio))))
    crop_h = min(height, max(1, round(height * math.sqrt(fraction / ratio))))
    left = int(rng.integers(0, width - crop_w + 1))
    top = int(rng.integers(0, height - crop_h + 1))
    return image.crop((left, top, left + crop_w, top + crop_h))
