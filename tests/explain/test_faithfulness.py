"""Deletion tests: the metric itself (it must be able to fail), then real margins on 50 review
sentences and 50 clothing photos (skipped when ../shared/data is absent)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from assistant.perception.sentiment import vader
from explain.faithfulness import (
    DeletionResult,
    delete_words,
    hot_mask,
    image_deletion,
    random_block_mask,
    summarise,
    text_deletion,
)
from explain.gradcam import CamResult, GradCam, as_module, category_target, similarity_target
from explain.text_shap import TextExplanation, explain_text
from knowledge_base.folders import list_image_folder
from retrieval.encoders.features import FeatureCache
from retrieval.encoders.image import INPUT_SIDE
from retrieval.encoders.registry import get_image_encoder
from retrieval.training.category import HeadConfig, fit_head

SAMPLE = 50
SEED = 0
WEIGHTS = {"awful": -0.8, "broke": -0.5, "late": -0.3, "great": 0.6}


def weighted_score(texts: list[str]) -> np.ndarray:
    """A transparent model: the sum of known word weights."""
    return np.array([sum(WEIGHTS.get(w.strip(",.!"), 0.0) for w in t.split()) for t in texts])


def explanation_of(text: str, values: list[float]) -> TextExplanation:
    pieces = text.split()
    segments = [piece + " " for piece in pieces[:-1]] + [pieces[-1]]
    return TextExplanation(
        tokens=[piece.strip(",.!") for piece in pieces],
        values=values,
        base_value=0.0,
        output=float(weighted_score([text])[0]),
        output_name="score",
        segments=segments,
        language="en",
        max_evals=0,
    )


class QuadrantScorer:
    """A stand-in network whose target is the mean input value of the top-left quadrant."""

    def scores(self, batch: np.ndarray, target: object) -> np.ndarray:
        half = INPUT_SIDE // 2
        return batch[:, :, :half, :half].mean(axis=(1, 2, 3)).astype(np.float64)


def corner_heat(top_left: bool) -> CamResult:
    heat = np.zeros((100, 100), dtype=np.float32)
    if top_left:
        heat[:40, :40] = 1.0
    else:
        heat[60:, 60:] = 1.0
    return CamResult(heat, 1.0, "test")


@pytest.mark.unit
def test_deleting_words_keeps_the_punctuation_after_them() -> None:
    explanation = explanation_of("awful, it broke!", [-0.8, 0.0, -0.5])
    assert delete_words(explanation, [0, 2]) == ", it !"
    assert delete_words(explanation, []) == "awful, it broke!"


@pytest.mark.unit
def test_a_faithful_text_explanation_has_a_positive_margin() -> None:
    text = "the parcel was late and the box arrived awful and broke"
    values = [WEIGHTS.get(w, 0.0) for w in text.split()]
    result = text_deletion(explanation_of(text, values), weighted_score, k=2)
    assert result.top_effect == pytest.approx(1.3)
    assert result.margin > 0.5


@pytest.mark.unit
def test_a_wrong_text_explanation_has_a_negative_margin() -> None:
    text = "the parcel was late and the box arrived awful and broke"
    values = [-WEIGHTS.get(w, 0.0) + 0.01 * i for i, w in enumerate(text.split())]
    assert text_deletion(explanation_of(text, values), weighted_score, k=2).margin < 0


@pytest.mark.unit
def test_text_deletion_reads_the_explained_column_of_a_multi_output_model() -> None:
    def two_outputs(texts: list[str]) -> np.ndarray:
        scores = weighted_score(texts)
        return np.stack([np.zeros_like(scores), scores], axis=1)

    text = "the parcel was late and the box arrived awful and broke"
    explanation = explanation_of(text, [WEIGHTS.get(w, 0.0) for w in text.split()])
    with_column = text_deletion(explanation, two_outputs, column=1)
    assert with_column == text_deletion(explanation, weighted_score)


@pytest.mark.unit
def test_text_deletion_is_seeded() -> None:
    text = "great shoes but the heel broke and delivery was late"
    explanation = explanation_of(text, [WEIGHTS.get(w, 0.0) for w in text.split()])
    first = text_deletion(explanation, weighted_score, seed=3)
    assert first == text_deletion(explanation, weighted_score, seed=3)


@pytest.mark.unit
def test_hot_mask_covers_the_hottest_fifth_of_the_input() -> None:
    heat = np.zeros((50, 100), dtype=np.float32)
    heat[:, :25] = np.linspace(1.0, 0.5, 25)[None, :]
    mask = hot_mask(heat, 0.2)
    assert mask.shape == (INPUT_SIDE, INPUT_SIDE)
    assert mask.mean() == pytest.approx(0.2, abs=1e-3)
    assert mask[:, : INPUT_SIDE // 4].mean() > 0.75


@pytest.mark.unit
def test_random_block_masks_are_seeded_blocks_of_one_fifth() -> None:
    first = random_block_mask(np.random.default_rng(1))
    assert first.mean() == pytest.approx(0.2, abs=0.01)
    assert (first == random_block_mask(np.random.default_rng(1))).all()
    assert not (first == random_block_mask(np.random.default_rng(2))).all()


@pytest.mark.unit
def test_image_margin_is_positive_on_the_right_region_and_negative_on_the_wrong_one() -> None:
    image = Image.new("RGB", (100, 100), "white")
    target = similarity_target(np.zeros(1))  # type: ignore[arg-type]
    scorer = QuadrantScorer()
    right = image_deletion(scorer, image, corner_heat(top_left=True), target, fill="grey")
    wrong = image_deletion(scorer, image, corner_heat(top_left=False), target, fill="grey")
    assert right.margin > 0.3
    assert wrong.margin < 0


@pytest.mark.unit
def test_blur_fill_keeps_colour_but_removes_detail() -> None:
    stripes = np.full((100, 100, 3), 155, dtype=np.uint8)
    stripes[:, ::2] = 255
    image = Image.fromarray(stripes)
    target = similarity_target(np.zeros(1))  # type: ignore[arg-type]
    blurred = image_deletion(QuadrantScorer(), image, corner_heat(top_left=True), target)
    greyed = image_deletion(
        QuadrantScorer(), image, corner_heat(top_left=True), target, fill="grey"
    )
    assert abs(blurred.top_effect) < 0.05 < abs(greyed.top_effect)


@pytest.mark.unit
def test_summary_counts_positive_and_negative_margins() -> None:
    summary = summarise([DeletionResult(0.5, 0.1), DeletionResult(0.1, 0.3), DeletionResult(0, 0)])
    assert summary.count == 3
    assert summary.mean == pytest.approx((0.4 - 0.2) / 3)
    assert summary.share_positive == pytest.approx(1 / 3)
    assert summary.share_negative == pytest.approx(1 / 3)
    assert summary.minimum == pytest.approx(-0.2)
    with pytest.raises(ValueError):
        summarise([])


def review_sentences(shared_data: Path) -> list[str]:
    with (shared_data / "product-reviews-en" / "dev.csv").open(encoding="utf-8") as handle:
        sentences = [row["sentence"] for row in csv.DictReader(handle)]
    rng = np.random.default_rng(SEED)
    return [sentences[i] for i in rng.choice(len(sentences), size=SAMPLE, replace=False)]


@pytest.mark.data
@pytest.mark.slow
def test_shap_beats_random_word_deletion_on_50_review_sentences(shared_data: Path) -> None:
    score = vader().score_batch
    results = [
        text_deletion(explain_text(score, sentence, "en"), score, k=2, seed=i)
        for i, sentence in enumerate(review_sentences(shared_data))
    ]
    summary = summarise(results)
    print("text deletion margins:", summary.to_dict())
    assert summary.count == SAMPLE
    assert summary.mean > 0.05
    assert summary.share_negative <= 0.1


@pytest.fixture
def clothing(shared_data: Path) -> Iterator[tuple[GradCam, FeatureCache, list[Path], list[str]]]:
    """Grad-CAM, the shared feature cache and the training photos (the catalogue stand-in).

    One torch thread: on a shared, oversubscribed machine two threads ran ~20x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    encoder = get_image_encoder()
    yield (
        GradCam(encoder),
        FeatureCache(Path("data/cache"), encoder),
        *list_image_folder(shared_data / "clothing-small" / "train"),
    )
    torch.set_num_threads(threads)


