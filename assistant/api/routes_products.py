"""Product pictures by product id, so responses never show where files live on the server."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from fastapi import APIRouter
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from assistant.api.context import CallerDep, ContextDep
from assistant.api.errors import ApiError
from assistant.api.openapi import ERRORS
from assistant.turn.schemas import TurnResult
from knowledge_base.images import IMAGE_SUFFIXES
from retrieval.search.types import ProductMatch, parse_json_list

router = APIRouter(tags=["products"])
IMAGE_URL = "/v1/products/{product_id}/image"
Match = TypeVar("Match", bound=ProductMatch)


def public_images(result: TurnResult) -> TurnResult:
    """The turn with each product card's picture as a URL of this service, not a file path."""
    cards = [
        card.model_copy(
            update={"image": IMAGE_URL.format(product_id=card.product_id) if card.image else None}
        )
        for card in result.products
    ]
    return result.model_copy(update={"products": cards})


def public_match(match: Match) -> Match:
    """A search result without the server's file paths: the matched photo becomes the URL of
    the product's picture, and the metadata loses its list of image paths."""
    metadata = {k: v for k, v in match.metadata.items() if k != "images"}
    image = IMAGE_URL.format(product_id=match.product_id) if match.matched_image else None
    return match.model_copy(update={"metadata": metadata, "matched_image": image})


@router.get(
    IMAGE_URL,
    summary="The catalogue picture of a product",
    response_class=FileResponse,
    responses=ERRORS,
)
async def product_image(product_id: str, context: ContextDep, caller: CallerDep) -> FileResponse:
    if not caller.trusted:
        context.limits.check_client(caller.client)
    path = await run_in_threadpool(_image_path, context, product_id)
    if path is None:
        raise ApiError(404, "image_not_found", f"product {product_id!r} has no picture here")
    return FileResponse(path, headers={"Cache-Control": "public, max-age=3600"})


def _image_path(context: ContextDep, product_id: str) -> Path | None:
    """The product's first catalogue image, when it is a readable picture file."""
    hits = context.components.store.get("products", ids=[product_id])
    images = parse_json_list(hits[0].metadata.get("images")) if hits else []
    path = Path(images[0]) if images else None
    if path is None or path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
        return None
    return path
