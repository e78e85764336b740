"""Ingestion throughput: images/s and text chunks/s with the real encoders, median of repeats.

Usage: python bench/ingest.py [--images 96] [--articles 40] [--repeats 3] [--json]
                              [--text-embedder e5|minilm|minilm-static|hash]
                              [--catalogue FILE]
Each repeat ingests freshly generated data into an empty embedded store, so nothing is skipped.
Models are loaded (and the static embedder distilled, into --cache) before the first repeat,
which is a warm-up and not reported.

With `--catalogue FILE` (a product CSV with images, e.g. from `tools/catalogue_csv.py`) each
repeat ingests that catalogue into an empty store instead and reports products with images per
second; the warm-up only loads the models. Beside it, the two encoders are timed alone on the
catalogue's own texts and images, so the report shows which stage bounds the rate.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from assistant.components import Components
from assistant.settings import Settings
from knowledge_base.images import load_image
from knowledge_base.loaders import load_paths
from retrieval.encoders.registry import get_image_encoder, get_text_embedder

_WORDS = [
    "order",
    "parcel",
    "delivery",
    "refund",
    "return",
    "exchange",
    "warranty",
    "payment",
    "card",
    "invoice",
    "shipping",
    "customs",
    "size",
    "colour",
    "tracking",
    "account",
    "password",
    "gift",
    "voucher",
    "damaged",
    "replacement",
]


def make_inputs(root: Path, images: int, articles: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for index in range(images):
        folder = root / "photos" / f"class{index % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 255, size=(8, 8, 3), dtype=np.uint8)
        Image.fromarray(pixels).resize((400, 533), Image.Resampling.BICUBIC).save(
            folder / f"{index}.jpg"
        )
    docs = root / "articles"
    docs.mkdir(parents=True, exist_ok=True)
    for index in range(articles):
        body = "\n\n".join(" ".join(rng.choice(_WORDS, size=60)) + "." for _ in range(4))
        (docs / f"a{index}.md").write_text(f"---\nid: a{index}\n---\n# Article {index}\n\n{body}\n")


def _ms_per_item(work: Callable[[], object], items: int) -> float:
    started = time.perf_counter()
    work()
    return round((time.perf_counter() - started) * 1000 / max(items, 1), 2)


def catalogue_run(catalogue: Path, text_embedder: str, cache: Path, repeats: int) -> dict:
    """Products/s of a full ingest of `catalogue`, median of `repeats` runs into empty stores."""
    text = get_text_embedder(text_embedder, cache)
    image = get_image_encoder()
    loaded = load_paths([catalogue])
    if not loaded.products or not all(p.images for p in loaded.products):
        raise SystemExit(f"{catalogue}: expected products with an image each")
    sample = loaded.products[:256]
    texts = [p.dense_text() for p in sample]
    images = [load_image(p.images[0], 40_000_000) for p in sample]
    stages = {
        "text_embed_ms_per_product": _ms_per_item(lambda: text.embed_texts(texts), len(texts)),
        "image_embed_ms_per_image": _ms_per_item(lambda: image.embed_images(images), len(images)),
    }
    rates = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(data_dir=Path(tmp) / "data", text_embedder=text_embedder)
            components = Components(settings, progress=False)
            report = components.ingestor.ingest(load_paths([catalogue]))
            if report.images_embedded != len(loaded.products):
                raise SystemExit(f"only {report.images_embedded} images ingested: {report}")
            rates.append(report.products_embedded / report.seconds)
    return {
        "products_per_s_median": round(statistics.median(rates), 1),
        "products_per_s_runs": [round(r, 1) for r in rates],
        "products": len(loaded.products),
        "text_embedder": text_embedder,
        **stages,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--articles", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--text-embedder", default="e5", choices=["e5", "minilm", "minilm-static", "hash"]
    )
    parser.add_argument("--cache", type=Path, default=Path("data/cache"), help="Derived models.")
    parser.add_argument(
        "--catalogue", type=Path, help="Product CSV with images: report products/s on it."
    )
    args = parser.parse_args()
    if args.catalogue is not None:
        _print(catalogue_run(args.catalogue, args.text_embedder, args.cache, args.repeats), args)
        return
    # Loaded once here: every repeat's Components gets this instance from the registry.
    get_text_embedder(args.text_embedder, args.cache)
    image_rates, chunk_rates = [], []
    for repeat in range(args.repeats + 1):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            make_inputs(root, args.images, args.articles, seed=repeat)
            settings = Settings(data_dir=root / "data", text_embedder=args.text_embedder)
            components = Components(settings, progress=False)
            photos = components.ingestor.ingest(load_paths([root / "photos"]))
            texts = components.ingestor.ingest(load_paths([root / "articles"]))
            if repeat == 0:
                continue  # warm-up: model loading and first-call costs
            image_rates.append(photos.images_embedded / photos.seconds)
            chunk_rates.append(texts.chunks_embedded / texts.seconds)
    result = {
        "images_per_s_median": round(statistics.median(image_rates), 1),
        "chunks_per_s_median": round(statistics.median(chunk_rates), 1),
        "images_per_s_runs": [round(r, 1) for r in image_rates],
        "chunks_per_s_runs": [round(r, 1) for r in chunk_rates],
        "images": args.images,
        "articles": args.articles,
        "text_embedder": args.text_embedder,
        "note": "image runs include product-text embedding of one short title per image",
    }
    _print(result, args)


def _print(result: dict, args: argparse.Namespace) -> None:
    print(
        json.dumps(result, indent=2)
        if args.json
        else "\n".join(f"{k}: {v}" for k, v in result.items())
    )


if __name__ == "__main__":
    main()
