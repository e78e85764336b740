"""Latency of one chat turn with the default responder: p50/p95 of text turns and photo turns.

    python bench/turn.py                         # 5 repeats
    python bench/turn.py --repeats 3 --json
    python bench/turn.py --workdir /tmp/turns    # keep the ingested shop for the next run
    python bench/turn.py --catalogue catalogue3000.csv --workdir /tmp/turns3k

Builds `Components` over a temporary data folder (or `--workdir`) with the demo shop ingested
and the trained heads of `--artifacts` (default: SHOPSIGHT_DATA_DIR/artifacts) linked in, so the
models that answer are those of the app. `--catalogue FILE` ingests a shop's catalogue as well
and takes the photo turns from its images, so photo search runs at that catalogue's size (with
the trained photo matcher once the stored images are re-embedded, which happens on ingest);
`--grow-to 100000` then adds look-alike copies of its products up to that size. It warms every model with untimed turns of each kind,
then times `engine.handle_turn` end to end (safety, perception, retrieval, reply, memory) over:

- text turns, English and Chinese: FAQ questions, product questions and follow-ups that rely
  on the product of the previous turn (one session per conversation);
- photo turns: demo product photos as they are, and as a customer sends them (smaller in a
  larger frame, slightly rotated, or cropped, re-encoded as JPEG), with or without words.

Every repeat words its questions a little differently (a greeting, a thanks), so cached query
embeddings do not make later repeats look faster than a customer's first question. The reply is
the default, grounded responder (`drafter="none"`); explanations are off (`evidence_mode="off"`):
they are computed after the reply and are not part of a turn's latency. Aims: text p95 <= 300 ms
and photo p95 <= 600 ms on 2 cores. The load average is recorded with the figures, since other
work on the machine inflates them. The JSON result goes to `--out`.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from assistant.components import Components
from assistant.settings import Settings
from assistant.turn.schemas import TurnRequest
from knowledge_base.demo import DEMO_SHOP
from knowledge_base.loaders import load_paths
from knowledge_base.store import CollectionKind, KnowledgeStore

AIMS_MS = {"text": 300.0, "photo": 600.0}

# `--grow-to`: look-alike copies of the catalogue's products (see `add_lookalikes`).
LOOKALIKE_PREFIX = "lookalike-"
LOOKALIKE_COSINE = (0.55, 0.92)
LOOKALIKE_BATCH = 1_000

# Conversations of text turns: (group, message). Each runs in its own session, in order.
CONVERSATIONS: tuple[tuple[tuple[str, str], ...], ...] = (
    (("faq en", "How long does delivery take?"),),
    (("faq en", "Can I return an item I bought five weeks ago?"),),
    (("faq en", "I forgot my password, how do I reset it?"),),
    (("faq en", "Do I have to pay customs fees when you ship abroad?"),),
    (("faq zh", "退货政策是什么？"),),
    (("faq zh", "快递一般几天能到？"),),
    (("faq zh", "我忘记密码了怎么办？"),),
    (
        ("product en", "Do you have the Floral Wrap Midi Dress in stock?"),
        ("follow-up en", "How much is it?"),
        ("follow-up en", "Which sizes does it come in?"),
    ),
    (
        ("product zh", "经典圆领T恤有白色的吗？"),
        ("follow-up zh", "多少钱？"),
    ),
    (
        ("complaint en", "My parcel still has not arrived after two weeks, this is ridiculous."),
        ("complaint en", "I want to talk to a real person now."),
    ),
)
GREETINGS = {
    "en": ("", "Hi, ", "Hello! ", "Quick question: ", "Good morning, "),
    "zh": ("", "你好，", "请问"),
}
THANKS = {"en": ("", " Thanks!", " Thank you."), "zh": ("", "谢谢！")}
PHOTO_WORDS = ("", "Do you have this one?", "这个还有货吗？", "How much is this?")
PHOTO_KINDS = ("as listed", "framed", "cropped")


@dataclass(frozen=True)
class Turn:
    kind: str  # "text" or "photo"
    group: str
    text: str = ""
    image: bytes | None = None


def language(group: str) -> str:
    return "zh" if group.endswith("zh") else "en"


def worded(message: str, lang: str, variant: int) -> str:
    """The message with one of the greeting/thanks combinations (variant 0: as written)."""
    greetings, thanks = GREETINGS[lang], THANKS[lang]
    greeting = greetings[variant % len(greetings)]
    ending = thanks[(variant // len(greetings)) % len(thanks)]
    return f"{greeting}{message}{ending}"


def photo_bytes(path: Path, kind: str, rng: np.random.Generator) -> bytes:
    """A demo photo as listed (its own file), framed like a snapshot of a screen or a product on
    a table (smaller, off-centre, slightly rotated on a coloured background), or cropped."""
    if kind == "as listed":
        return path.read_bytes()
    image = Image.open(path).convert("RGB")
    width, height = image.size
    if kind == "framed":
        scale = float(rng.uniform(0.55, 0.8))
        small = image.resize((round(width * scale), round(height * scale)))
        small = small.rotate(float(rng.uniform(-8, 8)), expand=True, fillcolor=(235, 235, 230))
        background = tuple(int(c) for c in rng.integers(150, 230, 3))
        canvas = Image.new("RGB", (width, height), background)
        left = int(rng.integers(0, max(1, width - small.width)))
        top = int(rng.integers(0, max(1, height - small.height)))
        canvas.paste(small, (left, top))
        image = canvas
    else:
        share = float(rng.uniform(0.7, 0.85))
        crop_w, crop_h = round(width * share), round(height * share)
        left = int(rng.integers(0, width - crop_w + 1))
        top = int(rng.integers(0, height - crop_h + 1))
        image = image.crop((left, top, left + crop_w, top + crop_h)).resize((width, height))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=82)
    return out.getvalue()


def demo_photos(count: int, catalogues: Sequence[Path] = ()) -> list[Path]:
    """`count` product photos spread over the catalogues' images (default: the demo shop's)."""
    photos = sorted((DEMO_SHOP / "images").glob("*.png"))
    if catalogues:
        photos = [image for p in load_paths(list(catalogues)).products for image in p.images]
    step = max(1, len(photos) // count)
    return photos[::step][:count]


def conversations(repeat: int) -> list[list[Turn]]:
    """The text conversations of one repeat, worded for that repeat."""
    return [
        [
            Turn("text", group, worded(message, language(group), repeat))
            for group, message in conversation
        ]
        for conversation in CONVERSATIONS
    ]


def photo_turns(photos: list[Path], repeat: int, seed: int) -> list[Turn]:
    """One photo turn per demo photo; the kind of photo and the words vary by photo and repeat."""
    rng = np.random.default_rng([seed, repeat])
    turns = []
    for index, path in enumerate(photos):
        kind = PHOTO_KINDS[(index + repeat) % len(PHOTO_KINDS)]
        words = PHOTO_WORDS[(index + 2 * repeat) % len(PHOTO_WORDS)]
        turns.append(Turn("photo", f"photo {kind}", words, photo_bytes(path, kind, rng)))
    return turns


def build_components(
    workdir: Path, artifacts: Path | None, text_embedder: str, catalogues: Sequence[Path] = ()
) -> Components:
    """The app's components over `workdir`, with the demo shop and `catalogues` ingested
    (unchanged records are skipped, so a kept workdir is ready at once)."""
    data = workdir / "data"
    data.mkdir(parents=True, exist_ok=True)
    linked = data / "artifacts"
    if artifacts is not None and artifacts.is_dir() and not linked.exists():
        linked.symlink_to(artifacts.resolve(), target_is_directory=True)
    settings = Settings(
        data_dir=data,
        chroma_path=data / "chroma",
        chroma_url=None,
        database_url=None,
        text_embedder=text_embedder,
        evidence_mode="off",
        drafter="none",
    )
    components = Components(settings)
    report = components.ingestor.ingest(
        load_paths([DEMO_SHOP / "products.json", DEMO_SHOP / "articles", *catalogues])
    )
    if report.rejections:
        raise SystemExit(f"the demo shop did not ingest cleanly: {report.rejections[0]}")
    return components


@dataclass(frozen=True)
class Records:
    """A collection's own (non-copy) records with their vectors."""

    ids: list[str]
    vectors: np.ndarray
    documents: list[str]
    metadatas: list[dict[str, Any]]


