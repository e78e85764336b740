"""Alignment head: data loading, training, artefacts, fused cross-modal search and `train align`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from assistant.commands import alignment as alignment_commands
from PIL import Image
from typer.testing import CliRunner

from assistant.settings import Settings
from knowledge_base.store import KnowledgeStore
from retrieval.encoders.text import HashEmbedder, l2_normalise
from retrieval.heads.alignment import (
    AlignmentHead,
    AlignmentMismatch,
    artifact_dir,
    load_alignment_head,
)
from retrieval.search.cross_modal import (
    CrossModalSearcher,
    HeadSpace,
    StoredImage,
    build_cross_modal_searcher,
)
from retrieval.training.align import (
    AlignmentConfig,
    AlignmentDataError,
    first_positive_ranks,
    fit_alignment,
    load_alignment_data,
    positive_groups,
    split_products,
    train_head,
)
from tests.conftest import TinyImageEncoder, distinct_colours, make_image
from tests.helpers.cli import train_eval_app

COLOUR_NAMES = ["crimson", "lime", "azure", "amber"]
FAST = AlignmentConfig(hidden=0, epochs=80, patience=15, lr=1e-2, batch_size=64)


def tiny_features(paths: Sequence[Path]) -> np.ndarray:
    """Test double for the CNN features: an 8×8 thumbnail (colour and layout survive)."""
    return TinyImageEncoder().embed_images([Image.open(p) for p in paths])


def make_colour_folder(root: Path, per_class: int = 10, seed: int = 0) -> Path:
    """One sub-folder per colour name; photos vary in shade and size around their colour."""
    rng = np.random.default_rng(seed)
    for name, colour in zip(COLOUR_NAMES, distinct_colours(len(COLOUR_NAMES)), strict=True):
        for index in range(per_class):
            shade = tuple(int(np.clip(c + rng.integers(-25, 26), 0, 255)) for c in colour)
            side = int(rng.integers(24, 48))
            make_image(root / name / f"{name}-{index}.png", shade, size=(side, side))  # type: ignore[arg-type]
    return root


def synthetic_pairs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Text vectors and image features that are a noisy linear function of them."""
    rng = np.random.default_rng(seed)
    texts = l2_normalise(rng.normal(size=(n, 32)))
    mixing = rng.normal(size=(32, 96))
    return l2_normalise(texts @ mixing + 0.1 * rng.normal(size=(n, 96))), texts


@pytest.mark.unit
def test_pairs_sharing_a_product_or_a_title_are_positives() -> None:
    groups = positive_groups(["a", "a", "b", "c", "d"], ["x", "y", "y", "z", "w"])
    assert groups[0] == groups[1] == groups[2]
    assert len({groups[0], groups[3], groups[4]}) == 3


@pytest.mark.unit
def test_product_split_keeps_each_product_on_one_side_and_is_seeded() -> None:
    products = [f"p{i // 2}" for i in range(40)]
    train, held = split_products(products, 0.25, seed=3)
    assert {products[i] for i in train}.isdisjoint({products[i] for i in held})
    assert len({products[i] for i in held}) == 5
    again = split_products(products, 0.25, seed=3)
    assert np.array_equal(held, again[1])
    assert not np.array_equal(held, split_products(products, 0.25, seed=4)[1])


@pytest.mark.unit
def test_first_positive_rank_counts_only_better_negatives() -> None:
    scores = np.array([[0.9, 0.5, 0.7], [0.1, 0.2, 0.3]])
    positive = np.array([[False, True, False], [True, False, True]])
    assert first_positive_ranks(scores, positive) == [3, 1]


