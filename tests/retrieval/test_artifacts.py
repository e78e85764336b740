"""One artefact convention: versioned folders, meta.json, atomic writes, and the old layouts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from retrieval import artifacts
from retrieval.heads.alignment import artifact_dir, load_alignment_head
from retrieval.heads.category import load_latest
from retrieval.search.photo import MatcherConfig, load_artefact

pytestmark = pytest.mark.unit


def _write_text(name: str, text: str) -> artifacts.WriteFiles:
    def write(folder: Path) -> None:
        (folder / name).write_text(text, encoding="utf-8")

    return write


def test_each_save_adds_a_version_with_the_standard_meta(tmp_path: Path) -> None:
    first = artifacts.save(tmp_path, "demo", _write_text("a.txt", "1"), {"metrics": {"acc": 0.5}})
    second = artifacts.save(tmp_path, "demo", _write_text("a.txt", "2"), {})
    assert (first.name, second.name) == ("demo-v1", "demo-v2")
    meta = artifacts.read_meta(first)
    assert meta["format_version"] == artifacts.FORMAT_VERSION
    assert (meta["name"], meta["version"], meta["metrics"]) == ("demo", 1, {"acc": 0.5})
    assert meta["created"] and artifacts.read_meta(second)["metrics"] == {}
    assert artifacts.latest(tmp_path, "demo") == second
    assert (second / "a.txt").read_text() == "2"


def test_latest_skips_half_written_folders_and_other_names(tmp_path: Path) -> None:
    artifacts.save(tmp_path, "demo", _write_text("a.txt", "1"), {})
    (tmp_path / "demo-v3").mkdir()  # killed before its meta.json was written
    (tmp_path / ".demo-v4.staging-1").mkdir()
    (tmp_path / "demo-v5.partial").mkdir()
    artifacts.save(tmp_path, "demo-extra", _write_text("a.txt", "x"), {})
    assert artifacts.latest(tmp_path, "demo") == tmp_path / "demo-v1"
    assert artifacts.next_folder(tmp_path, "demo") == tmp_path / "demo-v4"
    assert artifacts.latest(tmp_path / "missing", "demo") is None


def test_a_failed_write_leaves_the_old_folder_and_no_staging(tmp_path: Path) -> None:
    folder = artifacts.write(tmp_path / "demo-v1", "demo", _write_text("a.txt", "old"), {})

    def broken(staging: Path) -> None:
        (staging / "a.txt").write_text("new", encoding="utf-8")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        artifacts.write(folder, "demo", broken, {})
    assert (folder / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo-v1"]


def test_write_replaces_a_folder_in_place(tmp_path: Path) -> None:
    folder = artifacts.write(tmp_path / "demo-v1", "demo", _write_text("a.txt", "old"), {})
    artifacts.write(folder, "demo", _write_text("b.txt", "new"), {})
    assert sorted(p.name for p in folder.iterdir()) == ["b.txt", "meta.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo-v1"]


def test_a_missing_meta_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"meta\.json"):
        artifacts.read_meta(tmp_path)


def _old_meta(folder: Path, meta: dict[str, Any]) -> None:
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text(json.dumps(meta), encoding="utf-8")


def test_a_category_model_saved_by_the_previous_code_loads(tmp_path: Path) -> None:
    folder = tmp_path / "category-v2"
    _old_meta(
        folder,
        {
            "created": "2024-06-18T10:00:00+0000",
            "metrics": {"accuracy": 0.9},
            "format_version": 1,
            "classes": ["dress", "shoe"],
            "temperature": 1.5,
            "views": ["full", "flip"],
            "encoder": "tiny",
            "features": {"short_side": 256, "bands": 3},
        },
    )
    np.savez(
        folder / "head.npz",
        mean=np.zeros(4, np.float32),
        scale=np.ones(4, np.float32),
        w0=np.eye(4, 2, dtype=np.float32),
        b0=np.zeros(2, np.float32),
    )
    (tmp_path / "category-v1.partial").mkdir()
    classifier = load_latest(tmp_path)
    assert classifier is not None and classifier.classes == ["dress", "shoe"]
    assert classifier.temperature == 1.5 and classifier.views == ("full", "flip")
    probabilities = classifier.probabilities([np.array([[3.0, 0.0, 0.0, 0.0]])] * 2)
    assert probabilities.argmax() == 0


def test_an_alignment_head_saved_by_the_previous_code_loads_and_the_next_is_v2(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "align-v1"
    _old_meta(
        folder,
        {
            "config": {"seed": 0},
            "name": "align-v1",
            "text_embedder": "hash",
            "image_encoder": "tiny",
            "metrics": {"best_epoch": 3},
            "fingerprint": "abc",
        },
    )
    np.savez(
        folder / "weights.npz",
        mean=np.zeros(3, np.float32),
        w_out=np.eye(2, 3, dtype=np.float32),
        b_out=np.zeros(2, np.float32),
    )
    head = load_alignment_head(tmp_path, "hash", "tiny")
    assert head is not None and head.dim == 2
    assert np.allclose(head.image_to_text_space(np.array([[2.0, 0.0, 0.0]])), [[1.0, 0.0]])
    assert artifact_dir(tmp_path) == tmp_path / "align-v2"


def test_a_photo_match_calibrator_saved_by_the_previous_code_loads(tmp_path: Path) -> None:
    folder = tmp_path / "photo-match-v1"
    _old_meta(
        folder,
        {
            "format": "photo-match-v1",
            "features": ["top1_similarity", "margin", "category_agrees"],
            "config": {
                "views": ["full"],
                "candidates": 40,
                "category_bonus": 0.0,
                "vote_products": 10,
                "vote_temperature": 0.05,
            },
            "metrics": {"auc": 0.9},
        },
    )
    np.savez(
        folder / "calibrator.npz",
        coef=np.asarray([1.0, 2.0, 3.0]),
        intercept=np.asarray([-1.5]),
        threshold=np.asarray([0.7]),
    )
    loaded = load_artefact(tmp_path)
    assert loaded is not None
    calibrator, config = loaded
    assert calibrator.coef == [1.0, 2.0, 3.0] and calibrator.threshold == 0.7
    assert calibrator.source == str(folder)
    assert config == MatcherConfig(views=("full",), candidates=40)
