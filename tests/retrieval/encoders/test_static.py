"""The static embedder distilled from MiniLM: real distillation, its cache, and dense search."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from knowledge_base.demo import DEMO_SHOP
from knowledge_base.ingest import IngestOptions, Ingestor
from knowledge_base.loaders import load_paths
from knowledge_base.store import KnowledgeStore
from retrieval.encoders import static as static_embedder
from retrieval.encoders.image import ImageEncoder
from retrieval.encoders.static import StaticMiniLMEmbedder
from retrieval.search.hybrid import HybridSearcher, SearchFilters

DEMO_ARTICLES = DEMO_SHOP / "articles"


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("static-cache")


@pytest.fixture(scope="module")
def embedder(cache: Path) -> StaticMiniLMEmbedder:
    return StaticMiniLMEmbedder(cache)  # distils MiniLM's vocabulary (~30 s)


@pytest.mark.integration
def test_distilled_rows_are_unit_256_wide_and_mean_something(
    embedder: StaticMiniLMEmbedder,
) -> None:
    rows = embedder.embed_texts(
        ["how long does delivery take", "when will my parcel arrive", "refund for a broken zipper"]
    )
    assert rows.dtype == np.float32 and rows.shape == (3, 256)
    assert np.allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-4)
    assert rows[0] @ rows[1] > rows[0] @ rows[2] + 0.2
    assert embedder.embed_texts([]).shape == (0, 256)
    np.testing.assert_array_equal(
        embedder.embed_texts(["parcel"], kind="query"), embedder.embed_texts(["parcel"])
    )


@pytest.mark.integration
def test_a_second_instance_loads_the_cached_table_instead_of_distilling(
    embedder: StaticMiniLMEmbedder, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (cache / "minilm-static-v1" / "config.json").exists()

    def no_distilling(*_: object) -> np.ndarray:
        raise AssertionError("the cached table should have been loaded")

    monkeypatch.setattr(static_embedder, "distil", no_distilling)
    again = StaticMiniLMEmbedder(cache)
    texts = ["Orders ship within two working days.", "Our mugs are stoneware."]
    np.testing.assert_allclose(again.embed_texts(texts), embedder.embed_texts(texts), atol=1e-6)


@pytest.mark.integration
def test_hybrid_search_with_static_vectors_finds_the_delivery_article(
    embedder: StaticMiniLMEmbedder, tmp_path: Path
) -> None:
    store = KnowledgeStore(path=tmp_path / "chroma")
    ingestor = Ingestor(
        store, embedder, lambda: pytest.fail("no images here"), ImageEncoder.name, IngestOptions()
    )
    assert ingestor.ingest(load_paths([DEMO_ARTICLES])).ok
    searcher = HybridSearcher(store, embedder)
    english = SearchFilters(language="en")
    for mode in ("dense", "hybrid"):
        found = searcher.articles("how many days until my parcel arrives?", 3, english, mode)
        assert "delivery-times-en" in [match.article_id for match in found], mode


@pytest.mark.unit
def test_a_model_saved_by_another_process_first_is_kept(tmp_path: Path) -> None:
    class Saves:
        def __init__(self, marker: str) -> None:
            self.marker = marker

        def save_pretrained(self, folder: str) -> None:
            (Path(folder) / "config.json").write_text(self.marker, encoding="utf-8")

    target = tmp_path / "minilm-static-v1"
    static_embedder._save_atomically(Saves("first"), target)
    static_embedder._save_atomically(Saves("second"), target)
    assert (target / "config.json").read_text(encoding="utf-8") == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["minilm-static-v1"]  # no staging left over
