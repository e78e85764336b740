"""Ingestion into a real embedded Chroma: idempotent, incremental, and honest about bad input."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from knowledge_base.admin import delete_record, kb_stats
from knowledge_base.ingest import IngestOptions, Ingestor, IngestReport
from knowledge_base.loaders import load_paths
from knowledge_base.store import EmbedderMismatch, KnowledgeStore
from retrieval.encoders.text import HashEmbedder
from retrieval.search.hybrid import HybridSearcher
from retrieval.search.photo import PhotoMatcher, StoreImageIndex
from tests.conftest import CountingTextEmbedder, TinyImageEncoder, distinct_colours, make_image

pytestmark = pytest.mark.unit

LONG_BODY = "\n\n".join(
    f"Paragraph {n}: parcels leave our warehouse within two working days and tracking "
    f"numbers arrive by email; remote areas may take longer, see section {n}." * 2
    for n in range(8)
)


class Shop:
    """A small catalogue written under tmp_path, easy to edit between ingest runs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        colours = distinct_colours(5)
        self.products: list[dict[str, Any]] = [
            {
                "id": "boot",
                "title": "Trail boot",
                "description": "Waterproof leather hiking boot",
                "category": "shoes",
                "price": 120,
                "stock": 4,
                "images": ["img/boot-1.jpg", "img/boot-2.png"],
            },
            {
                "id": "mug",
                "title": "Stoneware mug",
                "description": "350 ml, dishwasher safe",
                "category": "kitchen",
                "price": 12.5,
                "images": ["img/mug.jpg"],
            },
            {
                "id": "tote",
                "title": "Canvas tote",
                "description": "Roomy shopping bag",
                "category": "bags",
                "images": ["img/tote.jpg"],
            },
        ]
        for colour, name in zip(
            colours, ["boot-1.jpg", "boot-2.png", "mug.jpg", "tote.jpg"], strict=False
        ):
            make_image(root / "img" / name, colour, size=(48, 48))
        self.articles: list[dict[str, Any]] = [
            {"id": "shipping", "title": "Shipping", "body": LONG_BODY, "tags": ["delivery"]},
            {"id": "returns", "title": "Returns", "body": "Return unworn items within 30 days."},
        ]
        self.write()

    @property
    def catalogue(self) -> Path:
        return self.root / "catalogue.json"

    def write(self) -> None:
        data = {"products": self.products, "articles": self.articles}
        self.catalogue.write_text(json.dumps(data, indent=2), encoding="utf-8")

    def product(self, product_id: str) -> dict[str, Any]:
        return next(p for p in self.products if p["id"] == product_id)


@pytest.fixture
def shop(tmp_path: Path) -> Shop:
    return Shop(tmp_path / "shop")


@pytest.fixture
def store(tmp_path: Path) -> KnowledgeStore:
    return KnowledgeStore(path=tmp_path / "chroma")


@pytest.fixture
def make_ingestor(
    store: KnowledgeStore, counting_embedder: CountingTextEmbedder, tiny_encoder: TinyImageEncoder
) -> Callable[..., Ingestor]:
    def make(**options: Any) -> Ingestor:
        settings = {"batch_size": 4, "chunk_size": 200, "chunk_overlap": 20, "progress": False}
        return Ingestor(
            store,
            counting_embedder,
            lambda: tiny_encoder,
            tiny_encoder.name,
            IngestOptions(**{**settings, **options}),
        )

    return make


def ingest(ingestor: Ingestor, *paths: Path) -> IngestReport:
    return ingestor.ingest(load_paths(list(paths)))


def chunk_ids(store: KnowledgeStore, article_id: str) -> list[str]:
    return sorted(store.ids("articles", where={"article_id": article_id}))


def test_first_ingest_stores_every_product_image_and_chunk(
    shop: Shop, store: KnowledgeStore, make_ingestor: Callable[..., Ingestor]
) -> None:
    report = ingest(make_ingestor(), shop.catalogue)
    assert report.ok, report.rejections
    assert (report.products_embedded, report.images_embedded) == (3, 4)
    assert report.articles_embedded == 2 and report.chunks_embedded > 3
    assert store.count("products") == 3 and store.count("images") == 4
    assert store.count("articles") == report.chunks_embedded
    assert chunk_ids(store, "returns") == ["returns#0"]
    stats = kb_stats(store)
    assert stats.products == 3 and stats.articles == 2 and stats.categories["shoes"] == 1


