"""`shopsight train photo-match` (the learned photo embedding and its confidence) and
`shopsight eval photo-search`."""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from assistant.cli.common import (
    ArtifactsOutOption,
    JsonOption,
    ReportsOutOption,
    emit_report,
    err_console,
    print_json,
    user_errors,
)
from assistant.settings import Settings
from knowledge_base.images import ImageRejected
from retrieval.simulate import DEFAULT_SEED

console = Console()

CatalogueOption = Annotated[
    Path,
    typer.Option(
        "--data",
        help="Catalogue: an image folder with one sub-folder per category (each image is a "
        "product) or a catalogue file (JSON/JSONL/CSV) whose products list local images.",
    ),
]
CategoryOption = Annotated[
    bool,
    typer.Option(
        "--category-model/--no-category-model",
        help="Use the newest trained category model (when there is one) for category "
        "agreement; otherwise the nearest catalogue products vote.",
    ),
]
EXIT_USAGE = 2


def register(train_app: typer.Typer, eval_app: typer.Typer) -> None:
    """Add `train photo-match` and `eval photo-search` to the CLI."""
    train_app.command("photo-match")(train_photo_match_command)
    eval_app.command("photo-search")(eval_photo_search_command)


def _caches(settings: Settings, encoder: Any = None) -> tuple[Any, Any]:
    """Catalogue features (the shared cache, default decode size) and query features (decoded at
    the app's image size, as a customer upload is), of `encoder` (default: the frozen one); a
    trained encoder's are its head over cached stage features."""
    from retrieval.encoders.features import FeatureCache
    from retrieval.encoders.registry import get_image_encoder
    from retrieval.heads.photo_embedding import TrainedFeatureCache, TrainedPhotoEncoder

    encoder = encoder or get_image_encoder()
    kind = TrainedFeatureCache if isinstance(encoder, TrainedPhotoEncoder) else FeatureCache
    root = settings.data_dir / "cache"
    return kind(root, encoder), kind(
        root, encoder, settings.max_image_pixels, settings.max_image_side
    )


def _category_predictor(settings: Settings, wanted: bool) -> Any:
    """The trained category model as `images -> [(label, confidence)]`, or None."""
    if not wanted:
        return None
    try:
        from retrieval.heads.category import load_latest
    except ImportError:
        return None
    classifier = load_latest(settings.artifacts_dir)
    if classifier is None:
        return None

    def predict(images: Any) -> list[tuple[str, float]]:
        return [(p.label, p.confidence) for p in classifier.predict(images)]

    return predict


