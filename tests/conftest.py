"""Shared fixtures: settings in tmp_path, a tiny deterministic image encoder, image makers.

`HF_HUB_OFFLINE` is set at import, before any test imports transformers, so a model that tries
to download anything fails loudly instead of hanging or quietly succeeding.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
# Explanations are computed only when a test asks for them; a test of the background worker
# sets `evidence_mode="background"` itself.
os.environ.setdefault("SHOPSIGHT_EVIDENCE_MODE", "on_demand")

import colorsys
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from assistant.settings import Settings
from retrieval.encoders.text import HashEmbedder, TextKind, l2_normalise

Colour = tuple[int, int, int]


def make_settings(**overrides: Any) -> Settings:
    """Settings from explicit values (SHOPSIGHT_* variables still fill in the rest)."""
    return Settings(**overrides)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings writing under tmp_path, with the hash text embedder (no model to load)."""
    return make_settings(data_dir=tmp_path / "data", text_embedder="hash")


class TinyImageEncoder:
    """Deterministic image encoder for unit tests: an 8×8 RGB thumbnail, centred, L2-normalised.

    Different colours give different directions (the pixels are centred around mid-grey), the
    same picture always gives the same row, and it counts how often it is called.
    """

    name = "tiny"
    dim = 8 * 8 * 3

    def __init__(self) -> None:
        self.calls = 0
        self.images = 0

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        self.calls += 1
        self.images += len(images)
        rows = np.zeros((len(images), self.dim), dtype=np.float32)
        for index, image in enumerate(images):
            thumb = image.convert("RGB").resize((8, 8), Image.Resampling.BILINEAR)
            rows[index] = (np.asarray(thumb, dtype=np.float32) / 255.0 - 0.5).reshape(-1)
        return l2_normalise(rows)


class CountingTextEmbedder:
    """Wraps a text embedder and records every call, to prove what was (not) embedded."""

    def __init__(self, inner: Any | None = None) -> None:
        self.inner = inner or HashEmbedder()
        self.name: str = self.inner.name
        self.dim: int = self.inner.dim
        self.calls: list[list[str]] = []

    @property
    def texts(self) -> int:
        return sum(len(call) for call in self.calls)

    def embed_texts(self, texts: Sequence[str], kind: TextKind = "passage") -> np.ndarray:
        self.calls.append(list(texts))
        return np.asarray(self.inner.embed_texts(texts, kind=kind))


@pytest.fixture
def tiny_encoder() -> TinyImageEncoder:
    return TinyImageEncoder()


@pytest.fixture
def counting_embedder() -> CountingTextEmbedder:
    return CountingTextEmbedder()


def distinct_colours(count: int) -> list[Colour]:
    """`count` clearly different, saturated colours (hues spread around the circle)."""
    colours = []
    for index in range(count):
        lightness = 0.35 + 0.3 * (index % 2)
        red, green, blue = colorsys.hls_to_rgb(index / count, lightness, 0.9)
        colours.append((round(red * 255), round(green * 255), round(blue * 255)))
    return colours


def make_image(
    path: Path,
    colour: Colour = (200, 30, 30),
    size: tuple[int, int] = (32, 32),
    mode: str = "RGB",
    **save_options: Any,
) -> Path:
    """Write a solid-colour image with a small contrasting mark; the format follows the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, colour)
    mark = tuple(255 - c for c in colour)
    width, height = size
    image.paste(Image.new("RGB", (max(1, width // 4), max(1, height // 4)), mark), (0, 0))
    if mode != "RGB":
        image = image.convert(mode)
    image.save(path, **save_options)
    return path


@pytest.fixture
def image_maker(tmp_path: Path) -> Callable[..., Path]:
    """`image_maker("shoes/a.jpg", colour)` writes an image under tmp_path and returns its path."""

    def make(relative: str, colour: Colour = (200, 30, 30), **kwargs: Any) -> Path:
        return make_image(tmp_path / relative, colour, **kwargs)

    return make


@pytest.fixture
def shared_data() -> Path:
    """The real data sets in ../shared/data; tests using them are skipped where it is absent."""
    folder = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    if not folder.is_dir():
        pytest.skip(f"real data not available at {folder}")
    return folder


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder with the demo shop ingested by the real E5 embedder, made once per session."""
    from assistant.components import Components
    from tests.assistant.demo_shop import ingest_demo_shop

    template = os.environ.get("SHOPSIGHT_TEST_DEMO_STORE")
    if template and (Path(template) / "chroma").is_dir():
        return Path(template)
    data_dir = tmp_path_factory.mktemp("demo-store") / "data"
    ingest_demo_shop(Components(Settings(data_dir=data_dir, text_embedder="e5"), progress=False))
    return data_dir


@pytest.fixture(scope="session")
def shop3000_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder with the 3,000-product evaluation catalogue (real photos, seeded prices and
    stock) and the demo shop's articles, ingested with the real models once per session.

    Skipped where `../shared/data/product-catalogue-dev` is absent. Tests may hold conversations on it
    but must not change its catalogue (copy it first).
    """
    from assistant.components import Components
    from knowledge_base.loaders import load_paths
    from retrieval.evaluation.catalogue_dev import DEFAULT_SOURCE, catalogue_rows, write_catalogue

    if not (DEFAULT_SOURCE / "styles.csv").is_file():
        pytest.skip(f"the product catalogue is not available at {DEFAULT_SOURCE}")
    root = tmp_path_factory.mktemp("shop3000")
    catalogue = write_catalogue(catalogue_rows(DEFAULT_SOURCE, 3000), root / "catalogue3000.csv")
    articles = Path(__file__).resolve().parents[1] / "knowledge_base" / "demo_shop" / "articles"
    data_dir = root / "data"
    components = Components(Settings(data_dir=data_dir, text_embedder="e5"), progress=False)
    report = components.kb.ingest(load_paths([catalogue, articles]))
    assert report.ok and report.products_embedded == 3000, report
    return data_dir
