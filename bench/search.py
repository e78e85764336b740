"""Search latency and ANN recall at the demo size and at 100,000 products.

    python bench/search.py                          # demo size and 100k (100k built once)
    python bench/search.py --sizes demo --json      # quick run
    python bench/search.py --sizes 100000 --ef 100,400,1600
    python bench/search.py --sizes 100000 --memory  # RSS step by step in a fresh process

For each catalogue size N it fills a Chroma store under `--root` (default `data/bench/`, reused
by later runs; a killed build resumes) with N synthetic product-text vectors (384-d) and N
synthetic product-image vectors (1280-d): seeded random unit vectors, the hardest case for an
HNSW graph, with product titles and metadata drawn from a shop's vocabulary (so BM25 meets
common and rare words). It then measures, as medians over `--repeats` repeats of `--queries`
queries:

- hybrid text search as the API runs it (`HybridSearcher.products`, BM25 + dense, k=10, no
  query-vector cache, which would hide the embedder), unfiltered and with an in-stock and price
  filter, over the exact in-memory copy of the text vectors (the default) and over HNSW; and
  the copy's recall@10 (1.0 unless it is wrong);
- text search: the real query embedder plus a dense HNSW query of the store's products (k=10);
- photo search: the real image encoder on every query view plus `PhotoMatcher.search` (k=10),
  once over the store's HNSW index and once over `MirroredStoreIndex` (an exact in-memory copy
  of the store's vectors; loading it is timed too); and as it runs with a trained matcher (the
  five-stage encoder, a head of the default shape, 1,792-d exact search);
- recall@10 of Chroma's HNSW against exact search for each `--ef` value of `ef_search`, with
  queries near a stored vector (cosine ≈ 0.8, like a photo of a listed product) and random ones;
- exact numpy search alone.

Chroma reads `ef_search` when it loads a collection: the benchmark sets it with
`collection.modify` and reopens the client for each value, so one built index serves them all.
The JSON result goes to `--out/search.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from knowledge_base.demo import DEMO_SHOP
from knowledge_base.store import CollectionKind, HnswSettings, KnowledgeStore
from retrieval.encoders.stages import STAGE_DIM
from retrieval.encoders.text import l2_normalise
from retrieval.heads.photo_embedding import PhotoEmbeddingHead, TrainedPhotoEncoder
from retrieval.search.photo import (
    ArrayImageIndex,
    MirroredStoreIndex,
    PhotoMatcher,
    StoreImageIndex,
)
from retrieval.training.photo_embedding import EmbeddingConfig

TEXT_DIM = 384
IMAGE_DIM = 1280
CHUNK = 5000
BATCH = 2000
TEXT_QUERIES = (
    "waterproof hiking boots",
    "red summer dress with short sleeves",
    "warm winter jacket for kids",
    "退货政策是什么？",
    "cotton t-shirt size L",
    "leather belt brown",
    "black running shoes for men",
    "Nordkap women blue denim jeans",
)
# Titles are drawn from these words so BM25 meets a shop's vocabulary: common words shared by
# tens of thousands of products (colours, "men") and rare ones (brands).
BRANDS = tuple(
    f"{a}{b}"
    for a in ("Nord", "Sol", "Aster", "Bel", "Cor", "Dune", "Elm", "Fjor", "Gal", "Hal")
    for b in ("kap", "ine", "wear", "mode", "line", "ford", "berg", "ton", "is", "ara")
)
GENDERS = ("Men", "Women", "Boys", "Girls", "Unisex")
COLOURS = ("Black", "White", "Blue", "Red", "Green", "Grey", "Brown", "Pink", "Navy", "Beige")
MATERIALS = ("Cotton", "Denim", "Leather", "Wool", "Linen", "Suede", "Fleece", "Silk", "")
TYPES = (
    "T-Shirt",
    "Shirt",
    "Jeans",
    "Dress",
    "Skirt",
    "Jacket",
    "Sweater",
    "Shorts",
    "Running Shoes",
    "Hiking Boots",
    "Sandals",
    "Belt",
    "Handbag",
    "Watch",
    "Cap",
    "Scarf",
    "Socks",
    "Kurta",
)


@dataclass(frozen=True)
class BenchConfig:
    sizes: tuple[int, ...]
    queries: int
    repeats: int
    ef_values: tuple[int, ...]
    hnsw: HnswSettings
    text_embedder: str
    root: Path
    seed: int = 7


def demo_size() -> int:
    """Products in the bundled demo shop (the size `--sizes demo` stands for)."""
    data = json.loads((DEMO_SHOP / "products.json").read_text(encoding="utf-8"))
    return len(data["products"] if isinstance(data, dict) else data)


def synthetic_vectors(start: int, stop: int, dim: int, seed: int) -> np.ndarray:
    """Rows start..stop of an endless seeded sequence: a larger catalogue extends a smaller one."""
    chunks = []
    for chunk in range(start // CHUNK, (stop - 1) // CHUNK + 1):
        rows = np.random.default_rng([seed, dim, chunk]).standard_normal((CHUNK, dim))
        low, high = max(start, chunk * CHUNK), min(stop, (chunk + 1) * CHUNK)
        chunks.append(rows[low - chunk * CHUNK : high - chunk * CHUNK])
    return l2_normalise(np.concatenate(chunks))


def store_folder(config: BenchConfig, size: int) -> Path:
    h = config.hnsw
    name = f"chroma-{size}-m{h.max_neighbors}-c{h.ef_construction}-s{config.seed}-titles"
    return config.root / name


def synthetic_product(index: int, seed: int) -> tuple[str, dict[str, Any]]:
    """Product `index`'s document (as ingest writes it) and metadata, the same on every run."""
    rng = np.random.default_rng([seed, index])
    brand, gender = BRANDS[rng.integers(len(BRANDS))], GENDERS[rng.integers(len(GENDERS))]
    colour, material = COLOURS[rng.integers(len(COLOURS))], MATERIALS[rng.integers(len(MATERIALS))]
    kind = TYPES[rng.integers(len(TYPES))]
    title = " ".join(w for w in (brand, gender, material, colour, kind) if w)
    stock = int(rng.integers(0, 20))
    metadata = {
        "product_id": f"p{index}",
        "title": title,
        "category": kind,
        "price": round(float(rng.uniform(5, 300)), 2),
        "stock": stock,
        "in_stock": stock > 0,
    }
    document = "\n".join([title, kind, f"colour: {colour}", f"gender: {gender}"])
    return document, metadata


