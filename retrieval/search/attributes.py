"""Product attributes in a shopper's words: "black t-shirts for men under 50" → filters.

The vocabulary comes from the store itself (its categories, `kind`/`sub_category` values,
colours, genders, brands), so the parser works for any shop; a small built-in table adds the
words shoppers use that catalogues do not ("tee", "sneakers", "T恤", "黑色"). Everything here is
a pure function of the text and the catalogue's metadata: no model, no store.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from retrieval.search.hybrid import SearchFilters
from retrieval.search.types import ProductMatch

Relaxable = Literal["size", "in_stock", "price", "colour", "gender", "brand"]
# Least important first: the constraint dropped first when nothing matches them all.
RELAX_ORDER: tuple[Relaxable, ...] = ("size", "in_stock", "price", "colour", "gender", "brand")

# Attribute keys a catalogue uses for each facet (the first one present wins).
TYPE_FIELDS = ("kind", "sub_category", "type", "product_type")
COLOUR_FIELDS = ("colour", "color")
GENDER_FIELDS = ("gender",)
BRAND_FIELDS = ("brand", "vendor")
SIZE_FIELDS = ("sizes", "size")

# Shopper words → catalogue words (singular, lower case, hyphens removed). A query word is
# looked up here first, then matched against the store's own values.
TYPE_SYNONYMS: dict[str, tuple[str, ...]] = {
    "tee": ("tshirt",),
    "tshirt": ("tshirt",),
    "sneaker": ("sneaker", "sport shoe", "casual shoe"),
    "trainer": ("sneaker", "sport shoe", "casual shoe"),
    "scarf": ("scarf", "scarve"),
    "pant": ("trouser", "track pant", "pant"),
    "jean": ("jean",),
    "denim": ("jean",),
    "hoody": ("hoodie", "sweatshirt"),
    "hoodie": ("hoodie", "sweatshirt"),
    "jumper": ("sweater",),
    "pullover": ("sweater",),
    "purse": ("handbag", "wallet"),
    "wristwatch": ("watch",),
    "flipflop": ("flip flop",),
    "slipper": ("flip flop",),
    "trunk": ("trunk",),
    "sock": ("sock",),
    "heel": ("heel",),
    "sandal": ("sandal", "sport sandal"),
    "hat": ("hat", "cap"),
    "cap": ("cap", "hat"),
    "shade": ("sunglass",),
    "sunglass": ("sunglass",),
    "rucksack": ("backpack", "rucksack"),
    "backpack": ("backpack", "rucksack"),
    "top": ("top",),
    "dress": ("dress",),
}
# Chinese words, longest first when scanning; each becomes the English words it stands for.
ZH_TYPES: dict[str, str] = {
    "T恤衫": "tshirt",
    "T恤": "tshirt",
    "t恤": "tshirt",
    "体恤": "tshirt",
    "短袖": "tshirt",
    "衬衫": "shirt",
    "衬衣": "shirt",
    "运动鞋": "sports shoe",
    "休闲鞋": "casual shoe",
    "皮鞋": "formal shoe",
    "高跟鞋": "heel",
    "凉鞋": "sandal",
    "拖鞋": "flip flop",
    "人字拖": "flip flop",
    "鞋子": "shoe",
    "鞋": "shoe",
    "牛仔裤": "jean",
    "运动裤": "track pant",
    "短裤": "short",
    "裤子": "trouser",
    "长裤": "trouser",
    "连衣裙": "dress",
    "裙子": "dress",
    "半身裙": "skirt",
    "短裙": "skirt",
    "手表": "watch",
    "腕表": "watch",
    "双肩包": "backpack",
    "背包": "backpack",
    "手提包": "handbag",
    "女包": "handbag",
    "钱包": "wallet",
    "包包": "bag",
    "挎包": "bag",
    "书包": "backpack",
    "帽子": "cap",
    "袜子": "sock",
    "皮带": "belt",
    "腰带": "belt",
    "夹克": "jacket",
    "外套": "jacket",
    "卫衣": "sweatshirt",
    "毛衣": "sweater",
    "领带": "tie",
    "围巾": "scarf",
    "太阳镜": "sunglass",
    "墨镜": "sunglass",
    "香水": "perfume",
    "口红": "lipstick",
    "耳机": "headphone",
    "手机": "smartphone",
    "杯子": "mug",
    "马克杯": "mug",
}
# Type words as a customer reads them back, for the sentence that says what was understood.
TYPE_NAMES: dict[str, tuple[str, str]] = {
    "tshirt": ("t-shirts", "T恤"),
    "shirt": ("shirts", "衬衫"),
    "shoe": ("shoes", "鞋"),
    "sport shoe": ("sports shoes", "运动鞋"),
    "casual shoe": ("casual shoes", "休闲鞋"),
    "formal shoe": ("formal shoes", "皮鞋"),
    "sneaker": ("sneakers", "运动鞋"),
    "jean": ("jeans", "牛仔裤"),
    "trouser": ("trousers", "裤子"),
    "pant": ("trousers", "裤子"),
    "short": ("shorts", "短裤"),
    "dress": ("dresses", "连衣裙"),
    "skirt": ("skirts", "半身裙"),
    "watch": ("watches", "手表"),
    "bag": ("bags", "包"),
    "backpack": ("backpacks", "背包"),
    "handbag": ("handbags", "手提包"),
    "wallet": ("wallets", "钱包"),
    "sandal": ("sandals", "凉鞋"),
    "heel": ("heels", "高跟鞋"),
    "jacket": ("jackets", "夹克"),
    "sweater": ("sweaters", "毛衣"),
    "sweatshirt": ("sweatshirts", "卫衣"),
    "cap": ("caps", "帽子"),
    "sock": ("socks", "袜子"),
    "belt": ("belts", "皮带"),
    "flip flop": ("flip flops", "拖鞋"),
    "sunglass": ("sunglasses", "太阳镜"),
    "top": ("tops", "上衣"),
}
COLOUR_SYNONYMS: dict[str, str] = {
    "gray": "grey",
    "navy": "navy",
    "golden": "gold",
    "maroon": "maroon",
    "burgundy": "burgundy",
}
ZH_COLOURS: dict[str, str] = {
    "藏青": "navy",
    "海军蓝": "navy",
    "深蓝": "navy blue",
    "咖啡": "brown",
    "卡其": "khaki",
    "酒红": "maroon",
    "米白": "cream",
    "粉红": "pink",
    "黑": "black",
    "白": "white",
    "红": "red",
    "蓝": "blue",
    "绿": "green",
    "黄": "yellow",
    "粉": "pink",
    "灰": "grey",
    "棕": "brown",
    "紫": "purple",
    "橙": "orange",
    "银": "silver",
    "金": "gold",
    "米": "beige",
}
# A single colour character names a colour only before 色/的 or a product word ("黑T恤"), so
# 金额 (amount), 银行 (bank) or 厘米 (cm) are not colours.
_ZH_COLOUR = re.compile(
    "("
    + "|".join(sorted(ZH_COLOURS, key=len, reverse=True))
    + ")(?=色|的|"
    + "|".join(re.escape(w) for w in sorted(ZH_TYPES, key=len, reverse=True))
    + ")"
)
# Gender words → the catalogue genders they accept (a unisex item suits men and women alike).
GENDER_WORDS: dict[str, tuple[str, ...]] = {
    "men": ("men", "unisex"),
    "man": ("men", "unisex"),
    "male": ("men", "unisex"),
    "gent": ("men", "unisex"),
    "gentleman": ("men", "unisex"),
    "gentlemen": ("men", "unisex"),
    "guy": ("men", "unisex"),
    "women": ("women", "unisex"),
    "woman": ("women", "unisex"),
    "lady": ("women", "unisex"),
    "female": ("women", "unisex"),
    "boy": ("boys",),
    "girl": ("girls",),
    "kid": ("boys", "girls"),
    "child": ("boys", "girls"),
    "children": ("boys", "girls"),
    "unisex": ("unisex",),
}
_ZH_GENDER: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile("男女通用|中性"), "unisex"),
    (re.compile("男孩|男童|男宝"), "boy"),
    (re.compile("女孩|女童|女宝"), "girl"),
    (re.compile("儿童|童装|小孩|孩子"), "kid"),
    (re.compile("男"), "men"),
    (re.compile("女"), "women"),
)
GENDER_NAMES: dict[str, tuple[str, str]] = {
    "men": ("for men", "男士"),
    "women": ("for women", "女士"),
    "boys": ("for boys", "男童"),
    "girls": ("for girls", "女童"),
    "unisex": ("unisex", "男女通用"),
    "kids": ("for kids", "儿童"),
}
# The gender word a customer used → the key of `GENDER_NAMES` it is read back as.
GENDER_KEYS: dict[str, str] = {
    "men": "men",
    "man": "men",
    "male": "men",
    "gent": "men",
    "gentleman": "men",
    "gentlemen": "men",
    "guy": "men",
    "women": "women",
    "woman": "women",
    "lady": "women",
    "female": "women",
    "boy": "boys",
    "girl": "girls",
    "kid": "kids",
    "child": "kids",
    "children": "kids",
    "unisex": "unisex",
}
_STOCK = re.compile(
    r"\bin[ -]stock\b|\bavailable now\b|\bready to ship\b|有货|现货|有库存|不缺货|没卖完",
    re.IGNORECASE,
)
_NUMBER = r"(\d+(?:\.\d+)?)"
_CURRENCY = r"(?:\s*(?:\$|usd|dollars?|bucks|eur|euros?|€|元|块钱?|rmb|¥))?"
_PRE = r"(?:\$|¥|€)?\s*"
# Price phrases, each with its bound(s); a bare number needs a price word next to it.
_PRICE_RANGE = re.compile(
    rf"(?:between|from)\s*{_PRE}{_NUMBER}{_CURRENCY}\s*(?:and|to|-|–)\s*{_PRE}{_NUMBER}"
    rf"|{_PRE}{_NUMBER}{_CURRENCY}\s*(?:到|至|-|–|~|to)\s*{_NUMBER}\s*(?:元|块|usd|dollars?)"
    rf"|\$\s*{_NUMBER}\s*(?:-|–|to)\s*\$?\s*{_NUMBER}"
    rf"|{_NUMBER}\s*(?:到|至|-|~)\s*{_NUMBER}\s*(?:之间|左右)",
    re.IGNORECASE,
)
_PRICE_MAX = re.compile(
    rf"(?:under|below|less than|cheaper than|up to|at most|no more than|not more than|max(?:imum)?|"
    rf"within|budget(?: of| is)?|<=?)\s*{_PRE}{_NUMBER}"
    rf"|(?:不超过|不高于|(?<!不)低于|少于|小于|不到|最多|最高|预算)\s*{_PRE}{_NUMBER}"
    rf"|{_PRE}{_NUMBER}\s*(?:元|块钱?|usd|美元|刀)?\s*(?:以下|以内|之内|内|或更便宜)"
    rf"|{_PRE}{_NUMBER}{_CURRENCY}\s*or (?:less|under|cheaper)",
    re.IGNORECASE,
)
_PRICE_MIN = re.compile(
    rf"(?:over|above|more than|at least|pricier than|>=?)\s*{_PRE}{_NUMBER}"
    rf"|(?:不低于|(?<!不)高于|(?<!不)超过|大于|多于)\s*{_PRE}{_NUMBER}"
    rf"|{_PRE}{_NUMBER}\s*(?:元|块钱?|usd|美元|刀)?\s*(?:以上|起)"
    rf"|{_PRE}{_NUMBER}{_CURRENCY}\s*or more",
    re.IGNORECASE,
)
_PRICE_AROUND = re.compile(
    rf"(?:around|about|roughly|approximately|~)\s*{_PRE}{_NUMBER}"
    rf"|{_PRE}{_NUMBER}\s*(?:元|块钱?|usd|美元|刀)?\s*左右",
    re.IGNORECASE,
)
# "around 40" means within this share either side.
AROUND_SHARE = 0.2
_SIZES = r"(xxs|xs|s|m|l|xl|xxl|xxxl|[2-5]xl|\d{1,2}(?:\.5)?)"
_SIZE = re.compile(
    rf"\bsize\s*:?\s+{_SIZES}\b|\b(xxs|xs|xl|xxl|xxxl|[2-5]xl)\b"
    rf"|(?:尺码|尺寸|码数)\s*:?\s*{_SIZES}(?![a-z0-9])|(?<![a-z0-9]){_SIZES}\s*码",
    re.IGNORECASE,
)
_TOKEN = re.compile(r"[a-z0-9]+(?:'s)?")
# Words that are never a typo of a product word: fuzzy matching skips them.
_COMMON_WORDS = (
    "a an the and or for of in on to with do does did you your we our i me my any some sell "
    "have has had show find want need looking look buy get there is are it its this that these "
    "those them please can could would like what which how much price cost cheap cheaper under "
    "below over above between from than more less only in stock available size colour color "
    "new one ones items item products product something anything else other others also here "
    "sale shop store hi hello hey thanks thank about around up at most least max min usd "
    "dollar dollars bucks euro euros not no yes ok okay good best nice very really men women "
    "cheapest cheaper expensive pricier which wear wearing gift tell send sold "
    "boys girls kids black white blue red green grey gray brown pink purple yellow orange"
)
_COMMON = frozenset(_COMMON_WORDS.split())


def normalise(word: str) -> str:
    """Lower case, hyphens and apostrophes gone, plural made singular: "T-Shirts" → "tshirt"."""
    word = re.sub(r"['’]s\b", "s", word.lower())
    word = re.sub(r"[^a-z0-9 ]+", "", word)
    return " ".join(_singular(w) for w in word.split())


def _singular(word: str) -> str:
    if len(word) <= 3 or word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "sses", "xes")):
        return word[:-2]
    return word[:-1] if word.endswith("s") else word


def edit_distance(a: str, b: str, limit: int = 2) -> int:
    """Damerau-Levenshtein distance (adjacent swaps count once), capped at `limit + 1`."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return min(previous[-1], limit + 1)


