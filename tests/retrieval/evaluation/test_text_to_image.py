"""The text-to-image evaluation: metric definitions, baselines, fusion, splits, report and CLI."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from assistant.commands import alignment as alignment_commands
from PIL import Image
from typer.testing import CliRunner

from retrieval.encoders.text import HashEmbedder
from retrieval.evaluation.text_to_image import (
    TextToImageOptions,
    class_metrics,
    evaluate_text_to_image,
    instance_metrics,
    min_ranks,
    random_class_metrics,
    random_instance_metrics,
    reciprocal_rank_fusion,
    tie_broken_order,
)
from retrieval.training.align import AlignmentConfig, AlignmentDataError, load_alignment_data
from tests.conftest import TinyImageEncoder, distinct_colours, make_image
from tests.helpers.cli import train_eval_app

COLOUR_NAMES = ["crimson", "lime", "azure", "amber", "violet"]
FAST = AlignmentConfig(hidden=0, epochs=60, patience=15, lr=1e-2, batch_size=64)


def tiny_features(paths: Sequence[Path]) -> np.ndarray:
    """Test double for the CNN features: an 8×8 thumbnail."""
    return TinyImageEncoder().embed_images([Image.open(p) for p in paths])


def make_colour_folder(root: Path, per_class: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for name, colour in zip(COLOUR_NAMES, distinct_colours(len(COLOUR_NAMES)), strict=True):
        for index in range(per_class):
            shade = tuple(int(np.clip(c + rng.integers(-25, 26), 0, 255)) for c in colour)
            make_image(root / name / f"{index}.png", shade)  # type: ignore[arg-type]
    return root


def make_catalogue(root: Path) -> Path:
    """Ten products, two photos each; descriptions repeat the title's words."""
    records = []
    for index, colour in enumerate(distinct_colours(10)):
        images = []
        for view in range(2):
            make_image(root / "img" / f"{index}-{view}.png", colour, size=(32 + 8 * view, 32))
            images.append(f"img/{index}-{view}.png")
        name = f"item{index} model{index}"
        records.append(
            {"id": f"p{index}", "title": name, "description": f"the {name}", "images": images}
        )
    (root / "shop.json").write_text(json.dumps(records))
    return root / "shop.json"


@pytest.mark.unit
def test_instance_and_class_metrics_follow_their_definitions() -> None:
    ordered = np.array([[False, True, False], [True, False, False]])
    assert instance_metrics(ordered, (1, 2)) == {
        "recall@1": [0.0, 1.0],
        "recall@2": [1.0, 1.0],
        "mrr": [0.5, 1.0],
    }
    hits = np.array([[True, False, True, False]])
    metrics = class_metrics(hits, (1,))
    assert metrics["class_hit@1"] == [1.0]
    assert metrics["class_precision@10"] == [0.5]
    assert metrics["class_map"] == [pytest.approx((1 + 2 / 3) / 2)]


@pytest.mark.unit
def test_random_baselines_match_a_simulation() -> None:
    rng = np.random.default_rng(0)
    n, m, trials = 30, 6, 20_000
    relevant = np.zeros((trials, n), dtype=bool)
    relevant[:, :m] = True
    shuffled = np.take_along_axis(relevant, rng.random((trials, n)).argsort(axis=1), axis=1)
    simulated = {k: float(np.mean(v)) for k, v in class_metrics(shuffled, (1, 10)).items()}
    exact = {k: v[0] for k, v in random_class_metrics(np.array([m]), n, (1, 10)).items()}
    for name, value in exact.items():
        assert simulated[name] == pytest.approx(value, abs=0.01), name
    single = np.eye(n, dtype=bool)[rng.integers(0, n, trials)]
    simulated_single = {k: float(np.mean(v)) for k, v in instance_metrics(single, (1, 10)).items()}
    for name, value in random_instance_metrics(n, (1, 10)).items():
        assert simulated_single[name] == pytest.approx(value, abs=0.01), name
    assert exact["class_hit@10"] == pytest.approx(1 - math.comb(24, 10) / math.comb(30, 10))


@pytest.mark.unit
def test_ties_share_a_rank_in_fusion_so_the_other_source_decides() -> None:
    text = np.array([[0.5, 0.5, 0.1]])
    image = np.array([[0.2, 0.9, 0.3]])
    assert min_ranks(text).tolist() == [[1, 1, 3]]
    fused = reciprocal_rank_fusion([image, text], [1.0, 1.0])
    assert fused.argmax() == 1
    orders = {tuple(tie_broken_order(text, np.random.default_rng(s))[0]) for s in range(20)}
    assert orders == {(0, 1, 2), (1, 0, 2)}


