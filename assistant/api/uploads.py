"""Reading uploads safely: body-size caps while reading, a strict multipart reader, strict JSON
bodies with base64 photos, image sniffing.

Starlette's form parser reads files of any size and decodes text that is not UTF-8 as Latin-1
without a word. Here every field is strict UTF-8, every file has a cap enforced while the bytes
arrive, and an image's type comes from its bytes (Pillow), never from its name or content type.
A base64 photo in a JSON body gets the same cap (checked from its length, before decoding) and
then the same checks as a multipart file.
"""

from __future__ import annotations

import base64
import io
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any, Literal, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ValidationError
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistant.api.errors import ApiError
from knowledge_base.images import MIN_SIDE

Body = TypeVar("Body", bound=BaseModel)
BodyKind = Literal["json", "multipart"]

ACCEPTED_IMAGE_FORMATS = {"JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "MPO"}
# Bytes of an over-limit body read and thrown away so the client gets the 413 rather than a reset.
DRAIN_ALLOWANCE = 32 * 1024 * 1024


def megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def base64_length(size: int) -> int:
    """Characters of `size` bytes in padded base64."""
    return -(-size // 3) * 4


class BodySizeLimit:
    """ASGI middleware capping request bodies per path: `limit_for(path)` gives the cap in bytes
    and the setting that raises it, or None for no cap.

    The cap is checked against Content-Length before anything is read and against the bytes
    actually received (chunked uploads). Exceeding it raises a 413 `ApiError` from `receive`,
    which the error handlers turn into the JSON error shape.
    """

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], tuple[int, str] | None]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        cap = self.limit_for(scope["path"]) if scope["type"] == "http" else None
        if cap is None:
            await self.app(scope, receive, send)
            return
        limit, setting = cap
        declared = _content_length(scope)
        received = 0

        def too_large(size: int) -> ApiError:
            return ApiError(
                413,
                "payload_too_large",
                f"the request body is {megabytes(size)}; this endpoint accepts at most "
                f"{megabytes(limit)} ({setting})",
            )

        async def limited_receive() -> Message:
            nonlocal received
            if declared is not None and declared > limit:
                if declared - limit <= DRAIN_ALLOWANCE:
                    await _drain(receive)
                raise too_large(declared)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    if message.get("more_body", False):
                        received += await _drain(receive)
                    raise too_large(received)
            return message

        await self.app(scope, limited_receive, send)


async def _drain(receive: Receive) -> int:
    drained = 0
    while drained <= DRAIN_ALLOWANCE:
        message = await receive()
        if message["type"] != "http.request":
            break
        drained += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return drained


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


@dataclass
class FilePart:
    """An uploaded file, spooled to disk past 1 MB. `filename` is informational only."""

    name: str
    filename: str
    file: IO[bytes]
    size: int = 0

    def read(self) -> bytes:
        self.file.seek(0)
        return self.file.read()


@dataclass
class FileRule:
    """How large one file field may be, and the message when it is larger."""

    max_bytes: int
    too_large: Callable[[int], str]


@dataclass
class MultipartForm:
    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, FilePart] = field(default_factory=dict)

    def text(self, name: str) -> str | None:
        return self.fields.get(name)

    def required_text(self, name: str, what: str) -> str:
        value = self.fields.get(name)
        if value is None or not value.strip():
            raise ApiError(422, "missing_field", f"the form field '{name}' is required: {what}")
        return value

    def close(self) -> None:
        for part in self.files.values():
            part.file.close()


