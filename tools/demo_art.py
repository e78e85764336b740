"""Draw the demo shop's product pictures with Pillow, so the catalogue ships no third-party art.

Each picture is a flat "catalogue shot": a recognisable silhouette for the product's `kind`, filled
with the colour named in its `color` attribute, on a plain light background with a soft shadow.
On top of the fill goes a per-product pattern and logo mark. Those exist for the image-retrieval
demo: two products of the same kind and colour must still look different to a CNN, otherwise a
customer's photo could never pick the right one.

Everything is deterministic. Choices that the product data does not pin down (accent colour,
pattern spacing, logo shape and position) come from a `random.Random` seeded with a SHA-256 of the
product id, never from Python's salted `hash()`, so regenerating the images gives the same bytes.

Regenerate the bundled images (knowledge_base/demo_shop/images) from the project root with::

    python tools/demo_art.py [--products PRODUCTS_JSON] [--out IMAGE_FOLDER]

A developer tool: it is not installed with the package and nothing imports it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from PIL import Image, ImageChops, ImageDraw, ImageFilter

RGB = tuple[int, int, int]
Point = tuple[float, float]
Box = tuple[float, float, float, float]
Role = Literal[
    "body", "dark", "light", "accent", "ink", "metal", "gold", "glass", "white", "contrast", "mid"
]
Fill = Role | RGB

DEMO_DIR = Path(__file__).resolve().parents[1] / "knowledge_base" / "demo_shop"
BACKGROUND: RGB = (246, 245, 242)
SHADOW: RGB = (214, 211, 205)
WHITE: RGB = (252, 252, 250)
BLACK: RGB = (0, 0, 0)
# Drawn at twice the size and downsampled: Pillow's primitives are not anti-aliased.
SUPERSAMPLE = 2
# A small palette keeps each PNG well under 20 KB without visible banding on flat art.
PNG_COLOURS = 64

COLOURS: dict[str, RGB] = {
    "white": (248, 248, 246),
    "off-white": (240, 236, 226),
    "ivory": (244, 238, 220),
    "cream": (238, 226, 198),
    "natural": (228, 214, 186),
    "sand": (214, 196, 160),
    "beige": (216, 198, 166),
    "nude": (214, 160, 140),
    "tan": (200, 156, 106),
    "camel": (193, 142, 84),
    "cognac": (160, 82, 38),
    "khaki": (189, 174, 128),
    "brown": (122, 78, 48),
    "chocolate": (88, 52, 32),
    "black": (34, 34, 36),
    "charcoal": (64, 66, 70),
    "graphite": (82, 84, 90),
    "space grey": (104, 106, 112),
    "grey": (150, 150, 152),
    "gray": (150, 150, 152),
    "heather grey": (172, 172, 176),
    "light grey": (206, 206, 208),
    "silver": (200, 203, 208),
    "navy": (32, 44, 86),
    "navy blue": (32, 44, 86),
    "blue": (46, 98, 196),
    "royal blue": (40, 72, 190),
    "cobalt": (30, 80, 200),
    "denim": (72, 102, 146),
    "denim blue": (72, 102, 146),
    "sky blue": (128, 186, 232),
    "light blue": (160, 200, 232),
    "teal": (22, 128, 132),
    "turquoise": (48, 190, 190),
    "mint": (164, 222, 196),
    "sage": (160, 178, 146),
    "olive": (110, 112, 52),
    "olive green": (110, 112, 52),
    "green": (52, 150, 80),
    "forest green": (34, 92, 56),
    "emerald": (20, 140, 100),
    "red": (204, 40, 44),
    "cherry red": (180, 24, 44),
    "burgundy": (122, 28, 48),
    "wine": (110, 24, 44),
    "coral": (240, 116, 96),
    "peach": (246, 184, 150),
    "pink": (236, 132, 170),
    "blush": (238, 190, 192),
    "blush pink": (238, 190, 192),
    "rose": (214, 112, 134),
    "rose gold": (214, 160, 142),
    "gold": (212, 172, 80),
    "yellow": (244, 206, 52),
    "mustard": (214, 164, 40),
    "amber": (206, 124, 30),
    "orange": (240, 124, 36),
    "terracotta": (196, 98, 66),
    "purple": (112, 60, 160),
    "plum": (104, 40, 86),
    "lavender": (186, 168, 224),
    "lilac": (200, 170, 214),
}

# Accents used when the colour attribute names only one colour.
ACCENTS: tuple[RGB, ...] = (
    (204, 40, 44),
    (32, 44, 86),
    (244, 206, 52),
    (248, 248, 246),
    (34, 34, 36),
    (22, 128, 132),
    (240, 124, 36),
    (236, 132, 170),
    (52, 150, 80),
    (128, 186, 232),
    (212, 172, 80),
    (112, 60, 160),
)

# Patterns a product may name in its `pattern` or `color` attribute, by keyword.
PATTERN_KEYWORDS: tuple[tuple[str, str], ...] = (
    ("pinstripe", "pinstripe"),
    ("stripe", "stripes"),
    ("polka", "dots"),
    ("dot", "dots"),
    ("plaid", "plaid"),
    ("tartan", "plaid"),
    ("check", "plaid"),
    ("floral", "floral"),
    ("flower", "floral"),
    ("chevron", "chevron"),
    ("zigzag", "chevron"),
    ("herringbone", "chevron"),
    ("colour block", "colourblock"),
    ("color block", "colourblock"),
    ("colour-block", "colourblock"),
    ("color-block", "colourblock"),
    ("two-tone", "colourblock"),
    ("quilted", "quilted"),
    ("terrazzo", "confetti"),
    ("speckle", "confetti"),
    ("confetti", "confetti"),
    ("geometric", "triangles"),
    ("diagonal", "diagonal"),
    ("contrast band", "band"),
    ("solid", "solid"),
    ("plain", "solid"),
)
# When the data names no pattern, a subtle trim keeps plain goods plausible yet distinct.
SUBTLE_PATTERNS = ("band", "twotone", "doubleband", "corner")
LOGO_SHAPES = (
    "circle",
    "ring",
    "star",
    "triangle",
    "diamond",
    "bolt",
    "cross",
    "square",
    "chevron",
    "crescent",
)


def _rng(product_id: str) -> random.Random:
    """A generator seeded from the id's SHA-256, identical in every process and on every machine."""
    digest = hashlib.sha256(product_id.encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return (
        round(a[0] + (b[0] - a[0]) * t),
        round(a[1] + (b[1] - a[1]) * t),
        round(a[2] + (b[2] - a[2]) * t),
    )


def _luma(colour: RGB) -> float:
    return 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]


def _shade(colour: RGB, amount: float) -> RGB:
    """Darken, or lighten when the colour is already near black, so seams stay visible."""
    return _mix(colour, BLACK, amount) if _luma(colour) > 70 else _mix(colour, WHITE, amount * 0.8)


def _distance(a: RGB, b: RGB) -> float:
    return math.dist(a, b)


def find_colours(text: str) -> list[RGB]:
    """Colours named in `text`, in reading order; "navy blue" wins over "navy" and "blue"."""
    lowered = text.lower()
    hits: list[tuple[int, int, str]] = []
    for name in COLOURS:
        for match in re.finditer(rf"\b{re.escape(name)}\b", lowered):
            hits.append((match.start(), -len(name), name))
    found: list[RGB] = []
    end = -1
    for start, negative_length, name in sorted(hits):
        if start >= end:
            found.append(COLOURS[name])
            end = start - negative_length
    return found