def open_store(config: BenchConfig, size: int) -> KnowledgeStore:
    return KnowledgeStore(path=store_folder(config, size), prefix="bench", hnsw=config.hnsw)


def build(config: BenchConfig, size: int, text_name: str, image_name: str) -> dict[str, float]:
    """Fill the store up to `size` records per collection; returns insert rates (vectors/s),
    remembered in `build.json` so a later run still reports them."""
    record = store_folder(config, size) / "build.json"
    rates: dict[str, float] = json.loads(record.read_text()) if record.exists() else {}
    store = open_store(config, size)
    kinds: tuple[tuple[CollectionKind, int, str], ...] = (
        ("products", TEXT_DIM, text_name),
        ("images", IMAGE_DIM, image_name),
    )
    for kind, dim, encoder in kinds:
        store.collection(kind, encoder=encoder)
        have = store.count(kind)
        if have >= size:
            continue
        started = time.perf_counter()
        with tqdm(total=size, initial=have, desc=f"build {kind} {size}", unit="vec") as bar:
            for low in range(have, size, BATCH):
                high = min(size, low + BATCH)
                products = [synthetic_product(i, config.seed) for i in range(low, high)]
                store.upsert(
                    kind,
                    [f"p{i}" if kind == "products" else f"p{i}#img0" for i in range(low, high)],
                    synthetic_vectors(low, high, dim, config.seed),
                    [document for document, _ in products],
                    [metadata for _, metadata in products],
                )
                bar.update(high - low)
        rates[f"{kind}_insert_per_s"] = round((size - have) / (time.perf_counter() - started), 1)
        record.write_text(json.dumps(rates))
    return rates


