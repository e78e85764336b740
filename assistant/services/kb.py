"""The knowledge base as every front end uses it: ingest catalogues and uploads, search it.

- Ingestion runs one at a time per process (`ingest_lock`): `shopsight kb ingest` waits for a
  running one, `POST /v1/kb/ingest` and the UI's upload are refused while one runs.
- An upload (a catalogue, or a zip of catalogues and images) is kept under
  DATA_DIR/uploads/<upload id>/, because ingested products refer to their images by path. A zip
  goes through `knowledge_base.archives` (every guard an archive from the network needs), and a
  catalogue's images must lie inside its upload: it cannot make the server read files from
  elsewhere on its disk.
- A catalogue change shows in search within about a second, whoever made it: the searchers'
  caches follow the store's generation (`KnowledgeStore.generation`).
- Text search is hybrid text search (dense + BM25) fused with photo evidence when an alignment
  head (or a local CLIP) gives text and photos one space, with the one default weight
  `DEFAULT_IMAGE_WEIGHT`; photo search is the photo matcher.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import re
import secrets
import shutil
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Literal, Protocol

from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel

from knowledge_base.admin import Deletion, KbStats, delete_record, kb_stats
from knowledge_base.archives import ArchiveRejected, extract_zip, is_zip
from knowledge_base.ingest import Ingestor, IngestReport
from knowledge_base.loaders import LoadResult, load_paths
from knowledge_base.schema import Rejection
from knowledge_base.store import EmbedderMismatch, KnowledgeStore
from retrieval.search.cross_modal import DEFAULT_IMAGE_WEIGHT
from retrieval.search.hybrid import (
    HybridArticleMatch,
    HybridProductMatch,
    HybridSearcher,
    SearchFilters,
    SearchMode,
)
from retrieval.search.photo import PhotoSearchResult
from retrieval.search.types import ProductMatch

if TYPE_CHECKING:
    from assistant.settings import Settings
    from retrieval.encoders.text import TextEmbedder
    from retrieval.search.cross_modal import CrossModalSearcher, TextRanking

__all__ = [
    "DEFAULT_IMAGE_WEIGHT",
    "CatalogueKind",
    "IngestBusy",
    "KnowledgeParts",
    "KnowledgeService",
    "PhotoEvidence",
    "ProductHit",
    "StagedUpload",
    "TextSearchResult",
    "Upload",
    "UploadRejected",
    "UploadsIngested",
    "relative_rejections",
    "stage_upload",
]

CatalogueKind = Literal["json", "jsonl", "csv", "markdown", "zip"]
UploadProblem = Literal[
    "empty_upload",
    "upload_too_large",
    "unsupported_catalogue",
    "unsafe_archive",
    "archive_too_large",
    "corrupt_archive",
]
_SUFFIX_KIND: dict[str, CatalogueKind] = {
    ".json": "json",
    ".jsonl": "jsonl",
    ".csv": "csv",
    ".md": "markdown",
    ".markdown": "markdown",
}
_KIND_SUFFIX = {"json": ".json", "jsonl": ".jsonl", "csv": ".csv", "markdown": ".md"}
_SAFE_STEM = re.compile(r"[^A-Za-z0-9._-]+")


class KnowledgeParts(Protocol):
    """What the service is built on: the composition root (`assistant.components.Components`)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def store(self) -> KnowledgeStore: ...

    @property
    def text_embedder(self) -> TextEmbedder: ...

    @property
    def ingestor(self) -> Ingestor: ...

    @property
    def hybrid_searcher(self) -> HybridSearcher: ...

    def search_photo(
        self, photo: Image.Image, k: int, filters: SearchFilters | None = None
    ) -> PhotoSearchResult: ...


class UploadRejected(Exception):
    """An upload that cannot be used; nothing of it is kept. `code` is stable (the API's error
    code); `filename` names the upload, which `message` does not repeat."""

    def __init__(self, code: UploadProblem, message: str, filename: str = "") -> None:
        super().__init__(message)
        self.code: UploadProblem = code
        self.message = message
        self.filename = filename


