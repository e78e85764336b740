"""Auto-tagging at ingest: products with photos but no category get a predicted category and
their dominant colour names, each recorded in `Product.predicted` with its confidence so the
shop (and the assistant) can tell a model's guess from the merchant's own data."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from pydantic import BaseModel, Field

from knowledge_base.images import ImageRejected, load_image
from knowledge_base.loaders import LoadResult
from knowledge_base.schema import Product, Rejection
from retrieval.colours import dominant_colours
from retrieval.encoders.features import FeatureCache
from retrieval.heads.category import CategoryClassifier, ImageFeatures


class AutotagReport(BaseModel):
    """What auto-tagging changed; `skipped` lists products whose photo could not be read."""

    categorised: int = 0
    below_confidence: int = 0
    coloured: int = 0
    skipped: list[Rejection] = Field(default_factory=list)


def autotag(
    loaded: LoadResult,
    classifier: CategoryClassifier | None,
    cache: FeatureCache | None = None,
    encoder: ImageFeatures | None = None,
    min_confidence: float = 0.5,
    max_pixels: int = 40_000_000,
    max_side: int = 1024,
) -> AutotagReport:
    """Fill in `loaded.products` in place: category (when the classifier is at least
    `min_confidence` sure) and colour tags for every product that has images but no category.

    Without a classifier only colours are added. With a `cache`, photo features are reused from
    (and written to) it, so ingesting an already-seen photo folder costs no encoding; otherwise
    `encoder` (default: the shared EfficientNet) encodes the photos.
    """
    report = AutotagReport()
    targets = [i for i, p in enumerate(loaded.products) if p.images and not p.category]
    photos: dict[int, Image.Image] = {}
    for index in targets:
        product = loaded.products[index]
        try:
            photos[index] = load_image(product.images[0], max_pixels, max_side)
        except (ImageRejected, OSError) as exc:
            report.skipped.append(Rejection(source=str(product.images[0]), reason=str(exc)))
    if not photos:
        return report
    indices = list(photos)
    predictions = None
    if classifier is not None:
        if cache is not None:
            predictions = classifier.predict_paths(
                [_first_image(loaded.products[i]) for i in indices], cache
            )
        else:
            predictions = classifier.predict([photos[i] for i in indices], encoder)
    for position, index in enumerate(indices):
        product = loaded.products[index]
        update: dict[str, object] = {}
        predicted = dict(product.predicted)
        tags = list(product.tags)
        if predictions is not None:
            guess = predictions[position]
            if guess.confidence >= min_confidence:
                update["category"] = guess.label
                predicted["category"] = guess.confidence
                report.categorised += 1
            else:
                report.below_confidence += 1
        colours = dominant_colours(photos[index])
        for colour in colours:
            if colour.name not in tags:
                tags.append(colour.name)
            predicted[f"colour:{colour.name}"] = colour.share
        report.coloured += bool(colours)
        update |= {"tags": tags, "predicted": predicted}
        loaded.products[index] = product.model_copy(update=update)
    return report


def _first_image(product: Product) -> Path:
    return Path(product.images[0])
