"""`shopsight eval photo-search`: customer photos against a catalogue → recall@k, MRR, confidence.

Catalogue: an image folder with one sub-folder per category (every image is one product, id
`<category>/<file stem>`, as `shopsight kb ingest` names them) or a catalogue file (JSON, JSONL,
CSV) whose products list local images. All images of all products are indexed (exact search).

Queries:
- simulated (default): one customer photo per product, made from the product's first image with
  the seeded protocol of `retrieval.simulate` (the report quotes it);
- real (`--queries DIR`): each image under DIR names its product by its path relative to DIR,
  without the suffix: `DIR/<product id>.jpg`, or `DIR/<product id>/<anything>.jpg` for several
  photos of one product. With folder-catalogue ids (`dress/abc`) that is `DIR/dress/abc.jpg` or
  `DIR/dress/abc/1.jpg`. Files that name no catalogue product are listed and skipped.

A product re-listed under another id with the very same photo (byte-identical files, as real
catalogues have) cannot be told apart from it by any photo search, so a match to such a twin
counts as right, and twins are removed together when the product is.

Every query is also asked with its own product removed from the catalogue ("absent" queries):
there the right answer is "not sure", so the report shows how often the assistant would name a
wrong product for an item the shop does not list. The same present/absent pairs are the rows
the confidence is calibrated on (`retrieval.training.photo_match`, run on training data).

A product removed from the index was still seen by a matcher trained on this catalogue, so
`--unlisted CATALOGUE` adds the honest case: simulated photos of another catalogue's products,
never indexed and never trained on, each asked once (`unlisted_confident_rate`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from knowledge_base.images import IMAGE_SUFFIXES, load_image
from knowledge_base.loaders import load_paths
from knowledge_base.schema import file_hash
from retrieval.encoders.features import FeatureCache
from retrieval.evaluation.report import EvalReport, ranking_metrics
from retrieval.search.photo import (
    QUERY_VIEWS,
    ArrayImageIndex,
    CategoryPredictor,
    ImageEmbedder,
    MatchCalibrator,
    MatcherConfig,
    PhotoMatcher,
    PhotoSearchResult,
)
from retrieval.simulate import SimulationProtocol

TASK = "photo-search"
METRICS_GUIDE = (
    "recall@k: share of queries whose product is among the first k; mrr: mean reciprocal rank. "
    "confident_coverage: share of queries answered with confidence ≥ threshold (no 'is it one "
    "of these?'); confident_precision: share of those whose first match is right. "
    "absent_confident_rate: share of the same queries, asked with their product removed from "
    "the catalogue, still answered confidently (a wrong product asserted); mixed_precision: "
    "precision of confident answers over listed and unlisted queries together (1:1). "
    "unlisted_confident_rate: share of photos of another catalogue's products (never indexed, "
    "never trained on) answered confidently."
)


@dataclass
class Catalogue:
    """Catalogue images, one row per image; a product's first image makes its simulated query."""

    product_ids: list[str]
    categories: list[str]
    titles: list[str]
    paths: list[Path]
    source: str
    skipped: list[str] = field(default_factory=list)
    queried: set[str] | None = None
    """Products that get a simulated query (None: all of them; distractors get none)."""

    @property
    def products(self) -> int:
        return len(set(self.product_ids))

    def first_images(self) -> dict[str, Path]:
        first: dict[str, Path] = {}
        for product_id, path in zip(self.product_ids, self.paths, strict=True):
            if self.queried is None or product_id in self.queried:
                first.setdefault(product_id, path)
        return first

    def with_distractors(self, others: Sequence[Catalogue]) -> Catalogue:
        """This catalogue plus products that are indexed but never asked for (ids prefixed
        `distractor<n>:` so they cannot collide): how recall holds as the catalogue grows."""
        merged = Catalogue(
            list(self.product_ids),
            list(self.categories),
            list(self.titles),
            list(self.paths),
            self.source,
            list(self.skipped),
            queried=set(self.queried or self.product_ids),
        )
        for number, other in enumerate(others, start=1):
            merged.product_ids += [f"distractor{number}:{pid}" for pid in other.product_ids]
            merged.categories += other.categories
            merged.titles += other.titles
            merged.paths += other.paths
            merged.source += f" + {other.source}"
        return merged

    def twins(self) -> dict[str, set[str]]:
        """Per product, the other products with a byte-identical image (re-listings)."""
        owners: dict[str, set[str]] = {}
        for product_id, path in zip(self.product_ids, self.paths, strict=True):
            owners.setdefault(file_hash(path), set()).add(product_id)
        twins: dict[str, set[str]] = {}
        for group in (g for g in owners.values() if len(g) > 1):
            for product_id in group:
                twins.setdefault(product_id, set()).update(group - {product_id})
        return twins

    def subset(self, product_ids: Sequence[str]) -> Catalogue:
        keep = set(product_ids)
        rows = [i for i, pid in enumerate(self.product_ids) if pid in keep]
        return Catalogue(
            [self.product_ids[i] for i in rows],
            [self.categories[i] for i in rows],
            [self.titles[i] for i in rows],
            [self.paths[i] for i in rows],
            self.source,
            list(self.skipped),
            None if self.queried is None else self.queried & keep,
        )


