"""Catalogue and FAQ search: public (the shop's own catalogue), rate-limited per client address.

Text search is the knowledge-base service's: hybrid text search fused with photo evidence when
a text-photo space exists. Photo search takes JSON (photo base64-encoded) or a multipart form.
Results never show where files live on the server, nor the store's own metadata.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.concurrency import run_in_threadpool

from assistant.api.context import CallerDep, ContextDep
from assistant.api.errors import ApiError
from assistant.api.openapi import ERRORS, multipart_body
from assistant.api.public import public_match
from assistant.api.uploads import (
    body_kind,
    decode_base64_image,
    image_rule,
    read_json,
    read_multipart,
    sniff_image,
)
from assistant.services.kb import ProductHit
from assistant.turn.safety import Limits, check_image
from retrieval.search.hybrid import HybridArticleMatch, SearchFilters, SearchMode
from retrieval.search.photo import PhotoMatch

router = APIRouter(tags=["search"])

MAX_K = 50
SearchKind = Literal["products", "articles"]
SEARCH_KINDS: tuple[SearchKind, ...] = ("products", "articles")


class TextSearch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, description="What to look for, in English or Chinese.")
    k: int = Field(5, ge=1, le=MAX_K, description="How many results of each kind.")
    mode: SearchMode = Field("hybrid", description="hybrid (dense + BM25), dense or bm25.")
    include: list[SearchKind] = Field(default_factory=lambda: list(SEARCH_KINDS), min_length=1)
    category: str | None = Field(None, description="Only products of this category.")
    min_price: float | None = Field(None, ge=0)
    max_price: float | None = Field(None, ge=0)
    in_stock: bool | None = None
    language: Literal["en", "zh"] | None = Field(
        None, description="Only articles in this language."
    )

    @model_validator(mode="after")
    def _price_range(self) -> TextSearch:
        low, high = self.min_price, self.max_price
        if low is not None and high is not None and low > high:
            raise ValueError(f"min_price {low} is above max_price {high}")
        return self


class TextSearchResult(BaseModel):
    """Products (with their rank in text search and, when photos counted, in photo search)
    and article passages."""

    query: str
    mode: SearchMode
    products: list[ProductHit]
    articles: list[HybridArticleMatch]


class ImageSearchResult(BaseModel):
    """Candidates for the photo and whether the match is sure enough to name the product."""

    products: list[PhotoMatch]
    confident: bool
    confidence: float
    threshold: float
    predicted_category: str | None = None
    category_source: str = "none"


@router.post(
    "/v1/search/text",
    response_model=TextSearchResult,
    summary="Search products and FAQ/policy articles by text",
    responses=ERRORS,
)
def search_text(body: TextSearch, context: ContextDep, caller: CallerDep) -> TextSearchResult:
    if not caller.trusted:
        context.limits.check_client(caller.client)
    if len(body.query) > context.settings.max_text_chars:
        raise ApiError(
            413,
            "text_too_long",
            f"the query is {len(body.query)} characters; the limit is "
            f"{context.settings.max_text_chars} (SHOPSIGHT_MAX_TEXT_CHARS)",
        )
    found = context.components.kb.search_text(
        body.query,
        body.k,
        SearchFilters(
            category=body.category,
            min_price=body.min_price,
            max_price=body.max_price,
            in_stock=body.in_stock,
        ),
        SearchFilters(language=body.language) if "articles" in body.include else None,
        mode=body.mode,
        products="products" in body.include,
    )
    return TextSearchResult(
        query=body.query,
        mode=body.mode,
        products=[public_match(p) for p in found.products],
        articles=found.articles,
    )


IMAGE_FIELDS = {
    "k": f"how many products (1-{MAX_K}, default 5)",
    "category": "only products of this category",
}


class ImageSearch(BaseModel):
    """`POST /v1/search/image` as JSON: the photo base64-encoded."""

    model_config = ConfigDict(extra="forbid", strict=True)

    image: str = Field(
        description="the photo, base64-encoded (a data:image/...;base64, URL also works); the "
        "same size limit as a multipart photo (SHOPSIGHT_MAX_UPLOAD_MB, decoded)",
        json_schema_extra={"contentEncoding": "base64"},
    )
    k: int = Field(5, ge=1, le=MAX_K, description=IMAGE_FIELDS["k"])
    category: str | None = Field(None, description=IMAGE_FIELDS["category"])


@router.post(
    "/v1/search/image",
    response_model=ImageSearchResult,
    summary="Find the products that look like a photo",
    description="JSON (the photo base64-encoded in `image`) or a multipart form (the photo as "
    "a file); the same limits and checks apply to both.",
    responses=ERRORS,
    openapi_extra=multipart_body(
        {
            "image": {"type": "string", "format": "binary", "description": "the photo"},
            "k": {"type": "integer", "minimum": 1, "maximum": MAX_K, "default": 5},
            "category": {"type": "string", "description": IMAGE_FIELDS["category"]},
        },
        required=["image"],
        json_model=ImageSearch,
    ),
)
async def search_image(
    request: Request, context: ContextDep, caller: CallerDep
) -> ImageSearchResult:
    if not caller.trusted:
        context.limits.check_client(caller.client)
    if body_kind(request, ", ".join(["image", *IMAGE_FIELDS])) == "json":
        body = await read_json(request, ImageSearch)
        data = decode_base64_image(body.image, image_rule(context.max_upload_bytes))
        sniff_image(data, "image", context.settings.max_image_pixels)
        category = (body.category or "").strip() or None
        return await run_in_threadpool(_photo_search, context, data, body.k, category)
    form = await read_multipart(
        request,
        text_fields=IMAGE_FIELDS,
        file_fields={"image": image_rule(context.max_upload_bytes)},
        max_field_bytes=1024,
    )
    try:
        part = form.files.get("image")
        if part is None:
            raise ApiError(
                422, "missing_field", "the form field 'image' (a photo file) is required"
            )
        data = part.read()
        sniff_image(data, part.filename or "image", context.settings.max_image_pixels)
        k = _k(form.text("k"))
        category = (form.text("category") or "").strip() or None
    finally:
        form.close()
    return await run_in_threadpool(_photo_search, context, data, k, category)


def _k(raw: str | None) -> int:
    if raw is None or not raw.strip():
        return 5
    try:
        k = int(raw)
    except ValueError:
        k = 0
    if not 1 <= k <= MAX_K:
        raise ApiError(
            422, "invalid_field", f"k must be a whole number from 1 to {MAX_K}, not {raw!r}"
        )
    return k


def _photo_search(
    context: ContextDep, data: bytes, k: int, category: str | None
) -> ImageSearchResult:
    settings = context.settings
    components = context.components
    photo = check_image(
        data,
        Limits(
            max_upload_bytes=context.max_upload_bytes,
            max_image_pixels=settings.max_image_pixels,
            max_image_side=settings.max_image_side,
        ),
    )
    result = components.kb.search_photo(photo, k, SearchFilters(category=category))
    return ImageSearchResult(
        products=[public_match(m) for m in result.matches],
        **result.model_dump(
            include={
                "confident",
                "confidence",
                "threshold",
                "predicted_category",
                "category_source",
            }
        ),
    )
