"""Uploads through the knowledge-base tab: refused files leave nothing behind, keys are checked."""

from __future__ import annotations

import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gradio as gr
import pytest

from assistant.api.auth import digest
from assistant.services.kb import KnowledgeService
from assistant.settings import Settings
from assistant.ui.access import StaffGate
from assistant.ui.knowledge import KnowledgeTab
from knowledge_base.admin import KbStats
from knowledge_base.ingest import IngestOptions, IngestReport
from knowledge_base.loaders import LoadResult

pytestmark = pytest.mark.unit


def tab(settings: Settings, **parts: Any) -> KnowledgeTab:
    components: Any = SimpleNamespace(settings=settings, **parts)
    components.kb = KnowledgeService(components)
    return KnowledgeTab(components, StaffGate(settings))


def test_a_zip_escaping_its_folder_is_refused_and_nothing_is_kept(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    good = tmp_path / "catalogue.json"
    good.write_text('{"products": []}', encoding="utf-8")
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as bundle:
        bundle.writestr("../outside.txt", "nope")
    with pytest.raises(gr.Error, match=r"evil\.zip"):
        tab(settings).ingest(None, [str(good), str(evil)])
    uploads = settings.data_dir / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())
    assert not (settings.data_dir / "outside.txt").exists()


def test_uploads_need_an_admin_key_when_keys_are_configured(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, api_keys=[digest("agent")], admin_api_keys=[digest("admin")]
    )
    with pytest.raises(gr.Error, match="admin key"):
        tab(settings).ingest("agent", [str(tmp_path / "catalogue.json")])
    assert "admin key" in tab(settings).stats(None)


def test_the_upload_takes_the_ingest_lock_and_is_refused_while_another_ingestion_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    catalogue = tmp_path / "catalogue.json"
    catalogue.write_text('[{"id": "a", "title": "A"}]', encoding="utf-8")
    locked_while_ingesting: list[bool] = []

    class Ingestor:
        options = IngestOptions(progress=False)

        def ingest(self, loaded: LoadResult) -> IngestReport:
            locked_while_ingesting.append(service.ingest_lock.locked())
            return IngestReport(products_embedded=len(loaded.products))

    components: Any = SimpleNamespace(settings=settings, ingestor=Ingestor())
    service = components.kb = KnowledgeService(components)
    stats = KbStats(
        location="test",
        products=1,
        images=0,
        article_chunks=0,
        articles=0,
        categories={},
        languages={},
    )
    monkeypatch.setattr(service, "stats", lambda: stats)
    knowledge = KnowledgeTab(components, StaffGate(settings))

    with (
        service.ingest_lock,
        pytest.raises(gr.Error, match="another ingestion is running"),
    ):
        knowledge.ingest(None, [str(catalogue)])
    assert locked_while_ingesting == []

    report, _ = knowledge.ingest(None, [str(catalogue)])
    assert locked_while_ingesting == [True] and "1" in report
