"""How often does photo search put a product of the photo's own category first?

Usage: python bench/category_agreement.py QUERY_FOLDER [--k 5] [--label-map FILE]
QUERY_FOLDER has one sub-folder per category (e.g. ../shared/data/clothing-small/validation);
the store is the configured one (SHOPSIGHT_DATA_DIR / SHOPSIGHT_CHROMA_URL), already ingested.
When the store's categories are named otherwise (product-catalogue-dev's article types),
`--label-map` gives, per folder name, the catalogue categories that count as the same
(bench/clothing_categories.json). Reports per-folder figures, the photo search's latency and
which photo model answered.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from assistant.components import Components
from assistant.settings import Settings
from knowledge_base.folders import list_image_folder
from knowledge_base.images import load_image


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("queries", type=Path)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--label-map", type=Path, default=None)
    args = parser.parse_args()
    components = Components(Settings())
    paths, labels = list_image_folder(args.queries)
    same: dict[str, set[str]] = {}
    if args.label_map:
        same = {k: set(v) for k, v in json.loads(args.label_map.read_text()).items()}

    def agrees(category: str, label: str) -> bool:
        return category in same.get(label, {label})

    top1 = 0
    majority = 0
    latencies = []
    per_label: dict[str, list[bool]] = {}
    for path, label in tqdm(list(zip(paths, labels, strict=True)), desc="queries", unit="photo"):
        started = time.perf_counter()
        image = load_image(
            path, components.settings.max_image_pixels, components.settings.max_image_side
        )
        matches = components.search_photo(image, k=args.k).matches
        latencies.append(time.perf_counter() - started)
        first = bool(matches) and agrees(matches[0].category, label)
        top1 += first
        per_label.setdefault(label, []).append(first)
        votes = Counter(m.category for m in matches)
        majority += bool(votes) and agrees(votes.most_common(1)[0][0], label)
    latencies.sort()
    result = {
        "queries": len(paths),
        "top1_same_category": round(top1 / len(paths), 4),
        f"top{args.k}_majority_same_category": round(majority / len(paths), 4),
        "latency_ms_p50": round(1000 * latencies[len(latencies) // 2], 1),
        "latency_ms_p95": round(1000 * latencies[int(len(latencies) * 0.95)], 1),
        "photo_model": components.photo_model_in_use(),
        "products": components.store.count("products"),
        "top1_same_category_by_folder": {
            label: round(sum(hits) / len(hits), 3) for label, hits in sorted(per_label.items())
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
