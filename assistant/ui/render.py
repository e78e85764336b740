"""Pure HTML/Markdown rendering for the UI: product cards, cited replies, decisions, search hits.

Everything that comes from a customer, a catalogue or a model is escaped here; the widgets only
receive finished strings. Styles are inline so the markup looks the same wherever it is mounted.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from PIL import Image

from assistant.turn.schemas import Citation, Decision, ProductCard, SuggestedReply, Ticket

UiLanguage = Literal["en", "zh"]

THUMBNAIL_SIDE = 192

LABELS: dict[UiLanguage, dict[str, str]] = {
    "en": {
        "products": "Products",
        "in_stock": "In stock: {n}",
        "out_of_stock": "Out of stock",
        "stock_unknown": "Stock not listed",
        "no_price": "Price not listed",
        "match": "match {p}%",
        "sources": "Sources",
        "one_of_these": "Is it one of these?",
        "similar": "Similar items we sell (not the product in your photo)",
        "picked": "It is {title}.",
        "photo": "(photo)",
        "agent": "Agent",
        "no_image": "no image",
    },
    "zh": {
        "products": "商品",
        "in_stock": "库存：{n}",
        "out_of_stock": "缺货",
        "stock_unknown": "库存未知",
        "no_price": "价格未标注",
        "match": "匹配度 {p}%",
        "sources": "来源",
        "one_of_these": "是其中之一吗？",
        "similar": "我们在售的相似商品（并非照片中的商品）",
        "picked": "是{title}。",
        "photo": "（照片）",
        "agent": "客服",
        "no_image": "无图片",
    },
}

_ACTION_COLOURS = {"answer": "#1b7f3b", "clarify": "#b26a00", "escalate": "#c62828"}
_CARD_STYLE = (
    "display:inline-flex;flex-direction:column;width:200px;margin:0 10px 10px 0;padding:8px;"
    "border:1px solid #d0d7de;border-radius:8px;vertical-align:top;background:#fff;color:#222"
)
_IMAGE_STYLE = "width:100%;height:150px;object-fit:contain;border-radius:4px;background:#f6f8fa"


def label(language: str, key: str, **values: Any) -> str:
    """A UI label in the reply's language (English for anything but Chinese)."""
    table = LABELS["zh" if language == "zh" else "en"]
    return table[key].format(**values)


def format_price(price: float | None, currency: str | None) -> str | None:
    if price is None:
        return None
    return f"{price:.2f} {currency or ''}".strip()


@lru_cache(maxsize=512)
def _thumbnail_data_url(path: str, modified_ns: int) -> str | None:
    try:
        with Image.open(path) as image:
            image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, format="JPEG", quality=85)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def image_data_url(path: str | Path | None) -> str | None:
    """A small JPEG thumbnail of a catalogue image as a data URL, or None if it is unreadable.

    Data URLs keep catalogue images (which may live anywhere the catalogue pointed to) out of the
    web server's file routes; thumbnails are cached until the file changes.
    """
    if not path:
        return None
    file = Path(path)
    try:
        modified = file.stat().st_mtime_ns
    except OSError:
        return None
    if not file.is_file():
        return None
    return _thumbnail_data_url(str(file), modified)


def product_card_html(card: ProductCard, language: str = "en") -> str:
    """One card: image, title, price, stock and, for photo matches, the match confidence."""
    e = html.escape
    src = image_data_url(card.image)
    picture = (
        f'<img src="{src}" alt="{e(card.name(language))}" style="{_IMAGE_STYLE}">'
        if src
        else f'<div style="{_IMAGE_STYLE};display:flex;align-items:center;'
        f'justify-content:center;color:#888">{e(label(language, "no_image"))}</div>'
    )
    price = format_price(card.price, card.currency) or label(language, "no_price")
    if card.stock is None:
        stock, colour = label(language, "stock_unknown"), "#555"
    elif card.stock > 0:
        stock, colour = label(language, "in_stock", n=card.stock), "#1b7f3b"
    else:
        stock, colour = label(language, "out_of_stock"), "#c62828"
    confidence = (
        f'<div class="ss-card-confidence" style="font-size:12px;color:#666">'
        f"{e(label(language, 'match', p=round(100 * card.confidence)))}</div>"
        if card.confidence > 0
        else ""
    )
    return (
        f'<div class="ss-card" data-product-id="{e(card.product_id)}" style="{_CARD_STYLE}">'
        f"{picture}"
        f'<div class="ss-card-title" style="font-weight:600;margin-top:6px">{e(card.name(language))}</div>'
        f'<div class="ss-card-price" style="font-size:18px;margin-top:2px">{e(price)}</div>'
        f'<div class="ss-card-stock" style="font-size:13px;color:{colour}">{e(stock)}</div>'
        f"{confidence}</div>"
    )


