"""The knowledge-base service: upload staging, the one ingest lock, text search results."""

from __future__ import annotations

import io
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from assistant.services.kb import (
    IngestBusy,
    KnowledgeService,
    ProductHit,
    Upload,
    UploadRejected,
    stage_upload,
)
from assistant.settings import Settings
from knowledge_base.ingest import IngestOptions, IngestReport
from knowledge_base.loaders import LoadResult
from retrieval.search.cross_modal import DEFAULT_IMAGE_WEIGHT
from retrieval.search.hybrid import HybridArticleMatch, HybridProductMatch, SearchFilters
from tests.helpers.archives import UNSAFE_MEMBERS, zip_of

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("name", "mode"), UNSAFE_MEMBERS)
def test_unsafe_archive_members_refuse_the_whole_archive(
    tmp_path: Path, name: str, mode: int | None
) -> None:
    with pytest.raises(UploadRejected) as refused:
        stage_upload(zip_of({name: b"x"}, mode), "x.zip", tmp_path / "uploads", 10**6)
    assert refused.value.code == "unsafe_archive"
    assert not list((tmp_path / "uploads").iterdir())
    assert not (tmp_path / "outside.csv").exists()


def test_hidden_files_and_mac_folders_are_skipped(tmp_path: Path) -> None:
    members = {
        "__MACOSX/._shop.csv": b"junk",
        ".hidden.md": b"# hidden",
        "faq/delivery.md": b"# Delivery\n\nThree days.",
    }
    upload = stage_upload(zip_of(members), "shop.zip", tmp_path / "uploads", 10**6)
    assert upload.kind == "zip"
    assert [a.id for a in upload.loaded.articles] == ["delivery"]
    assert not upload.loaded.rejections


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ('[{"id": "a", "title": "A"}]', "json"),
        ('{"products": []}', "json"),
        ('{"id": "a", "title": "A"}\n{"id": "b", "title": "B"}\n', "jsonl"),
        ("id,title\na,A\n", "csv"),
        ("---\ntitle: Returns\n---\nThirty days.", "markdown"),
    ],
)
def test_a_catalogue_without_a_known_suffix_is_recognised_by_its_content(
    tmp_path: Path, text: str, kind: str
) -> None:
    upload = stage_upload(io.BytesIO(text.encode()), "upload", tmp_path / "uploads", 10**6)
    assert upload.kind == kind


class LockWatchingIngestor:
    """Records whether the service's ingest lock was held while it ingested."""

    def __init__(self) -> None:
        self.options = IngestOptions(progress=False)
        self.service: KnowledgeService | None = None
        self.locked_while_ingesting: list[bool] = []
        self.products: list[str] = []

    def ingest(self, loaded: LoadResult) -> IngestReport:
        assert self.service is not None
        self.locked_while_ingesting.append(self.service.ingest_lock.locked())
        self.products += [p.id for p in loaded.products]
        return IngestReport(products_embedded=len(loaded.products))


def service_with(tmp_path: Path, **parts: Any) -> tuple[KnowledgeService, LockWatchingIngestor]:
    ingestor = LockWatchingIngestor()
    components: Any = SimpleNamespace(
        settings=Settings(data_dir=tmp_path / "data"), ingestor=ingestor, **parts
    )
    service = KnowledgeService(components)
    ingestor.service = service
    return service, ingestor


def catalogue(text: str = '[{"id": "a", "title": "A"}]') -> Upload:
    return Upload("shop.json", io.BytesIO(text.encode()))


def test_uploads_are_ingested_under_the_ingest_lock_and_lone_catalogues_are_not_kept(
    tmp_path: Path,
) -> None:
    service, ingestor = service_with(tmp_path)
    done = service.ingest_uploads([catalogue()])
    assert ingestor.locked_while_ingesting == [True] and ingestor.products == ["a"]
    assert done.report.products_embedded == 1 and done.uploads[0].kind == "json"
    assert done.kept_folders == [] and not done.uploads[0].folder.exists()
    assert not service.ingest_lock.locked()


