"""Scoring the intent models on held-out labelled messages (`shopsight eval intent`).

The trained head is scored on the very test rows it held out when the file is the one it was
trained on, so it is never scored on its own training rows, or on every row of a separate test
file; the few-shot model and the deployed combination (head, then few-shot fallback) are scored
on shop intents.

Out of scope is `other`: a shop-intent model rejects a message by answering `other` (on its
merits or for lack of confidence). Each report on shop intents says how many held-out messages
labelled `other` (for Bitext, the intents no shop intent fits, such as accounts and newsletters)
it rejected, how many in-scope ones it wrongly rejected, and, given a file of messages that fit
no intent at all (`--out-of-scope`), how many of those it rejected.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assistant.perception.intent import (
    EMBED_KIND,
    CachedEmbedder,
    FewShotIntentModel,
    IntentClassifier,
    IntentModel,
    TrainedIntentModel,
    load_examples,
)
from assistant.perception.intents import SHOP_INTENTS, Intent
from assistant.training.intent import LabelledTexts, stratified_split
from retrieval.evaluation.classification import DataFormatError
from retrieval.evaluation.report import EvalReport

OUT_OF_SCOPE = Intent.OTHER.value


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


def test_file_rows(data: LabelledTexts, trained: TrainedIntentModel | None) -> HeldOut:
    """Every row of a separate labelled file. The file the model was trained on is refused:
    all its rows include the training rows (its held-out rows are what `--data` scores)."""
    name = Path(data.source["path"]).name
    if not data.texts:
        raise ValueError(f"{data.source['path']}: no rows with both a text and a label")
    if trained is not None and trained.meta.get("data", {}).get("sha256") == data.source["sha256"]:
        raise ValueError(
            f"{data.source['path']} is the file {trained.name} was trained on: scoring all of "
            "it would count its training rows; pass it as --data to score the rows it held out"
        )
    model = f", a file {trained.name} was not trained on" if trained else ""
    return HeldOut(np.arange(len(data.texts)), f"every row of {name} ({len(data.texts)}){model}")


def read_messages(path: Path) -> list[str]:
    """Messages one a line (UTF-8); blank lines and lines starting with `#` are skipped."""
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file")
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    messages = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    if not messages:
        raise DataFormatError(f"{path}: no messages (one a line; # starts a comment)")
    return messages


def rejection_metrics(
    gold: Sequence[str], predicted: Sequence[str], off_topic_predicted: Sequence[str] = ()
) -> dict[str, float]:
    """How often `other` was answered: for the messages labelled `other` (rejected as they
    should be), for the in-scope ones (wrongly rejected) and for off-topic messages."""
    rejected = np.array([p == OUT_OF_SCOPE for p in predicted], dtype=bool)
    out_of_scope = np.array([g == OUT_OF_SCOPE for g in gold], dtype=bool)
    metrics: dict[str, float] = {}
    if out_of_scope.any():
        metrics["out_of_scope_rejected"] = float(rejected[out_of_scope].mean())
        metrics["out_of_scope_messages"] = float(out_of_scope.sum())
    if (~out_of_scope).any():
        metrics["in_scope_rejected"] = float(rejected[~out_of_scope].mean())
        metrics["in_scope_messages"] = float((~out_of_scope).sum())
    if off_topic_predicted:
        metrics["off_topic_rejected"] = float(
            np.mean([p == OUT_OF_SCOPE for p in off_topic_predicted])
        )
        metrics["off_topic_messages"] = float(len(off_topic_predicted))
    return metrics


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
    off_topic: Sequence[str] = (),
) -> dict[str, EvalReport]:
    """Score each of `models` (`fewshot`, `trained`, `combined`) on the held-out rows.

    `trained` is scored on the file's own labels (unsure counts as wrong); `fewshot` and
    `combined` (the deployed classifier: head, few-shot fallback) on shop intents, with the
    rejection figures of `rejection_metrics` (`off_topic`: messages that fit no intent).
    """
    from retrieval.evaluation.classification import evaluate_classifier

    texts = [data.texts[i] for i in held_out.rows]
    labels = [data.labels[i] for i in held_out.rows]
    cached = CachedEmbedder(fewshot.embedder, cache_dir)
    every = list(dict.fromkeys([*texts, *off_topic]))
    vectors = dict(
        zip(every, cached.embed_texts(every, kind=EMBED_KIND, progress=progress), strict=True)
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
        recording, predicted = _recorded(predict)
        report = evaluate_classifier(
            recording,
            texts,
            gold,
            f"intent-{name}",
            data.source["path"],
            out_dir=out_dir,
            progress=progress,
            settings={"model": model_name, "held_out": held_out.note},
        )
        if name != "trained":
            answered = predict(list(off_topic)) if off_topic else []
            report.metrics.update(rejection_metrics(gold, predicted, answered))
            accepted = [
                (t, a) for t, a in zip(off_topic, answered, strict=True) if a != OUT_OF_SCOPE
            ]
            if accepted:
                report.details["off_topic_answered"] = dict(accepted)
            if out_dir is not None:
                report.write(out_dir)
        reports[name] = report
    return reports


def _recorded(
    predict: Callable[[list[str]], list[str]],
) -> tuple[Callable[[list[str]], list[str]], list[str]]:
    """`predict` that also keeps its answers, for the figures the classification report lacks."""
    answers: list[str] = []

    def recording(batch: list[str]) -> list[str]:
        labels = predict(batch)
        answers.extend(labels)
        return labels

    return recording, answers


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