def _product_colours(colour_text: str, rng: random.Random) -> tuple[RGB, RGB]:
    """Body colour from the first colour named; accent from the second or a contrasting pick."""
    named = find_colours(colour_text)
    body = named[0] if named else rng.choice(list(COLOURS.values()))
    if len(named) > 1:
        return body, named[1]
    candidates = [c for c in ACCENTS if _distance(c, body) > 150] or [WHITE]
    return body, rng.choice(candidates)


def _pattern_name(attributes: dict[str, str], rng: random.Random) -> str:
    text = f"{attributes.get('pattern', '')} {attributes.get('color', '')}".lower()
    for keyword, name in PATTERN_KEYWORDS:
        if keyword in text:
            return name
    return rng.choice(SUBTLE_PATTERNS)


@dataclass(frozen=True)
class _Palette:
    body: RGB
    accent: RGB

    def resolve(self, fill: Fill) -> RGB:
        if isinstance(fill, tuple):
            return fill
        roles: dict[str, RGB] = {
            "body": self.body,
            "dark": _shade(self.body, 0.35),
            "mid": _shade(self.body, 0.18),
            "light": _mix(self.body, WHITE, 0.6),
            "accent": self.accent,
            "ink": (38, 38, 44),
            "metal": (196, 200, 206),
            "gold": (214, 176, 92),
            "glass": (36, 44, 60),
            "white": WHITE,
            "contrast": WHITE if _luma(self.body) < 150 else (38, 38, 44),
        }
        return roles[fill]


DrawOp = Callable[[ImageDraw.ImageDraw], None]


@dataclass
class _Painter:
    """Collects a silhouette (the body mask) and the details painted under and over it.

    Kind functions speak in units of 1/100 of the canvas, so they do not depend on `size`.
    Body shapes go into the mask and later receive the product colour and pattern; detail
    shapes (soles, screens, buckles) keep their own colours.
    """

    side: int
    palette: _Palette
    kind: str
    mask: Image.Image = field(init=False)
    under: list[DrawOp] = field(default_factory=list)
    over: list[DrawOp] = field(default_factory=list)
    spots: list[Point] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.mask = Image.new("L", (self.side, self.side), 0)
        self._mask_draw = ImageDraw.Draw(self.mask)

    def u(self, value: float) -> float:
        return value * self.side / 100

    def w(self, value: float) -> int:
        return max(1, round(self.u(value)))

    def pts(self, points: Sequence[Point]) -> list[tuple[float, float]]:
        return [(self.u(x), self.u(y)) for x, y in points]

    def box(self, box: Box) -> tuple[float, float, float, float]:
        x0, y0, x1, y1 = box
        return (self.u(x0), self.u(y0), self.u(x1), self.u(y1))

    # Body: filled with the product colour and pattern.
    def body_polygon(self, points: Sequence[Point]) -> None:
        self._mask_draw.polygon(self.pts(points), fill=255)

    def body_ellipse(self, box: Box, width: float = 0) -> None:
        if width:
            self._mask_draw.ellipse(self.box(box), outline=255, width=self.w(width))
        else:
            self._mask_draw.ellipse(self.box(box), fill=255)

    def body_rect(self, box: Box, radius: float = 0) -> None:
        self._mask_draw.rounded_rectangle(self.box(box), radius=self.u(radius), fill=255)

    def body_line(self, points: Sequence[Point], width: float) -> None:
        self._mask_draw.line(self.pts(points), fill=255, width=self.w(width), joint="curve")

    def body_arc(self, box: Box, start: float, end: float, width: float) -> None:
        self._mask_draw.arc(self.box(box), start, end, fill=255, width=self.w(width))

    def body_pieslice(self, box: Box, start: float, end: float) -> None:
        self._mask_draw.pieslice(self.box(box), start, end, fill=255)

    # Details: drawn over the body (or under it, with under=True) in their own colours.
    def _add(self, op: DrawOp, under: bool) -> None:
        (self.under if under else self.over).append(op)

    def _colours(self, fill: Fill | None, outline: Fill | None) -> tuple[RGB | None, RGB | None]:
        """Fill and outline colours of a shape; None leaves that part undrawn."""
        fill_rgb = self.palette.resolve(fill) if fill is not None else None
        line_rgb = self.palette.resolve(outline) if outline is not None else None
        return fill_rgb, line_rgb

    def polygon(
        self,
        points: Sequence[Point],
        fill: Fill | None = None,
        outline: Fill | None = None,
        width: float = 0.6,
        under: bool = False,
    ) -> None:
        xy = self.pts(points)
        fill_rgb, line_rgb = self._colours(fill, outline)
        px = self.w(width)
        self._add(lambda d: d.polygon(xy, fill=fill_rgb, outline=line_rgb, width=px), under)

    def ellipse(
        self,
        box: Box,
        fill: Fill | None = None,
        outline: Fill | None = None,
        width: float = 0.6,
        under: bool = False,
    ) -> None:
        xy = self.box(box)
        fill_rgb, line_rgb = self._colours(fill, outline)
        px = self.w(width)
        self._add(lambda d: d.ellipse(xy, fill=fill_rgb, outline=line_rgb, width=px), under)

    def rect(
        self,
        box: Box,
        fill: Fill | None = None,
        radius: float = 0,
        outline: Fill | None = None,
        width: float = 0.6,
        under: bool = False,
    ) -> None:
        xy = self.box(box)
        fill_rgb, line_rgb = self._colours(fill, outline)
        r, px = self.u(radius), self.w(width)
        self._add(
            lambda d: d.rounded_rectangle(xy, radius=r, fill=fill_rgb, outline=line_rgb, width=px),
            under,
        )

    def line(
        self, points: Sequence[Point], fill: Fill, width: float = 0.6, under: bool = False
    ) -> None:
        xy = self.pts(points)
        rgb = self.palette.resolve(fill)
        px = self.w(width)
        self._add(lambda d: d.line(xy, fill=rgb, width=px, joint="curve"), under)

    def arc(
        self,
        box: Box,
        start: float,
        end: float,
        fill: Fill,
        width: float = 0.6,
        under: bool = False,
    ) -> None:
        xy = self.box(box)
        rgb = self.palette.resolve(fill)
        px = self.w(width)
        self._add(lambda d: d.arc(xy, start, end, fill=rgb, width=px), under)

    def spot(self, *points: Point) -> None:
        """Places where a logo would sit on the real product (chest, flap, label)."""
        self.spots.extend(points)


# --- Silhouettes, one function per kind. Coordinates are percent of the canvas. ---------------


def _tshirt(p: _Painter) -> None:
    p.body_polygon(
        [
            (38, 16),
            (26, 19),
            (10, 33),
            (19, 45),
            (28, 39),
            (28, 86),
            (72, 86),
            (72, 39),
            (81, 45),
            (90, 33),
            (74, 19),
            (62, 16),
            (58, 21),
            (50, 24),
            (42, 21),
        ]
    )
    p.line([(38, 16), (42, 21), (50, 24), (58, 21), (62, 16)], "dark", 1.4)
    p.line([(13, 30.5), (21.5, 42.5)], "dark", 0.5)
    p.line([(87, 30.5), (78.5, 42.5)], "dark", 0.5)
    p.line([(28, 82), (72, 82)], "dark", 0.5)
    p.spot((50, 42), (60, 34), (50, 58))


