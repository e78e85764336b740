"""Knowledge-base administration (admin key): ingest an uploaded catalogue or zip, delete a
record, stats. While the service runs it is the embedded store's one writer, so these routes are
how the catalogue changes then (`shopsight kb ingest` is refused with a pointer here)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from assistant.api.context import AdminDep, ContextDep
from assistant.api.errors import ApiError
from assistant.api.openapi import ERRORS, multipart_body
from assistant.api.uploads import FileRule, megabytes, read_multipart
from assistant.services.kb import CatalogueKind, IngestBusy, Upload, UploadRejected
from knowledge_base.admin import Deletion, KbCounts
from knowledge_base.ingest import IngestReport

router = APIRouter(tags=["knowledge base"])

# The HTTP status of each reason an upload is refused.
UPLOAD_STATUS = {
    "empty_upload": 400,
    "upload_too_large": 413,
    "unsupported_catalogue": 415,
    "unsafe_archive": 400,
    "archive_too_large": 413,
    "corrupt_archive": 400,
}


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
        upload = Upload(part.filename or "upload", part.file)
        try:
            done = await run_in_threadpool(context.components.kb.ingest_uploads, [upload])
        except IngestBusy as exc:
            raise ApiError(409, "ingest_in_progress", str(exc)) from exc
        except UploadRejected as exc:
            raise ApiError(UPLOAD_STATUS[exc.code], exc.code, exc.message) from exc
    finally:
        form.close()
    staged = done.uploads[0]
    return IngestResult(
        upload_id=staged.upload_id, kind=staged.kind, ok=done.report.ok, report=done.report
    )


@router.delete(
    "/v1/kb/records/{record_id}",
    response_model=Deletion,
    summary="Delete a product (with its images) or an article (with its chunks) (admin key)",
    responses=ERRORS
    | {
        404: ERRORS[400] | {"description": "No product or article has this id"},
        409: ERRORS[400] | {"description": "An ingestion is running"},
    },
)
def delete(record_id: str, context: ContextDep, _admin: AdminDep) -> Deletion:
    try:
        deletion = context.components.kb.delete(record_id)
    except IngestBusy as exc:
        raise ApiError(409, "ingest_in_progress", str(exc)) from exc
    if not deletion.found:
        raise ApiError(404, "record_not_found", f"no product or article with id {record_id!r}")
    return deletion


@router.get(
    "/v1/kb/stats",
    response_model=KbCounts,
    summary="How many products, images and articles the knowledge base holds (admin key)",
    responses=ERRORS,
)
def stats(context: ContextDep, _admin: AdminDep) -> KbCounts:
    return KbCounts(**context.components.kb.stats().model_dump(exclude={"location"}))
