"""A real `chroma run` server on 127.0.0.1: ingest and search through it, then lose it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assistant.cli import build_app
from knowledge_base.admin import delete_record, kb_stats
from knowledge_base.ingest import IngestOptions, Ingestor
from knowledge_base.loaders import load_paths
from knowledge_base.store import KnowledgeStore, StoreUnavailable
from retrieval.encoders.text import HashEmbedder
from retrieval.search.hybrid import HybridSearcher
from retrieval.search.photo import PhotoMatcher, StoreImageIndex
from tests.conftest import TinyImageEncoder, distinct_colours, make_image
from tests.integration.conftest import ChromaServer

app = build_app()

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def catalogue(tmp_path: Path) -> Path:
    colours = distinct_colours(3)
    rows = []
    for index, (name, text) in enumerate(
        [
            ("kettle", "Electric kettle 1.7 l"),
            ("lamp", "Ceramic table lamp"),
            ("scarf", "Wool scarf"),
        ]
    ):
        make_image(tmp_path / f"{name}.jpg", colours[index], size=(40, 40))
        rows.append({"id": name, "title": text, "category": name, "images": [f"{name}.jpg"]})
    rows.append({"id": "hours", "title": "Opening hours", "body": "We answer from 9 to 17."})
    path = tmp_path / "catalogue.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path


def test_ingest_search_and_delete_through_a_chroma_server(
    chroma_server: ChromaServer, catalogue: Path, tmp_path: Path
) -> None:
    store = KnowledgeStore(url=chroma_server.url, prefix="servertest")
    assert store.location == chroma_server.url
    encoder = TinyImageEncoder()
    ingestor = Ingestor(
        store, HashEmbedder(), lambda: encoder, encoder.name, IngestOptions(progress=False)
    )
    report = ingestor.ingest(load_paths([catalogue]))
    assert report.ok, report.rejections
    assert (report.products_embedded, report.images_embedded, report.chunks_embedded) == (3, 3, 1)
    again = ingestor.ingest(load_paths([catalogue]))
    assert again.products_embedded == again.images_embedded == again.chunks_embedded == 0

    text = HybridSearcher(store, HashEmbedder())
    assert text.products("ceramic table lamp", k=1, mode="dense")[0].product_id == "lamp"
    assert text.articles("opening hours", k=1, mode="dense")[0].article_id == "hours"
    from PIL import Image

    photo = PhotoMatcher(StoreImageIndex(store, encoder.name), encoder)
    found = photo.search(Image.open(tmp_path / "scarf.jpg"), k=1)
    assert found.matches[0].product_id == "scarf"

    stats = kb_stats(store)
    assert (stats.products, stats.images, stats.articles) == (3, 3, 1)
    assert delete_record(store, "kettle").images == 1
    assert KnowledgeStore(url=chroma_server.url, prefix="servertest").count("products") == 2


def test_cli_uses_the_server_named_by_shopsight_chroma_url(
    chroma_server: ChromaServer, catalogue: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = {
        "SHOPSIGHT_CHROMA_URL": chroma_server.url,
        "SHOPSIGHT_COLLECTION_PREFIX": "clitest",
        "SHOPSIGHT_TEXT_EMBEDDER": "hash",
        "SHOPSIGHT_DATA_DIR": str(tmp_path / "data"),
    }
    runner = CliRunner()
    articles_only = tmp_path / "faq.jsonl"
    articles_only.write_text('{"id": "ship", "title": "Shipping", "body": "Two days."}\n')
    assert runner.invoke(app, ["kb", "ingest", str(articles_only)], env=env).exit_code == 0
    stats = json.loads(runner.invoke(app, ["kb", "stats", "--json"], env=env).stdout)
    assert stats["location"] == chroma_server.url and stats["article_chunks"] == 1
    found = json.loads(runner.invoke(app, ["kb", "search", "shipping", "--json"], env=env).stdout)
    assert found["articles"][0]["article_id"] == "ship"
    assert not (tmp_path / "data" / "chroma").exists()  # nothing went to an embedded store
    assert runner.invoke(app, ["kb", "reset", "--yes"], env=env).exit_code == 0


def test_a_server_that_goes_away_gives_store_unavailable(
    chroma_server: ChromaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs last in this module: it stops the shared server."""
    store = KnowledgeStore(url=chroma_server.url, prefix="lost")
    store.count("products")
    chroma_server.stop()

    with pytest.raises(
        StoreUnavailable, match=r"lost the Chroma store at http://127\.0\.0\.1"
    ) as lost:
        store.count("products")
    assert "\n" not in str(lost.value)
    with pytest.raises(StoreUnavailable, match="cannot open the Chroma store"):
        KnowledgeStore(url=chroma_server.url)

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        app, ["kb", "stats"], env={"SHOPSIGHT_CHROMA_URL": chroma_server.url}
    )
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot open the Chroma store")
    assert "Traceback" not in result.output
