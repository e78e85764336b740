"""SHOPSIGHT_PHOTO_INDEX=exact (the default): photo search over an in-memory copy of the image
vectors, with the store's filters and a copy that follows this process's own ingests."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from assistant.components import Components
from knowledge_base.loaders import load_paths
from retrieval.search.hybrid import SearchFilters
from retrieval.search.photo import MirroredStoreIndex, StoreImageIndex
from tests.assistant.demo_shop import DEMO, customer_photo, demo_components

MUG = "mug-stoneware-blue"


@pytest.fixture(scope="module")
def exact(demo_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Components:
    return demo_components(demo_store, tmp_path_factory.mktemp("exact"), photo_index="exact")


def photo(product_id: str) -> Image.Image:
    return Image.open(io.BytesIO(customer_photo(product_id)))


def test_the_default_index_is_the_exact_copy_and_hnsw_is_chromas_graph(
    demo_store: Path, tmp_path: Path
) -> None:
    assert isinstance(demo_components(demo_store, tmp_path).image_index, MirroredStoreIndex)
    graph = demo_components(demo_store, tmp_path / "graph", photo_index="hnsw")
    assert isinstance(graph.image_index, StoreImageIndex)
    assert graph.search_photo(photo(MUG), k=1).matches[0].product_id == MUG


def test_exact_index_finds_the_photographed_product(exact: Components) -> None:
    assert isinstance(exact.image_index, MirroredStoreIndex)
    result = exact.search_photo(photo(MUG), k=3)
    assert result.matches[0].product_id == MUG and result.confident


def test_exact_index_applies_the_catalogue_filters(exact: Components) -> None:
    kept = exact.search_photo(photo(MUG), k=3, filters=SearchFilters(category="home", max_price=20))
    assert kept.matches[0].product_id == MUG
    assert all(m.category == "home" and (m.price or 0) <= 20 for m in kept.matches)
    dropped = exact.search_photo(photo(MUG), k=3, filters=SearchFilters(max_price=10))
    assert MUG not in {m.product_id for m in dropped.matches}
    assert all((m.price or 0) <= 10 for m in dropped.matches)


def test_an_ingest_in_this_process_reaches_the_copy_at_once(
    exact: Components, tmp_path: Path
) -> None:
    exact.search_photo(photo(MUG), k=1)  # the copy is loaded, and not rechecked for seconds
    twin = {
        "id": "mug-twin",
        "title": "Twin mug",
        "description": "The same mug, listed twice.",
        "category": "home",
        "price": 15.0,
        "stock": 3,
        "images": [str(DEMO / "images" / f"{MUG}.png")],
    }
    (tmp_path / "twin.json").write_text(json.dumps({"products": [twin]}), encoding="utf-8")
    report = exact.ingestor.ingest(load_paths([tmp_path / "twin.json"]))
    assert report.ok and report.images_embedded == 1
    found = {m.product_id for m in exact.search_photo(photo(MUG), k=2).matches}
    assert found == {MUG, "mug-twin"}
