"""Input checks and personal-data redaction, applied before anything is stored or explained."""

from __future__ import annotations

import re

from PIL import Image
from pydantic import BaseModel

from knowledge_base.images import ImageRejected, load_image


class InputRejected(ValueError):
    """A chat input ShopSight refuses; the message says what was wrong and what to do."""


class Limits(BaseModel):
    max_text_chars: int = 4000
    max_upload_bytes: int = 10 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    max_image_side: int = 1024


_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_CARD = re.compile(r"\b(?:\d[ -]?){13,19}\b")
_PHONE = re.compile(r"(?<!\w)(?:\+?\d{1,3}[ .-]?)?(?:\(?\d{2,4}\)?[ .-]?){2,4}\d{3,4}(?!\w)")
_STREET = re.compile(
    r"\b\d{1,5}\s+(?:[A-Z][a-z]+\s){1,3}(?:Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Boulevard|Blvd|Drive|Dr|Way|Court|Ct)\b\.?",
)
_ZH_ADDRESS = re.compile(
    r"[\u4e00-\u9fff]{2,}(?:省|市)[\u4e00-\u9fff0-9]{0,12}(?:区|县|路|街|号|弄|室)[\u4e00-\u9fff0-9号弄室栋-]*"
)
# Order references look like numbers too; keep them readable for the agent. A reference holds
# a digit, so an ordinary word after "order" ("arrived", "today", "number") is never taken for one.
_REF = r"((?=[A-Z-]*\d)[A-Z0-9][A-Z0-9-]{2,28}[A-Z0-9])(?![A-Z0-9-])"
_ORDER_LABEL = (
    r"(?:\border\b(?:\s*(?:number|no\.?|nr\.?|num\.?|id|ref(?:erence)?|code)\b\.?)?"
    r"|订单(?:号码?|编号)?)"
)
_ORDER_REF = re.compile(
    rf"{_ORDER_LABEL}\s*(?:is\s+|是|为)?\s*[:：]?\s*#?\s*{_REF}"
    rf"|(?<![A-Z0-9&])#\s?{_REF}"
    # The Amazon shape (123-4567890-1234567) is unmistakable even without a label.
    r"|(?<![\d-])(\d{3}-\d{7}-\d{7})(?![\d-])",
    re.IGNORECASE,
)
_BARE_REF = re.compile(rf"(?<![A-Z0-9-]){_REF}", re.IGNORECASE)
# An answer to "what is your order number?" is short: "A12345", "it's 98765432".
_BARE_MAX_WORDS = 6


def redact(text: str) -> str:
    """Replace emails, card numbers, phone numbers and street addresses with placeholders."""
    protected: dict[str, str] = {}

    def keep(match: re.Match[str]) -> str:
        token = f"\x00{len(protected)}\x00"
        protected[token] = match.group(0)
        return token

    text = _ORDER_REF.sub(keep, text)
    text = _EMAIL.sub("[email]", text)
    text = _CARD.sub(_card_or_phone, text)
    text = _PHONE.sub(_phone_if_long, text)
    text = _STREET.sub("[address]", text)
    text = _ZH_ADDRESS.sub("[地址]", text)
    for token, original in protected.items():
        text = text.replace(token, original)
    return text


def _card_or_phone(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return "[card]" if 13 <= len(digits) <= 19 and _luhn(digits) else match.group(0)


def _phone_if_long(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return "[phone]" if len(digits) >= 7 else match.group(0)


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def find_order_reference(text: str, *, bare: bool = False) -> str | None:
    """An order number the customer quoted ("order #A1234", "订单号 A1234"), if any.

    `bare` also accepts an unlabelled one ("A12345") in a short message: the engine passes it
    when it has just asked for the order number, so the reply needs no label.
    """
    match = _ORDER_REF.search(text)
    if match:
        return next(group for group in match.groups() if group)
    if not bare or len(text.split()) > _BARE_MAX_WORDS:
        return None
    found = [m.group(1) for m in _BARE_REF.finditer(text)]
    return found[0] if len(found) == 1 else None


def check_text(text: str | None, limits: Limits) -> str:
    """Normalise the message text; refuse control-character noise and oversized messages."""
    cleaned = (text or "").replace("\x00", "").strip()
    if len(cleaned) > limits.max_text_chars:
        raise InputRejected(
            f"message is {len(cleaned)} characters; the limit is {limits.max_text_chars} "
            "(SHOPSIGHT_MAX_TEXT_CHARS): shorten it or split it into several messages"
        )
    return cleaned


def check_image(data: bytes, limits: Limits) -> Image.Image:
    """Decode an uploaded photo safely (size, type sniffed from content, bomb guard, EXIF dropped)."""
    if not data:
        raise InputRejected("the uploaded image is empty (0 bytes)")
    if len(data) > limits.max_upload_bytes:
        raise InputRejected(
            f"image is {len(data) / 1e6:.1f} MB; the limit is {limits.max_upload_bytes / 1e6:.0f} MB "
            "(SHOPSIGHT_MAX_UPLOAD_MB): send a smaller photo"
        )
    try:
        return load_image(data, limits.max_image_pixels, limits.max_image_side)
    except ImageRejected as exc:
        raise InputRejected(str(exc)) from exc
