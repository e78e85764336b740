"""A corpus of bad requests: each gets a clear 4xx in the JSON error shape, never a 500, and the
server stays healthy after every one."""

from __future__ import annotations

import base64
import io
import json
import random
import struct
import zipfile
import zlib
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.assistant.api.conftest import ADMIN, MAX_TEXT_CHARS, assert_error, assert_healthy
from tests.assistant.api.helpers import chat, multipart, session_id
from tests.assistant.demo_shop import customer_photo

pytestmark = pytest.mark.integration

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def _jpeg() -> bytes:
    return customer_photo("backpack-urban-blue")


def _png(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def _damaged_png() -> bytes:
    """A PNG whose header is fine but whose pixel data is damaged."""
    data = _png((64, 64))
    start = data.index(b"IDAT") + 8
    return data[:start] + bytes(b ^ 0x55 for b in data[start : start + 22]) + data[start + 22 :]


def _png_header_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims a huge picture (a decompression bomb never gets decoded)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def _raw_multipart(body: bytes, boundary: str = "XyZ") -> dict[str, Any]:
    return {
        "content": body,
        "headers": {"content-type": f"multipart/form-data; boundary={boundary}"},
    }


def _field(name: str, value: bytes, boundary: str = "XyZ") -> bytes:
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        + value
        + b"\r\n"
    )


def _chat_with_image(data: bytes, name: str = "photo.jpg") -> Callable[[httpx.Client], Any]:
    def send(client: httpx.Client) -> httpx.Response:
        return client.post(
            "/v1/chat",
            files=multipart(
                {"session_id": session_id(), "text": "what is it?"}, {"image": (name, data)}
            ),
        )

    return send


def _chat_fields(
    fields: dict[str, str | bytes], **files: tuple[str, bytes]
) -> Callable[[httpx.Client], Any]:
    return lambda client: client.post("/v1/chat", files=multipart(fields, files or None))


