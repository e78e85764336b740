"""Generic classifier evaluation: metrics, per-class report, confusion PNG, labelled CSV reader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from retrieval.evaluation.classification import (
    DataFormatError,
    evaluate_classifier,
    read_labelled_csv,
)
from tests.helpers.tables import write_csv

pytestmark = pytest.mark.unit

TEXTS = ["refund please", "where is my parcel", "cancel it", "refund now", "track order", "stop"]
LABELS = ["refund", "track", "cancel", "refund", "track", "cancel"]


def keyword_classifier(texts: list[str]) -> list[str]:
    """Right on 4 of 6: "stop" and "where is my parcel" carry no keyword it knows."""
    predictions = []
    for text in texts:
        if "refund" in text:
            predictions.append("refund")
        elif "track" in text:
            predictions.append("track")
        elif "cancel" in text:
            predictions.append("cancel")
        else:
            predictions.append("refund")
    return predictions


def test_accuracy_and_macro_f1_match_a_hand_computation() -> None:
    report = evaluate_classifier(keyword_classifier, TEXTS, LABELS, "intent", "toy", progress=False)
    assert report.metrics["accuracy"] == pytest.approx(4 / 6)
    # refund: P=2/4 R=1 F1=2/3; track: P=1 R=1/2 F1=2/3; cancel: P=1 R=1/2 F1=2/3.
    assert report.metrics["macro_f1"] == pytest.approx(2 / 3)
    per_class = report.details["per_class"]
    assert per_class["refund"] == {"precision": 0.5, "recall": 1.0, "f1": 0.6667, "support": 2}
    assert per_class["track"]["recall"] == 0.5


def test_confusion_matrix_rows_are_true_labels() -> None:
    report = evaluate_classifier(keyword_classifier, TEXTS, LABELS, "intent", "toy", progress=False)
    confusion = report.details["confusion_matrix"]
    labels = confusion["labels"]
    assert labels == ["cancel", "refund", "track"]
    matrix = confusion["matrix"]
    assert matrix[labels.index("track")][labels.index("refund")] == 1
    assert matrix[labels.index("cancel")][labels.index("refund")] == 1
    assert sum(map(sum, matrix)) == len(TEXTS)


def test_a_predicted_label_unknown_to_the_data_counts_as_an_error() -> None:
    report = evaluate_classifier(
        lambda texts: ["other"] * len(texts), TEXTS, LABELS, "intent", "toy", progress=False
    )
    assert report.metrics["accuracy"] == 0.0
    assert report.metrics["macro_f1"] == 0.0
    assert "other" in report.details["confusion_matrix"]["labels"]
    assert "other" not in report.details["per_class"]


def test_predictions_are_requested_in_batches(tmp_path: Path) -> None:
    sizes: list[int] = []

    def predict(texts: list[str]) -> list[str]:
        sizes.append(len(texts))
        return keyword_classifier(texts)

    evaluate_classifier(predict, TEXTS, LABELS, "intent", "toy", batch_size=4, progress=False)
    assert sizes == [4, 2]


def test_report_and_confusion_png_are_written(tmp_path: Path) -> None:
    report = evaluate_classifier(
        keyword_classifier, TEXTS, LABELS, "sentiment", "toy", out_dir=tmp_path, progress=False
    )
    png = tmp_path / "sentiment-confusion.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(png) in report.files
    saved = json.loads((tmp_path / "sentiment.json").read_text(encoding="utf-8"))
    assert saved["metrics"]["accuracy"] == pytest.approx(4 / 6)
    assert "macro_f1" in (tmp_path / "sentiment.md").read_text(encoding="utf-8")


def test_a_predict_that_drops_texts_is_refused() -> None:
    with pytest.raises(ValueError, match="returned 1 labels for 6 texts"):
        evaluate_classifier(lambda t: ["refund"], TEXTS, LABELS, "intent", "toy", progress=False)


def test_mismatched_or_empty_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="6 texts but 5 labels"):
        evaluate_classifier(keyword_classifier, TEXTS, LABELS[:5], "intent", "toy")
    with pytest.raises(ValueError, match="nothing to evaluate"):
        evaluate_classifier(keyword_classifier, [], [], "intent", "toy")


def test_csv_reader_takes_named_columns_and_skips_blank_rows(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "data.csv",
        ["id", "instruction", "intent", "lang"],
        [
            ["1", "refund please", "refund", "en"],
            ["2", "", "track", "en"],
            ["3", "退款", "refund", "zh"],
        ],
    )
    rows = read_labelled_csv(path, "instruction", "intent", extra_cols=["lang"])
    assert rows.texts == ["refund please", "退款"]
    assert rows.labels == ["refund", "refund"]
    assert rows.extras == {"lang": ["en", "zh"]}
    assert rows.skipped == 1


def test_csv_reader_names_missing_columns_and_the_ones_present(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "data.csv", ["sentence", "label"], [["good", "positive"]])
    with pytest.raises(DataFormatError, match=r"missing column\(s\) 'text'.*'sentence', 'label'"):
        read_labelled_csv(path, "text", "label")


def test_csv_reader_reads_optional_columns_as_empty(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "data.csv", ["text", "label"], [["good", "positive"]])
    rows = read_labelled_csv(path, "text", "label", optional_cols=["language"])
    assert rows.extras == {"language": [""]}


def test_csv_reader_reports_a_missing_file_and_non_utf8_text(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="no such file"):
        read_labelled_csv(tmp_path / "absent.csv", "text", "label")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("text,label\ncaf\xe9,positive\n".encode("latin-1"))
    with pytest.raises(DataFormatError, match="not UTF-8"):
        read_labelled_csv(latin, "text", "label")


@pytest.mark.data
def test_product_reviews_csv_reads_with_its_own_column_names(shared_data: Path) -> None:
    rows = read_labelled_csv(shared_data / "product-reviews-en" / "dev.csv", "sentence", "label")
    assert len(rows.texts) > 2000
    assert set(rows.labels) == {"positive", "negative"}
