"""The demo shop ingested once (real E5 embedder, real Chroma) for every engine-level test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.components import Components
from assistant.turn.engine import Engine
from tests.assistant.demo_shop import demo_components


@pytest.fixture(scope="package")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("conversations")


@pytest.fixture(scope="package")
def components(demo_store: Path, data_dir: Path) -> Iterator[Components]:
    yield demo_components(demo_store, data_dir)


@pytest.fixture(scope="package")
def engine(components: Components) -> Engine:
    return components.engine