def _hoodie(p: _Painter) -> None:
    p.body_ellipse((35, 8, 65, 32))
    p.body_polygon(
        [
            (34, 20),
            (24, 24),
            (14, 50),
            (12, 80),
            (21, 82),
            (26, 54),
            (28, 50),
            (28, 86),
            (72, 86),
            (72, 50),
            (74, 54),
            (79, 82),
            (88, 80),
            (86, 50),
            (76, 24),
            (66, 20),
        ]
    )
    p.ellipse((42, 13, 58, 29), fill="dark")
    p.line([(46, 28), (45, 42)], "light", 0.8)
    p.line([(54, 28), (55, 42)], "light", 0.8)
    p.polygon([(36, 62), (64, 62), (68, 78), (32, 78)], outline="dark", width=0.6)
    p.line([(28, 81), (72, 81)], "dark", 0.5)
    p.line([(12.4, 76), (21.4, 78)], "dark", 0.5)
    p.line([(87.6, 76), (78.6, 78)], "dark", 0.5)
    p.spot((50, 50), (61, 44))


def _dress(p: _Painter) -> None:
    p.body_line([(40, 10), (40, 24)], 2.2)
    p.body_line([(60, 10), (60, 24)], 2.2)
    p.body_polygon(
        [
            (37, 22),
            (44, 27),
            (50, 29),
            (56, 27),
            (63, 22),
            (64, 32),
            (60, 44),
            (82, 88),
            (18, 88),
            (40, 44),
            (36, 32),
        ]
    )
    p.rect((39.5, 42, 60.5, 46.5), fill="accent")
    p.line([(45, 47), (38, 86)], "dark", 0.4)
    p.line([(55, 47), (62, 86)], "dark", 0.4)
    p.line([(50, 47), (50, 87)], "dark", 0.4)
    p.spot((50, 36), (40, 72), (62, 70))


def _jacket(p: _Painter) -> None:
    p.body_polygon(
        [
            (40, 14),
            (28, 18),
            (18, 24),
            (12, 70),
            (11, 84),
            (20, 85),
            (24, 58),
            (26, 44),
            (27, 88),
            (73, 88),
            (74, 44),
            (76, 58),
            (80, 85),
            (89, 84),
            (88, 70),
            (82, 24),
            (72, 18),
            (60, 14),
        ]
    )
    p.polygon([(40, 14), (50, 32), (60, 14), (56, 12), (50, 22), (44, 12)], fill="dark")
    p.line([(50, 30), (50, 88)], "metal", 0.8)
    p.rect((32, 62, 44, 71), outline="dark", width=0.5)
    p.rect((56, 62, 68, 71), outline="dark", width=0.5)
    p.line([(27, 84), (73, 84)], "dark", 0.5)
    p.line([(11.5, 80), (20.5, 81)], "dark", 0.5)
    p.line([(88.5, 80), (79.5, 81)], "dark", 0.5)
    p.spot((38, 40), (62, 40), (62, 52))


def _trousers(p: _Painter) -> None:
    short = "short" in p.kind
    hem = 70 if short else 90
    top = 22 if short else 12
    p.body_polygon(
        [
            (31, top),
            (69, top),
            (71, top + 28),
            (74, hem),
            (55, hem),
            (50, top + 24),
            (45, hem),
            (26, hem),
            (29, top + 28),
        ]
    )
    p.line([(31, top + 5), (69, top + 5)], "dark", 0.7)
    p.line([(50, top + 5), (50, top + 20)], "dark", 0.5)
    p.line([(32, top + 8), (38, top + 15)], "dark", 0.5)
    p.line([(68, top + 8), (62, top + 15)], "dark", 0.5)
    if short:
        p.line([(46, top + 2), (45, top + 10)], "light", 0.6)
        p.line([(54, top + 2), (55, top + 10)], "light", 0.6)
        p.line([(29.5, top + 6), (27, hem - 1)], "accent", 1.2)
        p.line([(70.5, top + 6), (73, hem - 1)], "accent", 1.2)
    else:
        p.line([(37.5, top + 24), (36, hem - 2)], "mid", 0.4)
        p.line([(62.5, top + 24), (64, hem - 2)], "mid", 0.4)
        for x in (35, 50, 65):
            p.line([(x, top - 0.5), (x, top + 5.5)], "dark", 0.6)
    p.spot((38, top + 20), (62, top + 20), (36, top + 40))


def _sneaker(p: _Painter) -> None:
    high = "high" in p.kind
    collar_top = 22 if high else 32
    p.body_polygon(
        [
            (12, 70),
            (13, 56),
            (16, 50 if not high else 30),
            (22, collar_top + 4),
            (40, collar_top + 2),
            (52, 38),
            (58, 33),
            (64, 34),
            (68, 42),
            (76, 52),
            (86, 58),
            (90, 64),
            (90, 70),
        ]
    )
    p.rect(
        (10, 68, 92, 79),
        fill="contrast" if _luma(p.palette.body) < 200 else "light",
        radius=4,
        outline="dark",
        width=0.5,
    )
    p.line([(12, 75.5), (90, 75.5)], "dark", 0.4)
    p.polygon([(24, collar_top + 4), (38, collar_top + 3), (44, 40), (26, 42)], fill="dark")
    for i in range(4):
        x = 52 + i * 4.5
        p.line([(x, 38 + i * 3.2), (x + 5, 35 + i * 3.2)], "contrast", 0.7)
    p.line([(70, 66), (88, 66)], "mid", 0.4)
    p.spot((36, 58), (46, 56), (28, 56))


def _boot(p: _Painter) -> None:
    p.body_polygon(
        [(28, 14), (54, 14), (56, 56), (64, 60), (82, 64), (88, 70), (88, 78), (26, 78), (26, 40)]
    )
    p.rect((24, 76, 90, 84), fill="ink", radius=2)
    p.rect((24, 80, 40, 84), fill="ink", under=False)
    if "hiking" in p.kind:
        p.rect((27, 12, 55, 20), fill="dark", radius=3)
        for i in range(5):
            y = 24 + i * 7
            p.ellipse((53, y - 1, 56, y + 2), fill="metal")
            p.line([(54.5, y + 0.5), (44, y + 4)], "accent", 0.8)
        p.line([(26, 70), (88, 72)], "dark", 0.5)
    else:
        p.polygon([(40, 24), (52, 24), (54, 58), (42, 58)], fill="dark")
        p.arc((45.5, 9, 52.5, 19), 180, 360, "dark", 1.0)
        p.line([(28, 73), (86, 74)], "mid", 0.4)
    p.spot((34, 52), (70, 70), (34, 34))


def _sandal(p: _Painter) -> None:
    p.rect((32, 8, 68, 92), fill="light", radius=17, outline="dark", width=0.6, under=True)
    p.rect((35, 11, 65, 89), outline="mid", radius=14, width=0.3, under=True)
    p.body_rect((24, 28, 76, 54), radius=9)
    p.line([(26, 32), (74, 32)], "dark", 0.4)
    p.line([(26, 50), (74, 50)], "dark", 0.4)
    p.spot((50, 41), (40, 41))


def _backpack(p: _Painter) -> None:
    p.arc((41, 8, 59, 28), 180, 360, "dark", 2.2, under=True)
    p.rect((22, 30, 27, 80), fill="dark", radius=2, under=True)
    p.rect((73, 30, 78, 80), fill="dark", radius=2, under=True)
    p.body_rect((26, 18, 74, 88), radius=14)
    p.arc((30, 22, 70, 60), 200, 340, "metal", 0.7)
    p.rect((33, 54, 67, 83), outline="dark", radius=8, width=0.7)
    p.line([(36, 60), (64, 60)], "metal", 0.6)
    p.rect((58, 58, 61, 64), fill="metal")
    p.spot((50, 42), (50, 72), (40, 40))


