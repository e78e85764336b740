"""Read catalogues and articles: JSON/JSONL, CSV (incl. Shopify exports), Markdown, image folders.

Loaders never raise on one bad record: they return what loaded plus a `Rejection` per bad record,
naming the file, the line and the reason.
"""

from __future__ import annotations

import bisect
import csv
import html
import io
import json
import json.decoder
import json.scanner
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import frontmatter
from pydantic import ValidationError

from knowledge_base.folders import class_folders, is_image_folder
from knowledge_base.images import IMAGE_SUFFIXES
from knowledge_base.schema import Article, Product, Rejection

_TAG = re.compile(r"<[^>]+>")
_INVISIBLE = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_BLOCK_END = re.compile(r"<\s*(br|/p|/div|/li|/h[1-6]|/tr)\b[^>]*>", re.IGNORECASE)
_SHOPIFY_MARKERS = {"Handle", "Title", "Body (HTML)"}
_LIST_SPLIT = re.compile(r"[|;,]")
_CATALOGUE_SUFFIXES = frozenset({".json", ".jsonl", ".csv", ".md", ".markdown"})


@dataclass(frozen=True)
class Origin:
    """Where a record came from: a file and, where it has one, the line it starts on."""

    source: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.source}:{self.line}" if self.line is not None else self.source


@dataclass
class LoadResult:
    """Everything read from some paths: good records and the reasons for the bad ones.

    `origins` maps "product:ID" / "article:ID" to where each record with that id was read, in
    load order, so that a duplicate id can be reported with its file and line.
    """

    products: list[Product] = field(default_factory=list)
    articles: list[Article] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    origins: dict[str, list[Origin]] = field(default_factory=dict)

    def extend(self, other: LoadResult) -> None:
        self.products += other.products
        self.articles += other.articles
        self.rejections += other.rejections
        for key, origins in other.origins.items():
            self.origins.setdefault(key, []).extend(origins)

    def add_product(self, product: Product, origin: Origin) -> None:
        self.products.append(product)
        self.origins.setdefault(f"product:{product.id}", []).append(origin)

    def add_article(self, article: Article, origin: Origin) -> None:
        self.articles.append(article)
        self.origins.setdefault(f"article:{article.id}", []).append(origin)

    def reject(self, source: Path | str, reason: str, line: int | None = None) -> None:
        self.rejections.append(Rejection(source=str(source), line=line, reason=reason))


def load_paths(paths: Iterable[Path]) -> LoadResult:
    """Load every supported file under `paths`, choosing the loader by shape and suffix."""
    result = LoadResult()
    for path in paths:
        result.extend(load_path(Path(path)))
    return result


def load_path(path: Path) -> LoadResult:
    if not path.exists():
        return _rejected(path, "path does not exist")
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
    if suffix in IMAGE_SUFFIXES:
        return _rejected(
            path,
            "a single image has no product or category: ingest a folder with one sub-folder "
            "per category, or reference the image from a catalogue",
        )
    return _rejected(path, f"unsupported file type {suffix!r}")


def _rejected(path: Path, reason: str, line: int | None = None) -> LoadResult:
    return LoadResult(rejections=[Rejection(source=str(path), line=line, reason=reason)])


# --- folders ----------------------------------------------------------------------------------


def _load_directory(folder: Path) -> LoadResult:
    """Catalogue files anywhere below `folder`, plus image folders (one sub-folder per category).

    An image referenced by a catalogue belongs to that catalogue's product; an unreferenced image
    in a category folder becomes a product of that category; any other image is rejected rather
    than silently ignored.
    """
    result = LoadResult()
    category_images: list[tuple[str, Path]] = []
    loose_images: list[Path] = []
    _walk(folder, result, category_images, loose_images)
    referenced = {image for product in result.products for image in product.images}
    for category, image in category_images:
        if image.resolve() not in referenced:
            result.add_product(_image_product(category, image), Origin(str(image)))
    for image in loose_images:
        if image.resolve() not in referenced:
            result.reject(
                image,
                "image is neither in a category sub-folder nor referenced by a catalogue; "
                "put it in a folder named after its category",
            )
    return result


def _walk(
    folder: Path,
    result: LoadResult,
    category_images: list[tuple[str, Path]],
    loose_images: list[Path],
) -> None:
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    image_folder = is_image_folder(folder)
    for path in entries:
        if path.is_dir():
            if image_folder:
                _scan_category(path, result, category_images)
            else:
                _walk(path, result, category_images, loose_images)
        elif path.suffix.lower() in _CATALOGUE_SUFFIXES:
            result.extend(load_path(path))
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            loose_images.append(path)


