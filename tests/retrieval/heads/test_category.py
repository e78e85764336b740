"""Category recognition: training, calibration, artefacts, the eval task and its CLI."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
import typer
from assistant.commands import category as category_commands
from PIL import Image
from typer.testing import CliRunner

from retrieval.calibration import (
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    softmax,
    stratified_split,
)
from retrieval.encoders.features import FeatureCache
from retrieval.encoders.text import l2_normalise
from retrieval.evaluation.category import category_metrics, evaluate_category
from retrieval.heads.category import CategoryClassifier, latest_model_dir, load_latest
from retrieval.training.category import (
    HeadConfig,
    LabelledImages,
    TrainConfig,
    load_labelled_images,
    train_category,
)
from tests.helpers.cli import train_eval_app

PROJECT = Path(__file__).resolve().parents[3]
SHARED_DATA = PROJECT.parent / "shared" / "data" / "clothing-small"
COLOURS = {"red": (200, 30, 30), "green": (30, 170, 40), "blue": (30, 40, 200)}
FAST = TrainConfig(head=HeadConfig(hidden=16, epochs=25, min_steps=0, batch_size=16))


class MeanColourEncoder:
    """Test double for the CNN: a photo's feature is its mean colour, so colour classes separate."""

    name = "mean-colour"
    dim = 4

    def __init__(self) -> None:
        self.calls = 0

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        self.calls += len(images)
        rows = [
            np.asarray(i.convert("RGB"), dtype=np.float32).mean(axis=(0, 1)) / 255 for i in images
        ]
        return l2_normalise(np.array([[*row, 0.2] for row in rows]))


def make_folder(root: Path, per_class: int, seed: int) -> Path:
    """An image folder per class: noisy photos whose colour gives away the class."""
    rng = np.random.default_rng(seed)
    for name, colour in COLOURS.items():
        (root / name).mkdir(parents=True)
        for index in range(per_class):
            pixels = np.clip(np.array(colour) + rng.normal(0, 25, (24, 20, 3)), 0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{name}{index}.png")
    return root


@pytest.fixture
def encoder() -> MeanColourEncoder:
    return MeanColourEncoder()


@pytest.fixture
def cache(tmp_path: Path, encoder: MeanColourEncoder) -> FeatureCache:
    return FeatureCache(tmp_path / "cache", cast(Any, encoder))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> CategoryClassifier:
    root = tmp_path_factory.mktemp("trained")
    data = load_labelled_images(make_folder(root / "train", 12, seed=1))
    cache = FeatureCache(root / "cache", cast(Any, MeanColourEncoder()))
    return train_category(data, cache, FAST, progress=False).classifier


@pytest.mark.unit
def test_metrics_match_hand_computed_values() -> None:
    true = ["a", "a", "b", "b", "c"]
    predicted = ["a", "b", "b", "b", "a"]
    metrics, rows, matrix, labels = category_metrics(true, predicted, ["a", "b", "c"])
    assert metrics["accuracy"] == pytest.approx(0.6)
    # F1 per class: a = 0.5, b = 0.8 (P 2/3, R 1), c = 0.
    assert metrics["macro_f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert [r["f1"] for r in rows] == pytest.approx([0.5, 0.8, 0.0])
    assert [r["support"] for r in rows] == [2, 2, 1]
    assert labels == ["a", "b", "c"]
    assert matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]


@pytest.mark.unit
def test_a_label_the_model_does_not_know_counts_as_an_error() -> None:
    metrics, rows, matrix, labels = category_metrics(["a", "z"], ["a", "a"], ["a", "b"])
    assert metrics["accuracy"] == pytest.approx(0.5)
    assert labels == ["a", "b", "z"]
    assert {r["label"]: r["recall"] for r in rows} == {"a": 1.0, "z": 0.0}
    assert matrix[2].tolist() == [1, 0, 0]


@pytest.mark.unit
def test_expected_calibration_error_matches_hand_computed_value() -> None:
    probabilities = np.array([[0.9, 0.1], [0.6, 0.4]])
    # Two bins of one example: |1 − 0.9| and |0 − 0.6|, each weighted ½.
    assert expected_calibration_error(probabilities, np.array([0, 1])) == pytest.approx(0.35)
    assert expected_calibration_error(np.array([[1.0, 0.0]]), np.array([0])) == pytest.approx(0.0)


@pytest.mark.unit
def test_temperature_scaling_softens_overconfident_logits_without_changing_predictions() -> None:
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 3, 400)
    logits = rng.normal(0, 1, (400, 3))
    logits[np.arange(400), targets] += 1.0
    logits *= 8  # right 70% of the time, but almost always ~100% sure
    temperature = fit_temperature(logits, targets)
    assert temperature > 2
    assert negative_log_likelihood(logits, targets, temperature) < negative_log_likelihood(
        logits, targets
    )
    calibrated = softmax(logits, temperature)
    assert expected_calibration_error(calibrated, targets) < expected_calibration_error(
        softmax(logits), targets
    )
    assert (calibrated.argmax(1) == logits.argmax(1)).all()