def test_second_run_on_unchanged_data_embeds_nothing(
    shop: Shop,
    store: KnowledgeStore,
    make_ingestor: Callable[..., Ingestor],
    counting_embedder: CountingTextEmbedder,
    tiny_encoder: TinyImageEncoder,
) -> None:
    first = ingest(make_ingestor(), shop.catalogue)
    counting_embedder.calls.clear()
    tiny_encoder.calls = 0
    second = ingest(make_ingestor(), shop.catalogue)
    assert counting_embedder.calls == [] and tiny_encoder.calls == 0
    assert second.products_embedded == second.images_embedded == second.chunks_embedded == 0
    assert second.products_updated == second.images_updated == second.chunks_updated == 0
    assert second.products_unchanged == 3 and second.images_unchanged == 4
    assert second.chunks_unchanged == first.chunks_embedded and second.articles_unchanged == 2
    assert store.count("products") == 3 and store.count("images") == 4


def test_editing_one_product_reembeds_only_that_product(
    shop: Shop,
    store: KnowledgeStore,
    make_ingestor: Callable[..., Ingestor],
    counting_embedder: CountingTextEmbedder,
    tiny_encoder: TinyImageEncoder,
) -> None:
    ingest(make_ingestor(), shop.catalogue)
    shop.product("mug")["description"] = "450 ml, microwave safe"
    shop.write()
    counting_embedder.calls.clear()
    tiny_encoder.calls = 0
    report = ingest(make_ingestor(), shop.catalogue)
    assert counting_embedder.calls == [[next(iter(store.get("products", ids=["mug"]))).document]]
    assert "450 ml" in counting_embedder.calls[0][0]
    assert report.products_embedded == 1 and report.products_unchanged == 2
    assert tiny_encoder.calls == 0 and report.images_embedded == 0
    assert report.chunks_embedded == 0


def test_price_change_updates_metadata_without_embedding(
    shop: Shop,
    store: KnowledgeStore,
    make_ingestor: Callable[..., Ingestor],
    counting_embedder: CountingTextEmbedder,
) -> None:
    ingest(make_ingestor(), shop.catalogue)
    before = store.get("products", ids=["boot"])[0].metadata["content_hash"]
    shop.product("boot")["price"] = 99
    shop.write()
    counting_embedder.calls.clear()
    report = ingest(make_ingestor(), shop.catalogue)
    assert counting_embedder.calls == []
    assert report.products_updated == 1 and report.products_embedded == 0
    (boot,) = store.get("products", ids=["boot"])
    assert boot.metadata["price"] == 99 and boot.metadata["content_hash"] != before
    searcher = HybridSearcher(store, counting_embedder)
    assert searcher.products("waterproof hiking boot", k=1, mode="dense")[0].price == 99


def test_attributes_are_stored_and_searchable_but_not_embedded(
    shop: Shop,
    store: KnowledgeStore,
    make_ingestor: Callable[..., Ingestor],
    counting_embedder: CountingTextEmbedder,
) -> None:
    shop.product("boot")["attributes"] = {"colour": "Brown"}
    shop.write()
    ingest(make_ingestor(), shop.catalogue)
    embedded = next(text for call in counting_embedder.calls for text in call if "boot" in text)
    assert "colour" not in embedded and "Brown" not in embedded
    (boot,) = store.get("products", ids=["boot"])
    assert "colour: Brown" in boot.document
    shop.product("boot")["attributes"] = {"colour": "Tan"}
    shop.write()
    counting_embedder.calls.clear()
    report = ingest(make_ingestor(), shop.catalogue)
    assert counting_embedder.calls == [] and report.products_updated == 1
    searcher = HybridSearcher(store, counting_embedder)
    assert searcher.products("tan", k=1, mode="bm25")[0].product_id == "boot"


def test_retitled_product_refreshes_its_image_documents_without_reencoding(
    shop: Shop,
    store: KnowledgeStore,
    make_ingestor: Callable[..., Ingestor],
    tiny_encoder: TinyImageEncoder,
) -> None:
    ingest(make_ingestor(), shop.catalogue)
    shop.product("boot")["title"] = "Alpine boot"
    shop.write()
    tiny_encoder.calls = 0
    report = ingest(make_ingestor(), shop.catalogue)
    assert tiny_encoder.calls == 0 and report.images_updated == 2
    assert {hit.document for hit in store.get("images", where={"product_id": "boot"})} == {
        "Alpine boot"
    }


