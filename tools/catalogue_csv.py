"""Turn `../shared/data/product-catalogue-dev` into a ShopSight catalogue CSV for evaluation.

    python tools/catalogue_csv.py --products 3000 --out catalogue3000.csv
    python tools/catalogue_csv.py --skip 3000 --products 10000 --out unlisted.csv

Keeps the products with a photo, lowest ids first, so the same command always gives the same
catalogue; `--skip` starts after that many, so the second command gives the products the first
catalogue does not sell (for `eval photo-search --unlisted` and `--distractors`); columns: id,
title, category (article type), images (absolute path), price and stock (seeded per product),
attributes. The rows come from `retrieval.evaluation.catalogue_dev`, which the tests share.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from retrieval.evaluation.catalogue_dev import DEFAULT_SOURCE, catalogue_rows, write_catalogue


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--products", type=int, default=3000)
    parser.add_argument("--skip", type=int, default=0, help="Products left out first.")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    selected = catalogue_rows(args.source, args.products, args.skip)
    write_catalogue(selected, args.out)
    print(f"{len(selected)} products → {args.out}")


if __name__ == "__main__":
    main()
