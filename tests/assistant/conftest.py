"""The demo shop ingested once (real E5 embedder, real Chroma) for every engine-level test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.components import Components
from assistant.engine import Engine
from assistant.settings import Settings
from knowledge_base.loaders import load_paths
from tests.assistant.demo_shop import DEMO


@pytest.fixture(scope="package")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("conversations")


@pytest.fixture(scope="package")
def components(data_dir: Path) -> Iterator[Components]:
    components = Components(Settings(data_dir=data_dir, text_embedder="e5"), progress=False)
    report = components.ingestor.ingest(load_paths([DEMO / "products.json", DEMO / "articles"]))
    assert report.ok, report.rejections
    yield components


@pytest.fixture(scope="package")
def engine(components: Components) -> Engine:
    return components.engine