def train_photo_match_command(
    data: CatalogueOption,
    products: Annotated[
        int | None,
        typer.Option(
            min=20,
            help="Products sampled (seeded) from DATA (default: all of them when learning, "
            "341 with --calibrate-only).",
        ),
    ] = None,
    sample_seed: Annotated[int, typer.Option(help="Seed of the product sample.")] = 0,
    seed: Annotated[
        int, typer.Option(help="Simulation seed; differs from the evaluation's by default.")
    ] = DEFAULT_SEED + 1,
    precision: Annotated[
        float, typer.Option(min=0.5, max=0.999, help="Precision the threshold must reach.")
    ] = 0.98,
    max_absent: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Most of the photos of unlisted products that may be answered confidently.",
        ),
    ] = 0.05,
    learn: Annotated[
        bool,
        typer.Option(
            "--learn/--calibrate-only",
            help="Learn the photo embedding from the catalogue's images (default), or only fit "
            "the confidence of the frozen matcher.",
        ),
    ] = True,
    views: Annotated[int, typer.Option(min=1, help="Training views per catalogue image.")] = 8,
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs of the embedding.")] = 10,
    frozen_share: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=0.95,
            help="Share of the frozen similarity fused into the learned one: more finds closer "
            "items of the right kind for photos unlike the catalogue's, less tells look-alike "
            "products apart (default: the measured one in retrieval/training/photo_embedding.py).",
        ),
    ] = None,
    category_model: CategoryOption = False,
    out: ArtifactsOutOption = None,
    as_json: JsonOption = False,
) -> None:
    """Learn the photo embedding from the catalogue's own images (customer-photo-like views,
    every other catalogue image a negative) and fit its confidence and "not sure" threshold on
    simulated customer photos; saves a new `photo-embed-vN` (or, with --calibrate-only, a
    `photo-match-vN` for the frozen matcher), loaded automatically afterwards."""
    from retrieval.encoders.registry import get_image_encoder
    from retrieval.evaluation.photo_search import load_catalogue, sample_products
    from retrieval.search.photo import MatcherConfig
    from retrieval.simulate import SimulationProtocol
    from retrieval.training.photo_match import calibrate_photo_match, save_artefact

    settings = Settings()
    started = time.perf_counter()
    with user_errors(ImageRejected):
        wanted = products or (10**9 if learn else 341)
        catalogue = sample_products(load_catalogue(data), wanted, sample_seed)
        learned = (
            _learn_embedding(settings, catalogue, views, epochs, frozen_share, as_json)
            if learn
            else None
        )
        encoder = learned[0] if learned else get_image_encoder()
        cache, query_cache = _caches(settings, encoder)
        config = MatcherConfig()
        protocol = SimulationProtocol(seed=seed)
        predictor = _category_predictor(settings, category_model)
        calibrator, metrics = calibrate_photo_match(
            encoder,
            catalogue,
            cache,
            query_cache,
            protocol,
            config,
            precision,
            predictor,
            progress=not as_json,
            max_absent=max_absent,
        )
        meta = {
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "encoder": encoder.name,
            "data": str(data),
            "products": catalogue.products,
            "sample_seed": sample_seed,
            "category_source": "model" if predictor else "catalogue vote",
            "protocol": protocol.describe(),
            "target_precision": precision,
            "max_absent": max_absent,
            "metrics": metrics,
        }
        if learned is None:
            meta["seconds"] = round(time.perf_counter() - started, 1)
            folder = save_artefact(calibrator, config, meta, out or settings.artifacts_dir)
        else:
            from retrieval.training.photo_embedding import save_trained_matcher

            _, head, training_config, training_metrics = learned
            meta["config"] = asdict(config)
            meta["training_metrics"] = training_metrics
            meta["seconds"] = round(time.perf_counter() - started, 1)
            folder = save_trained_matcher(
                head, calibrator, training_config, meta, out or settings.artifacts_dir
            )
    reembedded = _reembed_store(settings, quiet=as_json) if learned and out is None else None
    if as_json:
        print_json(
            {
                "model": str(folder),
                "calibrator": calibrator.model_dump(),
                **meta,
                "reembedded": reembedded,
            }
        )
        return
    console.print(
        f"Calibrated on {catalogue.products} products (recall@1 {metrics['recall@1']:.3f}): "
        f"AUC {metrics['auc']:.3f}, threshold {calibrator.threshold:.3f}; confident on "
        f"{metrics['confident_coverage']:.1%} of listed products with precision "
        f"{metrics['confident_precision']:.3f}, on {metrics['absent_confident_rate']:.1%} of "
        "unlisted ones"
    )
    console.print(f"Saved {folder} in {meta['seconds']:.0f} s")
    if reembedded is not None:
        console.print(
            f"Stored images re-embedded with {reembedded['space']}: {reembedded['embedded']} "
            f"new, {reembedded['unchanged']} already done, in {reembedded['seconds']:.0f} s"
        )


def _reembed_store(settings: Settings, quiet: bool) -> dict[str, Any] | None:
    """Re-embed the store's images with the model just saved; a store that cannot be opened
    now keeps the frozen matcher, and says how to finish later."""
    from assistant.components import Components
    from knowledge_base.store import StoreUnavailable

    try:
        report = Components(settings, progress=not quiet).sync_photo_vectors()
    except StoreUnavailable as exc:
        err_console.print(
            f"[yellow]warning:[/] the model is saved but the stored images are not re-embedded "
            f"({exc}); run `shopsight kb reembed` when the store is back"
        )
        return None
    return asdict(report) if report else None


