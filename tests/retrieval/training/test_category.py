"""Category trainer: what it saves, and which folders it reads as labelled photos."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest

from retrieval.encoders.features import FeatureCache
from retrieval.heads.category import latest_model_dir, load_latest
from retrieval.training.category import load_labelled_images, train_category
from tests.retrieval.heads.test_category import FAST, MeanColourEncoder, make_folder

pytestmark = pytest.mark.unit


def test_a_trained_model_is_saved_with_the_standard_meta(tmp_path: Path) -> None:
    data = load_labelled_images(make_folder(tmp_path / "train", 6, seed=2))
    cache = FeatureCache(tmp_path / "cache", cast(Any, MeanColourEncoder()))
    result = train_category(data, cache, FAST, progress=False)
    (tmp_path / "artifacts" / "category-v1").mkdir(parents=True)  # a run that died half-way
    folder = result.classifier.save(tmp_path / "artifacts")
    meta = json.loads((folder / "meta.json").read_text())
    assert folder.name == "category-v2" and latest_model_dir(tmp_path / "artifacts") == folder
    assert (meta["name"], meta["version"], meta["format_version"]) == ("category", 2, 1)
    assert meta["metrics"]["accuracy"] == round(result.metrics["accuracy"], 4)
    assert meta["created"]
    loaded = load_latest(tmp_path / "artifacts")
    assert loaded is not None and loaded.classes == result.classifier.classes


def test_class_folders_beside_a_catalogue_file_still_label_their_photos(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "shop", 2, seed=0)
    assert load_labelled_images(root).counts() == {"blue": 2, "green": 2, "red": 2}
    (root / "catalogue.json").write_text("[]", encoding="utf-8")
    assert load_labelled_images(root).counts() == {"blue": 2, "green": 2, "red": 2}
    with pytest.raises(FileNotFoundError, match="no labelled images"):
        load_labelled_images(root / "catalogue.json")