def own_records(store: KnowledgeStore, kind: CollectionKind, page: int = 5_000) -> Records:
    collection = store.collection(kind)
    ids: list[str] = []
    rows: list[np.ndarray] = []
    documents: list[str] = []
    metadatas: list[dict[str, Any]] = []
    for offset in range(0, collection.count(), page):
        found = collection.get(
            include=["embeddings", "documents", "metadatas"], limit=page, offset=offset
        )
        for index, record_id in enumerate(found["ids"]):
            if record_id.startswith(LOOKALIKE_PREFIX):
                continue
            ids.append(record_id)
            rows.append(np.asarray(found["embeddings"][index], dtype=np.float32))
            documents.append((found["documents"] or [])[index] or "")
            metadatas.append(dict((found["metadatas"] or [])[index] or {}))
    return Records(ids, np.stack(rows), documents, metadatas)


def near(vectors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Unit vectors at a cosine drawn from LOOKALIKE_COSINE to each row of `vectors`."""
    noise = rng.standard_normal(vectors.shape).astype(np.float32)
    noise -= (noise * vectors).sum(axis=1, keepdims=True) * vectors
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    cosine = rng.uniform(*LOOKALIKE_COSINE, (len(vectors), 1)).astype(np.float32)
    return cosine * vectors + np.sqrt(1 - cosine**2) * noise


def _missing(store: KnowledgeStore, kind: CollectionKind, ids: list[str]) -> bool:
    held = store.collection(kind).get(ids=ids, include=[])
    return len(held["ids"]) < len(ids)


def add_lookalikes(store: KnowledgeStore, photo_space: str, size: int, seed: int) -> int:
    """Copies of the catalogue's products until the shop holds `size`; returns how many.

    No shop of 100,000 products with photos is at hand, and embedding that many images takes
    hours on 2 cores. So each copy keeps a real product's category, words and photo file, gets
    a price and stock of its own, and vectors of its own near its source's (cosine drawn from
    LOOKALIKE_COSINE) in the products and in the trained photo matcher's mirror: photo search
    scans and votes over all of them, and some copies compete with the right product as a
    colour variant does. The frozen encoder's `images` collection is left as it is (a photo
    turn with a trained matcher never reads it; writing it too would double the build).
    Copies are written a batch at a time under fixed ids, so a killed build resumes.
    """
    mirror = store.mirror(photo_space)
    mirror.collection("images", encoder=photo_space)
    products = own_records(store, "products")
    photos = own_records(mirror, "images")
    photo_of = {str(m["product_id"]): i for i, m in enumerate(photos.metadatas)}
    sources = [i for i, pid in enumerate(products.ids) if pid in photo_of]
    wanted = max(0, size - len(products.ids))
    with tqdm(total=wanted, desc=f"look-alikes to {size:,}", unit="product") as bar:
        for low in range(0, wanted, LOOKALIKE_BATCH):
            indices = range(low, min(wanted, low + LOOKALIKE_BATCH))
            ids = [f"{LOOKALIKE_PREFIX}{i:07d}" for i in indices]
            image_ids = [f"{pid}#img0" for pid in ids]
            if _missing(store, "products", ids) or _missing(mirror, "images", image_ids):
                rng = np.random.default_rng([seed, low])
                chosen = [sources[i % len(sources)] for i in indices]
                pictured = [photo_of[products.ids[c]] for c in chosen]
                metadatas = [
                    _copy_metadata(products.metadatas[c], pid, number + 1, rng)
                    for c, pid, number in zip(chosen, ids, indices, strict=True)
                ]
                store.upsert(
                    "products",
                    ids,
                    near(products.vectors[chosen], rng),
                    [
                        _retitled(products.documents[c], m["title"])
                        for c, m in zip(chosen, metadatas, strict=True)
                    ],
                    metadatas,
                )
                mirror.upsert(
                    "images",
                    image_ids,
                    near(photos.vectors[pictured], rng),
                    [m["title"] for m in metadatas],
                    [
                        {
                            **photos.metadatas[p],
                            "product_id": pid,
                            "vector_hash": pid,
                            "content_hash": pid,
                        }
                        for p, pid in zip(pictured, ids, strict=True)
                    ],
                )
            bar.update(len(ids))
    return wanted


def _copy_metadata(
    source: dict[str, Any], product_id: str, style: int, rng: np.random.Generator
) -> dict[str, Any]:
    stock = int(rng.integers(0, 20))
    return {
        **source,
        "product_id": product_id,
        "title": f"{source.get('title', '')} (style {style})",
        "price": round(float(source.get("price") or 20.0) * float(rng.uniform(0.7, 1.3)), 2),
        "stock": stock,
        "in_stock": stock > 0,
        "images": source.get("images") or json.dumps([]),
        "vector_hash": product_id,
        "content_hash": product_id,
    }


def _retitled(document: str, title: str) -> str:
    """The source's document with the copy's title as its first line."""
    _, _, rest = document.partition("\n")
    return f"{title}\n{rest}" if rest else title


def grow(components: Components, size: int, seed: int) -> int:
    """Look-alike products up to `size`, in the products and the trained matcher's vectors."""
    model = components.photo_model_in_use()
    trained = components.trained_photo
    if trained is None or model != trained.encoder_name:
        raise SystemExit("--grow-to needs a trained photo matcher whose vectors are in the store")
    return add_lookalikes(components.store, model, size, seed)


