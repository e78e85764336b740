"""Zip guards: unsafe members, bombs and size caps refuse the archive with a stable code."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from knowledge_base import archives
from knowledge_base.archives import ArchiveRejected, extract_zip, is_zip
from tests.helpers.archives import UNSAFE_MEMBERS, zip_of

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("name", "mode"), UNSAFE_MEMBERS)
def test_members_that_leave_the_folder_or_are_links_refuse_the_archive(
    tmp_path: Path, name: str, mode: int | None
) -> None:
    with pytest.raises(ArchiveRejected) as refused:
        extract_zip(zip_of({name: b"x"}, mode), tmp_path / "out", 10**6)
    assert refused.value.code == "unsafe_archive"
    assert not (tmp_path / "outside.csv").exists()


def test_regular_members_are_extracted_and_hidden_ones_skipped(tmp_path: Path) -> None:
    members = {"faq/a.md": b"# A", "__MACOSX/._a.md": b"junk", ".hidden": b"h"}
    extract_zip(zip_of(members), tmp_path, 10**6)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.md")) == [
        "faq/a.md"
    ]
    assert not (tmp_path / ".hidden").exists()


def test_a_highly_compressed_member_is_refused_as_a_possible_bomb(tmp_path: Path) -> None:
    with pytest.raises(ArchiveRejected, match="zip bomb") as refused:
        extract_zip(zip_of({"bomb.csv": b"0" * 5_000_000}), tmp_path, 10**9)
    assert refused.value.code == "archive_too_large"


def test_the_extracted_bytes_are_capped_whatever_the_archive_claims(tmp_path: Path) -> None:
    members = {f"part{n}.md": bytes(range(256)) * 400 for n in range(3)}
    with pytest.raises(ArchiveRejected, match="SHOPSIGHT_MAX_INGEST_UNZIPPED_MB") as refused:
        extract_zip(zip_of(members), tmp_path, 250_000)
    assert refused.value.code == "archive_too_large"


def test_too_many_members_and_unreadable_archives_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(archives, "MAX_MEMBERS", 2)
    with pytest.raises(ArchiveRejected, match="at most 2") as crowded:
        extract_zip(zip_of({f"{n}.md": b"x" for n in range(3)}), tmp_path, 10**6)
    assert crowded.value.code == "archive_too_large"
    with pytest.raises(ArchiveRejected) as corrupt:
        extract_zip(io.BytesIO(b"PK\x03\x04 not really a zip"), tmp_path, 10**6)
    assert corrupt.value.code == "corrupt_archive"


def test_zip_signatures_are_recognised() -> None:
    assert is_zip(b"PK\x03\x04rest") and is_zip(b"PK\x05\x06")
    assert not is_zip(b"id,title\n")