def _handbag(p: _Painter) -> None:
    p.arc((34, 16, 66, 58), 180, 360, "dark", 2.6, under=True)
    p.body_polygon([(26, 40), (74, 40), (82, 86), (18, 86)])
    p.polygon([(26, 40), (74, 40), (73, 58), (50, 64), (27, 58)], outline="dark", width=0.6)
    p.rect((46, 58, 54, 66), fill="gold", radius=1.5)
    p.rect((30, 38, 36, 42), fill="gold")
    p.rect((64, 38, 70, 42), fill="gold")
    p.spot((50, 76), (36, 74), (50, 50))


def _tote(p: _Painter) -> None:
    p.arc((32, 8, 68, 64), 180, 360, "dark", 2.2, under=True)
    p.arc((36, 14, 64, 60), 180, 360, "mid", 2.2, under=True)
    p.body_polygon([(24, 34), (76, 34), (80, 90), (20, 90)])
    p.line([(24.3, 39), (76.4, 39)], "dark", 0.5)
    p.rect((31, 34, 36, 42), outline="dark", width=0.4)
    p.rect((64, 34, 69, 42), outline="dark", width=0.4)
    p.spot((50, 62), (50, 72), (38, 60))


def _crossbody(p: _Painter) -> None:
    p.arc((24, 6, 76, 82), 180, 360, "dark", 1.6, under=True)
    p.body_rect((24, 44, 76, 80), radius=8)
    p.polygon([(24, 44), (76, 44), (76, 58), (50, 66), (24, 58)], outline="dark", width=0.6)
    p.ellipse((47, 61, 53, 67), fill="gold")
    p.ellipse((22, 42, 27, 47), fill="gold")
    p.ellipse((73, 42, 78, 47), fill="gold")
    p.spot((38, 72), (62, 72), (50, 52))


def _wallet(p: _Painter) -> None:
    p.rect((28, 20, 48, 34), fill="accent", radius=1.5, under=True)
    p.rect((33, 17, 53, 31), fill="light", radius=1.5, under=True)
    p.body_rect((18, 28, 82, 72), radius=6)
    p.line([(50, 28), (50, 72)], "dark", 0.6)
    p.rect((21, 31, 79, 69), outline="mid", radius=4, width=0.3)
    p.spot((66, 50), (34, 50), (66, 62))


def _duffel(p: _Painter) -> None:
    p.arc((34, 20, 66, 56), 180, 360, "dark", 2.6, under=True)
    p.body_rect((12, 40, 88, 82), radius=20)
    p.ellipse((13, 42, 26, 80), outline="dark", width=0.5)
    p.ellipse((74, 42, 87, 80), outline="dark", width=0.5)
    p.line([(26, 44), (74, 44)], "metal", 0.7)
    p.rect((70, 42, 74, 47), fill="metal")
    p.spot((50, 62), (38, 64), (62, 64))


def _smartphone(p: _Painter) -> None:
    p.rect((68, 26, 69.6, 34), fill="dark", under=True)
    p.rect((30.4, 24, 32, 30), fill="dark", under=True)
    p.body_rect((32, 10, 68, 90), radius=7)
    p.rect((35.5, 13.5, 53, 32), fill="dark", radius=4)
    for box in ((37.5, 15.5, 44, 22), (37.5, 24, 44, 30.5), (46, 15.5, 52, 21.5)):
        p.ellipse(box, fill="glass", outline="metal", width=0.5)
    p.ellipse((47.5, 25, 50.5, 28), fill=(250, 240, 200))
    p.spot((50, 58), (50, 72))


def _headphones(p: _Painter) -> None:
    p.body_arc((20, 12, 80, 72), 180, 360, 5)
    p.body_rect((14, 44, 32, 80), radius=7)
    p.body_rect((68, 44, 86, 80), radius=7)
    p.body_line([(21, 42), (23, 46)], 2)
    p.body_line([(79, 42), (77, 46)], 2)
    p.arc((24, 16, 76, 68), 200, 340, "dark", 1.6)
    p.rect((30, 47, 36, 77), fill="ink", radius=3)
    p.rect((64, 47, 70, 77), fill="ink", radius=3)
    p.spot((22, 62), (78, 62))


def _earbuds(p: _Painter) -> None:
    p.body_rect((26, 46, 74, 84), radius=16)
    p.body_ellipse((29, 14, 47, 32))
    p.body_rect((34.5, 24, 41.5, 44), radius=3)
    p.body_ellipse((53, 14, 71, 32))
    p.body_rect((58.5, 24, 65.5, 44), radius=3)
    p.ellipse((33, 18, 41, 26), fill="dark")
    p.ellipse((59, 18, 67, 26), fill="dark")
    p.line([(27, 58), (73, 58)], "dark", 0.5)
    p.ellipse((48.8, 64, 51.2, 66.4), fill="accent")
    p.spot((50, 74), (38, 72), (62, 72))


def _laptop(p: _Painter) -> None:
    p.body_rect((20, 14, 80, 62), radius=3)
    p.body_polygon([(12, 63), (88, 63), (84, 72), (16, 72)])
    p.rect((23, 17, 77, 59), fill="glass")
    p.polygon([(23, 59), (23, 44), (40, 36), (56, 46), (77, 32), (77, 59)], fill="accent")
    p.polygon([(23, 59), (23, 52), (46, 46), (77, 54), (77, 59)], fill="mid")
    p.line([(20, 62.5), (80, 62.5)], "dark", 0.6)
    p.rect((43, 63, 57, 65.5), fill="dark", radius=1)
    p.spot((30, 68), (70, 68))


def _smartwatch(p: _Painter) -> None:
    analog = "smart" not in p.kind
    p.body_rect((40, 6, 60, 94), radius=5)
    for y in (78, 83, 88):
        p.ellipse((48.8, y - 1.2, 51.2, y + 1.2), fill="dark")
    p.line([(42, 12), (42, 26)], "mid", 0.3)
    p.line([(58, 12), (58, 26)], "mid", 0.3)
    if analog:
        p.ellipse((27, 27, 73, 73), fill="accent")
        p.ellipse((32, 32, 68, 68), fill="white", outline="ink", width=0.3)
        for i in range(12):
            a = math.radians(i * 30)
            inner, outer = (14.0, 17.0) if i % 3 else (12.0, 17.0)
            p.line(
                [
                    (50 + inner * math.sin(a), 50 - inner * math.cos(a)),
                    (50 + outer * math.sin(a), 50 - outer * math.cos(a)),
                ],
                "ink",
                0.5,
            )
        p.line([(50, 50), (50, 37)], "ink", 1.0)
        p.line([(50, 50), (59, 54)], "ink", 1.0)
        p.rect((73, 47, 76, 53), fill="accent", radius=0.8)
    else:
        p.rect((30, 28, 70, 72), fill="ink", radius=11)
        p.rect((33.5, 31.5, 66.5, 68.5), fill="glass", radius=8)
        p.arc((37, 37, 63, 63), -90, 200, "accent", 2.0)
        p.arc((41.5, 41.5, 58.5, 58.5), -90, 120, "light", 2.0)
        p.rect((70, 42, 73, 52), fill="metal", radius=1)
    p.spot((50, 18), (50, 84))


def _speaker(p: _Painter) -> None:
    p.arc((6, 44, 22, 62), 90, 270, "ink", 1.2, under=True)
    p.body_rect((14, 36, 86, 74), radius=19)
    for row in range(5):
        for col in range(11):
            x, y = 27 + col * 4.6, 43 + row * 6
            p.ellipse((x - 0.9, y - 0.9, x + 0.9, y + 0.9), fill="dark")
    p.rect((38, 34.5, 44, 36.5), fill="dark", radius=0.8)
    p.rect((56, 34.5, 62, 36.5), fill="dark", radius=0.8)
    p.spot((50, 55))