def product_cards_html(
    cards: Sequence[ProductCard], language: str = "en", question: bool = False
) -> str:
    """The cards of one turn; `question` or candidate cards head them with "is it one of
    these?", similar items with what they are."""
    if not cards:
        return ""
    roles = {card.role for card in cards}
    heading = label(
        language,
        "similar"
        if "similar" in roles
        else "one_of_these"
        if question or "candidate" in roles
        else "products",
    )
    body = "".join(product_card_html(card, language) for card in cards)
    return (
        f'<div class="ss-cards" lang="{html.escape(language)}">'
        f'<div style="font-weight:600;margin:4px 0 8px">{html.escape(heading)}</div>'
        f"<div>{body}</div></div>"
    )


def citations_html(citations: Sequence[Citation], language: str = "en") -> str:
    """Numbered sources, each a collapsed <details> whose body is the cited passage."""
    if not citations:
        return ""
    items = "".join(
        f'<details class="ss-source" data-source-id="{html.escape(c.source_id)}" '
        f'style="margin:2px 0">'
        f"<summary>[{c.number}] {html.escape(c.title)}</summary>"
        f'<div style="font-size:90%;padding:4px 8px;border-left:3px solid #d0d7de;'
        f'white-space:pre-wrap">{html.escape(c.snippet)}</div></details>'
        for c in citations
    )
    return (
        f'<div class="ss-sources"><div style="font-size:90%;font-weight:600;margin-top:6px">'
        f"{html.escape(label(language, 'sources'))}</div>{items}</div>"
    )


def reply_message(reply: str, citations: Sequence[Citation], language: str = "en") -> str:
    """The assistant's chat bubble: the reply (its [n] markers intact) and its sources.

    The reply is escaped as HTML so a product title or an echoed message can never inject markup
    into the page; Markdown emphasis in it is harmless.
    """
    text = html.escape(reply).replace("\n", "<br>")
    return f'<div class="ss-reply">{text}</div>{citations_html(citations, language)}'


def decision_html(
    decision: Decision | None,
    intent: str | None,
    intent_confidence: float | None,
    sentiment: str | None,
    sentiment_score: float | None,
    summary: str = "",
) -> str:
    """The agent's view of a turn: what the assistant decided, and why."""
    e = html.escape
    if decision is None:
        return "<div>No turn selected.</div>"
    colour = _ACTION_COLOURS.get(decision.action, "#555")
    badge = (
        f'<span class="ss-action" style="background:{colour};color:#fff;border-radius:4px;'
        f'padding:1px 8px;font-weight:600">{e(decision.action)}</span>'
    )
    facts = []
    if intent:
        facts.append(f"intent <b>{e(intent)}</b> ({intent_confidence or 0:.2f})")
    if sentiment:
        facts.append(f"sentiment <b>{e(sentiment)}</b> ({sentiment_score or 0:+.2f})")
    facts.append(f"escalation score {decision.escalation_score:.2f}")
    reasons = "".join(f"<li>{e(reason)}</li>" for reason in decision.reasons)
    reasons_html = (
        f'<div style="margin-top:6px">Reasons:</div><ul class="ss-reasons">{reasons}</ul>'
        if reasons
        else ""
    )
    summary_html = (
        f'<div style="margin-top:6px;color:#444"><i>{e(summary)}</i></div>' if summary else ""
    )
    return (
        f'<div class="ss-decision">{badge} <span style="margin-left:6px">'
        f"{' · '.join(facts)}</span>{reasons_html}{summary_html}</div>"
    )


# How the agent console names what a ticket still needs from the customer.
_SLOT_NAMES = {"order_reference": "order number", "photo": "photo", "product": "which item"}


def ticket_html(ticket: Ticket | None) -> str:
    if ticket is None:
        return ""
    e = html.escape
    rows = [
        ("type", ticket.ticket_type),
        ("product", ticket.product_title or ticket.product_id or "-"),
        ("order", ticket.order_reference or "-"),
        ("issue", ticket.issue),
        ("policy", ticket.policy_excerpt or ticket.policy_article_id or "-"),
        ("photo attached", "yes" if ticket.photo_attached else "no"),
    ]
    body = "".join(f"<tr><th style='text-align:left'>{k}</th><td>{e(v)}</td></tr>" for k, v in rows)
    missing = (
        f'<div class="ss-ticket-missing" style="color:#b26a00">still needed: '
        f"{e(', '.join(_SLOT_NAMES[slot] for slot in ticket.missing))}</div>"
        if ticket.missing
        else ""
    )
    return f'<div class="ss-ticket"><b>Prefilled ticket</b><table>{body}</table>{missing}</div>'