def run_turns(
    components: Components, turns: list[list[Turn]], session: str, bar: tqdm | None = None
) -> list[tuple[Turn, float]]:
    """Time every turn; each inner list is one session, played in order."""
    timed: list[tuple[Turn, float]] = []
    for number, conversation in enumerate(turns):
        for turn in conversation:
            request = TurnRequest(
                session_id=f"{session}-{number}", text=turn.text, image=turn.image
            )
            started = time.perf_counter()
            components.engine.handle_turn(request)
            timed.append((turn, time.perf_counter() - started))
            if bar is not None:
                bar.update()
    return timed


def percentiles(samples: list[float]) -> dict[str, float]:
    """Nearest-rank p50/p95 and the maximum, in milliseconds."""
    ordered = sorted(samples)
    rank = min(len(ordered) - 1, max(0, int(np.ceil(0.95 * len(ordered))) - 1))
    return {
        "p50_ms": round(1000 * statistics.median(ordered), 1),
        "p95_ms": round(1000 * ordered[rank], 1),
        "max_ms": round(1000 * ordered[-1], 1),
        "turns": len(ordered),
    }


def summarise(
    timed: list[tuple[Turn, float]], repeats: list[list[tuple[Turn, float]]]
) -> dict[str, Any]:
    kinds: dict[str, Any] = {}
    for kind, aim in AIMS_MS.items():
        samples = [seconds for turn, seconds in timed if turn.kind == kind]
        if not samples:
            continue
        entry = percentiles(samples)
        per_repeat = [
            percentiles([s for t, s in run if t.kind == kind])["p95_ms"] for run in repeats
        ]
        kinds[kind] = {
            **entry,
            "p95_ms_per_repeat": per_repeat,
            "aim_p95_ms": aim,
            "aim_met": entry["p95_ms"] <= aim,
        }
    groups = sorted({turn.group for turn, _ in timed})
    by_group = {
        group: percentiles([seconds for turn, seconds in timed if turn.group == group])
        for group in groups
    }
    return {"kinds": kinds, "groups": by_group}