class _Collector:
    """python-multipart callbacks that build a `MultipartForm` under the given rules."""

    def __init__(
        self, text_fields: dict[str, str], file_fields: dict[str, FileRule], max_field_bytes: int
    ) -> None:
        self.text_fields = text_fields
        self.file_fields = file_fields
        self.max_field_bytes = max_field_bytes
        self.form = MultipartForm()
        self._headers: list[tuple[bytes, bytes]] = []
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._name = ""
        self._data = bytearray()
        self._file: FilePart | None = None
        self._rule: FileRule | None = None

    def close(self) -> None:
        self.form.close()
        if self._file is not None:
            self._file.file.close()

    @property
    def accepted(self) -> str:
        return ", ".join([*self.text_fields, *self.file_fields])

    def on_part_begin(self) -> None:
        self._headers = []
        self._data = bytearray()
        self._file = None
        self._rule = None

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers.append((bytes(self._header_name).lower(), bytes(self._header_value)))
        self._header_name = bytearray()
        self._header_value = bytearray()

    def on_headers_finished(self) -> None:
        disposition = next((v for k, v in self._headers if k == b"content-disposition"), b"")
        _, options = parse_options_header(disposition)
        if b"name" not in options:
            raise ApiError(400, "malformed_multipart", "a form part has no field name")
        name = _utf8(options[b"name"], "a form field name")
        self._name = name
        if name in self.form.fields or name in self.form.files:
            raise ApiError(422, "duplicate_field", f"the form field '{name}' is given twice")
        is_file = b"filename" in options
        if name in self.file_fields:
            if not is_file:
                raise ApiError(
                    422,
                    "invalid_field",
                    f"the form field '{name}' must be a file upload (a part with a filename)",
                )
            filename = _utf8(options[b"filename"], f"the file name of '{name}'")
            self._rule = self.file_fields[name]
            spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=1024 * 1024)  # noqa: SIM115
            self._file = FilePart(name, filename, spool)
        elif name in self.text_fields:
            if is_file:
                raise ApiError(
                    422,
                    "invalid_field",
                    f"the form field '{name}' must be a plain text field, not a file",
                )
        else:
            raise ApiError(
                422,
                "unknown_field",
                f"unexpected form field '{name}'; this endpoint accepts: {self.accepted}",
            )

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._file is not None and self._rule is not None:
            self._file.size += len(chunk)
            if self._file.size > self._rule.max_bytes:
                self._file.file.close()
                raise ApiError(413, "upload_too_large", self._rule.too_large(self._file.size))
            self._file.file.write(chunk)
            return
        if len(self._data) + len(chunk) > self.max_field_bytes:
            raise ApiError(
                413,
                "field_too_large",
                f"the form field '{self._name}' is larger than {self.max_field_bytes} bytes; "
                "shorten it",
            )
        self._data += chunk

    def on_part_end(self) -> None:
        if self._file is not None:
            self._file.file.seek(0)
            self.form.files[self._name] = self._file
        else:
            self.form.fields[self._name] = _utf8(bytes(self._data), f"the field '{self._name}'")


def _utf8(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = raw[exc.start : exc.start + 1].hex()
        raise ApiError(
            400,
            "invalid_encoding",
            f"{what} is not valid UTF-8 (byte 0x{bad} at position {exc.start}); send text "
            "encoded as UTF-8",
        ) from exc


async def read_multipart(
    request: Request,
    *,
    text_fields: dict[str, str],
    file_fields: dict[str, FileRule],
    max_field_bytes: int,
) -> MultipartForm:
    """Parse a multipart/form-data body under strict rules; every problem is a clear ApiError.

    `text_fields` maps accepted text fields to a description (used in messages); unknown fields,
    duplicate fields, a file where text is expected (or the reverse), text that is not UTF-8,
    an oversized field or file, and a malformed or truncated body are all refused.
    """
    content_type = request.headers.get("content-type", "")
    kind, params = parse_options_header(content_type)
    if kind != b"multipart/form-data":
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send this request as multipart/form-data (got {content_type[:80] or 'nothing'}); "
            f"fields: {', '.join([*text_fields, *file_fields])}",
        )
    boundary = params.get(b"boundary")
    if not boundary:
        raise ApiError(400, "malformed_multipart", "the multipart content type has no boundary")
    collector = _Collector(text_fields, file_fields, max_field_bytes)
    callbacks: Any = {
        "on_part_begin": collector.on_part_begin,
        "on_part_data": collector.on_part_data,
        "on_part_end": collector.on_part_end,
        "on_header_field": collector.on_header_field,
        "on_header_value": collector.on_header_value,
        "on_header_end": collector.on_header_end,
        "on_headers_finished": collector.on_headers_finished,
    }
    parser = MultipartParser(boundary, callbacks)
    refused: ApiError | None = None
    drained = 0
    try:
        async for chunk in request.stream():
            if refused is not None:
                # Read on (up to a point) so the client sees the error instead of a reset.
                drained += len(chunk)
                if drained > DRAIN_ALLOWANCE:
                    break
                continue
            try:
                parser.write(chunk)
            except ApiError as exc:
                refused = exc
            except FormParserError as exc:
                refused = ApiError(
                    400, "malformed_multipart", f"the multipart body is malformed: {exc}"
                )
        if refused is None and parser.state != MultipartState.END:
            refused = ApiError(
                400,
                "malformed_multipart",
                "the multipart body ended before its closing boundary (truncated upload?)",
            )
        if refused is not None:
            raise refused
    except BaseException:
        collector.close()
        raise
    return collector.form


