"""`/v1/search/text` fuses photo evidence like `kb search`, and never shows server paths."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from assistant.api import create_app
from assistant.api.public import PUBLIC_METADATA
from assistant.components import Components
from assistant.settings import Settings
from knowledge_base.loaders import load_paths
from tests.assistant.cli.test_kb import save_alignment_head
from tests.conftest import distinct_colours, make_image

pytestmark = pytest.mark.integration


@pytest.fixture
def shop_components(tmp_path: Path) -> Components:
    """Three products with one photo each in a store of the hash text embedder."""
    root = tmp_path / "shop"
    products: list[dict[str, Any]] = [
        {"id": "boot", "title": "Trail boot", "category": "shoes"},
        {"id": "mug", "title": "Stoneware mug", "category": "kitchen"},
        {"id": "tote", "title": "Canvas tote", "category": "bags"},
    ]
    for product, colour in zip(products, distinct_colours(3), strict=True):
        product["images"] = [f"images/{product['id']}.jpg"]
        make_image(root / "images" / f"{product['id']}.jpg", colour, size=(96, 96))
    (root / "catalogue.json").write_text(json.dumps(products), encoding="utf-8")
    settings = Settings(
        data_dir=tmp_path / "data", text_embedder="hash", chroma_url=None, warm_up=False
    )
    components = Components(settings, progress=False)
    components.kb.ingest(load_paths([root / "catalogue.json"]))
    return components


def search(client: TestClient, query: str) -> list[dict[str, Any]]:
    found = client.post("/v1/search/text", json={"query": query, "include": ["products"]})
    assert found.status_code == 200, found.text
    products: list[dict[str, Any]] = found.json()["products"]
    return products


def test_text_search_uses_photo_evidence_once_an_alignment_head_exists(
    shop_components: Components, tmp_path: Path
) -> None:
    client = TestClient(create_app(shop_components.settings, shop_components, ui=False))
    text_only = search(client, "crimson")
    assert text_only and all(p["image_rank"] is None and p["text_rank"] for p in text_only)

    save_alignment_head(
        tmp_path / "data", {"boot": "crimson", "mug": "azure", "tote": "olive"}, "hash"
    )
    fused = search(client, "crimson")
    by_id = {p["product_id"]: p for p in fused}
    assert by_id["boot"]["image_rank"] == 1
    assert by_id["boot"]["image_score"] == pytest.approx(1.0, abs=1e-3)
    assert all(p["text_rank"] and p["image_rank"] for p in fused)
    # The response's fields stay those of hybrid search, with the ranks of both sources added.
    assert {"dense_rank", "bm25_rank", "fused_score", "score"} <= set(by_id["boot"])


def test_search_results_link_pictures_instead_of_naming_server_files(
    shop_components: Components, tmp_path: Path
) -> None:
    save_alignment_head(
        tmp_path / "data", {"boot": "crimson", "mug": "azure", "tote": "olive"}, "hash"
    )
    client = TestClient(create_app(shop_components.settings, shop_components, ui=False))
    found = client.post("/v1/search/text", json={"query": "crimson boot"})
    assert found.status_code == 200, found.text
    assert str(tmp_path) not in found.text
    boot = next(p for p in found.json()["products"] if p["product_id"] == "boot")
    assert boot["matched_image"] == "/v1/products/boot/images/0"
    assert set(boot["metadata"]) <= set(PUBLIC_METADATA)
    assert "images" not in boot["metadata"] and "vector_hash" not in boot["metadata"]
    assert client.get(boot["matched_image"]).status_code == 200