@dataclass(frozen=True)
class CatalogueProduct:
    """The facets of one stored product that the parser filters on, normalised."""

    product_id: str
    category: str
    types: tuple[str, ...]
    colour: str
    gender: str
    brand: str
    sizes: tuple[str, ...]


@dataclass
class Vocabulary:
    """The words a shop's catalogue uses, from its distinct metadata values."""

    types: dict[str, set[str]] = field(default_factory=dict)
    colours: set[str] = field(default_factory=set)
    genders: set[str] = field(default_factory=set)
    brands: dict[str, str] = field(default_factory=dict)
    currency: str = "USD"

    def type_words(self) -> set[str]:
        """Every single word of a type value, for fuzzy matching of typos."""
        words = {w for value in self.types for w in value.split()}
        return words | set(TYPE_SYNONYMS)

    def colour_words(self) -> set[str]:
        return {w for value in self.colours for w in value.split()} | set(COLOUR_SYNONYMS)


class ProductQuery(BaseModel):
    """What a message asks for, in the store's own values; empty fields were not asked."""

    model_config = ConfigDict(frozen=True)

    type_term: str | None = None
    type_label: str = ""
    type_values: tuple[str, ...] = ()
    colour: str | None = None
    genders: tuple[str, ...] = ()
    gender_word: str | None = None
    brand: str | None = None
    size: str | None = None
    min_price: float | None = None
    max_price: float | None = None
    in_stock: bool = False

    def names_product(self) -> bool:
        """A type or a brand: enough to search the catalogue for."""
        return bool(self.type_values) or self.brand is not None

    def constraints(self) -> dict[str, Any]:
        """The set constraints, for the agent's view and the stored session."""
        return self.model_dump(
            exclude_defaults=True, exclude={"type_values", "type_label", "gender_word"}
        )

    def without(self, facet: Relaxable) -> ProductQuery:
        updates: dict[str, dict[str, Any]] = {
            "size": {"size": None},
            "in_stock": {"in_stock": False},
            "price": {"min_price": None, "max_price": None},
            "colour": {"colour": None},
            "gender": {"genders": (), "gender_word": None},
            "brand": {"brand": None},
        }
        return self.model_copy(update=updates[facet])

    def has(self, facet: Relaxable) -> bool:
        return bool(
            {
                "size": self.size,
                "in_stock": self.in_stock,
                "price": self.min_price is not None or self.max_price is not None,
                "colour": self.colour,
                "gender": self.genders,
                "brand": self.brand,
            }[facet]
        )

    def keywords(self) -> str:
        """English words to rank with, next to the customer's own (BM25 needs shared words)."""
        kind = TYPE_NAMES.get(self.type_term or "", (self.type_label, ""))[0]
        return " ".join(w for w in (self.brand, self.colour, kind, self.gender_word) if w)

    def describe(self, language: str, currency: str) -> str:
        """ "black t-shirts for men under 50 USD, in stock" / "男士黑色T恤，50 USD以下，有货"."""
        zh = language == "zh"
        kind = self.type_term or ""
        names = TYPE_NAMES.get(kind)
        noun = (names[1] if zh else names[0]) if names else self.type_label
        if not noun:
            noun = "商品" if zh else "products"
        gender = GENDER_NAMES.get(self.gender_word or "", ("", ""))
        colour = _zh_colour(self.colour) if zh and self.colour else (self.colour or "")
        price = _price_text(self.min_price, self.max_price, currency, zh)
        if zh:
            head = f"{self.brand or ''}{gender[1]}{colour}{'色' if colour and not colour.endswith('色') else ''}{noun}"
            extras = [e for e in (f"{self.size}码" if self.size else "", price) if e]
            extras += ["有货"] if self.in_stock else []
            return "，".join([head, *extras])
        parts = [self.brand or "", colour, noun]
        text = " ".join(p for p in parts if p)
        if gender[0] == "unisex":
            text = f"unisex {text}"
        elif gender[0]:
            text = f"{text} {gender[0]}"
        if self.size:
            text += f" in size {self.size}"
        if price:
            text += f" {price}"
        if self.in_stock:
            text += ", in stock"
        return text[0].upper() + text[1:]


