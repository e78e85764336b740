"""Turn `../shared/data/product-catalogue-dev` into a ShopSight catalogue CSV for evaluation.

    python tools/catalogue_csv.py --products 3000 --out catalogue3000.csv
    python tools/catalogue_csv.py --skip 3000 --products 10000 --out unlisted.csv

Keeps the products with a photo, lowest ids first, so the same command always gives the same
catalogue; `--skip` starts after that many, so the second command gives the products the first
catalogue does not sell (for `eval photo-search --unlisted` and `--distractors`); columns: id, title, category (article type), images (absolute path), attributes.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

DEFAULT_SOURCE = Path(__file__).resolve().parents[1].parent / "shared/data/product-catalogue-dev"


def rows(source: Path, products: int, skip: int = 0) -> list[dict[str, str]]:
    with (source / "styles.csv").open(newline="", encoding="utf-8") as handle:
        styles = [
            r for r in csv.DictReader(handle) if (source / "images" / f"{r['id']}.jpg").is_file()
        ]
    styles.sort(key=lambda r: int(r["id"]))
    out = []
    for style in styles[skip : skip + products]:
        attributes = {
            "gender": style["gender"],
            "colour": style["baseColour"],
            "season": style["season"],
            "usage": style["usage"],
            "master_category": style["masterCategory"],
            "sub_category": style["subCategory"],
        }
        out.append(
            {
                "id": style["id"],
                "title": style["productDisplayName"],
                "category": style["articleType"],
                "images": str((source / "images" / f"{style['id']}.jpg").resolve()),
                "attributes": json.dumps(attributes),
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--products", type=int, default=3000)
    parser.add_argument("--skip", type=int, default=0, help="Products left out first.")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    selected = rows(args.source, args.products, args.skip)
    with args.out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(
            handle, fieldnames=["id", "title", "category", "images", "attributes"]
        )
        writer.writeheader()
        writer.writerows(selected)
    print(f"{len(selected)} products → {args.out}")


if __name__ == "__main__":
    main()
