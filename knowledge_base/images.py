"""Safe image decoding: every photo, from a catalogue or a customer, passes through here."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"})


class ImageRejected(ValueError):
    """The bytes are not an image we can safely use; the message says why and what to do."""


def load_image(source: Path | bytes, max_pixels: int, max_side: int = 1024) -> Image.Image:
    """Decode `source` into an RGB image no larger than `max_side`, refusing unsafe input.

    The pixel count is checked from the header before any pixel is decoded, so a decompression
    bomb costs nothing. EXIF orientation is applied and all metadata (EXIF, GPS) is dropped,
    because the returned image is a fresh RGB copy.
    """
    name = source.name if isinstance(source, Path) else "upload"
    stream = source.open("rb") if isinstance(source, Path) else io.BytesIO(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                image = Image.open(stream)
            except UnidentifiedImageError as exc:
                raise ImageRejected(
                    f"{name}: not a recognised image format (JPEG, PNG, GIF, WebP, BMP, TIFF)"
                ) from exc
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
                raise ImageRejected(f"{name}: image is implausibly large ({exc})") from exc
            width, height = image.size
            if width * height > max_pixels:
                raise ImageRejected(
                    f"{name}: {width}x{height} = {width * height / 1e6:.1f} MP exceeds the "
                    f"{max_pixels / 1e6:.0f} MP limit (SHOPSIGHT_MAX_IMAGE_PIXELS); resize it first"
                )
            if width < 8 or height < 8:
                raise ImageRejected(f"{name}: {width}x{height} is too small to recognise anything")
            if image.format == "JPEG":
                image.draft("RGB", (max_side, max_side))
            image.seek(0)  # first frame of an animation
            image.load()
            return _to_rgb(ImageOps.exif_transpose(image), max_side)
    except ImageRejected:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageRejected(f"{name}: the image data is corrupt or truncated ({exc})") from exc
    finally:
        stream.close()


def _to_rgb(image: Image.Image, max_side: int) -> Image.Image:
    """Flatten transparency onto white, convert any mode (CMYK, L, P, I;16) to RGB, downscale."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        rgb = canvas
    elif image.mode == "I;16" or image.mode == "I":
        rgb = image.point(lambda value: value / 256).convert("RGB")
    else:
        rgb = image.convert("RGB")
    if max(rgb.size) > max_side:
        rgb.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    return rgb.copy() if rgb is image else rgb
