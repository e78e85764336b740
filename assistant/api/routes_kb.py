"""Knowledge-base administration (admin key): ingest an uploaded catalogue or zip; stats."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from assistant.api.context import AdminDep, ApiContext, ContextDep
from assistant.api.errors import ApiError
from assistant.api.kb_upload import CatalogueKind, load_upload, relative_rejections
from assistant.api.openapi import ERRORS, multipart_body
from assistant.api.uploads import FilePart, FileRule, megabytes, read_multipart
from knowledge_base.admin import KbStats, kb_stats
from knowledge_base.ingest import IngestReport

router = APIRouter(tags=["knowledge base"])


class IngestResult(BaseModel):
    upload_id: str
    kind: CatalogueKind
    ok: bool
    report: IngestReport


@router.post(
    "/v1/kb/ingest",
    response_model=IngestResult,
    summary="Ingest a catalogue (JSON, JSONL, CSV, Markdown) or a zip with images (admin key)",
    description=(
        "A zip may hold catalogue files with the images they reference (relative paths), "
        "Markdown articles, and image folders named after their category. Ingestion is "
        "idempotent; the report lists every rejected record with its file, line and reason. "
        "One ingestion runs at a time (409 while another runs)."
    ),
    responses=ERRORS | {409: ERRORS[400] | {"description": "Another ingestion is running"}},
    openapi_extra=multipart_body(
        {"file": {"type": "string", "format": "binary", "description": "the catalogue or zip"}},
        required=["file"],
    ),
)
async def ingest(request: Request, context: ContextDep, _admin: AdminDep) -> IngestResult:
    limit = int(context.settings.max_ingest_mb * 1024 * 1024)
    form = await read_multipart(
        request,
        text_fields={},
        file_fields={
            "file": FileRule(
                limit,
                lambda size: (
                    f"the file is over {megabytes(limit)}; the limit is "
                    f"{megabytes(limit)} (SHOPSIGHT_MAX_INGEST_MB)"
                ),
            )
        },
        max_field_bytes=0,
    )
    try:
        part = form.files.get("file")
        if part is None:
            raise ApiError(422, "missing_field", "the form field 'file' (a catalogue) is required")
        if not context.ingest_lock.acquire(blocking=False):
            raise ApiError(
                409, "ingest_in_progress", "another ingestion is running; try again when it ends"
            )
        try:
            return await run_in_threadpool(_ingest, context, part)
        finally:
            context.ingest_lock.release()
    finally:
        form.close()


def _ingest(context: ApiContext, part: FilePart) -> IngestResult:
    settings = context.settings
    upload = load_upload(
        part.file,
        part.filename or "upload",
        settings.data_dir / "uploads",
        int(settings.max_ingest_unzipped_mb * 1024 * 1024),
    )
    report = context.components.ingestor.ingest(upload.loaded)
    report.rejections = relative_rejections(report.rejections, upload.folder)
    if upload.kind != "zip":
        # A lone catalogue's records are in the store now; only a zip's images must stay.
        for path in upload.folder.iterdir():
            path.unlink(missing_ok=True)
        upload.folder.rmdir()
    return IngestResult(upload_id=upload.upload_id, kind=upload.kind, ok=report.ok, report=report)


@router.get(
    "/v1/kb/stats",
    response_model=KbStats,
    summary="How many products, images and articles the knowledge base holds (admin key)",
    responses=ERRORS,
)
def stats(context: ContextDep, _admin: AdminDep) -> KbStats:
    return kb_stats(context.components.store)
