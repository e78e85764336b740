"""Photo-match trainer: the calibrator it fits and the `photo-match-vN` folders it saves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from retrieval.search.photo import MatchCalibrator, MatcherConfig, load_artefact
from retrieval.training.photo_match import CalibrationRows, fit_calibrator, roc_auc, save_artefact

pytestmark = pytest.mark.unit


def test_roc_auc_counts_ties_as_half() -> None:
    assert roc_auc(np.array([0.1, 0.9]), np.array([0.0, 1.0])) == 1.0
    assert roc_auc(np.array([0.5, 0.5]), np.array([0.0, 1.0])) == 0.5


def test_each_calibration_is_a_new_version_and_the_newest_loads(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = np.column_stack([rng.uniform(0.5, 1.0, 200), rng.uniform(0, 0.2, 200), np.ones(200)])
    labels = (rows[:, 0] + rows[:, 1] > 0.85).astype(float)
    wrong = rows[labels == 0]
    calibrator, metrics = fit_calibrator(
        CalibrationRows(rows, labels, wrong), target_precision=0.9, max_absent=0.2
    )
    first = save_artefact(
        MatchCalibrator(coef=[0, 0, 0], intercept=0, threshold=0.5),
        MatcherConfig(),
        {"metrics": {}},
        tmp_path,
    )
    second = save_artefact(calibrator, MatcherConfig(), {"metrics": metrics}, tmp_path)
    assert (first.name, second.name) == ("photo-match-v1", "photo-match-v2")
    meta = json.loads((second / "meta.json").read_text())
    assert (meta["name"], meta["version"]) == ("photo-match", 2)
    assert meta["metrics"]["auc"] == metrics["auc"]
    loaded = load_artefact(tmp_path)
    assert loaded is not None and loaded[0].coef == calibrator.coef
    assert loaded[0].source == str(second)