def load_catalogue(path: Path) -> Catalogue:
    """Products with at least one local image, from an image folder or a catalogue file."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such catalogue file or folder")
    loaded = load_paths([path])
    skipped = [str(r) for r in loaded.rejections]
    seen: set[str] = set()
    catalogue = Catalogue([], [], [], [], str(path), skipped)
    for product in loaded.products:
        if product.id in seen:
            skipped.append(f"product {product.id}: duplicate id; the first record is used")
            continue
        images = [p for p in product.images if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
        if not images:
            skipped.append(f"product {product.id}: no local image")
            continue
        seen.add(product.id)
        for image in images:
            catalogue.product_ids.append(product.id)
            catalogue.categories.append(product.category)
            catalogue.titles.append(product.title)
            catalogue.paths.append(image)
    if not catalogue.paths:
        raise FileNotFoundError(
            f"{path}: no products with local images; give a folder with one sub-folder of images "
            "per category or a catalogue file whose products list image paths"
        )
    return catalogue


def sample_products(catalogue: Catalogue, count: int, seed: int) -> Catalogue:
    """A seeded random subset of `count` products (all of them when there are fewer)."""
    products = sorted(set(catalogue.product_ids))
    if count >= len(products):
        return catalogue
    chosen = np.random.default_rng(seed).choice(len(products), count, replace=False)
    return catalogue.subset([products[i] for i in sorted(chosen)])


def catalogue_index(
    catalogue: Catalogue, cache: FeatureCache, progress: bool = True
) -> ArrayImageIndex:
    """Exact in-memory index of every catalogue image (features from the shared cache)."""
    vectors = cache.features(catalogue.paths, progress=progress)
    return ArrayImageIndex(
        vectors,
        catalogue.product_ids,
        catalogue.categories,
        [str(p) for p in catalogue.paths],
        catalogue.titles,
    )


@dataclass
class QuerySet:
    """Query photos, the product each shows, their view vectors (queries × views × dim), and
    how to rebuild a query image (for a category model that needs pixels)."""

    paths: list[Path]
    targets: list[str]
    views: np.ndarray
    kind: str
    image: Callable[[Path], Image.Image]
    unmatched: list[str] = field(default_factory=list)


def simulated_queries(
    catalogue: Catalogue,
    cache: FeatureCache,
    protocol: SimulationProtocol,
    views: Sequence[str],
    progress: bool = True,
) -> QuerySet:
    """One simulated customer photo per product; features cached per protocol, seed and view."""
    first = catalogue.first_images()
    targets = list(first)
    paths = [first[pid] for pid in targets]
    stacked = [
        cache.features(
            paths,
            view=_simulated_view(protocol, name),
            view_name=f"{protocol.view_name}-side{cache.max_side}/{name}",
            progress=progress,
        )
        for name in views
    ]

    def image(path: Path) -> Image.Image:
        return protocol(load_image(path, cache.max_pixels, cache.max_side))

    return QuerySet(paths, targets, np.stack(stacked, axis=1), "simulated", image)


def _simulated_view(
    protocol: SimulationProtocol, name: str
) -> Callable[[Image.Image], Image.Image]:
    def view(image: Image.Image) -> Image.Image:
        return QUERY_VIEWS[name](protocol(image))

    return view


def real_queries(
    folder: Path,
    catalogue: Catalogue,
    cache: FeatureCache,
    views: Sequence[str],
    progress: bool = True,
) -> QuerySet:
    """Real customer photos under `folder`, named after their product (see the module doc)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: the query photos folder does not exist")
    known = set(catalogue.product_ids)
    paths: list[Path] = []
    targets: list[str] = []
    unmatched: list[str] = []
    files = (p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    for path in sorted(files):
        relative = path.relative_to(folder).with_suffix("").as_posix()
        parent = path.parent.relative_to(folder).as_posix()
        target = relative if relative in known else parent if parent in known else None
        if target is None:
            unmatched.append(str(path))
            continue
        paths.append(path)
        targets.append(target)
    if not paths:
        raise FileNotFoundError(
            f"{folder}: no photo is named after a catalogue product; name each "
            "<product id>.jpg or put it in a folder <product id>/"
        )
    stacked = [
        cache.features(paths, view=QUERY_VIEWS[name], view_name=f"query-{name}", progress=progress)
        for name in views
    ]

    def image(path: Path) -> Image.Image:
        return load_image(path, cache.max_pixels, cache.max_side)

    return QuerySet(paths, targets, np.stack(stacked, axis=1), "real", image, unmatched)


@dataclass
class QueryOutcome:
    """One query asked with its product listed (`present`) and with it removed (`absent`)."""

    target: str
    rank: int | None
    present: PhotoSearchResult
    absent: PhotoSearchResult


def run_queries(
    matcher: PhotoMatcher,
    queries: QuerySet,
    k: int = 10,
    progress: bool = True,
    twins: Mapping[str, set[str]] | None = None,
) -> list[QueryOutcome]:
    """Every query, present and absent; the category model (if any) sees the query's pixels.
    A product's `twins` (re-listings of its photo) count as it and leave with it."""
    outcomes = []
    rows = list(zip(queries.paths, queries.targets, queries.views, strict=True))
    for path, target, views in tqdm(rows, desc="photo search", unit="query", disable=not progress):
        category = _query_category(matcher, queries, path)
        same = {target, *(twins or {}).get(target, ())}
        present = matcher.match(views, k=k, category=category)
        absent = matcher.match(
            views, k=k, where={"product_id": {"$nin": sorted(same)}}, category=category
        )
        ranked = [m.product_id for m in present.matches]
        rank = next((r for r, pid in enumerate(ranked, start=1) if pid in same), None)
        outcomes.append(QueryOutcome(target, rank, present, absent))
    return outcomes


def unlisted_confident_rate(matcher: PhotoMatcher, queries: QuerySet) -> float:
    """Share of photos of products the catalogue does not hold that are answered confidently."""
    if not queries.targets:
        return 0.0
    confident = 0
    for path, views in zip(queries.paths, queries.views, strict=True):
        category = _query_category(matcher, queries, path)
        confident += matcher.match(views, k=1, category=category).confident
    return confident / len(queries.targets)


def _query_category(
    matcher: PhotoMatcher, queries: QuerySet, path: Path
) -> tuple[str, float] | None:
    """The category model's prediction for a query photo (it needs the pixels), if any."""
    if matcher.category_predictor is None:
        return None
    return matcher.category_predictor([queries.image(path)])[0]


def decision_metrics(outcomes: Sequence[QueryOutcome]) -> dict[str, float]:
    """Coverage and precision of "confident" when the product is listed, how often an unlisted
    product is wrongly asserted, and the precision over both kinds together."""
    total = max(len(outcomes), 1)
    confident = [o for o in outcomes if o.present.confident]
    right = sum(1 for o in confident if o.rank == 1)
    asserted_absent = sum(1 for o in outcomes if o.absent.confident)
    return {
        "confident_coverage": len(confident) / total,
        "confident_precision": right / len(confident) if confident else 1.0,
        "absent_confident_rate": asserted_absent / total,
        "mixed_precision": right / max(len(confident) + asserted_absent, 1),
    }


def evaluate_photo_search(
    encoder: ImageEmbedder,
    catalogue: Catalogue,
    cache: FeatureCache,
    query_cache: FeatureCache,
    out_dir: Path,
    calibrator: MatchCalibrator | None = None,
    config: MatcherConfig | None = None,
    category_predictor: CategoryPredictor | None = None,
    protocol: SimulationProtocol | None = None,
    queries_dir: Path | None = None,
    unlisted: Catalogue | None = None,
    progress: bool = True,
) -> EvalReport:
    """Index the catalogue, run every query, write `photo-search.{json,md}` under `out_dir`."""
    started = time.perf_counter()
    protocol = protocol or SimulationProtocol()
    index = catalogue_index(catalogue, cache, progress)
    matcher = PhotoMatcher(index, encoder, category_predictor, calibrator, config)
    views = matcher.config.views
    if queries_dir is None:
        queries = simulated_queries(catalogue, query_cache, protocol, views, progress)
    else:
        queries = real_queries(queries_dir, catalogue, query_cache, views, progress)
    twins = catalogue.twins()
    outcomes = run_queries(matcher, queries, progress=progress, twins=twins)
    metrics = ranking_metrics([o.rank for o in outcomes], ks=(1, 5, 10))
    metrics["relisted_products"] = float(len(twins))
    metrics.update(decision_metrics(outcomes))
    metrics["products"] = float(catalogue.products)
    metrics["queried_products"] = float(len(queries.targets))
    metrics["catalogue_images"] = float(len(catalogue.paths))
    if unlisted is not None:
        strangers = simulated_queries(unlisted, query_cache, protocol, views, progress)
        metrics["unlisted_products"] = float(len(strangers.targets))
        metrics["unlisted_confident_rate"] = unlisted_confident_rate(matcher, strangers)
    settings: dict[str, Any] = {
        "queries": queries.kind,
        "config": asdict(matcher.config),
        "category_source": "model" if category_predictor else "catalogue vote",
        "calibrator": matcher.calibrator.model_dump(),
        "encoder": getattr(encoder, "name", type(encoder).__name__),
    }
    details: dict[str, Any] = {
        "what the metrics mean": METRICS_GUIDE,
        "misses (top-1 wrong)": _misses(queries, outcomes)[:50],
    }
    if queries_dir is None:
        settings["protocol"] = protocol.describe()
        details["simulation protocol"] = protocol_markdown(protocol)
    else:
        settings["queries_dir"] = str(queries_dir)
        details["unmatched query files"] = queries.unmatched[:50]
    if catalogue.skipped:
        details["skipped catalogue entries"] = catalogue.skipped[:50]
    report = EvalReport(
        task=TASK,
        data=catalogue.source,
        metrics={k: round(v, 4) for k, v in metrics.items()},
        details=details,
        settings=settings,
        seconds=round(time.perf_counter() - started, 2),
    )
    report.write(out_dir)
    return report


def _misses(queries: QuerySet, outcomes: Sequence[QueryOutcome]) -> list[dict[str, Any]]:
    misses = []
    for path, outcome in zip(queries.paths, outcomes, strict=True):
        if outcome.rank == 1:
            continue
        first = outcome.present.matches[0] if outcome.present.matches else None
        misses.append(
            {
                "query": str(path),
                "product": outcome.target,
                "rank": outcome.rank,
                "top1": first.product_id if first else None,
                "top1_score": first.score if first else None,
            }
        )
    return misses


def protocol_markdown(protocol: SimulationProtocol) -> str:
    """The simulation protocol as the report shows it: the documented steps, then the values."""
    from retrieval import simulate

    values = ", ".join(f"{k}={v}" for k, v in protocol.describe().items())
    return f"{(simulate.__doc__ or '').strip()}\n\nValues used: {values}"
