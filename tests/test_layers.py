"""Imports point one way: knowledge_base ← retrieval ← explain ← assistant.

Every `.py` file of the four packages is parsed with `ast` and every import in it is checked:
module level, inside functions and under `if TYPE_CHECKING:`, since a lazy or typing-only import
is still a dependency of the lower layer on the higher one. A lower layer that needs something
from above declares a small `typing.Protocol` instead. Private names (`_name`) stay inside the
module that defines them.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS: tuple[str, ...] = ("knowledge_base", "retrieval", "explain", "assistant")
"""Lowest first: a package may import the ones before it, never the ones after it."""


@dataclass(frozen=True)
class ImportEdge:
    """One import statement of one file: where it is and the absolute module it names."""

    path: Path
    line: int
    module: str
    names: tuple[str, ...] = ()


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path) -> Iterator[ImportEdge]:
    """Every import anywhere in the file, relative ones resolved against its package."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package.pop()
    for node in sorted(ast.walk(tree), key=lambda n: getattr(n, "lineno", 0)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield ImportEdge(path, node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            yield ImportEdge(path, node.lineno, module, tuple(a.name for a in node.names))


def python_files(root: Path, layers: Sequence[str]) -> Iterator[Path]:
    for layer in layers:
        yield from sorted((root / layer).rglob("*.py"))


def upward_imports(root: Path, layers: Sequence[str] = LAYERS) -> list[str]:
    """`path:line: <layer> imports <module> from a higher layer` for every upward edge."""
    rank = {name: position for position, name in enumerate(layers)}
    found = []
    for path in python_files(root, layers):
        own = path.relative_to(root).parts[0]
        for edge in imports_of(path, root):
            target = edge.module.split(".")[0]
            if rank.get(target, -1) > rank[own]:
                found.append(
                    f"{path.relative_to(root)}:{edge.line}: {own} imports {edge.module}, "
                    f"which is in the higher layer {target}"
                )
    return found


def private_imports(root: Path, layers: Sequence[str] = LAYERS) -> list[str]:
    """`path:line: imports _name from module` for every private name taken from another module
    of the four packages."""
    found = []
    for path in python_files(root, layers):
        for edge in imports_of(path, root):
            if edge.module.split(".")[0] not in layers or edge.module == module_name(path, root):
                continue
            for name in edge.names:
                if name.startswith("_") and not name.startswith("__"):
                    found.append(
                        f"{path.relative_to(root)}:{edge.line}: imports {name} from {edge.module}"
                    )
    return found


def plant(root: Path, files: dict[str, str]) -> Path:
    """A tree of `files` under `root`, over an empty `__init__.py` for every layer."""
    packages = {f"{layer}/__init__.py": "" for layer in LAYERS}
    for name, text in (packages | files).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.mark.unit
def test_no_package_imports_a_higher_layer() -> None:
    found = upward_imports(ROOT)
    assert not found, "upward imports:\n" + "\n".join(found)


@pytest.mark.unit
def test_no_private_name_crosses_a_module() -> None:
    found = private_imports(ROOT)
    assert not found, "private names imported from another module:\n" + "\n".join(found)


@pytest.mark.unit
def test_only_the_four_packages_are_installed_and_none_imports_the_developer_tools() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    assert sorted(include) == sorted(f"{layer}*" for layer in LAYERS)
    found = [
        f"{edge.path.relative_to(ROOT)}:{edge.line}: imports {edge.module}"
        for path in python_files(ROOT, LAYERS)
        for edge in imports_of(path, ROOT)
        if edge.module.split(".")[0] == "tools"
    ]
    assert not found, "\n".join(found)


@pytest.mark.unit
def test_the_checker_finds_upward_imports_at_every_level(tmp_path: Path) -> None:
    root = plant(
        tmp_path,
        {
            "knowledge_base/store.py": "import retrieval.search.types\n",
            "knowledge_base/ingest.py": (
                "from typing import TYPE_CHECKING\n"
                "from knowledge_base.store import Hit\n"
                "if TYPE_CHECKING:\n"
                "    from explain.pack import TextScorers\n"
                "def later() -> None:\n"
                "    from assistant.turn import policy\n"
            ),
            "retrieval/__init__.py": "from knowledge_base import store\n",
            "explain/__init__.py": "from retrieval import search\n",
            "assistant/__init__.py": "from explain import pack\nfrom . import turn\n",
        },
    )
    assert upward_imports(root) == [
        "knowledge_base/ingest.py:4: knowledge_base imports explain.pack, which is in the "
        "higher layer explain",
        "knowledge_base/ingest.py:6: knowledge_base imports assistant.turn, which is in the "
        "higher layer assistant",
        "knowledge_base/store.py:1: knowledge_base imports retrieval.search.types, which is in "
        "the higher layer retrieval",
    ]


@pytest.mark.unit
def test_the_checker_resolves_relative_imports(tmp_path: Path) -> None:
    root = plant(
        tmp_path,
        {
            "knowledge_base/sub/__init__.py": "from .. import store\n",
            "knowledge_base/sub/deep.py": "from ..store import Hit\nfrom . import _hidden\n",
        },
    )
    edges = [e.module for e in imports_of(root / "knowledge_base/sub/deep.py", root)]
    assert edges == ["knowledge_base.store", "knowledge_base.sub"]
    assert upward_imports(root) == []
    assert private_imports(root) == [
        "knowledge_base/sub/deep.py:2: imports _hidden from knowledge_base.sub"
    ]


@pytest.mark.unit
def test_the_checker_reports_private_names_from_other_modules_only(tmp_path: Path) -> None:
    root = plant(
        tmp_path,
        {
            "knowledge_base/store.py": "_LIMIT = 3\n",
            "knowledge_base/ingest.py": (
                "from knowledge_base.store import _LIMIT, __all__\nfrom numpy import _typing\n"
            ),
        },
    )
    assert private_imports(root) == [
        "knowledge_base/ingest.py:1: imports _LIMIT from knowledge_base.store"
    ]
