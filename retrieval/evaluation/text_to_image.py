"""Text→image evaluation: does a product's title find its photo among held-out products?

The catalogue is split by product with a fixed seed (or into k folds); the alignment head is
trained on the training part only (its own early-stopping split comes out of that part too) and
every number is measured on held-out products. Each held-out product's title is one query; the
gallery is the held-out products, each scored by its best image.

Compared sources: `cross_modal` (title → projected images), `text_only` (title → the product's
other text, embedded as a passage: description, category, attributes and tags; for an image
folder that is the class name, so it equals matching titles), `fused` (reciprocal-rank fusion
of both) and `random` (exact expectation of a random ranking).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
from tqdm import tqdm

from retrieval.encoders.text import TextEmbedder
from retrieval.evaluation.report import EvalReport
from retrieval.training.align import (
    AlignmentConfig,
    AlignmentData,
    AlignmentDataError,
    FeatureFn,
    train_head,
)

TASK = "text-to-image"
SOURCES = ("cross_modal", "text_only", "fused", "random")

DEFINITIONS = """\
- One query per held-out product: its title (embedded as a query). Gallery: all held-out
  products; a product's score is its best image's score.
- `recall@k` (instance level): the query's own product is in the top k. `mrr`: mean 1/rank.
- `class_hit@k`: some product of the query product's category is in the top k (the fair
  measure when titles are class names, since then titles are identical within a class).
  `class_precision@10`: share of the top 10 in the right category. `class_map`: mean average
  precision over the whole ranking, with the right category as relevant.
- `gallery`: mean number of products each query is ranked among; recall@10 says little when
  it is close to 10.
- `random`: the exact expectation of a uniformly random ranking (k/N, H_N/N, and the
  closed forms for hit@k, precision@k and average precision).
- Ties (identical titles give identical text scores) are broken by a seeded random order; in
  fusion a tie shares the best rank, so the other source decides between tied products.
- `text_only`: the title against the product's text without its title (description,
  category, attributes, tags); for an image folder that text is the class name."""

LIMITS = """\
- Frozen ImageNet features (EfficientNet-Lite0, GeM-pooled): the head can only re-map what the
  CNN already separates; fine attributes (material, exact shade, brand) are weakly encoded.
- Few, short titles: a catalogue of tens of products gives tens of training pairs, so titles
  of unseen kinds of products (zero-shot) depend on the text embedder's geometry alone; with
  class-name titles the head learns at most one target per class (a classifier in disguise).
- A 384-d sentence-embedding space made for text↔text similarity: colour and shape words sit
  close together in it, which limits how finely an image can be placed.
- Rendered or studio photos vs customer photos: the head learns the catalogue's photo style."""


@dataclass(frozen=True)
class TextToImageOptions:
    """How the catalogue is split and fused; `folds` > 1 runs k-fold cross-validation."""

    test_fraction: float = 0.2
    folds: int = 1
    seed: int = 0
    rrf_k: int = 60
    image_weight: float = 1.0
    ks: tuple[int, ...] = (1, 10)


@dataclass
class _Encoded:
    """Everything computed once per run: image features per pair row and text vectors per item."""

    views: list[np.ndarray]
    pair_item: np.ndarray
    pair_titles: list[str]
    pair_products: list[str]
    title_queries: np.ndarray
    context_passages: np.ndarray
    categories: list[str]