def _lamp(p: _Painter) -> None:
    if "desk" in p.kind or "arc" in p.kind:
        p.body_ellipse((24, 80, 60, 90))
        p.body_line([(42, 84), (34, 52), (60, 28)], 2.6)
        p.body_polygon([(56, 24), (66, 14), (86, 34), (76, 44)])
        p.ellipse((68, 32, 80, 44), fill=(255, 240, 190))
        p.ellipse((32, 49.5, 37, 54.5), fill="metal")
        p.ellipse((57.5, 25.5, 62.5, 30.5), fill="metal")
        p.spot((42, 85))
        return
    p.body_ellipse((34, 48, 66, 86))
    p.body_rect((41, 82, 59, 90), radius=2)
    p.rect((48.8, 40, 51.2, 50), fill="metal")
    p.polygon([(28, 14), (72, 14), (80, 46), (20, 46)], fill="light", outline="mid", width=0.4)
    p.spot((50, 68), (50, 74))


def _mug(p: _Painter) -> None:
    p.body_ellipse((57, 42, 84, 72), width=5)
    p.body_rect((24, 30, 66, 84), radius=2)
    p.body_ellipse((24, 25, 66, 35))
    p.body_ellipse((24, 79, 66, 89))
    p.ellipse((26.5, 27, 63.5, 33), fill="dark")
    p.ellipse((28, 28.5, 62, 33), fill=(92, 58, 38))
    p.spot((44, 58), (44, 66))


def _cushion(p: _Painter) -> None:
    corners = [(14, 14), (86, 14), (86, 86), (14, 86)]
    outline: list[Point] = []
    for index, (x0, y0) in enumerate(corners):
        x1, y1 = corners[(index + 1) % 4]
        for step in range(12):
            t = step / 12
            bulge = 4.5 * math.sin(math.pi * t)
            nx, ny = (y1 - y0) / 72, -(x1 - x0) / 72  # inward normal for this winding
            outline.append((x0 + (x1 - x0) * t - nx * bulge, y0 + (y1 - y0) * t - ny * bulge))
    p.body_polygon(outline)
    p.polygon(outline, outline="dark", width=0.9)
    p.line([(18, 18), (30, 28)], "mid", 0.4)
    p.line([(82, 82), (70, 72)], "mid", 0.4)
    p.ellipse((47.5, 47.5, 52.5, 52.5), fill="dark")
    p.spot((50, 50), (34, 34))


def _candle(p: _Painter) -> None:
    p.body_rect((30, 38, 70, 86), radius=6)
    p.ellipse((31.5, 36, 68.5, 44), fill="light", outline="mid", width=0.3)
    p.line([(50, 31), (50, 40)], "ink", 0.6)
    p.polygon([(46.5, 31), (50, 16), (53.5, 31), (50, 34)], fill=(246, 150, 40))
    p.polygon([(48.5, 30.5), (50, 22), (51.5, 30.5), (50, 32)], fill=(255, 226, 110))
    p.spot((50, 62), (50, 70))


def _perfume(p: _Painter) -> None:
    p.body_rect((26, 40, 74, 88), radius=8)
    p.rect((44, 31, 56, 42), fill="metal")
    p.rect((38, 12, 62, 32), fill="gold", radius=3)
    p.rect((30, 46, 33, 80), fill="light", radius=1.5)
    p.spot((50, 64), (50, 72))


def _lipstick(p: _Painter) -> None:
    p.body_polygon([(40, 36), (40, 20), (59, 10), (60, 10), (60, 36)])
    p.body_rect((36, 50, 64, 90), radius=2)
    p.rect((38, 35, 62, 50.5), fill="gold", radius=1)
    p.line([(38, 42.5), (62, 42.5)], "ink", 0.3)
    p.line([(36, 86), (64, 86)], "dark", 0.5)
    p.spot((50, 70), (50, 78))


def _cream_jar(p: _Painter) -> None:
    p.body_rect((20, 52, 80, 86), radius=6)
    p.body_rect((18, 34, 82, 54), radius=5)
    for x in range(22, 80, 4):
        p.line([(x, 36), (x, 52)], "mid", 0.3)
    p.line([(19, 54), (81, 54)], "dark", 0.7)
    p.spot((50, 70), (40, 70))


def _serum(p: _Painter) -> None:
    p.body_rect((32, 42, 68, 90), radius=7)
    p.rect((40.5, 31, 59.5, 43), fill="gold", radius=1)
    p.rect((43, 10, 57, 33), fill="ink", radius=7)
    p.rect((36, 56, 64, 80), fill="light", radius=1.5)
    p.line([(39, 62), (61, 62)], "accent", 1.0)
    p.spot((50, 70), (50, 86))


def _teardrop(cx: float, cy: float, a: float, top: float, bottom: float) -> list[Point]:
    """An aviator lens: flat-ish top, deep rounded bottom that leans toward the nose (right)."""
    points: list[Point] = []
    for step in range(48):
        t = 2 * math.pi * step / 48
        s = math.sin(t)
        depth = bottom if s > 0 else top
        lean = 3.5 * s if s > 0 else 0.0
        points.append((cx + a * math.cos(t) + lean, cy + depth * s))
    return points


def _sunglasses(p: _Painter) -> None:
    aviator = "aviator" in p.kind
    if aviator:
        outer, inner = _teardrop(29, 48, 16.5, 9.5, 17.5), _teardrop(29, 48, 14, 7.5, 15)
        p.body_polygon(outer)
        p.body_polygon([(100 - x, y) for x, y in outer])
        p.body_line([(44, 41), (56, 41)], 1.2)
        p.body_line([(43, 47), (50, 45), (57, 47)], 1.0)
        p.polygon(inner, fill="glass")
        p.polygon([(100 - x, y) for x, y in inner], fill="glass")
        p.polygon([(20, 44), (26, 43), (19, 53)], fill=(96, 108, 128))
        p.polygon([(60, 44), (66, 43), (59, 53)], fill=(96, 108, 128))
    else:
        p.body_ellipse((13, 36, 46, 69))
        p.body_ellipse((54, 36, 87, 69))
        p.body_arc((42, 42, 58, 56), 200, 340, 2.0)
        p.ellipse((16.5, 39.5, 42.5, 65.5), fill="glass")
        p.ellipse((57.5, 39.5, 83.5, 65.5), fill="glass")
        p.arc((20, 43, 39, 62), 200, 250, (110, 122, 142), 1.2)
        p.arc((61, 43, 80, 62), 200, 250, (110, 122, 142), 1.2)
    p.body_line([(14, 44), (6, 42)], 1.6)
    p.body_line([(86, 44), (94, 42)], 1.6)
    p.spot((8, 42.5), (92, 42.5))


def _cap(p: _Painter) -> None:
    p.body_ellipse((52, 56, 94, 68))
    p.body_pieslice((18, 26, 74, 94), 180, 360)
    p.line([(18, 60), (74, 60)], "dark", 1.2)
    p.ellipse((43.5, 24.5, 48.5, 29.5), fill="dark")
    p.arc((34, 26, 60, 94), 180, 300, "mid", 0.4)
    p.arc((26, 26, 68, 94), 230, 330, "mid", 0.4)
    p.ellipse((36, 38, 38.4, 40.4), fill="dark")
    p.spot((58, 46), (52, 44))


def _hat(p: _Painter) -> None:
    p.body_ellipse((32, 24, 68, 36))
    p.body_polygon([(32, 30), (68, 30), (72, 62), (28, 62)])
    p.body_polygon([(28, 60), (72, 60), (88, 72), (12, 72)])
    p.body_ellipse((12, 68, 88, 78))
    p.rect((29, 55, 71, 62), fill="dark")
    p.arc((16, 62, 84, 76), 20, 160, "mid", 0.4)
    p.spot((50, 44), (42, 42))