def sniff_image(data: bytes, filename: str, max_pixels: int) -> str:
    """The image format read from the bytes' header (nothing is decoded yet); refuses non-images
    (415), empty files, implausibly many pixels (413) and images too small to recognise."""
    if not data:
        raise ApiError(400, "empty_upload", f"the uploaded file '{filename}' is empty (0 bytes)")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as image:
                found, (width, height) = image.format, image.size
        except (UnidentifiedImageError, ValueError, OSError, SyntaxError, EOFError) as exc:
            raise ApiError(
                415,
                "unsupported_image_type",
                f"'{filename}' is not an image in a supported format (JPEG, PNG, GIF, WebP, "
                "BMP, TIFF); its content was checked, not its name",
            ) from exc
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ApiError(
                413,
                "image_too_large",
                f"'{filename}' has implausibly many pixels (a possible decompression bomb)",
            ) from exc
    if found not in ACCEPTED_IMAGE_FORMATS:
        raise ApiError(
            415,
            "unsupported_image_type",
            f"'{filename}' is a {found} image; send JPEG, PNG, GIF, WebP, BMP or TIFF",
        )
    if width * height > max_pixels:
        raise ApiError(
            413,
            "image_too_large",
            f"'{filename}' is {width}x{height} = {width * height / 1e6:.1f} MP; the limit is "
            f"{max_pixels / 1e6:.0f} MP (SHOPSIGHT_MAX_IMAGE_PIXELS): resize it first",
        )
    if width < MIN_SIDE or height < MIN_SIDE:
        raise ApiError(
            400, "image_too_small", f"'{filename}' is {width}x{height}: too small to recognise"
        )
    return str(found)


def image_rule(max_bytes: int) -> FileRule:
    return FileRule(
        max_bytes,
        lambda size: (
            f"the image is over {megabytes(max_bytes)} (received {megabytes(size)} so far); the "
            f"limit is {megabytes(max_bytes)} (SHOPSIGHT_MAX_UPLOAD_MB): send a smaller photo"
        ),
    )


def body_kind(request: Request, fields: str) -> BodyKind:
    """Whether the body is JSON or multipart; anything else is a 415 naming both and `fields`."""
    content_type = request.headers.get("content-type", "")
    kind, _ = parse_options_header(content_type)
    if kind == b"application/json":
        return "json"
    if kind == b"multipart/form-data":
        return "multipart"
    raise ApiError(
        415,
        "unsupported_media_type",
        f"send this request as application/json (photo base64-encoded) or as "
        f"multipart/form-data (got {content_type[:80] or 'nothing'}); fields: {fields}",
    )


async def read_json(request: Request, model: type[Body]) -> Body:
    """The body parsed into `model`; invalid JSON (400) and invalid fields (422) are reported
    like those of the routes whose JSON body FastAPI parses."""
    raw = await request.body()
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from exc


def decode_base64_image(value: str, rule: FileRule, name: str = "image") -> bytes:
    """The bytes of a base64 photo (a `data:image/...;base64,` URL too), refused when too large
    by its length, before anything is decoded; sniff them like a multipart file afterwards."""
    encoded = value
    if encoded.startswith("data:"):
        header, comma, encoded = encoded.partition(",")
        if not comma or not header.endswith(";base64"):
            raise ApiError(
                400,
                "invalid_base64",
                f"the field '{name}' is a data URL without ';base64,': send the photo's bytes "
                "base64-encoded",
            )
    encoded = "".join(encoded.split())  # line breaks of wrapped base64 are allowed
    padding = len(encoded) - len(encoded.rstrip("="))
    size = len(encoded) // 4 * 3 - min(padding, 2)
    if size > rule.max_bytes:
        raise ApiError(413, "upload_too_large", rule.too_large(size))
    try:
        return base64.b64decode(encoded, validate=True)
    except ValueError as exc:  # binascii.Error, or a character outside ASCII
        raise ApiError(
            400,
            "invalid_base64",
            f"the field '{name}' is not valid base64 ({exc}); send the photo's bytes "
            "base64-encoded (standard alphabet, with '=' padding) or as a multipart file",
        ) from exc
