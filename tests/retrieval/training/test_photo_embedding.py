"""The learned photo embedding: training views, the head's training and its artefact, and the
CLI that trains it on a catalogue and evaluates with it (real EfficientNet stages)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from assistant.cli.photo_search import register
from retrieval.heads.photo_embedding import FROZEN_DIM, PhotoEmbeddingHead, load_trained_matcher
from retrieval.heads.photo_matcher import MatchCalibrator
from retrieval.training.augment import TrainingAugmenter
from retrieval.training.photo_embedding import EmbeddingConfig, fit_head, save_trained_matcher


def _image(seed: int, size: tuple[int, int] = (96, 128)) -> Image.Image:
    blocks = np.random.default_rng(seed).integers(0, 256, (4, 3, 3), dtype=np.uint8)
    return Image.fromarray(blocks).resize(size, Image.Resampling.BILINEAR)


def _features(images: int = 60, views: int = 4, dim: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """Clean rows, and views that are the clean row under a strong shared nuisance plus noise:
    frozen cosine search confuses them, a learned projection can drop the nuisance."""
    rng = np.random.default_rng(3)
    clean = rng.normal(size=(images, dim)).astype(np.float32)
    nuisance = rng.normal(size=(images * views, dim)) * np.r_[np.ones(8) * 6, np.zeros(dim - 8)]
    noisy = np.repeat(clean, views, axis=0) + nuisance + rng.normal(size=nuisance.shape) * 0.3
    return clean, noisy.reshape(images, views, dim).astype(np.float32)


def _recall_at_1(clean: np.ndarray, views: np.ndarray) -> float:
    def norm(x: np.ndarray) -> np.ndarray:
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    sims = np.einsum("nvd,md->nvm", norm(views), norm(clean))
    return float((sims.argmax(-1) == np.arange(len(clean))[:, None]).mean())


@pytest.mark.unit
def test_training_views_are_reproducible_distinct_and_keep_the_size() -> None:
    augmenter = TrainingAugmenter(seed=5)
    image = _image(1)
    first, again = augmenter.views(image, 3), augmenter.views(image, 3)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(first, again, strict=True))
    assert len({view.tobytes() for view in first}) == 3
    assert {view.size for view in first} == {image.size}
    assert augmenter.view(image, 2).tobytes() == first[2].tobytes()
    assert TrainingAugmenter(seed=6).view(image, 0).tobytes() != first[0].tobytes()
    assert TrainingAugmenter(seed=6).cache_name != augmenter.cache_name


@pytest.mark.unit
def test_the_head_learns_to_find_each_views_own_image_and_is_seeded() -> None:
    clean, views = _features()
    config = EmbeddingConfig(
        epochs=30, dim=32, hidden=64, batch=64, learning_rate=3e-3, frozen_share=0.0
    )
    head, metrics = fit_head(clean, views, config, progress=False)
    before = _recall_at_1(clean, views)
    after = _recall_at_1(head(clean), head(views.reshape(-1, clean.shape[1])).reshape(60, 4, 32))
    assert after > before + 0.3, (before, after)
    assert metrics["final_loss"] < metrics["first_epoch_loss"]
    again, _ = fit_head(clean, views, config, progress=False)
    np.testing.assert_allclose(again.linear, head.linear)
    with pytest.raises(ValueError, match="two catalogue images"):
        fit_head(clean[:1], views[:1], config, progress=False)


@pytest.mark.unit
def test_the_numpy_head_matches_torch_and_its_artefact_round_trips(tmp_path: Path) -> None:
    import torch

    clean, views = _features(images=10, views=2)
    config = EmbeddingConfig(epochs=1, dim=8, hidden=16, frozen_share=0.0)
    head, _ = fit_head(clean, views, config, progress=False)
    x = torch.from_numpy(clean)
    hidden = torch.nn.functional.gelu(
        x @ torch.from_numpy(head.w1).T + torch.from_numpy(head.b1), approximate="tanh"
    )
    expected = x @ torch.from_numpy(head.linear).T + hidden @ torch.from_numpy(head.w2).T
    expected = torch.nn.functional.normalize(expected + torch.from_numpy(head.b2), dim=-1)
    np.testing.assert_allclose(head(clean), expected.numpy(), atol=1e-5)
    calibrator = MatchCalibrator(coef=[1.0, 2.0, 0.5], intercept=-1.0, threshold=0.7)
    assert load_trained_matcher(tmp_path) is None
    folder = save_trained_matcher(head, calibrator, EmbeddingConfig(), {"metrics": {}}, tmp_path)
    loaded = load_trained_matcher(tmp_path)
    assert loaded is not None and loaded.folder == folder
    assert loaded.encoder_name == "photo-embed-v1"
    assert loaded.calibrator.threshold == 0.7
    np.testing.assert_allclose(loaded.head(clean), head(clean))
    assert isinstance(loaded.head, PhotoEmbeddingHead)


@pytest.mark.unit
def test_the_fused_head_mixes_learned_and_frozen_cosines_and_round_trips(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(4)
    stages = rng.normal(size=(6, FROZEN_DIM + 40)).astype(np.float32)
    config = EmbeddingConfig(epochs=1, dim=8, hidden=16, batch=6, frozen_share=0.3)
    head, _ = fit_head(stages, stages[:, None, :], config, progress=False)
    assert head.frozen_share == pytest.approx(0.3) and head.dim == 8 + FROZEN_DIM
    fused = head(stages)
    assert fused.shape == (6, head.dim)
    np.testing.assert_allclose(np.linalg.norm(fused, axis=1), 1.0, atol=1e-5)
    learned = head.learned(stages)
    frozen = stages[:, -FROZEN_DIM:] / np.linalg.norm(stages[:, -FROZEN_DIM:], axis=1)[:, None]
    expected = 0.7 * learned @ learned.T + 0.3 * frozen @ frozen.T
    np.testing.assert_allclose(fused @ fused.T, expected, atol=1e-5)
    head.save(tmp_path / "head.npz")
    loaded = PhotoEmbeddingHead.load(tmp_path / "head.npz")
    assert loaded.frozen_share == pytest.approx(0.3)
    np.testing.assert_allclose(loaded(stages), fused, atol=1e-6)
    unfused = replace(head, frozen_share=0.0)
    assert unfused.dim == 8
    np.testing.assert_allclose(unfused(stages), learned)


@pytest.mark.integration
def test_cli_learns_the_embedding_and_evaluation_uses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOPSIGHT_DATA_DIR", str(tmp_path / "data"))
    shop = tmp_path / "shop"
    for c, category in enumerate(("hats", "shoes")):
        for i in range(12):
            path = shop / category / f"item{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            _image(100 * c + i).save(path)
    app = typer.Typer()
    train_app, eval_app = typer.Typer(), typer.Typer()
    app.add_typer(train_app, name="train")
    app.add_typer(eval_app, name="eval")
    register(train_app, eval_app)
    runner = CliRunner()
    trained = runner.invoke(
        app,
        ["train", "photo-match", "--data", str(shop), "--views", "2", "--epochs", "2", "--json"],
    )
    assert trained.exit_code == 0, trained.output
    model = json.loads(trained.stdout)
    assert Path(model["model"]).name == "photo-embed-v1"
    assert model["encoder"] == "photo-embed-v1" and model["products"] == 24
    assert model["training_metrics"]["images"] == 24
    evaluated = runner.invoke(app, ["eval", "photo-search", "--data", str(shop), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(evaluated.stdout)
    assert report["settings"]["encoder"] == "photo-embed-v1"
    assert report["settings"]["calibrator"]["source"] == model["model"]
    frozen = runner.invoke(app, ["eval", "photo-search", "--data", str(shop), "--frozen", "--json"])
    assert json.loads(frozen.stdout)["settings"]["encoder"] == "efficientnet-lite0-gem"
