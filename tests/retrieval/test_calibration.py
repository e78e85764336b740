"""Shared numerics: softmax, temperature, calibration error, splits and threshold choice."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.calibration import (
    INTENT_TEMPERATURE_BOUNDS,
    expected_calibration_error,
    fit_temperature,
    group_shuffle_split,
    group_split,
    negative_log_likelihood,
    softmax,
    stratified_group_split,
    stratified_split,
    threshold_for_abstention,
    threshold_for_precision,
)

pytestmark = pytest.mark.unit


def test_softmax_rows_sum_to_one_and_temperature_flattens_them() -> None:
    logits = np.array([[1000.0, 0.0, -1000.0], [1.0, 2.0, 3.0]])
    probabilities = softmax(logits)
    assert np.allclose(probabilities.sum(axis=1), 1.0) and np.isfinite(probabilities).all()
    assert softmax(logits[1:], 10.0).max() < softmax(logits[1:]).max()


def test_temperature_that_generated_the_labels_is_recovered_and_lowers_the_nll() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3000, 4)) * 4
    targets = np.array([rng.choice(4, p=p) for p in softmax(logits, 2.0)])
    temperature = fit_temperature(logits, targets)
    assert temperature == pytest.approx(2.0, rel=0.15)
    assert negative_log_likelihood(logits, targets, temperature) < negative_log_likelihood(
        logits, targets
    )


def test_outliers_raise_the_fitted_temperature() -> None:
    logits = np.array([[5.0, 0.0], [0.0, 5.0]] * 20)
    targets = np.array([0, 1] * 20)
    outliers = np.array([[4.0, 0.0]] * 10)
    alone = fit_temperature(logits, targets, bounds=INTENT_TEMPERATURE_BOUNDS)
    exposed = fit_temperature(logits, targets, outliers, INTENT_TEMPERATURE_BOUNDS)
    assert exposed > alone


def test_ece_is_zero_when_confidence_equals_accuracy() -> None:
    probabilities = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(probabilities, np.array([0, 1])) == 0.0
    assert expected_calibration_error(probabilities, np.array([1, 0])) == pytest.approx(1.0)


def test_stratified_split_keeps_every_class_on_both_sides_and_repeats_with_its_seed() -> None:
    targets = np.array([0] * 10 + [1] * 2 + [2] * 30)
    train, held = stratified_split(targets, 0.2, seed=1)
    assert set(targets[train]) == set(targets[held]) == {0, 1, 2}
    assert not set(train) & set(held) and len(train) + len(held) == len(targets)
    again = stratified_split(targets, 0.2, seed=1)
    assert np.array_equal(train, again[0]) and np.array_equal(held, again[1])


def test_stratified_group_split_never_separates_rows_of_one_key() -> None:
    keys = [f"k{i % 20}" for i in range(80)]
    labels = [f"l{(i % 20) % 4}" for i in range(80)]
    train, validation, test = stratified_group_split(keys, labels, 2, 0.2, 0.2)
    parts = [{keys[r] for r in part} for part in (train, validation, test)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert {labels[r] for r in train} == set(labels)
    with pytest.raises(ValueError, match="fractions"):
        stratified_group_split(keys, labels, 0, 0.5, 0.5)


def test_group_split_holds_out_whole_groups_and_nothing_from_few_groups() -> None:
    groups = [f"p{i % 10}" for i in range(50)]
    train, held = group_split(groups, 0.2, seed=0)
    assert len(held) and not {groups[r] for r in train} & {groups[r] for r in held}
    few = [f"p{i % 5}" for i in range(20)]
    assert len(group_split(few, 0.2, seed=0)[1]) == 0


def test_group_shuffle_split_holds_out_groups_or_stratified_rows() -> None:
    labels = ["positive", "negative"] * 20
    grouped = [f"g{i % 8}" for i in range(40)]
    kept, held = group_shuffle_split(labels, grouped, 0.25, seed=0)
    assert not {grouped[i] for i in kept} & {grouped[i] for i in held}
    kept, held = group_shuffle_split(labels, [""] * 40, 0.25, seed=0)
    assert {labels[i] for i in held} == {"positive", "negative"} and len(held) == 10


def test_precision_threshold_is_the_lowest_meeting_the_target() -> None:
    probabilities = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    labels = np.array([1.0, 1.0, 0.0, 1.0, 0.0])
    threshold, precision, coverage = threshold_for_precision(probabilities, labels, 0.75)
    assert (threshold, precision, coverage) == (0.6, 0.75, 1.0)
    assert threshold_for_precision(probabilities, labels, 1.0)[0] == 0.8


def test_abstention_threshold_trades_accuracy_for_rejected_probes() -> None:
    validation = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]])
    targets = np.array([0, 1, 0])
    probes = np.array([[0.65, 0.35]])
    chosen, scores = threshold_for_abstention(validation, targets, probes, (0.0, 0.68, 0.95))
    assert chosen == 0.68 and set(scores) == {"0.0", "0.68", "0.95"}
    without, _ = threshold_for_abstention(validation, targets, None, (0.0, 0.68, 0.95))
    assert without == 0.68
