"""Read catalogues and articles from JSON/JSONL, CSV (incl. Shopify exports), Markdown and image folders.

Loaders never raise on one bad record: they return what loaded plus a `Rejection` per bad record,
naming the file, the line and the reason.
"""

from __future__ import annotations

import csv
import html
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import frontmatter
from pydantic import ValidationError

from knowledge_base.images import IMAGE_SUFFIXES
from knowledge_base.schema import Article, Product, Rejection

_TAG = re.compile(r"<[^>]+>")
_SHOPIFY_MARKERS = {"Handle", "Title", "Body (HTML)"}
_LIST_SPLIT = re.compile(r"[|;,]")


@dataclass
class LoadResult:
    """Everything read from some paths: good records and the reasons for the bad ones."""

    products: list[Product] = field(default_factory=list)
    articles: list[Article] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)

    def extend(self, other: LoadResult) -> None:
        self.products += other.products
        self.articles += other.articles
        self.rejections += other.rejections


def load_paths(paths: Iterable[Path]) -> LoadResult:
    """Load every supported file under `paths`, choosing the loader by shape and suffix."""
    result = LoadResult()
    for path in paths:
        result.extend(load_path(Path(path)))
    return result


def load_path(path: Path) -> LoadResult:
    if not path.exists():
        return LoadResult(rejections=[Rejection(source=str(path), reason="path does not exist")])
    if path.is_dir():
        return _load_directory(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        return load_json(path)
    if suffix == ".jsonl":
        return load_jsonl(path)
    if suffix == ".csv":
        return load_csv(path)
    if suffix in {".md", ".markdown"}:
        return load_markdown_file(path)
    return LoadResult(
        rejections=[Rejection(source=str(path), reason=f"unsupported file type {suffix!r}")]
    )


def _load_directory(folder: Path) -> LoadResult:
    """A folder of sub-folders of images is a catalogue by category; else load each file in it."""
    subdirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if subdirs and all(_holds_images(d) for d in subdirs):
        return load_image_folder(folder)
    result = LoadResult()
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_dir() or path.suffix.lower() in {".json", ".jsonl", ".csv", ".md", ".markdown"}:
            result.extend(load_path(path))
    return result


def _holds_images(folder: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir())


def load_image_folder(folder: Path) -> LoadResult:
    """One product per image; the sub-folder name is the category."""
    result = LoadResult()
    for category_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        category = category_dir.name
        for image in sorted(category_dir.iterdir()):
            if image.name.startswith("."):
                continue
            if image.suffix.lower() not in IMAGE_SUFFIXES:
                result.rejections.append(
                    Rejection(source=str(image), reason="not an image file; skipped")
                )
                continue
            title = category.replace("_", " ").replace("-", " ")
            result.products.append(
                Product(
                    id=f"{category}/{image.stem}",
                    title=f"{title} {image.stem[:8]}",
                    category=category,
                    images=[image.resolve()],
                )
            )
    return result


def load_json(path: Path) -> LoadResult:
    """A JSON list of records, or an object with `products` and/or `articles` lists."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return LoadResult(rejections=[Rejection(source=str(path), reason=f"invalid JSON: {exc}")])
    records: list[tuple[int | None, Any, str | None]] = []
    if isinstance(data, list):
        records = [(None, item, None) for item in data]
    elif isinstance(data, dict) and ({"products", "articles"} & data.keys()):
        records = [(None, item, "product") for item in data.get("products", [])]
        records += [(None, item, "article") for item in data.get("articles", [])]
    else:
        return LoadResult(
            rejections=[
                Rejection(source=str(path), reason="expected a list or {'products': [...], 'articles': [...]}")
            ]
        )
    result = LoadResult()
    for index, (_, record, kind) in enumerate(records):
        _add_record(result, record, path, index + 1, kind, label="record")
    return result


def load_jsonl(path: Path) -> LoadResult:
    result = LoadResult()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        return LoadResult(rejections=[Rejection(source=str(path), reason=f"not UTF-8 text: {exc}")])
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            result.rejections.append(Rejection(source=str(path), line=number, reason=f"invalid JSON: {exc.msg}"))
            continue
        _add_record(result, record, path, number, None, label="line")
    return result


def _add_record(
    result: LoadResult, record: Any, path: Path, number: int, kind: str | None, label: str
) -> None:
    line = number if label == "line" else None
    where = {"source": str(path) if line else f"{path} (record {number})", "line": line}
    if not isinstance(record, dict):
        result.rejections.append(Rejection(**where, reason="record is not an object"))
        return
    is_article = kind == "article" or (kind is None and "body" in record)
    try:
        if is_article:
            result.articles.append(Article.model_validate(record))
        else:
            result.products.append(_product_from_mapping(record, path.parent))
    except (ValidationError, ValueError) as exc:
        result.rejections.append(Rejection(**where, reason=_explain(exc)))


def _product_from_mapping(record: dict[str, Any], base: Path) -> Product:
    data = dict(record)
    images = data.get("images", [])
    if isinstance(images, str):
        images = [p for p in _LIST_SPLIT.split(images) if p.strip()]
    data["images"] = [_resolve_image(str(p).strip(), base) for p in images]
    attributes = data.get("attributes", {})
    if isinstance(attributes, str):
        attributes = json.loads(attributes) if attributes.strip() else {}
    data["attributes"] = {str(k): str(v) for k, v in attributes.items()}
    if isinstance(data.get("tags"), str):
        data["tags"] = [t.strip() for t in data["tags"].split(",") if t.strip()]
    for key in ("price", "stock"):
        if data.get(key) in ("", None):
            data[key] = None
    return Product.model_validate(data)


def _resolve_image(reference: str, base: Path) -> Path:
    if reference.startswith(("http://", "https://")):
        raise ValueError(
            f"image {reference!r} is a URL; ShopSight works offline: download the images and "
            "give local paths relative to the catalogue file"
        )
    path = Path(reference)
    return (path if path.is_absolute() else base / path).resolve()


def load_csv(path: Path) -> LoadResult:
    """A plain product/article CSV, or a Shopify product export (detected by its headers)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        return LoadResult(rejections=[Rejection(source=str(path), reason=f"not UTF-8 text: {exc}")])
    reader = csv.DictReader(text.splitlines())
    headers = set(reader.fieldnames or [])
    if _SHOPIFY_MARKERS <= headers:
        return _load_shopify(path, reader)
    if not {"id", "title"} <= headers:
        return LoadResult(
            rejections=[
                Rejection(
                    source=str(path),
                    line=1,
                    reason=f"missing required columns id and title (found: {sorted(headers)})",
                )
            ]
        )
    result = LoadResult()
    for number, row in enumerate(reader, start=2):
        if None in row:
            result.rejections.append(Rejection(source=str(path), line=number, reason="more cells than headers"))
            continue
        record = {k: v for k, v in row.items() if v is not None and v != ""}
        record.setdefault("id", "")
        _add_record_csv(result, record, path, number)
    return result


def _add_record_csv(result: LoadResult, record: dict[str, Any], path: Path, number: int) -> None:
    try:
        if "body" in record:
            if "tags" in record:
                record["tags"] = [t.strip() for t in record["tags"].split(",") if t.strip()]
            result.articles.append(Article.model_validate(record))
        else:
            result.products.append(_product_from_mapping(record, path.parent))
    except (ValidationError, ValueError) as exc:
        result.rejections.append(Rejection(source=str(path), line=number, reason=_explain(exc)))


def _load_shopify(path: Path, reader: csv.DictReader[str]) -> LoadResult:
    """Shopify exports spread one product over several rows (variants, extra images) by Handle."""
    result = LoadResult()
    merged: dict[str, dict[str, Any]] = {}
    first_line: dict[str, int] = {}
    for number, row in enumerate(reader, start=2):
        handle = (row.get("Handle") or "").strip()
        if not handle:
            result.rejections.append(Rejection(source=str(path), line=number, reason="empty Handle"))
            continue
        entry = merged.setdefault(handle, {"id": handle, "images": [], "attributes": {}})
        first_line.setdefault(handle, number)
        for column, key in (("Title", "title"), ("Type", "category"), ("Variant Price", "price")):
            if row.get(column) and key not in entry:
                entry[key] = row[column].strip()
        if row.get("Body (HTML)") and "description" not in entry:
            entry["description"] = _strip_html(row["Body (HTML)"])
        if row.get("Vendor"):
            entry["attributes"]["vendor"] = row["Vendor"].strip()
        if row.get("Tags") and "tags" not in entry:
            entry["tags"] = [t.strip() for t in row["Tags"].split(",") if t.strip()]
        if row.get("Variant Inventory Qty"):
            entry["stock"] = entry.get("stock", 0) + max(0, int(float(row["Variant Inventory Qty"])))
        for index in (1, 2, 3):
            name, value = row.get(f"Option{index} Name"), row.get(f"Option{index} Value")
            if name and value and name != "Title":
                known = entry["attributes"].get(name.lower(), "")
                values = [v for v in known.split(", ") if v]
                if value not in values:
                    entry["attributes"][name.lower()] = ", ".join([*values, value])
        if row.get("Image Src"):
            entry["images"].append(row["Image Src"].strip())
    for handle, entry in merged.items():
        _add_record_csv(result, entry, path, first_line[handle])
    return result


def _strip_html(markup: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(_TAG.sub(" ", markup))).strip()


def load_markdown_file(path: Path) -> LoadResult:
    """A Markdown article; front matter may set id, title, tags, language and kind."""
    try:
        post = frontmatter.load(str(path))
    except Exception as exc:  # front matter parsers raise many types on bad YAML
        return LoadResult(rejections=[Rejection(source=str(path), reason=f"unreadable front matter: {exc}")])
    meta = dict(post.metadata)
    body = post.content.strip()
    title = meta.get("title") or _first_heading(body) or path.stem.replace("-", " ")
    tags = meta.get("tags", [])
    if isinstance(tags, str):
        tags = [t.strip() for t in tags.split(",") if t.strip()]
    try:
        article = Article(
            id=str(meta.get("id") or path.stem),
            title=str(title),
            body=body,
            tags=[str(t) for t in tags],
            language=meta.get("language", "en"),
            kind=meta.get("kind", "faq"),
        )
    except ValidationError as exc:
        return LoadResult(rejections=[Rejection(source=str(path), reason=_explain(exc))])
    return LoadResult(articles=[article])


def _first_heading(body: str) -> str | None:
    for line in body.splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
    return None


def _explain(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'record'}: {error['msg']}" for error in exc.errors()
        )
    return str(exc)

