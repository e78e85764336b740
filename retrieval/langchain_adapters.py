"""LangChain `BaseRetriever` adapters, so any LangChain chain or agent can use ShopSight search.

The retrievers only translate: search results become `Document`s whose metadata keeps the ids,
scores and ranks needed for citations; all searching stays in `retrieval.search.hybrid` and
`retrieval.search.photo`, the same searchers the API uses.
"""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path
from typing import Any, Literal

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableConfig
from pydantic import Field

from knowledge_base.images import ImageRejected, load_image
from retrieval.search.hybrid import (
    HybridArticleMatch,
    HybridSearcher,
    SearchFilters,
    SearchMode,
)
from retrieval.search.photo import PhotoMatcher
from retrieval.search.types import ProductMatch

_DATA_URI = re.compile(r"^data:image/[\w.+-]+;base64,(?P<data>.+)$", re.DOTALL)


def article_document(match: HybridArticleMatch) -> Document:
    """A passage as a Document: its title and text, with ids, score and ranks as metadata."""
    metadata = match.model_dump(mode="json", exclude={"text"})
    metadata["source"] = match.article_id
    return Document(page_content=f"{match.title}\n{match.text}", metadata=metadata)


def product_document(match: ProductMatch) -> Document:
    """A product as a Document: title, category and description, catalogue facts as metadata."""
    description = str(match.metadata.get("description") or "")
    content = "\n".join(part for part in (match.title, match.category, description) if part)
    metadata = match.model_dump(mode="json", exclude={"metadata"})
    metadata["source"] = match.product_id
    return Document(page_content=content, metadata=metadata)


class KnowledgeBaseRetriever(BaseRetriever):
    """Hybrid text search over the shop's articles or products."""

    searcher: HybridSearcher
    target: Literal["articles", "products"] = "articles"
    k: int = Field(default=4, ge=1, le=100)
    filters: SearchFilters | None = None
    mode: SearchMode = "hybrid"

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        if self.target == "articles":
            articles = self.searcher.articles(query, self.k, self.filters, self.mode)
            return [article_document(match) for match in articles]
        products = self.searcher.products(query, self.k, self.filters, self.mode)
        return [product_document(match) for match in products]


def image_query(data: bytes, mime: str = "image/jpeg") -> str:
    """Image bytes as the `data:` URI string a `PhotoRetriever` accepts as its query."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


class PhotoRetriever(BaseRetriever):
    """Photo → products by the calibrated photo matcher (the one behind `/v1/search/image`), so
    each document's metadata carries its match's `confidence`, `similarity` and matched view.

    The query is an image path or a `data:image/...;base64,` URI; `invoke` also takes raw bytes
    or a `Path`. With `image_root` set, paths outside it are refused, so a query coming from a
    user or an LLM cannot make the server read arbitrary files."""

    matcher: PhotoMatcher
    k: int = Field(default=4, ge=1, le=100)
    category: str | None = None
    image_root: Path | None = None
    allow_paths: bool = True
    max_pixels: int = 40_000_000
    max_side: int = 1024

    def invoke(
        self, input: str | bytes | Path, config: RunnableConfig | None = None, **kwargs: Any
    ) -> list[Document]:
        return super().invoke(_as_query(input), config, **kwargs)

    async def ainvoke(
        self, input: str | bytes | Path, config: RunnableConfig | None = None, **kwargs: Any
    ) -> list[Document]:
        return await super().ainvoke(_as_query(input), config, **kwargs)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        image = load_image(self._source(query), self.max_pixels, self.max_side)
        where = {"category": self.category} if self.category else None
        found = self.matcher.search(image, self.k, where)
        return [product_document(match) for match in found.matches]

    def _source(self, query: str) -> Path | bytes:
        found = _DATA_URI.match(query.strip())
        if found:
            try:
                return base64.b64decode(found["data"], validate=True)
            except binascii.Error as exc:
                raise ImageRejected(f"upload: the data URI is not valid base64 ({exc})") from exc
        if not self.allow_paths:
            raise ImageRejected("this retriever takes images as data URIs only, not file paths")
        path = Path(query.strip()).expanduser()
        if self.image_root is not None:
            root = self.image_root.resolve()
            if not path.resolve().is_relative_to(root):
                raise ImageRejected(f"{path}: outside the allowed image folder {root}")
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such image file")
        return path


def _as_query(value: str | bytes | Path) -> str:
    if isinstance(value, bytes):
        return image_query(value)
    return str(value)
