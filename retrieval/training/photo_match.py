"""Fitting the photo matcher's confidence on simulated customer photos of a training catalogue.

Every product's first image, degraded by the seeded simulation protocol, is asked twice: with
the product listed (label: top-1 right) and with it removed (label: wrong, whatever comes
first). A logistic model on (top-1 similarity, margin, category agreement) is fitted to those
rows and the "not sure" threshold is the lowest one at which confident answers to listed
products reach the target precision and at most the allowed share of unlisted ones are
confident; the result is saved as `photo-match-vN/` (`retrieval.artifacts`), or with the learned
embedding as `photo-embed-vN/`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from retrieval import artifacts
from retrieval.encoders.features import FeatureCache
from retrieval.evaluation.photo_search import (
    Catalogue,
    QueryOutcome,
    catalogue_index,
    decision_metrics,
    run_queries,
    simulated_queries,
)
from retrieval.evaluation.report import ranking_metrics
from retrieval.heads.photo_matcher import (
    ARTEFACT,
    CALIBRATION_FEATURES,
    WEIGHTS_FILE,
    MatchCalibrator,
)
from retrieval.search.photo import (
    CategoryPredictor,
    ImageEmbedder,
    MatcherConfig,
    PhotoMatcher,
    PhotoSearchResult,
)
from retrieval.simulate import SimulationProtocol


def calibrate_photo_match(
    encoder: ImageEmbedder,
    catalogue: Catalogue,
    cache: FeatureCache,
    query_cache: FeatureCache,
    protocol: SimulationProtocol,
    config: MatcherConfig,
    target_precision: float = 0.98,
    category_predictor: CategoryPredictor | None = None,
    progress: bool = True,
    max_absent: float = 0.05,
) -> tuple[MatchCalibrator, dict[str, float]]:
    """Fit the confidence on simulated queries of a (training) catalogue; returns its metrics."""
    index = catalogue_index(catalogue, cache, progress)
    matcher = PhotoMatcher(index, encoder, category_predictor, config=config)
    queries = simulated_queries(catalogue, query_cache, protocol, config.views, progress)
    twins = catalogue.twins()
    outcomes = run_queries(matcher, queries, progress=progress, twins=twins)
    calibrator, metrics = fit_calibrator(calibration_rows(outcomes), target_precision, max_absent)
    matcher.calibrator = calibrator
    refitted = run_queries(matcher, queries, progress=False, twins=twins)
    metrics.update(ranking_metrics([o.rank for o in outcomes], ks=(1, 5, 10)))
    metrics.update(decision_metrics(refitted))
    return calibrator, {k: round(float(v), 4) for k, v in metrics.items()}


@dataclass(frozen=True)
class CalibrationRows:
    """Confidence inputs of each query asked with its product listed (`present`, labelled by
    whether the first match is right) and with it removed (`absent`: any answer is wrong)."""

    present: np.ndarray
    right: np.ndarray
    absent: np.ndarray


def calibration_rows(outcomes: Sequence[QueryOutcome]) -> CalibrationRows:
    """The rows of every outcome, present and absent."""
    return CalibrationRows(
        present=np.asarray([calibration_row(o.present) for o in outcomes], dtype=np.float64),
        right=np.asarray([1.0 if o.rank == 1 else 0.0 for o in outcomes]),
        absent=np.asarray([calibration_row(o.absent) for o in outcomes], dtype=np.float64),
    )


def calibration_row(result: PhotoSearchResult) -> list[float]:
    """The calibrator's inputs as `match` computed them for this result."""
    if not result.matches:
        return [0.0] * len(CALIBRATION_FEATURES)
    first = result.matches[0]
    return [first.similarity, result.margin, float(bool(first.category_agrees))]


