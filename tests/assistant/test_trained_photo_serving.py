"""The trained photo matcher in service: `train photo-match` re-embeds the stored images, photo
search switches to it, later ingests and deletes reach its vectors, and a killed re-embedding
resumes (real EfficientNet stages, real Chroma store)."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from assistant.cli import build_app
from assistant.components import Components
from assistant.settings import Settings
from explain.matcher_cam import MatcherCam
from explain.pack import photo_heatmaps
from knowledge_base.admin import delete_record
from knowledge_base.loaders import load_paths
from retrieval.encoders.image import ImageEncoder
from tests.assistant.demo_shop import DEMO, customer_photo, demo_components

MUG = "mug-stoneware-blue"
pytestmark = pytest.mark.integration


def photo(product_id: str) -> Image.Image:
    return Image.open(io.BytesIO(customer_photo(product_id)))


@pytest.fixture(scope="module")
def trained(
    demo_store: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, object]]:
    """A copy of the demo store, then `train photo-match` on the demo catalogue beside it."""
    data_dir = tmp_path_factory.mktemp("trained") / "data"
    frozen = demo_components(demo_store, data_dir)
    assert frozen.photo_model_in_use() == ImageEncoder.name
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SHOPSIGHT_DATA_DIR", str(data_dir))
        patch.setenv("SHOPSIGHT_TEXT_EMBEDDER", "e5")
        result = CliRunner().invoke(
            build_app(),
            [
                "train",
                "photo-match",
                "--data",
                str(DEMO / "products.json"),
                "--views",
                "2",
                "--epochs",
                "3",
                "--json",
            ],
        )
    assert result.exit_code == 0, result.output
    return data_dir, json.loads(result.stdout)


def serving(data_dir: Path) -> Components:
    """What a server started now would build."""
    return Components(Settings(data_dir=data_dir, text_embedder="e5"), progress=False)


def test_training_reembeds_the_store_and_search_switches_to_it(
    trained: tuple[Path, dict[str, object]],
) -> None:
    data_dir, model = trained
    reembedded = model["reembedded"]
    assert isinstance(reembedded, dict)
    assert reembedded["space"] == "photo-embed-v1"
    assert reembedded["embedded"] == 59 and not reembedded["unreadable"]
    components = serving(data_dir)
    assert components.photo_model_in_use() == "photo-embed-v1"
    assert components.photo_matcher.encoder.name == "photo-embed-v1"
    result = components.search_photo(photo(MUG), k=3)
    assert result.matches[0].product_id == MUG


def test_later_ingests_and_deletes_reach_the_trained_vectors(
    trained: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    data_dir, _ = trained
    components = serving(data_dir)
    mirror = components.store.mirror("photo-embed-v1")
    twin_image = tmp_path / "twin.png"
    Image.open(DEMO / "images" / f"{MUG}.png").rotate(180).save(twin_image)
    twin = {
        "id": "mug-twin",
        "title": "Twin mug, upside down",
        "category": "home",
        "price": 15.0,
        "images": [str(twin_image)],
    }
    (tmp_path / "twin.json").write_text(json.dumps({"products": [twin]}), encoding="utf-8")
    report = components.ingestor.ingest(load_paths([tmp_path / "twin.json"]))
    assert report.ok and report.images_embedded == 1
    assert mirror.ids("images", where={"product_id": "mug-twin"}) == ["mug-twin#img0"]
    found = components.search_photo(Image.open(twin_image).convert("RGB"), k=1)
    assert found.matches[0].product_id == "mug-twin"
    assert delete_record(components.store, "mug-twin").images == 1
    assert mirror.ids("images", where={"product_id": "mug-twin"}) == []


def test_a_killed_reembedding_resumes_where_it_stopped(
    trained: tuple[Path, dict[str, object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir, _ = trained
    mirror = serving(data_dir).store.mirror("photo-embed-v1")
    lost = mirror.ids("images")[:5]
    mirror.collection("images").delete(ids=lost)  # as if the run died before these batches
    monkeypatch.setenv("SHOPSIGHT_DATA_DIR", str(data_dir))
    monkeypatch.setenv("SHOPSIGHT_TEXT_EMBEDDER", "e5")
    result = CliRunner().invoke(build_app(), ["kb", "reembed", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["embedded"] == 5 and report["unchanged"] == 54
    assert report["in_use"] == "photo-embed-v1"
    assert sorted(
        mirror.ids("images", where={"product_id": {"$in": [i.split("#")[0] for i in lost]}})
    ) == sorted(lost)


def test_reembed_without_a_trained_matcher_says_what_to_do(
    demo_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    demo_components(demo_store, tmp_path / "data")
    monkeypatch.setenv("SHOPSIGHT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SHOPSIGHT_TEXT_EMBEDDER", "e5")
    result = CliRunner().invoke(build_app(), ["kb", "reembed"])
    assert result.exit_code == 1
    assert "train photo-match" in result.output


def test_the_match_heatmap_explains_the_trained_matcher(
    trained: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    """Once search ranks by the trained embedding, the evidence pack's similarity heatmap is
    Grad-CAM of that embedding's cosine, not of the frozen feature's."""
    data_dir, _ = trained
    components = serving(data_dir)
    cam = components.similarity_cam()
    assert isinstance(cam, MatcherCam)
    customer = photo(MUG)
    catalogue = Image.open(DEMO / "images" / f"{MUG}.png").convert("RGB")
    photo_cam, catalogue_cam = cam.similarity_pair(customer, catalogue)
    ranked_with = components.photo_matcher.encoder.embed_images([customer, catalogue])
    assert photo_cam.score == pytest.approx(float(ranked_with[0] @ ranked_with[1]), abs=1e-4)
    assert catalogue_cam.score == pytest.approx(photo_cam.score, abs=1e-4)
    views = photo_heatmaps(components.gradcam(), customer, tmp_path, catalogue, similarity=cam)
    assert views[0].kind == "similarity"
    assert views[0].score == pytest.approx(photo_cam.score, abs=1e-4)
    assert (tmp_path / views[0].file).stat().st_size > 0


def test_a_new_store_ingested_beside_a_trained_matcher_uses_it(
    trained: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    """A shop that resets its store (or moves its artefacts to a new one) and ingests again
    keeps its trained matcher: ingest embeds the new images with it, no reembed needed."""
    data_dir, _ = trained
    fresh = tmp_path / "data"
    shutil.copytree(data_dir / "artifacts", fresh / "artifacts")
    components = serving(fresh)
    report = components.ingestor.ingest(load_paths([DEMO / "products.json"]))
    assert report.ok and report.images_embedded == 59
    assert components.photo_model_in_use() == "photo-embed-v1"
    assert components.search_photo(photo(MUG), k=1).matches[0].product_id == MUG