@pytest.mark.unit
def test_head_learns_an_alignment_that_generalises_to_unseen_pairs() -> None:
    features, texts = synthetic_pairs(300)
    names = [f"p{i}" for i in range(300)]
    head, result = train_head(features[:240], texts[:240], names[:240], names[:240], FAST, False)
    scores = texts[240:] @ head.image_to_text_space(features[240:]).T
    ranks = np.array(first_positive_ranks(scores, np.eye(60, dtype=bool)))
    assert (ranks <= 1).mean() > 0.8  # random: 1/60
    assert result.val_pairs > 0 and result.best_epoch >= 1
    assert head.image_to_text_space(features[:3]).shape == (3, 32)
    assert np.allclose(np.linalg.norm(head.image_to_text_space(features[:3]), axis=1), 1.0)


@pytest.mark.unit
def test_training_is_reproducible_for_a_seed() -> None:
    features, texts = synthetic_pairs(80)
    names = [f"p{i}" for i in range(80)]
    config = AlignmentConfig(hidden=16, epochs=5, batch_size=32)
    first, _ = train_head([features, features[::-1]], texts, names, names, config, False)
    second, _ = train_head([features, features[::-1]], texts, names, names, config, False)
    other, _ = train_head(
        features, texts, names, names, AlignmentConfig(hidden=16, epochs=5, seed=1), False
    )
    assert first.fingerprint == second.fingerprint
    assert all(np.array_equal(first.weights[k], second.weights[k]) for k in first.weights)
    assert other.fingerprint != first.fingerprint


@pytest.mark.unit
def test_saved_head_reloads_identically_with_its_meta(tmp_path: Path) -> None:
    folder = make_colour_folder(tmp_path / "photos", per_class=6)
    data = load_alignment_data(folder)
    head, result = fit_alignment(
        data, HashEmbedder(), tiny_features, FAST, image_encoder="tiny", progress=False
    )
    saved = head.save(artifact_dir(tmp_path / "artifacts"))
    assert saved.name == "align-v1"
    meta = json.loads((saved / "meta.json").read_text())
    assert meta["text_embedder"] == "hash" and meta["image_encoder"] == "tiny"
    assert meta["data"]["products"] == 24 and meta["data"]["distinct_titles"] == 4
    assert meta["metrics"]["best_epoch"] == result.best_epoch and meta["config"]["seed"] == 0
    loaded = load_alignment_head(tmp_path / "artifacts", "hash", "tiny")
    assert loaded is not None and loaded.fingerprint == head.fingerprint
    probe = tiny_features(data.pairs()[0][:5])
    assert np.allclose(
        loaded.image_to_text_space(probe), head.image_to_text_space(probe), atol=1e-6
    )


@pytest.mark.unit
def test_missing_head_is_none_and_a_foreign_head_is_refused(tmp_path: Path) -> None:
    assert load_alignment_head(tmp_path, "e5") is None
    features, texts = synthetic_pairs(20)
    names = [f"p{i}" for i in range(20)]
    head, _ = train_head(features, texts, names, names, AlignmentConfig(hidden=0, epochs=2), False)
    head.meta["text_embedder"] = "minilm"
    head.save(artifact_dir(tmp_path))
    with pytest.raises(AlignmentMismatch, match="minilm"):
        load_alignment_head(tmp_path, "e5")
    with pytest.raises(AlignmentMismatch):
        HeadSpace(head, HashEmbedder())


@pytest.mark.unit
def test_image_folder_titles_are_class_names_and_split_folders_merge(tmp_path: Path) -> None:
    for split in ("train", "validation"):
        make_image(tmp_path / "ds" / split / "t-shirt" / "a.png")
        make_image(tmp_path / "ds" / split / "long_sleeve" / "a.png")
    data = load_alignment_data(tmp_path / "ds")
    assert data.kind == "image-folder" and len(data.items) == 4
    assert {item.title for item in data.items} == {"t shirt", "long sleeve"}
    assert len({item.product_id for item in data.items}) == 4


