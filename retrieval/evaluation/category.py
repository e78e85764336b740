"""`shopsight eval category`: accuracy, macro-F1, calibration and confusions on labelled photos.

`--test-data` is a separate set of photos; `separate_test_data` refuses the photos the model was
trained on, whose score would say nothing about new photos.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.calibration import expected_calibration_error, negative_log_likelihood
from retrieval.encoders.features import FeatureCache
from retrieval.evaluation.report import EvalReport
from retrieval.heads.category import CategoryClassifier
from retrieval.training.category import LabelledImages

TASK = "category"


def category_metrics(
    true: Sequence[str], predicted: Sequence[str], classes: Sequence[str]
) -> tuple[dict[str, float], list[dict[str, Any]], np.ndarray, list[str]]:
    """Accuracy, macro-F1, the per-class rows and the confusion matrix over the union of labels.

    A true label the model does not know counts as an error of that class, so macro-F1 shows it.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    labels = list(classes) + sorted(set(true) - set(classes))
    present = [label for label in labels if label in set(true)]
    precision, recall, f1, support = precision_recall_fscore_support(
        true, predicted, labels=present, zero_division=0
    )
    rows = [
        {
            "label": label,
            "precision": round(float(p), 4),
            "recall": round(float(r), 4),
            "f1": round(float(f), 4),
            "support": int(s),
        }
        for label, p, r, f, s in zip(present, precision, recall, f1, support, strict=True)
    ]
    metrics = {
        "accuracy": float(accuracy_score(true, predicted)),
        "macro_f1": float(np.mean(f1)) if len(f1) else 0.0,
        "images": float(len(true)),
    }
    return metrics, rows, confusion_matrix(true, predicted, labels=labels), labels


def separate_test_data(classifier: CategoryClassifier, data: LabelledImages) -> None:
    """Refuse test photos inside the data the model was trained on (as its meta.json names it:
    a folder, or a catalogue file)."""
    recorded = classifier.meta.get("data", {}).get("source")
    if not recorded:
        return
    trained_on = Path(recorded).resolve()
    inside = [
        path
        for path in data.paths
        if trained_on == Path(path).resolve() or trained_on in Path(path).resolve().parents
    ]
    if inside or trained_on == Path(data.source).resolve():
        raise ValueError(
            f"{data.source}: {len(inside) or 'all'} of its {len(data.paths)} photos are in "
            f"{recorded}, which the model was trained on; give photos it never saw (e.g. a "
            "validation folder)"
        )


def evaluate_category(
    classifier: CategoryClassifier,
    data: LabelledImages,
    cache: FeatureCache,
    out_dir: Path,
    model_dir: Path | None = None,
    progress: bool = True,
) -> EvalReport:
    """Predict every photo of `data`, then write the report and the confusion-matrix PNG."""
    started = time.perf_counter()
    probabilities = classifier.probabilities(classifier.path_features(data.paths, cache, progress))
    predicted = [classifier.classes[i] for i in probabilities.argmax(axis=1)]
    metrics, rows, matrix, labels = category_metrics(data.labels, predicted, classifier.classes)
    known = np.array([label in classifier.classes for label in data.labels])
    if known.any():
        targets = np.array(
            [classifier.classes.index(x) for x, k in zip(data.labels, known, strict=True) if k]
        )
        metrics["ece"] = expected_calibration_error(probabilities[known], targets)
        metrics["nll"] = negative_log_likelihood(np.log(probabilities[known] + 1e-12), targets)
    out_dir.mkdir(parents=True, exist_ok=True)
    png = plot_confusion(matrix, labels, out_dir / f"{TASK}_confusion.png")
    report = EvalReport(
        task=TASK,
        data=data.source,
        metrics={k: round(v, 4) for k, v in metrics.items()},
        details={
            "per-class report": _per_class_markdown(rows),
            "per_class": rows,
            "confusion_matrix": {"labels": labels, "matrix": matrix.tolist()},
            "unknown_labels": sorted(set(data.labels) - set(classifier.classes)),
        },
        settings={
            "model": str(model_dir) if model_dir else "in memory",
            "classes": classifier.classes,
            "views": list(classifier.views),
            "temperature": round(classifier.temperature, 4),
            "encoder": classifier.encoder_name,
        },
        seconds=round(time.perf_counter() - started, 2),
        files=[str(png)],
    )
    report.write(out_dir)
    return report


def plot_confusion(matrix: np.ndarray, labels: Sequence[str], path: Path) -> Path:
    """Rows are true labels, columns predictions; each cell shows its count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = max(4.0, 0.6 * len(labels) + 2)
    figure, axes = plt.subplots(figsize=(size, size))
    axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    threshold = matrix.max() / 2 if matrix.size else 0
    for (row, column), count in np.ndenumerate(matrix):
        colour = "white" if count > threshold else "black"
        axes.text(column, row, str(count), ha="center", va="center", color=colour, fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def _per_class_markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for row in rows:
        scores = " | ".join(f"{row[key]:.3f}" for key in ("precision", "recall", "f1"))
        lines.append(f"| {row['label']} | {scores} | {row['support']} |")
    return "\n".join(lines)
