"""Shared numerics of every trained head: softmax, temperature, calibration error, splits, and
the choice of an "unsure" threshold.

The category, intent, sentiment, alignment and photo-match trainers all need the same few
operations; written once here they cannot drift apart, and a seed gives the same split in every
trainer that uses it. Everything is numpy (scipy and sklearn are imported where a function
needs them), so inference code can import this module without torch.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Hashable, Sequence

import numpy as np

# Temperature search ranges: the category head's logits never needed more than 0.05-20, the
# intent heads' cosine-similarity scores need the wider 0.001-100.
CATEGORY_TEMPERATURE_BOUNDS = (0.05, 20.0)
INTENT_TEMPERATURE_BOUNDS = (1e-3, 100.0)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of `logits / temperature`, in float64 and stable for large logits."""
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return np.asarray(exp / exp.sum(axis=1, keepdims=True))


def negative_log_likelihood(
    logits: np.ndarray, targets: np.ndarray, temperature: float = 1.0
) -> float:
    """Mean −log P(target) under `softmax(logits, temperature)`."""
    probabilities = softmax(logits, temperature)
    return float(-np.mean(np.log(probabilities[np.arange(len(targets)), targets] + 1e-12)))


def fit_temperature(
    logits: np.ndarray,
    targets: np.ndarray,
    outlier_logits: np.ndarray | None = None,
    bounds: tuple[float, float] = CATEGORY_TEMPERATURE_BOUNDS,
) -> float:
    """The temperature that minimises the negative log-likelihood of `targets` (Guo et al.,
    2017); it changes no prediction, only how sure the probabilities are.

    With `outlier_logits` (inputs none of the classes fits), their cross-entropy to the uniform
    distribution is added, as in outlier exposure (Hendrycks et al., 2019): without it a
    perfectly separated validation set drives the temperature to zero and every input, a
    greeting included, would get a confidence of 1.
    """
    from scipy.optimize import minimize_scalar

    def loss(log_t: float) -> float:
        temperature = float(np.exp(log_t))
        value = negative_log_likelihood(logits, targets, temperature)
        if outlier_logits is not None and len(outlier_logits):
            value += float(-np.mean(np.log(softmax(outlier_logits, temperature) + 1e-12)))
        return value

    low, high = bounds
    result = minimize_scalar(loss, bounds=(np.log(low), np.log(high)), method="bounded")
    return float(np.exp(result.x))


def expected_calibration_error(
    probabilities: np.ndarray, targets: np.ndarray, bins: int = 15
) -> float:
    """Mean |accuracy − confidence| over equal-width confidence bins, weighted by bin size."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == targets
    edges = np.linspace(0.0, 1.0, bins + 1)
    error = 0.0
    for low, high in itertools.pairwise(edges):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            error += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(error)


def stratified_split(
    targets: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded per-class split (train, held out): every class keeps at least one example on
    each side."""
    rng = np.random.default_rng(seed)
    train: list[int] = []
    held: list[int] = []
    for label in np.unique(targets):
        members = rng.permutation(np.flatnonzero(targets == label))
        cut = min(len(members) - 1, max(1, round(fraction * len(members))))
        held += members[:cut].tolist()
        train += members[cut:].tolist()
    return np.sort(np.array(train)), np.sort(np.array(held))


