"""Is the trained matcher's Grad-CAM faithful, and how long does one take?

Usage: python bench/matcher_cam.py QUERY_FOLDER GALLERY_FOLDER [--photos 30] [--gallery 600]
The trained matcher is the newest `photo-embed-vN` under SHOPSIGHT_DATA_DIR/artifacts. Each
query photo (seeded sample) is matched against the gallery's first images with the trained
embedding; the deletion test of `explain.faithfulness` then hides the hottest 20 % of its
heatmap and 5 random block masks of the same area. Reports the margins (explanation's drop
minus random's), the same for the frozen encoder's Grad-CAM, and the median time per heatmap.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from assistant.cli.common import passive_openmp
from assistant.settings import Settings
from explain.faithfulness import image_deletion, summarise
from explain.gradcam import GradCam, similarity_target
from explain.matcher_cam import MatcherCam
from knowledge_base.folders import list_image_folder
from retrieval.encoders.registry import get_stage_encoder
from retrieval.heads.photo_embedding import load_trained_matcher


def margins(cam: Any, photos: list[Image.Image], gallery: list[Image.Image]) -> dict[str, Any]:
    vectors = np.concatenate([cam.reference(image).numpy() for image in gallery])
    results, seconds = [], []
    for index, image in enumerate(photos):
        query = cam.reference(image)[0].numpy()
        match = vectors[int(np.argmax(vectors @ query))]
        started = time.perf_counter()
        heat = cam.similarity(image, match)
        seconds.append(time.perf_counter() - started)
        target = similarity_target(cam.reference(match))
        results.append(image_deletion(cam, image, heat, target, draws=5, seed=index))
    return {**summarise(results).to_dict(), "median_ms": 1000 * statistics.median(seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("queries", type=Path)
    parser.add_argument("gallery", type=Path)
    parser.add_argument("--photos", type=int, default=30)
    parser.add_argument("--gallery-size", type=int, default=600)
    args = parser.parse_args()
    passive_openmp()
    trained = load_trained_matcher(Settings().artifacts_dir)
    if trained is None:
        raise SystemExit("no trained matcher: run `shopsight train photo-match` first")
    paths, _ = list_image_folder(args.queries)
    rng = np.random.default_rng(0)
    chosen = sorted(rng.choice(len(paths), size=min(args.photos, len(paths)), replace=False))
    photos = [Image.open(paths[i]).convert("RGB") for i in chosen]
    gallery_paths, _ = list_image_folder(args.gallery)
    gallery = [Image.open(p).convert("RGB") for p in gallery_paths[: args.gallery_size]]
    for name, cam in (
        (trained.encoder_name, MatcherCam(get_stage_encoder(), trained.head)),
        ("frozen efficientnet-lite0", GradCam()),
    ):
        summary = margins(cam, photos, gallery)
        print(name, {k: round(v, 4) if isinstance(v, float) else v for k, v in summary.items()})


if __name__ == "__main__":
    main()