def _scarf(p: _Painter) -> None:
    p.body_rect((28, 12, 72, 34), radius=10)
    p.body_polygon([(34, 28), (50, 28), (48, 82), (32, 82)])
    p.body_polygon([(52, 30), (68, 30), (70, 76), (54, 76)])
    for i in range(9):
        x = 32.5 + i * 1.8
        p.line([(x, 82), (x - 0.3, 88)], "dark", 0.4)
        x2 = 54.5 + i * 1.8
        p.line([(x2, 76), (x2 + 0.3, 82)], "dark", 0.4)
    p.line([(34, 28), (50, 28)], "dark", 0.6)
    p.line([(36, 18), (64, 18)], "mid", 0.4)
    p.spot((40, 56), (61, 52))


def _belt(p: _Painter) -> None:
    p.body_rect((8, 42, 94, 58), radius=3)
    p.rect((12, 36, 30, 64), outline="metal", radius=2, width=2.4)
    p.line([(14, 50), (32, 50)], "metal", 1.2)
    p.rect((34, 40.5, 38.5, 59.5), fill="mid", radius=1)
    for x in (66, 72, 78, 84):
        p.ellipse((x - 1, 49, x + 1, 51), fill="ink")
    p.line([(40, 44), (92, 44)], "mid", 0.3)
    p.line([(40, 56), (92, 56)], "mid", 0.3)
    p.spot((52, 50))


def _yoga_mat(p: _Painter) -> None:
    p.body_rect((18, 38, 82, 70))
    p.body_ellipse((76, 38, 88, 70))
    p.ellipse((12, 38, 24, 70), fill="light", outline="dark", width=0.5)
    for r in (4.0, 3.0, 2.0, 1.0):
        p.ellipse((18 - r, 54 - r * 2.6, 18 + r, 54 + r * 2.6), outline="dark", width=0.35)
    p.rect((34, 36.5, 38, 71.5), fill="dark", radius=1)
    p.rect((62, 36.5, 66, 71.5), fill="dark", radius=1)
    p.spot((50, 54), (74, 54))


def _dumbbell(p: _Painter) -> None:
    head = [(16, 28), (34, 28), (39, 37), (39, 63), (34, 72), (16, 72), (11, 63), (11, 37)]
    p.body_polygon(head)
    p.body_polygon([(100 - x, y) for x, y in head])
    p.rect((39, 45.5, 61, 54.5), fill="metal", radius=1)
    for x in range(43, 58, 2):
        p.line([(x, 46.5), (x, 53.5)], (150, 154, 160), 0.3)
    p.line([(12, 37), (38, 37)], "mid", 0.4)
    p.line([(62, 37), (88, 37)], "mid", 0.4)
    p.spot((25, 52), (75, 52))


def _water_bottle(p: _Painter) -> None:
    p.arc((44, 4, 56, 16), 180, 360, "ink", 1.4, under=True)
    p.body_rect((36, 24, 64, 90), radius=9)
    p.rect((38, 10, 62, 26), fill="ink", radius=4)
    p.line([(38, 22), (62, 22)], "metal", 0.6)
    p.line([(37, 84), (63, 84)], "dark", 0.5)
    p.spot((50, 54), (50, 68))


def _ball(p: _Painter) -> None:
    p.body_ellipse((20, 20, 80, 80))
    centre = (50.0, 50.0)
    pentagons = [centre] + [
        (50 + 22 * math.sin(math.radians(a)), 50 - 22 * math.cos(math.radians(a)))
        for a in (0, 72, 144, 216, 288)
    ]
    for cx, cy in pentagons[1:]:
        p.line([centre, (cx, cy)], "dark", 0.5)
    for cx, cy in pentagons:
        points = [
            (cx + 6.5 * math.sin(math.radians(a)), cy - 6.5 * math.cos(math.radians(a)))
            for a in (0, 72, 144, 216, 288)
        ]
        p.polygon(points, fill="ink")
    p.spot((38, 62), (64, 36))


def _racket(p: _Painter) -> None:
    p.body_ellipse((26, 6, 74, 62), width=3.5)
    p.body_line([(37, 56), (48, 70)], 2.4)
    p.body_line([(63, 56), (52, 70)], 2.4)
    p.body_rect((46.5, 66, 53.5, 76), radius=1)
    a, b, cx, cy = 20.0, 24.0, 50.0, 34.0
    for i in range(-8, 9):
        x = cx + i * 2.3
        h = b * math.sqrt(max(0.0, 1 - ((x - cx) / a) ** 2))
        p.line([(x, cy - h), (x, cy + h)], (214, 214, 210), 0.3)
    for j in range(-9, 10):
        y = cy + j * 2.4
        half = a * math.sqrt(max(0.0, 1 - ((y - cy) / b) ** 2))
        p.line([(cx - half, y), (cx + half, y)], (214, 214, 210), 0.3)
    p.rect((45.5, 75, 54.5, 96), fill="ink", radius=1.5)
    for y in range(78, 95, 3):
        p.line([(45.5, y), (54.5, y + 1.5)], "accent", 0.4)
    p.spot((50, 71))


def _box(p: _Painter) -> None:
    p.body_polygon([(22, 36), (50, 24), (78, 36), (78, 76), (50, 88), (22, 76)])
    p.line([(22, 36), (50, 48), (78, 36)], "dark", 0.6)
    p.line([(50, 48), (50, 88)], "dark", 0.6)
    p.spot((36, 62), (64, 62))


# Longest alias found in the `kind` attribute wins ("smartwatch" over "watch").
KINDS: dict[str, Callable[[_Painter], None]] = {
    "t-shirt": _tshirt,
    "tee": _tshirt,
    "shirt": _tshirt,
    "top": _tshirt,
    "polo": _tshirt,
    "hoodie": _hoodie,
    "sweatshirt": _hoodie,
    "dress": _dress,
    "jacket": _jacket,
    "coat": _jacket,
    "parka": _jacket,
    "blazer": _jacket,
    "trousers": _trousers,
    "jeans": _trousers,
    "chinos": _trousers,
    "pants": _trousers,
    "leggings": _trousers,
    "shorts": _trousers,
    "sneaker": _sneaker,
    "trainer": _sneaker,
    "running shoe": _sneaker,
    "shoe": _sneaker,
    "boot": _boot,
    "sandal": _sandal,
    "slide": _sandal,
    "flip-flop": _sandal,
    "backpack": _backpack,
    "rucksack": _backpack,
    "handbag": _handbag,
    "purse": _handbag,
    "tote": _tote,
    "shopper": _tote,
    "crossbody": _crossbody,
    "shoulder bag": _crossbody,
    "wallet": _wallet,
    "card holder": _wallet,
    "duffel": _duffel,
    "weekender": _duffel,
    "gym bag": _duffel,
    "smartphone": _smartphone,
    "phone": _smartphone,
    "headphones": _headphones,
    "headset": _headphones,
    "earbuds": _earbuds,
    "earphones": _earbuds,
    "laptop": _laptop,
    "notebook computer": _laptop,
    "smartwatch": _smartwatch,
    "watch": _smartwatch,
    "speaker": _speaker,
    "lamp": _lamp,
    "mug": _mug,
    "cup": _mug,
    "cushion": _cushion,
    "pillow": _cushion,
    "candle": _candle,
    "perfume": _perfume,
    "fragrance": _perfume,
    "eau de": _perfume,
    "lipstick": _lipstick,
    "cream": _cream_jar,
    "jar": _cream_jar,
    "moisturiser": _cream_jar,
    "balm": _cream_jar,
    "serum": _serum,
    "dropper": _serum,
    "sunglasses": _sunglasses,
    "glasses": _sunglasses,
    "cap": _cap,
    "baseball cap": _cap,
    "hat": _hat,
    "beanie": _hat,
    "scarf": _scarf,
    "shawl": _scarf,
    "belt": _belt,
    "yoga mat": _yoga_mat,
    "mat": _yoga_mat,
    "dumbbell": _dumbbell,
    "kettlebell": _dumbbell,
    "water bottle": _water_bottle,
    "bottle": _water_bottle,
    "flask": _water_bottle,
    "ball": _ball,
    "football": _ball,
    "racket": _racket,
    "racquet": _racket,
}