def reopen_with_ef(config: BenchConfig, size: int, ef: int) -> KnowledgeStore:
    """Set ef_search and reopen: Chroma applies it only when the collection is loaded again."""
    from chromadb.api.shared_system_client import SharedSystemClient

    store = open_store(config, size)
    settings = {"hnsw": {"ef_search": ef}}
    for kind in ("products", "images"):
        _retry_locked(partial(store.collection(kind).modify, configuration=settings))
    SharedSystemClient.clear_system_cache()
    return open_store(config, size)


def _retry_locked(call: Callable[[], object], attempts: int = 30) -> None:
    """Right after a bulk insert Chroma may still hold SQLite's write lock for a while."""
    for attempt in range(attempts):
        try:
            call()
            return
        except Exception as exc:
            if "database is locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(2)


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": 1000 * ordered[len(ordered) // 2],
        "p95_ms": 1000 * ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
    }


def timed(
    label: str, repeats: int, queries: int, call: Callable[[int], object]
) -> dict[str, float]:
    """Median over repeats of each repeat's p50 and p95 (after one untimed warm-up call)."""
    call(0)
    runs = []
    with tqdm(total=repeats * queries, desc=label, unit="q", leave=False) as bar:
        for _ in range(repeats):
            samples = []
            for q in range(queries):
                started = time.perf_counter()
                call(q)
                samples.append(time.perf_counter() - started)
                bar.update()
            runs.append(percentiles(samples))
    return {key: round(statistics.median(r[key] for r in runs), 2) for key in runs[0]}


