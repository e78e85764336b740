"""Extracting a zip archive from the network without trusting anything it says about itself.

Every guard such an archive needs, in one place: no absolute paths or `..`, no links, no
encrypted members, a cap on the number of members and on the bytes actually extracted (not the
sizes the archive claims), and a compression-ratio check against zip bombs. A refused archive
raises `ArchiveRejected` with a stable `code` (`unsafe_archive`, `archive_too_large`,
`corrupt_archive`) and a message that says what was wrong.
"""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path, PurePosixPath
from typing import IO, Literal

MAX_MEMBERS = 20_000
# A member this much smaller compressed than extracted is refused (beyond 1 MB extracted).
MAX_RATIO = 200
RATIO_CHECKED_FROM = 1_000_000
_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")

ArchiveProblem = Literal["unsafe_archive", "archive_too_large", "corrupt_archive"]


class ArchiveRejected(Exception):
    """The archive cannot be used; nothing of it should be kept."""

    def __init__(self, code: ArchiveProblem, message: str) -> None:
        super().__init__(message)
        self.code: ArchiveProblem = code
        self.message = message


def is_zip(head: bytes) -> bool:
    """Whether the first bytes of a file are a zip signature (a file, or an empty archive)."""
    return head.startswith(_SIGNATURES)


def extract_zip(stream: IO[bytes], folder: Path, max_total: int) -> None:
    """Extract every regular member of the archive under `folder`, or raise `ArchiveRejected`
    (then some members may be written already: the caller removes `folder`)."""
    try:
        archive = zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
        raise ArchiveRejected("corrupt_archive", f"the zip archive cannot be read: {exc}") from exc
    with archive:
        members = archive.infolist()
        if len(members) > MAX_MEMBERS:
            raise ArchiveRejected(
                "archive_too_large",
                f"the zip has {len(members)} entries; at most {MAX_MEMBERS} are accepted",
            )
        root = folder.resolve()
        total = 0
        for info in members:
            target = member_target(info, root)
            if target is None:
                continue
            total += _extract_member(archive, info, target, max_total - total)


def member_target(info: zipfile.ZipInfo, root: Path) -> Path | None:
    """Where a member may be extracted, None to skip it; refuses unsafe members outright."""
    name = info.filename
    path = PurePosixPath(name.replace("\\", "/"))
    parts = [p for p in path.parts if p not in ("", ".")]
    unsafe = (
        path.is_absolute()
        or ".." in parts
        or (bool(parts) and ":" in parts[0])
        or stat.S_ISLNK(info.external_attr >> 16)
    )
    if unsafe:
        raise ArchiveRejected(
            "unsafe_archive",
            f"the zip entry {name!r} points outside the archive or is a link; nothing was "
            "ingested from this archive",
        )
    if info.flag_bits & 0x1:
        raise ArchiveRejected("unsafe_archive", f"the zip entry {name!r} is encrypted")
    if info.is_dir() or not parts or any(p.startswith(".") or p == "__MACOSX" for p in parts):
        return None
    target = root.joinpath(*parts)
    if not target.resolve().is_relative_to(root):
        raise ArchiveRejected(
            "unsafe_archive", f"the zip entry {name!r} points outside the archive"
        )
    return target


def _extract_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, budget: int
) -> int:
    if info.file_size > RATIO_CHECKED_FROM and info.file_size > MAX_RATIO * max(
        info.compress_size, 1
    ):
        raise ArchiveRejected(
            "archive_too_large",
            f"the zip entry {info.filename!r} expands {info.file_size // max(info.compress_size, 1)}"
            "-fold: refused as a possible zip bomb",
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    try:
        with archive.open(info) as source, target.open("wb") as sink:
            while block := source.read(1 << 20):
                written += len(block)
                if written > budget:
                    raise ArchiveRejected(
                        "archive_too_large",
                        "the zip expands to more than "
                        f"{_megabytes(budget + written - len(block))} of files "
                        "(SHOPSIGHT_MAX_INGEST_UNZIPPED_MB)",
                    )
                if written > info.file_size:
                    raise ArchiveRejected(
                        "corrupt_archive",
                        f"the zip entry {info.filename!r} is larger than the archive says",
                    )
                sink.write(block)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise ArchiveRejected(
            "corrupt_archive", f"the zip entry {info.filename!r} cannot be extracted: {exc}"
        ) from exc
    return written


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"