@pytest.mark.unit
def test_catalogue_items_keep_title_apart_from_their_other_text(tmp_path: Path) -> None:
    make_image(tmp_path / "img" / "a.png")
    make_image(tmp_path / "img" / "b.png")
    records = [
        {"id": "a", "title": "Red Tee", "description": "soft cotton", "images": ["img/a.png"]},
        {"id": "b", "title": "Blue Cap", "category": "hats", "images": ["img/b.png"]},
        {"id": "c", "title": "No Photo"},
    ]
    (tmp_path / "shop.json").write_text(json.dumps(records))
    data = load_alignment_data(tmp_path / "shop.json")
    assert [item.title for item in data.items] == ["Red Tee", "Blue Cap"]
    assert data.items[0].context == "soft cotton" and data.items[1].context == "hats"
    assert data.skipped == 1
    with pytest.raises(AlignmentDataError, match="at least 2"):
        load_alignment_data(tmp_path / "img")


class IdentitySpace:
    """Test space: stored image vectors are already in the hash text space."""

    name = "identity"

    def __init__(self) -> None:
        self.projected = 0
        self.embedder = HashEmbedder()

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.embedder.embed_texts(texts, kind="query")

    def project_images(self, images: Sequence[StoredImage]) -> np.ndarray:
        self.projected += len(images)
        return np.stack([image.features for image in images])


def filled_store(path: Path) -> tuple[KnowledgeStore, HashEmbedder]:
    """A store at `path` of products whose texts never name a colour; their photos' vectors do."""
    embedder = HashEmbedder()
    store = KnowledgeStore(path=path)
    products = {
        "p1": ("Evening gown", "dresses", "crimson"),
        "p2": ("Linen shirt", "shirts", "azure"),
        "p3": ("Crimson lipstick", "beauty", "beige"),
        "p4": ("Denim shirt", "shirts", "crimson"),
    }
    ids = list(products)
    texts = [f"{title}\n{category}" for title, category, _ in products.values()]
    store.upsert(
        "products",
        ids,
        embedder.embed_texts(texts),
        texts,
        [{"title": t, "category": c, "content_hash": "h"} for t, c, _ in products.values()],
    )
    colours = [colour for _, _, colour in products.values()]
    store.upsert(
        "images",
        [f"{pid}#img0" for pid in ids],
        embedder.embed_texts(colours),
        [products[pid][0] for pid in ids],
        [
            {
                "product_id": pid,
                "category": products[pid][1],
                "path": f"/x/{pid}.png",
                "content_hash": pid,
            }
            for pid in ids
        ],
    )
    return store, embedder


@pytest.mark.integration
def test_fused_search_finds_products_by_their_photos_with_evidence(tmp_path: Path) -> None:
    store, embedder = filled_store(tmp_path / "chroma")
    space = IdentitySpace()
    searcher = CrossModalSearcher(store, embedder, space, candidates=4)
    image_only = searcher.image_hits("crimson", k=2)
    assert {hit.product_id for hit in image_only} == {"p1", "p4"}
    fused = searcher.search("crimson", k=4)
    by_id = {match.product_id: match for match in fused}
    assert {e.source for e in by_id["p3"].evidence} == {"text", "image"}
    assert by_id["p1"].matched_image == "/x/p1.png"
    assert fused[0].product_id == "p1"  # photo rank 1, text rank 2
    assert "p3" in {m.product_id for m in fused[:2]}  # text rank 1: its title says crimson
    assert [m.score for m in fused] == sorted((m.score for m in fused), reverse=True)
    shirts = searcher.search("crimson", k=4, where={"category": "shirts"})
    assert {m.product_id for m in shirts} == {"p2", "p4"}
    p4 = next(m for m in shirts if m.product_id == "p4")
    assert [(e.source, e.rank) for e in p4.evidence if e.source == "image"] == [("image", 1)]