def evaluate_text_to_image(
    data: AlignmentData,
    text_embedder: TextEmbedder,
    features: FeatureFn,
    config: AlignmentConfig | None = None,
    options: TextToImageOptions | None = None,
    extra_views: Sequence[FeatureFn] = (),
    image_encoder: str = "",
    test_data: AlignmentData | None = None,
    progress: bool = True,
) -> EvalReport:
    """Train on the training part of each split, measure on its held-out part, report all.

    With `test_data` the head trains on all of `data` and is measured on all of `test_data`
    (e.g. a dataset's own train/validation folders) instead of a split of `data`.
    """
    started = time.perf_counter()
    config = config or AlignmentConfig()
    options = options or TextToImageOptions()
    described: dict[str, Any] = data.describe()
    if test_data is not None:
        described = {"train": described, "test": test_data.describe()}
        folds = [np.arange(len(data.items), len(data.items) + len(test_data.items))]
        data = _joined(data, test_data)
    else:
        folds = _folds(len(data.items), options)
    encoded = _encode(data, text_embedder, features, extra_views)
    rng = np.random.default_rng(options.seed)
    collected: dict[str, list[float]] = {}
    per_class: dict[str, list[float]] = {}
    trainings = []
    class_level = len(set(encoded.categories)) > 1 and all(encoded.categories)
    for test_items in tqdm(folds, desc="text-to-image folds", unit="fold", disable=not progress):
        train_rows = np.flatnonzero(~np.isin(encoded.pair_item, test_items))
        head, result = train_head(
            [view[train_rows] for view in encoded.views],
            encoded.title_queries[encoded.pair_item[train_rows]],
            [encoded.pair_products[i] for i in train_rows],
            [encoded.pair_titles[i] for i in train_rows],
            config,
            progress=False,
        )
        trainings.append(asdict(result))
        test_rows = np.flatnonzero(np.isin(encoded.pair_item, test_items))
        projected = head.image_to_text_space(encoded.views[0][test_rows])
        queries = encoded.title_queries[test_items]
        image_scores = _best_per_item(queries @ projected.T, encoded.pair_item[test_rows])
        text_scores = queries @ encoded.context_passages[test_items].T
        categories = [encoded.categories[i] for i in test_items]
        fold = _score_fold(image_scores, text_scores, categories, class_level, options, rng)
        for name, values in fold.pop("per_class").items():
            per_class.setdefault(name, []).extend(values)
        for name, values in fold.items():
            collected.setdefault(name, []).extend(values)
    metrics = {name: round(float(np.mean(values)), 4) for name, values in collected.items()}
    metrics["queries"] = float(len(collected[f"random.recall@{options.ks[0]}"]))
    details: dict[str, Any] = {
        "comparison": comparison_table(metrics),
        "definitions": DEFINITIONS,
        "what limits it": LIMITS,
        "data": described,
        "training per fold": trainings,
    }
    if per_class:
        details["cross_modal class_map per category"] = {
            name: round(float(np.mean(values)), 4) for name, values in sorted(per_class.items())
        }
    return EvalReport(
        task=TASK,
        data=data.source,
        metrics=metrics,
        details=details,
        settings={
            "text_embedder": text_embedder.name,
            "image_encoder": image_encoder,
            "augmented_views": len(extra_views),
            **{f"head.{k}": v for k, v in asdict(config).items()},
            **{f"split.{k}": v for k, v in asdict(options).items()},
        },
        seconds=round(time.perf_counter() - started, 2),
    )


def _encode(
    data: AlignmentData,
    text_embedder: TextEmbedder,
    features: FeatureFn,
    extra_views: Sequence[FeatureFn],
) -> _Encoded:
    paths, titles, products = data.pairs()
    item_of = {item.product_id: index for index, item in enumerate(data.items)}
    views = [features(paths), *(view(paths) for view in extra_views)]
    unique_titles = sorted({item.title for item in data.items})
    title_vectors = text_embedder.embed_texts(unique_titles, kind="query")
    row_of = {title: row for row, title in enumerate(unique_titles)}
    unique_contexts = sorted({item.context for item in data.items})
    context_vectors = text_embedder.embed_texts(unique_contexts, kind="passage")
    context_row = {context: row for row, context in enumerate(unique_contexts)}
    return _Encoded(
        views=views,
        pair_item=np.array([item_of[p] for p in products], dtype=np.int64),
        pair_titles=titles,
        pair_products=products,
        title_queries=title_vectors[[row_of[item.title] for item in data.items]],
        context_passages=context_vectors[[context_row[item.context] for item in data.items]],
        categories=[item.category for item in data.items],
    )


def _joined(train: AlignmentData, test: AlignmentData) -> AlignmentData:
    """One item list, test items last and their ids prefixed so the two sides never collide."""
    held_out = [replace(item, product_id=f"test:{item.product_id}") for item in test.items]
    return AlignmentData(f"{train.source} → {test.source}", train.kind, train.items + held_out)


def _folds(count: int, options: TextToImageOptions) -> list[np.ndarray]:
    """Held-out item indices per fold: one seeded split, or k disjoint folds covering all."""
    order = np.random.default_rng(options.seed).permutation(count)
    if options.folds > 1:
        if count < 2 * options.folds:
            raise AlignmentDataError(f"{count} products are too few for {options.folds} folds")
        return [np.sort(fold) for fold in np.array_split(order, options.folds)]
    held = round(options.test_fraction * count)
    if held < 2 or count - held < 2:
        raise AlignmentDataError(
            f"{count} products with test fraction {options.test_fraction} leave {held} for "
            "testing: need at least 2 on each side (use more products or --folds)"
        )
    return [np.sort(order[:held])]


def _best_per_item(scores: np.ndarray, column_items: np.ndarray) -> np.ndarray:
    """Reduce image columns to product columns by each product's best image.

    Columns come grouped by product in ascending item order (as `AlignmentData.pairs` lists
    them), so the output columns follow the sorted held-out item indices.
    """
    starts = np.flatnonzero(np.r_[True, column_items[1:] != column_items[:-1]])
    return np.asarray(np.maximum.reduceat(scores, starts, axis=1))


