"""The API's building blocks without a server: keys, settings, addresses."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from assistant.api.auth import ApiKeys, digest
from assistant.api.server import public_url
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
