"""Auto-tagging at ingest: uncategorised products with photos get predicted, marked tags."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from assistant.components import Components
from assistant.settings import Settings
from knowledge_base.ingest import IngestOptions, Ingestor, IngestReport
from knowledge_base.loaders import load_paths
from knowledge_base.store import KnowledgeStore
from retrieval.autotag import autotag
from retrieval.encoders.text import HashEmbedder
from tests.conftest import TinyImageEncoder
from tests.retrieval.test_autotag import (
    BLUE,
    RED,
    MeanColourEncoder,
    product_photo,
    redness_classifier,
)


def write_catalogue(root: Path) -> Path:
    """One product without a category (red photo), one with its own category (blue photo)."""
    root.mkdir(parents=True, exist_ok=True)
    product_photo(root / "scarf.png", RED)
    product_photo(root / "cap.png", BLUE)
    products: list[dict[str, Any]] = [
        {"id": "scarf", "title": "Wool scarf", "images": ["scarf.png"]},
        {"id": "cap", "title": "Cap", "category": "hats", "images": ["cap.png"]},
    ]
    path = root / "catalogue.json"
    path.write_text(json.dumps(products), encoding="utf-8")
    return path


def ingestor_with(store: KnowledgeStore, classifier: Any) -> Ingestor:
    encoder = TinyImageEncoder()
    return Ingestor(
        store,
        HashEmbedder(),
        lambda: encoder,
        encoder.name,
        IngestOptions(progress=False),
        autotagger=partial(autotag, classifier=classifier, encoder=MeanColourEncoder()),
    )


def product_meta(store: KnowledgeStore, product_id: str) -> dict[str, Any]:
    return store.get("products", ids=[product_id])[0].metadata


@pytest.mark.unit
def test_uncategorised_product_gets_the_predicted_category_and_colours_marked_as_predicted(
    tmp_path: Path,
) -> None:
    store = KnowledgeStore(path=tmp_path / "chroma")
    catalogue = write_catalogue(tmp_path / "shop")
    report = ingestor_with(store, redness_classifier()).ingest(load_paths([catalogue]))

    assert (report.autotagged, report.categories_predicted, report.categories_unsure) == (1, 1, 0)
    scarf = product_meta(store, "scarf")
    assert scarf["category"] == "red-thing" and scarf["category_source"] == "predicted"
    assert scarf["category_confidence"] > 0.9
    assert scarf["colour_tags"] == "red" and "red" in scarf["tags"]
    assert json.loads(scarf["predicted"])["colour:red"] == pytest.approx(1.0)
    image = store.get("images", ids=["scarf#img0"])[0].metadata
    assert image["category"] == "red-thing" and image["predicted_category"] is True

    cap = product_meta(store, "cap")
    assert cap["category"] == "hats" and cap["category_source"] == "catalogue"
    assert cap.get("category_confidence") is None and cap.get("colour_tags") is None


@pytest.mark.unit
def test_reingesting_autotagged_products_changes_nothing(tmp_path: Path) -> None:
    store = KnowledgeStore(path=tmp_path / "chroma")
    catalogue = write_catalogue(tmp_path / "shop")
    ingestor = ingestor_with(store, redness_classifier())
    ingestor.ingest(load_paths([catalogue]))
    again = ingestor.ingest(load_paths([catalogue]))
    assert again.products_unchanged == 2 and again.images_unchanged == 2
    assert again.products_embedded == again.products_updated == 0


@pytest.mark.unit
def test_without_a_classifier_only_colour_tags_are_added(tmp_path: Path) -> None:
    store = KnowledgeStore(path=tmp_path / "chroma")
    catalogue = write_catalogue(tmp_path / "shop")
    report = ingestor_with(store, None).ingest(load_paths([catalogue]))
    assert (report.autotagged, report.categories_predicted) == (1, 0)
    scarf = product_meta(store, "scarf")
    assert scarf["category"] == "" and scarf.get("category_source") is None
    assert scarf["colour_tags"] == "red" and scarf["tags"] == "red"


@pytest.mark.unit
def test_an_unsure_classifier_leaves_the_category_empty(tmp_path: Path) -> None:
    store = KnowledgeStore(path=tmp_path / "chroma")
    root = tmp_path / "shop"
    root.mkdir()
    # A purple product on white is as red as it is blue for the test classifier.
    product_photo(root / "p.png", (110, 20, 170))
    (root / "c.json").write_text(json.dumps([{"id": "p", "title": "P", "images": ["p.png"]}]))
    encoder = TinyImageEncoder()
    tagger = partial(
        autotag, classifier=redness_classifier(), encoder=MeanColourEncoder(), min_confidence=0.9
    )
    ingestor = Ingestor(
        store, HashEmbedder(), lambda: encoder, encoder.name, IngestOptions(progress=False), tagger
    )
    report = ingestor.ingest(load_paths([root / "c.json"]))
    assert (report.categories_predicted, report.categories_unsure) == (0, 1)
    assert product_meta(store, "p")["colour_tags"] == "purple"


@pytest.mark.unit
def test_an_ingestor_without_autotagger_leaves_products_as_loaded(tmp_path: Path) -> None:
    store = KnowledgeStore(path=tmp_path / "chroma")
    catalogue = write_catalogue(tmp_path / "shop")
    encoder = TinyImageEncoder()
    ingestor = Ingestor(
        store, HashEmbedder(), lambda: encoder, encoder.name, IngestOptions(progress=False)
    )
    report: IngestReport = ingestor.ingest(load_paths([catalogue]))
    assert report.autotagged == 0
    assert product_meta(store, "scarf")["tags"] == ""


@pytest.mark.integration
def test_the_app_ingestor_colour_tags_uncategorised_products(settings: Settings) -> None:
    """Wired by `Components`: no category model is trained under this data folder, so only
    colours are predicted."""
    catalogue = write_catalogue(settings.data_dir.parent / "shop")
    components = Components(settings, progress=False)
    report = components.ingestor.ingest(load_paths([catalogue]))
    assert report.autotagged == 1 and report.categories_predicted == 0
    scarf = product_meta(components.store, "scarf")
    assert scarf["colour_tags"] == "red" and scarf["category"] == ""
