"""`shopsight train align` and `shopsight eval text-to-image`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from assistant.cli.common import (
    ArtifactsOutOption,
    JsonOption,
    ReportsOutOption,
    print_json,
    user_errors,
)
from assistant.settings import Settings
from knowledge_base.images import ImageRejected
from retrieval.heads.alignment import AlignmentMismatch
from retrieval.training.align import AlignmentConfig, FeatureFn

console = Console()
_DEFAULTS = AlignmentConfig()

DataOption = Annotated[
    Path,
    typer.Option(
        "--data",
        help="A catalogue (JSON/JSONL/CSV) whose products have a title and local images, or an "
        "image folder with one sub-folder per class (the class name is then the title).",
    ),
]
EmbedderOption = Annotated[
    str | None,
    typer.Option(help="Text embedder whose space to align to (default: SHOPSIGHT_TEXT_EMBEDDER)."),
]
SeedOption = Annotated[int, typer.Option(help="Seed of every split and of training.")]
HiddenOption = Annotated[
    int, typer.Option(min=0, help="Hidden units of the MLP head; 0 = a linear map.")
]
EpochsOption = Annotated[
    int, typer.Option(min=1, max=5000, help="Most epochs; early stopping usually ends sooner.")
]
FlipOption = Annotated[
    bool, typer.Option("--flip/--no-flip", help="Also train on mirrored photos (augmentation).")
]


def register(train_app: typer.Typer, eval_app: typer.Typer) -> None:
    """Add `train align` and `eval text-to-image` to the CLI."""
    train_app.command("align")(train_align_command)
    eval_app.command("text-to-image")(eval_text_to_image_command)


def image_feature_functions(settings: Settings, flip: bool) -> tuple[FeatureFn, list[FeatureFn]]:
    """GeM features from the shared cache, plus the mirrored view when augmenting."""
    from PIL import ImageOps

    from retrieval.encoders.features import FeatureCache
    from retrieval.encoders.registry import get_image_encoder

    cache = FeatureCache(settings.data_dir / "cache", get_image_encoder())

    def full(paths: Sequence[Path]) -> np.ndarray:
        return cache.features(paths)

    def mirrored(paths: Sequence[Path]) -> np.ndarray:
        return cache.features(paths, view=ImageOps.mirror, view_name="flip")

    return full, [mirrored] if flip else []


def _config(hidden: int, epochs: int, seed: int) -> AlignmentConfig:
    return AlignmentConfig(hidden=hidden, epochs=epochs, seed=seed)


def train_align_command(
    data: DataOption,
    embedder: EmbedderOption = None,
    hidden: HiddenOption = _DEFAULTS.hidden,
    epochs: EpochsOption = _DEFAULTS.epochs,
    seed: SeedOption = _DEFAULTS.seed,
    flip: FlipOption = True,
    out: ArtifactsOutOption = None,
    as_json: JsonOption = False,
) -> None:
    """Train the image→text alignment head on all of DATA and save it as a new `align-vN`.

    `shopsight kb search TEXT` then also finds products by their photos. Measure how well it
    generalises with `shopsight eval text-to-image` (which trains on a split, not on all).
    """
    from retrieval.encoders.image import ImageEncoder
    from retrieval.encoders.registry import get_text_embedder
    from retrieval.heads.alignment import artifact_dir
    from retrieval.training.align import fit_alignment, load_alignment_data

    settings = Settings()
    with user_errors(ImageRejected, AlignmentMismatch):
        dataset = load_alignment_data(data)
        text_embedder = get_text_embedder(embedder or settings.text_embedder, settings.cache_dir)
        features, views = image_feature_functions(settings, flip)
        head, result = fit_alignment(
            dataset,
            text_embedder,
            features,
            _config(hidden, epochs, seed),
            extra_views=views,
            image_encoder=ImageEncoder.name,
            progress=not as_json,
        )
        folder = head.save(artifact_dir(out or settings.artifacts_dir))
    if as_json:
        print_json({"model": str(folder), **head.meta})
        return
    described = dataset.describe()
    console.print(
        f"Trained on {described['products']} products, {described['images']} images "
        f"({described['distinct_titles']} distinct titles) for {text_embedder.name!r}: "
        f"best epoch {result.best_epoch} of {result.epochs_run}, "
        f"temperature {result.temperature:.3f}, {result.seconds:.1f} s"
    )
    if result.val_metrics:
        console.print(
            f"validation ({result.val_pairs} pairs) text→image "
            + ", ".join(f"{name} {value:.4f}" for name, value in result.val_metrics.items())
        )
    console.print(f"Saved {folder}")


def eval_text_to_image_command(
    data: DataOption,
    test_data: Annotated[
        Path | None,
        typer.Option(help="Measure on this data instead of a split of --data (train on all)."),
    ] = None,
    embedder: EmbedderOption = None,
    test_fraction: Annotated[
        float, typer.Option(min=0.05, max=0.9, help="Share of products held out for testing.")
    ] = 0.2,
    folds: Annotated[
        int, typer.Option(min=1, max=20, help="k-fold cross-validation instead of one split.")
    ] = 1,
    image_weight: Annotated[
        float, typer.Option(min=0.0, help="Weight of the image ranking in the fusion (text: 1).")
    ] = 1.0,
    hidden: HiddenOption = _DEFAULTS.hidden,
    epochs: EpochsOption = _DEFAULTS.epochs,
    seed: SeedOption = _DEFAULTS.seed,
    flip: FlipOption = True,
    out: ReportsOutOption = None,
    as_json: JsonOption = False,
) -> None:
    """Text→image recall@1/@10 on held-out products, against text-only search and random."""
    from retrieval.encoders.image import ImageEncoder
    from retrieval.encoders.registry import get_text_embedder
    from retrieval.evaluation.text_to_image import TextToImageOptions, evaluate_text_to_image
    from retrieval.training.align import load_alignment_data

    settings = Settings()
    with user_errors(ImageRejected, AlignmentMismatch):
        dataset = load_alignment_data(data)
        held_out = load_alignment_data(test_data) if test_data else None
        text_embedder = get_text_embedder(embedder or settings.text_embedder, settings.cache_dir)
        features, views = image_feature_functions(settings, flip)
        report = evaluate_text_to_image(
            dataset,
            text_embedder,
            features,
            _config(hidden, epochs, seed),
            TextToImageOptions(
                test_fraction=test_fraction, folds=folds, seed=seed, image_weight=image_weight
            ),
            extra_views=views,
            image_encoder=ImageEncoder.name,
            test_data=held_out,
            progress=not as_json,
        )
        report.write(out or settings.data_dir / "reports")
    if as_json:
        print_json(report.model_dump(mode="json"))
        return
    _print_comparison(report.metrics, f"Text→image: {report.data}")
    console.print(
        f"{int(report.metrics['queries'])} held-out queries; wrote " + ", ".join(report.files)
    )


def _print_comparison(metrics: dict[str, float], title: str) -> None:
    """One row per metric, one column per source: narrow enough for any terminal."""
    from retrieval.evaluation.text_to_image import SOURCES

    names = sorted(
        {key.split(".", 1)[1] for key in metrics if "." in key},
        key=lambda name: (name.startswith("class"), name),
    )
    table = Table("metric", *SOURCES, title=title)
    for name in names:
        cells = [metrics.get(f"{source}.{name}") for source in SOURCES]
        table.add_row(name, *("-" if c is None else f"{c:.4f}" for c in cells))
    console.print(table)
