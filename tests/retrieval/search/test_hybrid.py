"""Hybrid search: RRF fusion, filters applied alike on both sides, dedup, BM25 cache, evidence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rank_bm25
from pydantic import ValidationError

from knowledge_base.ingest import IngestOptions, Ingestor
from knowledge_base.loaders import LoadResult
from knowledge_base.schema import Article, Product
from knowledge_base.store import KnowledgeStore
from retrieval.encoders.text import HashEmbedder
from retrieval.search.bm25 import BM25Document, BM25Index, BM25Record, BM25Variant
from retrieval.search.columns import MetadataColumns
from retrieval.search.hybrid import (
    HybridOptions,
    HybridSearcher,
    SearchFilters,
    reciprocal_rank_fusion,
)
from retrieval.search.tokenize import Tokenizer

WARRANTY_BODY = "\n\n".join(
    f"Warranty clause {n}: the manufacturer repairs defects in part {n} for two years."
    for n in range(8)
)
ARTICLES = [
    Article(
        id="returns-en",
        title="Returns policy",
        body="Return any item within 30 days of delivery for a full refund to your card.",
        language="en",
    ),
    Article(
        id="returns-zh",
        title="退货政策",
        body="收到商品后30天内可以退货，并获得全额退款。",
        language="zh",
    ),
    Article(
        id="shipping-en",
        title="Shipping options",
        body="Standard shipping takes 3 to 5 business days; express shipping arrives next day.",
        language="en",
    ),
    Article(
        id="shipping-zh",
        title="配送方式",
        body="标准配送需要3到5个工作日，加急配送次日送达。",
        language="zh",
    ),
    Article(id="warranty-en", title="Warranty", body=WARRANTY_BODY, language="en"),
]
PRODUCTS = [
    Product(
        id="boot-1",
        title="Trail hiking boot",
        description="Waterproof leather hiking boot from our shop",
        category="shoes",
        price=120.0,
        stock=3,
    ),
    Product(
        id="boot-2",
        title="City boot",
        description="Suede boot for the city from our shop",
        category="shoes",
        price=80.0,
        stock=0,
    ),
    Product(
        id="tee-1",
        title="Cotton tee",
        description="Organic cotton t-shirt from our shop",
        category="clothing",
        price=20.0,
        stock=50,
    ),
    Product(
        id="tee-2",
        title="Linen shirt",
        description="Linen summer shirt from our shop",
        category="clothing",
        price=45.0,
        stock=7,
        language="zh",
    ),
    Product(
        id="mystery",
        title="Mystery box",
        description="A surprise item from our shop",
        category="gifts",
    ),
]


def _no_images() -> Any:
    raise AssertionError("these tests ingest no images")


def build_store(path: Path, articles: list[Article], products: list[Product]) -> KnowledgeStore:
    store = KnowledgeStore(path=path)
    ingest(store, articles, products)
    return store


def ingest(store: KnowledgeStore, articles: list[Article], products: list[Product]) -> None:
    options = IngestOptions(chunk_size=120, chunk_overlap=0, progress=False)
    ingestor = Ingestor(store, HashEmbedder(), _no_images, "none", options)
    report = ingestor.ingest(LoadResult(products=products, articles=articles))
    assert report.ok, report.rejections


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeStore:
    return build_store(tmp_path_factory.mktemp("hybrid") / "chroma", ARTICLES, PRODUCTS)


@pytest.fixture()
def searcher(store: KnowledgeStore) -> HybridSearcher:
    return HybridSearcher(store, HashEmbedder())


@pytest.mark.unit
def test_rrf_ranks_items_that_both_lists_like_first() -> None:
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["c", "a", "d"]], [1.0, 1.0], k=60)
    assert [item for item, _ in fused] == ["a", "c", "b", "d"]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[-1][1] == pytest.approx(1 / 63)


@pytest.mark.unit
def test_rrf_weights_tilt_the_fusion() -> None:
    fused = reciprocal_rank_fusion([["a", "b"], ["b", "a"]], [1.0, 3.0], k=1)
    assert [item for item, _ in fused] == ["b", "a"]
    assert fused[0][1] == pytest.approx(1 / 3 + 3 / 2)


@pytest.mark.unit
def test_filters_translate_to_one_condition_or_an_and() -> None:
    assert SearchFilters().to_where() is None
    assert SearchFilters(category="shoes").to_where() == {"category": "shoes"}
    where = SearchFilters(category="shoes", min_price=10, max_price=50, in_stock=True).to_where()
    assert where == {
        "$and": [
            {"category": "shoes"},
            {"in_stock": True},
            {"price": {"$gte": 10}},
            {"price": {"$lte": 50}},
        ]
    }


@pytest.mark.unit
def test_filter_matching_treats_a_missing_field_as_no_match() -> None:
    price_filter = SearchFilters(min_price=10)
    assert price_filter.matches({"price": 12.5})
    assert not price_filter.matches({"price": 5})
    assert not price_filter.matches({})
    assert not SearchFilters(in_stock=True).matches({"in_stock": False})
    assert SearchFilters().matches({})


@pytest.mark.unit
def test_one_of_several_categories_or_ids_is_an_in_condition_on_both_sides() -> None:
    filters = SearchFilters(
        categories=frozenset({"shoes", "bags"}), product_ids=frozenset({"b", "a"})
    )
    assert filters.to_where() == {
        "$and": [{"category": {"$in": ["bags", "shoes"]}}, {"product_id": {"$in": ["a", "b"]}}]
    }
    assert filters.matches({"category": "bags", "product_id": "a"})
    assert not filters.matches({"category": "hats", "product_id": "a"})
    assert not filters.matches({"category": "bags", "product_id": "c"})
    assert filters.product_fields() == ["categories", "product_ids"]


@pytest.mark.unit
def test_the_vectorised_mask_agrees_with_matches_record_by_record() -> None:
    rng = np.random.default_rng(5)
    values: list[Any] = ["shoes", "bags", None, 3, True]
    metadatas = [
        {
            key: value
            for key, value in {
                "category": values[int(rng.integers(0, 4))],
                "product_id": f"p{i}",
                "language": ["en", "zh", None][int(rng.integers(0, 3))],
                "in_stock": [True, False, None, 1][int(rng.integers(0, 4))],
                "price": [None, "12", True, *rng.uniform(0, 100, 5).round(2)][
                    int(rng.integers(0, 8))
                ],
            }.items()
            if value is not None
        }
        for i in range(400)
    ]
    columns = MetadataColumns(metadatas)
    cases = [
        SearchFilters(category="shoes"),
        SearchFilters(in_stock=True, max_price=50),
        SearchFilters(min_price=20, max_price=60, language="en"),
        SearchFilters(categories=frozenset({"shoes", "bags"}), in_stock=False),
        SearchFilters(product_ids=frozenset({"p1", "p7", "p300"}), min_price=0),
        SearchFilters(product_id="p9"),
    ]
    for filters in cases:
        mask = filters.mask(columns)
        assert mask is not None
        assert mask.tolist() == [filters.matches(m) for m in metadatas], filters
    assert SearchFilters().mask(columns) is None


@pytest.mark.unit
def test_an_empty_list_of_categories_or_ids_is_refused() -> None:
    with pytest.raises(ValidationError, match="would match nothing"):
        SearchFilters(product_ids=frozenset())


@pytest.mark.unit
def test_an_inverted_price_range_is_refused() -> None:
    with pytest.raises(ValidationError, match="above max_price"):
        SearchFilters(min_price=50, max_price=10)


@pytest.mark.unit
def test_bm25_returns_only_documents_sharing_a_token_and_honours_the_predicate() -> None:
    documents = [
        BM25Document("", (BM25Record(str(i), text, {"n": i}),))
        for i, text in enumerate(["red wool hat", "blue wool scarf", "green rain coat"])
    ]
    index = BM25Index(documents, Tokenizer())
    assert [hit.record.id for hit in index.search("wool", 10)] == ["0", "1"]
    assert index.search("blue wool", 10)[0].record.id == "1"
    assert index.search("umbrella", 10) == []
    only_first = np.asarray([doc.metadata["n"] == 0 for doc in documents])
    assert [h.record.id for h in index.search("wool", 10, only_first)] == ["0"]
    assert BM25Index([], Tokenizer()).search("wool", 10) == []


@pytest.mark.unit
@pytest.mark.parametrize("variant", ["okapi", "l", "plus"])
def test_bm25_scores_equal_rank_bm25s_own(variant: BM25Variant) -> None:
    rng = np.random.default_rng(3)
    words = [f"w{n}" for n in range(40)]
    texts = [" ".join(rng.choice(words, size=int(rng.integers(1, 12)))) for _ in range(300)]
    documents = [BM25Document("", (BM25Record(f"d{i}", t, {}),)) for i, t in enumerate(texts)]
    index = BM25Index(documents, Tokenizer(), variant)
    kinds = {"okapi": rank_bm25.BM25Okapi, "l": rank_bm25.BM25L, "plus": rank_bm25.BM25Plus}
    model = kinds[variant]([Tokenizer()(t) for t in texts])
    for query in ("w1 w2 w3", "w5 w5 w39", "w7"):
        hits = index.search(query, k=len(texts))
        tokens = Tokenizer()(query)
        expected = model.get_batch_scores(tokens, [int(h.record.id[1:]) for h in hits])
        assert [h.score for h in hits] == pytest.approx(expected)
        assert len(hits) == sum(any(t in text.split() for t in tokens) for text in texts)


@pytest.mark.unit
def test_bm25_scores_an_article_as_a_whole_and_cites_its_best_chunk() -> None:
    article = BM25Document(
        "Refunds",
        (
            BM25Record("refunds#0", "Money goes back to the card you paid with.", {}),
            BM25Record("refunds#1", "PayPal refunds arrive in 1 to 3 days.", {}),
        ),
    )
    other = BM25Document("Paypal", (BM25Record("paypal#0", "We accept PayPal.", {}),))
    hits = BM25Index([article, other], Tokenizer()).search("paypal refunds card", 10)
    assert [hit.record.id for hit in hits] == ["refunds#1", "paypal#0"]


@pytest.mark.integration
@pytest.mark.parametrize(
    "filters",
    [
        SearchFilters(category="shoes"),
        SearchFilters(in_stock=True),
        SearchFilters(min_price=30, max_price=100),
        SearchFilters(language="zh"),
        SearchFilters(product_id="tee-1"),
        SearchFilters(category="clothing", in_stock=True, max_price=30),
        SearchFilters(categories=frozenset({"shoes", "gifts"})),
        SearchFilters(product_ids=frozenset({"boot-2", "tee-1"}), max_price=100),
    ],
    ids=[
        "category",
        "in_stock",
        "price",
        "language",
        "product_id",
        "combined",
        "categories",
        "product_ids",
    ],
)
def test_product_filters_select_the_same_records_on_both_sides(
    searcher: HybridSearcher, store: KnowledgeStore, filters: SearchFilters
) -> None:
    expected = {hit.id for hit in store.get("products", where=filters.to_where())}
    assert expected, "each filter must select something, or the test proves nothing"
    # Every product mentions "shop", so BM25 sees them all, as the dense side does at k=50.
    for mode in ("dense", "bm25", "hybrid"):
        found = {m.product_id for m in searcher.products("shop", k=50, filters=filters, mode=mode)}
        assert found == expected, mode


@pytest.mark.integration
def test_article_search_refuses_product_only_filters(searcher: HybridSearcher) -> None:
    with pytest.raises(ValueError, match="category"):
        searcher.articles("refund", filters=SearchFilters(category="shoes"))


@pytest.mark.integration
def test_language_filter_keeps_articles_of_that_language(searcher: HybridSearcher) -> None:
    results = searcher.articles("退款 refund 30 days", k=10, filters=SearchFilters(language="zh"))
    assert results
    assert {m.language for m in results} == {"zh"}


@pytest.mark.integration
def test_chunks_of_one_article_are_merged(searcher: HybridSearcher, store: KnowledgeStore) -> None:
    chunks = store.get("articles", where={"article_id": "warranty-en"})
    assert len(chunks) > 2
    for mode in ("dense", "bm25", "hybrid"):
        ids = [m.article_id for m in searcher.articles("warranty defects repairs", k=5, mode=mode)]
        assert ids[0] == "warranty-en", mode
        assert len(ids) == len(set(ids)), mode


@pytest.mark.integration
def test_chinese_query_finds_the_chinese_article_by_bm25(searcher: HybridSearcher) -> None:
    results = searcher.articles("怎么退货？", k=3, mode="bm25")
    assert results[0].article_id == "returns-zh"
    assert results[0].bm25_rank == 1
    assert results[0].dense_rank is None


@pytest.mark.integration
def test_hybrid_results_show_the_ranks_each_side_gave(searcher: HybridSearcher) -> None:
    query = "express shipping next day delivery refund"
    dense = [m.article_id for m in searcher.articles(query, k=10, mode="dense")]
    lexical = [m.article_id for m in searcher.articles(query, k=10, mode="bm25")]
    hybrid = searcher.articles(query, k=10)
    assert hybrid
    scores = [m.score for m in hybrid]
    assert scores == sorted(scores, reverse=True)
    for match in hybrid:
        assert match.score == pytest.approx(match.fused_score)
        if match.dense_rank is not None:
            assert dense[match.dense_rank - 1] == match.article_id
        if match.bm25_rank is not None:
            assert lexical[match.bm25_rank - 1] == match.article_id
        expected = sum(1 / (60 + r) for r in (match.dense_rank, match.bm25_rank) if r is not None)
        assert match.fused_score == pytest.approx(expected, abs=1e-6)


@pytest.mark.integration
def test_dense_mode_ranks_like_a_direct_store_query(
    searcher: HybridSearcher, store: KnowledgeStore
) -> None:
    query = "how long does shipping take"
    vector = HashEmbedder().embed_texts([query], kind="query")[0]
    # The best chunk of each article, in the store's order (one long article has many chunks).
    by_article = [str(hit.metadata["article_id"]) for hit in store.query("articles", vector, 12)]
    assert [m.article_id for m in searcher.articles(query, k=4, mode="dense")] == list(
        dict.fromkeys(by_article)
    )[:4]


@pytest.mark.integration
def test_product_results_carry_catalogue_facts(searcher: HybridSearcher) -> None:
    top = searcher.products("waterproof hiking boot", k=3)[0]
    assert top.product_id == "boot-1"
    assert top.price == 120.0
    assert top.metadata["in_stock"] is True
    assert top.dense_rank == 1 and top.bm25_rank == 1


@pytest.mark.integration
def test_a_blank_query_returns_nothing(searcher: HybridSearcher) -> None:
    assert searcher.articles("   ") == []
    assert searcher.products("") == []


@pytest.mark.integration
def test_bm25_index_is_rebuilt_only_when_the_collection_changes(tmp_path: Path) -> None:
    store = build_store(tmp_path / "chroma", ARTICLES[:2], [])
    searcher = HybridSearcher(store, HashEmbedder(), HybridOptions(recheck_seconds=0))
    searcher.articles("refund", mode="bm25")
    searcher.articles("delivery", mode="bm25")
    assert searcher.collections.builds == 1

    ingest(store, [ARTICLES[2]], [])
    assert searcher.articles("express", mode="bm25")[0].article_id == "shipping-en"
    assert searcher.collections.builds == 2

    edited = ARTICLES[2].model_copy(update={"body": "Parcels travel by carrier pigeon."})
    ingest(store, [edited], [])
    assert searcher.articles("pigeon", mode="bm25")[0].article_id == "shipping-en"
    assert searcher.articles("express", mode="bm25") == []
    assert searcher.collections.builds == 3


@pytest.mark.integration
def test_bm25_sees_an_edit_at_once_through_the_store_generation(tmp_path: Path) -> None:
    store = build_store(tmp_path / "chroma", ARTICLES[:3], [])
    searcher = HybridSearcher(store, HashEmbedder(), HybridOptions(recheck_seconds=3600))
    assert searcher.articles("express", mode="bm25")
    edited = ARTICLES[2].model_copy(update={"body": "Parcels travel by carrier pigeon."})
    ingest(store, [edited], [])
    assert searcher.articles("pigeon", mode="bm25")[0].article_id == "shipping-en"


@pytest.mark.integration
def test_bm25_waits_for_the_recheck_interval_when_a_writer_bypasses_the_store(
    tmp_path: Path,
) -> None:
    store = build_store(tmp_path / "chroma", ARTICLES[:3], [])
    searcher = HybridSearcher(store, HashEmbedder(), HybridOptions(recheck_seconds=3600))
    assert searcher.articles("express", mode="bm25")
    chunks = store.collection("articles")
    found = chunks.get(where={"article_id": "shipping-en"}, include=["metadatas", "embeddings"])
    metadata = {**found["metadatas"][0], "content_hash": "edited outside"}
    chunks.update(
        ids=found["ids"][:1],
        embeddings=found["embeddings"][:1],
        documents=["Parcels travel by pigeon."],
        metadatas=[metadata],
    )
    assert searcher.articles("pigeon", mode="bm25") == []  # no generation moved, same count
    searcher.collections.invalidate("articles")
    assert searcher.articles("pigeon", mode="bm25")[0].article_id == "shipping-en"
