"""Precision@5 of product search by attributes on the 3,000-product evaluation catalogue.

    python bench/attribute_search.py                    # builds the store once, then reuses it
    python bench/attribute_search.py --json --k 5

The catalogue (`retrieval.evaluation.catalogue_dev`, built from ../shared/data/product-catalogue-dev)
is ingested text only (photos play no part in a text search, and skipping them saves minutes)
into a Chroma store under `--root`. Each query of `--queries` is parsed, filtered and ranked by
hybrid search exactly as a chat turn does (`retrieval.search.attributes.search_catalogue`); a
result counts as relevant when it satisfies the query's labelled constraints. The report, with
each query's score, goes to `--out`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from tqdm import tqdm

from assistant.components import Components
from assistant.settings import Settings
from knowledge_base.loaders import load_paths
from retrieval.evaluation.attribute_search import evaluate, load_queries
from retrieval.evaluation.catalogue_dev import DEFAULT_SOURCE, catalogue_rows, write_catalogue
from retrieval.search.attributes import Catalogue

QUERIES = Path(__file__).resolve().parents[1] / "tests/assistant/turn/data/attribute_queries.yaml"


def text_only_store(data_dir: Path, products: int, text_embedder: str) -> Components:
    """Components over a store holding the catalogue's first `products` products without
    their photos; ingesting an unchanged catalogue again embeds nothing."""
    rows = [{**row, "images": ""} for row in catalogue_rows(products=products)]
    data_dir.mkdir(parents=True, exist_ok=True)
    csv_path = write_catalogue(rows, data_dir / f"catalogue-{products}.csv")
    components = Components(Settings(data_dir=data_dir, text_embedder=text_embedder))
    report = components.ingestor.ingest(load_paths([csv_path]))
    if not report.ok:
        raise SystemExit(f"ingest failed: {report.rejections[:3]}")
    return components


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--products", type=int, default=3000)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--queries", type=Path, default=QUERIES)
    parser.add_argument(
        "--text-embedder", default="e5", choices=["e5", "minilm", "minilm-static", "hash"]
    )
    parser.add_argument("--root", type=Path, default=Path("data/bench/attribute-search"))
    parser.add_argument("--out", type=Path, default=Path("data/reports/attribute-search.json"))
    parser.add_argument("--json", action="store_true", help="Print the whole report as JSON.")
    parser.add_argument(
        "--baseline", action="store_true", help="Also score plain hybrid search (no filters)."
    )
    args = parser.parse_args()
    if not DEFAULT_SOURCE.is_dir():
        sys.exit(f"the evaluation catalogue is not at {DEFAULT_SOURCE}")
    components = text_only_store(args.root / args.text_embedder, args.products, args.text_embedder)
    hits = components.store.get("products")
    catalogue = Catalogue((hit.id, hit.metadata) for hit in hits)
    queries = load_queries(args.queries)
    # Warm-up: the embedder's first call and the BM25 index build are not per-query costs.
    evaluate(catalogue, components.hybrid_searcher, queries[:1], k=args.k)
    seconds = []
    reports = []
    for labelled in tqdm(queries, desc="queries", unit="query", disable=args.json):
        started = time.perf_counter()
        reports.append(evaluate(catalogue, components.hybrid_searcher, [labelled], k=args.k))
        seconds.append(time.perf_counter() - started)
    scores = [score for report in reports for score in report.scores]
    precision = round(sum(s.precision for s in scores) / len(scores), 4)
    baseline = (
        evaluate(catalogue, components.hybrid_searcher, queries, args.k, attributes=False)
        if args.baseline
        else None
    )
    result = {
        "precision_at_k": precision,
        "baseline_precision_at_k": baseline.precision_at_k if baseline else None,
        "k": args.k,
        "queries": len(scores),
        "products": len(hits),
        "text_embedder": args.text_embedder,
        "median_ms_per_query": round(1000 * statistics.median(seconds), 1),
        "scores": [s.model_dump() for s in scores],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return
    for score in scores:
        if score.precision < 1.0:
            print(f"{score.precision:.2f}  {score.query!r} → {score.understood} ({score.relaxed})")
    print(
        f"precision@{args.k}: {precision} over {len(scores)} queries, {len(hits)} products "
        f"({args.text_embedder}); median {result['median_ms_per_query']} ms per query "
        f"(parse, filter, rank and score); report in {args.out}"
    )
    if baseline is not None:
        print(f"baseline, hybrid search without attribute filters: {baseline.precision_at_k}")


if __name__ == "__main__":
    main()
