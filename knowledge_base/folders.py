"""The one reader of image folders: a folder with one sub-folder of images per class.

Ingestion, category and alignment training, and evaluation all accept such a folder; reading it
here keeps their notion of "an image folder" (which sub-folders count, which files are images,
in which order) the same. Hidden entries (`.DS_Store`, `.git`) never count.
"""

from __future__ import annotations

from pathlib import Path

from knowledge_base.images import IMAGE_SUFFIXES


def class_folders(root: Path) -> list[Path]:
    """The visible sub-folders of `root`, sorted by name."""
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def holds_images(folder: Path) -> bool:
    """`folder` directly contains at least one file with an image suffix."""
    return any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir() if p.is_file())


def is_image_folder(root: Path) -> bool:
    """`root` has visible sub-folders and every one of them holds images."""
    subdirs = class_folders(root)
    return bool(subdirs) and all(holds_images(d) for d in subdirs)


def list_image_folder(root: Path) -> tuple[list[Path], list[str]]:
    """Paths and labels of an image folder with one sub-folder per class, in a stable order."""
    paths: list[Path] = []
    labels: list[str] = []
    for class_dir in class_folders(root):
        for image in sorted(class_dir.iterdir()):
            if image.suffix.lower() in IMAGE_SUFFIXES:
                paths.append(image)
                labels.append(class_dir.name)
    if not paths:
        raise FileNotFoundError(
            f"{root}: expected one sub-folder of images per class, found no images"
        )
    return paths, labels
