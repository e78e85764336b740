"""Training and evaluating an intent head on a shop's labelled messages (e.g. Bitext's CSV).

Messages are embedded once (cached per text hash) and a multinomial logistic regression is fitted
on a seeded, stratified train / validation / test split. Everything that is chosen — the
regularisation strength, the softmax temperature and the "unsure → fall back" threshold — is
chosen on the validation part; the test part is only scored, and its row numbers are saved in
the artefact so `shopsight eval intent` scores the same held-out rows later.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from assistant.perception.intent import (
    EMBED_KIND,
    CachedEmbedder,
    ExampleSet,
    FewShotIntentModel,
    IntentClassifier,
    IntentModel,
    TrainedIntentModel,
    fit_temperature,
    load_examples,
    softmax,
)
from assistant.perception.intents import SHOP_INTENTS, to_intent
from retrieval.encoders.text import TextEmbedder
from retrieval.evaluation.report import EvalReport

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
    if validation < 0 or test < 0 or validation + test >= 1:
        raise ValueError("validation and test fractions must be ≥ 0 and sum to less than 1")
    groups: dict[str, list[int]] = {}
    for row, text in enumerate(texts):
        groups.setdefault(_SPACES.sub(" ", text.strip().lower()), []).append(row)
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
    return Split(train, held, tested)


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


def choose_threshold(
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
    temperature = fit_temperature(validation_logits, targets[split.validation], probe_logits)
    model.temperature = temperature
    probe_probabilities = None if probe_logits is None else softmax(probe_logits, temperature)
    threshold, threshold_scores = choose_threshold(
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


@dataclass
class HeldOut:
    """The rows an evaluation may score, and a sentence saying where they come from."""

    rows: np.ndarray
    note: str


def held_out_rows(
    data: LabelledTexts,
    trained: TrainedIntentModel | None,
    split_seed: int | None,
    fractions: tuple[float, float] = (0.15, 0.15),
) -> HeldOut:
    """The trained model's own test rows when `data` is the file it was trained on (so it is
    never scored on its training rows), else the test part of a seeded split of `data`."""
    trained_on = trained.meta.get("data", {}) if trained else {}
    if trained is not None and trained_on.get("sha256") == data.source["sha256"]:
        columns = (trained_on.get("text_col"), trained_on.get("label_col"))
        if columns != (data.source["text_col"], data.source["label_col"]):
            raise ValueError(
                f"{trained.name} was trained on this file with columns {columns[0]!r} / "
                f"{columns[1]!r}; evaluate it with the same --text-col / --label-col"
            )
        recorded = trained.meta["split"]
        if split_seed is not None and split_seed != recorded["seed"]:
            raise ValueError(
                f"{trained.name} was trained on this file with split seed {recorded['seed']}; "
                "another seed would score it on rows it was trained on"
            )
        rows = np.array(recorded["test_rows"], dtype=np.int64)
        if not len(rows):
            raise ValueError(f"{trained.name} was trained without a test part (--test-fraction 0)")
        return HeldOut(rows, f"the test split {trained.name} held out (seed {recorded['seed']})")
    seed = 0 if split_seed is None else split_seed
    split = stratified_split(data.texts, data.labels, seed, *fractions)
    return HeldOut(split.test, f"test part of a seeded split (seed {seed}, {fractions[1]:.0%})")


def shop_labels(labels: Sequence[str], mapping: dict[str, str]) -> list[str] | None:
    """Gold labels as shop intents (through `mapping`, or labels that are shop intents already);
    None when some label is neither, as the few-shot model cannot be scored on it then."""
    mapped = [mapping.get(label, label) for label in labels]
    return mapped if all(m in SHOP_INTENTS for m in mapped) else None


def applicable_models(labels: Sequence[str], trained: TrainedIntentModel | None) -> list[str]:
    """Every model that can be scored on these labels: shop-intent models need labels that map
    to shop intents, the trained ones need a trained head."""
    mapping = trained.label_map if trained else load_examples().bitext_mapping
    mappable = shop_labels(labels, mapping) is not None
    models = ["fewshot"] if mappable else []
    if trained is not None:
        models += ["trained", "combined"] if mappable else ["trained"]
    if not models:
        raise ValueError(
            "nothing to evaluate: the labels are neither shop intents nor Bitext intents and no "
            "intent model is trained (run `shopsight train intent` first)"
        )
    return models


def evaluate_intent(
    data: LabelledTexts,
    models: Sequence[str],
    fewshot: FewShotIntentModel,
    trained: TrainedIntentModel | None,
    cache_dir: Path,
    held_out: HeldOut,
    out_dir: Path | None = None,
    progress: bool = True,
) -> dict[str, EvalReport]:
    """Score each of `models` (`fewshot`, `trained`, `combined`) on the held-out rows.

    `trained` is scored on the file's own labels (unsure counts as wrong); `fewshot` and
    `combined` (the deployed classifier: head, few-shot fallback) on shop intents.
    """
    from retrieval.evaluation.classification import evaluate_classifier

    texts = [data.texts[i] for i in held_out.rows]
    labels = [data.labels[i] for i in held_out.rows]
    cached = CachedEmbedder(fewshot.embedder, cache_dir)
    vectors = dict(
        zip(texts, cached.embed_texts(texts, kind=EMBED_KIND, progress=progress), strict=True)
    )

    def embedded(batch: list[str]) -> np.ndarray:
        return np.stack([vectors[t] for t in batch])

    mapping = trained.label_map if trained else load_examples().bitext_mapping
    gold_intents = shop_labels(labels, mapping)
    reports: dict[str, EvalReport] = {}
    for name in models:
        if name in ("trained", "combined") and trained is None:
            raise ValueError(f"no trained intent model to evaluate as {name!r}")
        if name in ("fewshot", "combined") and gold_intents is None:
            raise ValueError(
                "the labels are neither shop intents nor Bitext intents, so shop-intent "
                f"predictions ({name}) cannot be scored on them"
            )
        if name == "fewshot":
            predict, gold, model_name = _labeller(fewshot, embedded), gold_intents, fewshot.name
        elif name == "trained" and trained is not None:
            predict, gold, model_name = _labeller(trained, embedded), labels, trained.name
        elif name == "combined" and trained is not None:
            classifier = IntentClassifier(fewshot, trained)

            def predict(batch: list[str], c: IntentClassifier = classifier) -> list[str]:
                return [r.intent.value for r in c.decide_vectors(embedded(batch))]

            gold, model_name = gold_intents, f"{trained.name} → {fewshot.name}"
        else:
            raise ValueError(f"unknown intent model {name!r}; choose fewshot, trained or combined")
        assert gold is not None
        reports[name] = evaluate_classifier(
            predict,
            texts,
            gold,
            f"intent-{name}",
            data.source["path"],
            out_dir=out_dir,
            progress=progress,
            settings={"model": model_name, "held_out": held_out.note},
        )
    return reports


def _labeller(
    model: IntentModel, embedded: Callable[[list[str]], np.ndarray]
) -> Callable[[list[str]], list[str]]:
    """`predict(texts) -> labels` under the model's threshold rule: unsure → `other`."""

    def predict(batch: list[str]) -> list[str]:
        probabilities = model.probabilities(embedded(batch))
        best = probabilities.argmax(axis=1)
        sure = probabilities.max(axis=1) >= model.threshold
        return [model.classes[b] if s else "other" for b, s in zip(best, sure, strict=True)]

    return predict
