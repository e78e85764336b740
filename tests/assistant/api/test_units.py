"""The API's building blocks without a server: keys, settings, addresses."""

from __future__ import annotations

import base64
import json

import pytest
from pydantic import ValidationError

from assistant.api.app import body_limits
from assistant.api.auth import ApiKeys, digest
from assistant.api.errors import ApiError
from assistant.api.server import public_url
from assistant.api.uploads import base64_length, decode_base64_image, image_rule
from assistant.settings import Settings

pytestmark = pytest.mark.unit


def test_keys_are_matched_by_digest_and_admin_wins() -> None:
    keys = ApiKeys([digest("agent-1"), digest("both")], [digest("admin-1"), digest("both")])
    assert keys.role_of("agent-1") == "agent"
    assert keys.role_of("admin-1") == "admin"
    assert keys.role_of("both") == "admin"
    assert keys.role_of("Agent-1") is None
    assert keys.role_of(digest("agent-1")) is None  # the digest itself is not a key
    assert not ApiKeys([], []).configured


def test_settings_take_key_digests_as_a_list_or_comma_separated_and_refuse_raw_keys() -> None:
    one, two = digest("k1"), digest("k2")
    assert Settings(api_keys=f"{one}, {two.upper()}").api_keys == [one, two]
    assert Settings(admin_api_keys=json.dumps([one])).admin_api_keys == [one]
    with pytest.raises(ValidationError, match="SHA-256"):
        Settings(api_keys="my-secret-key")


def test_public_url_names_a_reachable_address() -> None:
    assert public_url("127.0.0.1", 7860) == "http://127.0.0.1:7860"
    assert public_url("0.0.0.0", 80) == "http://127.0.0.1:80"
    assert public_url("::1", 7860) == "http://[::1]:7860"


def test_a_base64_photo_decodes_plain_wrapped_or_as_a_data_url() -> None:
    photo = bytes(range(256)) * 3
    encoded = base64.b64encode(photo).decode()
    rule = image_rule(len(photo))
    wrapped = "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
    for value in (encoded, wrapped, "data:image/png;base64," + encoded):
        assert decode_base64_image(value, rule) == photo


def test_a_base64_photo_over_the_limit_is_refused_by_its_length_before_decoding() -> None:
    rule = image_rule(1000)
    at_limit = base64.b64encode(b"x" * 1000).decode()
    assert len(decode_base64_image(at_limit, rule)) == 1000
    # One byte more, with a tail that would not decode: the size is what is reported.
    over = base64.b64encode(b"x" * 1001).decode()[:-4] + "!!!!"
    with pytest.raises(ApiError) as refused:
        decode_base64_image(over, rule)
    assert refused.value.status_code == 413 and refused.value.code == "upload_too_large"
    with pytest.raises(ApiError) as bad:
        decode_base64_image("abc", rule)
    assert bad.value.status_code == 400 and bad.value.code == "invalid_base64"


def test_photo_routes_have_room_for_a_base64_photo_at_the_upload_limit() -> None:
    settings = Settings(max_upload_mb=2.0, max_text_chars=1000)
    photo = base64_length(2 * 1024 * 1024)
    limit_for = body_limits(settings)
    for path in ("/v1/chat", "/v1/search/image"):
        cap = limit_for(path)
        assert cap is not None and cap[0] > photo + 1000 * 12
