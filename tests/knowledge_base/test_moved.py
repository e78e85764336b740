"""Old import paths of moved modules still import, as the very module at its new home."""

from __future__ import annotations

import importlib
import sys

import pytest

from knowledge_base.moved import alias_moved_modules


@pytest.mark.unit
@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("retrieval.hybrid", "retrieval.search.hybrid"),
        ("retrieval.offline", "knowledge_base.offline"),
        ("assistant.engine", "assistant.turn.engine"),
        ("assistant.commands.common", "assistant.cli.common"),
    ],
)
def test_an_old_path_is_the_moved_module_and_warns(old: str, new: str) -> None:
    importlib.import_module(old.split(".")[0])
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} has moved to {new}"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)


@pytest.mark.unit
def test_names_that_did_not_move_are_left_to_the_normal_import_system(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    monkeypatch.delitem(sys.modules, "knowledge_base.no_such_old_name", raising=False)
    alias_moved_modules({"knowledge_base.no_such_old_name": "knowledge_base.schema"})
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("knowledge_base.also_not_there")
    assert importlib.import_module("knowledge_base.no_such_old_name") is importlib.import_module(
        "knowledge_base.schema"
    )