def _scan_category(
    category_dir: Path, result: LoadResult, category_images: list[tuple[str, Path]]
) -> None:
    for path in sorted(category_dir.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            category_images.append((category_dir.name, path))
        else:
            what = "a folder inside a category folder" if path.is_dir() else "not an image file"
            result.reject(path, f"{what}; skipped")


def _image_product(category: str, image: Path) -> Product:
    title = category.replace("_", " ").replace("-", " ")
    return Product(
        id=f"{category}/{image.stem}",
        title=f"{title} {image.stem[:8]}",
        category=category,
        images=[image.resolve()],
    )


def load_image_folder(folder: Path) -> LoadResult:
    """One product per image; the sub-folder name is the category."""
    result = LoadResult()
    category_images: list[tuple[str, Path]] = []
    for category_dir in class_folders(folder):
        _scan_category(category_dir, result, category_images)
    for category, image in category_images:
        result.add_product(_image_product(category, image), Origin(str(image)))
    return result


# --- JSON and JSONL ---------------------------------------------------------------------------


def load_json(path: Path) -> LoadResult:
    """A JSON list of records, or an object with `products` and/or `articles` lists."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        return _rejected(path, f"not UTF-8 text: {exc}")
    try:
        data, object_lines = _decode_with_lines(text)
    except json.JSONDecodeError as exc:
        return _rejected(path, f"invalid JSON: {exc.msg} (column {exc.colno})", exc.lineno)
    records: list[tuple[Any, str | None]]
    if isinstance(data, list):
        records = [(item, None) for item in data]
    elif isinstance(data, dict) and ({"products", "articles"} & data.keys()):
        records = []
        for key, label in (("products", "product"), ("articles", "article")):
            items = data.get(key, [])
            if not isinstance(items, list):
                return _rejected(path, f"{key!r} must be a list, not {type(items).__name__}")
            records += [(item, label) for item in items]
    else:
        return _rejected(path, "expected a list or {'products': [...], 'articles': [...]}", 1)
    result = LoadResult()
    for index, (record, kind) in enumerate(records, start=1):
        line = object_lines(record)
        origin = Origin(str(path), line) if line else Origin(f"{path} (record {index})")
        _add_record(result, record, path, origin, kind)
    return result


def _decode_with_lines(text: str) -> tuple[Any, Callable[[Any], int | None]]:
    """Parse JSON and remember on which line each object starts (the C scanner cannot say)."""
    starts: dict[int, int] = {}
    json_object = vars(json.decoder)["JSONObject"]
    decoder = json.JSONDecoder()

    def parse_object(s_and_end: tuple[str, int], *args: Any) -> tuple[Any, int]:
        obj, end = json_object(s_and_end, *args)
        starts[id(obj)] = s_and_end[1] - 1
        return obj, end

    # The pure-Python scanner calls `parse_object`; the C one would bypass it.
    decoder.__dict__["parse_object"] = parse_object
    decoder.__dict__["scan_once"] = vars(json.scanner)["py_make_scanner"](decoder)
    data = decoder.decode(text)
    newlines = [index for index, char in enumerate(text) if char == "\n"]

    def line_of(obj: Any) -> int | None:
        offset = starts.get(id(obj))
        return None if offset is None else bisect.bisect_left(newlines, offset) + 1

    return data, line_of


def load_jsonl(path: Path) -> LoadResult:
    result = LoadResult()
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        return _rejected(path, f"not UTF-8 text: {exc}")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            result.reject(path, f"invalid JSON: {exc.msg} (column {exc.colno})", number)
            continue
        _add_record(result, record, path, Origin(str(path), number), None)
    return result


def _add_record(
    result: LoadResult, record: Any, path: Path, origin: Origin, kind: str | None
) -> None:
    """Validate one mapping as a product or an article (a record with `body` is an article)."""
    if not isinstance(record, dict):
        result.reject(
            origin.source, f"record is a {type(record).__name__}, not an object", origin.line
        )
        return
    is_article = kind == "article" or (kind is None and "body" in record)
    try:
        if is_article:
            result.add_article(_article_from_mapping(record), origin)
        else:
            product, problems = _product_from_mapping(record, path.parent)
            result.add_product(product, origin)
            for problem in problems:
                result.reject(origin.source, f"product {product.id!r}: {problem}", origin.line)
    except (ValidationError, ValueError, TypeError) as exc:
        result.reject(origin.source, _explain(exc), origin.line)


def _article_from_mapping(record: dict[str, Any]) -> Article:
    data = dict(record)
    if isinstance(data.get("tags"), str):
        data["tags"] = _split_tags(data["tags"])
    return Article.model_validate(data)


def _product_from_mapping(record: dict[str, Any], base: Path) -> tuple[Product, list[str]]:
    """A validated product, and the problems with its images that did not sink the product."""
    data = dict(record)
    images = data.get("images") or []
    if isinstance(images, str):
        images = _LIST_SPLIT.split(images)
    if not isinstance(images, list) or not all(isinstance(i, str) for i in images):
        raise ValueError("images: expected a list of file paths or a '|'-separated string")
    attributes = data.get("attributes") or {}
    if isinstance(attributes, str):
        try:
            attributes = json.loads(attributes)
        except json.JSONDecodeError as exc:
            raise ValueError(f"attributes: invalid JSON ({exc.msg})") from exc
    if not isinstance(attributes, dict):
        raise ValueError("attributes: expected an object of name: value pairs")
    data["attributes"] = {str(k): str(v) for k, v in attributes.items() if v is not None}
    if isinstance(data.get("tags"), str):
        data["tags"] = _split_tags(data["tags"])
    for key in ("price", "stock"):
        if data.get(key) in ("", None):
            data[key] = None
    paths: list[Path] = []
    problems: list[str] = []
    for reference in (i.strip() for i in images):
        if not reference:
            continue
        if reference.startswith(("http://", "https://", "ftp://", "//")):
            problems.append(
                f"image {reference!r} is a URL; ShopSight works offline: download the images "
                "and give local paths relative to the catalogue file"
            )
            continue
        image = Path(reference).expanduser()
        paths.append((image if image.is_absolute() else base / image).resolve())
    data["images"] = paths
    return Product.model_validate(data), problems


def _split_tags(value: str) -> list[str]:
    return [tag.strip() for tag in value.split(",") if tag.strip()]


# --- CSV --------------------------------------------------------------------------------------


def _csv_rows(text: str) -> Iterator[tuple[int, dict[str, str] | str]]:
    """(first line, row as a dict) per record; a str instead of a dict says why a row is bad."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [name.strip() for name in next(reader, [])]
    previous = reader.line_num
    while True:
        start = previous + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield start, f"unreadable CSV row: {exc}"
            return
        previous = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) > len(header):
            yield start, f"more cells ({len(cells)}) than headers ({len(header)})"
            continue
        yield start, {name: value for name, value in zip(header, cells, strict=False) if name}


