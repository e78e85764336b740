"""The default responder: grounded, deterministic replies composed only from retrieved sources.

It states a price, stock level, delivery time or policy term only by quoting a catalogue field or
a sentence of a cited article, so it cannot invent one. When nothing relevant was retrieved it
says so and offers a human.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from assistant.perception.intents import Intent
from assistant.turn.schemas import (
    CardRole,
    Citation,
    Decision,
    ProductCard,
    Slot,
    SuggestedReply,
    Ticket,
    TicketType,
)
from retrieval.search.types import ArticleMatch, parse_json_list

_SENTENCE = re.compile(r"(?<=[.!?。！？])\s+|(?<=[。！？])|\n+")
_WORD = re.compile(r"[a-z0-9]+|[\u4e00-\u9fff]", re.IGNORECASE)
_MARKDOWN = re.compile(r"^[#>*\-\s|]+|[*_`]+")

COLOURS = {
    "red": "red",
    "blue": "blue",
    "navy": "navy",
    "black": "black",
    "white": "white",
    "green": "green",
    "yellow": "yellow",
    "pink": "pink",
    "grey": "grey",
    "gray": "grey",
    "brown": "brown",
    "beige": "beige",
    "purple": "purple",
    "orange": "orange",
    "silver": "silver",
    "gold": "gold",
    "红": "red",
    "蓝": "blue",
    "藏青": "navy",
    "黑": "black",
    "白": "white",
    "绿": "green",
    "黄": "yellow",
    "粉": "pink",
    "灰": "grey",
    "棕": "brown",
    "咖啡": "brown",
    "米": "beige",
    "紫": "purple",
    "橙": "orange",
    "银": "silver",
    "金": "gold",
}
_ASKS = {
    "price": re.compile(
        r"how much|price|cost|expensive|cheap|多少钱|价格|价钱|几块|贵", re.IGNORECASE
    ),
    "stock": re.compile(
        r"in stock|available|availability|sold out|have any left|有货|库存|现货|还有吗|卖完",
        re.IGNORECASE,
    ),
    "colour": re.compile(
        r"colou?r|in (?:"
        + "|".join(k for k in COLOURS if k.isascii())
        + r")\b|颜色|什么色|有.{0,2}色",
        re.IGNORECASE,
    ),
    "size": re.compile(r"\bsizes?\b|fit|尺码|尺寸|大小|码数", re.IGNORECASE),
    "material": re.compile(r"material|made of|fabric|cotton|leather|材质|面料|材料", re.IGNORECASE),
}
# Requests an agent moves forward by opening a return or replacement case.
_CASE_INTENTS = frozenset(
    {Intent.RETURN_REFUND, Intent.DAMAGED_WRONG_ITEM, Intent.EXCHANGE, Intent.WARRANTY}
)
_TICKET_NAMES: dict[TicketType, tuple[str, str]] = {
    "damaged_item": ("damaged-item report", "破损商品报告"),
    "wrong_item": ("wrong-item report", "发错货报告"),
    "return": ("return request", "退货申请"),
    "exchange": ("exchange request", "换货申请"),
    "warranty": ("warranty claim", "保修申请"),
}
_SLOT_ASKS: dict[Slot, tuple[str, str]] = {
    "order_reference": ("your order number", "订单号"),
    "photo": ("a photo that shows the problem", "一张能看清问题的照片"),
    "product": (
        "which item it is (its name, or pick it from the photos)",
        "是哪件商品（商品名称，或从图片中选择）",
    ),
}


@dataclass
class ProductFacts:
    """Catalogue fields of one product, as stored in the knowledge base."""

    product_id: str
    title: str
    title_zh: str = ""
    category: str = ""
    price: float | None = None
    currency: str = "USD"
    stock: int | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    description: str = ""
    image: str | None = None

    @classmethod
    def from_metadata(cls, product_id: str, meta: dict[str, Any]) -> ProductFacts:
        try:
            attributes = json.loads(meta.get("attributes") or "{}")
        except json.JSONDecodeError:
            attributes = {}
        images = parse_json_list(meta.get("images"))
        return cls(
            product_id=product_id,
            title=str(meta.get("title", product_id)),
            title_zh=str(meta.get("title_zh") or ""),
            category=str(meta.get("category") or ""),
            price=meta.get("price"),
            currency=str(meta.get("currency") or "USD"),
            stock=meta.get("stock"),
            attributes={str(k): str(v) for k, v in attributes.items()},
            description=str(meta.get("description") or ""),
            image=images[0] if images else None,
        )

    def name(self, language: str) -> str:
        return self.title_zh if language == "zh" and self.title_zh else self.title

    def card(
        self, confidence: float = 0.0, reason: str = "", role: CardRole = "product"
    ) -> ProductCard:
        return ProductCard(
            product_id=self.product_id,
            title=self.title,
            title_zh=self.title_zh,
            category=self.category,
            price=self.price,
            currency=self.currency,
            stock=self.stock,
            image=self.image,
            confidence=round(confidence, 4),
            reason=reason,
            role=role,
        )


def product_asks(text: str) -> list[str]:
    """Which product facts the message asks about (price, stock, colour, size, material)."""
    return [name for name, pattern in _ASKS.items() if pattern.search(text)]


def requested_colour(text: str) -> str | None:
    lowered = text.lower()
    for word, colour in COLOURS.items():
        if (word.isascii() and re.search(rf"\b{word}\b", lowered)) or (
            not word.isascii() and word in text
        ):
            return colour
    return None


@dataclass
class Listing:
    """A product search's answer: one sentence saying what was understood and found, then the
    products, numbered from `first` (the second page starts at 6)."""

    lead: str
    products: list[ProductFacts] = field(default_factory=list)
    first: int = 1


@dataclass
class ResponderInput:
    language: str
    intent: Intent
    question: str
    decision: Decision
    upset: bool = False
    product: ProductFacts | None = None
    product_confidence: float = 0.0
    variants: list[ProductFacts] = field(default_factory=list)
    candidates: list[ProductFacts] = field(default_factory=list)
    articles: list[ArticleMatch] = field(default_factory=list)
    ticket: Ticket | None = None
    # The product facts asked for; None: read them from `question`. A confirmed pick answers
    # the question asked with the photo, which its own message ("the second one") does not repeat.
    asks: list[str] | None = None
    # How the customer reached `product`: "match", the photo showed it or they confirmed it was
    # the one; "similar", they picked one of the items offered instead. Either way the reply
    # names it with its key facts first.
    named_as: Literal["match", "similar"] | None = None
    # The items offered because the photographed product is not sold here.
    similar: list[ProductFacts] = field(default_factory=list)
    listing: Listing | None = None

    def product_asks(self) -> list[str]:
        return self.asks if self.asks is not None else product_asks(self.question)


@dataclass
class Reply:
    text: str
    citations: list[Citation]
    suggestions: list[SuggestedReply]


class _Citations:
    """Numbers sources in order of first use."""

    def __init__(self) -> None:
        self.items: list[Citation] = []

    def product(self, facts: ProductFacts) -> int:
        snippet = _product_snippet(facts)
        return self._add(facts.product_id, "product", facts.title, snippet, 1.0)

    def article(self, match: ArticleMatch, snippet: str) -> int:
        return self._add(match.article_id, "article", match.title, snippet, match.score)

    def _add(self, source_id: str, kind: str, title: str, snippet: str, score: float) -> int:
        for item in self.items:
            if item.source_id == source_id:
                return item.number
        number = len(self.items) + 1
        self.items.append(
            Citation(
                number=number,
                source_id=source_id,
                kind=kind,
                title=title,
                snippet=snippet[:400],
                score=round(score, 4),
            )
        )
        return number


def _product_snippet(facts: ProductFacts) -> str:
    parts = [facts.title]
    if facts.price is not None:
        parts.append(f"price {facts.price:.2f} {facts.currency}")
    if facts.stock is not None:
        parts.append(f"stock {facts.stock}")
    parts += [f"{k}: {v}" for k, v in facts.attributes.items()]
    return "; ".join(parts)


def compose(data: ResponderInput) -> Reply:
    """The customer-facing reply plus three ranked suggestions for an agent."""
    zh = data.language == "zh"
    cites = _Citations()
    body = _body(data, cites, zh)
    opener = _opener(data, zh)
    text = f"{opener}{body}".strip()
    suggestions = _suggestions(data, text, cites, zh)
    return Reply(text=text, citations=cites.items, suggestions=suggestions)


def _opener(data: ResponderInput, zh: bool) -> str:
    if data.decision.action == "escalate":
        return (
            "非常抱歉给您带来不便，我正在为您转接人工客服，他们会优先处理。"
            if zh
            else (
                "I'm sorry about this. I'm handing your conversation to a colleague now, with priority. "
            )
        )
    if data.upset:
        return "非常抱歉给您带来不便。" if zh else "I'm sorry about the trouble. "
    return ""


def _body(data: ResponderInput, cites: _Citations, zh: bool) -> str:
    action = data.decision.action
    if action == "answer" and data.listing is not None:
        return _listing(data.listing, cites, zh)
    if action == "answer" and data.similar:
        return _not_sold_here(data.similar, zh)
    if action == "clarify" and data.candidates:
        names = _numbered(data.candidates, zh)
        question = (
            f"我不太确定照片里是哪件商品，是以下其中之一吗？{names}"
            if zh
            else (
                f"I'm not completely sure which product is in your photo. Is it one of these? {names}"
            )
        )
        if data.ticket is None:
            return f"{question}{'。' if zh else '. '}{_pick_prompt(data.product_asks(), zh)}"
        # The carousel already asks which item; the ticket still quotes its policy.
        rest = [_article_answer(data, cites, zh), ticket_sentence(data.ticket, zh, {"product"})]
        return ("" if zh else " ").join(p for p in [f"{question}{'。' if zh else '.'}", *rest] if p)
    if action == "clarify" and data.ticket is None:
        return (
            "为了准确回答，请问您指的是哪件商品或哪个订单？"
            if zh
            else ("To answer precisely: which product or order do you mean?")
        )
    parts: list[str] = []
    if data.product is not None:
        parts.append(_product_answer(data, cites, zh))
    if data.articles:
        parts.append(_article_answer(data, cites, zh))
    if data.ticket is not None and action != "escalate":
        parts.append(ticket_sentence(data.ticket, zh))
    parts = [p for p in parts if p]
    if parts:
        return " ".join(parts) if not zh else "".join(parts)
    if action == "escalate":
        return ""
    return (
        "抱歉，我在我们的帮助中心里没有找到这个问题的答案，不想给您不准确的信息。需要我为您转接人工客服吗？"
        if zh
        else (
            "I'm sorry, I couldn't find the answer to that in our help centre, and I don't want to guess. "
            "Would you like me to connect you with a colleague?"
        )
    )


def _product_answer(data: ResponderInput, cites: _Citations, zh: bool) -> str:
    product = data.product
    assert product is not None
    n = cites.product(product)
    asks = data.product_asks() or (["identify"] if data.intent == Intent.FIND_BY_PHOTO else [])
    name = product.name("zh" if zh else "en")
    sentences: list[str] = []
    if data.named_as is not None:
        sentences.append(_named_facts(product, data.named_as, asks, n, zh))
        asks = [a for a in asks if a not in ("identify", "price", "stock")]
    elif "identify" in asks or not asks:
        sentences.append(
            f"这看起来是「{name}」[{n}]。" if zh else f"This looks like the {name} [{n}]."
        )
    if "price" in asks or ("identify" in asks and product.price is not None):
        if product.price is not None:
            sentences.append(
                f"售价为 {product.price:.2f} {product.currency} [{n}]。"
                if zh
                else f"It costs {product.price:.2f} {product.currency} [{n}]."
            )
        else:
            sentences.append(
                "目录中没有它的价格信息。" if zh else "Its price is not listed in our catalogue."
            )
    if "stock" in asks or "identify" in asks:
        sentences.append(_stock_sentence(product, n, zh))
    if "colour" in asks:
        sentences.append(_colour_sentence(data, product, n, cites, zh))
    for ask, key in (("size", "sizes"), ("material", "material")):
        if ask in asks:
            value = product.attributes.get(key) or product.attributes.get(ask)
            if value:
                sentences.append(
                    f"{'尺码' if ask == 'size' else '材质'}：{value} [{n}]。"
                    if zh
                    else f"{'Sizes' if ask == 'size' else 'Material'}: {value} [{n}]."
                )
            else:
                sentences.append(
                    "目录中没有这项信息。" if zh else f"Our catalogue doesn't list its {ask}."
                )
    return ("" if zh else " ").join(s for s in sentences if s)


def _listing(listing: Listing, cites: _Citations, zh: bool) -> str:
    """The lead sentence, then "1. Title, 19.99 USD [1]; 2. …" for front ends without cards."""
    items = []
    for i, product in enumerate(listing.products, listing.first):
        n = cites.product(product)
        price = f"{product.price:.2f} {product.currency}" if product.price is not None else ""
        facts = [price] if price else []
        facts += [("缺货" if zh else "out of stock")] if product.stock == 0 else []
        sep = "，" if zh else ", "
        items.append(
            f"{i}. {product.name('zh' if zh else 'en')}{sep if facts else ''}{sep.join(facts)} [{n}]"
        )
    if not items:
        return listing.lead
    return f"{listing.lead}{'' if zh else ' '}{('；' if zh else '; ').join(items)}"


def _named_facts(
    product: ProductFacts, named_as: Literal["match", "similar"], asks: list[str], n: int, zh: bool
) -> str:
    """ "That is the X: 79.00 USD, 44 in stock [1]." — stock first when only stock was asked."""
    if zh:
        price = (
            f"售价 {product.price:.2f} {product.currency}"
            if product.price is not None
            else "价格未注明"
        )
        stock = (
            "库存未注明"
            if product.stock is None
            else ("目前缺货" if product.stock == 0 else f"目前有货（库存 {product.stock} 件）")
        )
    else:
        price = (
            f"{product.price:.2f} {product.currency}"
            if product.price is not None
            else "price not listed"
        )
        stock = (
            "stock not listed"
            if product.stock is None
            else ("out of stock" if product.stock == 0 else f"{product.stock} in stock")
        )
    facts = [stock, price] if "stock" in asks and "price" not in asks else [price, stock]
    name = product.name("zh" if zh else "en")
    if zh:
        lead = f"这是「{name}」" if named_as == "match" else f"「{name}」"
        # As the other Chinese replies: a space before the marker only after Latin text.
        gap = " " if facts[-1][-1].isascii() else ""
        return f"{lead}：{'，'.join(facts)}{gap}[{n}]。"
    lead = f"That is the {name}" if named_as == "match" else f"The {name}"
    return f"{lead}: {', '.join(facts)} [{n}]."


def _numbered(products: list[ProductFacts], zh: bool) -> str:
    """ "1. A; 2. B" in the customer's language, names only: no price or stock of a product
    the customer has not confirmed."""
    if zh:
        return "；".join(f"{i}. {p.name('zh')}" for i, p in enumerate(products, 1))
    return "; ".join(f"{i}. {p.title}" for i, p in enumerate(products, 1))


def _pick_prompt(asks: list[str], zh: bool) -> str:
    """How to answer the "which one?" question, and what the answer will bring."""
    price, stock = "price" in asks, "stock" in asks
    if zh:
        what = (
            "价格和库存"
            if price and stock
            else "价格"
            if price
            else "库存"
            if stock
            else "详细信息"
        )
        return f"请回复序号或商品名称，我再告诉您它的{what}。"
    what = (
        "its price and stock"
        if price and stock
        else "its price"
        if price
        else "whether it is in stock"
        if stock
        else "its details"
    )
    return f"Reply with its number or name and I'll tell you {what}."


def _not_sold_here(similar: list[ProductFacts], zh: bool) -> str:
    """The photographed product is not in the catalogue: say so, offer the closest items as
    what they are, and a person."""
    names = _numbered(similar, zh)
    if zh:
        return (
            f"抱歉，我们店里没有找到照片中的这件商品。以下是我们在售的相似商品（并非照片中的商品）：{names}。"
            "需要了解其中某一件吗？或者我为您转接人工客服？"
        )
    return (
        "I'm sorry, I couldn't find this product in our shop. Similar items we do sell (not the "
        f"one in your photo): {names}. Would you like one of these, or shall I connect you with "
        "a colleague?"
    )


def _stock_sentence(product: ProductFacts, n: int, zh: bool) -> str:
    if product.stock is None:
        return "目录中没有库存信息。" if zh else "Its stock level is not listed."
    if product.stock == 0:
        return f"目前缺货 [{n}]。" if zh else f"It is currently out of stock [{n}]."
    return (
        f"目前有货（库存 {product.stock} 件）[{n}]。"
        if zh
        else f"It is in stock ({product.stock} available) [{n}]."
    )


def _colour_sentence(
    data: ResponderInput, product: ProductFacts, n: int, cites: _Citations, zh: bool
) -> str:
    wanted = requested_colour(data.question)
    own = product.attributes.get("color") or product.attributes.get("colour") or ""
    if wanted and wanted in own.lower():
        return f"是的，这款就是{own}的 [{n}]。" if zh else f"Yes, this one is {own} [{n}]."
    matches = [
        v for v in data.variants if wanted and wanted in (v.attributes.get("color", "")).lower()
    ]
    if matches:
        variant = matches[0]
        m = cites.product(variant)
        price = f"{variant.price:.2f} {variant.currency}" if variant.price is not None else ""
        return (
            f"有的：「{variant.name('zh')}」是{variant.attributes.get('color', '')}的，售价 {price} [{m}]。"
            if zh
            else f"Yes: the {variant.title} comes in {variant.attributes.get('color', '')}{', ' + price if price else ''} [{m}]."
        )
    if wanted:
        return (
            f"很抱歉，我们的目录里没有这款的{wanted}版本；它的颜色是{own or '未注明'} [{n}]。"
            if zh
            else f"Sorry, I can't find it in {wanted} in our catalogue; this one is {own or 'not listed'} [{n}]."
        )
    return f"颜色：{own} [{n}]。" if zh and own else (f"It comes in {own} [{n}]." if own else "")


def ticket_sentence(ticket: Ticket, zh: bool, asked: set[Slot] | None = None) -> str:
    """What the ticket still needs, or that it is complete; `asked` slots are being asked for
    elsewhere in the reply."""
    name = _TICKET_NAMES[ticket.ticket_type][1 if zh else 0]
    ref = ticket.order_reference
    if not ticket.missing:
        if zh:
            photo = "，已附照片" if ticket.photo_attached else ""
            return (
                f"您的{name}已填写完整：订单号 {ref}，商品「{ticket.product_title}」{photo}。"
                "客服会尽快为您确认。"
            )
        photo = ", photo attached" if ticket.photo_attached else ""
        return (
            f"Your {name} is complete: order {ref}, {ticket.product_title}{photo}. "
            "A colleague will confirm it shortly."
        )
    needed = [
        _SLOT_ASKS[slot][1 if zh else 0] for slot in ticket.missing if slot not in (asked or set())
    ]
    if zh:
        noted = f"已记录订单号 {ref}。" if ref else ""
        return f"{noted}为完成您的{name}，请提供：{'、'.join(needed)}。" if needed else noted
    noted = f"I've noted order {ref}. " if ref else ""
    if not needed:
        return noted.strip()
    listed = needed[0] if len(needed) == 1 else f"{', '.join(needed[:-1])} and {needed[-1]}"
    return f"{noted}To complete your {name}, please send {listed}."


def _article_answer(data: ResponderInput, cites: _Citations, zh: bool) -> str:
    """Quote the sentences of the best articles that overlap the question most."""
    quoted: list[str] = []
    for match in data.articles[:2]:
        sentences = best_sentences(match.text, data.question, limit=2)
        if not sentences:
            continue
        n = cites.article(match, " ".join(sentences))
        joiner = "" if match.language == "zh" else " "
        quoted.append(f"{joiner.join(sentences)} [{n}]")
        if (
            len(quoted) == 1
            and match.score >= 0.0
            and len(data.articles) > 1
            and data.articles[1].score < match.score * 0.9
        ):
            break
    if not quoted:
        return ""
    lead = "根据我们的政策：" if zh else "According to our policy: "
    return lead + ("" if zh else " ").join(quoted)


def best_sentences(text: str, question: str, limit: int = 2) -> list[str]:
    """The `limit` sentences of `text` sharing most words with `question`, in reading order.

    Headings are skipped (they restate the title), and a sentence with a concrete figure wins a
    tie, since customers ask about periods, amounts and fees.
    """
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    sentences = [_MARKDOWN.sub("", s).strip() for s in _SENTENCE.split("\n".join(lines))]
    sentences = [s for s in sentences if len(s) > 12 and not s.startswith("---")]
    if not sentences:
        return []
    asked = set(_WORD.findall(question.lower()))
    scored = [
        (len(asked & set(_WORD.findall(s.lower()))) + 0.5 * bool(re.search(r"\d", s)), -i, s)
        for i, s in enumerate(sentences)
    ]
    top = sorted(scored, reverse=True)[:limit]
    return [s for _, _, s in sorted(top, key=lambda item: -item[1])]


def _suggestions(
    data: ResponderInput, reply: str, cites: _Citations, zh: bool
) -> list[SuggestedReply]:
    """Three ranked drafts for an agent: the grounded reply, a warmer variant, and a next step."""
    numbers = [c.number for c in cites.items]
    warmer = (
        (("感谢您的耐心！" if zh else "Thanks for your patience! ") + reply)
        if not data.upset
        else reply
    )
    if data.decision.action == "escalate":
        next_step = (
            "您好，我是人工客服，已经看到您的问题，我马上为您处理。"
            if zh
            else "Hi, I'm a member of the support team. I've read your messages and I'm taking care of this now."
        )
        rationale = "take over: " + "; ".join(data.decision.reasons)
    elif data.intent in _CASE_INTENTS:
        # The case in hand keeps its kind: an exchange is never offered back as a return.
        kind: TicketType = (
            data.ticket.ticket_type
            if data.ticket is not None
            else "exchange"
            if data.intent == Intent.EXCHANGE
            else "return"
        )
        name = _TICKET_NAMES[kind][1 if zh else 0]
        article = "an" if name[0] in "aeiou" else "a"
        next_step = (
            f"我可以马上为您创建{name}，请提供订单号和商品照片。"
            if zh
            else f"I can open {article} {name} for you right away: could you share your order number and a photo of the item?"
        )
        rationale = "move the case forward with the details a ticket needs"
    else:
        next_step = (
            "还有什么可以帮您的吗？" if zh else "Is there anything else I can help you with?"
        )
        rationale = "close the loop"
    return [
        SuggestedReply(
            rank=1,
            text=reply,
            citations=numbers,
            rationale="grounded reply built from the cited sources",
        ),
        SuggestedReply(rank=2, text=warmer, citations=numbers, rationale="same facts, warmer tone"),
        SuggestedReply(rank=3, text=next_step, citations=[], rationale=rationale),
    ]
