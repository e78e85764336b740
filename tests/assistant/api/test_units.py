"""The API's building blocks without a server: limiter, keys, settings, archive guards."""

from __future__ import annotations

import io
import json
import stat
import zipfile
from pathlib import Path

import pytest
from pydantic import ValidationError

from assistant.api.auth import ApiKeys, digest
from assistant.api.errors import ApiError
from assistant.api.kb_upload import load_upload
from assistant.api.ratelimit import SlidingWindowLimiter
from assistant.api.server import public_url
from assistant.settings import Settings

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_sliding_window_allows_the_limit_then_says_when_to_retry() -> None:
    clock = Clock()
    limiter = SlidingWindowLimiter(3, window_s=60, clock=clock)
    assert [limiter.hit("a") for _ in range(3)] == [None, None, None]
    clock.now += 10
    assert limiter.hit("a") == pytest.approx(50)
    assert limiter.hit("b") is None
    clock.now += 50.5
    assert limiter.hit("a") is None


def test_a_zero_limit_means_unlimited_and_idle_keys_are_forgotten() -> None:
    assert all(SlidingWindowLimiter(0).hit("a") is None for _ in range(1000))
    clock = Clock()
    limiter = SlidingWindowLimiter(1, window_s=60, clock=clock, max_keys=10)
    for index in range(10):
        limiter.hit(f"client-{index}")
    clock.now += 61
    limiter.hit("newcomer")
    assert len(limiter._hits) == 1


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


def _zip_with(name: str, data: bytes = b"x", mode: int | None = None) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        info = zipfile.ZipInfo(name)
        if mode is not None:
            info.external_attr = mode << 16
        bundle.writestr(info, data)
    buffer.seek(0)
    return buffer


@pytest.mark.parametrize(
    ("name", "mode"),
    [
        ("../outside.csv", None),
        ("a/../../outside.csv", None),
        ("/abs/path.csv", None),
        ("C:/windows/path.csv", None),
        ("..\\windows\\outside.csv", None),
        ("link.csv", stat.S_IFLNK | 0o777),
    ],
)
def test_unsafe_archive_members_refuse_the_whole_archive(
    tmp_path: Path, name: str, mode: int | None
) -> None:
    with pytest.raises(ApiError) as refused:
        load_upload(_zip_with(name, mode=mode), "x.zip", tmp_path / "uploads", 10**6)
    assert refused.value.code == "unsafe_archive"
    assert not list((tmp_path / "uploads").iterdir())
    assert not (tmp_path / "outside.csv").exists()


def test_hidden_files_and_mac_folders_are_skipped(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("__MACOSX/._shop.csv", "junk")
        bundle.writestr(".hidden.md", "# hidden")
        bundle.writestr("faq/delivery.md", "# Delivery\n\nThree days.")
    upload = load_upload(buffer, "shop.zip", tmp_path / "uploads", 10**6)
    assert upload.kind == "zip"
    assert [a.id for a in upload.loaded.articles] == ["delivery"]
    assert not upload.loaded.rejections


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ('[{"id": "a", "title": "A"}]', "json"),
        ('{"products": []}', "json"),
        ('{"id": "a", "title": "A"}\n{"id": "b", "title": "B"}\n', "jsonl"),
        ("id,title\na,A\n", "csv"),
        ("---\ntitle: Returns\n---\nThirty days.", "markdown"),
    ],
)
def test_a_catalogue_without_a_known_suffix_is_recognised_by_its_content(
    tmp_path: Path, text: str, kind: str
) -> None:
    upload = load_upload(io.BytesIO(text.encode()), "upload", tmp_path / "uploads", 10**6)
    assert upload.kind == kind