def stratified_group_split(
    keys: Sequence[Hashable], labels: Sequence[str], seed: int, validation: float, test: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded (train, validation, test) row numbers: rows with the same key always share a part,
    groups are split per label (a group's label is its most common one), and every label keeps
    a training group."""
    if validation < 0 or test < 0 or validation + test >= 1:
        raise ValueError("validation and test fractions must be ≥ 0 and sum to less than 1")
    groups: dict[Hashable, list[int]] = {}
    for row, key in enumerate(keys):
        groups.setdefault(key, []).append(row)
    by_label: dict[str, list[list[int]]] = {}
    for rows in groups.values():
        label = Counter(labels[r] for r in rows).most_common(1)[0][0]
        by_label.setdefault(label, []).append(rows)
    rng = np.random.default_rng(seed)
    parts: tuple[list[int], list[int], list[int]] = ([], [], [])
    for label in sorted(by_label):
        members = by_label[label]
        order = rng.permutation(len(members))
        n_test = min(round(test * len(members)), len(members) - 1)
        n_validation = min(round(validation * len(members)), len(members) - 1 - n_test)
        for position, index in enumerate(order):
            part = 2 if position < n_test else 1 if position < n_test + n_validation else 0
            parts[part].extend(members[index])
    train, held, tested = (np.array(sorted(p), dtype=np.int64) for p in parts)
    return train, held, tested


def group_split(
    groups: Sequence[str], fraction: float, seed: int, min_groups: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, held out), split by group so no group is on both sides; nothing is
    held out from fewer than `min_groups` groups, where one held-out group would be most of
    the signal."""
    unique = sorted(set(groups))
    held = (
        max(1, round(fraction * len(unique))) if fraction > 0 and len(unique) >= min_groups else 0
    )
    order = np.random.default_rng(seed).permutation(len(unique))
    held_out = {unique[i] for i in order[:held]}
    rows = np.arange(len(groups))
    mask = np.array([g in held_out for g in groups], dtype=bool)
    return rows[~mask], rows[mask]


def group_shuffle_split(
    labels: Sequence[str], groups: Sequence[str], fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """(kept, held out) row indices: whole groups held out when every row has one of 2+ groups,
    else a label-stratified row split (unstratified when a label has a single row).
    Deterministic for given data, fraction and seed (sklearn's GroupShuffleSplit and
    train_test_split)."""
    from sklearn.model_selection import GroupShuffleSplit, train_test_split

    rows = np.arange(len(labels))
    distinct = set(groups)
    if len(distinct) >= 2 and "" not in distinct:
        splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
        kept, held = next(splitter.split(rows, groups=list(groups)))
    else:
        stratify = list(labels) if min(Counter(labels).values()) >= 2 else None
        kept, held = train_test_split(
            rows, test_size=fraction, random_state=seed, stratify=stratify
        )
    return sorted(int(i) for i in kept), sorted(int(i) for i in held)


def threshold_for_precision(
    probabilities: np.ndarray, labels: np.ndarray, target_precision: float
) -> tuple[float, float, float]:
    """(threshold, precision, share of positives kept) for the lowest threshold meeting the target;
    the highest probability when none does."""
    order = np.argsort(-probabilities, kind="stable")
    hits = np.cumsum(labels[order])
    precision = hits / np.arange(1, len(order) + 1)
    positives = max(float(labels.sum()), 1.0)
    meets = np.where(precision >= target_precision)[0]
    cut = int(meets.max()) if len(meets) else 0
    # Ties: the threshold is a probability value, so every row at that value is kept.
    threshold = float(probabilities[order[cut]])
    kept = probabilities >= threshold
    precision_kept = float(labels[kept].mean())
    return threshold, precision_kept, float(labels[kept].sum() / positives)


def threshold_for_abstention(
    probabilities: np.ndarray,
    targets: np.ndarray,
    probe_probabilities: np.ndarray | None,
    thresholds: Sequence[float],
) -> tuple[float, dict[str, float]]:
    """The threshold that maximises (accuracy on validation when unsure counts as wrong) +
    (share of out-of-scope probes that the head is unsure about). Without probes, the highest
    threshold that costs at most one point of validation accuracy."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == targets
    scores: dict[str, float] = {}
    for threshold in thresholds:
        accuracy = float(np.mean(correct & (confidence >= threshold)))
        if probe_probabilities is not None and len(probe_probabilities):
            rejected = float(np.mean(probe_probabilities.max(axis=1) < threshold))
            scores[str(threshold)] = accuracy + rejected
        else:
            scores[str(threshold)] = accuracy
    if probe_probabilities is not None and len(probe_probabilities):
        best = max(thresholds, key=lambda t: (scores[str(t)], -t))
    else:
        top = max(scores.values())
        best = max(t for t in thresholds if scores[str(t)] >= top - 0.01)
    return float(best), scores