@pytest.mark.integration
def test_projected_index_projects_only_new_or_changed_images(tmp_path: Path) -> None:
    store, embedder = filled_store(tmp_path / "chroma")
    space = IdentitySpace()
    searcher = CrossModalSearcher(store, embedder, space)
    searcher.search("azure")
    assert space.projected == 4
    store.upsert(
        "images",
        ["p5#img0"],
        embedder.embed_texts(["olive"]),
        ["Olive cap"],
        [{"product_id": "p5", "path": "/x/p5.png", "content_hash": "p5"}],
    )
    hits = searcher.image_hits("olive", k=1)
    assert space.projected == 5 and hits[0].product_id == "p5"
    assert searcher.index.refresh(force=True) == 0


@pytest.mark.integration
def test_a_product_with_many_matching_photos_does_not_crowd_out_others(tmp_path: Path) -> None:
    embedder = HashEmbedder()
    store = KnowledgeStore(path=tmp_path / "chroma")
    ids = [f"p1#img{i}" for i in range(150)] + ["p2#img0", "p3#img0"]
    vectors = embedder.embed_texts(["crimson"] * 150 + ["crimson azure", "azure"])
    metas = [{"product_id": i.split("#")[0], "content_hash": i} for i in ids]
    store.upsert("images", ids, vectors, ["x"] * len(ids), metas)
    searcher = CrossModalSearcher(store, embedder, IdentitySpace())
    assert [hit.product_id for hit in searcher.image_hits("crimson", k=3)] == ["p1", "p2", "p3"]


@pytest.mark.integration
def test_searcher_is_built_from_a_saved_head_and_absent_without_one(tmp_path: Path) -> None:
    embedder = HashEmbedder()
    store = KnowledgeStore(path=tmp_path / "chroma")
    assert build_cross_modal_searcher(store, embedder, tmp_path / "artifacts") is None
    folder = make_colour_folder(tmp_path / "photos", per_class=4)
    head, _ = fit_alignment(
        load_alignment_data(folder),
        embedder,
        tiny_features,
        FAST,
        image_encoder="tiny",
        progress=False,
    )
    head.save(artifact_dir(tmp_path / "artifacts"))
    searcher = build_cross_modal_searcher(store, embedder, tmp_path / "artifacts")
    assert searcher is not None and isinstance(searcher.space, HeadSpace)
    assert searcher.search("crimson") == []


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """SHOPSIGHT_DATA_DIR in tmp_path and thumbnail features instead of the CNN."""
    monkeypatch.setenv("SHOPSIGHT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(
        alignment_commands,
        "image_feature_functions",
        lambda settings, flip: (tiny_features, [tiny_features] if flip else []),
    )
    return tmp_path


@pytest.mark.unit
def test_train_align_command_saves_the_artefact_and_reports_json(cli_env: Path) -> None:
    folder = make_colour_folder(cli_env / "photos", per_class=5)
    args = ["train", "align", "--data", str(folder), "--embedder", "hash", "--hidden", "0"]
    result = CliRunner().invoke(
        train_eval_app(alignment_commands.register), [*args, "--epochs", "20", "--json"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    saved = Settings().artifacts_dir / "align-v1"
    assert Path(payload["model"]) == saved and (saved / "weights.npz").is_file()
    assert payload["text_embedder"] == "hash" and payload["views"] == 2
    assert isinstance(AlignmentHead.load(saved).image_to_text_space(np.ones((1, 192))), np.ndarray)


@pytest.mark.unit
def test_train_align_command_gives_one_line_errors(cli_env: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(
        train_eval_app(alignment_commands.register),
        ["train", "align", "--data", str(cli_env / "nope")],
    )
    assert missing.exit_code == 1 and "no such file" in missing.output
    assert "Traceback" not in missing.output
    folder = make_colour_folder(cli_env / "photos", per_class=2)
    bad = runner.invoke(
        train_eval_app(alignment_commands.register),
        ["train", "align", "--data", str(folder), "--embedder", "clip"],
    )
    assert bad.exit_code == 1 and "unknown text embedder" in bad.output
    assert (
        "--flip"
        in runner.invoke(
            train_eval_app(alignment_commands.register), ["train", "align", "--help"]
        ).output
    )
