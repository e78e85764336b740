"""Uploads through the knowledge-base tab: refused files leave nothing behind, keys are checked."""

from __future__ import annotations

import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gradio as gr
import pytest

from assistant.api.auth import digest
from assistant.settings import Settings
from assistant.ui.access import StaffGate
from assistant.ui.knowledge import KnowledgeTab

pytestmark = pytest.mark.unit


def tab(settings: Settings) -> KnowledgeTab:
    components: Any = SimpleNamespace(settings=settings)
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
