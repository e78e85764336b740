"""The one image-folder reader: which sub-folders count, which files are images, in what order."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge_base.folders import class_folders, holds_images, is_image_folder, list_image_folder
from knowledge_base.loaders import load_image_folder, load_paths

pytestmark = pytest.mark.unit


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_class_folders_are_the_visible_sub_folders_in_name_order(tmp_path: Path) -> None:
    for name in ("shoe", "dress", ".git"):
        (tmp_path / name).mkdir()
    _touch(tmp_path / "notes.txt")
    assert [p.name for p in class_folders(tmp_path)] == ["dress", "shoe"]


def test_a_folder_holds_images_only_when_an_image_file_is_directly_inside(tmp_path: Path) -> None:
    _touch(tmp_path / "a" / "readme.txt")
    _touch(tmp_path / "a" / "deeper" / "x.jpg")
    _touch(tmp_path / "b" / "x.JPG")
    assert not holds_images(tmp_path / "a") and holds_images(tmp_path / "b")


def test_an_image_folder_needs_every_visible_sub_folder_to_hold_images(tmp_path: Path) -> None:
    _touch(tmp_path / "dress" / "1.png")
    _touch(tmp_path / ".cache" / "notes.txt")
    assert is_image_folder(tmp_path)
    _touch(tmp_path / "docs" / "faq.md")
    assert not is_image_folder(tmp_path)
    assert not is_image_folder(tmp_path / "dress")


def test_list_image_folder_labels_each_image_by_its_folder(tmp_path: Path) -> None:
    _touch(tmp_path / "shoe" / "b.png")
    _touch(tmp_path / "shoe" / "a.jpg")
    _touch(tmp_path / "shoe" / "notes.txt")
    _touch(tmp_path / "dress" / "c.webp")
    paths, labels = list_image_folder(tmp_path)
    assert [p.name for p in paths] == ["c.webp", "a.jpg", "b.png"]
    assert labels == ["dress", "shoe", "shoe"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        list_image_folder(tmp_path / "empty")


def test_the_loaders_read_an_image_folder_the_same_way(tmp_path: Path) -> None:
    _touch(tmp_path / "shop" / "shoe" / "a.jpg")
    _touch(tmp_path / "shop" / "dress" / "c.png")
    _touch(tmp_path / "shop" / ".hidden" / "x.jpg")
    expected = ["dress/c", "shoe/a"]
    assert [p.id for p in load_image_folder(tmp_path / "shop").products] == expected
    assert [p.id for p in load_paths([tmp_path / "shop"]).products] == expected
