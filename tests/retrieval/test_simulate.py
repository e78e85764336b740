"""The customer-photo simulation is seeded by pixels, reproducible and does what its doc says."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from retrieval.simulate import (
    SimulationProtocol,
    _random_resized_crop,
    image_rng,
    simulate_customer_photo,
)

pytestmark = pytest.mark.unit


def _photo(seed: int = 0, size: tuple[int, int] = (120, 160)) -> Image.Image:
    """A textured test photo (smooth noise), so crops and rotations change pixels visibly."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (8, 6, 3), dtype=np.uint8)
    return Image.fromarray(small).resize(size, Image.Resampling.BILINEAR)


def test_same_image_gives_the_same_customer_photo() -> None:
    first = simulate_customer_photo(_photo())
    again = simulate_customer_photo(_photo())
    assert first.tobytes() == again.tobytes()


def test_the_seed_and_the_pixels_decide_not_the_call_order() -> None:
    a, b = _photo(1), _photo(2)
    in_order = [simulate_customer_photo(a).tobytes(), simulate_customer_photo(b).tobytes()]
    reversed_order = [simulate_customer_photo(b).tobytes(), simulate_customer_photo(a).tobytes()]
    assert in_order == reversed_order[::-1]
    other_seed = simulate_customer_photo(a, SimulationProtocol(seed=1)).tobytes()
    assert other_seed != in_order[0]


def test_output_keeps_size_and_is_rgb_and_differs_from_the_source() -> None:
    source = _photo(size=(90, 130))
    result = simulate_customer_photo(source)
    assert result.size == source.size
    assert result.mode == "RGB"
    difference = np.abs(np.asarray(result, dtype=float) - np.asarray(source, dtype=float))
    assert difference.mean() > 10


def test_photo_is_pasted_on_a_light_background() -> None:
    black = Image.new("RGB", (100, 140), (0, 0, 0))
    pixels = np.asarray(simulate_customer_photo(black), dtype=float).mean(axis=2)
    light_share = float((pixels > 140).mean())
    # The rotated crop is scaled to fit 80 % of each side, so at least 36 % is background.
    assert 0.3 < light_share < 0.9


def test_crop_keeps_the_documented_share_of_the_area() -> None:
    image = _photo(size=(200, 300))
    shares = []
    for seed in range(200):
        crop = _random_resized_crop(image, np.random.default_rng(seed), (0.6, 0.9), (3 / 4, 4 / 3))
        shares.append(crop.width * crop.height / (200 * 300))
    assert min(shares) >= 0.5
    assert max(shares) <= 0.91
    assert np.mean(shares) == pytest.approx(0.75, abs=0.05)


def test_view_name_names_the_seed_and_changes_with_any_parameter() -> None:
    base = SimulationProtocol(seed=5)
    assert "seed5" in base.view_name
    assert base.view_name == SimulationProtocol(seed=5).view_name
    assert base.view_name != SimulationProtocol(seed=5, jpeg_quality=90).view_name
    assert base.describe()["jpeg_quality"] == 60


def test_rng_depends_on_pixels() -> None:
    a = image_rng(_photo(1), 0).random()
    b = image_rng(_photo(2), 0).random()
    assert a != b
    assert image_rng(_photo(1), 0).random() == a