@pytest.mark.unit
def test_head_beats_random_on_held_out_photos_of_a_colour_folder(tmp_path: Path) -> None:
    data = load_alignment_data(make_colour_folder(tmp_path / "photos", per_class=12))
    report = evaluate_text_to_image(
        data,
        HashEmbedder(),
        tiny_features,
        FAST,
        TextToImageOptions(test_fraction=0.25),
        progress=False,
    )
    m = report.metrics
    assert m["queries"] == 15 and m["gallery"] == 15
    assert m["cross_modal.class_map"] > m["random.class_map"] + 0.3
    assert m["cross_modal.class_hit@1"] >= 0.8
    assert m["text_only.class_hit@1"] == 1.0  # class-name titles: text matching is exact
    assert m["random.recall@1"] == pytest.approx(1 / 15, abs=1e-4)
    assert m["fused.recall@1"] >= m["text_only.recall@1"] - 0.2
    written = report.write(tmp_path / "reports")
    markdown = written[1].read_text()
    assert "| cross_modal |" in markdown and "What limits" not in markdown
    assert "what limits it" in markdown


@pytest.mark.unit
def test_folds_test_every_product_once_and_catalogue_images_are_pooled(tmp_path: Path) -> None:
    data = load_alignment_data(make_catalogue(tmp_path))
    report = evaluate_text_to_image(
        data, HashEmbedder(), tiny_features, FAST, TextToImageOptions(folds=2), progress=False
    )
    assert report.metrics["queries"] == 10
    assert report.metrics["text_only.recall@1"] == 1.0  # descriptions repeat the titles
    assert len(report.details["training per fold"]) == 2
    assert report.metrics["random.recall@10"] == 1.0  # five products per fold
    with pytest.raises(AlignmentDataError, match="too few"):
        evaluate_text_to_image(
            data, HashEmbedder(), tiny_features, FAST, TextToImageOptions(folds=6)
        )


@pytest.mark.unit
def test_separate_test_data_is_measured_after_training_on_all_of_data(tmp_path: Path) -> None:
    train = load_alignment_data(make_colour_folder(tmp_path / "train", per_class=8, seed=1))
    test = load_alignment_data(make_colour_folder(tmp_path / "test", per_class=3, seed=2))
    report = evaluate_text_to_image(
        train, HashEmbedder(), tiny_features, FAST, test_data=test, progress=False
    )
    assert report.metrics["queries"] == 15
    assert report.details["training per fold"][0]["train_pairs"] + report.details[
        "training per fold"
    ][0]["val_pairs"] == len(train.items)
    assert report.metrics["cross_modal.class_map"] > report.metrics["random.class_map"]


@pytest.mark.unit
def test_eval_command_writes_reports_and_prints_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOPSIGHT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(
        alignment_commands, "image_feature_functions", lambda settings, flip: (tiny_features, [])
    )
    folder = make_colour_folder(tmp_path / "photos", per_class=6)
    args = ["eval", "text-to-image", "--data", str(folder), "--embedder", "hash", "--hidden", "0"]
    runner = CliRunner()
    result = runner.invoke(
        train_eval_app(alignment_commands.register), [*args, "--epochs", "10", "--json"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["task"] == "text-to-image" and payload["metrics"]["queries"] == 6
    assert (tmp_path / "data" / "reports" / "text-to-image.md").is_file()
    table = runner.invoke(
        train_eval_app(alignment_commands.register),
        [*args, "--epochs", "5", "--out", str(tmp_path / "r")],
    )
    assert table.exit_code == 0 and "cross_modal" in table.output
    assert (tmp_path / "r" / "text-to-image.json").is_file()
    bad = runner.invoke(train_eval_app(alignment_commands.register), [*args, "--folds", "20"])
    assert bad.exit_code == 1 and "too few" in bad.output and "Traceback" not in bad.output


@pytest.mark.data
@pytest.mark.integration
@pytest.mark.slow
def test_clothing_validation_titles_find_their_class(shared_data: Path, tmp_path: Path) -> None:
    """Real CNN features (shared cache) and the real E5 embedder on clothing-small/validation."""
    from retrieval.encoders.features import FeatureCache
    from retrieval.encoders.registry import get_image_encoder, get_text_embedder

    data = load_alignment_data(shared_data / "clothing-small" / "validation")
    cache = FeatureCache(Path("data/cache"), get_image_encoder())
    report = evaluate_text_to_image(
        data,
        get_text_embedder("e5"),
        lambda paths: cache.features(paths, progress=False),
        AlignmentConfig(),
        TextToImageOptions(test_fraction=0.3),
        progress=False,
    )
    m = report.metrics
    assert m["cross_modal.class_map"] > 2 * m["random.class_map"]
    assert m["cross_modal.class_hit@1"] > 0.5