def _learn_embedding(
    settings: Settings,
    catalogue: Any,
    views: int,
    epochs: int,
    frozen_share: float | None,
    quiet: bool,
) -> tuple[Any, Any, Any, dict[str, float]]:
    """Stage features of the catalogue and its training views, then the fitted head; returns
    (encoder named for the next version, head, config, metrics)."""
    from retrieval import artifacts
    from retrieval.encoders.features import FeatureCache
    from retrieval.encoders.registry import get_stage_encoder
    from retrieval.heads.photo_embedding import ARTEFACT, TrainedPhotoEncoder
    from retrieval.training.augment import TrainingAugmenter
    from retrieval.training.photo_embedding import EmbeddingConfig, fit_head, training_features

    stages = get_stage_encoder()
    config = EmbeddingConfig(views=views, epochs=epochs)
    if frozen_share is not None:
        config = replace(config, frozen_share=frozen_share)
    cache = FeatureCache(settings.data_dir / "cache", stages)
    clean, augmented = training_features(
        catalogue.paths, cache, TrainingAugmenter(seed=config.seed), views, progress=not quiet
    )
    head, metrics = fit_head(clean, augmented, config, progress=not quiet)
    out = settings.artifacts_dir
    version = artifacts.next_folder(out, ARTEFACT).name.rsplit("-", 1)[-1]
    return TrainedPhotoEncoder(stages, head, f"{ARTEFACT}-{version}"), head, config, metrics


def eval_photo_search_command(
    data: CatalogueOption,
    queries: Annotated[
        Path | None,
        typer.Option(
            "--queries",
            help="Folder of real customer photos named after their product: "
            "<product id>.jpg or <product id>/<any>.jpg (default: simulated photos).",
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Seed of the simulated customer photos (retrieval/simulate.py).")
    ] = DEFAULT_SEED,
    products: Annotated[
        int | None,
        typer.Option(min=20, help="Evaluate on a seeded sample of this many products of DATA."),
    ] = None,
    sample_seed: Annotated[int, typer.Option(help="Seed of the product sample.")] = 0,
    distractors: Annotated[
        list[Path] | None,
        typer.Option(
            "--distractors",
            help="Another catalogue (file or image folder) whose products are indexed but never "
            "asked for: how recall holds as the catalogue grows. Repeatable.",
        ),
    ] = None,
    unlisted: Annotated[
        Path | None,
        typer.Option(
            "--unlisted",
            help="Another catalogue (file or image folder) of products this shop does not sell: "
            "one simulated photo of each, how often a listed product is asserted for it.",
        ),
    ] = None,
    category_model: CategoryOption = False,
    frozen: Annotated[
        bool,
        typer.Option(
            "--frozen", help="Evaluate the frozen matcher even when a trained one exists."
        ),
    ] = False,
    out: ReportsOutOption = None,
    as_json: JsonOption = False,
) -> None:
    """Photo → product search on a catalogue: recall@1/5/10, MRR and how well the "not sure"
    threshold separates right matches from wrong and unlisted ones."""
    from retrieval.encoders.registry import get_image_encoder, get_stage_encoder
    from retrieval.evaluation.photo_search import (
        evaluate_photo_search,
        load_catalogue,
        sample_products,
    )
    from retrieval.heads.photo_embedding import load_trained_matcher
    from retrieval.search.photo import MatcherConfig, load_artefact
    from retrieval.simulate import SimulationProtocol

    settings = Settings()
    with user_errors(ImageRejected):
        catalogue = load_catalogue(data)
        if products:
            catalogue = sample_products(catalogue, products, sample_seed)
        if distractors:
            catalogue = catalogue.with_distractors([load_catalogue(p) for p in distractors])
        learned = None if frozen else load_trained_matcher(settings.artifacts_dir)
        trained: tuple[Any, Any] | None
        encoder: Any
        if learned is not None:
            encoder = learned.encoder(get_stage_encoder())
            trained = (learned.calibrator, MatcherConfig())
        else:
            encoder = get_image_encoder()
            trained = load_artefact(settings.artifacts_dir)
        cache, query_cache = _caches(settings, encoder)
        report = evaluate_photo_search(
            encoder,
            catalogue,
            cache,
            query_cache,
            out or settings.data_dir / "reports",
            calibrator=trained[0] if trained else None,
            config=trained[1] if trained else None,
            category_predictor=_category_predictor(settings, category_model),
            protocol=SimulationProtocol(seed=seed),
            queries_dir=queries,
            unlisted=load_catalogue(unlisted) if unlisted else None,
            progress=not as_json,
        )

    def render() -> None:
        table = Table("metric", "value", title=f"Photo search: {data}")
        for name, value in report.metrics.items():
            table.add_row(name, f"{value:.4f}")
        console.print(table)
        console.print(f"Calibrator: {report.settings['calibrator']['source']}")

    emit_report(report, as_json, render, console)
