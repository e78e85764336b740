"""Turn one uploaded file (a catalogue, or a zip of catalogues and images) into loaded records.

The upload is kept under DATA_DIR/uploads/<upload id>/ because ingested products refer to their
images by path. A zip is extracted member by member with every guard an archive from the
network needs: no absolute paths or `..`, no links, no encrypted members, a cap on the number of
members and on the bytes actually extracted (not the sizes the archive claims), and a
compression-ratio check against zip bombs. Catalogue images must lie inside the upload: a
catalogue cannot make the server read files from elsewhere on its disk.
"""

from __future__ import annotations

import io
import json
import re
import secrets
import shutil
import stat
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Literal

from PIL import Image, UnidentifiedImageError

from assistant.api.errors import ApiError
from assistant.api.uploads import megabytes
from knowledge_base.loaders import LoadResult, load_paths
from knowledge_base.schema import Rejection

CatalogueKind = Literal["json", "jsonl", "csv", "markdown", "zip"]
MAX_MEMBERS = 20_000
# A member this much smaller compressed than extracted is refused (beyond 1 MB extracted).
MAX_RATIO = 200
_SUFFIX_KIND: dict[str, CatalogueKind] = {
    ".json": "json",
    ".jsonl": "jsonl",
    ".csv": "csv",
    ".md": "markdown",
    ".markdown": "markdown",
}
_KIND_SUFFIX = {"json": ".json", "jsonl": ".jsonl", "csv": ".csv", "markdown": ".md"}
_SAFE_STEM = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class LoadedUpload:
    upload_id: str
    kind: CatalogueKind
    folder: Path
    loaded: LoadResult


def new_upload_folder(uploads_dir: Path) -> tuple[str, Path]:
    upload_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(4)}"
    folder = uploads_dir / upload_id
    folder.mkdir(parents=True)
    return upload_id, folder


def load_upload(
    stream: IO[bytes], filename: str, uploads_dir: Path, max_unzipped_bytes: int
) -> LoadedUpload:
    """Store and load the upload; raises ApiError (4xx) for anything that cannot be used."""
    stream.seek(0)
    head = stream.read(8)
    stream.seek(0)
    if not head:
        raise ApiError(400, "empty_upload", f"the uploaded file '{filename}' is empty (0 bytes)")
    upload_id, folder = new_upload_folder(uploads_dir)
    try:
        if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
            _extract_zip(stream, folder, max_unzipped_bytes)
            kind: CatalogueKind = "zip"
        else:
            kind = _store_catalogue(stream.read(), filename, folder)
        loaded = load_paths([folder])
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    _confine_images(loaded, folder)
    _relative_sources(loaded, folder)
    return LoadedUpload(upload_id, kind, folder, loaded)