def test_an_upload_while_another_ingestion_runs_is_refused_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    service, ingestor = service_with(tmp_path)
    with service.ingest_lock:
        with pytest.raises(IngestBusy, match="another ingestion is running"):
            service.ingest_uploads([catalogue()])
        with pytest.raises(IngestBusy):
            service.ingest(LoadResult(), wait=False)
    assert ingestor.products == []
    uploads = tmp_path / "data" / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())


def test_a_command_line_ingest_waits_for_the_running_one(tmp_path: Path) -> None:
    service, ingestor = service_with(tmp_path)
    service.ingest_lock.acquire()
    waiting = threading.Thread(target=service.ingest, args=(LoadResult(),))
    waiting.start()
    waiting.join(0.2)
    assert waiting.is_alive() and ingestor.locked_while_ingesting == []
    service.ingest_lock.release()
    waiting.join(5)
    assert ingestor.locked_while_ingesting == [True]


def test_one_refused_upload_refuses_them_all(tmp_path: Path) -> None:
    service, ingestor = service_with(tmp_path)
    evil = zip_of({"../outside.txt": b"nope"})
    with pytest.raises(UploadRejected) as refused:
        service.ingest_uploads([catalogue(), Upload("evil.zip", evil)])
    assert (refused.value.code, refused.value.filename) == ("unsafe_archive", "evil.zip")
    assert ingestor.products == []
    assert not any((tmp_path / "data" / "uploads").iterdir())


def test_an_upload_over_the_size_limit_is_refused_with_the_setting_to_raise(
    tmp_path: Path,
) -> None:
    service, _ = service_with(tmp_path)
    service.parts.settings.max_ingest_mb = 0.001
    with pytest.raises(UploadRejected, match="SHOPSIGHT_MAX_INGEST_MB") as refused:
        service.ingest_uploads([catalogue("x" * 5000)])
    assert refused.value.code == "upload_too_large"


class TextOnlySearcher:
    """Hybrid search stand-in: two products and one article, whatever the query."""

    def __init__(self) -> None:
        self.product_calls: list[tuple[int, SearchFilters, str]] = []

    def products(
        self, query: str, k: int, filters: SearchFilters, mode: str = "hybrid"
    ) -> list[HybridProductMatch]:
        self.product_calls.append((k, filters, mode))
        found = [
            HybridProductMatch(product_id="boot", title="Boot", score=0.9, dense_rank=1),
            HybridProductMatch(product_id="mug", title="Mug", score=0.5, bm25_rank=1),
        ]
        return found[:k]

    def articles(
        self, query: str, k: int, filters: SearchFilters, mode: str = "hybrid"
    ) -> list[HybridArticleMatch]:
        return [
            HybridArticleMatch(
                chunk_id="r#0", article_id="r", title="Returns", text="30 days", score=1
            )
        ]


def test_text_search_without_a_text_photo_space_is_typed_and_says_why(tmp_path: Path) -> None:
    searcher = TextOnlySearcher()
    service, _ = service_with(
        tmp_path, hybrid_searcher=searcher, store=object(), text_embedder=SimpleNamespace(name="x")
    )
    found = service.search_text("boots", 2, SearchFilters(max_price=50), None, mode="dense")
    assert all(isinstance(p, ProductHit) for p in found.products)
    assert [(p.product_id, p.text_rank, p.image_rank) for p in found.products] == [
        ("boot", 1, None),
        ("mug", 2, None),
    ]
    assert found.products[0].dense_rank == 1 and found.articles == []
    assert searcher.product_calls == [(2, SearchFilters(max_price=50), "dense")]
    evidence = found.image_evidence
    assert evidence.used is False and evidence.image_weight == DEFAULT_IMAGE_WEIGHT
    assert "shopsight train align" in (evidence.reason or "")
    with_articles = service.search_text("returns", 2, SearchFilters(), SearchFilters())
    assert [a.article_id for a in with_articles.articles] == ["r"]
    off = service.search_text("boots", 2, image_weight=0)
    assert off.image_evidence.used is False and "0" in (off.image_evidence.reason or "")