def fit_calibrator(
    rows: CalibrationRows, target_precision: float = 0.98, max_absent: float = 0.05
) -> tuple[MatchCalibrator, dict[str, float]]:
    """Logistic regression of "the first match is right" on present and absent rows, and the
    lowest threshold at which confident answers to listed products reach `target_precision`
    while at most `max_absent` of unlisted ones are confident: the most coverage allowed.

    The two targets are kept apart, not pooled: pooled 1:1 with the absent rows, a 0.98
    precision target asks for almost no confident answers (0.3 % on 3,000 products)."""
    design = np.vstack([rows.present, rows.absent])
    labels = np.concatenate([rows.right, np.zeros(len(rows.absent))])
    if len(set(labels.tolist())) < 2:
        raise ValueError("calibration needs both right and wrong top-1 matches")
    weights = logistic_fit(design, labels)
    present = _sigmoid(weights[0] + rows.present @ weights[1:])
    absent = _sigmoid(weights[0] + rows.absent @ weights[1:])
    threshold = threshold_for_targets(present, rows.right, absent, target_precision, max_absent)
    confident = present >= threshold
    probabilities = np.concatenate([present, absent])
    calibrator = MatchCalibrator(
        coef=[round(float(w), 6) for w in weights[1:]],
        intercept=round(float(weights[0]), 6),
        threshold=round(threshold, 6),
    )
    metrics = {
        "rows": float(len(labels)),
        "positives": float(labels.sum()),
        "auc": roc_auc(probabilities, labels),
        "brier": float(np.mean((probabilities - labels) ** 2)),
        "threshold": threshold,
        "precision_at_threshold": float(rows.right[confident].mean()) if confident.any() else 1.0,
        "coverage_at_threshold": float(confident.mean()),
        "absent_at_threshold": float(np.mean(absent >= threshold)) if len(absent) else 0.0,
    }
    return calibrator, metrics


def threshold_for_targets(
    present: np.ndarray,
    right: np.ndarray,
    absent: np.ndarray,
    target_precision: float,
    max_absent: float,
) -> float:
    """The lowest probability threshold meeting both targets (the highest present probability,
    i.e. almost never confident, when none does)."""
    candidates = np.unique(present)
    order = np.argsort(-present, kind="stable")
    precision_from_top = np.cumsum(right[order]) / np.arange(1, len(order) + 1)
    # Answers kept at each candidate threshold, ties included (all rows at that value).
    kept = len(present) - np.searchsorted(np.sort(present), candidates, "left")
    absent_kept = len(absent) - np.searchsorted(np.sort(absent), candidates, "left")
    meets = (precision_from_top[kept - 1] >= target_precision) & (
        absent_kept / max(len(absent), 1) <= max_absent
    )
    return float(candidates[np.argmax(meets)] if meets.any() else candidates[-1])


def logistic_fit(rows: np.ndarray, labels: np.ndarray, l2: float = 0.01) -> np.ndarray:
    """(intercept, coefficients) by Newton's method, deterministic and without sklearn. The
    small L2 penalty keeps weights finite when right and wrong separate perfectly; 1.0 underfit
    (2-fold Brier 0.132 vs 0.054 at 0.01 on the clothing-small/train calibration rows)."""
    design = np.column_stack([np.ones(len(rows)), rows])
    penalty = l2 * np.diag([0.0] + [1.0] * rows.shape[1])
    weights = np.zeros(design.shape[1])
    for _ in range(100):
        probabilities = _sigmoid(design @ weights)
        gradient = design.T @ (probabilities - labels) + penalty @ weights
        hessian = design.T @ (design * (probabilities * (1 - probabilities))[:, None]) + penalty
        step = np.linalg.solve(hessian + 1e-9 * np.eye(len(weights)), gradient)
        weights -= step
        if np.abs(step).max() < 1e-10:
            break
    return weights


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with tied scores sharing their mean rank)."""
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    ranks = (sums / counts)[inverse]
    positives = float(labels.sum())
    negatives = float(len(labels) - positives)
    return float(
        (ranks[labels == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives)
    )


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(logits, -50.0, 50.0)))


def save_artefact(
    calibrator: MatchCalibrator, config: MatcherConfig, meta: dict[str, Any], artifacts_dir: Path
) -> Path:
    """Write a new `photo-match-vN/`: weights as .npz, everything else in meta.json; returns it."""

    def write_weights(folder: Path) -> None:
        write_calibrator(folder, calibrator)

    payload = {
        "format": ARTEFACT,
        "features": list(CALIBRATION_FEATURES),
        "config": asdict(config),
        **meta,
    }
    return artifacts.save(artifacts_dir, ARTEFACT, write_weights, payload)


def write_calibrator(folder: Path, calibrator: MatchCalibrator) -> None:
    """The calibrator's weights as `folder/calibrator.npz` (read by `load_calibrator`)."""
    np.savez(
        folder / WEIGHTS_FILE,
        coef=np.asarray(calibrator.coef),
        intercept=np.asarray([calibrator.intercept]),
        threshold=np.asarray([calibrator.threshold]),
    )