class IngestBusy(RuntimeError):
    """Another ingestion of this process is running."""

    def __init__(self) -> None:
        super().__init__("another ingestion is running; try again when it ends")


@dataclass
class Upload:
    """One uploaded file as the front end received it: its name and a readable, seekable stream."""

    filename: str
    stream: IO[bytes]


@dataclass
class StagedUpload:
    """An upload stored under DATA_DIR/uploads and loaded (not ingested yet)."""

    upload_id: str
    kind: CatalogueKind
    folder: Path
    loaded: LoadResult


@dataclass
class UploadsIngested:
    """What ingesting some uploads did; only the folders of zips are kept (their images)."""

    uploads: list[StagedUpload]
    report: IngestReport

    @property
    def kept_folders(self) -> list[Path]:
        return [upload.folder for upload in self.uploads if upload.kind == "zip"]


class ProductHit(HybridProductMatch):
    """A product found by text, with its place in each ranking that found it.

    `score` is what ranked it: the text + photo fusion score when photos counted, else the hybrid
    text score. `text_*`: hybrid text search (fused dense + BM25; `dense_score` is a cosine,
    `bm25_score` a BM25 score). `image_*`: search of product photos projected into the text space
    (`image_score` is a cosine there; `matched_image` is that photo).
    """

    text_rank: int | None = None
    text_score: float | None = None
    image_rank: int | None = None
    image_score: float | None = None


class PhotoEvidence(BaseModel):
    """Whether photos counted in a text search, with which weight and space, or why not."""

    used: bool = False
    image_weight: float
    space: str | None = None
    reason: str | None = None


class TextSearchResult(BaseModel):
    query: str
    mode: SearchMode = "hybrid"
    filters: SearchFilters
    image_evidence: PhotoEvidence
    products: list[ProductHit]
    articles: list[HybridArticleMatch]


