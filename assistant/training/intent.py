"""Training an intent head on a shop's labelled messages (e.g. Bitext's CSV).

Messages are embedded once (cached per text hash) and a multinomial logistic regression is fitted
on a seeded, stratified train / validation / test split. Everything that is chosen — the
regularisation strength, the softmax temperature and the "unsure → fall back" threshold — is
chosen on the validation part; the test part is only scored, and its row numbers are saved in
the artefact so `shopsight eval intent` (`assistant.evaluation.intent`) scores the same
held-out rows later.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from assistant.perception.intent import (
    EMBED_KIND,
    CachedEmbedder,
    ExampleSet,
    TrainedIntentModel,
    load_examples,
)
from assistant.perception.intents import SHOP_INTENTS, to_intent
from retrieval.calibration import (
    INTENT_TEMPERATURE_BOUNDS,
    fit_temperature,
    softmax,
    stratified_group_split,
    threshold_for_abstention,
)
from retrieval.encoders.text import TextEmbedder

_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class IntentTrainConfig:
    """Everything that decides a trained head; recorded in its artefact."""

    seed: int = 0
    validation_fraction: float = 0.15
    test_fraction: float = 0.15
    c_grid: tuple[float, ...] = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
    thresholds: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(20))
    max_iter: int = 2000


@dataclass
class LabelledTexts:
    """Messages with their labels and where they came from (for the artefact's provenance)."""

    texts: list[str]
    labels: list[str]
    source: dict[str, Any] = field(default_factory=dict)


@dataclass
class Split:
    """Row numbers of each part; rows that differ only in case or spacing share a part."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


@dataclass
class IntentTrainResult:
    model: TrainedIntentModel
    metrics: dict[str, float]
    split: Split
    validation_by_c: dict[str, float]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_labelled_texts(path: Path, text_col: str, label_col: str) -> LabelledTexts:
    """Read a labelled CSV; the source records the file's hash so evaluation can recognise it."""
    from retrieval.evaluation.classification import read_labelled_csv

    rows = read_labelled_csv(path, text_col, label_col)
    source = {
        "path": str(path.resolve()),
        "sha256": file_sha256(path),
        "text_col": text_col,
        "label_col": label_col,
        "rows": len(rows.texts),
        "skipped_rows": rows.skipped,
    }
    return LabelledTexts(rows.texts, rows.labels, source)


def stratified_split(
    texts: Sequence[str], labels: Sequence[str], seed: int, validation: float, test: float
) -> Split:
    """Seeded per-label split of the distinct (case- and space-normalised) texts, so a near
    duplicate of a test message is never trained on; every label keeps a training example."""
    keys = [_SPACES.sub(" ", text.strip().lower()) for text in texts]
    return Split(*stratified_group_split(keys, labels, seed, validation, test))


def label_map_for(labels: Sequence[str], examples: ExampleSet) -> dict[str, str]:
    """Shop intent of each trained label that Bitext's mapping knows; labels that already name
    a shop intent map to themselves, any other label to `other` (see `to_intent`)."""
    return {
        label: examples.bitext_mapping[label]
        for label in labels
        if label in examples.bitext_mapping
    }


def out_of_scope_probes(
    label_map: dict[str, str], classes: Sequence[str], examples: ExampleSet
) -> list[str]:
    """Shipped examples of shop intents that no trained label reaches (e.g. greetings for a head
    trained on Bitext): messages the head should be unsure about and hand to the few-shot model."""
    reachable = {to_intent(label, label_map).value for label in classes}
    return [t for t, i in zip(examples.texts, examples.intents, strict=True) if i not in reachable]


def _fit_logistic(
    features: np.ndarray, targets: np.ndarray, c: float, max_iter: int
) -> dict[str, np.ndarray]:
    from sklearn.linear_model import LogisticRegression

    mean = features.mean(axis=0).astype(np.float32)
    scale = (features.std(axis=0) + 1e-6).astype(np.float32)
    model = LogisticRegression(C=c, max_iter=max_iter)
    model.fit((features - mean) / scale, targets)
    return {
        "mean": mean,
        "scale": scale,
        "w0": model.coef_.T.astype(np.float32),
        "b0": model.intercept_.astype(np.float32),
    }


def train_intent(
    data: LabelledTexts,
    embedder: TextEmbedder,
    cache_dir: Path,
    config: IntentTrainConfig | None = None,
    examples: ExampleSet | None = None,
    progress: bool = True,
) -> IntentTrainResult:
    """Fit the head on the train part, choose C / temperature / threshold on validation, score
    the test part once. The returned model is not saved yet (see `TrainedIntentModel.save`)."""
    config = config or IntentTrainConfig()
    examples = examples or load_examples()
    started = time.perf_counter()
    counts = dict(sorted(Counter(data.labels).items()))
    if len(counts) < 2:
        raise ValueError(f"need at least two labels to train on, found {list(counts)}")
    scarce = [label for label, n in counts.items() if n < 3]
    if scarce:
        raise ValueError(f"labels {scarce} have fewer than 3 messages; add more or drop them")
    classes = list(counts)
    targets = np.array([classes.index(label) for label in data.labels])
    split = stratified_split(
        data.texts, data.labels, config.seed, config.validation_fraction, config.test_fraction
    )
    if not len(split.validation):
        raise ValueError("the validation part is empty: add data or raise --validation-fraction")
    cached = CachedEmbedder(embedder, cache_dir)
    vectors = cached.embed_texts(data.texts, kind=EMBED_KIND, progress=progress)

    def logits(arrays: dict[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
        return ((vectors[rows] - arrays["mean"]) / arrays["scale"]) @ arrays["w0"] + arrays["b0"]

    fits = {
        c: _fit_logistic(vectors[split.train], targets[split.train], c, config.max_iter)
        for c in tqdm(config.c_grid, desc="fitting heads", unit="C", disable=not progress)
    }
    validation_by_c = {
        str(c): float(
            np.mean(logits(a, split.validation).argmax(axis=1) == targets[split.validation])
        )
        for c, a in fits.items()
    }
    best_c = max(config.c_grid, key=lambda c: (validation_by_c[str(c)], -abs(np.log(c))))
    arrays = fits[best_c]
    validation_logits = logits(arrays, split.validation)
    label_map = label_map_for(classes, examples)
    model = TrainedIntentModel(embedder, classes, arrays, 1.0, 0.0, label_map)
    probes = out_of_scope_probes(label_map, classes, examples)
    probe_logits = model.logits(cached.embed_texts(probes, kind=EMBED_KIND)) if probes else None
    temperature = fit_temperature(
        validation_logits, targets[split.validation], probe_logits, INTENT_TEMPERATURE_BOUNDS
    )
    model.temperature = temperature
    probe_probabilities = None if probe_logits is None else softmax(probe_logits, temperature)
    threshold, threshold_scores = threshold_for_abstention(
        softmax(validation_logits, temperature),
        targets[split.validation],
        probe_probabilities,
        config.thresholds,
    )
    model.threshold = threshold
    metrics = {
        "validation_accuracy": validation_by_c[str(best_c)],
        "c": best_c,
        "temperature": temperature,
        "threshold": threshold,
        **_test_metrics(model, vectors, targets, split),
        "train_messages": float(len(split.train)),
        "validation_messages": float(len(split.validation)),
        "test_messages": float(len(split.test)),
    }
    if probe_probabilities is not None:
        # In-sample: the probes also chose the temperature and the threshold.
        rejected = probe_probabilities.max(axis=1) < threshold
        metrics["probe_rejection_in_sample"] = float(np.mean(rejected))
    unmapped = [c for c in classes if c not in label_map and c not in SHOP_INTENTS]
    model.meta = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "data": {**data.source, "per_label": counts},
        "settings": asdict(config),
        "split": {
            "seed": config.seed,
            "validation_fraction": config.validation_fraction,
            "test_fraction": config.test_fraction,
            "test_rows": split.test.tolist(),
        },
        "metrics": {k: round(float(v), 4) for k, v in metrics.items()},
        "validation_accuracy_by_c": validation_by_c,
        "threshold_scores": threshold_scores,
        "out_of_scope_probes": len(probes),
        "unmapped_labels": unmapped,
        "seconds": round(time.perf_counter() - started, 1),
    }
    return IntentTrainResult(model, metrics, split, validation_by_c)


def _test_metrics(
    model: TrainedIntentModel, vectors: np.ndarray, targets: np.ndarray, split: Split
) -> dict[str, float]:
    """Test accuracy as deployed (unsure counts as wrong) and without the threshold."""
    if not len(split.test):
        return {}
    from sklearn.metrics import f1_score

    probabilities = model.probabilities(vectors[split.test])
    predicted = probabilities.argmax(axis=1)
    sure = probabilities.max(axis=1) >= model.threshold
    truth = targets[split.test]
    out = {
        "test_accuracy": float(np.mean((predicted == truth) & sure)),
        "test_accuracy_argmax": float(np.mean(predicted == truth)),
        "test_macro_f1": float(
            f1_score(truth, np.where(sure, predicted, -1), average="macro", labels=np.unique(truth))
        ),
        "test_coverage": float(np.mean(sure)),
    }
    return out
