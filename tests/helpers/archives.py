"""Zip archives built in memory, for the archive guards and the upload staging above them."""

from __future__ import annotations

import io
import stat
import zipfile

# Member names that leave the extraction folder, and a symlink member: each refuses the archive.
UNSAFE_MEMBERS: list[tuple[str, int | None]] = [
    ("../outside.csv", None),
    ("a/../../outside.csv", None),
    ("/abs/path.csv", None),
    ("C:/windows/path.csv", None),
    ("..\\windows\\outside.csv", None),
    ("link.csv", stat.S_IFLNK | 0o777),
]


def zip_of(members: dict[str, bytes], mode: int | None = None) -> io.BytesIO:
    """A deflated zip of `members`, each with Unix `mode` when given, rewound to the start."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if mode is not None:
                info.external_attr = mode << 16
            bundle.writestr(info, data)
    buffer.seek(0)
    return buffer
