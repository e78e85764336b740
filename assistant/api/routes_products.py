"""Product pictures by product id, so responses never show where files live on the server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from assistant.api.context import CallerDep, ContextDep
from assistant.api.errors import ApiError
from assistant.api.openapi import ERRORS
from assistant.api.public import IMAGE_URL, IMAGES_URL
from knowledge_base.images import IMAGE_SUFFIXES
from retrieval.search.types import parse_json_list

router = APIRouter(tags=["products"])


@router.get(
    IMAGE_URL,
    summary="The catalogue picture of a product (its first one)",
    response_class=FileResponse,
    responses=ERRORS,
)
async def product_image(product_id: str, context: ContextDep, caller: CallerDep) -> FileResponse:
    return await _serve(context, caller, product_id, 0)


@router.get(
    IMAGES_URL,
    summary="One of a product's catalogue pictures, by its place in the catalogue's list",
    description="Photo search links each match to the very picture it matched here.",
    response_class=FileResponse,
    responses=ERRORS,
)
async def product_image_at(
    product_id: str,
    index: Annotated[int, PathParam(ge=0, le=999)],
    context: ContextDep,
    caller: CallerDep,
) -> FileResponse:
    return await _serve(context, caller, product_id, index)


async def _serve(
    context: ContextDep, caller: CallerDep, product_id: str, index: int
) -> FileResponse:
    if not caller.trusted:
        context.limits.check_client(caller.client)
    path = await run_in_threadpool(_image_path, context, product_id, index)
    if path is None:
        which = "picture" if index == 0 else f"picture number {index}"
        raise ApiError(404, "image_not_found", f"product {product_id!r} has no {which} here")
    return FileResponse(path, headers={"Cache-Control": "public, max-age=3600"})


def _image_path(context: ContextDep, product_id: str, index: int) -> Path | None:
    """The product's `index`-th catalogue image, when it is a readable picture file."""
    hits = context.components.store.get("products", ids=[product_id])
    images = parse_json_list(hits[0].metadata.get("images")) if hits else []
    path = Path(images[index]) if index < len(images) else None
    if path is None or path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
        return None
    return path