def drawer_for(kind: str) -> Callable[[_Painter], None]:
    """The silhouette for a free-text kind; an unknown kind gets a parcel box, not an error."""
    lowered = kind.lower()
    matches = [alias for alias in KINDS if alias in lowered]
    return KINDS[max(matches, key=len)] if matches else _box


# --- Patterns and logo marks, painted inside the body only. ------------------------------------


def _star(cx: float, cy: float, r: float, points: int = 5) -> list[Point]:
    return [
        (
            cx + (r if i % 2 == 0 else r * 0.45) * math.sin(math.pi * i / points),
            cy - (r if i % 2 == 0 else r * 0.45) * math.cos(math.pi * i / points),
        )
        for i in range(points * 2)
    ]


def _draw_logo(
    d: ImageDraw.ImageDraw, shape: str, centre: Point, r: float, colour: RGB, bg: RGB
) -> None:
    """A simple brand mark; `r` is its radius in pixels."""
    cx, cy = centre
    box = (cx - r, cy - r, cx + r, cy + r)
    if shape == "circle":
        d.ellipse(box, fill=colour)
    elif shape == "ring":
        d.ellipse(box, outline=colour, width=max(2, round(r * 0.35)))
    elif shape == "star":
        d.polygon(_star(cx, cy, r * 1.2), fill=colour)
    elif shape == "triangle":
        d.polygon([(cx, cy - r), (cx + r, cy + r * 0.8), (cx - r, cy + r * 0.8)], fill=colour)
    elif shape == "diamond":
        d.polygon([(cx, cy - r * 1.2), (cx + r, cy), (cx, cy + r * 1.2), (cx - r, cy)], fill=colour)
    elif shape == "bolt":
        d.polygon(
            [
                (cx + r * 0.2, cy - r * 1.2),
                (cx - r * 0.7, cy + r * 0.15),
                (cx, cy + r * 0.15),
                (cx - r * 0.2, cy + r * 1.2),
                (cx + r * 0.7, cy - r * 0.15),
                (cx, cy - r * 0.15),
            ],
            fill=colour,
        )
    elif shape == "cross":
        t = r * 0.35
        d.rectangle((cx - r, cy - t, cx + r, cy + t), fill=colour)
        d.rectangle((cx - t, cy - r, cx + t, cy + r), fill=colour)
    elif shape == "square":
        d.rounded_rectangle(box, radius=r * 0.25, fill=colour)
    elif shape == "chevron":
        w = max(2, round(r * 0.45))
        d.line(
            [(cx - r, cy - r * 0.5), (cx, cy + r * 0.5), (cx + r, cy - r * 0.5)],
            fill=colour,
            width=w,
            joint="curve",
        )
    else:  # crescent
        d.ellipse(box, fill=colour)
        d.ellipse((cx - r * 0.4, cy - r * 1.05, cx + r * 1.3, cy + r * 0.75), fill=bg)


