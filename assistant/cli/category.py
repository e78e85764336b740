"""`shopsight train category` and `shopsight eval category`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from assistant.cli.common import (
    ArtifactsOutOption,
    JsonOption,
    ReportsOutOption,
    emit_report,
    print_json,
    user_errors,
)
from assistant.settings import Settings
from knowledge_base.images import ImageRejected

if TYPE_CHECKING:
    from retrieval.encoders.features import FeatureCache
    from retrieval.heads.category import FeatureSettings

console = Console(soft_wrap=True)

DataOption = Annotated[
    Path,
    typer.Option(
        "--data",
        help="An image folder with one sub-folder per category, or a catalogue (JSON/JSONL/CSV) "
        "whose products have a category and a local image.",
    ),
]


def register(train_app: typer.Typer, eval_app: typer.Typer) -> None:
    """Add `train category` and `eval category` to the CLI."""
    train_app.command("category")(train_category_command)
    eval_app.command("category")(eval_category_command)


def _encoder(features: FeatureSettings) -> Any:
    from retrieval.heads.category import banded_encoder

    return banded_encoder(features)


def _feature_cache(settings: Settings, features: FeatureSettings) -> FeatureCache:
    """Features live under the data dir, shared by training, evaluation and ingestion."""
    from retrieval.encoders.features import FeatureCache

    return FeatureCache(settings.data_dir / "cache", _encoder(features))


def train_category_command(
    data: DataOption,
    seed: Annotated[int, typer.Option(help="Seed of the split and of training.")] = 0,
    validation_fraction: Annotated[
        float,
        typer.Option(min=0.05, max=0.5, help="Share of each category held out for calibration."),
    ] = 0.15,
    epochs: Annotated[
        int, typer.Option(min=1, max=1000, help="Training epochs of the head (at least 300 steps).")
    ] = 15,
    hidden: Annotated[
        int, typer.Option(min=0, help="Hidden units of the MLP head; 0 = logistic regression.")
    ] = 512,
    out: ArtifactsOutOption = None,
    as_json: JsonOption = False,
) -> None:
    """Train the category classifier on labelled photos and save a new `category-vN` artefact."""
    from retrieval.training.category import (
        HeadConfig,
        TrainConfig,
        load_labelled_images,
        train_category,
    )

    settings = Settings()
    with user_errors(ImageRejected):
        labelled = load_labelled_images(data)
        config = TrainConfig(
            seed=seed,
            validation_fraction=validation_fraction,
            head=HeadConfig(hidden=hidden, epochs=epochs),
        )
        cache = _feature_cache(settings, config.features)
        result = train_category(labelled, cache, config, progress=not as_json)
        folder = result.classifier.save(out or settings.artifacts_dir)
    if as_json:
        print_json({"model": str(folder), "metrics": result.metrics, "report": result.report})
        return
    console.print(result.report)
    metrics = result.metrics
    console.print(
        f"held-out accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}, "
        f"ECE {metrics['ece_before_calibration']:.4f} → {metrics['ece']:.4f} "
        f"(temperature {metrics['temperature']:.3f})"
    )
    console.print(f"Saved {folder}")


def eval_category_command(
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Labelled photos (a folder of category sub-folders, or a catalogue), every one "
            "scored.",
        ),
    ] = None,
    test_data: Annotated[
        Path | None,
        typer.Option(
            "--test-data",
            help="Like --data, but refused when its photos are in the data the model was "
            "trained on.",
        ),
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(help="A `category-vN` folder (default: the newest under the artefacts)."),
    ] = None,
    out: ReportsOutOption = None,
    as_json: JsonOption = False,
) -> None:
    """Evaluate the category classifier: accuracy, macro-F1, per-class report, confusion matrix."""
    from retrieval.evaluation.category import evaluate_category, separate_test_data
    from retrieval.heads.category import CategoryClassifier, latest_model_dir
    from retrieval.training.category import load_labelled_images

    settings = Settings()
    path = test_data or data
    with user_errors(ImageRejected):
        if path is None or (data is not None and test_data is not None):
            raise ValueError(
                "give one of --data PATH and --test-data PATH (photos the model never saw)"
            )
        folder = model or latest_model_dir(settings.artifacts_dir)
        if folder is None:
            raise FileNotFoundError(
                f"no category model under {settings.artifacts_dir}: "
                "run `shopsight train category --data PATH` first"
            )
        classifier = CategoryClassifier.load(folder)
        labelled = load_labelled_images(path)
        if test_data is not None:
            separate_test_data(classifier, labelled)
        report = evaluate_category(
            classifier,
            labelled,
            _feature_cache(settings, classifier.features),
            out or settings.data_dir / "reports",
            model_dir=folder,
            progress=not as_json,
        )

    def render() -> None:
        table = Table("class", "precision", "recall", "F1", "support", title=f"Category: {path}")
        for row in report.details["per_class"]:
            table.add_row(
                row["label"],
                f"{row['precision']:.3f}",
                f"{row['recall']:.3f}",
                f"{row['f1']:.3f}",
                str(row["support"]),
            )
        console.print(table)
        console.print(
            "  ".join(
                f"{name} {value:.4f}" for name, value in report.metrics.items() if name != "images"
            )
            + f"  ({int(report.metrics['images'])} images)"
        )

    emit_report(report, as_json, render, console)