@pytest.mark.unit
def test_split_is_seeded_and_keeps_every_class_on_both_sides() -> None:
    targets = np.array([0] * 10 + [1] * 3 + [2] * 2)
    train, held = stratified_split(targets, 0.2, seed=3)
    again = stratified_split(targets, 0.2, seed=3)
    assert train.tolist() == again[0].tolist() and held.tolist() == again[1].tolist()
    assert sorted(train.tolist() + held.tolist()) == list(range(len(targets)))
    for label in (0, 1, 2):
        assert (targets[train] == label).any() and (targets[held] == label).any()
    assert (targets[held] == 0).sum() == 2


@pytest.mark.unit
def test_training_is_reproducible_and_learns_separable_classes(
    tmp_path: Path, cache: FeatureCache
) -> None:
    data = load_labelled_images(make_folder(tmp_path / "train", 12, seed=1))
    first = train_category(data, cache, FAST, progress=False)
    second = train_category(data, cache, FAST, progress=False)
    assert first.metrics["accuracy"] == pytest.approx(1.0)
    assert first.metrics["validation_images"] == pytest.approx(6)
    for a, b in zip(first.classifier.head.layers, second.classifier.head.layers, strict=True):
        np.testing.assert_array_equal(a[0], b[0])
    assert "precision" in first.report and "green" in first.report


@pytest.mark.unit
def test_training_refuses_a_single_category(tmp_path: Path, cache: FeatureCache) -> None:
    data = LabelledImages([tmp_path / "a.png", tmp_path / "b.png"], ["x", "x"], "one-class")
    with pytest.raises(ValueError, match="at least two categories"):
        train_category(data, cache, FAST, progress=False)


@pytest.mark.unit
def test_eval_reports_accuracy_f1_confusion_png_and_files(
    tmp_path: Path, cache: FeatureCache, trained: CategoryClassifier
) -> None:
    test = load_labelled_images(make_folder(tmp_path / "test", 5, seed=2))
    report = evaluate_category(trained, test, cache, tmp_path / "reports", progress=False)
    assert report.metrics["accuracy"] == pytest.approx(1.0)
    assert report.metrics["macro_f1"] == pytest.approx(1.0)
    assert report.metrics["images"] == 15
    assert np.diag(report.details["confusion_matrix"]["matrix"]).tolist() == [5, 5, 5]
    png = tmp_path / "reports" / "category_confusion.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    written = json.loads((tmp_path / "reports" / "category.json").read_text())
    assert written["metrics"]["accuracy"] == pytest.approx(1.0)
    assert "| blue |" in (tmp_path / "reports" / "category.md").read_text()


@pytest.mark.unit
def test_eval_catches_a_classifier_that_confuses_classes(
    tmp_path: Path, cache: FeatureCache, trained: CategoryClassifier
) -> None:
    test = load_labelled_images(make_folder(tmp_path / "test", 5, seed=2))
    swapped = [{"red": "green", "green": "red"}.get(label, label) for label in test.labels]
    report = evaluate_category(
        trained,
        LabelledImages(test.paths, swapped, "swapped"),
        cache,
        tmp_path / "r",
        progress=False,
    )
    assert report.metrics["accuracy"] == pytest.approx(5 / 15, abs=1e-4)
    assert report.metrics["macro_f1"] == pytest.approx(1 / 3, abs=1e-4)


@pytest.mark.unit
def test_artefact_round_trip_versions_and_autoload(
    tmp_path: Path, trained: CategoryClassifier, encoder: MeanColourEncoder
) -> None:
    artifacts = tmp_path / "artifacts"
    assert load_latest(artifacts) is None
    first = trained.save(artifacts)
    second = trained.save(artifacts)
    assert (first.name, second.name) == ("category-v1", "category-v2")
    assert latest_model_dir(artifacts) == second
    meta = json.loads((second / "meta.json").read_text())
    assert meta["classes"] == ["blue", "green", "red"]
    assert meta["metrics"]["accuracy"] == pytest.approx(1.0)
    assert meta["settings"]["seed"] == 0 and meta["data"]["images"] == 36
    loaded = load_latest(artifacts)
    assert loaded is not None
    photo = Image.new("RGB", (30, 30), COLOURS["blue"])
    original, restored = trained.predict([photo], encoder)[0], loaded.predict([photo], encoder)[0]
    assert restored == original
    assert restored.label == "blue"
    assert sum(restored.probabilities.values()) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.unit
def test_predicting_with_another_encoder_is_refused(trained: CategoryClassifier) -> None:
    other = MeanColourEncoder()
    other.name = "another-cnn"
    with pytest.raises(ValueError, match="retrain"):
        trained.predict([Image.new("RGB", (10, 10))], other)


