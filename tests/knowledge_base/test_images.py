"""Safe image decoding: odd images are converted, bad or dangerous ones rejected with a reason."""

from __future__ import annotations

import io
import struct
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from knowledge_base.images import ImageRejected, load_image
from tests.conftest import make_image

pytestmark = pytest.mark.unit

MAX_PIXELS = 40_000_000
RED = (220, 20, 20)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def handmade_png(width: int, height: int, depth: int, colour_type: int, rows: bytes) -> bytes:
    """A PNG written byte by byte, for shapes Pillow will not write (bombs, 16-bit RGB)."""
    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(rows))
        + _png_chunk(b"IEND", b"")
    )


def sixteen_bit_rgb_png(width: int, height: int, rgb16: tuple[int, int, int]) -> bytes:
    row = b"\x00" + struct.pack(">HHH", *rgb16) * width
    return handmade_png(width, height, 16, 2, row * height)


def bomb_png(side: int = 100_000) -> bytes:
    """Claims side×side pixels (10 gigapixels) in a few hundred bytes."""
    return handmade_png(side, side, 1, 0, b"\x00" * 1000)


def saved(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def centre(image: Image.Image) -> tuple[int, ...]:
    pixel = image.getpixel((image.width // 2, image.height // 2))
    assert isinstance(pixel, tuple)
    return pixel


def close(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 12) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


# --- images that must decode -----------------------------------------------------------------


def test_plain_jpeg_decodes_to_rgb_of_the_same_size(tmp_path: Path) -> None:
    path = make_image(tmp_path / "a.jpg", RED, size=(64, 48))
    image = load_image(path, MAX_PIXELS)
    assert image.mode == "RGB" and image.size == (64, 48)
    assert close(centre(image), RED)


def test_large_image_is_downscaled_to_max_side_keeping_aspect(tmp_path: Path) -> None:
    path = make_image(tmp_path / "wide.png", RED, size=(2000, 1000))
    image = load_image(path, MAX_PIXELS, max_side=512)
    assert image.size == (512, 256)


def test_large_jpeg_is_decoded_at_reduced_size(tmp_path: Path) -> None:
    path = make_image(tmp_path / "big.jpg", RED, size=(4000, 3000))
    image = load_image(path, MAX_PIXELS, max_side=500)
    assert max(image.size) == 500 and image.mode == "RGB"


def test_cmyk_jpeg_becomes_rgb_with_the_right_colour(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (32, 32), (0, 255, 255, 0)).save(path)
    image = load_image(path, MAX_PIXELS)
    assert image.mode == "RGB"
    assert close(centre(image), (255, 0, 0), tolerance=20)


def test_grayscale_jpeg_becomes_rgb_with_equal_channels(tmp_path: Path) -> None:
    path = tmp_path / "grey.jpg"
    Image.new("L", (32, 32), 90).save(path)
    image = load_image(path, MAX_PIXELS)
    red, green, blue = centre(image)
    assert image.mode == "RGB" and red == green == blue and abs(red - 90) <= 3


def test_animated_gif_gives_its_first_frame(tmp_path: Path) -> None:
    path = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (32, 32), colour) for colour in (RED, (20, 20, 220), (20, 220, 20))]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert getattr(Image.open(path), "n_frames", 1) == 3
    image = load_image(path, MAX_PIXELS)
    assert image.mode == "RGB" and close(centre(image), RED, tolerance=30)


def test_png_with_alpha_is_flattened_onto_white(tmp_path: Path) -> None:
    path = tmp_path / "alpha.png"
    rgba = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    rgba.paste(Image.new("RGBA", (16, 32), (*RED, 255)), (0, 0))
    rgba.save(path)
    image = load_image(path, MAX_PIXELS)
    assert image.mode == "RGB"
    assert close(image.getpixel((4, 16)), RED, tolerance=0)  # type: ignore[arg-type]
    assert image.getpixel((28, 16)) == (255, 255, 255)


def test_palette_png_with_transparency_is_flattened_onto_white(tmp_path: Path) -> None:
    path = tmp_path / "palette.png"
    rgba = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    rgba.paste(Image.new("RGBA", (16, 32), (*RED, 255)), (0, 0))
    rgba.convert("P").save(path, transparency=0)
    assert Image.open(path).mode == "P"
    image = load_image(path, MAX_PIXELS)
    assert image.mode == "RGB" and image.getpixel((28, 16)) == (255, 255, 255)


def test_grayscale_with_alpha_is_flattened(tmp_path: Path) -> None:
    path = tmp_path / "la.png"
    Image.new("LA", (32, 32), (0, 0)).save(path)
    image = load_image(path, MAX_PIXELS)
    assert image.mode == "RGB" and centre(image) == (255, 255, 255)


def test_sixteen_bit_grayscale_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    path = tmp_path / "grey16.png"
    values = np.full((32, 32), 32768, dtype=np.uint16)
    values[:, :16] = 65535
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I;16")
    image = load_image(path, MAX_PIXELS)
    assert image.mode == "RGB"
    assert image.getpixel((4, 4)) == (255, 255, 255)
    assert close(image.getpixel((28, 4)), (128, 128, 128), tolerance=1)  # type: ignore[arg-type]


def test_sixteen_bit_rgb_png_keeps_its_colour(tmp_path: Path) -> None:
    path = tmp_path / "rgb16.png"
    path.write_bytes(sixteen_bit_rgb_png(24, 24, (65535, 32768, 0)))
    image = load_image(path, MAX_PIXELS)
    assert image.mode == "RGB" and close(centre(image), (255, 128, 0), tolerance=2)


def test_exif_orientation_is_applied_and_metadata_dropped(tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    upright = Image.new("RGB", (40, 20), RED)
    upright.paste(Image.new("RGB", (10, 20), (20, 20, 220)), (0, 0))  # blue on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: viewers rotate it 90° clockwise
    exif[0x010F] = "SecretCam"  # Make
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (51.0, 30.0, 0.0)
    upright.save(path, exif=exif.tobytes())
    assert Image.open(path).getexif()[0x0112] == 6
    image = load_image(path, MAX_PIXELS)
    assert image.size == (20, 40)  # rotated upright
    assert close(image.getpixel((10, 4)), (20, 20, 220), tolerance=40)  # type: ignore[arg-type]
    assert not image.getexif() and "exif" not in image.info


def test_uploaded_bytes_decode_like_files() -> None:
    image = load_image(saved(Image.new("RGB", (30, 30), RED), "PNG"), MAX_PIXELS)
    assert image.mode == "RGB" and image.size == (30, 30)


def test_an_8000_square_png_decodes_when_the_pixel_limit_allows_it(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    Image.new("1", (8000, 8000), 1).save(path)
    image = load_image(path, max_pixels=70_000_000, max_side=1024)
    assert image.mode == "RGB" and image.size == (1024, 1024)
    assert centre(image) == (255, 255, 255)


# --- images that must be rejected ------------------------------------------------------------


def test_an_8000_square_png_is_refused_by_the_default_pixel_limit(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    Image.new("1", (8000, 8000), 1).save(path)
    with pytest.raises(ImageRejected) as caught:
        load_image(path, MAX_PIXELS)
    message = str(caught.value)
    assert message.startswith("huge.png:")
    assert "8000x8000" in message and "SHOPSIGHT_MAX_IMAGE_PIXELS" in message


def test_pixel_limit_is_checked_from_the_header_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "liar.png"
    full = saved(Image.new("L", (8000, 8000), 0), "PNG")
    path.write_bytes(full[:200])  # header intact, pixel data cut off
    with pytest.raises(ImageRejected, match="exceeds the 40 MP limit"):
        load_image(path, MAX_PIXELS)


def test_decompression_bomb_is_refused_quickly_even_with_a_huge_limit(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb_png())
    assert path.stat().st_size < 2000
    started = time.perf_counter()
    for limit in (MAX_PIXELS, 10**12):
        with pytest.raises(ImageRejected, match=r"bomb\.png: .*(bomb|exceeds)"):
            load_image(path, max_pixels=limit)
    assert time.perf_counter() - started < 2.0


def test_truncated_jpeg_is_rejected_as_corrupt(tmp_path: Path) -> None:
    noise = np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)
    data = saved(Image.fromarray(noise), "JPEG", quality=95)
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageRejected, match=r"cut\.jpg: .*corrupt or truncated"):
        load_image(path, MAX_PIXELS)


def test_text_file_named_jpg_is_rejected_as_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a photo\n")
    with pytest.raises(ImageRejected, match=r"notes\.jpg: not a recognised image format"):
        load_image(path, MAX_PIXELS)


def test_empty_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(ImageRejected, match="not a recognised image format"):
        load_image(path, MAX_PIXELS)


def test_tiny_image_is_rejected_as_too_small(tmp_path: Path) -> None:
    path = make_image(tmp_path / "dot.png", RED, size=(4, 4))
    with pytest.raises(ImageRejected, match="4x4 is too small"):
        load_image(path, MAX_PIXELS)


def test_missing_file_is_an_image_rejection_not_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(ImageRejected, match=r"gone\.jpg: cannot read the file"):
        load_image(tmp_path / "gone.jpg", MAX_PIXELS)


def test_a_folder_is_an_image_rejection(tmp_path: Path) -> None:
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    with pytest.raises(ImageRejected, match="cannot read the file"):
        load_image(folder, MAX_PIXELS)


def test_corrupt_upload_bytes_name_the_upload() -> None:
    with pytest.raises(ImageRejected, match=r"^upload: "):
        load_image(b"\x89PNG\r\n\x1a\n garbage", MAX_PIXELS)


# --- the whole corpus: every odd file is either usable or explained --------------------------


def _corpus(folder: Path) -> dict[str, Callable[[], object]]:
    noise = np.random.default_rng(1).integers(0, 255, (128, 128, 3), dtype=np.uint8)
    jpeg = saved(Image.fromarray(noise), "JPEG")
    frames = [Image.new("RGB", (20, 20), c) for c in ((255, 0, 0), (0, 0, 255))]

    def animated(path: Path) -> None:
        frames[0].save(path, save_all=True, append_images=frames[1:])

    return {
        "plain.jpg": lambda: make_image(folder / "plain.jpg"),
        "truncated.jpg": lambda: (folder / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3]),
        "text.jpg": lambda: (folder / "text.jpg").write_text("hello"),
        "bomb.png": lambda: (folder / "bomb.png").write_bytes(bomb_png()),
        "huge.png": lambda: Image.new("1", (8000, 8000)).save(folder / "huge.png"),
        "cmyk.jpg": lambda: Image.new("CMYK", (40, 40), (10, 200, 30, 0)).save(folder / "cmyk.jpg"),
        "grey.png": lambda: Image.new("L", (40, 40), 128).save(folder / "grey.png"),
        "anim.gif": lambda: animated(folder / "anim.gif"),
        "alpha.png": lambda: Image.new("RGBA", (40, 40), (0, 0, 0, 0)).save(folder / "alpha.png"),
        "rgb16.png": lambda: (folder / "rgb16.png").write_bytes(
            sixteen_bit_rgb_png(40, 40, (1000, 40000, 65535))
        ),
        "wide.webp.png": lambda: make_image(folder / "wide.webp.png", size=(3000, 200)),
        "empty.gif": lambda: (folder / "empty.gif").write_bytes(b""),
    }


CORPUS = [
    "plain.jpg",
    "truncated.jpg",
    "text.jpg",
    "bomb.png",
    "huge.png",
    "cmyk.jpg",
    "grey.png",
    "anim.gif",
    "alpha.png",
    "rgb16.png",
    "wide.webp.png",
    "empty.gif",
]
EXPECTED_REJECTED = {"truncated.jpg", "text.jpg", "bomb.png", "huge.png", "empty.gif"}


@pytest.mark.parametrize("name", CORPUS)
def test_every_corpus_file_is_decoded_within_limits_or_rejected_with_a_reason(
    tmp_path: Path, name: str
) -> None:
    _corpus(tmp_path)[name]()
    try:
        image = load_image(tmp_path / name, MAX_PIXELS, max_side=512)
    except ImageRejected as exc:
        assert name in EXPECTED_REJECTED, f"{name} should have decoded: {exc}"
        message = str(exc)
        assert message.startswith(f"{name}: ") and len(message) > len(name) + 12
        assert "\n" not in message
    else:
        assert name not in EXPECTED_REJECTED, f"{name} should have been rejected"
        assert image.mode == "RGB" and max(image.size) <= 512
        assert np.asarray(image).dtype == np.uint8


@pytest.mark.data
def test_real_customer_photos_decode_to_bounded_rgb(shared_data: Path) -> None:
    folder = shared_data / "clothing-small" / "validation"
    photos = sorted(folder.glob("*/*.jpg"))[::17][:20]
    assert photos, f"no photos under {folder}"
    for photo in photos:
        image = load_image(photo, MAX_PIXELS, max_side=256)
        assert image.mode == "RGB" and max(image.size) <= 256 and min(image.size) >= 8
