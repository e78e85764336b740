"""Grad-CAM of the trained matcher: its torch rebuild gives the head's own embedding, heatmaps
are well-formed and land on the product, and hiding the hot region lowers the similarity more
than hiding random blocks (real EfficientNet stages; a seeded head stands in for training)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from explain.faithfulness import image_deletion, summarise
from explain.gradcam import similarity_target
from explain.matcher_cam import MatcherCam
from knowledge_base.folders import list_image_folder
from retrieval.encoders.image import preprocess
from retrieval.encoders.registry import get_stage_encoder
from retrieval.encoders.stages import STAGE_DIM, pool_stages
from retrieval.heads.photo_embedding import PhotoEmbeddingHead
from tests.explain.test_gradcam import CANVAS, PASTE_BOX, PRODUCTS, demo, heat_inside, pasted

SEED = 7


def seeded_head(frozen_share: float) -> PhotoEmbeddingHead:
    return PhotoEmbeddingHead.untrained(STAGE_DIM, 64, 128, frozen_share, SEED)


@pytest.fixture(scope="module")
def cam() -> Iterator[MatcherCam]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield MatcherCam(get_stage_encoder(), seeded_head(0.4))
    torch.set_num_threads(threads)


@pytest.mark.parametrize("share", [0.0, 0.4])
def test_the_torch_rebuild_gives_the_heads_embedding(share: float) -> None:
    stages = get_stage_encoder()
    head = seeded_head(share)
    images = [demo(name) for name in PRODUCTS]
    expected = head(pool_stages(stages.stage_maps(preprocess(images))))
    assert np.allclose(MatcherCam(stages, head).embed_images(images), expected, atol=1e-5)


def test_heatmap_is_at_the_photos_resolution_and_in_unit_range(cam: MatcherCam) -> None:
    photo = pasted(demo(PRODUCTS[0]))
    result = cam.similarity(photo, demo(PRODUCTS[0]))
    assert result.heatmap.shape == (photo.height, photo.width)
    assert result.heatmap.min() >= 0.0 and result.heatmap.max() == pytest.approx(1.0)
    assert result.target == "similarity"


def test_similarity_heat_falls_on_the_pasted_product(cam: MatcherCam) -> None:
    """The product covers 15 % of the canvas; an untrained head also weighs the blank canvas,
    so the bar is twice the product's share of the heat, not a majority."""
    left, top, right, bottom = PASTE_BOX
    share = (right - left) * (bottom - top) / CANVAS**2
    for name in PRODUCTS:
        result = cam.similarity(pasted(demo(name)), demo(name))
        assert heat_inside(result.heatmap) > 2 * share, name


def test_similarity_pair_scores_are_the_embeddings_cosine(cam: MatcherCam) -> None:
    photo, catalogue = pasted(demo(PRODUCTS[1])), demo(PRODUCTS[1])
    photo_cam, catalogue_cam = cam.similarity_pair(photo, catalogue)
    first, second = cam.embed_images([photo, catalogue])
    assert photo_cam.score == pytest.approx(float(first @ second), abs=1e-5)
    assert catalogue_cam.score == pytest.approx(photo_cam.score, abs=1e-5)
    stored = cam.similarity(photo, second)
    assert stored.score == pytest.approx(photo_cam.score, abs=1e-5)


def test_classic_gradcam_is_available_and_unknown_methods_are_refused() -> None:
    stages = get_stage_encoder()
    classic = MatcherCam(stages, seeded_head(0.4), method="gradcam")
    result = classic.similarity(pasted(demo(PRODUCTS[2])), demo(PRODUCTS[2]))
    assert result.heatmap.max() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="hirescam"):
        MatcherCam(stages, seeded_head(0.4), method="lime")  # type: ignore[arg-type]


@pytest.mark.data
@pytest.mark.slow
def test_matcher_gradcam_beats_random_masking_on_clothing_photos(
    shared_data: Path, cam: MatcherCam
) -> None:
    """Real people's photos against the best match among 300 catalogue photos."""
    paths, _ = list_image_folder(shared_data / "clothing-small" / "validation")
    gallery_paths, _ = list_image_folder(shared_data / "clothing-small" / "train")
    rng = np.random.default_rng(SEED)
    photos = [paths[i] for i in sorted(rng.choice(len(paths), size=20, replace=False))]
    gallery = cam.embed_images([Image.open(p).convert("RGB") for p in gallery_paths[:300]])
    results = []
    for index, path in enumerate(photos):
        image = Image.open(path).convert("RGB")
        match = gallery[int(np.argmax(gallery @ cam.embed_images([image])[0]))]
        heat = cam.similarity(image, match)
        target = similarity_target(cam.reference(match))
        results.append(image_deletion(cam, image, heat, target, draws=5, seed=index))
    summary = summarise(results)
    print("matcher similarity masking margins:", summary.to_dict())
    assert summary.mean > 0.0
    assert summary.share_positive >= 0.6