def test_article_that_gets_shorter_leaves_no_stale_chunks(
    shop: Shop, store: KnowledgeStore, make_ingestor: Callable[..., Ingestor]
) -> None:
    ingest(make_ingestor(), shop.catalogue)
    long_ids = chunk_ids(store, "shipping")
    assert len(long_ids) > 3
    shop.articles[0]["body"] = "Parcels leave within two working days."
    shop.write()
    report = ingest(make_ingestor(), shop.catalogue)
    assert chunk_ids(store, "shipping") == ["shipping#0"]
    assert report.stale_removed == len(long_ids) - 1
    assert report.articles_embedded == 1 and report.articles_unchanged == 1
    (chunk,) = store.get("articles", ids=["shipping#0"])
    assert chunk.document == "Parcels leave within two working days."
    assert chunk.metadata["chunk_count"] == 1


def test_changing_chunk_size_rechunks_without_leftovers(
    shop: Shop, store: KnowledgeStore, make_ingestor: Callable[..., Ingestor]
) -> None:
    ingest(make_ingestor(chunk_size=200), shop.catalogue)
    small = chunk_ids(store, "shipping")
    ingest(make_ingestor(chunk_size=800), shop.catalogue)
    large = chunk_ids(store, "shipping")
    assert len(large) < len(small)
    positions = sorted(int(i.split("#")[1]) for i in large)
    assert positions == list(range(len(large)))
    stored = store.get("articles", where={"article_id": "shipping"})
    assert all(hit.metadata["chunk_count"] == len(large) for hit in stored)


def test_removing_an_image_from_a_product_removes_its_vector(
    shop: Shop, store: KnowledgeStore, make_ingestor: Callable[..., Ingestor]
) -> None:
    ingest(make_ingestor(), shop.catalogue)
    shop.product("boot")["images"] = ["img/boot-1.jpg"]
    shop.write()
    report = ingest(make_ingestor(), shop.catalogue)
    assert store.ids("images", where={"product_id": "boot"}) == ["boot#img0"]
    assert report.stale_removed == 1 and store.count("images") == 3