class KnowledgeService:
    """Ingest and search on one composition root; one per process (it holds the ingest lock)."""

    def __init__(self, parts: KnowledgeParts) -> None:
        self.parts = parts
        self.ingest_lock = threading.Lock()
        self._fusion_lock = threading.Lock()
        self._fused: CrossModalSearcher | None = None

    # --- ingest ------------------------------------------------------------------------------

    def ingest(
        self, loaded: LoadResult, wait: bool = True, progress: bool | None = None
    ) -> IngestReport:
        """Ingest loaded records while holding the ingest lock; `wait=False` raises `IngestBusy`
        instead of waiting for a running ingestion. `progress` overrides the bars setting."""
        if not self.ingest_lock.acquire(blocking=wait):
            raise IngestBusy()
        try:
            return self._ingestor(progress).ingest(loaded)
        finally:
            self.ingest_lock.release()

    def ingest_uploads(
        self, uploads: Sequence[Upload], progress: bool | None = None
    ) -> UploadsIngested:
        """Store, check and ingest uploads together; raises `IngestBusy` while another
        ingestion runs. One refused upload (`UploadRejected`) refuses them all: nothing is kept.
        """
        settings = self.parts.settings
        if not self.ingest_lock.acquire(blocking=False):
            raise IngestBusy()
        try:
            staged: list[StagedUpload] = []
            loaded = LoadResult()
            try:
                for upload in uploads:
                    _check_size(upload, int(settings.max_ingest_mb * 1024 * 1024))
                    one = stage_upload(
                        upload.stream,
                        upload.filename,
                        settings.data_dir / "uploads",
                        int(settings.max_ingest_unzipped_mb * 1024 * 1024),
                    )
                    staged.append(one)
                    loaded.extend(one.loaded)
            except BaseException:
                for one in staged:
                    shutil.rmtree(one.folder, ignore_errors=True)
                raise
            report = self._ingestor(progress).ingest(loaded)
        finally:
            self.ingest_lock.release()
        for one in staged:
            report.rejections = relative_rejections(report.rejections, one.folder)
            if one.kind != "zip":
                # A lone catalogue's records are in the store now; only a zip's images must stay.
                shutil.rmtree(one.folder, ignore_errors=True)
        return UploadsIngested(staged, report)

    def delete(self, record_id: str) -> Deletion:
        """Delete a product (with its images) or an article; raises `IngestBusy` while an
        ingestion runs, so a delete never races the records it writes."""
        if not self.ingest_lock.acquire(blocking=False):
            raise IngestBusy()
        try:
            return delete_record(self.parts.store, record_id)
        finally:
            self.ingest_lock.release()

    def stats(self) -> KbStats:
        return kb_stats(self.parts.store)

    def _ingestor(self, progress: bool | None) -> Ingestor:
        """The shared ingestor, or a copy of it with its tqdm bars switched (a UI progress bar
        follows tqdm)."""
        ingestor = self.parts.ingestor
        if progress is None or progress == ingestor.options.progress:
            return ingestor
        switched = copy.copy(ingestor)
        switched.options = dataclasses.replace(ingestor.options, progress=progress)
        return switched

    # --- search ------------------------------------------------------------------------------

    def search_text(
        self,
        query: str,
        k: int,
        filters: SearchFilters | None = None,
        article_filters: SearchFilters | None = None,
        mode: SearchMode = "hybrid",
        image_weight: float = DEFAULT_IMAGE_WEIGHT,
        products: bool = True,
    ) -> TextSearchResult:
        """Products by text search fused with photo evidence (when a text-photo space exists and
        `image_weight` > 0), and article passages within `article_filters` (None: no articles).
        """
        filters = filters or SearchFilters()
        evidence = PhotoEvidence(image_weight=image_weight)
        hits: list[ProductHit] = []
        if products:
            hits = self._products(query, k, filters, mode, evidence)
        articles = (
            []
            if article_filters is None
            else self.parts.hybrid_searcher.articles(query, k, article_filters, mode)
        )
        return TextSearchResult(
            query=query,
            mode=mode,
            filters=filters,
            image_evidence=evidence,
            products=hits,
            articles=articles,
        )

    def search_photo(
        self, photo: Image.Image, k: int, filters: SearchFilters | None = None
    ) -> PhotoSearchResult:
        """Products that look like `photo` (multi-view query, category agreement, calibrated
        confidence), within the catalogue filters."""
        return self.parts.search_photo(photo, k, filters)

    def _products(
        self,
        query: str,
        k: int,
        filters: SearchFilters,
        mode: SearchMode,
        evidence: PhotoEvidence,
    ) -> list[ProductHit]:
        hybrid = self.parts.hybrid_searcher
        found_by_text: dict[str, tuple[int, HybridProductMatch]] = {}

        def text_ranking(text: str, depth: int, where: object) -> list[HybridProductMatch]:
            # `where` is `filters.to_where()`; the hybrid searcher takes the filters themselves.
            matches = hybrid.products(text, depth, filters, mode)
            found_by_text.update((m.product_id, (r, m)) for r, m in enumerate(matches, start=1))
            return matches

        fused = self._fusion(evidence, text_ranking)
        if fused is None:
            return [
                ProductHit(**match.model_dump(), text_rank=rank, text_score=match.score)
                for rank, match in enumerate(text_ranking(query, k, None), start=1)
            ]
        hits = []
        for match in fused.search(query, k, filters.to_where()):
            ranked = found_by_text.get(match.product_id)
            image = next((e for e in match.evidence if e.source == "image"), None)
            by_text = ranked[1].model_dump(exclude=set(ProductMatch.model_fields)) if ranked else {}
            hits.append(
                ProductHit(
                    **match.model_dump(exclude={"evidence"}),
                    **by_text,
                    text_rank=ranked[0] if ranked else None,
                    text_score=ranked[1].score if ranked else None,
                    image_rank=image.rank if image else None,
                    image_score=image.score if image else None,
                )
            )
        return hits

    def _fusion(
        self, evidence: PhotoEvidence, text_ranking: TextRanking
    ) -> CrossModalSearcher | None:
        """A fused searcher for this query's text ranking and weight, or None with the reason
        in `evidence`. The space (and its projected photos) is built once and shared."""
        if evidence.image_weight <= 0:
            evidence.reason = "turned off: the image weight is 0"
            return None
        with self._fusion_lock:
            if self._fused is None:
                self._fused, evidence.reason = self._build_fusion()
            shared = self._fused
        if shared is None:
            return None
        evidence.used = True
        evidence.space = shared.space.name
        # A shallow copy shares the projected-photo index; weight and ranking are per query.
        fused = copy.copy(shared)
        fused.image_weight = evidence.image_weight
        fused.text_search = text_ranking
        return fused

    def _build_fusion(self) -> tuple[CrossModalSearcher | None, str | None]:
        """The configured text-photo space as a fused searcher, or None and why (then it is
        looked for again next time: a head may be trained meanwhile)."""
        from retrieval.heads.alignment import AlignmentMismatch
        from retrieval.search.cross_modal import build_cross_modal_searcher

        settings = self.parts.settings
        try:
            fused = build_cross_modal_searcher(
                self.parts.store,
                self.parts.text_embedder,
                settings.artifacts_dir,
                clip_path=settings.clip_model_path,
                max_image_pixels=settings.max_image_pixels,
                max_image_side=settings.max_image_side,
            )
        except (AlignmentMismatch, EmbedderMismatch) as exc:
            return None, str(exc)
        if fused is None:
            return None, (
                f"no alignment head (align-vN) in {settings.artifacts_dir}: "
                "train one with `shopsight train align --data CATALOGUE`"
            )
        return fused, None


