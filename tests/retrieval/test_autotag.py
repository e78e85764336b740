"""Auto-tagging at ingest and the colour names it relies on."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from PIL import Image

from knowledge_base.loaders import LoadResult
from knowledge_base.schema import Product
from retrieval.autotag import autotag
from retrieval.colours import colour_names, dominant_colours
from retrieval.encoders.features import FeatureCache
from retrieval.heads.category import CategoryClassifier, Head

RED, BLUE, WHITE, BLACK = (210, 25, 30), (25, 45, 200), (250, 250, 250), (15, 15, 15)


class MeanColourEncoder:
    """Test double for the CNN: a photo's feature is its mean RGB in [0, 1]."""

    name = "mean-colour"
    dim = 3

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return np.array(
            [np.asarray(i.convert("RGB"), dtype=np.float32).mean(axis=(0, 1)) / 255 for i in images]
        )


def redness_classifier() -> CategoryClassifier:
    """Logit of "red-thing" grows with red minus blue; "blue-thing" the opposite."""
    weight = np.array([[8.0, -8.0], [0.0, 0.0], [-8.0, 8.0]], dtype=np.float32)
    head = Head(
        np.zeros(3, np.float32), np.ones(3, np.float32), [(weight, np.zeros(2, np.float32))]
    )
    return CategoryClassifier(
        ["red-thing", "blue-thing"], head, 1.0, ["full", "flip"], "mean-colour"
    )


def product_photo(
    path: Path, colour: tuple[int, int, int], background: tuple[int, int, int] = WHITE
) -> Path:
    image = Image.new("RGB", (120, 160), background)
    image.paste(colour, (30, 30, 90, 130))
    image.save(path)
    return path


@pytest.mark.unit
@pytest.mark.parametrize(
    ("rgb", "name"),
    [
        ((220, 20, 20), "red"),
        ((20, 40, 220), "blue"),
        ((15, 25, 90), "navy"),
        ((30, 160, 40), "green"),
        ((250, 250, 250), "white"),
        ((10, 10, 10), "black"),
        ((128, 128, 128), "grey"),
        ((230, 210, 170), "beige"),
        ((120, 70, 30), "brown"),
        ((255, 180, 190), "pink"),
        ((250, 240, 20), "yellow"),
        ((250, 140, 0), "orange"),
        ((140, 20, 190), "purple"),
    ],
)
def test_colour_names(rgb: tuple[int, int, int], name: str) -> None:
    assert colour_names(np.array([rgb]))[0] == name


@pytest.mark.unit
def test_plain_background_is_ignored(tmp_path: Path) -> None:
    # Product covers ~31% of the photo: the white background must not be named.
    photo = Image.open(product_photo(tmp_path / "p.png", BLUE))
    assert [c.name for c in dominant_colours(photo)] == ["blue"]


@pytest.mark.unit
def test_two_coloured_product_gives_both_names_largest_first() -> None:
    photo = Image.new("RGB", (100, 100), (128, 128, 128))
    photo.paste(RED, (20, 20, 80, 60))
    photo.paste(BLACK, (20, 60, 80, 75))
    colours = dominant_colours(photo)
    assert [c.name for c in colours] == ["red", "black"]
    assert colours[0].share == pytest.approx(40 / 55, abs=0.05)


@pytest.mark.unit
def test_busy_background_falls_back_to_the_centre() -> None:
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 256, (100, 100, 3), dtype=np.uint8))
    photo.paste(RED, (15, 15, 85, 85))
    assert [c.name for c in dominant_colours(photo)] == ["red"]


@pytest.mark.unit
def test_products_without_category_get_predicted_category_and_colours(tmp_path: Path) -> None:
    loaded = LoadResult(
        products=[
            Product(id="a", title="A", images=[product_photo(tmp_path / "a.png", RED)]),
            Product(
                id="b",
                title="B",
                category="shoes",
                images=[product_photo(tmp_path / "b.png", BLUE)],
            ),
            Product(id="c", title="C"),
        ]
    )
    report = autotag(loaded, redness_classifier(), encoder=MeanColourEncoder())
    tagged, kept, bare = loaded.products
    assert tagged.category == "red-thing"
    assert tagged.predicted["category"] > 0.9
    assert "red" in tagged.tags and tagged.predicted["colour:red"] == pytest.approx(1.0)
    assert kept.category == "shoes" and not kept.predicted and not kept.tags
    assert bare == Product(id="c", title="C")
    assert (report.categorised, report.coloured, report.skipped) == (1, 1, [])


@pytest.mark.unit
def test_unsure_prediction_leaves_the_category_empty_but_adds_colours(tmp_path: Path) -> None:
    # Mean colour of a white-background purple product is balanced between red and blue.
    photo = product_photo(tmp_path / "p.png", (110, 20, 170))
    loaded = LoadResult(products=[Product(id="p", title="P", images=[photo])])
    report = autotag(loaded, redness_classifier(), encoder=MeanColourEncoder(), min_confidence=0.9)
    product = loaded.products[0]
    assert product.category == "" and "category" not in product.predicted
    assert product.tags == ["purple"]
    assert report.below_confidence == 1


@pytest.mark.unit
def test_cached_features_give_the_same_tags_as_fresh_encoding(tmp_path: Path) -> None:
    def fresh() -> LoadResult:
        return LoadResult(
            products=[Product(id="a", title="A", images=[product_photo(tmp_path / "a.png", BLUE)])]
        )

    direct, cached = fresh(), fresh()
    autotag(direct, redness_classifier(), encoder=MeanColourEncoder())
    cache = FeatureCache(tmp_path / "cache", cast(Any, MeanColourEncoder()))
    autotag(cached, redness_classifier(), cache=cache)
    assert cached.products == direct.products
    assert cached.products[0].category == "blue-thing"
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 2  # full and flip views


@pytest.mark.unit
def test_without_a_classifier_only_colours_are_added(tmp_path: Path) -> None:
    loaded = LoadResult(
        products=[Product(id="a", title="A", images=[product_photo(tmp_path / "a.png", RED)])]
    )
    report = autotag(loaded, None)
    assert loaded.products[0].category == ""
    assert loaded.products[0].tags == ["red"]
    assert report.categorised == 0 and report.coloured == 1


@pytest.mark.unit
def test_unreadable_photo_is_skipped_with_its_reason(tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    loaded = LoadResult(products=[Product(id="x", title="X", images=[broken])])
    report = autotag(loaded, redness_classifier(), encoder=MeanColourEncoder())
    assert loaded.products[0] == Product(id="x", title="X", images=[broken])
    assert len(report.skipped) == 1 and "broken.jpg" in report.skipped[0].source
