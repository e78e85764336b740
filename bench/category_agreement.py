"""How often does photo search put a product of the photo's own category first?

Usage: python bench/category_agreement.py QUERY_FOLDER [--k 5]
QUERY_FOLDER has one sub-folder per category (e.g. ../shared/data/clothing-small/validation);
the store is the configured one (SHOPSIGHT_DATA_DIR / SHOPSIGHT_CHROMA_URL), already ingested.
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
    args = parser.parse_args()
    components = Components(Settings())
    paths, labels = list_image_folder(args.queries)
    top1 = 0
    majority = 0
    latencies = []
    for path, label in tqdm(list(zip(paths, labels, strict=True)), desc="queries", unit="photo"):
        started = time.perf_counter()
        image = load_image(
            path, components.settings.max_image_pixels, components.settings.max_image_side
        )
        matches = components.search_photo(image, k=args.k).matches
        latencies.append(time.perf_counter() - started)
        top1 += bool(matches) and matches[0].category == label
        votes = Counter(m.category for m in matches)
        majority += bool(votes) and votes.most_common(1)[0][0] == label
    latencies.sort()
    result = {
        "queries": len(paths),
        "top1_same_category": round(top1 / len(paths), 4),
        f"top{args.k}_majority_same_category": round(majority / len(paths), 4),
        "latency_ms_p50": round(1000 * latencies[len(latencies) // 2], 1),
        "latency_ms_p95": round(1000 * latencies[int(len(latencies) * 0.95)], 1),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