def validation_photos(shared_data: Path) -> list[Path]:
    paths, _ = list_image_folder(shared_data / "clothing-small" / "validation")
    rng = np.random.default_rng(SEED)
    return [paths[i] for i in sorted(rng.choice(len(paths), size=SAMPLE, replace=False))]


@pytest.mark.data
@pytest.mark.slow
def test_similarity_gradcam_beats_random_masking_on_50_photos(
    shared_data: Path, clothing: tuple[GradCam, FeatureCache, list[Path], list[str]]
) -> None:
    gradcam, cache, train_paths, _ = clothing
    photos = validation_photos(shared_data)
    catalogue = cache.features(train_paths, progress=False)
    queries = cache.features(photos, progress=False)
    results = []
    for index, path in enumerate(photos):
        match = catalogue[int(np.argmax(catalogue @ queries[index]))]
        image = Image.open(path).convert("RGB")
        cam = gradcam.similarity(image, match)
        target = similarity_target(gradcam.reference(match))
        results.append(image_deletion(gradcam, image, cam, target, draws=5, seed=index))
    summary = summarise(results)
    print("similarity masking margins:", summary.to_dict())
    assert summary.mean > 0.02
    assert summary.share_positive >= 0.7


@pytest.mark.data
@pytest.mark.slow
def test_category_gradcam_beats_random_masking_on_50_photos(
    shared_data: Path, clothing: tuple[GradCam, FeatureCache, list[Path], list[str]]
) -> None:
    gradcam, cache, train_paths, train_labels = clothing
    classes = sorted(set(train_labels))
    targets = np.array([classes.index(label) for label in train_labels])
    head = fit_head(
        cache.features(train_paths, progress=False),
        targets,
        len(classes),
        HeadConfig(hidden=0, epochs=15, batch_size=256),
        seed=SEED,
    )
    results = []
    for index, path in enumerate(validation_photos(shared_data)):
        image = Image.open(path).convert("RGB")
        cam = gradcam.category(image, head, classes)
        assert cam.class_index is not None
        target = category_target(as_module(head), cam.class_index)
        results.append(image_deletion(gradcam, image, cam, target, draws=5, seed=index))
    summary = summarise(results)
    print("category masking margins:", summary.to_dict())
    assert summary.mean > 0.3
    assert summary.share_positive >= 0.7
