"""Exact dense text search: the same answers as Chroma's own search, filters, and freshness."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from knowledge_base.schema import Product
from knowledge_base.store import KnowledgeStore
from retrieval.encoders.text import HashEmbedder
from retrieval.search.dense import ExactDenseIndex, load_dense_index
from retrieval.search.hybrid import HybridOptions, HybridSearcher, SearchFilters
from tests.retrieval.search.test_hybrid import ARTICLES, PRODUCTS, build_store, ingest


def _index(rows: int, seed: int = 0) -> ExactDenseIndex:
    vectors = np.random.default_rng(seed).normal(size=(rows, 16)).astype(np.float32)
    metadatas = [{"category": "rare" if i % 97 == 0 else "common", "n": i} for i in range(rows)]
    return ExactDenseIndex(vectors, [f"r{i}" for i in range(rows)], [""] * rows, metadatas)


@pytest.mark.unit
def test_exact_search_ranks_by_cosine_and_returns_at_most_k() -> None:
    index = _index(500)
    probe = index.vectors[42] + 0.01
    hits = index.search(probe, 10)
    expected = np.argsort(-(index.vectors @ (probe / np.linalg.norm(probe))))[:10]
    assert [hit.id for hit in hits] == [f"r{i}" for i in expected]
    assert hits[0].id == "r42"
    assert all(a.score >= b.score for a, b in itertools.pairwise(hits))
    assert len(index.search(probe, 10_000)) == 500
    assert index.search(probe, 0) == []


@pytest.mark.unit
def test_a_narrow_filter_still_returns_the_best_rows_that_pass_it() -> None:
    index = _index(5_000)
    rare = [i for i in range(5_000) if i % 97 == 0]
    hits = index.search(index.vectors[1], 10, index.columns.values("category") == "rare")
    scores = index.vectors[rare] @ index.vectors[1]
    best_rare = [f"r{rare[i]}" for i in np.argsort(-scores)[:10]]
    assert [hit.id for hit in hits] == best_rare
    assert index.search(index.vectors[1], 5, np.zeros(5_000, dtype=bool)) == []


@pytest.mark.unit
def test_an_empty_index_finds_nothing_and_mismatched_columns_are_refused() -> None:
    empty = ExactDenseIndex(np.zeros((0, 8), np.float32), [], [], [])
    assert empty.search(np.ones(8), 5) == []
    with pytest.raises(ValueError, match="same length"):
        ExactDenseIndex(np.zeros((2, 8), np.float32), ["a"], ["", ""], [{}, {}])


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeStore:
    return build_store(tmp_path_factory.mktemp("dense") / "chroma", ARTICLES, PRODUCTS)


@pytest.mark.integration
def test_the_copy_answers_like_chroma_on_a_real_store(store: KnowledgeStore) -> None:
    embedder = HashEmbedder()
    index = load_dense_index(store, "products", page=2)
    assert len(index) == len(PRODUCTS)
    for query in ("waterproof hiking boot", "cotton shirt", "surprise gift"):
        vector = embedder.embed_texts([query], kind="query")[0]
        exact = {hit.id: hit for hit in index.search(vector, len(PRODUCTS))}
        chroma = {hit.id: hit for hit in store.query("products", vector, len(PRODUCTS))}
        assert exact.keys() == chroma.keys()
        for record_id, hit in chroma.items():
            assert exact[record_id].score == pytest.approx(hit.score, abs=1e-4)
            assert exact[record_id].document == hit.document
            assert exact[record_id].metadata == hit.metadata


@pytest.mark.integration
def test_exact_and_hnsw_searchers_agree_with_filters(store: KnowledgeStore) -> None:
    exact = HybridSearcher(store, HashEmbedder(), HybridOptions(exact_dense=True))
    graph = HybridSearcher(store, HashEmbedder(), HybridOptions(exact_dense=False))
    cases = [
        ("boot", SearchFilters(category="shoes")),
        ("shirt", SearchFilters(max_price=30)),
        ("item", SearchFilters(in_stock=True)),
    ]
    for query, filters in cases:
        for mode in ("dense", "hybrid"):
            # Sets: the hash embedder gives equal scores, which the two order differently.
            found = {p.product_id for p in exact.products(query, 5, filters, mode=mode)}
            assert found == {p.product_id for p in graph.products(query, 5, filters, mode=mode)}
            assert found and all(
                filters.matches(p.metadata) for p in exact.products(query, 5, filters)
            )
    assert [a.article_id for a in exact.articles("refund", 3, mode="dense")] == [
        a.article_id for a in graph.articles("refund", 3, mode="dense")
    ]


@pytest.mark.integration
def test_the_copy_follows_a_new_product_at_once(tmp_path: Path) -> None:
    store = build_store(tmp_path / "chroma", [], PRODUCTS[:2])
    searcher = HybridSearcher(store, HashEmbedder(), HybridOptions(recheck_seconds=3600))
    assert searcher.products("alpaca scarf", 1, mode="dense")[0].product_id != "scarf"
    scarf = Product(id="scarf", title="Alpaca scarf", category="clothing", price=30.0)
    ingest(store, [], [scarf])
    assert searcher.products("alpaca scarf", 1, mode="dense")[0].product_id == "scarf"
    assert searcher.collections.builds == 2


@pytest.mark.integration
def test_a_large_collection_is_rebuilt_in_the_background_while_the_old_index_serves(
    tmp_path: Path,
) -> None:
    store = build_store(tmp_path / "chroma", [], PRODUCTS[:2])
    options = HybridOptions(recheck_seconds=3600)
    searcher = HybridSearcher(store, HashEmbedder(), options)
    searcher.collections.background_from = 1
    assert searcher.products("alpaca scarf", 1, mode="dense")[0].product_id != "scarf"
    scarf = Product(id="scarf", title="Alpaca scarf", category="clothing", price=30.0)
    ingest(store, [], [scarf])
    stale = {p.product_id for p in searcher.products("alpaca scarf", 5, mode="bm25")}
    searcher.collections.wait_for_rebuilds()
    assert "scarf" not in stale
    assert searcher.products("alpaca scarf", 1, mode="bm25")[0].product_id == "scarf"
    assert searcher.products("alpaca scarf", 1, mode="dense")[0].product_id == "scarf"
    assert searcher.collections.builds == 2