@pytest.mark.unit
def test_catalogue_rows_with_category_and_image_are_labelled_examples(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "photos", 1, seed=0)
    rows = [
        {"id": "p1", "title": "Red tee", "category": "red", "images": ["photos/red/red0.png"]},
        {"id": "p2", "title": "Blue tee", "category": "blue", "images": ["photos/blue/blue0.png"]},
        {"id": "p3", "title": "No category", "images": ["photos/green/green0.png"]},
        {"id": "p4", "title": "No image", "category": "red"},
    ]
    (tmp_path / "catalogue.json").write_text(json.dumps(rows))
    data = load_labelled_images(tmp_path / "catalogue.json")
    assert data.labels == ["red", "blue"]
    assert data.paths == [
        (folder / "red" / "red0.png").resolve(),
        (folder / "blue" / "blue0.png").resolve(),
    ]


@pytest.mark.unit
def test_missing_data_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_labelled_images(tmp_path / "nowhere")
    (tmp_path / "empty.json").write_text("[]")
    with pytest.raises(FileNotFoundError, match="no labelled images"):
        load_labelled_images(tmp_path / "empty.json")


def _cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cache: FeatureCache) -> typer.Typer:
    monkeypatch.setenv("SHOPSIGHT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(category_commands, "_encoder", lambda features: cache.encoder)
    return train_eval_app(category_commands.register)


@pytest.mark.unit
def test_cli_trains_then_evaluates_with_json_output(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cache: FeatureCache
) -> None:
    app = _cli(monkeypatch, tmp_path, cache)
    train_dir = make_folder(tmp_path / "train", 12, seed=1)
    test_dir = make_folder(tmp_path / "test", 4, seed=2)
    runner = CliRunner()
    trained = runner.invoke(
        app,
        [
            "train",
            "category",
            "--data",
            str(train_dir),
            "--epochs",
            "40",
            "--hidden",
            "16",
            "--json",
        ],
    )
    assert trained.exit_code == 0, trained.output
    model = Path(json.loads(trained.stdout)["model"])
    assert model == tmp_path / "data" / "artifacts" / "category-v1"
    evaluated = runner.invoke(app, ["eval", "category", "--data", str(test_dir), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    payload = json.loads(evaluated.stdout)
    assert payload["metrics"]["accuracy"] == pytest.approx(1.0)
    assert payload["settings"]["model"] == str(model)
    assert (tmp_path / "data" / "reports" / "category.md").is_file()
    human = runner.invoke(app, ["eval", "category", "--data", str(test_dir)])
    assert human.exit_code == 0 and "macro_f1 1.0000" in human.stdout


@pytest.mark.unit
def test_cli_errors_are_one_line_without_traceback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cache: FeatureCache
) -> None:
    app = _cli(monkeypatch, tmp_path, cache)
    runner = CliRunner()
    no_model = runner.invoke(app, ["eval", "category", "--data", str(tmp_path)])
    assert no_model.exit_code == 1
    assert "run `shopsight train category" in no_model.output
    assert "Traceback" not in no_model.output
    bad_data = runner.invoke(app, ["train", "category", "--data", str(tmp_path / "missing")])
    assert bad_data.exit_code == 1 and "no such file" in bad_data.output


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data/clothing-small is absent")
def test_clothing_small_validation_accuracy_reaches_target(tmp_path: Path) -> None:
    from retrieval.heads.category import banded_encoder

    # The project's default data dir: features computed once are reused by every later run.
    cache = FeatureCache(PROJECT / "data" / "cache", cast(Any, banded_encoder()))
    result = train_category(load_labelled_images(SHARED_DATA / "train"), cache, progress=False)
    report = evaluate_category(
        result.classifier,
        load_labelled_images(SHARED_DATA / "validation"),
        cache,
        tmp_path,
        progress=False,
    )
    assert report.metrics["accuracy"] >= 0.90
    assert report.metrics["ece"] < 0.05


@pytest.mark.integration
def test_banded_features_keep_aspect_and_normalise_each_part() -> None:
    from retrieval.heads.category import FeatureSettings, banded_encoder

    encoder = banded_encoder(FeatureSettings(short_side=128, bands=3))
    rng = np.random.default_rng(0)
    photos = [
        Image.fromarray(rng.integers(0, 256, (160, 120, 3), dtype=np.uint8)),
        Image.fromarray(rng.integers(0, 256, (40, 900, 3), dtype=np.uint8)),
    ]
    rows = encoder.embed_images(photos)
    assert encoder.name == "efficientnet-lite0-gem-s128-b3"
    assert rows.shape == (2, 4 * 1280)
    norms = np.linalg.norm(rows.reshape(2, 4, 1280), axis=2)
    np.testing.assert_allclose(norms, 1.0, rtol=1e-4)
    assert encoder.pixels(photos[0]).shape == (1, 3, 171, 128)
    assert encoder.pixels(photos[1]).shape[-1] == 512  # a panorama's long side is capped