def _zh_colour(colour: str) -> str:
    words = [word for word, english in ZH_COLOURS.items() if english == colour]
    return min(words, key=len) if words else colour


def _price_text(low: float | None, high: float | None, currency: str, zh: bool) -> str:
    def money(value: float) -> str:
        return f"{value:.0f} {currency}" if value == int(value) else f"{value:.2f} {currency}"

    if low is not None and high is not None:
        return f"{money(low)}–{money(high)}" if zh else f"between {money(low)} and {money(high)}"
    if high is not None:
        return f"{money(high)}以下" if zh else f"under {money(high)}"
    if low is not None:
        return f"{money(low)}以上" if zh else f"from {money(low)}"
    return ""


class Catalogue:
    """A shop's products as the parser sees them: the vocabulary, and each product's facets,
    so constraints resolve to store filters and matches can be counted without a search."""

    def __init__(self, records: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
        self.metadata: dict[str, Mapping[str, Any]] = {}
        products: list[CatalogueProduct] = []
        for product_id, meta in records:
            self.metadata[product_id] = {**meta, "product_id": meta.get("product_id", product_id)}
            products.append(_facets(product_id, meta))
        self.products = _with_title_brands(products, [m for m in self.metadata.values()])
        self.vocabulary = _vocabulary(self.products, self.metadata.values())
        # Indexes, so a query costs set unions rather than a pass over every product's words
        # (which took ~1 s per query at 100,000 products).
        self._ids_by_category: dict[str, set[str]] = {}
        self._ids_by_type: dict[str, set[str]] = {}
        self._ids_by_facet: dict[tuple[str, str], set[str]] = {}
        for product in self.products:
            self._ids_by_category.setdefault(product.category, set()).add(product.product_id)
            for value in {normalise(product.category), *product.types}:
                self._ids_by_type.setdefault(value, set()).add(product.product_id)
            for key in _facet_keys(product):
                self._ids_by_facet.setdefault(key, set()).add(product.product_id)

    def parse(self, text: str) -> ProductQuery:
        return parse_query(text, self.vocabulary)

    def filters(self, query: ProductQuery) -> SearchFilters | None:
        """Store filters for `query`; None when no product can match it."""
        ids: set[str] | None = None
        categories: set[str] | None = None
        if query.type_values:
            by_category = {c for c in self._ids_by_category if normalise(c) in query.type_values}
            by_type = _union(self._ids_by_type.get(value, set()) for value in query.type_values)
            category_only = _union(self._ids_by_category[c] for c in by_category) == by_type
            if category_only and by_category:
                categories = by_category
            else:
                ids = by_type
        for matched in self._attribute_matches(query):
            ids = matched if ids is None else ids & matched
        if ids is not None and not ids:
            return None
        filters = SearchFilters(
            categories=frozenset(categories) if categories else None,
            product_ids=frozenset(ids) if ids is not None else None,
            min_price=query.min_price,
            max_price=query.max_price,
            in_stock=True if query.in_stock else None,
        )
        return filters if self.count(filters) else None

    def _attribute_matches(self, query: ProductQuery) -> list[set[str]]:
        """The products each attribute of `query` admits (colour words must all be there)."""
        facets = self._ids_by_facet
        matches: list[set[str]] = []
        if query.colour:
            words = [facets.get(("colour", word), set()) for word in query.colour.split()]
            matches.append(set.intersection(*words))
        if query.genders:
            matches.append(_union(facets.get(("gender", g), set()) for g in query.genders))
        if query.brand:
            matches.append(facets.get(("brand", query.brand.lower()), set()))
        if query.size:
            # A product that lists no sizes is not ruled out by a size it may well come in.
            size, unsized = ("size", query.size.lower()), ("size", "")
            matches.append(facets.get(size, set()) | facets.get(unsized, set()))
        return matches

    def count(self, filters: SearchFilters | None) -> int:
        """Products the filters select: the same predicate BM25 applies to the search."""
        if filters is None:
            return 0
        pool: Iterable[str] = self.metadata
        if filters.product_ids is not None:
            pool = (i for i in filters.product_ids if i in self.metadata)
        elif filters.categories is not None:
            pool = _union(self._ids_by_category.get(c, set()) for c in filters.categories)
        return sum(1 for product_id in pool if filters.matches(self.metadata[product_id]))

    def relaxed(
        self, query: ProductQuery
    ) -> tuple[Relaxable | None, ProductQuery, SearchFilters | None]:
        """`query` itself when something matches it, else `query` without its least important
        constraint that then matches (and which one that was)."""
        filters = self.filters(query)
        if filters is not None:
            return None, query, filters
        for facet in RELAX_ORDER:
            if query.has(facet):
                looser = query.without(facet)
                looser_filters = self.filters(looser)
                if looser_filters is not None:
                    return facet, looser, looser_filters
        return None, query, None


def _union(sets: Iterable[set[str]]) -> set[str]:
    out: set[str] = set()
    for part in sets:
        out |= part
    return out


def _facet_keys(product: CatalogueProduct) -> list[tuple[str, str]]:
    """The (facet, value) pairs `Catalogue._attribute_matches` looks a product up by."""
    keys = [("colour", word) for word in set(product.colour.split())]
    keys += [("gender", product.gender), ("brand", product.brand.lower())]
    keys += [("size", size) for size in product.sizes] or [("size", "")]
    return keys


def _attributes(meta: Mapping[str, Any]) -> dict[str, str]:
    raw = meta.get("attributes")
    if isinstance(raw, Mapping):
        return {str(k).lower(): str(v) for k, v in raw.items()}
    try:
        parsed = json.loads(raw or "{}")
    except (TypeError, json.JSONDecodeError):
        return {}
    return {str(k).lower(): str(v) for k, v in parsed.items()} if isinstance(parsed, dict) else {}


def _first(attributes: Mapping[str, str], names: Iterable[str]) -> str:
    return next((attributes[n] for n in names if attributes.get(n)), "")


def _facets(product_id: str, meta: Mapping[str, Any]) -> CatalogueProduct:
    attributes = _attributes(meta)
    colour = _first(attributes, COLOUR_FIELDS) or str(meta.get("colour_tags") or "")
    sizes = re.split(r"[,/;]\s*|\s+", _first(attributes, SIZE_FIELDS).lower())
    return CatalogueProduct(
        product_id=product_id,
        category=str(meta.get("category") or ""),
        types=tuple(normalise(attributes[f]) for f in TYPE_FIELDS if attributes.get(f)),
        colour=normalise(colour.replace(",", " ")),
        gender=_first(attributes, GENDER_FIELDS).lower(),
        brand=_first(attributes, BRAND_FIELDS),
        sizes=tuple(s for s in sizes if s),
    )


_GENDER_IN_TITLE = re.compile(r"^(.+?)\s+(?:men|women|boys|girls|unisex|kids)\b", re.IGNORECASE)
# Titles name the brand ("Puma Men Grey T-shirt") when most of them put a gender word after
# a short prefix; otherwise a first word is just a first word ("Classic Crew Tee").
TITLE_BRAND_SHARE = 0.3
TITLE_BRAND_MAX_WORDS = 4


def _with_title_brands(
    products: list[CatalogueProduct], metadata: list[Mapping[str, Any]]
) -> list[CatalogueProduct]:
    if not products or any(p.brand for p in products):
        return products
    prefixes = [_GENDER_IN_TITLE.match(str(m.get("title") or "")) for m in metadata]
    if sum(1 for m in prefixes if m) < TITLE_BRAND_SHARE * len(products):
        return products
    out = []
    for product, found in zip(products, prefixes, strict=True):
        brand = found.group(1).strip() if found else ""
        if len(brand) < 3 or len(brand.split()) > TITLE_BRAND_MAX_WORDS:
            brand = ""
        out.append(replace(product, brand=brand) if brand else product)
    return out


def _vocabulary(
    products: list[CatalogueProduct], metadata: Iterable[Mapping[str, Any]]
) -> Vocabulary:
    vocabulary = Vocabulary()
    for product in products:
        for value in (normalise(product.category), *product.types):
            if value:
                vocabulary.types.setdefault(value, set()).add(product.category)
        if product.colour and product.colour != "na":
            vocabulary.colours.add(product.colour)
        if product.gender:
            vocabulary.genders.add(product.gender)
    brands = Counter(p.brand.lower() for p in products if p.brand)
    display = {p.brand.lower(): p.brand for p in products if p.brand}
    # A brand seen once is as likely a product name; two products make it a brand.
    vocabulary.brands = {b: display[b] for b, n in brands.items() if n >= 2}
    currencies = Counter(str(m.get("currency") or "USD") for m in metadata)
    vocabulary.currency = currencies.most_common(1)[0][0] if currencies else "USD"
    return vocabulary


def parse_query(text: str, vocabulary: Vocabulary) -> ProductQuery:
    """The product constraints in `text`, matched to the store's vocabulary."""
    low, high = parse_price(text)
    size, text_wo_size = _size(text)
    lowered = text_wo_size.lower()
    zh_words: list[str] = []
    remaining = text_wo_size
    colour_zh = None
    found_colour = _ZH_COLOUR.search(remaining)
    if found_colour:
        colour_zh = ZH_COLOURS[found_colour.group(1)]
        rest = remaining[found_colour.end() :].removeprefix("色")
        remaining = remaining[: found_colour.start()] + " " + rest
    for word in sorted(ZH_TYPES, key=len, reverse=True):
        if word in remaining:
            zh_words.append(normalise(ZH_TYPES[word]))
            remaining = remaining.replace(word, " ")
    gender_word = _zh_gender(remaining)
    lowered = re.sub(r"\bt[\s-]+shirts?\b", "tshirt", lowered)
    lowered = re.sub(r"\bflip[\s-]+flops?\b", "flipflop", lowered)
    raw_tokens = _TOKEN.findall(lowered)
    brand, raw_tokens = _brand(raw_tokens, vocabulary)
    tokens = [_correct(normalise(t), vocabulary) for t in raw_tokens]
    tokens = [t for t in tokens if t]
    colour = colour_zh or _colour(tokens, vocabulary)
    if gender_word is None:
        gender_word = next((t for t in tokens if t in GENDER_WORDS), None)
    # A shop that records no gender cannot filter by one: the word is then not a constraint.
    genders = tuple(g for g in GENDER_WORDS.get(gender_word or "", ()) if g in vocabulary.genders)
    term, values = _type(tokens + zh_words, vocabulary)
    # Read back as the store's category when the words named exactly one ("Kurtas"), else as
    # the word itself ("mugs", not "home", the category the demo shop files mugs under).
    named = {c for v in values for c in vocabulary.types.get(v, set()) if normalise(c) == v}
    label = next(iter(named)).lower() if len(named) == 1 else _plural(term or "")
    return ProductQuery(
        type_term=term,
        type_label=label if term else "",
        type_values=values,
        colour=colour,
        genders=genders,
        gender_word=GENDER_KEYS[gender_word] if genders and gender_word else None,
        brand=vocabulary.brands.get(brand) if brand else None,
        size=size,
        min_price=low,
        max_price=high,
        in_stock=bool(_STOCK.search(text)),
    )


def _plural(word: str) -> str:
    return f"{word}es" if word.endswith(("s", "sh", "ch", "x")) else f"{word}s"


def _zh_gender(text: str) -> str | None:
    for pattern, word in _ZH_GENDER:
        if pattern.search(text):
            return word
    return None


def _size(text: str) -> tuple[str | None, str]:
    found = _SIZE.search(text)
    if not found:
        return None, text
    value = next(g for g in found.groups() if g)
    return value.upper(), text[: found.start()] + " " + text[found.end() :]


def _brand(tokens: list[str], vocabulary: Vocabulary) -> tuple[str | None, list[str]]:
    """The longest known brand whose words appear in a row; its words leave the token list,
    so "Red Tape shoes" is not a red colour."""
    best: tuple[int, int, str] | None = None
    plain = [t.removesuffix("'s") for t in tokens]
    for brand in vocabulary.brands:
        words = _TOKEN.findall(brand)
        if len(words) == 1 and words[0] in _COMMON:
            continue
        n = len(words)
        for start in range(len(plain) - n + 1):
            if plain[start : start + n] == words and (best is None or n > best[1]):
                best = (start, n, brand)
    if best is None:
        return None, tokens
    start, n, brand = best
    return brand, tokens[:start] + tokens[start + n :]


def _correct(token: str, vocabulary: Vocabulary) -> str:
    """A misspelt product or colour word ("tshrt", "blak") as the word it is one edit from."""
    known = vocabulary.type_words() | vocabulary.colour_words() | set(GENDER_WORDS)
    if token in known or token in _COMMON or len(token) < 4 or token.isdigit():
        return token
    limit = 1 if len(token) < 8 else 2
    # Ties go to the word that starts alike ("wmen" is "women", not "men").
    best = min(
        known,
        key=lambda word: (edit_distance(token, word, limit), word[0] != token[0], word),
        default="",
    )
    return best if best and edit_distance(token, best, limit) <= limit else token


def _colour(tokens: list[str], vocabulary: Vocabulary) -> str | None:
    """The store colour named: the longest of its values in the text ("navy blue"), else a
    single colour word."""
    joined = f" {' '.join(tokens)} "
    for value in sorted(vocabulary.colours, key=lambda v: (-len(v.split()), v)):
        if len(value.split()) > 1 and f" {value} " in joined:
            return value
    # A single word counts when it ends a store colour ("blue" of "navy blue"), never when it
    # only qualifies one ("off" of "off white" in "30% off").
    heads = {v.split()[-1] for v in vocabulary.colours} | {"navy"}
    for token in tokens:
        word = COLOUR_SYNONYMS.get(token, token)
        if word in heads and any(word in v.split() for v in vocabulary.colours):
            return word
    return None


def _type(tokens: list[str], vocabulary: Vocabulary) -> tuple[str | None, tuple[str, ...]]:
    """The product type: a store value named whole ("sports shoes", "flip flops") wins, else
    the first word that is a store value or its head noun ("shoes" → every kind of shoe)."""
    joined = f" {' '.join(tokens)} "
    phrases = [v for v in vocabulary.types if len(v.split()) > 1 and f" {v} " in joined]
    if phrases:
        best = max(phrases, key=lambda v: len(v.split()))
        return best, (best,)
    for token in tokens:
        if token in GENDER_WORDS or token in _COMMON:
            continue
        wanted = TYPE_SYNONYMS.get(token, (token,))
        if " " in token:
            wanted = (token,)
        values = tuple(
            sorted(v for v in vocabulary.types if v in wanted or v.split()[-1] in wanted)
        )
        if values:
            return wanted[0], values
    return None, ()


def parse_price(text: str) -> tuple[float | None, float | None]:
    """The price bounds a message sets: "under 50" → (None, 50); "20到40元" → (20, 40)."""
    found = _PRICE_RANGE.search(text)
    if found:
        numbers = sorted(float(g) for g in found.groups() if g)
        return numbers[0], numbers[-1]
    found = _PRICE_AROUND.search(text)
    if found:
        value = float(next(g for g in found.groups() if g))
        return round(value * (1 - AROUND_SHARE), 2), round(value * (1 + AROUND_SHARE), 2)
    high = _PRICE_MAX.search(text)
    low = _PRICE_MIN.search(text)
    high_value = float(next(g for g in high.groups() if g)) if high else None
    low_value = float(next(g for g in low.groups() if g)) if low else None
    if high_value is not None and low_value is not None and low_value > high_value:
        return None, high_value
    return low_value, high_value


class Ranker(Protocol):
    """Filtered, ranked product search (`HybridSearcher.products`)."""

    def products(
        self, query: str, k: int = 5, filters: SearchFilters | None = None
    ) -> Sequence[ProductMatch]: ...


@dataclass
class CatalogueResult:
    """One attribute search: what was searched (the query, or it less `relaxed`), how many
    products satisfy it, and the page asked for, best first, as the store returned it."""

    searched: ProductQuery
    relaxed: Relaxable | None
    total: int
    matches: list[ProductMatch] = field(default_factory=list)

    @property
    def product_ids(self) -> list[str]:
        return [m.product_id for m in self.matches]


def search_catalogue(
    catalogue: Catalogue,
    ranker: Ranker,
    text: str,
    query: ProductQuery,
    offset: int = 0,
    k: int = 5,
) -> CatalogueResult:
    """The `k` best products from `offset` that satisfy `query` (relaxed when none does),
    ranked by hybrid search on the message plus the English words understood, which BM25
    needs when the message is Chinese and the catalogue English."""
    relaxed, searched, filters = catalogue.relaxed(query)
    result = CatalogueResult(searched, relaxed, catalogue.count(filters))
    if filters is None:
        return result
    ranked = ranker.products(f"{text} {searched.keywords()}".strip(), k=offset + k, filters=filters)
    result.matches = list(ranked[offset : offset + k])
    return result