# --- uploads ---------------------------------------------------------------------------------


def _check_size(upload: Upload, limit: int) -> None:
    upload.stream.seek(0, io.SEEK_END)
    size = upload.stream.tell()
    upload.stream.seek(0)
    if size > limit:
        raise UploadRejected(
            "upload_too_large",
            f"{size / 1024**2:.1f} MB > {limit / 1024**2:g} MB limit (SHOPSIGHT_MAX_INGEST_MB)",
            upload.filename,
        )


def new_upload_folder(uploads_dir: Path) -> tuple[str, Path]:
    upload_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(4)}"
    folder = uploads_dir / upload_id
    folder.mkdir(parents=True)
    return upload_id, folder


def stage_upload(
    stream: IO[bytes], filename: str, uploads_dir: Path, max_unzipped_bytes: int
) -> StagedUpload:
    """Store and load one upload; raises `UploadRejected` for anything that cannot be used."""
    stream.seek(0)
    head = stream.read(8)
    stream.seek(0)
    if not head:
        raise UploadRejected(
            "empty_upload", f"the uploaded file '{filename}' is empty (0 bytes)", filename
        )
    upload_id, folder = new_upload_folder(uploads_dir)
    try:
        if is_zip(head):
            extract_zip(stream, folder, max_unzipped_bytes)
            kind: CatalogueKind = "zip"
        else:
            kind = _store_catalogue(stream.read(), filename, folder)
        loaded = load_paths([folder])
    except ArchiveRejected as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise UploadRejected(exc.code, exc.message, filename) from exc
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    _confine_images(loaded, folder)
    loaded.rejections[:] = relative_rejections(loaded.rejections, folder)
    return StagedUpload(upload_id, kind, folder, loaded)


def _store_catalogue(data: bytes, filename: str, folder: Path) -> CatalogueKind:
    if _is_image(data):
        raise UploadRejected(
            "unsupported_catalogue",
            f"'{filename}' is an image: a single image has no product. Upload a zip with one "
            "folder per category, or a catalogue that references its images inside a zip",
            filename,
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UploadRejected(
            "unsupported_catalogue",
            f"'{filename}' is neither a zip archive nor UTF-8 text (invalid byte at position "
            f"{exc.start}); upload JSON, JSONL, CSV or Markdown, or a zip of them with images",
            filename,
        ) from exc
    if "\x00" in text:
        raise UploadRejected(
            "unsupported_catalogue", f"'{filename}' is binary data, not a text catalogue", filename
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
