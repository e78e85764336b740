"""Loaders: every format loads its good records and explains every bad one (file, line, reason)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from knowledge_base.loaders import LoadResult, load_path, load_paths
from knowledge_base.schema import Rejection
from tests.conftest import make_image

pytestmark = pytest.mark.unit


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def by_line(result: LoadResult) -> dict[int | None, Rejection]:
    return {r.line: r for r in result.rejections}


def only_rejection(result: LoadResult) -> Rejection:
    assert len(result.rejections) == 1, result.rejections
    return result.rejections[0]


# --- JSON -------------------------------------------------------------------------------------


def test_json_list_loads_products_and_articles_with_images_relative_to_the_file(
    tmp_path: Path,
) -> None:
    image = make_image(tmp_path / "shop" / "img" / "boot.jpg")
    records = [
        {
            "id": "boot-1",
            "title": "Trail boot",
            "price": "89.5",
            "stock": 3,
            "images": ["img/boot.jpg"],
            "attributes": {"colour": "olive", "size": 42},
            "tags": "outdoor, boots",
        },
        {"id": "faq-returns", "title": "Returns", "body": "Return within 30 days."},
    ]
    path = write(tmp_path / "shop" / "catalogue.json", json.dumps(records, indent=2))
    result = load_path(path)
    assert result.rejections == []
    (product,) = result.products
    assert product.price == 89.5 and product.stock == 3
    assert product.images == [image.resolve()]
    assert product.attributes == {"colour": "olive", "size": "42"}
    assert product.tags == ["outdoor", "boots"]
    assert [a.id for a in result.articles] == ["faq-returns"]


def test_json_object_with_products_and_articles_keys(tmp_path: Path) -> None:
    data = {
        "products": [{"id": "p1", "title": "Mug"}],
        "articles": [{"id": "a1", "title": "Shipping", "body": "We ship worldwide.", "tags": []}],
    }
    result = load_path(write(tmp_path / "shop.json", json.dumps(data)))
    assert [p.id for p in result.products] == ["p1"]
    assert [a.id for a in result.articles] == ["a1"]


def test_invalid_json_file_is_rejected_with_the_line_of_the_error(tmp_path: Path) -> None:
    path = write(tmp_path / "broken.json", '[\n  {"id": "a", "title": "A"},\n  {"id": }\n]\n')
    rejection = only_rejection(load_path(path))
    assert rejection.source == str(path) and rejection.line == 3
    assert "invalid JSON" in rejection.reason


def test_bad_json_records_are_rejected_with_their_line_and_good_ones_load(tmp_path: Path) -> None:
    text = """[
  {"id": "ok-1", "title": "Good one"},
  {"id": "no-title"},
  {
    "id": "negative",
    "title": "Cheap",
    "price": -4
  },
  "just a string",
  {"id": "ok-2", "title": "Good two"}
]"""
    path = write(tmp_path / "catalogue.json", text)
    result = load_path(path)
    assert [p.id for p in result.products] == ["ok-1", "ok-2"]
    rejections = by_line(result)
    assert "title: Field required" in rejections[3].reason
    assert "price" in rejections[4].reason and "greater than or equal to 0" in rejections[4].reason
    assert all(r.source.startswith(str(path)) for r in result.rejections)
    assert any("not an object" in r.reason for r in result.rejections)


def test_json_with_neither_list_nor_known_keys_is_rejected(tmp_path: Path) -> None:
    rejection = only_rejection(load_path(write(tmp_path / "x.json", '{"items": []}')))
    assert "expected a list" in rejection.reason


# --- JSONL ------------------------------------------------------------------------------------


def test_jsonl_rejections_carry_file_line_and_reason_and_good_lines_load(tmp_path: Path) -> None:
    lines = [
        '{"id": "p1", "title": "Lamp", "price": 20}',
        '{"id": "p2", "title": "Broken", ',  # bad JSON
        '{"id": "p3"}',  # missing title
        '{"id": "p4", "title": "Neg", "price": -1}',  # negative price
        '{"id": "p5", "title": "Words", "price": "cheap"}',  # wrong type
        '{"id": "p6", "title": 12345}',  # wrong type
        '{"id": "p7", "title": "Half", "stock": 2.5}',  # wrong type
        '{"id": "p8", "title": "Pics", "images": 5}',  # wrong type
        '{"id": "p9", "title": "Attrs", "attributes": [1, 2]}',  # wrong type
        "",
        "[1, 2]",  # not an object
        '{"id": "a1", "title": "FAQ", "body": "Answer."}',
        '{"id": "p10", "title": "Mug", "stock": "7"}',
        '{"id": "p11", "title": "Infinite", "price": 1e999}',  # overflows to inf
    ]
    path = write(tmp_path / "items.jsonl", "\n".join(lines) + "\n")
    result = load_path(path)
    assert [p.id for p in result.products] == ["p1", "p10"]
    assert result.products[1].stock == 7
    assert [a.id for a in result.articles] == ["a1"]
    rejections = by_line(result)
    assert sorted(k for k in rejections if k is not None) == [2, 3, 4, 5, 6, 7, 8, 9, 11, 14]
    assert all(r.source == str(path) for r in result.rejections)
    assert "invalid JSON" in rejections[2].reason
    assert "title: Field required" in rejections[3].reason
    assert "greater than or equal to 0" in rejections[4].reason
    assert rejections[5].reason.startswith("price:")
    assert rejections[6].reason.startswith("title:")
    assert rejections[7].reason.startswith("stock:")
    assert rejections[8].reason.startswith("images:")
    assert rejections[9].reason.startswith("attributes:")
    assert "not an object" in rejections[11].reason
    assert "finite number" in rejections[14].reason
    assert str(rejections[3]).startswith(f"{path}:3: ")


def test_url_image_is_rejected_but_the_product_loads_without_it(tmp_path: Path) -> None:
    make_image(tmp_path / "local.png")
    line = {"id": "p1", "title": "Cap", "images": ["https://cdn.example.com/cap.jpg", "local.png"]}
    path = write(tmp_path / "items.jsonl", json.dumps(line) + "\n")
    result = load_path(path)
    (product,) = result.products
    assert product.images == [(tmp_path / "local.png").resolve()]
    rejection = only_rejection(result)
    assert rejection.line == 1 and "is a URL" in rejection.reason and "p1" in rejection.reason


def test_non_utf8_file_is_rejected_not_crashed(tmp_path: Path) -> None:
    path = tmp_path / "latin.jsonl"
    path.write_bytes('{"id": "p", "title": "Caf\xe9"}'.encode("latin-1"))
    assert "not UTF-8" in only_rejection(load_path(path)).reason


# --- CSV --------------------------------------------------------------------------------------


def test_plain_csv_loads_products_with_images_attributes_and_numbers(tmp_path: Path) -> None:
    make_image(tmp_path / "a.jpg")
    make_image(tmp_path / "b.jpg")
    path = write(
        tmp_path / "products.csv",
        "id,title,description,category,price,currency,stock,images,attributes\n"
        'p1,Tote,"Canvas, roomy",bags,25.00,EUR,4,a.jpg|b.jpg,"{""colour"": ""sand""}"\n'
        "p2,Wallet,,bags,,,,,\n",
    )
    result = load_path(path)
    assert result.rejections == []
    tote, wallet = result.products
    assert tote.description == "Canvas, roomy" and tote.price == 25.0 and tote.currency == "EUR"
    assert tote.stock == 4 and tote.attributes == {"colour": "sand"}
    assert tote.images == [(tmp_path / "a.jpg").resolve(), (tmp_path / "b.jpg").resolve()]
    assert wallet.price is None and wallet.stock is None and wallet.images == []


def test_csv_rejections_carry_the_physical_line_even_after_multiline_cells(tmp_path: Path) -> None:
    path = write(
        tmp_path / "products.csv",
        "id,title,description,price\n"  # line 1
        'p1,Scarf,"Soft\nand\nwarm",10\n'  # lines 2-4
        "\n"  # line 5 (blank)
        "p2,Hat,Wool,-3\n"  # line 6: negative price
        "p3,Belt,Leather,12,EXTRA\n"  # line 7: more cells than headers
        ",Nameless,,5\n"  # line 8: empty id
        "p4,Gloves,,abc\n"  # line 9: wrong type
        "p5,Socks,,2\n",  # line 10
    )
    result = load_path(path)
    assert [p.id for p in result.products] == ["p1", "p5"]
    assert result.products[0].description == "Soft\nand\nwarm"
    rejections = by_line(result)
    assert sorted(k for k in rejections if k is not None) == [6, 7, 8, 9]
    assert "greater than or equal to 0" in rejections[6].reason
    assert "more cells (5) than headers (4)" in rejections[7].reason
    assert rejections[8].reason.startswith("id:")
    assert rejections[9].reason.startswith("price:")


def test_csv_without_id_and_title_columns_is_rejected_at_line_one(tmp_path: Path) -> None:
    rejection = only_rejection(load_path(write(tmp_path / "x.csv", "name,cost\nA,1\n")))
    assert rejection.line == 1 and "missing required columns" in rejection.reason


def test_article_csv_loads_articles_and_splits_tags(tmp_path: Path) -> None:
    path = write(
        tmp_path / "faq.csv",
        "id,title,body,tags,language\n"
        'ship,Shipping,"We ship in 2-4 days.","delivery, shipping",en\n'
        "tui,退货,,,zh\n",  # empty body
    )
    result = load_path(path)
    (article,) = result.articles
    assert article.tags == ["delivery", "shipping"] and article.language == "en"
    rejection = only_rejection(result)
    assert rejection.line == 3 and rejection.reason.startswith("body:")


SHOPIFY_HEADER = (
    "Handle,Title,Body (HTML),Vendor,Type,Tags,Published,Option1 Name,Option1 Value,"
    "Option2 Name,Option2 Value,Variant SKU,Variant Price,Variant Inventory Qty,Image Src\n"
)


def test_shopify_export_merges_rows_by_handle_and_strips_html(tmp_path: Path) -> None:
    make_image(tmp_path / "photos" / "tee-front.jpg")
    make_image(tmp_path / "photos" / "tee-back.jpg")
    body = (
        '"<p>Soft <strong>organic</strong> cotton &amp; a relaxed fit.</p>'
        '<script>track()</script><ul><li>Machine wash</li></ul>\n<p>Made in Portugal</p>"'
    )
    path = write(
        tmp_path / "products_export.csv",
        SHOPIFY_HEADER
        + f'classic-tee,Classic Tee,{body},Acme,T-Shirts,"cotton, basics",true,Size,S,'
        "Colour,White,TEE-S-W,19.99,5,photos/tee-front.jpg\n"
        "classic-tee,,,,,,,,M,,White,TEE-M-W,19.99,7,photos/tee-back.jpg\n"
        "classic-tee,,,,,,,,L,,Black,TEE-L-B,21.00,-2,\n"
        "classic-tee,,,,,,,,,,,,,,https://cdn.shopify.com/tee-3.jpg\n"
        "mug,Stoneware Mug,<p>350 ml</p>,Acme,Kitchen,,true,Title,Default Title,,,,12.50,10,\n",
    )
    result = load_path(path)
    tee, mug = result.products
    assert tee.id == "classic-tee" and tee.title == "Classic Tee"
    assert tee.description == ("Soft organic cotton & a relaxed fit. Machine wash Made in Portugal")
    assert tee.category == "T-Shirts" and tee.tags == ["cotton", "basics"]
    assert tee.price == 19.99 and tee.stock == 12  # 5 + 7 + max(0, -2)
    assert tee.attributes == {"vendor": "Acme", "size": "S, M, L", "colour": "White, Black"}
    assert tee.images == [
        (tmp_path / "photos" / "tee-front.jpg").resolve(),
        (tmp_path / "photos" / "tee-back.jpg").resolve(),
    ]
    assert mug.description == "350 ml" and mug.price == 12.5 and mug.stock == 10
    assert "title" not in mug.attributes
    rejection = only_rejection(result)  # the remote image, on its own row
    assert (
        rejection.line == 6 and "is a URL" in rejection.reason and "classic-tee" in rejection.reason
    )


def test_shopify_rows_with_bad_values_reject_their_product_with_the_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "export.csv",
        SHOPIFY_HEADER
        + "good,Good,,,,,,,,,,,5,1,\n"
        + "bad-qty,Bad,,,,,,,,,,,5,1,\n"
        + "bad-qty,,,,,,,,,,,,5,lots,\n"
        + ",Orphan row,,,,,,,,,,,1,1,\n"
        + "no-title,,,,,,,,,,,,5,1,\n"
        + "neg-price,Neg,,,,,,,,,,,-5,1,\n",
    )
    result = load_path(path)
    assert [p.id for p in result.products] == ["good"]
    rejections = by_line(result)
    assert "'lots' is not a number" in rejections[4].reason
    assert "empty Handle" in rejections[5].reason
    assert "title: Field required" in rejections[6].reason
    assert "price" in rejections[7].reason


# --- Markdown ---------------------------------------------------------------------------------


def test_markdown_folder_reads_front_matter_and_falls_back_to_heading_and_stem(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "articles"
    write(
        folder / "returns.md",
        "---\nid: returns-policy\ntitle: Returns\ntags: [returns, refunds]\nkind: policy\n---\n"
        "You can return anything within 30 days.\n",
    )
    write(folder / "shipping-times.md", "# How fast is shipping?\n\nTwo to four days.\n")
    write(folder / "zh.md", "---\nlanguage: zh\ntags: 退货, 退款\n---\n七天无理由退货。\n")
    write(folder / "notes.txt", "ignored: not markdown")
    result = load_path(folder)
    assert result.rejections == []
    articles = {a.id: a for a in result.articles}
    assert set(articles) == {"returns-policy", "shipping-times", "zh"}
    assert articles["returns-policy"].kind == "policy"
    assert articles["returns-policy"].tags == ["returns", "refunds"]
    assert articles["shipping-times"].title == "How fast is shipping?"
    assert articles["zh"].language == "zh" and articles["zh"].tags == ["退货", "退款"]


def test_bad_markdown_files_are_rejected_with_reasons(tmp_path: Path) -> None:
    folder = tmp_path / "articles"
    write(folder / "ok.md", "Fine.\n")
    write(folder / "lang.md", "---\nlanguage: fr\n---\nBonjour.\n")
    write(folder / "empty.md", "---\ntitle: Nothing here\n---\n")
    write(folder / "yaml.md", "---\ntitle: ok\ntags: [unclosed\n---\nBody.\n")
    write(folder / "tags.md", "---\ntags: 5\n---\nBody.\n")
    result = load_path(folder)
    assert [a.id for a in result.articles] == ["ok"]
    reasons = {Path(r.source).name: r for r in result.rejections}
    assert set(reasons) == {"lang.md", "empty.md", "yaml.md", "tags.md"}
    assert reasons["lang.md"].reason.startswith("language:")
    assert reasons["empty.md"].reason.startswith("body:")
    assert "front matter" in reasons["yaml.md"].reason and reasons["yaml.md"].line is not None
    assert "tags" in reasons["tags.md"].reason


# --- image folders and folder walking ---------------------------------------------------------


def test_image_folder_gives_one_product_per_image_with_its_category(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    make_image(root / "shoes" / "runner.jpg")
    make_image(root / "shoes" / "boot.png")
    make_image(root / "hats" / "beanie.jpg")
    write(root / "hats" / "readme.txt", "not a photo")
    write(root / ".hidden" / "x.txt", "skipped silently: hidden")
    result = load_path(root)
    assert sorted(p.id for p in result.products) == ["hats/beanie", "shoes/boot", "shoes/runner"]
    runner = next(p for p in result.products if p.id == "shoes/runner")
    assert runner.category == "shoes" and runner.images == [(root / "shoes/runner.jpg").resolve()]
    rejection = only_rejection(result)
    assert rejection.source.endswith("readme.txt") and "not an image" in rejection.reason


def test_loose_images_are_rejected_instead_of_silently_ignored(tmp_path: Path) -> None:
    make_image(tmp_path / "flat" / "one.jpg")
    make_image(tmp_path / "flat" / "two.jpg")
    result = load_path(tmp_path / "flat")
    assert result.products == []
    assert len(result.rejections) == 2
    assert all("category sub-folder" in r.reason for r in result.rejections)


def test_images_referenced_by_a_catalogue_are_not_turned_into_extra_products(
    tmp_path: Path,
) -> None:
    shop = tmp_path / "shop"
    make_image(shop / "images" / "bags" / "tote.jpg")
    make_image(shop / "images" / "bags" / "spare.jpg")
    make_image(shop / "images" / "loose.jpg")
    product = {
        "id": "tote",
        "title": "Tote",
        "images": ["images/bags/tote.jpg", "images/loose.jpg"],
    }
    write(shop / "catalogue.json", json.dumps([product]))
    write(shop / "faq" / "help.md", "Help text.\n")
    result = load_path(shop)
    assert sorted(p.id for p in result.products) == ["bags/spare", "tote"]
    assert [a.id for a in result.articles] == ["help"]
    assert result.rejections == []


def test_missing_path_unsupported_type_and_single_image_are_rejected(tmp_path: Path) -> None:
    write(tmp_path / "data.xml", "<x/>")
    make_image(tmp_path / "photo.jpg")
    result = load_paths([tmp_path / "nope.json", tmp_path / "data.xml", tmp_path / "photo.jpg"])
    reasons = [r.reason for r in result.rejections]
    assert reasons[0] == "path does not exist"
    assert "unsupported file type '.xml'" in reasons[1]
    assert "single image" in reasons[2]


def test_duplicate_ids_are_all_kept_in_load_order_with_their_origins(tmp_path: Path) -> None:
    write(tmp_path / "a.jsonl", '{"id": "dup", "title": "First"}\n')
    write(tmp_path / "b.jsonl", '\n{"id": "dup", "title": "Second"}\n')
    result = load_paths([tmp_path / "a.jsonl", tmp_path / "b.jsonl"])
    assert [p.title for p in result.products] == ["First", "Second"]
    assert [str(o) for o in result.origins["product:dup"]] == [
        f"{tmp_path / 'a.jsonl'}:1",
        f"{tmp_path / 'b.jsonl'}:2",
    ]