CHAT_CASES: dict[str, tuple[Callable[[httpx.Client], httpx.Response], int, str | None, str]] = {
    "pdf named .jpg": (_chat_with_image(PDF), 415, "unsupported_image_type", "not an image"),
    "text named .jpg": (
        _chat_with_image(b"just some words, not a photo"),
        415,
        "unsupported_image_type",
        "content was checked",
    ),
    "truncated jpeg": (
        _chat_with_image(_jpeg()[: len(_jpeg()) // 2]),
        400,
        "input_rejected",
        "truncated",
    ),
    "corrupt png": (
        _chat_with_image(_damaged_png(), "photo.png"),
        400,
        "input_rejected",
        "corrupt",
    ),
    "jpeg header then garbage": (
        _chat_with_image(_jpeg()[:200] + b"\x00garbage" * 2000),
        415,
        "unsupported_image_type",
        "not an image",
    ),
    "too large": (_chat_with_image(b"\xff\xd8\xff\xe0" + b"\x00" * 1_500_000), 413, None, "MB"),
    "empty file": (_chat_with_image(b""), 400, "empty_upload", "empty"),
    "tiny image": (_chat_with_image(_png((2, 2)), "dot.png"), 400, "image_too_small", "2x2"),
    "pixel bomb": (
        _chat_with_image(_png_header_claiming(30_000, 30_000), "bomb.png"),
        413,
        "image_too_large",
        "pixels",
    ),
    "huge text": (
        _chat_fields({"session_id": "s-huge", "text": "a" * (MAX_TEXT_CHARS + 1)}),
        413,
        "text_too_long",
        "SHOPSIGHT_MAX_TEXT_CHARS",
    ),
    "enormous text": (
        _chat_fields({"session_id": "s-enormous", "text": "ab" * 2_000_000}),
        413,
        None,
        "MB",
    ),
    "invalid utf-8 text": (
        _chat_fields({"session_id": "s-utf8", "text": b"caf\xe9 \xff\xfe"}),
        400,
        "invalid_encoding",
        "UTF-8",
    ),
    "missing session id": (_chat_fields({"text": "hello"}), 422, "missing_field", "session_id"),
    "no fields at all": (
        lambda client: client.post("/v1/chat", **_raw_multipart(b"--XyZ--\r\n")),
        422,
        "missing_field",
        "session_id",
    ),
    "empty message": (
        _chat_fields({"session_id": "s-empty", "text": "   "}),
        400,
        "input_rejected",
        "empty",
    ),
    "url-encoded form": (
        lambda client: client.post("/v1/chat", data={"session_id": "s", "text": "hi"}),
        415,
        "unsupported_media_type",
        "multipart/form-data",
    ),
    "plain-text body": (
        lambda client: client.post(
            "/v1/chat", content=b'{"session_id": "s"}', headers={"content-type": "text/plain"}
        ),
        415,
        "unsupported_media_type",
        "application/json",
    ),
    "unknown field": (
        _chat_fields({"session_id": "s-unknown", "txt": "hi"}),
        422,
        "unknown_field",
        "txt",
    ),
    "text sent as a file": (
        _chat_fields({"session_id": "s-file"}, text=("note.txt", b"hello")),
        422,
        "invalid_field",
        "text",
    ),
    "image sent as text": (
        _chat_fields({"session_id": "s-img", "image": "not a file"}),
        422,
        "invalid_field",
        "file",
    ),
    "duplicate field": (
        lambda client: client.post(
            "/v1/chat",
            **_raw_multipart(
                _field("session_id", b"a") + _field("session_id", b"b") + b"--XyZ--\r\n"
            ),
        ),
        422,
        "duplicate_field",
        "twice",
    ),
    "session id with a path": (
        _chat_fields({"session_id": "../../etc", "text": "hi"}),
        422,
        "invalid_field",
        "session_id",
    ),
    "unknown language": (
        _chat_fields({"session_id": "s-lang", "text": "bonjour", "lang": "fr"}),
        422,
        "invalid_field",
        "lang",
    ),
    "unknown picked product": (
        _chat_fields({"session_id": "s-pick", "chosen_product_id": "no-such-product"}),
        400,
        "input_rejected",
        "unknown product",
    ),
    "truncated multipart": (
        lambda client: client.post(
            "/v1/chat", **_raw_multipart(_field("session_id", b"abc")[:-10])
        ),
        400,
        "malformed_multipart",
        "boundary",
    ),
    "no boundary": (
        lambda client: client.post(
            "/v1/chat", content=b"x", headers={"content-type": "multipart/form-data"}
        ),
        400,
        "malformed_multipart",
        "boundary",
    ),
}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _chat_json(body: Any) -> Callable[[httpx.Client], httpx.Response]:
    return lambda client: client.post("/v1/chat", json=body)


def _chat_json_image(image: Any) -> Callable[[httpx.Client], httpx.Response]:
    return _chat_json({"session_id": session_id(), "text": "what is it?", "image": image})


# Over the 1 MB photo limit once decoded, yet inside the chat body cap: refused by its length.
OVER_LIMIT_BASE64 = _b64(b"\xff\xd8\xff\xe0" + b"\x00" * 1_100_000)

JSON_CHAT_CASES: dict[
    str, tuple[Callable[[httpx.Client], httpx.Response], int, str | None, str]
] = {
    "bad base64": (_chat_json_image("not base64 at all!"), 400, "invalid_base64", "base64"),
    "base64 with a stray character": (
        _chat_json_image(_b64(_jpeg())[:-8] + "*" + _b64(_jpeg())[-7:]),
        400,
        "invalid_base64",
        "base64",
    ),
    "data URL without base64": (
        _chat_json_image("data:image/png,rawbytes"),
        400,
        "invalid_base64",
        ";base64",
    ),
    "base64 over the photo limit": (
        _chat_json_image(OVER_LIMIT_BASE64),
        413,
        "upload_too_large",
        "SHOPSIGHT_MAX_UPLOAD_MB",
    ),
    "base64 over the photo limit with a bad tail": (
        _chat_json_image(OVER_LIMIT_BASE64[:-4] + "!!!!"),
        413,
        "upload_too_large",
        "SHOPSIGHT_MAX_UPLOAD_MB",
    ),
    "huge base64": (
        _chat_json_image(_b64(b"\x00" * 3_000_000)),
        413,
        "payload_too_large",
        "MB",
    ),
    "pdf as base64": (_chat_json_image(_b64(PDF)), 415, "unsupported_image_type", "not an image"),
    "truncated jpeg as base64": (
        _chat_json_image(_b64(_jpeg()[: len(_jpeg()) // 2])),
        400,
        "input_rejected",
        "truncated",
    ),
    "empty base64": (_chat_json_image(""), 400, "empty_upload", "empty"),
    "pixel bomb as base64": (
        _chat_json_image(_b64(_png_header_claiming(30_000, 30_000))),
        413,
        "image_too_large",
        "pixels",
    ),
    "image as a number": (_chat_json_image(12345), 422, "invalid_request", "image"),
    "image as a list of bytes": (_chat_json_image([255, 216]), 422, "invalid_request", "image"),
    "session id as a number": (
        _chat_json({"session_id": 42, "text": "hi"}),
        422,
        "invalid_request",
        "session_id",
    ),
    "text as a list": (
        _chat_json({"session_id": "s-list", "text": ["hi"]}),
        422,
        "invalid_request",
        "text",
    ),
    "missing session id": (_chat_json({"text": "hi"}), 422, "invalid_request", "session_id"),
    "unknown field": (
        _chat_json({"session_id": "s-unknown", "txt": "hi"}),
        422,
        "invalid_request",
        "txt",
    ),
    "unknown language": (
        _chat_json({"session_id": "s-lang", "text": "bonjour", "lang": "fr"}),
        422,
        "invalid_request",
        "lang",
    ),
    "an array, not an object": (_chat_json(["s", "hi"]), 422, "invalid_request", "object"),
    "not json": (
        lambda client: client.post(
            "/v1/chat", content=b"{session_id", headers={"content-type": "application/json"}
        ),
        400,
        "invalid_json",
        "JSON",
    ),
    "huge text": (
        _chat_json({"session_id": "s-huge", "text": "a" * (MAX_TEXT_CHARS + 1)}),
        413,
        "text_too_long",
        "SHOPSIGHT_MAX_TEXT_CHARS",
    ),
    "session id with a path": (
        _chat_json({"session_id": "../../etc", "text": "hi"}),
        422,
        "invalid_field",
        "session_id",
    ),
    "empty message": (
        _chat_json({"session_id": "s-empty-json", "text": "   "}),
        400,
        "input_rejected",
        "empty",
    ),
}


@pytest.mark.parametrize("case", [*CHAT_CASES, *(f"json: {name}" for name in JSON_CHAT_CASES)])
def test_bad_chat_request_is_a_clear_4xx_and_the_server_stays_healthy(
    client: httpx.Client, case: str
) -> None:
    send, status, code, fragment = (
        CHAT_CASES.get(case) or JSON_CHAT_CASES[case.removeprefix("json: ")]
    )
    message = assert_error(send(client), status, code)
    assert fragment.lower() in message.lower(), message
    assert_healthy(client)


def _zip(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


def _low_entropy_text(size: int, seed: int) -> bytes:
    """Text that deflates about 4:1: well under the zip-bomb ratio, yet large once extracted."""
    return "".join(random.Random(seed).choices("ACGT", k=size)).encode()


def _ingest(name: str, data: bytes) -> Callable[[httpx.Client], httpx.Response]:
    return lambda client: client.post(
        "/v1/kb/ingest", files=multipart({}, {"file": (name, data)}), headers=ADMIN
    )


INGEST_CASES: dict[str, tuple[Callable[[httpx.Client], httpx.Response], int, str | None, str]] = {
    "an image as a catalogue": (
        _ingest("products.json", _png((64, 64))),
        415,
        "unsupported_catalogue",
        "image",
    ),
    "binary data": (
        _ingest("products.csv", bytes(range(256)) * 8),
        415,
        "unsupported_catalogue",
        "UTF-8",
    ),
    "empty file": (_ingest("products.json", b""), 400, "empty_upload", "empty"),
    "missing file": (
        lambda client: client.post(
            "/v1/kb/ingest",
            content=b"--XyZ--\r\n",
            headers={"content-type": "multipart/form-data; boundary=XyZ", **ADMIN},
        ),
        422,
        "missing_field",
        "file",
    ),
    "too large": (_ingest("big.csv", b"id,title\n" + b"x,y\n" * 700_000), 413, None, "MB"),
    "corrupt zip": (
        _ingest("shop.zip", b"PK\x03\x04" + b"\x00" * 100),
        400,
        "corrupt_archive",
        "zip",
    ),
    "zip bomb": (
        _ingest("bomb.zip", _zip({"zeros.csv": b"0" * 5_000_000})),
        413,
        "archive_too_large",
        "zip bomb",
    ),
    "zip over the unzipped cap": (
        _ingest("many.zip", _zip({f"f{i}.csv": _low_entropy_text(1_000_000, i) for i in range(5)})),
        413,
        "archive_too_large",
        "UNZIPPED",
    ),
    "absolute path in zip": (
        _ingest("abs.zip", _zip({"/etc/cron.d/x": b"boom"})),
        400,
        "unsafe_archive",
        "outside",
    ),
}


@pytest.mark.parametrize("case", list(INGEST_CASES))
def test_bad_ingest_upload_is_a_clear_4xx_and_the_server_stays_healthy(
    client: httpx.Client, case: str
) -> None:
    send, status, code, fragment = INGEST_CASES[case]
    message = assert_error(send(client), status, code)
    assert fragment.lower() in message.lower(), message
    assert_healthy(client)


def test_an_invalid_catalogue_is_a_report_of_rejections_not_an_error(client: httpx.Client) -> None:
    response = _ingest("products.json", b'[{"id": "x", "title": "ok",}')(client)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] is False
    (rejection,) = body["report"]["rejections"]
    assert rejection["source"] == "products.json" and "invalid JSON" in rejection["reason"]


@pytest.mark.parametrize(
    ("fields", "files", "status", "code"),
    [
        ({"k": "3"}, {}, 422, "missing_field"),
        ({}, {"image": ("doc.jpg", PDF)}, 415, "unsupported_image_type"),
        ({"k": "many"}, {"image": ("p.jpg", b"")}, 400, "empty_upload"),
        ({"k": "many"}, {"image": ("p.png", _png((64, 64)))}, 422, "invalid_field"),
        ({"k": "0"}, {"image": ("p.png", _png((64, 64)))}, 422, "invalid_field"),
    ],
)
def test_bad_image_search_is_a_clear_4xx(
    client: httpx.Client,
    fields: dict[str, str],
    files: dict[str, tuple[str, bytes]],
    status: int,
    code: str,
) -> None:
    assert_error(client.post("/v1/search/image", files=multipart(fields, files)), status, code)
    assert_healthy(client)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"k": 3}, 422, "invalid_request"),
        ({"image": "%%%"}, 400, "invalid_base64"),
        ({"image": _b64(PDF)}, 415, "unsupported_image_type"),
        ({"image": _b64(_png((64, 64))), "k": "3"}, 422, "invalid_request"),
        ({"image": _b64(_png((64, 64))), "k": 0}, 422, "invalid_request"),
        ({"image": OVER_LIMIT_BASE64}, 413, "upload_too_large"),
        ({"image": _b64(b"\x00" * 3_000_000)}, 413, "payload_too_large"),
    ],
)
def test_bad_json_image_search_is_a_clear_4xx(
    client: httpx.Client, body: dict[str, Any], status: int, code: str
) -> None:
    assert_error(client.post("/v1/search/image", json=body), status, code)
    assert_healthy(client)


def test_an_oversized_json_body_is_refused_before_it_is_parsed(client: httpx.Client) -> None:
    body = json.dumps({"query": "boots " * 300_000}).encode()
    message = assert_error(
        client.post("/v1/search/text", content=body, headers={"content-type": "application/json"}),
        413,
        "payload_too_large",
    )
    assert "1.0 MB" in message
    assert_healthy(client)


def test_a_good_turn_still_works_after_the_whole_corpus(client: httpx.Client) -> None:
    response = chat(client, session_id(), "Do you have this?", image=_jpeg())
    assert response.status_code == 200, response.text
    assert json.loads(response.text)["products"]