def _paint_pattern(layer: Image.Image, painter: _Painter, pattern: str, rng: random.Random) -> None:
    """Draw `pattern` over the whole body area of `layer`; the mask clips it later."""
    d = ImageDraw.Draw(layer)
    pal = painter.palette
    bbox = painter.mask.getbbox() or (0, 0, painter.side, painter.side)
    x0, y0, x1, y1 = bbox
    u = painter.u
    accent = pal.accent
    soft = _mix(pal.body, accent, 0.55)
    if pattern == "stripes":
        gap = u(rng.uniform(5.5, 9.0))
        thick = gap * rng.uniform(0.35, 0.5)
        y = y0 + rng.uniform(0, gap)
        while y < y1:
            d.rectangle((x0, y, x1, y + thick), fill=accent)
            y += gap
    elif pattern == "pinstripe":
        gap = u(rng.uniform(3.5, 6.0))
        x = x0 + rng.uniform(0, gap)
        while x < x1:
            d.line([(x, y0), (x, y1)], fill=soft, width=painter.w(0.45))
            x += gap
    elif pattern == "diagonal":
        gap = u(rng.uniform(6.0, 10.0))
        thick = painter.w(rng.uniform(1.4, 2.6))
        slope = rng.choice((-1, 1))
        span = (x1 - x0) + (y1 - y0)
        offset = -span + rng.uniform(0, gap)
        while offset < span:
            xa = x0 + offset
            d.line([(xa, y0), (xa + slope * (y1 - y0), y1)], fill=accent, width=thick)
            offset += gap
    elif pattern == "dots":
        gap = u(rng.uniform(5.5, 8.5))
        r = gap * rng.uniform(0.16, 0.26)
        row = 0
        y = y0 + rng.uniform(0, gap)
        while y < y1:
            x = x0 + (gap / 2 if row % 2 else 0) + rng.uniform(0, 0.01)
            while x < x1:
                d.ellipse((x - r, y - r, x + r, y + r), fill=accent)
                x += gap
            y += gap * 0.87
            row += 1
    elif pattern == "plaid":
        gap = u(rng.uniform(9.0, 14.0))
        band = gap * 0.35
        start = rng.uniform(0, gap)
        xs = [x0 + start + i * gap for i in range(int((x1 - x0) / gap) + 2)]
        ys = [y0 + start + i * gap for i in range(int((y1 - y0) / gap) + 2)]
        for x in xs:
            d.rectangle((x, y0, x + band, y1), fill=soft)
        for y in ys:
            d.rectangle((x0, y, x1, y + band), fill=soft)
        for x in xs:
            for y in ys:
                d.rectangle((x, y, x + band, y + band), fill=accent)
        for x in xs:
            d.line(
                [(x + band * 1.9, y0), (x + band * 1.9, y1)],
                fill=_shade(pal.body, 0.4),
                width=painter.w(0.35),
            )
    elif pattern == "floral":
        gap = u(rng.uniform(11.0, 15.0))
        centre_colour = rng.choice(((250, 214, 90), WHITE))
        y = y0 + rng.uniform(0, gap / 2)
        while y < y1 + gap:
            x = x0 + rng.uniform(0, gap / 2)
            while x < x1 + gap:
                fx, fy = x + rng.uniform(-gap, gap) * 0.25, y + rng.uniform(-gap, gap) * 0.25
                pr, turn = gap * 0.14, rng.uniform(0, math.pi)
                for k in range(5):
                    a = turn + k * 2 * math.pi / 5
                    px, py = fx + pr * 1.1 * math.cos(a), fy + pr * 1.1 * math.sin(a)
                    d.ellipse((px - pr, py - pr, px + pr, py + pr), fill=accent)
                d.ellipse(
                    (fx - pr * 0.6, fy - pr * 0.6, fx + pr * 0.6, fy + pr * 0.6), fill=centre_colour
                )
                x += gap
            y += gap
    elif pattern == "chevron":
        gap = u(rng.uniform(7.0, 10.0))
        amp = gap * 0.35
        y = y0 + rng.uniform(0, gap)
        while y < y1 + amp:
            zig: list[tuple[float, float]] = []
            x = x0 - gap
            up = True
            while x < x1 + gap:
                zig.append((x, y - amp if up else y + amp))
                x += gap / 2
                up = not up
            d.line(zig, fill=accent, width=painter.w(1.4), joint="curve")
            y += gap
    elif pattern == "quilted":
        gap = u(rng.uniform(7.0, 10.0))
        line_colour = _shade(pal.body, 0.3)
        span = (x1 - x0) + (y1 - y0)
        offset = -span + rng.uniform(0, gap)
        while offset < span:
            xa = x0 + offset
            d.line([(xa, y0), (xa + (y1 - y0), y1)], fill=line_colour, width=painter.w(0.45))
            d.line([(xa, y0), (xa - (y1 - y0), y1)], fill=line_colour, width=painter.w(0.45))
            offset += gap
    elif pattern == "confetti":
        area = (x1 - x0) * (y1 - y0) / (painter.side**2)
        colours = (accent, pal.resolve("light"), pal.resolve("dark"))
        for _ in range(int(30 + 160 * area)):
            cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
            r = u(rng.uniform(0.6, 1.6))
            colour = rng.choice(colours)
            if rng.random() < 0.5:
                d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
            else:
                d.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=colour)
    elif pattern == "triangles":
        gap = u(rng.uniform(8.0, 12.0))
        y = y0 + rng.uniform(-gap, 0)
        row = 0
        while y < y1:
            x = x0 + (gap / 2 if row % 2 else 0) - gap
            while x < x1:
                d.polygon([(x, y + gap), (x + gap / 2, y), (x + gap, y + gap)], fill=soft)
                x += gap
            y += gap
            row += 1
    elif pattern == "colourblock":
        split = y0 + (y1 - y0) * rng.uniform(0.5, 0.65)
        d.rectangle((x0, split, x1, y1), fill=accent)
        d.line([(x0, split), (x1, split)], fill=pal.resolve("contrast"), width=painter.w(0.7))
    elif pattern == "twotone":
        # A darker tone of the body colour: the product still reads as the colour it is sold in.
        split = y0 + (y1 - y0) * rng.uniform(0.6, 0.75)
        d.rectangle((x0, split, x1, y1), fill=pal.resolve("mid"))
        d.line([(x0, split), (x1, split)], fill=accent, width=painter.w(0.9))
    elif pattern in ("band", "doubleband"):
        centre = y0 + (y1 - y0) * rng.uniform(0.3, 0.7)
        thick = u(rng.uniform(2.2, 4.0))
        d.rectangle((x0, centre - thick / 2, x1, centre + thick / 2), fill=accent)
        if pattern == "doubleband":
            step = thick * 1.6
            d.rectangle((x0, centre + step - thick / 4, x1, centre + step + thick / 4), fill=accent)
    elif pattern == "corner":
        cut = rng.uniform(0.3, 0.45)
        edge_a: Point
        edge_b: Point
        if rng.random() < 0.5:
            edge_a, edge_b = (x0, y1 - (y1 - y0) * cut), (x0 + (x1 - x0) * cut, y1)
            d.polygon([edge_a, (x0, y1), edge_b], fill=pal.resolve("mid"))
        else:
            edge_a, edge_b = (x1, y0 + (y1 - y0) * cut), (x1 - (x1 - x0) * cut, y0)
            d.polygon([edge_a, (x1, y0), edge_b], fill=pal.resolve("mid"))
        d.line([edge_a, edge_b], fill=accent, width=painter.w(1.0))
    # "solid": nothing but the logo.

    spots = painter.spots or [((x0 + x1) / 2 / u(1), (y0 + y1) / 2 / u(1))]
    sx, sy = rng.choice(spots)
    centre_px = (u(sx + rng.uniform(-1.5, 1.5)), u(sy + rng.uniform(-1.5, 1.5)))
    colour = rng.choice((accent, pal.resolve("contrast")))
    if _distance(colour, pal.body) < 60:
        colour = pal.resolve("contrast")
    _draw_logo(d, rng.choice(LOGO_SHAPES), centre_px, u(rng.uniform(3.2, 5.0)), colour, pal.body)


# --- Public API ---------------------------------------------------------------------------------


def render_product_image(spec: dict[str, Any], size: int = 384) -> Image.Image:
    """Render one product record (a products.json entry) as a `size`×`size` RGB picture.

    Only `id`, `category` and the `kind`, `color` and optional `pattern` attributes matter; the
    rest of the record is ignored so the same dict that feeds the catalogue feeds the artwork.
    """
    product_id = str(spec.get("id", ""))
    attributes = {str(k): str(v) for k, v in (spec.get("attributes") or {}).items()}
    rng = _rng(product_id)
    body, accent = _product_colours(attributes.get("color", ""), rng)
    pattern = _pattern_name(attributes, rng)
    side = size * SUPERSAMPLE
    kind = attributes.get("kind") or str(spec.get("category", ""))
    painter = _Painter(side=side, palette=_Palette(body, accent), kind=kind.lower())
    drawer_for(kind)(painter)

    image = Image.new("RGB", (side, side), BACKGROUND)
    bbox = painter.mask.getbbox()
    if bbox:
        shadow = Image.new("L", (side, side), 0)
        x0, _, x1, y1 = bbox
        inset = (x1 - x0) * 0.08
        ImageDraw.Draw(shadow).ellipse(
            (x0 + inset, y1 - painter.u(2.2), x1 - inset, y1 + painter.u(2.2)), fill=200
        )
        shadow = shadow.filter(ImageFilter.GaussianBlur(painter.u(1.4)))
        image.paste(SHADOW, (0, 0, side, side), shadow)

    draw = ImageDraw.Draw(image)
    for op in painter.under:
        op(draw)
    layer = Image.new("RGB", (side, side), body)
    _paint_pattern(layer, painter, pattern, rng)
    outline = ImageChops.subtract(painter.mask.filter(ImageFilter.MaxFilter(5)), painter.mask)
    image.paste(_shade(body, 0.45), (0, 0, side, side), outline)
    image.paste(layer, (0, 0), painter.mask)
    for op in painter.over:
        op(draw)
    return image.resize((size, size), Image.Resampling.LANCZOS)


def save_png(image: Image.Image, path: Path) -> None:
    """Palette PNG: flat art survives 64 colours, and the file drops to a few KB."""
    path.parent.mkdir(parents=True, exist_ok=True)
    small = image.quantize(
        colors=PNG_COLOURS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
    )
    small.save(path, format="PNG", optimize=True)


def render_all(products_json: Path, out_dir: Path) -> list[Path]:
    """Render every product in `products_json` into `out_dir`; returns the written paths.

    Each file is named after the product's first image path (or `<id>.png`), so the catalogue's
    relative `images/<id>.png` references resolve once `out_dir` is the `images` folder.
    """
    data = json.loads(Path(products_json).read_text(encoding="utf-8"))
    products = data["products"] if isinstance(data, dict) else data
    written: list[Path] = []
    for product in products:
        images = product.get("images") or []
        name = Path(str(images[0])).name if images else f"{product['id']}.png"
        target = Path(out_dir) / name
        save_png(render_product_image(product), target)
        written.append(target)
    return written


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Regenerate the demo shop's product images.")
    parser.add_argument("--products", type=Path, default=DEMO_DIR / "products.json")
    parser.add_argument("--out", type=Path, default=DEMO_DIR / "images")
    args = parser.parse_args(argv)
    paths = render_all(args.products, args.out)
    total = sum(path.stat().st_size for path in paths)
    print(f"wrote {len(paths)} images to {args.out} ({total / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