def test_broken_images_are_rejected_but_text_and_good_images_are_ingested(
    shop: Shop, store: KnowledgeStore, make_ingestor: Callable[..., Ingestor]
) -> None:
    (shop.root / "img" / "text.jpg").write_text("not an image")
    good = (shop.root / "img" / "mug.jpg").read_bytes()
    (shop.root / "img" / "cut.jpg").write_bytes(good[: len(good) // 2])
    shop.product("boot")["images"] += ["img/text.jpg", "img/missing.jpg"]
    shop.product("mug")["images"] = ["img/cut.jpg", "img/mug.jpg"]
    shop.write()
    report = ingest(make_ingestor(), shop.catalogue)
    assert store.count("products") == 3
    assert sorted(store.ids("images")) == ["boot#img0", "boot#img1", "mug#img1", "tote#img0"]
    reasons = {Path(r.source).name: r.reason for r in report.rejections}
    assert set(reasons) == {"text.jpg", "missing.jpg", "cut.jpg"}
    assert "not a recognised image format" in reasons["text.jpg"]
    assert "unreadable" in reasons["missing.jpg"]
    assert "corrupt or truncated" in reasons["cut.jpg"]
    assert "'boot'" in reasons["text.jpg"] and "'mug'" in reasons["cut.jpg"]
    assert str(shop.catalogue) in reasons["text.jpg"]  # where the product was defined


def test_an_image_that_turns_corrupt_loses_its_old_vector(
    shop: Shop, store: KnowledgeStore, make_ingestor: Callable[..., Ingestor]
) -> None:
    ingest(make_ingestor(), shop.catalogue)
    (shop.root / "img" / "tote.jpg").write_text("overwritten by mistake")
    report = ingest(make_ingestor(), shop.catalogue)
    assert "tote#img0" not in store.ids("images")
    assert [Path(r.source).name for r in report.rejections] == ["tote.jpg"]


def test_duplicate_ids_are_reported_with_file_and_line_and_the_last_wins(
    tmp_path: Path, store: KnowledgeStore, make_ingestor: Callable[..., Ingestor]
) -> None:
    first = tmp_path / "a.jsonl"
    second = tmp_path / "b.jsonl"
    first.write_text('{"id": "p1", "title": "Old name"}\n{"id": "p2", "title": "Other"}\n')
    second.write_text('{"id": "p1", "title": "New name"}\n')
    report = ingest(make_ingestor(), first, second)
    (rejection,) = report.rejections
    assert (rejection.source, rejection.line) == (str(first), 1)
    assert "duplicate product id 'p1'" in rejection.reason and f"{second}:1" in rejection.reason
    assert store.get("products", ids=["p1"])[0].metadata["title"] == "New name"
    assert store.count("products") == 2


def test_products_are_embedded_in_batches_with_a_progress_bar(
    tmp_path: Path,
    store: KnowledgeStore,
    counting_embedder: CountingTextEmbedder,
    tiny_encoder: TinyImageEncoder,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "items.jsonl"
    path.write_text("".join(f'{{"id": "p{n}", "title": "Item {n}"}}\n' for n in range(5)))
    options = IngestOptions(batch_size=2, progress=True)
    ingestor = Ingestor(store, counting_embedder, lambda: tiny_encoder, "tiny", options)
    ingest(ingestor, path)
    assert [len(call) for call in counting_embedder.calls] == [2, 2, 1]
    err = capsys.readouterr().err
    assert "product texts" in err and "5/5" in err


def test_text_only_runs_never_load_the_image_encoder(
    tmp_path: Path, store: KnowledgeStore, counting_embedder: CountingTextEmbedder
) -> None:
    def refuse() -> TinyImageEncoder:
        raise AssertionError("the image encoder must not be loaded")

    path = tmp_path / "faq.jsonl"
    path.write_text('{"id": "a", "title": "A", "body": "Some answer."}\n')
    ingestor = Ingestor(store, counting_embedder, refuse, "tiny", IngestOptions(progress=False))
    assert ingest(ingestor, path).chunks_embedded == 1


def test_a_store_built_with_one_embedder_refuses_another(
    shop: Shop, store: KnowledgeStore, make_ingestor: Callable[..., Ingestor], tmp_path: Path
) -> None:
    ingest(make_ingestor(), shop.catalogue)
    other = CountingTextEmbedder(HashEmbedder(dim=64))
    other.name = "other"
    fresh_store = KnowledgeStore(path=tmp_path / "chroma")
    ingestor = Ingestor(fresh_store, other, TinyImageEncoder, "tiny", IngestOptions(progress=False))
    with pytest.raises(EmbedderMismatch, match="built with encoder 'hash', not 'other'"):
        ingest(ingestor, shop.catalogue)


def test_collections_first_touched_by_stats_still_record_their_encoder(
    shop: Shop, tmp_path: Path, make_ingestor: Callable[..., Ingestor], store: KnowledgeStore
) -> None:
    kb_stats(store)  # creates the collections before any encoder is known
    ingest(make_ingestor(), shop.catalogue)
    assert KnowledgeStore(path=tmp_path / "chroma").encoder_of("products") == "hash"
    assert KnowledgeStore(path=tmp_path / "chroma").encoder_of("images") == "tiny"


def test_ingested_records_are_found_by_text_and_by_photo(
    shop: Shop,
    store: KnowledgeStore,
    make_ingestor: Callable[..., Ingestor],
    tiny_encoder: TinyImageEncoder,
) -> None:
    ingest(make_ingestor(), shop.catalogue)
    text = HybridSearcher(store, HashEmbedder())
    top_product = text.products("waterproof leather hiking boot", k=1, mode="dense")[0]
    assert top_product.product_id == "boot"
    assert text.articles("return unworn items", k=1, mode="dense")[0].article_id == "returns"
    photos = PhotoMatcher(StoreImageIndex(store, tiny_encoder.name), tiny_encoder)
    from PIL import Image

    top = photos.search(Image.open(shop.root / "img" / "tote.jpg"), k=2).matches
    assert top[0].product_id == "tote" and top[0].score == pytest.approx(1.0, abs=1e-3)


def test_delete_removes_a_product_with_its_images_or_an_article_with_its_chunks(
    shop: Shop, store: KnowledgeStore, make_ingestor: Callable[..., Ingestor]
) -> None:
    ingest(make_ingestor(), shop.catalogue)
    boot = delete_record(store, "boot")
    assert (boot.products, boot.images, boot.article_chunks) == (1, 2, 0)
    shipping = delete_record(store, "shipping")
    assert shipping.article_chunks > 3 and shipping.found
    assert not delete_record(store, "boot").found
    assert store.count("products") == 2 and store.count("images") == 2


def test_stored_vectors_are_unit_float32_rows(
    shop: Shop, store: KnowledgeStore, make_ingestor: Callable[..., Ingestor]
) -> None:
    ingest(make_ingestor(), shop.catalogue)
    found = store.collection("images").get(include=["embeddings"])
    vectors = np.asarray(found["embeddings"], dtype=np.float32)
    assert vectors.shape == (4, TinyImageEncoder.dim)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
