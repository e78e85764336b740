"""A CLIP checkpoint from a local folder, tested with a tiny randomly initialised model.

The tokenizer is built offline too: a word-level `tokenizers` model wrapped in a fast
tokenizer, saved next to the weights as `save_pretrained` would.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from knowledge_base.store import KnowledgeStore
from retrieval.encoders.clip_local import (
    ClipPreprocessing,
    ClipSpace,
    ClipUnavailable,
    LocalClipEncoder,
)
from retrieval.encoders.text import HashEmbedder
from retrieval.search.cross_modal import StoredImage, build_cross_modal_searcher
from tests.conftest import make_image

WORDS = ["<|startoftext|>", "<|endoftext|>", "[UNK]", "red", "blue", "summer", "dress", "shoes"]


def save_tiny_clip(folder: Path, with_tokenizer: bool = True) -> Path:
    """A 2-layer CLIP with 32-wide towers and 16-d projections, seeded, saved to `folder`."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import CLIPConfig, CLIPModel, PreTrainedTokenizerFast

    vocab = {word: index for index, word in enumerate(WORDS)}
    tower = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
    }
    config = CLIPConfig(
        text_config={
            **tower,
            "vocab_size": len(WORDS),
            "max_position_embeddings": 16,
            "bos_token_id": 0,
            "eos_token_id": 1,
            "pad_token_id": 1,
        },
        vision_config={**tower, "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    if with_tokenizer:
        backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
        backend.normalizer = normalizers.Lowercase()
        backend.pre_tokenizer = pre_tokenizers.Whitespace()
        backend.post_processor = processors.TemplateProcessing(
            single="<|startoftext|> $A <|endoftext|>",
            special_tokens=[("<|startoftext|>", 0), ("<|endoftext|>", 1)],
        )
        PreTrainedTokenizerFast(
            tokenizer_object=backend,
            bos_token="<|startoftext|>",
            eos_token="<|endoftext|>",
            unk_token="[UNK]",
            pad_token="<|endoftext|>",
            model_max_length=16,
        ).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="module")
def encoder(clip_folder: Path) -> LocalClipEncoder:
    return LocalClipEncoder(clip_folder)


@pytest.mark.integration
def test_texts_and_images_land_in_one_normalised_space(encoder: LocalClipEncoder) -> None:
    texts = encoder.embed_texts(["red summer dress", "blue shoes", "red summer dress"])
    assert texts.shape == (3, 16) and encoder.dim == 16
    assert np.allclose(np.linalg.norm(texts, axis=1), 1.0, atol=1e-5)
    assert np.allclose(texts[0], texts[2], atol=1e-6)
    assert not np.allclose(texts[0], texts[1], atol=1e-3)
    images = encoder.embed_images(
        [Image.new("RGB", (40, 60), (200, 20, 20)), Image.new("L", (50, 50), 90)]
    )
    assert images.shape == (2, 16)
    assert np.allclose(np.linalg.norm(images, axis=1), 1.0, atol=1e-5)
    assert (texts @ images.T).shape == (3, 2)
    assert encoder.embed_texts([]).shape == (0, 16)
    assert encoder.name.startswith("clip:")


@pytest.mark.integration
def test_matches_the_reference_forward_pass(encoder: LocalClipEncoder) -> None:
    """Our numpy preprocessing + pooling equal CLIPModel's own normalised embeddings."""
    import torch

    image = Image.new("RGB", (32, 32), (10, 120, 240))
    tokens = encoder.tokenizer(["blue shoes"], padding=True, return_tensors="pt")
    pixels = torch.from_numpy(encoder.preprocess([image]))
    with torch.no_grad():
        output = encoder.model(**tokens, pixel_values=pixels)
    assert np.allclose(encoder.embed_texts(["blue shoes"]), output.text_embeds.numpy(), atol=1e-5)
    assert np.allclose(encoder.embed_images([image]), output.image_embeds.numpy(), atol=1e-5)


@pytest.mark.unit
def test_preprocessing_resizes_the_short_side_then_centre_crops(tmp_path: Path) -> None:
    (tmp_path / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "size": {"shortest_edge": 40},
                "crop_size": {"height": 32, "width": 32},
                "image_mean": [0.5, 0.5, 0.5],
                "image_std": [0.5, 0.5, 0.5],
                "resample": 2,
            }
        )
    )
    steps = ClipPreprocessing.from_folder(tmp_path, image_size=224)
    assert (steps.size, steps.crop, steps.mean) == (40, 32, (0.5, 0.5, 0.5))
    wide = Image.new("RGB", (200, 100), (255, 255, 255))
    wide.paste(Image.new("RGB", (100, 100), (0, 0, 0)), (50, 0))
    batch = steps([wide])
    assert batch.shape == (1, 3, 32, 32)
    assert np.allclose(batch[0, :, 16, 16], -1.0)  # the black centre survives the crop
    assert ClipPreprocessing.from_folder(tmp_path / "none", image_size=24).crop == 24


@pytest.mark.integration
def test_a_folder_without_tokenizer_needs_one_passed_in(
    tmp_path: Path, encoder: LocalClipEncoder
) -> None:
    bare = save_tiny_clip(tmp_path / "bare", with_tokenizer=False)
    with pytest.raises(ClipUnavailable, match="tokenizer"):
        LocalClipEncoder(bare)
    borrowed = LocalClipEncoder(bare, tokenizer=encoder.tokenizer)
    assert np.allclose(borrowed.embed_texts(["red"]), encoder.embed_texts(["red"]), atol=1e-6)
    with pytest.raises(ClipUnavailable, match=r"config\.json"):
        LocalClipEncoder(tmp_path / "empty")


@pytest.mark.integration
def test_clip_space_encodes_stored_photos_and_skips_unreadable_ones(
    tmp_path: Path, encoder: LocalClipEncoder
) -> None:
    photo = make_image(tmp_path / "a.png", (200, 30, 30))
    (tmp_path / "broken.png").write_bytes(b"not an image")
    space = ClipSpace(encoder, max_pixels=10_000_000, max_side=256)
    stub = np.zeros(3, dtype=np.float32)
    rows = space.project_images(
        [
            StoredImage("a", "p1", str(photo), stub),
            StoredImage("b", "p2", str(tmp_path / "broken.png"), stub),
        ]
    )
    assert np.allclose(rows[0], encoder.embed_images([Image.open(photo)])[0], atol=1e-5)
    assert not rows[1].any()


@pytest.mark.integration
def test_configured_clip_path_drives_the_cross_modal_searcher(
    tmp_path: Path, clip_folder: Path
) -> None:
    embedder = HashEmbedder()
    store = KnowledgeStore(path=tmp_path / "chroma")
    photo = make_image(tmp_path / "dress.png", (200, 30, 30))
    store.upsert(
        "products", ["p1"], embedder.embed_texts(["dress"]), ["dress"], [{"title": "Dress"}]
    )
    store.upsert(
        "images",
        ["p1#img0"],
        np.ones((1, 8), dtype=np.float32),
        ["Dress"],
        [{"product_id": "p1", "path": str(photo), "content_hash": "x"}],
    )
    searcher = build_cross_modal_searcher(store, embedder, tmp_path / "artifacts", clip_folder)
    assert searcher is not None and searcher.space.name.startswith("clip:")
    hits = searcher.image_hits("red summer dress", k=3)
    assert [hit.product_id for hit in hits] == ["p1"] and hits[0].path == str(photo)
