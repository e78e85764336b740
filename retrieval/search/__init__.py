"""Search over the knowledge base: result types, filters, BM25, hybrid search, photo matching
and text→image search."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    # `from retrieval.search import ProductMatch` (its module before this package).
    from retrieval.search import types

    try:
        return getattr(types, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
