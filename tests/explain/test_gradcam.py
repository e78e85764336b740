"""Grad-CAM: the torch head matches the numpy head, heatmaps are well-formed and land on the
object, and the overlays render as PNG."""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from PIL import Image

from explain.gradcam import CamResult, GradCam, head_module
from explain.render import colourise, overlay, side_by_side, to_png
from knowledge_base.demo import DEMO_SHOP
from retrieval.heads.category import CategoryClassifier, Head

DEMO_IMAGES = DEMO_SHOP / "images"
PRODUCTS = ["sneaker-trail-orange", "mug-stoneware-white", "headphones-anc-black"]
CANVAS = 448
PASTE_BOX = (40, 232, 216, 408)  # left, top, right, bottom: 176×176, about 15% of the canvas


def demo(name: str) -> Image.Image:
    return Image.open(DEMO_IMAGES / f"{name}.png").convert("RGB")


def pasted(product: Image.Image) -> Image.Image:
    """The product photo pasted off-centre onto a blank white canvas."""
    canvas = Image.new("RGB", (CANVAS, CANVAS), "white")
    left, top, right, bottom = PASTE_BOX
    canvas.paste(product.resize((right - left, bottom - top)), (left, top))
    return canvas


def heat_inside(heatmap: np.ndarray) -> float:
    """Share of the heatmap's total mass inside the pasted box."""
    left, top, right, bottom = PASTE_BOX
    return float(heatmap[top:bottom, left:right].sum() / heatmap.sum())


