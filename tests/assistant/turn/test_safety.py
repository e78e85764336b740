"""Input checks with messages that say what to do, and redaction of personal data."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from assistant.turn.safety import (
    InputRejected,
    Limits,
    check_image,
    check_text,
    find_order_reference,
    redact,
)

pytestmark = pytest.mark.unit

LIMITS = Limits()


def encoded(size: tuple[int, int], fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (120, 40, 200)).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def test_text_is_stripped_of_whitespace_and_nul_characters() -> None:
    assert check_text("  where is\x00 my order?\n", LIMITS) == "where is my order?"
    assert check_text(None, LIMITS) == ""


def test_text_over_the_limit_is_refused_with_the_setting_to_change() -> None:
    with pytest.raises(InputRejected, match=r"message is 11 characters; the limit is 10") as exc:
        check_text("x" * 11, Limits(max_text_chars=10))
    assert "SHOPSIGHT_MAX_TEXT_CHARS" in str(exc.value)
    assert check_text("x" * 10, Limits(max_text_chars=10)) == "x" * 10


def test_an_empty_upload_is_refused() -> None:
    with pytest.raises(InputRejected, match=r"empty \(0 bytes\)"):
        check_image(b"", LIMITS)


def test_an_upload_over_the_byte_limit_is_refused_before_decoding() -> None:
    with pytest.raises(InputRejected, match=r"image is 0\.0 MB; the limit is 0 MB") as exc:
        check_image(b"\xff" * 2000, Limits(max_upload_bytes=1000))
    assert "SHOPSIGHT_MAX_UPLOAD_MB" in str(exc.value)


def test_bytes_that_are_no_image_are_refused() -> None:
    with pytest.raises(InputRejected, match="not a recognised image format"):
        check_image(b"this is a text file, not a photo", LIMITS)


def test_a_truncated_image_is_refused_as_corrupt() -> None:
    data = encoded((64, 64), "JPEG")
    with pytest.raises(InputRejected, match="corrupt or truncated"):
        check_image(data[: len(data) // 2], LIMITS)


def test_an_image_over_the_pixel_limit_is_refused_from_its_header() -> None:
    with pytest.raises(InputRejected, match="exceeds the 0 MP limit") as exc:
        check_image(encoded((200, 200)), Limits(max_image_pixels=10_000))
    assert "SHOPSIGHT_MAX_IMAGE_PIXELS" in str(exc.value)


def test_a_decompression_bomb_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pillow's own guard, scaled down: anything over 2x this many pixels is a bomb.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(InputRejected, match="possible decompression bomb"):
        check_image(encoded((100, 100)), Limits(max_image_pixels=10**9))


def test_a_tiny_image_is_refused() -> None:
    with pytest.raises(InputRejected, match="too small to recognise anything"):
        check_image(encoded((4, 4)), LIMITS)


def test_a_large_photo_is_scaled_down_to_rgb_without_metadata() -> None:
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"
    image = check_image(
        encoded((1600, 800), "JPEG", exif=exif.tobytes()), Limits(max_image_side=400)
    )
    assert image.mode == "RGB"
    assert max(image.size) <= 400
    assert not image.getexif()


def test_emails_cards_and_phone_numbers_are_redacted() -> None:
    text = (
        "Mail me at jane.doe+shop@example.co.uk or call +1 415-555-0132; card 4111 1111 1111 1111"
    )
    assert redact(text) == "Mail me at [email] or call [phone]; card [card]"


def test_a_number_that_fails_the_card_checksum_is_not_called_a_card() -> None:
    assert "[card]" not in redact("tracking 4111 1111 1111 1112")


def test_short_numbers_are_kept() -> None:
    assert redact("I ordered 2 mugs for 12.50 on 3 May") == "I ordered 2 mugs for 12.50 on 3 May"


def test_street_addresses_are_redacted_in_english_and_chinese() -> None:
    assert redact("Send it to 221 Baker Street please") == "Send it to [address] please"
    assert redact("地址：上海市浦东新区世纪大道100号，谢谢") == "地址：[地址]，谢谢"


def test_order_references_survive_redaction() -> None:
    text = "Order #A12345678 never came, my number is 020 7946 0018"
    assert redact(text) == "Order #A12345678 never came, my number is [phone]"


@pytest.mark.parametrize(
    ("text", "reference"),
    [
        ("my order #A1234 is late", "A1234"),
        ("Order number: 55512345", "55512345"),
        ("order no. ZX-9981", "ZX-9981"),
        ("订单号 A1234 还没到", "A1234"),
        ("where is my parcel?", None),
    ],
)
def test_order_references_are_found(text: str, reference: str | None) -> None:
    assert find_order_reference(text) == reference


@pytest.mark.parametrize(
    ("text", "reference"),
    [
        ("#A12345", "A12345"),
        ("order A12345", "A12345"),
        ("order number: 123-4567890-1234567", "123-4567890-1234567"),
        ("order no. 98765432", "98765432"),
        ("Order ID: 7788-AB", "7788-AB"),
        ("order#A12345", "A12345"),
        ("my order number is 55512345", "55512345"),
        ("my order #1001 arrived broken", "1001"),
        ("My order arrived today and it is torn. Order #A12345. I want a refund.", "A12345"),
        ("it's order 123-4567890-1234567", "123-4567890-1234567"),
        ("The parcel for 123-4567890-1234567 is late", "123-4567890-1234567"),
        ("订单号 2024120712345", "2024120712345"),
        ("订单号：A12345", "A12345"),
        ("订单号A1234还没到", "A1234"),
        ("订单编号是 2024120712345，杯子碎了", "2024120712345"),
        ("我的订单 #A12345 破损了", "A12345"),
    ],
)
def test_order_numbers_in_common_shapes_are_found(text: str, reference: str) -> None:
    assert find_order_reference(text) == reference


@pytest.mark.parametrize(
    "text",
    [
        "My order arrived today",
        "my order arrived broken",
        "What is your order number format?",
        "order number please",
        "I ordered 2 mugs",
        "order 10 units",
        "#1 best seller",
        "订单还没到",
        "订单号是多少？",
        "快递单号 SF1234567890",
        "call me on 415-555-0132",
    ],
)
def test_ordinary_words_and_other_numbers_are_not_order_numbers(text: str) -> None:
    assert find_order_reference(text) is None


@pytest.mark.parametrize(
    ("text", "reference"),
    [
        ("A12345", "A12345"),
        ("it's A12345", "A12345"),
        ("sure: 98765432", "98765432"),
        ("是 2024120712345", "2024120712345"),
        ("the blue one", None),
        ("2 of them", None),
        ("A12345 or maybe B67890", None),
        ("I bought it last week as a birthday present, it is A12345", None),
    ],
)
def test_a_bare_answer_is_an_order_number_only_when_one_was_asked_for(
    text: str, reference: str | None
) -> None:
    assert find_order_reference(text) is None
    assert find_order_reference(text, bare=True) == reference