def _store_catalogue(data: bytes, filename: str, folder: Path) -> CatalogueKind:
    if _is_image(data):
        raise ApiError(
            415,
            "unsupported_catalogue",
            f"'{filename}' is an image: a single image has no product. Upload a zip with one "
            "folder per category, or a catalogue that references its images inside a zip",
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ApiError(
            415,
            "unsupported_catalogue",
            f"'{filename}' is neither a zip archive nor UTF-8 text (invalid byte at position "
            f"{exc.start}); upload JSON, JSONL, CSV or Markdown, or a zip of them with images",
        ) from exc
    if "\x00" in text:
        raise ApiError(
            415, "unsupported_catalogue", f"'{filename}' is binary data, not a text catalogue"
        )
    # The name only chooses between the text formats; each loader validates the content.
    suffix = PurePosixPath(filename.replace("\\", "/")).suffix.lower()
    kind = _SUFFIX_KIND.get(suffix) or _sniff_text(text)
    stem = _SAFE_STEM.sub("-", PurePosixPath(filename.replace("\\", "/")).stem).strip(".-")
    target = folder / f"{stem or 'catalogue'}{_KIND_SUFFIX[kind]}"
    target.write_text(text, encoding="utf-8")
    return kind


def _sniff_text(text: str) -> CatalogueKind:
    stripped = text.lstrip()
    if stripped.startswith("["):
        return "json"
    if stripped.startswith("{"):
        try:
            json.loads(stripped)
            return "json"
        except json.JSONDecodeError:
            return "jsonl"
    if stripped.startswith(("---", "#")):
        return "markdown"
    first = stripped.split("\n", 1)[0]
    return "csv" if any(sep in first for sep in (",", ";", "\t")) else "markdown"


def _is_image(data: bytes) -> bool:
    try:
        with Image.open(io.BytesIO(data)):
            return True
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        return False
    except Image.DecompressionBombError:
        return True


def _extract_zip(stream: IO[bytes], folder: Path, max_total: int) -> None:
    try:
        archive = zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
        raise ApiError(400, "corrupt_archive", f"the zip archive cannot be read: {exc}") from exc
    with archive:
        members = archive.infolist()
        if len(members) > MAX_MEMBERS:
            raise ApiError(
                413,
                "archive_too_large",
                f"the zip has {len(members)} entries; at most {MAX_MEMBERS} are accepted",
            )
        root = folder.resolve()
        total = 0
        for info in members:
            target = _member_target(info, root)
            if target is None:
                continue
            total += _extract_member(archive, info, target, max_total - total)


def _member_target(info: zipfile.ZipInfo, root: Path) -> Path | None:
    """Where a member may be extracted, None to skip it; refuses unsafe members outright."""
    name = info.filename
    path = PurePosixPath(name.replace("\\", "/"))
    parts = [p for p in path.parts if p not in ("", ".")]
    unsafe = (
        path.is_absolute()
        or ".." in parts
        or (bool(parts) and ":" in parts[0])
        or stat.S_ISLNK(info.external_attr >> 16)
    )
    if unsafe:
        raise ApiError(
            400,
            "unsafe_archive",
            f"the zip entry {name!r} points outside the archive or is a link; nothing was "
            "ingested from this archive",
        )
    if info.flag_bits & 0x1:
        raise ApiError(400, "unsafe_archive", f"the zip entry {name!r} is encrypted")
    if info.is_dir() or not parts or any(p.startswith(".") or p == "__MACOSX" for p in parts):
        return None
    target = root.joinpath(*parts)
    if not target.resolve().is_relative_to(root):
        raise ApiError(400, "unsafe_archive", f"the zip entry {name!r} points outside the archive")
    return target


def _extract_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, budget: int
) -> int:
    if info.file_size > 1_000_000 and info.file_size > MAX_RATIO * max(info.compress_size, 1):
        raise ApiError(
            413,
            "archive_too_large",
            f"the zip entry {info.filename!r} expands {info.file_size // max(info.compress_size, 1)}"
            "-fold: refused as a possible zip bomb",
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    try:
        with archive.open(info) as source, target.open("wb") as sink:
            while block := source.read(1 << 20):
                written += len(block)
                if written > budget:
                    raise ApiError(
                        413,
                        "archive_too_large",
                        "the zip expands to more than "
                        f"{megabytes(budget + written - len(block))} of files "
                        "(SHOPSIGHT_MAX_INGEST_UNZIPPED_MB)",
                    )
                if written > info.file_size:
                    raise ApiError(
                        400,
                        "corrupt_archive",
                        f"the zip entry {info.filename!r} is larger than the archive says",
                    )
                sink.write(block)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise ApiError(
            400, "corrupt_archive", f"the zip entry {info.filename!r} cannot be extracted: {exc}"
        ) from exc
    return written


def _confine_images(loaded: LoadResult, folder: Path) -> None:
    """Drop image references outside the upload (absolute paths, `..`), with a rejection each."""
    root = folder.resolve()
    for index, product in enumerate(loaded.products):
        inside = [p for p in product.images if Path(p).resolve().is_relative_to(root)]
        if len(inside) == len(product.images):
            continue
        for path in product.images:
            if path not in inside:
                loaded.rejections.append(
                    Rejection(
                        source=f"product {product.id}",
                        reason=f"image {Path(path).name!r} is outside the upload: put images in "
                        "the zip and refer to them by paths relative to the catalogue",
                    )
                )
        loaded.products[index] = product.model_copy(update={"images": inside})


def _relative_sources(loaded: LoadResult, folder: Path) -> None:
    loaded.rejections[:] = relative_rejections(loaded.rejections, folder)


def relative_rejections(rejections: list[Rejection], folder: Path) -> list[Rejection]:
    """Name files as they are inside the upload, not by their place on the server's disk."""
    prefixes = {str(folder.resolve()) + "/", str(folder) + "/"}
    cleaned = []
    for rejection in rejections:
        source, reason = rejection.source, rejection.reason
        for prefix in prefixes:
            source, reason = source.replace(prefix, ""), reason.replace(prefix, "")
        cleaned.append(rejection.model_copy(update={"source": source, "reason": reason}))
    return cleaned