def machine() -> dict[str, Any]:
    import torch

    one, five, fifteen = os.getloadavg()
    return {
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1_5_15": [round(one, 2), round(five, 2), round(fifteen, 2)],
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    }


def render(result: dict[str, Any]) -> str:
    lines = [
        "| turn | turns | p50 ms | p95 ms | max ms | aim p95 ms | aim met |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind, entry in result["summary"]["kinds"].items():
        lines.append(
            f"| {kind} | {entry['turns']} | {entry['p50_ms']} | {entry['p95_ms']} | "
            f"{entry['max_ms']} | {entry['aim_p95_ms']:.0f} | "
            f"{'yes' if entry['aim_met'] else 'no'} |"
        )
    lines += ["", "| group | turns | p50 ms | p95 ms | max ms |", "|---|---|---|---|---|"]
    for group, entry in result["summary"]["groups"].items():
        lines.append(
            f"| {group} | {entry['turns']} | {entry['p50_ms']} | {entry['p95_ms']} | "
            f"{entry['max_ms']} |"
        )
    start, end = result["machine_before"], result["machine_after"]
    lines += [
        "",
        f"{start['cpus']} CPUs, {start['torch_threads']} torch threads; load average "
        f"(1/5/15 min) {start['load_average_1_5_15']} before, {end['load_average_1_5_15']} after.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="Timed passes over all turns.")
    parser.add_argument("--photos", type=int, default=8, help="Photo turns per repeat.")
    parser.add_argument(
        "--text-embedder", default="e5", choices=["e5", "minilm", "minilm-static", "hash"]
    )
    parser.add_argument(
        "--artifacts",
        type=Path,
        default=Settings().artifacts_dir,
        help="Trained heads to use (default: SHOPSIGHT_DATA_DIR/artifacts).",
    )
    parser.add_argument(
        "--no-artifacts", action="store_true", help="Base models only, no trained heads."
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="Keep the store here (default: temporary)."
    )
    parser.add_argument(
        "--catalogue",
        type=Path,
        action="append",
        default=[],
        help="A catalogue to ingest as well; photo turns then use its images. Repeatable.",
    )
    parser.add_argument(
        "--grow-to",
        type=int,
        default=0,
        help="Add look-alike copies of the catalogue's products until the shop holds this many "
        "(bench/distractors.py; needs a trained photo matcher; kept in --workdir).",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("data/reports/turn-bench.json"))
    parser.add_argument("--json", action="store_true", help="Print JSON instead of tables.")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.photos < 1:
        print("error: --repeats and --photos must be at least 1", file=sys.stderr)
        return 2

    artifacts = None if args.no_artifacts else args.artifacts
    with tempfile.TemporaryDirectory(prefix="turn-bench-") as tmp:
        workdir = args.workdir or Path(tmp)
        components = build_components(workdir, artifacts, args.text_embedder, args.catalogue)
        lookalikes = grow(components, args.grow_to, args.seed) if args.grow_to else 0
        photos = demo_photos(args.photos, args.catalogue)
        run_id = time.strftime("%Y%m%d%H%M%S")
        # Warm-up, untimed, worded as no timed repeat is (while wordings last): loads every
        # model and index.
        warm = [*conversations(args.repeats), photo_turns(photos[:3], args.repeats, args.seed)]
        run_turns(components, warm, f"warm-{run_id}")

        repeats: list[list[tuple[Turn, float]]] = []
        before = machine()
        per_repeat = sum(len(c) for c in CONVERSATIONS) + len(photos)
        with tqdm(total=args.repeats * per_repeat, desc="turns", unit="turn") as bar:
            for repeat in range(args.repeats):
                turns = [*conversations(repeat), photo_turns(photos, repeat, args.seed)]
                repeats.append(run_turns(components, turns, f"bench-{run_id}-{repeat}", bar))
        after = machine()
        heads = sorted(p.name for p in (workdir / "data" / "artifacts").glob("*-v*"))
        shop = {
            "products": components.store.count("products"),
            "lookalike_products": lookalikes,
            "photo_model": components.photo_model_in_use(),
        }

    timed = [sample for run in repeats for sample in run]
    result = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "summary": summarise(timed, repeats),
        "machine_before": before,
        "machine_after": after,
        "config": {
            "repeats": args.repeats,
            "text_turns_per_repeat": sum(len(c) for c in CONVERSATIONS),
            "photo_turns_per_repeat": len(photos),
            "text_embedder": args.text_embedder,
            "trained_heads": heads,
            **shop,
            "responder": "default (drafter none)",
            "evidence_mode": "off",
            "seed": args.seed,
        },
        "turns": [
            {**asdict(turn), "image": turn.image is not None, "ms": round(1000 * seconds, 1)}
            for turn, seconds in timed
        ],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    print(json.dumps(result, indent=2, ensure_ascii=False) if args.json else render(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