def suggestion_choices(suggestions: Iterable[SuggestedReply]) -> list[tuple[str, str]]:
    """(label, value) pairs for the suggested-reply picker: the label shows rank and citations."""
    choices = []
    for suggestion in sorted(suggestions, key=lambda s: s.rank):
        cited = "".join(f"[{n}]" for n in suggestion.citations)
        prefix = f"{suggestion.rank}. " + (f"{cited} " if cited else "")
        choices.append((prefix + suggestion.text, suggestion.text))
    return choices


def attributions_html(parts: Sequence[tuple[str, str]]) -> str:
    """SHAP highlights, one block per explained decision: (title, highlighted HTML).

    The highlighted HTML is produced by `explain` from escaped tokens; titles are escaped here.
    """
    if not parts:
        return ""
    blocks = "".join(
        f'<div class="ss-attribution" style="margin-bottom:10px">'
        f'<div style="font-weight:600">{html.escape(title)}</div>{body}</div>'
        for title, body in parts
    )
    return f'<div class="ss-attributions">{blocks}</div>'


def kb_stats_html(stats: Any) -> str:
    """The knowledge base's counts (a `knowledge_base.admin.KbStats`)."""
    e = html.escape
    categories = ", ".join(f"{e(k)} ({v})" for k, v in stats.categories.items()) or "-"
    languages = ", ".join(f"{e(k)} ({v})" for k, v in stats.languages.items()) or "-"
    return (
        f'<div class="ss-kb-stats"><div><b>{stats.products}</b> products, '
        f"<b>{stats.images}</b> product images, <b>{stats.articles}</b> articles in "
        f"<b>{stats.article_chunks}</b> chunks</div>"
        f"<div>Categories: {categories}</div><div>Article languages: {languages}</div>"
        f'<div style="color:#666;font-size:90%">Store: {e(stats.location)}</div></div>'
    )


# What a search hit shares with a product card (hits are ProductMatch models).
_CARD_FIELDS = {"product_id", "title", "category", "price", "currency", "stock"}


def search_results_html(products: Sequence[Any], articles: Sequence[Any]) -> str:
    """Search hits: product matches as cards (with their score) and article passages."""
    e = html.escape
    if not products and not articles:
        return "<div>No results: is the knowledge base empty?</div>"
    parts = []
    if articles:
        rows = "".join(
            f"<li><b>{e(a.title)}</b> <span style='color:#666'>({e(a.article_id)}, score "
            f"{a.score:.3f})</span><div style='font-size:90%'>"
            f"{e(' '.join(a.text.split())[:300])}</div></li>"
            for a in articles
        )
        parts.append(f"<div><b>Articles</b></div><ol>{rows}</ol>")
    if products:
        cards = [
            ProductCard(
                **p.model_dump(include=_CARD_FIELDS),
                image=_match_image(p),
            )
            for p in products
        ]
        scored = "".join(
            f'<div style="display:inline-block">{product_card_html(card)}'
            f'<div style="font-size:12px;color:#666;margin:-6px 0 8px">score {p.score:.3f} · '
            f"{e(p.product_id)}</div></div>"
            for card, p in zip(cards, products, strict=True)
        )
        parts.append(f"<div><b>Products</b></div><div>{scored}</div>")
    return f'<div class="ss-search-results">{"".join(parts)}</div>'


def _match_image(match: Any) -> str | None:
    """The image that matched a photo search, else the product's first catalogue image."""
    from retrieval.search.types import parse_json_list

    if getattr(match, "matched_image", None):
        return str(match.matched_image)
    images = parse_json_list(getattr(match, "metadata", {}).get("images"))
    return images[0] if images else None


def ingest_report_html(report: Any, kept_in: Sequence[str] = ()) -> str:
    """What an upload added (an `IngestReport`), with every rejection and its reason;
    `kept_in` names the folders where uploaded images stay (they are served from there)."""
    e = html.escape
    rejections = "".join(f"<li>{e(str(r))}</li>" for r in report.rejections)
    kept = f"; images kept in {e(', '.join(kept_in))}" if kept_in else ""
    return (
        f'<div class="ss-ingest-report"><div>Ingested in {report.seconds:.1f} s{kept}:</div><ul>'
        f"<li>products: {report.products_embedded} new, {report.products_updated} updated, "
        f"{report.products_unchanged} unchanged</li>"
        f"<li>product images: {report.images_embedded} new, {report.images_updated} updated, "
        f"{report.images_unchanged} unchanged</li>"
        f"<li>articles: {report.articles_embedded} new, {report.articles_unchanged} unchanged "
        f"({report.chunks_embedded} chunks embedded)</li></ul>"
        + (
            f"<div style='color:#b26a00'>{len(report.rejections)} input(s) rejected:</div>"
            f"<ul class='ss-rejections'>{rejections}</ul>"
            if rejections
            else ""
        )
        + "</div>"
    )