def load_csv(path: Path) -> LoadResult:
    """A plain product/article CSV, or a Shopify product export (detected by its headers)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        return _rejected(path, f"not UTF-8 text: {exc}")
    first = next(csv.reader(io.StringIO(text, newline="")), [])
    headers = {name.strip() for name in first}
    if headers >= _SHOPIFY_MARKERS:
        return _load_shopify(path, text)
    if not {"id", "title"} <= headers:
        return _rejected(
            path, f"missing required columns id and title (found: {sorted(headers)})", 1
        )
    articles = "body" in headers
    result = LoadResult()
    for line, row in _csv_rows(text):
        if isinstance(row, str):
            result.reject(path, row, line)
            continue
        record: dict[str, Any] = {k: v for k, v in row.items() if v.strip() != ""}
        record.setdefault("id", "")
        _add_record(
            result, record, path, Origin(str(path), line), "article" if articles else "product"
        )
    return result


def _load_shopify(path: Path, text: str) -> LoadResult:
    """Shopify exports spread one product over several rows (variants, extra images) by Handle.

    Only a product's first row carries its title, body, vendor, type, tags and option names;
    variant rows add option values, prices and inventory, image rows add images.
    """
    result = LoadResult()
    merged: dict[str, dict[str, Any]] = {}
    first_line: dict[str, int] = {}
    option_names: dict[str, dict[int, str]] = {}
    problems: dict[str, list[tuple[int, str]]] = {}
    for line, row in _csv_rows(text):
        if isinstance(row, str):
            result.reject(path, row, line)
            continue
        handle = (row.get("Handle") or "").strip()
        if not handle:
            result.reject(path, "empty Handle", line)
            continue
        entry = merged.setdefault(handle, {"id": handle, "images": [], "attributes": {}})
        first_line.setdefault(handle, line)
        for column, key in (("Title", "title"), ("Type", "category"), ("Variant Price", "price")):
            if (row.get(column) or "").strip() and key not in entry:
                entry[key] = row[column].strip()
        body = row.get("Body (HTML)") or ""
        if body.strip() and "description" not in entry:
            entry["description"] = _strip_html(body)
        if (row.get("Vendor") or "").strip():
            entry["attributes"]["vendor"] = row["Vendor"].strip()
        if (row.get("Tags") or "").strip() and "tags" not in entry:
            entry["tags"] = _split_tags(row["Tags"])
        quantity = (row.get("Variant Inventory Qty") or "").strip()
        if quantity:
            try:
                entry["stock"] = entry.get("stock", 0) + max(0, int(float(quantity)))
            except ValueError:
                problems.setdefault(handle, []).append(
                    (line, f"Variant Inventory Qty {quantity!r} is not a number")
                )
        names = option_names.setdefault(handle, {})
        for index in (1, 2, 3):
            name = (row.get(f"Option{index} Name") or "").strip()
            value = (row.get(f"Option{index} Value") or "").strip()
            if name:
                names.setdefault(index, name)
            name = names.get(index, "")
            if name and value and name != "Title":
                known = entry["attributes"].get(name.lower(), "")
                values = [v for v in known.split(", ") if v]
                if value not in values:
                    entry["attributes"][name.lower()] = ", ".join([*values, value])
        image = (row.get("Image Src") or "").strip()
        if image:
            entry["images"].append((line, image))
    for handle, entry in merged.items():
        origin = Origin(str(path), first_line[handle])
        if handle in problems:
            for line, reason in problems[handle]:
                result.reject(path, f"product {handle!r}: {reason}", line)
            continue
        image_lines = entry.pop("images")
        entry["images"] = []
        remote = []
        for line, image in image_lines:
            if image.startswith(("http://", "https://", "//")):
                remote.append((line, image))
            elif image not in entry["images"]:
                entry["images"].append(image)
        before = len(result.products)
        _add_record(result, entry, path, origin, "product")
        if len(result.products) > before:
            for line, image in remote:
                result.reject(
                    path,
                    f"product {handle!r}: image {image!r} is a URL; ShopSight works offline: "
                    "download the images and put local paths in the Image Src column",
                    line,
                )
    return result


def _strip_html(markup: str) -> str:
    text = _BLOCK_END.sub(" ", _INVISIBLE.sub(" ", markup))
    return re.sub(r"\s+", " ", html.unescape(_TAG.sub(" ", text))).strip()


# --- Markdown ---------------------------------------------------------------------------------


def load_markdown_file(path: Path) -> LoadResult:
    """A Markdown article; front matter may set id, title, tags, language and kind."""
    try:
        post = frontmatter.load(str(path))
    except UnicodeDecodeError as exc:
        return _rejected(path, f"not UTF-8 text: {exc}")
    except Exception as exc:  # front matter parsers raise many types on bad YAML
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark is not None else None  # +1 for 1-based, +1 for '---'
        return _rejected(path, f"unreadable front matter: {exc}", line)
    meta: dict[str, Any] = dict(post.metadata)
    body = post.content.strip()
    title = meta.get("title") or _first_heading(body) or path.stem.replace("-", " ")
    tags = meta.get("tags") or []
    if isinstance(tags, str):
        tags = _split_tags(tags)
    if not isinstance(tags, list):
        return _rejected(path, "front matter: tags must be a list or a comma-separated string")
    try:
        article = Article.model_validate(
            {
                "id": str(meta.get("id") or path.stem),
                "title": str(title),
                "body": body,
                "tags": [str(t) for t in tags],
                "language": meta.get("language", "en"),
                "kind": meta.get("kind", "faq"),
            }
        )
    except ValidationError as exc:
        return _rejected(path, _explain(exc))
    result = LoadResult()
    result.add_article(article, Origin(str(path)))
    return result


def _first_heading(body: str) -> str | None:
    for line in body.splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
    return None


def _explain(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'record'}: {error['msg']}"
            for error in exc.errors()
        )
    return str(exc)