@pytest.fixture(scope="module")
def gradcam() -> Iterator[GradCam]:
    """One thread: on a shared, oversubscribed CI box two torch threads ran ~20x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield GradCam()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def prototype_head(gradcam: GradCam) -> Head:
    """A nearest-prototype category head over three demo products (logit = 10 × cosine)."""
    prototypes = gradcam.encoder.embed_images([demo(name) for name in PRODUCTS])
    dim = prototypes.shape[1]
    weight = (10.0 * prototypes.T).astype(np.float32)
    return Head(np.zeros(dim, np.float32), np.ones(dim, np.float32), [(weight, np.zeros(3))])


@pytest.mark.unit
def test_torch_head_gives_the_numpy_heads_logits() -> None:
    rng = np.random.default_rng(0)
    head = Head(
        mean=rng.normal(size=6).astype(np.float32),
        scale=rng.uniform(0.5, 2.0, size=6).astype(np.float32),
        layers=[
            (rng.normal(size=(6, 4)).astype(np.float32), rng.normal(size=4).astype(np.float32)),
            (rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=3).astype(np.float32)),
        ],
    )
    features = rng.normal(size=(5, 6)).astype(np.float32)
    with torch.no_grad():
        logits = head_module(head)(torch.from_numpy(features)).numpy()
    np.testing.assert_allclose(logits, head.logits(features), rtol=1e-4, atol=1e-4)


@pytest.mark.unit
def test_overlay_keeps_cold_pixels_and_colours_hot_ones() -> None:
    image = Image.new("RGB", (40, 20), (128, 128, 128))
    heat = np.zeros((20, 40), dtype=np.float32)
    heat[:, 20:] = 1.0
    pixels = np.asarray(overlay(image, heat), dtype=int)
    assert (pixels[:, :20] == 128).all()
    hot = colourise(np.ones((1, 1)))[0, 0]
    expected = np.round(0.4 * 128 + 0.6 * hot.astype(float))
    np.testing.assert_allclose(pixels[5, 30], expected, atol=1)


@pytest.mark.unit
def test_overlay_resizes_a_heatmap_of_another_size() -> None:
    image = Image.new("RGB", (64, 48), "white")
    assert overlay(image, np.ones((7, 7), dtype=np.float32)).size == (64, 48)


@pytest.mark.unit
def test_side_by_side_is_a_png_with_both_panels_at_one_height() -> None:
    photo = Image.new("RGB", (300, 400), "red")
    catalogue = Image.new("RGB", (200, 200), "blue")
    picture = side_by_side(photo, np.ones((400, 300)), catalogue, None, height=100)
    assert picture.height == 100 + 22
    assert picture.width == 75 + 8 + 100
    data = to_png(picture)
    assert data.startswith(b"\x89PNG")
    assert Image.open(io.BytesIO(data)).size == picture.size


@pytest.mark.integration
def test_heatmap_is_at_the_photos_resolution_and_in_unit_range(gradcam: GradCam) -> None:
    photo = pasted(demo(PRODUCTS[0])).resize((300, 200))
    result = gradcam.similarity(photo, demo(PRODUCTS[0]))
    assert isinstance(result, CamResult)
    assert result.heatmap.shape == (200, 300)
    assert result.heatmap.min() >= 0.0 and result.heatmap.max() == pytest.approx(1.0)
    assert 0.0 < result.score <= 1.0


@pytest.mark.integration
def test_similarity_heat_falls_on_the_pasted_product(gradcam: GradCam) -> None:
    product = demo(PRODUCTS[0])
    result = gradcam.similarity(pasted(product), product)
    assert heat_inside(result.heatmap) > 0.5


@pytest.mark.integration
def test_category_heat_falls_on_the_pasted_product(gradcam: GradCam, prototype_head: Head) -> None:
    result = gradcam.category(pasted(demo(PRODUCTS[0])), prototype_head, PRODUCTS)
    assert result.target == f"category:{PRODUCTS[0]}"
    assert heat_inside(result.heatmap) > 0.5


@pytest.mark.integration
def test_category_target_can_be_another_class(gradcam: GradCam, prototype_head: Head) -> None:
    photo = pasted(demo(PRODUCTS[0]))
    predicted = gradcam.category(photo, prototype_head, PRODUCTS)
    other = gradcam.category(photo, prototype_head, PRODUCTS, class_index=1)
    assert other.target == f"category:{PRODUCTS[1]}"
    assert other.score < predicted.score


@pytest.mark.integration
def test_similarity_pair_explains_both_sides(gradcam: GradCam) -> None:
    photo = pasted(demo(PRODUCTS[0]))
    catalogue = demo(PRODUCTS[0])
    photo_side, catalogue_side = gradcam.similarity_pair(photo, catalogue)
    assert photo_side.heatmap.shape == (CANVAS, CANVAS)
    assert catalogue_side.heatmap.shape == (catalogue.height, catalogue.width)
    assert photo_side.score == pytest.approx(catalogue_side.score, abs=1e-4)
    stored = gradcam.encoder.embed_images([catalogue])[0]
    from_vector = gradcam.similarity(photo, stored)
    np.testing.assert_allclose(from_vector.heatmap, photo_side.heatmap, atol=1e-5)


@pytest.mark.integration
def test_classic_gradcam_is_available_and_unknown_methods_are_refused(gradcam: GradCam) -> None:
    classic = GradCam(gradcam.encoder, method="gradcam")
    product = demo(PRODUCTS[0])
    result = classic.similarity(pasted(product), product)
    assert result.heatmap.shape == (CANVAS, CANVAS)
    with pytest.raises(ValueError, match="unknown method"):
        GradCam(gradcam.encoder, method="saliency")  # type: ignore[arg-type]


@pytest.mark.integration
def test_explaining_leaves_the_shared_encoders_features_unchanged(gradcam: GradCam) -> None:
    product = demo(PRODUCTS[1])
    before = gradcam.encoder.embed_images([product])
    gradcam.category(pasted(product), torch.nn.Linear(1280, 3))
    np.testing.assert_array_equal(gradcam.encoder.embed_images([product]), before)


@pytest.mark.integration
def test_a_trained_category_classifier_is_explained_by_its_prediction(
    gradcam: GradCam,
) -> None:
    """The classifier sees banded features (whole map + horizontal bands, 4×1280), as trained."""
    from retrieval.heads.category import BandedFeatures, FeatureSettings

    features = BandedFeatures(gradcam.encoder, FeatureSettings())
    prototypes = features.embed_images([demo(name) for name in PRODUCTS])
    dim = prototypes.shape[1]
    head = Head(
        np.zeros(dim, np.float32),
        np.ones(dim, np.float32),
        [((10.0 * prototypes.T).astype(np.float32), np.zeros(3, np.float32))],
    )
    classifier = CategoryClassifier(PRODUCTS, head, 1.0, ["full"], features.name)
    photo = pasted(demo(PRODUCTS[2]))
    predicted = classifier.predict([photo], features)[0].label
    result = gradcam.classifier(photo, classifier)
    assert result.target == f"category:{predicted}"
    assert result.class_index == PRODUCTS.index(predicted)
    assert result.heatmap.shape == (photo.height, photo.width)
    assert heat_inside(result.heatmap) > 0.5
