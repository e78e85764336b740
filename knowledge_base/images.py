"""Safe image decoding: every photo, from a catalogue or a customer, passes through here."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"})
MIN_SIDE = 8


class ImageRejected(ValueError):
    """The bytes are not an image we can safely use; the message says why and what to do."""


def load_image(source: Path | bytes, max_pixels: int, max_side: int = 1024) -> Image.Image:
    """Decode `source` into an RGB image no larger than `max_side`, refusing unsafe input.

    The pixel count is checked from the header before any pixel is decoded, so a decompression
    bomb costs nothing. EXIF orientation is applied and all metadata (EXIF, GPS) is dropped,
    because the returned image is a fresh RGB copy. Anything that goes wrong, from a missing file
    to a decoder crash, is an `ImageRejected` whose message names the file and the reason.
    """
    name = source.name if isinstance(source, Path) else "upload"
    try:
        stream = source.open("rb") if isinstance(source, Path) else io.BytesIO(source)
    except OSError as exc:
        raise ImageRejected(f"{name}: cannot read the file ({exc.strerror or exc})") from exc
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
                raise ImageRejected(
                    f"{name}: image is implausibly large, refused as a possible decompression "
                    f"bomb ({exc})"
                ) from exc
            width, height = image.size
            if width * height > max_pixels:
                raise ImageRejected(
                    f"{name}: {width}x{height} = {width * height / 1e6:.1f} MP exceeds the "
                    f"{max_pixels / 1e6:.0f} MP limit (SHOPSIGHT_MAX_IMAGE_PIXELS); resize it first"
                )
            if width < MIN_SIDE or height < MIN_SIDE:
                raise ImageRejected(f"{name}: {width}x{height} is too small to recognise anything")
            if image.format == "JPEG":
                image.draft("RGB", (max_side, max_side))
            image.seek(0)  # first frame of an animation
            image.load()
            return _to_rgb(ImageOps.exif_transpose(image), max_side)
    except ImageRejected:
        raise
    except MemoryError as exc:
        raise ImageRejected(f"{name}: not enough memory to decode this image") from exc
    except Exception as exc:  # decoders raise OSError, SyntaxError, EOFError, struct.error, ...
        raise ImageRejected(f"{name}: the image data is corrupt or truncated ({exc})") from exc
    finally:
        stream.close()


def _to_rgb(image: Image.Image, max_side: int) -> Image.Image:
    """Flatten transparency onto white, convert any mode (CMYK, L, P, I;16, F) to RGB, downscale."""
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    ):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        rgb = canvas
    elif image.mode.startswith("I") or image.mode == "F":
        grey = _to_uint8(np.asarray(image), sixteen_bit=image.mode.startswith("I;16"))
        rgb = Image.fromarray(grey).convert("RGB")
    else:
        rgb = image.convert("RGB")
    if max(rgb.size) > max_side:
        rgb.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    # A fresh image: `convert` and `copy` would carry EXIF (GPS, camera), ICC and XMP along.
    return Image.frombytes("RGB", rgb.size, rgb.tobytes())


def _to_uint8(pixels: np.ndarray, sixteen_bit: bool) -> np.ndarray:
    """16-bit, 32-bit integer and float grey levels scaled into 0..255."""
    values = pixels.astype(np.float64)
    if values.ndim == 3:  # a decoder that gives a trailing channel axis
        values = values[..., 0]
    if np.issubdtype(pixels.dtype, np.floating):
        peak = float(np.nanmax(values)) if values.size else 1.0
        values = values * 255.0 if peak <= 1.0 else values
    elif sixteen_bit or float(values.max(initial=0)) > 255:
        values = values / 257.0  # 16-bit range (PNG, TIFF)
    return np.clip(np.nan_to_num(values), 0, 255).astype(np.uint8)
