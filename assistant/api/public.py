"""What API responses may show: ids and `/v1/...` links, never server paths or store internals.

Product metadata is whitelisted (`PUBLIC_METADATA`), not filtered: a key the store adds later
(hashes, file lists, autotagging details) stays out of responses until it is listed here.
"""

from __future__ import annotations

from typing import TypeVar
from urllib.parse import quote

from assistant.turn.memory import TurnRecord
from assistant.turn.schemas import EvidencePack, ProductCard, TurnResult
from retrieval.search.types import ProductMatch, parse_json_list

IMAGE_URL = "/v1/products/{product_id}/image"
IMAGES_URL = "/v1/products/{product_id}/images/{index}"
# Catalogue facts a shopper may read; the top-level fields (title, price, ...) are not repeated.
PUBLIC_METADATA = (
    "title_zh",
    "description",
    "description_zh",
    "attributes",
    "tags",
    "in_stock",
    "language",
)

Match = TypeVar("Match", bound=ProductMatch)


def image_url(product_id: str, index: int | None = None) -> str:
    """The link of a product's picture: its first one, or the `index`-th of its catalogue list."""
    pid = quote(product_id, safe="")
    if index is None:
        return IMAGE_URL.format(product_id=pid)
    return IMAGES_URL.format(product_id=pid, index=index)


def public_cards(cards: list[ProductCard]) -> list[ProductCard]:
    """Cards show their product's first picture (see `Product.card`), so they link to it."""
    return [
        card.model_copy(update={"image": image_url(card.product_id) if card.image else None})
        for card in cards
    ]


def public_turn(result: TurnResult) -> TurnResult:
    return result.model_copy(update={"products": public_cards(result.products)})


def public_pack(pack: EvidencePack) -> EvidencePack:
    return pack.model_copy(update={"products": public_cards(pack.products)})


def public_record(record: TurnRecord) -> TurnRecord:
    """A stored turn; its result is kept as the engine returned it, file paths included."""
    result = public_turn(TurnResult.model_validate(record.result))
    return record.model_copy(update={"result": result.model_dump(mode="json")})


def public_match(match: Match) -> Match:
    """A search result with whitelisted metadata and the matched photo as a link to that very
    catalogue image (the product's first picture when it is no longer listed)."""
    images = parse_json_list(match.metadata.get("images"))
    link = None
    if match.matched_image:
        index = images.index(match.matched_image) if match.matched_image in images else None
        link = image_url(match.product_id, index)
    metadata = {k: match.metadata[k] for k in PUBLIC_METADATA if k in match.metadata}
    return match.model_copy(update={"metadata": metadata, "matched_image": link})
