"""LangChain retrievers over hybrid text search and photo search."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever

from knowledge_base.images import ImageRejected
from knowledge_base.ingest import IngestOptions, Ingestor
from knowledge_base.loaders import LoadResult
from knowledge_base.schema import Article, Product
from knowledge_base.store import KnowledgeStore
from retrieval.encoders.text import HashEmbedder
from retrieval.langchain_adapters import (
    KnowledgeBaseRetriever,
    PhotoRetriever,
    image_query,
)
from retrieval.search.hybrid import HybridSearcher, SearchFilters
from retrieval.search.photo import PhotoMatcher, StoreImageIndex
from tests.helpers.colours import COLOURS, MeanColourEncoder, solid

pytestmark = pytest.mark.integration


def png_bytes(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    solid(colour).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[KnowledgeStore, Path]:
    root = tmp_path_factory.mktemp("shop")
    images = root / "images"
    images.mkdir()
    products = []
    for product_id, colour in COLOURS.items():
        path = images / f"{product_id}.png"
        solid(colour).save(path)
        category = "hats" if "hat" in product_id else "clothing"
        products.append(
            Product(
                id=product_id,
                title=product_id.replace("-", " ").title(),
                description=f"A {product_id.split('-')[0]} piece from our shop",
                category=category,
                price=25.0,
                stock=4,
                images=[path],
            )
        )
    articles = [
        Article(id="refunds-en", title="Refunds", body="Refunds reach your card within 5 days."),
        Article(id="shipping-en", title="Shipping", body="Parcels ship within 2 business days."),
    ]
    store = KnowledgeStore(path=root / "chroma")
    encoder = MeanColourEncoder()
    ingestor = Ingestor(
        store, HashEmbedder(), lambda: encoder, encoder.name, IngestOptions(progress=False)
    )
    report = ingestor.ingest(LoadResult(products=products, articles=articles))
    assert report.ok, report.rejections
    return store, images


@pytest.fixture()
def photo_matcher(shop: tuple[KnowledgeStore, Path]) -> PhotoMatcher:
    encoder = MeanColourEncoder()
    return PhotoMatcher(StoreImageIndex(shop[0], encoder.name), encoder)


def test_text_retriever_is_a_langchain_retriever_returning_cited_passages(
    shop: tuple[KnowledgeStore, Path],
) -> None:
    retriever = KnowledgeBaseRetriever(searcher=HybridSearcher(shop[0], HashEmbedder()), k=2)
    assert isinstance(retriever, BaseRetriever)
    documents = retriever.invoke("when do refunds reach my card")
    assert all(isinstance(d, Document) for d in documents)
    top = documents[0]
    assert top.metadata["article_id"] == top.metadata["source"] == "refunds-en"
    assert top.page_content.startswith("Refunds\n")
    assert top.metadata["chunk_id"] == "refunds-en#0"
    assert top.metadata["dense_rank"] == 1 and top.metadata["bm25_rank"] == 1
    assert top.metadata["fused_score"] > 0


def test_text_retriever_searches_products_with_filters(shop: tuple[KnowledgeStore, Path]) -> None:
    retriever = KnowledgeBaseRetriever(
        searcher=HybridSearcher(shop[0], HashEmbedder()),
        target="products",
        filters=SearchFilters(category="hats"),
    )
    documents = retriever.invoke("piece from our shop")
    assert [d.metadata["product_id"] for d in documents] == ["green-hat"]
    assert documents[0].metadata["price"] == 25.0
    assert "Green Hat" in documents[0].page_content


def test_text_retriever_works_in_batches_and_async(shop: tuple[KnowledgeStore, Path]) -> None:
    retriever = KnowledgeBaseRetriever(searcher=HybridSearcher(shop[0], HashEmbedder()), k=1)
    batch = retriever.batch(["refunds card", "parcels ship"])
    assert [docs[0].metadata["article_id"] for docs in batch] == ["refunds-en", "shipping-en"]
    documents = asyncio.run(retriever.ainvoke("parcels ship"))
    assert documents[0].metadata["article_id"] == "shipping-en"


@pytest.mark.parametrize("as_query", ["path", "bytes", "data_uri", "Path"])
def test_photo_retriever_takes_a_path_bytes_or_a_data_uri(
    photo_matcher: PhotoMatcher, shop: tuple[KnowledgeStore, Path], tmp_path: Path, as_query: str
) -> None:
    photo = tmp_path / "query.png"
    photo.write_bytes(png_bytes((200, 30, 25)))
    queries: dict[str, Any] = {
        "path": str(photo),
        "Path": photo,
        "bytes": photo.read_bytes(),
        "data_uri": image_query(photo.read_bytes(), "image/png"),
    }
    documents = PhotoRetriever(matcher=photo_matcher, k=3).invoke(queries[as_query])
    assert documents[0].metadata["product_id"] == "red-scarf"
    assert documents[0].metadata["matched_image"].endswith("red-scarf.png")
    assert len(documents) == 3


def test_photo_retriever_returns_the_photo_matchers_ranking_and_confidence(
    photo_matcher: PhotoMatcher,
) -> None:
    found = photo_matcher.search(solid((200, 30, 25)), k=3)
    documents = PhotoRetriever(matcher=photo_matcher, k=3).invoke(png_bytes((200, 30, 25)))
    assert [d.metadata["product_id"] for d in documents] == [m.product_id for m in found.matches]
    assert [d.metadata["confidence"] for d in documents] == [m.confidence for m in found.matches]
    assert [d.metadata["similarity"] for d in documents] == [m.similarity for m in found.matches]


def test_photo_retriever_filters_by_category(photo_matcher: PhotoMatcher) -> None:
    retriever = PhotoRetriever(matcher=photo_matcher, category="hats")
    documents = retriever.invoke(png_bytes((200, 30, 25)))
    assert [d.metadata["product_id"] for d in documents] == ["green-hat"]


def test_photo_retriever_refuses_paths_outside_its_image_root(
    photo_matcher: PhotoMatcher, shop: tuple[KnowledgeStore, Path], tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere.png"
    outside.write_bytes(png_bytes((1, 2, 3)))
    retriever = PhotoRetriever(matcher=photo_matcher, image_root=shop[1])
    with pytest.raises(ImageRejected, match="outside the allowed image folder"):
        retriever.invoke(str(outside))
    with pytest.raises(ImageRejected, match="outside the allowed image folder"):
        retriever.invoke(str(shop[1] / ".." / ".." / outside.name))
    inside = retriever.invoke(str(shop[1] / "blue-coat.png"))
    assert inside[0].metadata["product_id"] == "blue-coat"


def test_photo_retriever_can_refuse_paths_altogether(
    photo_matcher: PhotoMatcher, shop: tuple[KnowledgeStore, Path]
) -> None:
    retriever = PhotoRetriever(matcher=photo_matcher, allow_paths=False)
    with pytest.raises(ImageRejected, match="data URIs only"):
        retriever.invoke(str(shop[1] / "blue-coat.png"))
    assert retriever.invoke(png_bytes((30, 40, 200)))[0].metadata["product_id"] == "blue-coat"


def test_photo_retriever_explains_bad_input(photo_matcher: PhotoMatcher, tmp_path: Path) -> None:
    retriever = PhotoRetriever(matcher=photo_matcher)
    with pytest.raises(FileNotFoundError, match="no such image file"):
        retriever.invoke(str(tmp_path / "absent.png"))
    with pytest.raises(ImageRejected, match="not valid base64"):
        retriever.invoke("data:image/png;base64,@@@")
    with pytest.raises(ImageRejected, match="not a recognised image"):
        retriever.invoke(b"definitely not an image")