def query_photos(count: int, seed: int) -> list[Image.Image]:
    """Seeded synthetic photos: latency does not depend on what the picture shows."""
    rng = np.random.default_rng(seed)
    photos = []
    for _ in range(count):
        image = Image.new("RGB", (480, 640), tuple(int(c) for c in rng.integers(180, 255, 3)))
        draw = ImageDraw.Draw(image)
        for _ in range(6):
            x0, y0 = int(rng.integers(0, 400)), int(rng.integers(0, 560))
            box = (x0, y0, x0 + int(rng.integers(40, 200)), y0 + int(rng.integers(40, 200)))
            draw.ellipse(box, fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
        photos.append(image)
    return photos


def probe_queries(
    matrix: np.ndarray, count: int, seed: int
) -> dict[str, tuple[np.ndarray, list[int]]]:
    """Near-duplicates of stored rows (cosine ≈ 0.8 to their source, like a photo of a listed
    product) with their source rows, and pure random vectors (no source: -1)."""
    rng = np.random.default_rng(seed)
    sources = rng.integers(0, len(matrix), count)
    noise = l2_normalise(rng.standard_normal((count, matrix.shape[1])))
    near = l2_normalise(matrix[sources] + 0.75 * noise)
    random = l2_normalise(rng.standard_normal((count, matrix.shape[1])))
    return {"planted": (near, sources.tolist()), "random": (random, [-1] * count)}


def ann_recall(
    collection: Any, exact: np.ndarray, queries: np.ndarray, sources: list[int], k: int = 10
) -> dict[str, float]:
    """Recall@k of the collection against exact top-k, how often a planted source comes back
    in the top k, and the raw query latency."""
    found, samples = [], []
    for vector in queries:
        started = time.perf_counter()
        result = collection.query(query_embeddings=[vector], n_results=k, include=[])
        samples.append(time.perf_counter() - started)
        found.append({int(i.split("#")[0][1:]) for i in result["ids"][0]})
    truth = np.argsort(-(queries @ exact.T), axis=1)[:, :k]
    recalls = [len(f & set(t.tolist())) / k for f, t in zip(found, truth, strict=True)]
    entry = {"recall@10": round(float(np.mean(recalls)), 4), **percentiles(samples)}
    if sources[0] >= 0:
        hits = [s in f for s, f in zip(sources, found, strict=True)]
        entry["source_found@10"] = round(float(np.mean(hits)), 4)
    return entry


def bench_hybrid(
    config: BenchConfig, store: KnowledgeStore, embedder: Any, size: int, texts: np.ndarray
) -> dict[str, Any]:
    """The text search the API runs (BM25 + dense, fused), over the exact copy and over HNSW,
    with no query-vector cache, unfiltered and filtered; and the copy's recall (1.0 expected)."""
    from retrieval.search.hybrid import HybridOptions, HybridSearcher, SearchFilters

    result: dict[str, Any] = {}
    in_stock = SearchFilters(in_stock=True, max_price=100)
    for name, exact in (("exact", True), ("hnsw", False)):
        searcher = HybridSearcher(store, embedder, HybridOptions(query_cache=0, exact_dense=exact))
        started = time.perf_counter()
        searcher.products(TEXT_QUERIES[0], k=10)
        result[f"hybrid_{name}_first_query_s"] = round(time.perf_counter() - started, 2)
        for label, filters in (("", None), ("_filtered", in_stock)):

            def search(q: int, s: HybridSearcher = searcher, f: Any = filters) -> object:
                return s.products(TEXT_QUERIES[q % len(TEXT_QUERIES)], k=10, filters=f)

            result[f"hybrid_{name}{label}"] = timed(
                f"hybrid text {name}{label} {size}", config.repeats, config.queries, search
            )
        if exact:
            dense = searcher.collections.dense("products")
            probes = probe_queries(texts, config.queries, config.seed + 1)["planted"][0]
            truth = np.argsort(-(probes @ texts.T), axis=1)[:, :10]
            found = [{int(h.id[1:]) for h in dense.search(v, 10)} for v in probes]
            recalls = [len(f & set(t.tolist())) / 10 for f, t in zip(found, truth, strict=True)]
            result["products_exact_recall@10"] = round(float(np.mean(recalls)), 4)
    return result


def rss_mb() -> float:
    """This process's resident memory now (Linux)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def memory_steps(folder: Path, text_embedder: str) -> dict[str, Any]:
    """RSS of this (fresh) process after each step a serving process takes over the store:
    models loaded, one HNSW query per collection (Chroma loads its graphs), the first hybrid
    text search (BM25 and the exact copy of the text vectors), the first exact photo search
    (the copy of the image vectors)."""
    from retrieval.encoders.registry import get_image_encoder, get_text_embedder
    from retrieval.search.hybrid import HybridOptions, HybridSearcher

    steps: dict[str, Any] = {"disk_mb": round(folder_bytes(folder) / 2**20, 1)}
    steps["started_mb"] = rss_mb()
    embedder = get_text_embedder(text_embedder)
    encoder = get_image_encoder()
    encoder.embed_images([])
    steps["models_loaded_mb"] = rss_mb()
    store = KnowledgeStore(path=folder, prefix="bench", hnsw=HnswSettings())
    store.query("products", np.ones(TEXT_DIM, dtype=np.float32), 10)
    store.query("images", np.ones(IMAGE_DIM, dtype=np.float32), 10)
    steps["hnsw_graphs_loaded_mb"] = rss_mb()
    searcher = HybridSearcher(store, embedder, HybridOptions(exact_dense=True))
    searcher.products(TEXT_QUERIES[0], k=10)
    steps["bm25_and_text_copy_mb"] = rss_mb()
    MirroredStoreIndex(store, encoder.name).nearest(np.ones((1, IMAGE_DIM), np.float32), 1)
    steps["image_copy_mb"] = rss_mb()
    return steps


def bench_size(config: BenchConfig, size: int) -> dict[str, Any]:
    from retrieval.encoders.registry import get_image_encoder, get_text_embedder
    from retrieval.search.types import product_from_metadata

    encoder = get_image_encoder()
    embedder = get_text_embedder(config.text_embedder)
    result: dict[str, Any] = {"size": size, **build(config, size, embedder.name, encoder.name)}
    images = synthetic_vectors(0, size, IMAGE_DIM, config.seed)
    texts = synthetic_vectors(0, size, TEXT_DIM, config.seed)

    result["ann"] = {}
    for ef in tqdm(config.ef_values, desc=f"ef_search sweep at {size}", unit="ef"):
        store = reopen_with_ef(config, size, ef)
        entry: dict[str, Any] = {}
        collections: tuple[tuple[CollectionKind, np.ndarray], ...] = (
            ("images", images),
            ("products", texts),
        )
        for kind, matrix in collections:
            probes = probe_queries(matrix, config.queries, config.seed + 1)
            for probe, (vectors, sources) in probes.items():
                entry[f"{kind}_{probe}"] = ann_recall(
                    store.collection(kind), matrix, vectors, sources
                )
        result["ann"][str(ef)] = entry

    store = reopen_with_ef(config, size, config.hnsw.ef_search)
    result["ef_search"] = config.hnsw.ef_search

    def text_search(q: int) -> list[Any]:
        vector = embedder.embed_texts([TEXT_QUERIES[q % len(TEXT_QUERIES)]], kind="query")[0]
        store.collection("products", encoder=embedder.name)
        hits = store.query("products", vector, 10)
        return [product_from_metadata(h.id, h.score, h.metadata) for h in hits]

    result["text_search"] = timed(
        f"text search {size}", config.repeats, config.queries, text_search
    )
    result["disk_mb"] = round(folder_bytes(store_folder(config, size)) / 2**20, 1)
    result["rss_before_copies_mb"] = rss_mb()
    result.update(bench_hybrid(config, store, embedder, size, texts))
    photos = query_photos(config.queries, config.seed)
    matcher = PhotoMatcher(StoreImageIndex(store, encoder.name), encoder)
    result["photo_search_hnsw"] = timed(
        f"photo search HNSW {size}",
        config.repeats,
        config.queries,
        lambda q: matcher.search(photos[q], k=10),
    )
    result["rss_text_copies_mb"] = rss_mb()
    mirror = MirroredStoreIndex(store, encoder.name)
    started = time.perf_counter()
    mirror.nearest(np.zeros((1, IMAGE_DIM), dtype=np.float32), 1)
    result["mirror_load_s"] = round(time.perf_counter() - started, 2)
    result["rss_all_copies_mb"] = rss_mb()
    exact_matcher = PhotoMatcher(mirror, encoder)
    result["photo_search_exact"] = timed(
        f"photo search exact {size}",
        config.repeats,
        config.queries,
        lambda q: exact_matcher.search(photos[q], k=10),
    )
    result["photo_search_trained_exact"] = bench_trained_photo(config, size, photos)
    planted = probe_queries(images, config.queries, config.seed + 2)["planted"][0]
    result["exact_numpy_top10"] = timed(
        f"exact top-10 {size}",
        config.repeats,
        config.queries,
        lambda q: np.argpartition(-(images @ planted[q]), 10)[:10],
    )
    result["image_encoder_one_view"] = timed(
        f"encoder {size}",
        config.repeats,
        config.queries,
        lambda q: encoder.embed_images([photos[q]]),
    )
    result["views"] = list(matcher.config.views)
    return result


def bench_trained_photo(
    config: BenchConfig, size: int, photos: list[Image.Image]
) -> dict[str, float]:
    """Photo search as it runs once `train photo-match` has run: the five-stage encoder and the
    default head on every query view, then the exact in-memory index the server searches (the
    `ArrayImageIndex` that `MirroredStoreIndex` keeps), here filled with synthetic vectors of
    the trained width (1,792) instead of read from Chroma."""
    from retrieval.encoders.registry import get_stage_encoder

    shape = EmbeddingConfig()
    head = PhotoEmbeddingHead.untrained(
        STAGE_DIM, shape.dim, shape.hidden, shape.frozen_share, config.seed
    )
    metadata = [synthetic_product(i, config.seed)[1] for i in range(size)]
    index = ArrayImageIndex(
        synthetic_vectors(0, size, head.dim, config.seed),
        [m["product_id"] for m in metadata],
        [m["category"] for m in metadata],
    )
    encoder = TrainedPhotoEncoder(get_stage_encoder(), head, "photo-embed-bench")
    matcher = PhotoMatcher(index, encoder)
    return timed(
        f"trained photo search exact {size}",
        config.repeats,
        config.queries,
        lambda q: matcher.search(photos[q], k=10),
    )


def render(results: list[dict[str, Any]]) -> str:
    def pair(entry: dict[str, float]) -> str:
        return f"{entry['p50_ms']}/{entry['p95_ms']}"

    lines = [
        "| size | hybrid text, exact copy p50/p95 ms (filtered) | hybrid text, HNSW (filtered) | "
        "dense text HNSW | photo HNSW | photo exact | trained photo exact | "
        "encoder (1 view) p50 ms | exact top-10 p50 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['size']} | {pair(r['hybrid_exact'])} ({pair(r['hybrid_exact_filtered'])}) | "
            f"{pair(r['hybrid_hnsw'])} ({pair(r['hybrid_hnsw_filtered'])}) | "
            f"{pair(r['text_search'])} | {pair(r['photo_search_hnsw'])} | "
            f"{pair(r['photo_search_exact'])} | {pair(r['photo_search_trained_exact'])} | "
            f"{r['image_encoder_one_view']['p50_ms']} | "
            f"{r['exact_numpy_top10']['p50_ms']} |"
        )
    lines += [
        "",
        "| size | disk MB | RSS MB: store open, + text copies, + image copy | first text query s | "
        "image copy load s | exact copy recall@10 | insert vectors/s (products, images) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['size']} | {r['disk_mb']} | {r['rss_before_copies_mb']}, "
            f"{r['rss_text_copies_mb']}, {r['rss_all_copies_mb']} | "
            f"{r['hybrid_exact_first_query_s']} | {r['mirror_load_s']} | "
            f"{r['products_exact_recall@10']} | {r.get('products_insert_per_s', '-')}, "
            f"{r.get('images_insert_per_s', '-')} |"
        )
    lines += [
        "",
        "| size | ef_search | collection | queries | recall@10 | source found@10 | p50 ms | p95 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for ef, entry in r["ann"].items():
            for name, value in entry.items():
                kind, probe = name.split("_")
                lines.append(
                    f"| {r['size']} | {ef} | {kind} | {probe} | {value['recall@10']} | "
                    f"{value.get('source_found@10', '-')} | "
                    f"{value['p50_ms']:.2f} | {value['p95_ms']:.2f} |"
                )
    return "\n".join(lines)


def parse_ints(text: str) -> tuple[int, ...]:
    return tuple(demo_size() if part == "demo" else int(part) for part in text.split(","))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sizes", default="demo,100000", help="Catalogue sizes; demo = demo shop.")
    parser.add_argument("--queries", type=int, default=100, help="Queries per repeat.")
    parser.add_argument("--repeats", type=int, default=3, help="Repeats; medians are reported.")
    parser.add_argument("--ef", default="50,200,800", help="ef_search values to sweep.")
    parser.add_argument("--m", type=int, default=32, help="HNSW max_neighbors (M), set at build.")
    parser.add_argument("--ef-construction", type=int, default=200, help="Set at build.")
    parser.add_argument("--ef-search", type=int, default=200, help="ef_search for the timings.")
    parser.add_argument(
        "--text-embedder", default="e5", choices=["e5", "minilm", "minilm-static", "hash"]
    )
    parser.add_argument("--root", type=Path, default=Path("data/bench"), help="Index cache.")
    parser.add_argument("--out", type=Path, default=None, help="Result folder (default: --root).")
    parser.add_argument("--json", action="store_true", help="Print JSON instead of tables.")
    parser.add_argument(
        "--memory",
        action="store_true",
        help="Only measure this process's memory over the (already built) store of each size.",
    )
    args = parser.parse_args(argv)
    # As `shopsight serve` runs: idle OpenMP threads sleep instead of spinning.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        sizes, ef_values = parse_ints(args.sizes), parse_ints(args.ef)
    except ValueError:
        print(f"error: --sizes/--ef take comma-separated integers: {args.sizes!r}", file=sys.stderr)
        return 2
    config = BenchConfig(
        sizes=sizes,
        queries=args.queries,
        repeats=args.repeats,
        ef_values=ef_values,
        hnsw=HnswSettings(args.m, args.ef_construction, args.ef_search),
        text_embedder=args.text_embedder,
        root=args.root,
    )
    if args.memory:
        for size in sizes:
            folder = store_folder(config, size)
            if not folder.exists():
                print(f"error: no store of {size} under {args.root}: run without --memory first")
                return 2
            print(json.dumps({"size": size, **memory_steps(folder, args.text_embedder)}))
        return 0
    import torch

    results = [bench_size(config, size) for size in sizes]
    payload = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "torch_threads": torch.get_num_threads(),
        "config": {**asdict(config), "root": str(config.root)},
        "results": results,
    }
    out = args.out or args.root
    out.mkdir(parents=True, exist_ok=True)
    (out / "search.json").write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")
    print(json.dumps(payload, indent=2, default=str) if args.json else render(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