def _score_fold(
    image_scores: np.ndarray,
    text_scores: np.ndarray,
    categories: list[str],
    class_level: bool,
    options: TextToImageOptions,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """Per-query metric values of every source on one held-out fold."""
    n = image_scores.shape[0]
    fused = reciprocal_rank_fusion(
        [image_scores, text_scores], [options.image_weight, 1.0], options.rrf_k
    )
    labels = np.array(categories)
    same_class = labels[:, None] == labels[None, :]
    out: dict[str, Any] = {"per_class": {}, "gallery": [float(n)] * n}
    for source, scores in (
        ("cross_modal", image_scores),
        ("text_only", text_scores),
        ("fused", fused),
    ):
        ordered = np.take_along_axis(np.eye(n, dtype=bool), tie_broken_order(scores, rng), axis=1)
        for name, values in instance_metrics(ordered, options.ks).items():
            out[f"{source}.{name}"] = values
        if class_level:
            hits = np.take_along_axis(same_class, tie_broken_order(scores, rng), axis=1)
            for name, values in class_metrics(hits, options.ks).items():
                out[f"{source}.{name}"] = values
            if source == "cross_modal":
                for label, ap in zip(categories, out["cross_modal.class_map"], strict=True):
                    out["per_class"].setdefault(label, []).append(ap)
    for name, value in random_instance_metrics(n, options.ks).items():
        out[f"random.{name}"] = [value] * n
    if class_level:
        positives = same_class.sum(axis=1)
        for name, values in random_class_metrics(positives, n, options.ks).items():
            out[f"random.{name}"] = values
    return out


def tie_broken_order(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Column order per row, best first; exact ties fall in a seeded random order."""
    keys = rng.random(scores.shape)
    return np.stack([np.lexsort((keys[row], -scores[row])) for row in range(len(scores))])


def min_ranks(scores: np.ndarray) -> np.ndarray:
    """1-based competition ranks per row: tied columns share the best rank."""
    descending = np.sort(-scores, axis=1)
    return np.stack(
        [
            np.searchsorted(descending[row], -scores[row], side="left") + 1
            for row in range(len(scores))
        ]
    )


def reciprocal_rank_fusion(
    score_sets: Sequence[np.ndarray], weights: Sequence[float], k: int = 60
) -> np.ndarray:
    """Weighted RRF: sum of w/(k + rank) over sources; robust to their uncalibrated scales."""
    parts = [w / (k + min_ranks(s)) for s, w in zip(score_sets, weights, strict=True)]
    return np.asarray(np.sum(parts, axis=0))


def instance_metrics(ordered_hits: np.ndarray, ks: Sequence[int]) -> dict[str, list[float]]:
    """recall@k and reciprocal rank per query from relevance in ranked order (one relevant)."""
    ranks = ordered_hits.argmax(axis=1) + 1
    out = {f"recall@{k}": [float(r <= k) for r in ranks] for k in ks}
    out["mrr"] = [1.0 / float(r) for r in ranks]
    return out


def class_metrics(ordered_hits: np.ndarray, ks: Sequence[int]) -> dict[str, list[float]]:
    """hit@k, precision@10 and average precision per query, many relevant per query."""
    ranks = ordered_hits.argmax(axis=1) + 1
    out = {f"class_hit@{k}": [float(r <= k) for r in ranks] for k in ks}
    top = min(10, ordered_hits.shape[1])
    out["class_precision@10"] = [float(v) for v in ordered_hits[:, :top].mean(axis=1)]
    found = np.cumsum(ordered_hits, axis=1)
    positions = np.arange(1, ordered_hits.shape[1] + 1)
    precision_sum = (ordered_hits * found / positions).sum(axis=1)
    out["class_map"] = [float(v) for v in precision_sum / ordered_hits.sum(axis=1)]
    return out


def random_instance_metrics(n: int, ks: Sequence[int]) -> dict[str, float]:
    """Expected recall@k and MRR of a random ranking of n items with one relevant."""
    out = {f"recall@{k}": min(k, n) / n for k in ks}
    out["mrr"] = sum(1.0 / r for r in range(1, n + 1)) / n
    return out


def random_class_metrics(
    positives: np.ndarray, n: int, ks: Sequence[int]
) -> dict[str, list[float]]:
    """Exact expectations for a random ranking of n items of which m are relevant.

    hit@k = 1 - C(n-m, k)/C(n, k); precision@k = m/n;
    AP = (1/n) * (H_n + (m-1)/(n-1) * (n - H_n)).
    """
    harmonic = sum(1.0 / r for r in range(1, n + 1))
    out: dict[str, list[float]] = {
        f"class_hit@{k}": [
            1.0 - math.comb(n - int(m), min(k, n)) / math.comb(n, min(k, n)) for m in positives
        ]
        for k in ks
    }
    out["class_precision@10"] = [float(m) / n for m in positives]
    out["class_map"] = [
        (harmonic + (m - 1) / max(n - 1, 1) * (n - harmonic)) / n for m in positives.astype(float)
    ]
    return out


def comparison_table(metrics: dict[str, float]) -> str:
    """Markdown table: one row per source, one column per metric."""
    names = sorted(
        {key.split(".", 1)[1] for key in metrics if "." in key},
        key=lambda name: (name.startswith("class"), name),
    )
    lines = ["| source | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for source in SOURCES:
        cells = [
            f"{metrics[f'{source}.{n}']:.4f}" if f"{source}.{n}" in metrics else "-" for n in names
        ]
        lines.append(f"| {source} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
