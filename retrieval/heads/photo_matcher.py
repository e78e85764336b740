"""The photo matcher's confidence model: P(the top product is the one in the photo).

A logistic model over (top-1 similarity, margin to the runner-up, category agreement) and the
"not sure" threshold above which the assistant names the product. `retrieval.training.
photo_match` fits one per shop and saves it as `photo-match-vN/`; the matcher itself
(`retrieval.search.photo`) loads the newest, or uses the built-in one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from retrieval import artifacts

ARTEFACT = "photo-match"
CALIBRATION_FEATURES = ("top1_similarity", "margin", "category_agrees")
WEIGHTS_FILE = "calibrator.npz"


class MatchCalibrator(BaseModel):
    """Logistic model of P(top-1 right) from `CALIBRATION_FEATURES`, and the "not sure" line."""

    coef: list[float]
    intercept: float
    threshold: float
    source: str = "built-in"

    def probability(self, features: Sequence[float]) -> float:
        logit = self.intercept + float(np.dot(self.coef, features))
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, logit))))


# `shopsight train photo-match --data clothing-small/train` (341 products, simulation seed
# 20240618, target precision 0.9), rounded; used when no artefact was trained for this shop.
DEFAULT_CALIBRATOR = MatchCalibrator(coef=[25.09, 43.08, 0.74], intercept=-22.22, threshold=0.3)


def latest_calibrator_dir(artifacts_dir: Path) -> Path | None:
    """The newest complete `photo-match-vN/` under `artifacts_dir`, or None."""
    folder = artifacts.latest(artifacts_dir, ARTEFACT)
    return folder if folder is not None and (folder / WEIGHTS_FILE).is_file() else None


def load_calibrator(folder: Path) -> tuple[MatchCalibrator, dict[str, Any]]:
    """The calibrator saved in `folder` and the folder's meta.json."""
    meta = artifacts.read_meta(folder)
    with np.load(folder / WEIGHTS_FILE) as weights:
        calibrator = MatchCalibrator(
            coef=[float(c) for c in weights["coef"]],
            intercept=float(weights["intercept"][0]),
            threshold=float(weights["threshold"][0]),
            source=str(folder),
        )
    return calibrator, meta
