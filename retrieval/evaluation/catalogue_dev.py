"""The shop-scale evaluation catalogue, built from `../shared/data/product-catalogue-dev`.

One builder for the tools, the benchmarks and the tests, so "the 3,000-product catalogue" is
the same rows everywhere: products with a photo, lowest ids first, with a price and a stock
level drawn from a seed fixed per product id (the source has neither), so adding products never
changes the price of one already in the catalogue.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np

DEFAULT_SOURCE = Path(__file__).resolve().parents[2].parent / "shared/data/product-catalogue-dev"
COLUMNS = ["id", "title", "category", "images", "price", "stock", "attributes"]
PRICE_SEED = 20241207

# Typical shop prices in USD by master category; a product's price is drawn around its own.
BASE_PRICES = {"Apparel": 35.0, "Footwear": 70.0, "Accessories": 30.0, "Personal Care": 15.0}
OUT_OF_STOCK_SHARE = 0.1


def price_and_stock(product_id: str, master_category: str) -> tuple[float, int]:
    """A seeded price (log-normal around the category's) and stock (10 % sold out)."""
    digest = hashlib.sha256(f"{PRICE_SEED}:{product_id}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    base = BASE_PRICES.get(master_category, 25.0)
    price = round(float(base * rng.lognormal(0.0, 0.5)), 2)
    stock = 0 if rng.random() < OUT_OF_STOCK_SHARE else int(rng.integers(1, 40))
    return max(price, 1.0), stock


def catalogue_rows(
    source: Path = DEFAULT_SOURCE, products: int = 3000, skip: int = 0
) -> list[dict[str, str]]:
    """The catalogue's rows as CSV columns (`COLUMNS`), images as absolute paths."""
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
        price, stock = price_and_stock(style["id"], style["masterCategory"])
        out.append(
            {
                "id": style["id"],
                "title": style["productDisplayName"],
                "category": style["articleType"],
                "images": str((source / "images" / f"{style['id']}.jpg").resolve()),
                "price": f"{price:.2f}",
                "stock": str(stock),
                "attributes": json.dumps(attributes),
            }
        )
    return out


def write_catalogue(rows: list[dict[str, str]], out: Path) -> Path:
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return out
