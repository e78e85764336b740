"""Evaluation of any text classifier (intent, sentiment, ...) on a labelled CSV.

The classifier is just `predict(texts) -> labels`, so every model, rule set or remote service is
measured the same way: accuracy, macro-F1, a per-class report and a confusion-matrix PNG.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from retrieval.evaluation.report import EvalReport

Predict = Callable[[list[str]], list[str]]


class DataFormatError(ValueError):
    """An evaluation file is missing or malformed; the message names the file and the fix."""


@dataclass
class LabelledRows:
    """Texts with their labels (and any extra named columns) read from one or more CSV files."""

    texts: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    extras: dict[str, list[str]] = field(default_factory=dict)
    skipped: int = 0


def read_labelled_csv(
    path: Path,
    text_col: str,
    label_col: str,
    extra_cols: Sequence[str] = (),
    optional_cols: Sequence[str] = (),
) -> LabelledRows:
    """Read the named columns; rows with an empty text or label are skipped and counted.

    `extra_cols` must exist; `optional_cols` are read as "" when the file lacks them.
    """
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file")
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            columns = list(reader.fieldnames or [])
            missing = [c for c in (text_col, label_col, *extra_cols) if c not in columns]
            if missing:
                wanted = ", ".join(repr(c) for c in missing)
                present = ", ".join(repr(c) for c in columns) or "no header"
                raise DataFormatError(
                    f"{path}: missing column(s) {wanted}; the file has {present} "
                    "(choose them with the column options)"
                )
            rows = LabelledRows(extras={c: [] for c in (*extra_cols, *optional_cols)})
            for record in reader:
                text = (record.get(text_col) or "").strip()
                label = (record.get(label_col) or "").strip()
                if not text or not label:
                    rows.skipped += 1
                    continue
                rows.texts.append(text)
                rows.labels.append(label)
                for name in rows.extras:
                    rows.extras[name].append((record.get(name) or "").strip())
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"{path}: not UTF-8 text ({exc.reason}); save it as UTF-8") from exc
    except csv.Error as exc:
        raise DataFormatError(f"{path}: malformed CSV ({exc})") from exc
    return rows


def evaluate_classifier(
    predict: Predict,
    texts: Sequence[str],
    labels: Sequence[str],
    task: str,
    data: str,
    *,
    out_dir: Path | None = None,
    batch_size: int = 64,
    progress: bool = True,
    settings: dict[str, Any] | None = None,
) -> EvalReport:
    """Run `predict` over `texts` in batches and score it against `labels`.

    With `out_dir`, the report (`<task>.json`, `<task>.md`) and `<task>-confusion.png` are
    written there.
    """
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    if not texts:
        raise ValueError("nothing to evaluate: no labelled texts")
    started = time.perf_counter()
    predictions: list[str] = []
    with tqdm(total=len(texts), desc=f"eval {task}", unit="text", disable=not progress) as bar:
        for start in range(0, len(texts), batch_size):
            batch = list(texts[start : start + batch_size])
            predicted = list(predict(batch))
            if len(predicted) != len(batch):
                raise ValueError(f"predict returned {len(predicted)} labels for {len(batch)} texts")
            predictions += [str(p) for p in predicted]
            bar.update(len(batch))
    report = classification_report(list(labels), predictions, task, data)
    report.seconds = round(time.perf_counter() - started, 3)
    report.settings = dict(settings or {}, batch_size=batch_size)
    if out_dir is not None:
        png = out_dir / f"{task}-confusion.png"
        details = report.details["confusion_matrix"]
        save_confusion_matrix(details["matrix"], details["labels"], png, title=f"{task} ({data})")
        report.files.append(str(png))
        report.write(out_dir)
    return report


def classification_report(
    labels: list[str], predictions: list[str], task: str, data: str
) -> EvalReport:
    """Accuracy, macro-F1 and per-class figures; predicted labels unknown to the data count as
    errors and get their own confusion-matrix column."""
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    classes = sorted(set(labels) | set(predictions))
    gold = sorted(set(labels))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predictions, labels=gold, zero_division=0
    )
    per_class = {
        name: {
            "precision": round(float(p), 4),
            "recall": round(float(r), 4),
            "f1": round(float(f), 4),
            "support": int(s),
        }
        for name, p, r, f, s in zip(gold, precision, recall, f1, support, strict=True)
    }
    matrix = confusion_matrix(labels, predictions, labels=classes)
    return EvalReport(
        task=task,
        data=data,
        metrics={
            "accuracy": float(accuracy_score(labels, predictions)),
            "macro_f1": float(sum(f1) / len(gold)),
            "examples": float(len(labels)),
            "classes": float(len(gold)),
        },
        details={
            "per_class": per_class,
            "confusion_matrix": {"labels": classes, "matrix": matrix.tolist()},
        },
    )


def save_confusion_matrix(
    matrix: Sequence[Sequence[int]], labels: Sequence[str], path: Path, title: str = ""
) -> Path:
    """Row-normalised heat map (rows = true label) with the raw counts written in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    counts = np.asarray(matrix, dtype=np.int64)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    side = max(4.0, 0.45 * len(labels) + 2.0)
    figure, axes = plt.subplots(figsize=(side + 1.0, side))
    try:
        image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
        axes.set_xticks(range(len(labels)), labels=list(labels), rotation=60, ha="right")
        axes.set_yticks(range(len(labels)), labels=list(labels))
        axes.set_xlabel("predicted")
        axes.set_ylabel("true")
        axes.set_title(title)
        if len(labels) <= 30:
            for (row, col), value in np.ndenumerate(counts):
                if value:
                    colour = "white" if shares[row, col] > 0.5 else "black"
                    axes.text(col, row, str(value), ha="center", va="center", color=colour, size=7)
        figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of the true label")
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=120)
    finally:
        plt.close(figure)
    return path
